"""Where a run's late spread falls short (issue 13, docs/long-horizon.md §5): the spread of G_ema's late frames split
into where 25-frame windows sit (their means, what L_M matches) and the motion within them.

For 128 streams of 1,500 frames (frames 250-1,500, after svgan-eval's settling time; no burn-in) and for the training
codes, over non-overlapping 25-frame windows in the top 8 PCA components: the standard deviation of the frames, of the
window means and the root mean square of the frames about their window's mean; printed as G's ratios to the data's.

    .venv/bin/python docs/experiments/spread_parts.py RUN DATA.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from svgan.models import PCABasis, load_run_generator
from svgan.models.run import PCA_FILE
from svgan.training.evaluate import sample_pca_trajectories
from svgan.training.wplus_data import load_wplus

WINDOW, COMPONENTS, SAMPLES, LENGTH, LATE = 25, 8, 128, 1500, 250


def spread_parts(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Standard deviations of [samples, T, k]: of every frame, of each window's mean, and within windows."""
    usable = frames.shape[1] // WINDOW * WINDOW
    windows = frames[:, :usable].reshape(frames.shape[0], -1, WINDOW, frames.shape[-1])
    means = windows.mean(2, keepdims=True)
    return {"frames": frames.reshape(-1, frames.shape[-1]).std(0),
            "window means": means.reshape(-1, frames.shape[-1]).std(0),
            "within windows": np.sqrt(((windows - means) ** 2).mean((0, 1, 2)))}


def main(run: str, data: str) -> None:
    torch.set_num_threads(1)
    pca = PCABasis.load(Path(run) / PCA_FILE)
    real = spread_parts(pca.project(load_wplus(data).wplus)[None, :, :COMPONENTS])
    generator, _ = load_run_generator(run)
    late = sample_pca_trajectories(generator, pca, SAMPLES, LENGTH, seed=0)[:, LATE:, :COMPONENTS]
    for part, value in spread_parts(late).items():
        print(f"{part:>15}: " + " ".join(f"{r:.2f}" for r in value / real[part]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
