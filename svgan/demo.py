"""`make demo` / `python -m svgan.demo`: the whole pipeline offline, with nothing downloaded.

No pretrained FFHQ weights can be fetched, so the built-in default is made on the spot:

1. a pSp checkpoint (official layout) holding the conformance rule's deterministic weights, with a 256x256
   StyleGAN2 decoder at a quarter of config-f's width so a 2-core CPU renders it in real time (the full
   256 config costs ~100 GFLOP per frame, over a second here);
2. a synthetic W+ training sequence with known talking-head dynamics (`svgan-embed --synthetic`);
3. a briefly trained temporal model (`svgan-train`);
4. the bundle (`svgan-export`);
5. `svgan-stream` of scikit-image's astronaut photo (aligned and encoded like any identity) into out.mp4.

Random weights render abstract textures, not faces; the point is that every stage runs for real.
Steps whose results exist are skipped, so a second `make demo` only streams.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

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
    export_bundle(run, psp, bundle, force=True, progress=lambda m: _say(f"  {m}"))
    return bundle


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("out.mp4"),
              help="Where the video goes.")
@click.option("--seconds", default=12.0, help="Length of the video.")
@click.option("--rebuild", is_flag=True, help="Rebuild the demo bundle even if it exists.")
def main(output: Path, seconds: float, rebuild: bool) -> None:
    """Build the built-in demo (offline) and stream it into OUTPUT."""
    start = time.perf_counter()
    bundle = DEMO_DIR / "bundle"
    if rebuild or not (bundle / "manifest.json").exists():
        bundle = build_bundle(DEMO_DIR)
    else:
        _say(f"using the existing bundle {bundle} (--rebuild to make it again)")
    photo = astronaut_photo()
    _say(f"streaming {seconds:g} s for the identity in {photo} -> {output}")
    command = [sys.executable, "-m", "svgan.runtime.cli_stream", "--bundle", str(bundle), "--identity", str(photo),
               "--seconds", str(seconds), "--batch", "8", "-o", str(output)]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(1)
    _say(f"done in {time.perf_counter() - start:.0f} s: {output.resolve()}")


if __name__ == "__main__":
    main()
