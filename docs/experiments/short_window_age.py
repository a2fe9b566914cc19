"""Why the state pool costs short samples (issue 13, docs/long-horizon.md "Next" 2): window FD against the age of
the window's start.

For each run, draws 960 samples of G_ema from `init(i)` and cuts one 25-frame window per sample at each start
frame (0, 25, 50, 100, 250), then scores each set of 960 windows against every window of the training codes
(`svgan-eval`'s window FD: the top 8 PCA components). A run whose windows at frame 0 are far worse than those a
few seconds in has an odd start (`init(i)` leads somewhere the GRU then leaves); one that is bad at every start
has a poor stationary regime.

    .venv/bin/python docs/experiments/short_window_age.py RUN [RUN ...] [--json OUT.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

from svgan.models import PCABasis, load_run_generator
from svgan.models.run import PCA_FILE
from svgan.training.evaluate import recorded_data_path, sample_pca_trajectories
from svgan.training.horizon_metrics import reference_windows, window_fd_at
from svgan.training.motion_metrics import Gaussian, MotionMetricsConfig
from svgan.training.wplus_data import load_wplus

sys.path.insert(0, str(Path(__file__).parent))
from run_report import per_run_main  # noqa: E402  (the sibling experiments' command line)

STARTS = (0, 25, 50, 100, 250)
SAMPLES = 960


def window_fd_by_start(run: Path) -> dict[str, float]:
    generator, _ = load_run_generator(run)
    pca = PCABasis.load(run / PCA_FILE)
    reference = Gaussian.fit(reference_windows(pca.project(load_wplus(recorded_data_path(run)).wplus)))
    samples = sample_pca_trajectories(generator, pca, SAMPLES, max(STARTS) + MotionMetricsConfig().window, seed=0)
    return {str(start): round(window_fd_at(samples, start, reference), 1) for start in STARTS}


def main() -> None:
    per_run_main(__doc__, window_fd_by_start, {"starts_frames": STARTS, "samples": SAMPLES}, key="window_fd")


if __name__ == "__main__":
    main()
