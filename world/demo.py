"""`make demo` / `python -m svgan.world.demo`: a cartoon face that talks and blinks, for an actor G never saw, offline.

The default streams the demo world's bundle, which ships in the repository (`svgan/demo_world/`, built as
`docs/demo-world.md` describes: a procedural talking-face domain with its own small StyleGAN2, pSp encoder and
temporal generator). The identity is `new_actor.png`, an aligned face of an actor outside the training video;
`svgan-stream` encodes it, applies the offset trick and steps the GRU frame by frame into out.mp4. Frames are
64x64 and encoded 4x enlarged.

`--abstract` instead runs every stage from scratch on a 256x256 model with the conformance rule's deterministic
weights (random weights render abstract textures, not faces): a pSp checkpoint in the official layout, a
synthetic W+ sequence (`svgan-embed --synthetic`), a briefly trained temporal model (`svgan-train`), the bundle
(`svgan-export`), then `svgan-stream` of scikit-image's astronaut photo, aligned and encoded like any identity.
Its results are kept in demo/, so a second run only streams; `make bench` times that bundle.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from svgan import DEMO_WORLD

WORLD_BUNDLE = DEMO_WORLD / "bundle"
WORLD_ACTOR = DEMO_WORLD / "new_actor.png"
DEMO_DIR = Path("demo")
DEMO_CHANNELS = (128, 128, 128, 128, 128, 64, 32)  # 4² .. 256²: config-f's widths / 4
TRAIN_ITERATIONS = 30


def _say(message: str) -> None:
    click.echo(f"demo: {message}", err=True)


def astronaut_photo() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException("scikit-image is not installed (pip install scikit-image); it ships the demo photo")
    return Path(list(spec.submodule_search_locations)[0], "data", "astronaut.png")


def build_psp(path: Path) -> None:
    from svgan.models import PSP, StyleGAN2Config, save_psp
    from svgan.models.fixture_weights import fixture_latent_avg, fixture_state_dict

    psp = PSP(StyleGAN2Config(size=256, channels=DEMO_CHANNELS))
    psp.load_state_dict(fixture_state_dict(psp.state_dict()), strict=True)
    psp.set_latent_avg(fixture_latent_avg(psp.n_styles))
    save_psp(path, psp)


def build_bundle(root: Path) -> Path:
    """Steps 1-4; returns the bundle directory."""
    import torch

    from svgan.export.bundle import export_bundle
    from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz
    from svgan.training.trainer import TrainConfig, start_run
    from svgan.training.wplus_data import load_wplus

    root.mkdir(exist_ok=True)
    psp, data, run, bundle = root / "psp256.pt", root / "train.npz", root / "run", root / "bundle"
    if not psp.exists():
        _say(f"writing a pSp checkpoint with the conformance rule's weights -> {psp}")
        build_psp(psp)
    if not data.exists():
        _say(f"writing 60 s of synthetic W+ codes with talking-head dynamics -> {data}")
        save_npz(data, make_sequence(SyntheticConfig(seconds=60, n_styles=14)))
    if not (run / "checkpoint.pt").exists():
        _say(f"training the temporal generator for {TRAIN_ITERATIONS} iterations -> {run}")
        shutil.rmtree(run, ignore_errors=True)
        torch.manual_seed(0)
        trainer = start_run(load_wplus(data, window=25), run, TrainConfig(batch_size=32), data_path=data)
        trainer.run(max_iterations=TRAIN_ITERATIONS)
    _say(f"exporting the ONNX bundle -> {bundle}")
    # domain_samples=0: random weights have no face domain to measure (svgan-stream notes the missing reference),
    # and 64 faces through the real-size IR-SE50 would add about a minute on a laptop CPU.
    export_bundle(run, psp, bundle, force=True, domain_samples=0, progress=lambda m: _say(f"  {m}"))
    return bundle


def _stream(bundle: Path, identity: Path, seconds: float, output: Path, *options: str) -> None:
    _say(f"streaming {seconds:g} s for the identity in {identity} -> {output}")
    command = [sys.executable, "-m", "svgan.runtime.cli_stream", "--bundle", str(bundle), "--identity", str(identity),
               "--seconds", str(seconds), "--batch", "8", "-o", str(output), *options]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(1)


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("out.mp4"),
              help="Where the video goes.")
@click.option("--seconds", default=20.0, help="Length of the video (20 s hold about four blinks).")
@click.option("--abstract", is_flag=True,
              help="Run every stage from scratch on a 256x256 model with deterministic weights (textures, not faces).")
@click.option("--rebuild", is_flag=True, help="With --abstract: rebuild its bundle even if it exists.")
def main(output: Path, seconds: float, abstract: bool, rebuild: bool) -> None:
    """Stream the built-in demo into OUTPUT: the demo world's talking face (default) or the --abstract pipeline."""
    start = time.perf_counter()
    if abstract:
        bundle = DEMO_DIR / "bundle"
        if rebuild or not (bundle / "manifest.json").exists():
            bundle = build_bundle(DEMO_DIR)
        else:
            _say(f"using the existing bundle {bundle} (--rebuild to make it again)")
        _stream(bundle, astronaut_photo(), seconds, output)
    else:
        if not (WORLD_BUNDLE / "manifest.json").is_file():
            raise click.ClickException(f"the demo world's bundle is missing ({WORLD_BUNDLE}); restore it with git "
                                       "or rebuild it as docs/demo-world.md describes")
        _stream(WORLD_BUNDLE, WORLD_ACTOR, seconds, output, "--aligned", "--upscale", "4")
    _say(f"done in {time.perf_counter() - start:.0f} s: {output.resolve()}")


if __name__ == "__main__":
    main()
