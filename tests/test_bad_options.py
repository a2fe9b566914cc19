"""Bad option values are refused before any work starts, naming the option, without a traceback (issue 16, item 3).

A table of (console script, arguments, the option the error must name); it grows with every new option. Runs the
click commands in-process (each case is milliseconds: the values are checked before anything loads).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from svgan.bench.cli import main as bench
from svgan.export.cli import main as export
from svgan.runtime.cli_stream import main as stream
from svgan.serve.cli import main as serve
from svgan.training.cli_embed import main as embed
from svgan.training.cli_eval import main as evaluate
from svgan.training.cli_train import main as train
from svgan.world.cli import main as world

ANY_FILE = __file__  # an existing path where a command's argument must exist: the bad option comes first

CASES = [
    (stream, ["--batch", "0"], "--batch"),
    (stream, ["--batch", "-3"], "--batch"),
    (stream, ["--crf", "99"], "--crf"),
    (stream, ["--fps", "-5"], "--fps"),
    (stream, ["--fps", "0"], "--fps"),
    (stream, ["--seconds", "-1"], "--seconds"),
    (stream, ["--frames", "-4"], "--frames"),
    (stream, ["--preset", "nonsense"], "--preset"),
    (stream, ["--upscale", "0"], "--upscale"),
    (stream, ["--encoder-threads", "-1"], "--encoder-threads"),
    (stream, ["--backend", "tensorflow"], "--backend"),
    (serve, ["--port", "0"], "--port"),
    (serve, ["--replicas", "0"], "--replicas"),
    (serve, ["--crf", "-1"], "--crf"),
    (serve, ["--preset", "fastest"], "--preset"),
    (serve, ["--max-upload-mb", "0"], "--max-upload-mb"),
    (bench, ["stream", "--bundle", ".", "--batch", "0"], "--batch"),
    (bench, ["stream", "--bundle", ".", "--preset", "x"], "--preset"),
    (bench, ["render", "--repeats", "0"], "--repeats"),
    (bench, ["render", "--resolution", "300"], "--resolution"),
    (bench, ["render", "--preset", "turbo"], "--preset"),
    (train, ["--epochs", "0", ANY_FILE], "--epochs"),
    (train, ["--batch-size", "0", ANY_FILE], "--batch-size"),
    (train, ["--critic-steps", "0", ANY_FILE], "--critic-steps"),
    (train, ["--lr-g", "0", ANY_FILE], "--lr-g"),
    (train, ["--lr-c", "-1e-3", ANY_FILE], "--lr-c"),
    (train, ["--lambda-gp", "-1", ANY_FILE], "--lambda-gp"),
    (train, ["--ema", "1", ANY_FILE], "--ema"),
    (train, ["--checkpoint-every", "0", ANY_FILE], "--checkpoint-every"),
    (train, ["--max-iterations", "0", ANY_FILE], "--max-iterations"),
    (train, ["--max-minutes", "0", ANY_FILE], "--max-minutes"),
    (train, ["--max-minutes", "nan", ANY_FILE], "--max-minutes"),
    (train, ["--seed", "-1", ANY_FILE], "--seed"),
    (embed, ["--batch-size", "0", ANY_FILE], "--batch-size"),
    (embed, ["--sigma-centre", "-1", ANY_FILE], "--sigma-centre"),
    (embed, ["--detect-size", "3", ANY_FILE], "--detect-size"),
    (embed, ["--max-frames", "0", ANY_FILE], "--max-frames"),
    (evaluate, ["--seed", "-2", "."], "--seed"),
    (export, ["--truncation-psi", "1.5", "."], "--truncation-psi"),
    (world, ["video", "--seconds", "-3", "out.mp4"], "--seconds"),
    (world, ["video", "--size", "2", "out.mp4"], "--size"),
    (world, ["dataset", "--faces", "0", "faces.npz"], "--faces"),
    (world, ["train-stylegan", "--minutes", "0", "run"], "--minutes"),
    (world, ["train-psp", "--lr", "-1", "run"], "--lr"),
    (world, ["train-reader", "--threads", "0", "reader.pt"], "--threads"),
    (bench, ["train", "--iterations", "0"], "--iterations"),
    (train, ["--lr-decay", "1.5", ANY_FILE], "--lr-decay"),
    (bench, ["render", "--batches", "4,x"], "--batches"),
    (bench, ["render", "--batches", "0"], "--batches"),
    (bench, ["serve", "--streams", "1,,2"], "--streams"),
    (bench, ["serve", "--batch-wait-ms", "-1"], "--batch-wait-ms"),
    (export, ["--batch-sizes", "8,-1", "."], "--batch-sizes"),
    (stream, ["--seed", "-1"], "--seed"),
    (serve, ["--batch-wait-ms", "-0.5"], "--batch-wait-ms"),
    (serve, ["--host", "no such host!"], "--host"),
    (serve, ["--address", ""], "--address"),
    (serve, ["--address", "head:99999"], "--address"),
    (serve, ["--address", "ray://bad host:10001"], "--address"),
    (embed, ["--synthetic", "0", "-o", "x.npz"], "--synthetic"),
    (embed, ["--synthetic", "5", "--moods", "-2", "-o", "x.npz"], "--moods"),
    (world, ["train-stylegan", "--r1-gamma", "-1", "run"], "--r1-gamma"),
    (world, ["train-stylegan", "--device", "gpu", "run"], "--device"),
    (world, ["measure", "--bundle", ".", "--reader", ANY_FILE, "--stream", ANY_FILE, "--actors", "1,a"], "--actors"),
    # outputs whose folder is missing: refused before the work, not after it
    (stream, ["-o", "/nonexistent-folder/out.mp4"], "/nonexistent-folder does not exist"),
    (embed, ["-o", "/nonexistent-folder/codes.npz", ANY_FILE], "/nonexistent-folder does not exist"),
    (evaluate, ["--json", "/nonexistent-folder/eval.json", "."], "/nonexistent-folder does not exist"),
    (evaluate, ["--plots", "/nonexistent-folder/plots", "."], "/nonexistent-folder does not exist"),
    (train, ["--out", "/nonexistent-folder/run", ANY_FILE], "/nonexistent-folder does not exist"),
    (export, ["-o", "/nonexistent-folder/bundle", "--psp", ANY_FILE, "."], "/nonexistent-folder does not exist"),
    (world, ["video", "/nonexistent-folder/actor.mp4"], "/nonexistent-folder does not exist"),
    (world, ["train-psp", "--stylegan", ANY_FILE, "/nonexistent-folder/run"], "/nonexistent-folder does not exist"),
    (bench, ["train", "--json", "/nonexistent-folder/train.json"], "/nonexistent-folder does not exist"),
]


@pytest.mark.parametrize("command, args, option", CASES, ids=[f"{c.name}-{' '.join(a)}" for c, a, _ in CASES])
def test_a_bad_option_value_is_refused_naming_the_option(command, args, option):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a usage error, not a crash
    assert option in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command, args", [(train, ["--cuda-graph", "--out", "RUN", ANY_FILE]),
                                           (bench, ["train", "--cuda-graph"])], ids=["svgan-train", "svgan-bench"])
def test_a_cuda_graph_off_cuda_is_refused_in_one_line_before_a_run_starts(tmp_path, command, args):
    args = [str(tmp_path / "run") if a == "RUN" else a for a in args]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.count("\n") == 1 and "--cuda-graph needs --device cuda" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--variants", "fast-fp64"], ["--variants", "all,eager-fp32"]])
def test_bench_render_refuses_unknown_variants_in_one_line(args):
    result = CliRunner().invoke(bench, ["render", "--device", "cpu", *args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.count("\n") == 1 and "svgan-bench: error: --" in result.output
