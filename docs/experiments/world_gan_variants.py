"""Which StyleGAN2 + pSp pair of the demo world draws and keeps shut eyes (issue 6, blinks).

    python docs/experiments/world_gan_variants.py --reader runs/world/reader.pt --device cuda \
        base:runs/world/gan-base/stylegan2.pt:runs/world/psp-base/psp.pt eye1:...  > variants.json

For each NAME:STYLEGAN:PSP triple, read with the attribute reader R:

* the StyleGAN2's samples (z ~ N(0, I), no truncation, constant noise): the share with a visibly open mouth
  (R > 0.3), with eyes at least half shut (R's blink > 0.5) and mostly shut (> 0.6), against fresh renders;
* pSp's reconstruction of the training actor talking (random_identity(0), the first `--frames` of the 180 s
  trajectory `svgan-world video` renders, here without H.264): correlation of R's mouth and blink readings with the
  renderer's true states, and the motion amplitude (`measure.motion_amplitude`) of truth and reconstruction.

Runs on the GPU machine without PyAV (faces are rendered, not decoded) and on the CPU.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np
import torch

from svgan.models import load_psp, load_stylegan2
from svgan.world.attribute_reader import load_reader
from svgan.world.renderer import (STATE_FIELDS, random_identity, render_dataset, render_face, state_from_row,
                                       talking_trajectory)
from svgan.world.stylegan2_trainer import to_images, to_uint8
from svgan.world.measure import BLINK_SHUT, MOTION_FIELDS, correlation, motion_amplitude, motion_signals

FPS = 25.0
VIDEO_SECONDS = 180.0  # `svgan-world video`'s default: the trajectory depends on its length


def _talking_frame(row: np.ndarray) -> np.ndarray:
    return render_face(random_identity(0), state_from_row(row), 64)


def shares(reader, faces: np.ndarray) -> dict[str, float]:
    states, _ = reader.read(faces)
    mouth, blink = states[:, STATE_FIELDS.index("mouth_open")], states[:, STATE_FIELDS.index("blink")]
    return {"mouth_above_0.3": round(float((mouth > 0.3).mean()), 4),
            "blink_above_0.5": round(float((blink > 0.5).mean()), 4),
            f"blink_above_{BLINK_SHUT}": round(float((blink > BLINK_SHUT).mean()), 4)}


@torch.no_grad()
def generator_samples(path: Path, n: int, device: str) -> np.ndarray:
    g = load_stylegan2(path, device).use_modconv("export").eval()
    z = torch.randn(n, g.config.style_dim, generator=torch.Generator().manual_seed(0)).to(device)
    return np.concatenate([to_uint8(g.synthesize(g.mapping(z[k:k + 250])[:, None].repeat(1, g.n_styles, 1)))
                           for k in range(0, n, 250)])


@torch.no_grad()
def reconstructions(path: Path, frames: np.ndarray, device: str) -> np.ndarray:
    psp = load_psp(path, device)
    psp.decoder.use_modconv("export")
    return np.concatenate([to_uint8(psp(to_images(frames[k:k + 250]).to(device), randomize_noise=False))
                           for k in range(0, len(frames), 250)])


@click.command()
@click.argument("variants", nargs=-1, required=True)
@click.option("--reader", "reader_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--samples", default=2000, help="StyleGAN2 samples (and renders) per share.")
@click.option("--frames", default=1500, help="Frames of the training actor's talking trajectory.")
@click.option("--device", default="cpu", help="Where the StyleGAN2 and pSp run.")
@click.option("--workers", default=1, help="Processes that render faces.")
def main(variants: tuple[str, ...], reader_path: Path, samples: int, frames: int, device: str, workers: int) -> None:
    """VARIANTS: NAME:STYLEGAN_PT:PSP_PT (PSP_PT may be empty to check the generator only)."""
    reader = load_reader(reader_path)
    truth = talking_trajectory(VIDEO_SECONDS, fps=FPS, seed=0)[0][:frames]
    with ProcessPoolExecutor(workers) as pool:
        talking = np.stack(list(pool.map(_talking_frame, truth, chunksize=64)))
    true_motion = truth[:, [STATE_FIELDS.index(name) for name in MOTION_FIELDS]]
    report: dict = {"samples": samples, "frames": frames, "device": device,
                    "renders": shares(reader, render_dataset(samples, 64, seed=1, workers=workers).images),
                    "truth_amplitude": motion_amplitude(true_motion, FPS)}
    for variant in variants:
        name, stylegan, psp = variant.split(":")
        entry: dict = {"stylegan": stylegan, "generated": shares(reader, generator_samples(Path(stylegan), samples,
                                                                                            device))}
        if psp:
            read = motion_signals(reader, reconstructions(Path(psp), talking, device))
            entry.update(psp=psp, reconstruction_amplitude=motion_amplitude(read, FPS),
                         reconstruction_corr={field: correlation(read[:, k], true_motion[:, k])
                                              for k, field in enumerate(MOTION_FIELDS)})
        report[name] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
