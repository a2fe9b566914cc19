"""Where G's long samples go in PCA space: per 250-frame block, the offset of their mean from the training
codes' mean and their spread, both in units of the data's std per component.

    python docs/experiments/world_long_horizon.py runs/world/temporal-d runs/world/temporal-d-nogap \
        > docs/demo-world/long-horizon-d.json

Samples 16 trajectories of 1,500 frames with `svgan-eval`'s sampler and seed (its long set at
`--long-frames 1500`), so the blocks are the frames behind `svgan-eval`'s long Fréchet distances in
docs/demo-world.md.

`svgan-eval` now reports this analysis itself (`summary["horizon"]["1500"]["blocks"]`, 10-s blocks of the top 8
components, and `horizon.png`; `training/horizon_metrics.py`), with window FD by start time, slow-band power
and autocorrelation beside it. This script stays to reproduce docs/demo-world/long-horizon-d.json: 250-frame
blocks, the largest offset and median spread over all 32 components; its maths is `block_moments`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from svgan.models import PCABasis, load_run_generator
from svgan.models.run import PCA_FILE
from svgan.training.evaluate import EvalConfig, recorded_data_path, sample_pca_trajectories
from svgan.training.horizon_metrics import block_moments
from svgan.training.wplus_data import load_wplus

BLOCK = 250
SHOWN = 8  # leading PCA components reported one by one


def block_report(run: Path) -> dict:
    config = EvalConfig(long_frames=1500)   # the long set the recorded JSON was computed from
    generator, meta = load_run_generator(run, "cpu")
    pca = PCABasis.load(run / PCA_FILE)
    real = pca.project(load_wplus(recorded_data_path(run), window=config.metrics.window).wplus)
    long = sample_pca_trajectories(generator, pca, config.long, config.long_frames, config.seed + 1)
    mean, std = real.mean(0), real.std(0)
    blocks = []
    for start in range(0, config.long_frames, BLOCK):
        offset, spread = block_moments(long[:, start:start + BLOCK], mean, std)
        blocks.append({"frames": [start, start + BLOCK],
                       "mean_offset": np.round(offset[:SHOWN].astype(float), 2).tolist(),
                       "largest_offset": {"component": int(np.abs(offset).argmax()),
                                          "value": round(float(offset[np.abs(offset).argmax()]), 2)},
                       "spread": np.round(spread[:SHOWN].astype(float), 2).tolist(),
                       "median_spread": round(float(np.median(spread)), 2)})
    return {"run": str(run), "iteration": meta["iteration"], "samples": config.long, "blocks": blocks}


def main(runs: list[str]) -> None:
    json.dump([block_report(Path(run)) for run in runs], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
