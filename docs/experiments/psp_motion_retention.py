"""How much of the training video's mouth and blink motion survives each pSp checkpoint's reconstruction.

    .venv/bin/python docs/experiments/psp_motion_retention.py runs/world/actor.mp4 runs/world/reader.pt \
        runs/world/psp/psp.pt runs/world/psp-feature/psp.pt > docs/experiments/psp_motion_retention.json

For each checkpoint: encode the first 1,500 frames, reconstruct them with its decoder, read mouth opening and blink
with the attribute reader, and correlate with the renderer's true states (actor.states.npy beside the video).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from svgan.models import load_psp
from svgan.runtime.video import VideoReader
from svgan.world.attribute_reader import load_reader
from svgan.world.renderer import STATE_FIELDS
from svgan.world.stylegan2_trainer import to_images, to_uint8

FRAMES = 1500


@torch.no_grad()
def retention(video: Path, reader_path: Path, checkpoints: list[Path]) -> dict:
    reader = load_reader(reader_path)
    truth = np.load(video.with_suffix(".states.npy"))[:FRAMES]
    with VideoReader(video) as clip:
        frames = np.stack([f for _, f in zip(range(FRAMES), clip)])
    columns = [STATE_FIELDS.index(name) for name in ("mouth_open", "blink")]
    report = {"frames": len(frames), "true_std": dict(zip(("mouth_open", "blink"),
                                                          np.round(truth[:, columns].std(0), 4).tolist()))}
    for path in checkpoints:
        psp = load_psp(path)
        psp.decoder.use_modconv("export")
        recon = np.concatenate([to_uint8(psp(to_images(frames[k:k + 100]), randomize_noise=False))
                                for k in range(0, len(frames), 100)])
        read = reader.read(recon)[0][:, columns]
        report[str(path)] = {name: {"corr": round(float(np.corrcoef(read[:, k], truth[:, k])[0, 1]), 4),
                                    "std": round(float(read[:, k].std()), 4)}
                             for k, name in enumerate(("mouth_open", "blink"))}
    return report


if __name__ == "__main__":
    print(json.dumps(retention(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]), indent=2))
