"""Faults (issue 16, item 4): `kill -9` at random moments and a full disk never leave a half-written result.

The real console scripts run as subprocesses and are killed with SIGKILL after a delay drawn from a seeded
generator, and once at the moment a temporary file of theirs appears (i.e. while they write a result). Afterwards
every result is either absent or complete (it loads), and a rerun succeeds and removes the killed process's
temporaries. A full disk is a file-size limit (RLIMIT_FSIZE: writes fail with EFBIG, Python ignores SIGXFSZ); the
tool must end with one line naming the file and keep the last good checkpoint.

Killing "while writing" requires the temporary to appear: a tool that wrote its result in place would never show
one, and `kill_while_writing` fails the test. torch runs with one thread (OMP_NUM_THREADS=1): on a busy 2-core
machine, more threads make the first training iterations 50x slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from svgan.atomic import atomic_output, atomic_write_text, partial_path, remove_stale_partials

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
MB = 1 << 20


@pytest.fixture
def rng(request) -> random.Random:
    """The kill moments: seeded by the test's name, so a failure reproduces whatever else runs."""
    return random.Random(request.node.name)


def start(module: str, *args: object, fsize: int | None = None) -> subprocess.Popen:
    """`python -m module args` with stderr captured, optionally with a file-size limit of `fsize` bytes."""
    limit = None if fsize is None else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize)))
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=limit)


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def run(module: str, *args: object, fsize: int | None = None) -> tuple[int, str]:
    return finish(start(module, *args, fsize=fsize))


def kill_after(proc: subprocess.Popen, seconds: float) -> None:
    """SIGKILL `proc` after `seconds` (unless it finished before)."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()


def partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial"))


def kill_while_writing(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> Path:
    """SIGKILL `proc` as soon as a temporary of a result appears in `folder`; returns that temporary."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = partials(folder)
        if found:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the tool ended (exit {proc.returncode}) without ever writing through a temporary: "
                        f"are its results written in place? {proc.communicate()[1][-500:]}")
        time.sleep(0.001)
    proc.kill()
    pytest.fail("no temporary appeared in time")


def assert_one_line_error(code: int, stderr: str, tool: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and lines and "Traceback" not in stderr, stderr[-2000:]
    assert lines[-1].startswith(f"{tool}: error: "), stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# The helper itself


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as f:
            f.write(b"half")
            assert partial_path(target).exists() and target.read_text() == "old"
            raise RuntimeError("killed")
    assert target.read_text() == "old" and partials(tmp_path) == []


def test_only_temporaries_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "checkpoint.pt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.{dead.pid}.partial"
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.partial"  # pytest's parent: alive
    other = tmp_path / f".metrics.csv.{dead.pid}.partial"       # another target's
    for path in (stale, live, other):
        path.write_text("x")
    (tmp_path / f".checkpoint.pt.{dead.pid}.partial.d").mkdir()  # not a temporary of ours
    assert remove_stale_partials(target) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


# --------------------------------------------------------------------------------------------------
# svgan-embed


def assert_wplus_file(path: Path, frames: int, n_styles: int) -> None:
    with np.load(path) as f:
        assert f["wplus"].shape == (frames, n_styles, 512) and float(f["fps"]) == 25.0
        assert json.loads(str(f["provenance"]))["source"] == "svgan.training.synthetic"


def test_embed_killed_at_any_moment_leaves_no_half_npz(tmp_path, rng):
    out = tmp_path / "seq.npz"
    embed = ("svgan.training.cli_embed", "--synthetic", 40, "--n-styles", 18, "-o", out)  # 1,000 codes, 37 MB
    kill_after(start(*embed), rng.uniform(0.5, 3.0))
    if out.exists():
        assert_wplus_file(out, 1000, 18)
    out.unlink(missing_ok=True)
    temporary = kill_while_writing(start(*embed), tmp_path)
    assert temporary.name.startswith(".seq.npz.") and not out.exists()
    code, err = run(*embed)
    assert code == 0, err
    assert_wplus_file(out, 1000, 18)
    assert partials(tmp_path) == []  # the killed writer's temporary was removed by the rerun
    # A full disk: one line naming the file, the previous file kept, no temporary left.
    before = sha256(out)
    assert_one_line_error(*run(*embed, fsize=MB), "svgan-embed", "File too large", str(out))
    assert sha256(out) == before and partials(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# svgan-train


@pytest.fixture(scope="module")
def wplus_file(tmp_path_factory) -> Path:
    from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz

    path = tmp_path_factory.mktemp("faults") / "seq.npz"
    save_npz(path, make_sequence(SyntheticConfig(seconds=20, n_styles=6)))
    return path


def train_args(data: Path, run_dir: Path, *extra: object) -> tuple[object, ...]:
    # The smallest CLI run: small widths, 2 windows per batch, one critic step, no GAP; a checkpoint every iteration
    return ("svgan.training.cli_train", data, "--out", run_dir, "--model", "small", "--epochs", 1, "--batch-size", 2,
            "--critic-steps", 1, "--no-gap", "--checkpoint-every", 1, *extra)


def checked_iteration(run_dir: Path) -> int | None:
    """The iteration of the run's checkpoint (None when there is none), after checking every run file loads."""
    from svgan.models import PCABasis, safe_torch_load

    if (run_dir / "config.json").exists():
        json.loads((run_dir / "config.json").read_text())
    if (run_dir / "pca.npz").exists():
        PCABasis.load(run_dir / "pca.npz")
    if not (run_dir / "checkpoint.pt").exists():
        return None
    return int(safe_torch_load(run_dir / "checkpoint.pt")["iteration"])


@pytest.mark.slow
def test_train_killed_at_any_moment_keeps_a_resumable_checkpoint_and_survives_a_full_disk(tmp_path, rng, wplus_file):
    run_dir = tmp_path / "run"

    def resume_flag() -> tuple[str, ...]:
        return ("--resume",) if (run_dir / "checkpoint.pt").exists() else ()

    for delay in (rng.uniform(1.0, 4.0), rng.uniform(4.0, 7.0)):
        kill_after(start(*train_args(wplus_file, run_dir, "--max-iterations", 200, *resume_flag())), delay)
        checked_iteration(run_dir)
    temporary = kill_while_writing(start(*train_args(wplus_file, run_dir, "--max-iterations", 200, *resume_flag())),
                                   run_dir)
    assert temporary.name.startswith((".pca.npz.", ".config.json.", ".checkpoint.pt.", ".metrics.csv."))
    kept = checked_iteration(run_dir) or 0
    code, err = run(*train_args(wplus_file, run_dir, "--max-iterations", 1, *resume_flag()))
    assert code == 0, err
    assert checked_iteration(run_dir) == kept + 1 and partials(run_dir) == []
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, kept + 2))
    # A full disk while saving the next checkpoint: one line naming it, the last good checkpoint kept as it was.
    before = sha256(run_dir / "checkpoint.pt")
    assert_one_line_error(*run(*train_args(wplus_file, run_dir, "--max-iterations", 1, "--resume"), fsize=MB),
                          "svgan-train", "File too large", str(run_dir / "checkpoint.pt"))
    assert sha256(run_dir / "checkpoint.pt") == before and partials(run_dir) == []


# --------------------------------------------------------------------------------------------------
# svgan-world train-stylegan (the world's trainers share `ChunkedRun`)


def world_train_args(run_dir: Path, iterations: int, *extra: object) -> tuple[object, ...]:
    return ("svgan.world.cli", "train-stylegan", run_dir, "--iterations", iterations, "--dataset-size", 8,
            "--batch-size", 2, "--checkpoint-every", 1, *extra)


def checked_world_iteration(run_dir: Path) -> int | None:
    """The iteration of the world run's checkpoint, after checking that every result file in it loads."""
    from PIL import Image

    from svgan.models import load_stylegan2, safe_torch_load
    from svgan.world.stylegan2_trainer import load_dataset

    if (run_dir / "dataset.npz").exists():
        assert load_dataset(run_dir / "dataset.npz").images.shape == (8, 64, 64, 3)
    if (run_dir / "stylegan2.pt").exists():
        load_stylegan2(run_dir / "stylegan2.pt")
    if (run_dir / "samples.png").exists():
        Image.open(run_dir / "samples.png").load()
    if not (run_dir / "checkpoint.pt").exists():
        return None
    return int(safe_torch_load(run_dir / "checkpoint.pt")["iteration"])


def test_world_training_killed_at_any_moment_keeps_a_resumable_checkpoint(tmp_path, rng):
    run_dir = tmp_path / "world"
    kill_after(start(*world_train_args(run_dir, 1000)), rng.uniform(2.0, 5.0))
    checked_world_iteration(run_dir)
    resume = ("--resume",) if (run_dir / "checkpoint.pt").exists() else ()
    kill_while_writing(start(*world_train_args(run_dir, 1000, *resume)), run_dir)
    kept = checked_world_iteration(run_dir) or 0
    resume = ("--resume",) if kept else ()
    code, err = run(*world_train_args(run_dir, kept + 1, *resume))
    assert code == 0, err
    assert checked_world_iteration(run_dir) == kept + 1 and partials(run_dir) == []
    before = sha256(run_dir / "checkpoint.pt")
    assert_one_line_error(*run(*world_train_args(run_dir, kept + 2, "--resume"), fsize=MB),
                          "svgan-world train-stylegan", "File too large", str(run_dir / "checkpoint.pt"))
    assert sha256(run_dir / "checkpoint.pt") == before and partials(run_dir) == []


# --------------------------------------------------------------------------------------------------
# svgan-export


@pytest.mark.slow
def test_export_killed_or_on_a_full_disk_leaves_no_bundle_and_a_rerun_succeeds(tmp_path, rng, world_bundle):
    from svgan.runtime.bundle import load_bundle

    out = tmp_path / "bundle"
    export = ("svgan.export.cli", world_bundle.parent / "run", "--psp", world_bundle.parent / "psp.pt", "-o", out)
    proc = start(*export)
    staging = kill_while_writing(proc, tmp_path)  # the staging directory appears once the inputs are loaded
    assert staging.is_dir() and not out.exists()
    proc = start(*export)
    kill_after(proc, rng.uniform(3.0, 8.0))
    assert not out.exists() or not load_bundle(out, verify=True).problems()
    assert_one_line_error(*run(*export, fsize=MB), "svgan-export", "File too large", str(out))
    assert not out.exists() and partials(tmp_path) == []  # its own staging and the killed exports' are gone
    code, err = run(*export)
    assert code == 0, err
    assert not load_bundle(out, verify=True).problems() and partials(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# svgan-stream -o FILE


def decoded_frames(path: Path) -> int:
    """Frames PyAV decodes from `path`, strictly: any error in the file fails the test."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_killed_stream_plays_up_to_its_last_fragment_and_a_full_disk_is_one_line(tmp_path, rng):
    out = tmp_path / "out.mp4"
    proc = start("svgan.runtime.cli_stream", "-o", out, "--frames", 0, "--upscale", 4)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 50_000) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.01)
    kill_after(proc, rng.uniform(0.0, 1.5))  # a moment in the middle of the stream, a few fragments in
    assert decoded_frames(out) >= 25
    code, err = run("svgan.runtime.cli_stream", "-o", out, "--frames", 1000, "--upscale", 4, fsize=64_000)
    assert_one_line_error(code, err, "svgan-stream", "File too large", str(out))
