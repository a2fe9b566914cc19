"""Where a run's pool states sit, by their age (issue 13, docs/long-horizon.md §3e).

L_M (`--late-moments`) asks the pool's windows for the data's mean and spread, but the pool holds states of every
age (geometric, mean 1,250 frames at the defaults), so L_M sees the moments of a mixture of ages. This rolls one
25-frame window of G (the weights the pool follows, not G_ema) from each of the run's saved pool states, projects
each window's mean onto the run's top 4 PCA components, and reports the mean offset from the data's window means
(in the data's frame stds, as `svgan-eval`'s blocks) per age bin: a run whose young and old states sit on opposite
sides of the data's mean while the whole pool is centred drifts through a stream's minutes with L_M satisfied.

The pool's old states were stepped by older G's, so the report also has where fresh streams of G (the weights the
pool follows) and of G_ema (what a bundle ships) sit, per 10-s block of a minute (`streams`: 64 streams each, the
same offsets): a run whose pool, G and G_ema agree has the three in one place.

    .venv/bin/python docs/experiments/pool_ages.py RUN [RUN ...] [--json OUT.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from svgan.models import PCABasis, TemporalGenerator, TemporalGeneratorConfig
from svgan.models.run import PCA_FILE, load_run_checkpoint
from svgan.training.evaluate import recorded_data_path, sample_pca_trajectories
from svgan.training.wplus_data import load_wplus

sys.path.insert(0, str(Path(__file__).parent))
from run_report import per_run_main  # noqa: E402  (the sibling experiments' command line)

AGE_BINS = (0, 250, 750, 1500, 3000)   # frames: 0-10 s, 10-30 s, 30-60 s, 1-2 min, over 2 min
COMPONENTS = 4
WINDOW = 25
STREAMS, BLOCK, BLOCKS = 64, 250, 6   # fresh streams per model, frames per block, blocks: a minute at 25 fps


def stream_offsets(generator: TemporalGenerator, pca: PCABasis, real: np.ndarray) -> list[list[float]]:
    """Mean offset of `STREAMS` fresh streams of `generator` per block, [BLOCKS][COMPONENTS], in data stds."""
    streams = sample_pca_trajectories(generator.eval(), pca, STREAMS, BLOCK * BLOCKS, seed=0)[..., :COMPONENTS]
    blocks = streams.reshape(STREAMS, BLOCKS, BLOCK, COMPONENTS).mean((0, 2))
    return np.round(((blocks - real.mean(0)) / real.std(0)).astype(float), 3).tolist()


def offsets_by_age(run: Path) -> dict[str, dict[str, object]]:
    state = load_run_checkpoint(run)
    if not state.get("pool"):
        raise SystemExit(f"{run}: the run has no state pool")
    generator = TemporalGenerator(TemporalGeneratorConfig(**state["generator_config"]))
    generator.load_state_dict(state["G"])
    pca = PCABasis.load(run / PCA_FILE)
    real = pca.project(load_wplus(recorded_data_path(run)).wplus)[:, :COMPONENTS]
    states = tuple(state["pool"]["states"])
    ages = state["pool"]["ages"].numpy()
    steps = torch.randn(len(ages), WINDOW, generator.config.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        windows = generator.eval().rollout(states, steps)[0].numpy()
    offset = (pca.project(windows)[:, :, :COMPONENTS].mean(1) - real.mean(0)) / real.std(0)
    edges = (*AGE_BINS, np.inf)
    report = {}
    for low, high in zip(edges[:-1], edges[1:]):
        chosen = (ages >= low) & (ages < high)
        report[f"{low}-{high:g}"] = {"states": int(chosen.sum()),
                                     "offset": np.round(offset[chosen].mean(0).astype(float), 3).tolist() if chosen.any() else None}
    report["all"] = {"states": len(ages), "offset": np.round(offset.mean(0).astype(float), 3).tolist()}
    ema = TemporalGenerator(TemporalGeneratorConfig(**state["generator_config"]))
    ema.load_state_dict(state["G_ema"])
    report["streams"] = {"G": stream_offsets(generator, pca, real), "G_ema": stream_offsets(ema, pca, real)}
    return report


def main() -> None:
    per_run_main(__doc__, offsets_by_age,
                 {"age_bins_frames": AGE_BINS, "components": COMPONENTS,
                  "offset": "mean over the bin's states of (window mean - data mean) / data std",
                  "streams": f"{STREAMS} fresh streams of G and of G_ema: the same offset per {BLOCK}-frame block"})


if __name__ == "__main__":
    main()
