"""What long windows lack (issue 13, docs/long-horizon.md "Next" 3): window FD split by temporal frequency and by
PCA component.

Window FD compares 25-frame windows in the top 8 PCA components (200 dimensions). An orthonormal DCT along each
window's time axis keeps every distance (the FD over all 200 coefficients is the window FD), and splits a window
into where it sits (coefficient 0, its mean), slow motion within it (coefficients 1-4, 0.5-2 Hz at 25 fps) and fast
motion (5-24, 2.5-12 Hz). The FD of each part alone (its marginal Gaussians; the parts' FDs need not add up to the
whole) says which of the three a set of windows gets wrong, and the FD of each component's 25 coefficients says
where. Each part's FD is also split into its mean term |mu - mu_data|^2 and the rest (covariance). Where windows sit is
also summarised by the eigenvalues of their means' covariance in the data's whitened coordinates (all 1 for the
data: below 1 a direction the windows fill too little, above 1 too much) and their largest correlation between two
components (against the data's).

Three sets per run, each against every window of the training codes: the late windows of 128 long samples of
G_ema (frames 250-1,500, non-overlapping: 6,400 windows, what svgan-eval's long window FD reads after 10 s), one
window at frame 0 of 960 samples (the short set) and, as the floor, the same late cut of 128 data stretches
(`horizon_metrics.data_stretches`).

    .venv/bin/python docs/experiments/window_fd_parts.py RUN [RUN ...] [--json OUT.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.fft import dct

from svgan.models import PCABasis, load_run_generator
from svgan.models.run import PCA_FILE
from svgan.training.evaluate import recorded_data_path, sample_pca_trajectories
from svgan.training.horizon_metrics import data_stretches, reference_windows
from svgan.training.motion_metrics import Gaussian, MotionMetricsConfig, gaussian_frechet_distance, windows
from svgan.training.wplus_data import load_wplus

sys.path.insert(0, str(Path(__file__).parent))
from run_report import per_run_main  # noqa: E402  (the sibling experiments' command line)

METRICS = MotionMetricsConfig()
LONG, LATE, LONG_SAMPLES, SHORT_SAMPLES = 1500, 250, 128, 960
# DCT coefficients of a 25-frame window: coefficient j is j / 50 cycles per frame (j x 0.5 Hz at 25 fps)
PARTS = {"position": slice(0, 1), "slow 0.5-2 Hz": slice(1, 5), "fast 2.5-12 Hz": slice(5, METRICS.window)}


def frequency_major(flat: np.ndarray) -> np.ndarray:
    """Flattened windows [n, window * k] -> their orthonormal DCT along time, [n, window, k]."""
    return dct(flat.reshape(len(flat), METRICS.window, METRICS.k_window), axis=1, norm="ortho")


def split_fd(fake: np.ndarray, real: np.ndarray, coefficients: slice, components: slice) -> dict[str, float]:
    """FD of the chosen coefficients and components of two DCT'd window sets, with its mean term."""
    a = Gaussian.fit(fake[:, coefficients, components].reshape(len(fake), -1))
    b = Gaussian.fit(real[:, coefficients, components].reshape(len(real), -1))
    fd = gaussian_frechet_distance(a, b)
    mean_term = float(np.sum((a.mean - b.mean) ** 2))
    return {"fd": round(fd, 2), "mean_term": round(mean_term, 2)}


def largest_correlation(x: np.ndarray) -> float:
    """The largest |correlation| between two columns of x [n, k]."""
    c = np.corrcoef(x.T)
    return round(float(np.abs(c - np.eye(len(c))).max()), 2)


def position_shape(fake: np.ndarray, real: np.ndarray) -> dict[str, object]:
    """How the window means [n, k] of `fake` fill the space against the data's: eigenvalues of their covariance
    whitened by the data's, and each set's largest |correlation| between two components."""
    whiten = np.linalg.inv(np.linalg.cholesky(np.cov(real.T)))
    eigenvalues = np.linalg.eigvalsh(whiten @ np.cov(fake.T) @ whiten.T)
    return {"whitened_eigenvalues": [round(float(v), 2) for v in eigenvalues],
            "largest_correlation": largest_correlation(fake), "data_largest_correlation": largest_correlation(real)}


def parts(fake_flat: np.ndarray, real: np.ndarray) -> dict[str, object]:
    fake = frequency_major(fake_flat)
    every = slice(None)
    return {"all": split_fd(fake, real, every, every),
            "position_shape": position_shape(fake[:, 0], real[:, 0]),
            **{name: split_fd(fake, real, band, every) for name, band in PARTS.items()},
            "by_component": [split_fd(fake, real, every, slice(k, k + 1))["fd"] for k in range(METRICS.k_window)]}


def late_windows(trajectories: np.ndarray) -> np.ndarray:
    return windows(trajectories[:, LATE:], METRICS.window, METRICS.window, METRICS.k_window)


def measure(run: Path) -> dict[str, object]:
    generator, _ = load_run_generator(run)
    pca = PCABasis.load(run / PCA_FILE)
    data = pca.project(load_wplus(recorded_data_path(run)).wplus)
    real = frequency_major(reference_windows(data))
    long = sample_pca_trajectories(generator, pca, LONG_SAMPLES, LONG, seed=0)
    short = sample_pca_trajectories(generator, pca, SHORT_SAMPLES, METRICS.window, seed=1)
    stretches = data_stretches(data, LONG_SAMPLES, LONG, np.random.default_rng(0))
    return {"late": parts(late_windows(long), real),
            "short": parts(windows(short, METRICS.window, METRICS.window, METRICS.k_window), real),
            "floor": parts(late_windows(stretches), real)}


def main() -> None:
    per_run_main(__doc__, measure, {"long": LONG, "late_from": LATE, "long_samples": LONG_SAMPLES,
                                    "short_samples": SHORT_SAMPLES,
                                    "parts": {name: [band.start, band.stop] for name, band in PARTS.items()}},
                 key="window_fd_parts")


if __name__ == "__main__":
    main()
