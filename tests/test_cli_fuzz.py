"""Every console script against generated bad option values and bad files (issue 16, items 1-3).

Two kinds of test:

* `test_every_option_says_what_makes_sense`: a census of every option of every console script (new options are
  covered the day they are added): numbers have ranges (finite ones: click's FloatRange lets nan through),
  lists and devices have types that check them, outputs are checked for a writable folder before work starts, and
  free text is allowed only where listed below with the reason.
* `test_fuzzed_command_line_ends_in_one_line`: hypothesis draws values for a few options of a command (anything:
  garbage text, huge, negative, nan, empty) and the contents of the files it reads (random bytes, truncated real
  files, well-formed archives holding the wrong arrays, checkpoints of the wrong kind, bundles with a broken graph).
  Every command must end with exit status != 0, one error line on stderr (click's usage error or
  `<tool>: error: ...`) and no traceback. Each command gets an input it must refuse (a bad file, or an output
  folder that does not exist, given last so that the fuzzed values are checked first), so no example starts real
  work. Examples are derandomised: the suite sees the same cases on every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svgan.bench.cli import main as bench
from svgan.cli_types import FiniteRange, OutputDir, OutputFile
from svgan.export.cli import main as export
from svgan.runtime.cli_stream import main as stream
from svgan.serve.cli import main as serve
from svgan.training.cli_embed import main as embed
from svgan.training.cli_eval import main as evaluate
from svgan.training.cli_train import main as train
from svgan.world.cli import main as world

TOOLS = {"svgan-stream": stream, "svgan-serve": serve, "svgan-bench": bench, "svgan-train": train,
         "svgan-embed": embed, "svgan-eval": evaluate, "svgan-export": export, "svgan-world": world}

# Options that take free text, and why that is right.
FREE_TEXT = {
    ("svgan-bench stream", "label"): "a label printed in the report",
    ("svgan-bench render", "variants"): "names checked against the known variants (one-line error)",
}
# Options and arguments that name something the command writes.
OUTPUTS = {"output", "out", "json_out", "report", "plots_dir", "preview"}
WORLD_RUNS = {"svgan-world train-stylegan", "svgan-world train-psp"}  # their RUN_DIR is written


def leaf_commands() -> Iterator[tuple[str, click.Command]]:
    for tool, command in TOOLS.items():
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield f"{tool} {name}", sub
        else:
            yield tool, command


def test_every_option_says_what_makes_sense():
    problems = []
    for name, command in leaf_commands():
        for param in command.params:
            kind = param.type
            if getattr(param, "is_flag", False) or param.name == "help":
                continue
            where = f"{name} {param.opts[0]}"
            if isinstance(kind, click.FloatRange) and not isinstance(kind, FiniteRange):
                problems.append(f"{where}: click.FloatRange lets nan and inf through; use cli_types.FiniteRange")
            elif kind in (click.INT, click.FLOAT):
                problems.append(f"{where}: a number without a range")
            elif kind is click.STRING and (name, param.name) not in FREE_TEXT:
                problems.append(f"{where}: free text; give it a type (Choice, IntList, Device, ...) or list why")
            is_output = param.name in OUTPUTS or (param.name == "run_dir" and name in WORLD_RUNS)
            if is_output and not isinstance(kind, (OutputFile, OutputDir)):
                problems.append(f"{where}: an output not checked before work starts (OutputFile/OutputDir)")
    assert problems == []


# -------------------------------------------------------------------------------------------------- bad files

def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares an absurd size and holds no pixels (a decompression bomb's first bytes)."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


@dataclass(frozen=True)
class Real:
    """Good files to cut short: a small image, a short video, a small checkpoint."""

    image: bytes
    video: bytes
    checkpoint: bytes


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Real:
    from PIL import Image

    from svgan.runtime.video import VideoSink

    folder = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "face.png")
    with VideoSink(folder / "clip.mp4", fps=25, width=64, height=64) as sink:
        sink.write_batch(rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8))
    checkpoint = torch_bytes({"state_dict": {"w": torch.zeros(3)}, "opts": {}})
    return Real(image=(folder / "face.png").read_bytes(), video=(folder / "clip.mp4").read_bytes(),
                checkpoint=checkpoint)


GARBAGE = st.one_of(st.binary(max_size=512), st.text(max_size=200).map(str.encode), st.just(b""))
SMALL_SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)
DTYPES = st.sampled_from(["float32", "float64", "int8", "bool", "complex64", "U3"])


@st.composite
def odd_arrays(draw) -> np.ndarray:
    shape, dtype = draw(SMALL_SHAPES), draw(DTYPES)
    array = np.zeros(shape, dtype=dtype)
    if array.size and dtype.startswith("float") and draw(st.booleans()):
        array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return array


def truncated(data: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, max(len(data) - 1, 0)).map(lambda n: data[:n])


def bad_npz() -> st.SearchStrategy[bytes]:
    """W+ sequences that are not: garbage, odd arrays under the right or wrong names, codes with nan, bad fps."""
    wplus = st.sampled_from([np.full((30, 4, 8), np.nan, np.float32), np.zeros((2, 4, 8), np.float32),
                             np.zeros((30, 32), np.float32), np.array(["a", "b"])])
    fps = st.sampled_from([np.array(np.nan), np.array(-25.0), np.array(0.0), np.zeros(3), np.array("25")])
    return st.one_of(GARBAGE, odd_arrays().map(lambda a: npz_bytes({"wplus": a})),
                     wplus.map(lambda a: npz_bytes({"wplus": a, "fps": np.array(25.0)})),
                     fps.map(lambda f: npz_bytes({"wplus": np.zeros((60, 4, 8), np.float32), "fps": f})),
                     odd_arrays().map(lambda a: npz_bytes({"other": a})))


def bad_npy() -> st.SearchStrategy[bytes]:
    return st.one_of(GARBAGE, odd_arrays().map(npy_bytes),
                     st.just(npy_bytes(np.array([{"a": 1}], dtype=object))),  # a pickle: must not be loaded
                     st.just(npz_bytes({"w": np.zeros(3)})))


def bad_image(real: Real) -> st.SearchStrategy[bytes]:
    return st.one_of(GARBAGE, truncated(real.image).filter(lambda b: len(b) < len(real.image) - 16),
                     st.tuples(st.integers(30_000, 2**31 - 1), st.integers(30_000, 2**31 - 1)).map(
                         lambda wh: png_header(*wh)))


def bad_video(real: Real) -> st.SearchStrategy[bytes]:
    # A cut keeping at least 2/3 of the clip still decodes part of it: the half that does not is what is refused.
    return st.one_of(GARBAGE, truncated(real.video), st.just(real.image))


def bad_checkpoint(real: Real) -> st.SearchStrategy[bytes]:
    wrong = st.sampled_from([{"g_ema": {"w": torch.zeros(2)}}, {"state_dict": {}}, [1, 2, 3], torch.zeros(4),
                             {"state_dict": {"encoder.w": torch.zeros(1)}, "opts": {"n_styles": "x"}}])
    return st.one_of(GARBAGE, truncated(real.checkpoint), wrong.map(torch_bytes),
                     st.just(npz_bytes({"wplus": np.zeros((30, 4, 8), np.float32)})))


def bad_bundle_manifest() -> st.SearchStrategy[bytes]:
    manifests = st.one_of(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
                          st.just({"format": "svgan-bundle", "format_version": 2, "graphs": {}}),
                          st.just({"format": "svgan-bundle", "format_version": 1}))
    return st.one_of(GARBAGE, manifests.map(lambda m: json.dumps(m).encode()))


# -------------------------------------------------------------------------------------------------- option values

ODD_TEXT = st.sampled_from(["", "-1", "0", "1e309", "nan", "inf", "-inf", "1,,2", "0x10", "９", "abc", " ", "-",
                            "/", "../..", "/dev/null", "1.5", "2147483648", "-9223372036854775809", "cuda:x", "-o"])
VALUES = st.one_of(ODD_TEXT, st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(repr),
                   st.text(max_size=12))


def sensible(option: click.Option) -> st.SearchStrategy[str]:
    """Values the option accepts (its default, a choice, a number in its range): with these the example gets past
    click to the command's own checks of its files and of combinations."""
    kind = option.type
    if isinstance(kind, click.Choice):
        return st.sampled_from([str(c) for c in kind.choices])
    if isinstance(kind, click.IntRange):
        low = kind.min if kind.min is not None else -5
        return st.integers(low + (1 if kind.min_open else 0), kind.max if kind.max is not None else low + 100).map(str)
    if isinstance(kind, FiniteRange):
        low = kind.min if kind.min is not None else -5.0
        high = kind.max if kind.max is not None else low + 100.0
        return st.floats(low, high, exclude_min=kind.min_open, exclude_max=kind.max_open).map(repr)
    default = option.get_default(click.Context(click.Command("x")), call=True)
    return st.just(str(default)) if default not in (None, ()) else VALUES


def option_and_value(option: click.Option) -> st.SearchStrategy[tuple[click.Option, str]]:
    return st.tuples(st.just(option), st.one_of(sensible(option), VALUES))


@dataclass
class Case:
    """How to run one command so that it cannot start real work: `inputs` (file name -> strategy of its bytes)
    and `refusal` (arguments naming those files, or an output in a folder that does not exist), given last."""

    command: click.Command
    prefix: list[str]
    refusal: list[str]
    inputs: dict[str, Callable[[Real], st.SearchStrategy[bytes]]]
    keep: tuple[str, ...] = ()   # options the fuzz leaves alone: they hold the refusal

    def options(self) -> list[click.Option]:
        sub = self.command.commands[self.prefix[0]] if self.prefix else self.command
        return [p for p in sub.params if isinstance(p, click.Option) and p.name != "help"
                and not any(o in self.keep for o in p.opts)]


NOWHERE = "/nonexistent-folder/out"
BUNDLE = {"bundle/manifest.json": lambda real: bad_bundle_manifest()}
CASES = {
    "stream": Case(stream, [], ["--bundle", "bundle"], BUNDLE, keep=("--bundle",)),
    "stream-identity": Case(stream, [], ["--bundle", "{world_bundle}", "--frames", "1", "--identity", "face.png",
                                         "-o", "out.mp4"], {"face.png": bad_image},
                            keep=("--bundle", "--identity", "--frames", "--seconds", "-o")),
    "stream-code": Case(stream, [], ["--bundle", "{world_bundle}", "--frames", "1", "--identity", "code.npy",
                                     "-o", "out.mp4"], {"code.npy": lambda real: bad_npy()},
                        keep=("--bundle", "--identity", "--frames", "--seconds", "-o")),
    # --address is left alone: a well-formed one makes Ray try to connect for seconds (the table has bad ones)
    "serve": Case(serve, [], ["--bundle", "bundle"], BUNDLE, keep=("--bundle", "--address")),
    "train": Case(train, [], ["data.npz", "--out", "run"], {"data.npz": lambda real: bad_npz()},
                  keep=("--out", "--resume")),
    "embed": Case(embed, [], ["clip.mp4", "--psp", "psp.pt", "-o", "codes.npz"],
                  {"clip.mp4": bad_video, "psp.pt": bad_checkpoint}, keep=("--psp", "-o", "--synthetic")),
    "eval": Case(evaluate, [], ["run", "--data", "data.npz"], {"run/checkpoint.pt": bad_checkpoint,
                                                               "data.npz": lambda real: bad_npz()}, keep=("--data",)),
    "export": Case(export, [], ["run", "--psp", "psp.pt", "-o", "bundle-out"],
                   {"run/checkpoint.pt": bad_checkpoint, "psp.pt": bad_checkpoint}, keep=("--psp", "-o", "--force")),
    "bench-train": Case(bench, ["train"], ["--json", f"{NOWHERE}.json"], {}, keep=("--json",)),
    "bench-stream": Case(bench, ["stream"], ["--bundle", "bundle"], BUNDLE, keep=("--bundle",)),
    "bench-render": Case(bench, ["render"], ["--json", f"{NOWHERE}.json"], {}, keep=("--json",)),
    "bench-serve": Case(bench, ["serve"], ["--json", f"{NOWHERE}.json"], {}, keep=("--json",)),
    "world-train-stylegan": Case(world, ["train-stylegan"], ["run", "--dataset", "faces.npz", "--init", "g.pt"],
                                 {"faces.npz": lambda real: bad_npz(), "g.pt": bad_checkpoint},
                                 keep=("--dataset", "--init", "--resume")),
    "world-train-psp": Case(world, ["train-psp"], ["run", "--stylegan", "g.pt"], {"g.pt": bad_checkpoint},
                            keep=("--stylegan", "--init", "--resume")),
    "world-dataset": Case(world, ["dataset"], [f"{NOWHERE}.npz"], {}),
    "world-video": Case(world, ["video"], [f"{NOWHERE}.mp4"], {}),
    "world-identity": Case(world, ["identity"], [f"{NOWHERE}.png"], {}),
    "world-train-reader": Case(world, ["train-reader"], ["reader.pt", "--dataset", "faces.npz"],
                               {"faces.npz": lambda real: bad_npz()}, keep=("--dataset",)),
    "world-measure": Case(world, ["measure"], ["--bundle", "bundle", "--reader", "r.pt", "--stream", "s.mp4"],
                          BUNDLE | {"r.pt": bad_checkpoint, "s.mp4": bad_video},
                          keep=("--bundle", "--reader", "--stream", "--video")),
}
ERROR_LINE = re.compile(r"^(Error: |svgan-[a-z]+( [a-z-]+)?: error: )")


def test_every_command_is_fuzzed():
    fuzzed = {(c.command, tuple(c.prefix)) for c in CASES.values()}
    missing = [name for name, command in leaf_commands()
               if (TOOLS[name.split()[0]], tuple(name.split()[1:])) not in fuzzed]
    assert missing == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzzed_command_line_ends_in_one_line(name, real, world_bundle):
    case = CASES[name]
    options = case.options()
    choices = st.lists(st.sampled_from(options).flatmap(option_and_value), max_size=3) if options else st.just([])
    inputs = st.fixed_dictionaries({file: make(real) for file, make in case.inputs.items()})

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(chosen=choices, files=inputs)
    def run(chosen: list[tuple[click.Option, str]], files: dict[str, bytes]) -> None:
        args = [*case.prefix]
        for option, value in chosen:
            args += [option.opts[0]] if option.is_flag else [option.opts[0], value]
        args += [a.format(world_bundle=world_bundle) for a in case.refusal]
        with tempfile.TemporaryDirectory() as folder, in_folder(Path(folder)):
            for file, data in files.items():
                Path(file).parent.mkdir(parents=True, exist_ok=True)
                Path(file).write_bytes(data)
            assert_one_line_failure(CliRunner().invoke(case.command, args), args)

    run()


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    """The cases name their files relative to the example's own folder."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def assert_one_line_failure(result, args: list[str]) -> None:
    shown = f"args: {args}\nstderr: {result.stderr}\nexception: {result.exception!r}"
    assert result.exit_code not in (0, None), shown
    assert isinstance(result.exception, SystemExit), shown   # not a crash
    assert "Traceback" not in result.stderr + result.stdout, shown
    errors = [line for line in result.stderr.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == 1, shown
