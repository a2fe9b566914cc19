"""Motion quality in W+ (DESIGN §10): Fréchet distances of frames and windows, and a looping score.

The paper (§4, Table 1) scores its models with FID on single frames and FVD on 25-frame videos, each for a
"short" set (2048 samples as long as the training window) and a "long" set (128 samples of >= 128 frames),
against the training video or its W+ embedding. We measure the same two things directly in W+, in the run's
PCA coordinates (the 32 directions in which the actor's codes move), with no image network in between:

* frame FD: the Fréchet distance between generated and training frames in all PCA coordinates (FID's role);
* window FD: the Fréchet distance between 25-frame windows flattened in the first `k_window` PCA coordinates
  (FVD's role);
* "short": many independent 25-frame samples of G, one window each; "long": a few long samples (1,500 frames,
  the length the paper shows) cut into non-overlapping windows. A generator whose motion degrades beyond the
  training window has long/short window-FD ratio >> 1 (the paper's Table 1: 84.0 vs 42.9 with GAP,
  178.4 vs 33.2 without it);
* the looping score (the paper's §4 GAP ablation), which FVD "maybe does not effectively capture": how much
  closer each stretch of a long sample comes to its own earlier motion than the training video does, see
  `looping_score`.

The values are squared W+ distances (PCA coordinates are W+ units), not comparable with the paper's
Inception-feature FID/FVD; compare a model with other models on the same data and with the "self" reference
(`self_reference`: the training video's two halves against each other).

Everything here takes trajectories as arrays of PCA coordinates (numpy only), so real, generated or
hand-made trajectories are scored by the same code; sampling G lives in `evaluate.py`.
Shapes: a trajectory is [T, k]; a set of equally long trajectories is [B, T, k].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.spatial.distance import cdist


@dataclass(frozen=True)
class MotionMetricsConfig:
    """How windows are cut and compared. Defaults follow the paper where it says something.

    `k_window`: window FD uses the first 8 PCA coordinates of each frame, 25 x 8 = 200 dimensions. With all 32
    the windows would be 800-d and their covariance (320k entries) would need far more windows than a short
    or long set (960 each by default) provides, so the FD would mostly measure estimation noise. At 200-d,
    ~1,000 windows leave a sampling bias that is small next to the differences between models (synthetic
    10-minute data: an ideal generator scores 0.98 with 512 windows, 0.65 with 960, 0.57 with 2,048; an
    untrained one ~18), and the first 8 components carry most of the motion (97 % of the variance there).
    Per-frame FD keeps all PCA coordinates: frames are plentiful (24,000 per set by default).
    """

    window: int = 25           # frames per window: the training window t (paper)
    k_window: int = 8          # PCA coordinates per frame in window FD and the looping score
    loop_stride: int = 5       # frames between the starts of consecutive looping-score segments
    loop_cap: float = 1000.0   # looping score of exact repetition (zero distance), instead of infinity

    def __post_init__(self) -> None:
        if self.window < 2 or self.k_window < 1 or self.loop_stride < 1 or self.loop_cap <= 1:
            raise ValueError(f"invalid MotionMetricsConfig: {self}")

    @property
    def loop_gap(self) -> int:
        """Segments this many starts apart or more do not overlap (ceil(window / stride))."""
        return -(-self.window // self.loop_stride)

    def min_loop_frames(self) -> int:
        """The shortest trajectory with at least one segment that has an earlier, non-overlapping one."""
        return self.window + self.loop_gap * self.loop_stride

    def min_real_frames(self) -> int:
        """The shortest training sequence `motion_report` handles: a looping reference, and two windows in
        each half for the self reference."""
        return max(self.min_loop_frames(), 2 * (self.window + 1))


# ------------------------------------------------------------------------------------------ Fréchet distance

def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to samples x [n, d] and y [m, d]:

        |mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr((S_x S_y)^(1/2)).

    The trace of the matrix square root is computed as the sum of square roots of the eigenvalues of the
    symmetric matrix S_x^(1/2) S_y S_x^(1/2), which has the same eigenvalues as S_x S_y. This is what taking
    the real part of `scipy.linalg.sqrtm(S_x @ S_y)` approximates, but it cannot return complex numbers or
    blow up when a covariance is singular (fewer samples than dimensions, or directions in which a frozen
    generator never moves). Eigenvalues that rounding makes slightly negative are set to 0. Float64 throughout.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"frechet_distance needs [n, d] and [m, d] with n, m >= 2, got {x.shape}, {y.shape}")
    return gaussian_frechet_distance(Gaussian.fit(x), Gaussian.fit(y))


@dataclass(frozen=True)
class Gaussian:
    """Mean [d] and covariance [d, d] of a sample set (float64): fitted once, a large reference set (every
    training window) can be compared with many small generated sets."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Gaussian":
        x = np.asarray(x, dtype=np.float64)
        return cls(mean=x.mean(0), cov=np.atleast_2d(np.cov(x, rowvar=False)))


def gaussian_frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """`frechet_distance` of two fitted Gaussians (same formula, same numerics)."""
    sqrt_a = _psd_sqrt(a.cov)
    cross = np.linalg.eigvalsh(sqrt_a @ b.cov @ sqrt_a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    distance = np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt
    return float(max(distance, 0.0))


def sample_frechet_distance(x: np.ndarray, reference: Gaussian) -> float:
    """`frechet_distance` between samples x [n, d] and a fitted reference, with an n x n eigenproblem instead of
    two d x d ones when there are fewer samples than dimensions (one window per long sample: 16 windows of 200).

    With X the centred samples, S_x = X^T X / (n - 1), and the nonzero eigenvalues of S_x^(1/2) S_ref S_x^(1/2)
    are those of X S_ref X^T / (n - 1). Same value up to rounding; on a busy 2-core machine a multithreaded
    200 x 200 `eigh` can take 0.25 s, this takes milliseconds. With n > d it fits x and uses the d x d route.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(reference.mean) or len(x) < 2:
        raise ValueError(f"sample_frechet_distance needs [n, {len(reference.mean)}] with n >= 2, got {x.shape}")
    if len(x) > x.shape[1]:
        return gaussian_frechet_distance(Gaussian.fit(x), reference)
    mean = x.mean(0)
    centred = x - mean
    cross = np.linalg.eigvalsh(centred @ reference.cov @ centred.T / (len(x) - 1))
    trace_x = np.sum(centred ** 2) / (len(x) - 1)
    distance = (np.sum((mean - reference.mean) ** 2) + trace_x + np.trace(reference.cov)
                - 2 * np.sqrt(np.clip(cross, 0, None)).sum())
    return float(max(distance, 0.0))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance, negative rounding-error eigenvalues clipped to 0."""
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


# ------------------------------------------------------------------------------------------------- windows

def windows(trajectories: np.ndarray, window: int, stride: int, k: int | None = None) -> np.ndarray:
    """Windows of `window` frames every `stride` frames, each flattened: [B, T, k'] or [T, k'] -> [n, window*k].

    Only the first `k` coordinates of each frame are kept (all when None). The windows of every trajectory
    are concatenated in order.
    """
    trajectories = _as_set(trajectories)
    if trajectories.shape[1] < window:
        raise ValueError(f"trajectories of {trajectories.shape[1]} frames are shorter than one {window}-frame window")
    kept = trajectories[..., :k]
    cut = sliding_window_view(kept, window, axis=1)[:, ::stride]  # [B, n, k, window]
    return np.ascontiguousarray(cut.transpose(0, 1, 3, 2)).reshape(-1, window * kept.shape[-1])


def chunks(trajectory: np.ndarray, length: int) -> np.ndarray:
    """A long trajectory [N, k] cut into consecutive pieces of `length` frames, [N // length, length, k]."""
    n = len(trajectory) // length
    if n == 0:
        raise ValueError(f"a {len(trajectory)}-frame trajectory holds no {length}-frame piece")
    return trajectory[: n * length].reshape(n, length, trajectory.shape[-1])


def _as_set(trajectories: np.ndarray) -> np.ndarray:
    trajectories = np.asarray(trajectories)
    if trajectories.ndim == 2:
        return trajectories[None]
    if trajectories.ndim != 3:
        raise ValueError(f"expected a trajectory [T, k] or a set [B, T, k], got shape {list(trajectories.shape)}")
    return trajectories


# ------------------------------------------------------------------------------------------- FD of samples

@dataclass
class FDScores:
    """Frame and window Fréchet distances of one sample set against a reference."""

    frame_fd: float
    window_fd: float
    frames: int      # generated frames compared
    windows: int     # generated windows compared


def fd_scores(generated: np.ndarray, real: np.ndarray, config: MotionMetricsConfig = MotionMetricsConfig(),
              stride: int | None = None) -> FDScores:
    """Frame FD and window FD of `generated` [B, T, k] against every frame and window of `real` [N, k].

    Generated windows are cut every `stride` frames (default: the window length, i.e. non-overlapping, so
    a long sample contributes T // window windows and a short one exactly one). The reference uses every
    window (stride 1): the training set the critic saw.
    """
    generated = _as_set(generated)
    stride = config.window if stride is None else stride
    fake_windows = windows(generated, config.window, stride, config.k_window)
    real_windows = windows(real, config.window, 1, config.k_window)
    frames = generated.reshape(-1, generated.shape[-1])
    return FDScores(frame_fd=frechet_distance(frames, real), window_fd=frechet_distance(fake_windows, real_windows),
                    frames=len(frames), windows=len(fake_windows))


def self_reference(real: np.ndarray, config: MotionMetricsConfig = MotionMetricsConfig()) -> FDScores:
    """The training sequence's first half against its second half (every window of each): the FD that another
    recording of the same actor, as long as half the training video, would get. Generated sets near this are
    as close to the training data as the data is to itself. Same units as the generated sets' FDs; the sampling
    bias differs with the number of windows (a half of a 10-minute video has ~7,500, the sets 960)."""
    half = len(real) // 2
    return fd_scores(real[:half][None], real[half:], config, stride=1)


# --------------------------------------------------------------------------------------------------- looping

def loop_distances(trajectory: np.ndarray, scale: np.ndarray, config: MotionMetricsConfig = MotionMetricsConfig()
                   ) -> np.ndarray:
    """For each segment of a trajectory, the distance to the nearest earlier segment that does not overlap it.

    The trajectory [T, k'] is reduced to its first `k_window` coordinates divided by `scale` (per-coordinate
    standard deviations of the reference, so each motion direction counts alike and a generator that moves
    less than the data is closer to its past, not rescaled away) and cut into `window`-frame segments every
    `loop_stride` frames. Segment j is compared with every segment i that ends before j starts; the Euclidean
    distance is divided by sqrt(window * k_window), giving an RMS per coordinate in standard deviations.
    Returns one distance per segment that has an earlier one, in order.
    """
    trajectory = np.asarray(trajectory, dtype=np.float64)
    if len(trajectory) < config.min_loop_frames():
        raise ValueError(f"the looping score needs trajectories of at least {config.min_loop_frames()} frames, "
                         f"got {len(trajectory)}")
    k = config.k_window
    segments = windows(trajectory[:, :k] / scale[:k], config.window, config.loop_stride)
    distances = cdist(segments, segments) / math.sqrt(segments.shape[1])
    j, i = np.indices(distances.shape)
    distances[i > j - config.loop_gap] = np.inf  # only earlier segments that do not overlap
    return distances.min(axis=1)[config.loop_gap:]


@dataclass
class LoopingScore:
    """`score` = median distance to the past in the reference / the same median in the generated set."""

    score: float
    median_generated: float
    median_reference: float
    per_sample: list[float]   # the score of each generated trajectory alone
    frames: int               # trajectory length both sides were scored at


def looping_score(generated: np.ndarray, reference: np.ndarray,
                  config: MotionMetricsConfig = MotionMetricsConfig()) -> LoopingScore:
    """How much more a generated trajectory returns to motion it made before than the training video does.

    `generated` [B, T, k] and `reference` [R, T, k] (the training sequence cut into pieces of the same length,
    see `chunks`: the more history, the closer the nearest earlier segment, so lengths must match). Both are
    scaled by the reference's per-coordinate standard deviation; `loop_distances` gives each segment's distance
    to its nearest earlier non-overlapping segment, and the score is

        median(reference distances) / median(generated distances)

    ~1: as repetitive as the training video (which, speaking in syllables, repeats itself somewhat);
    > 1: comes back to earlier motion more than the data does: looping, and also a generator that barely moves
    (a frozen face is the degenerate loop); < 1: wanders further from its past than the data. Exact repetition
    (a periodic or frozen generator) has distance 0 and scores `loop_cap`. Medians make it robust to the few
    segments that have a near-twin in any long video (blinks, pauses).
    """
    generated, reference = _as_set(generated), _as_set(reference)
    if generated.shape[1] != reference.shape[1]:
        raise ValueError(f"generated ({generated.shape[1]} frames) and reference ({reference.shape[1]} frames) "
                         "trajectories must be equally long")
    scale = reference.reshape(-1, reference.shape[-1]).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    reference_median = float(np.median(np.concatenate([loop_distances(r, scale, config) for r in reference])))
    per_sample = [loop_distances(g, scale, config) for g in generated]
    generated_median = float(np.median(np.concatenate(per_sample)))
    return LoopingScore(score=_ratio(reference_median, generated_median, config.loop_cap),
                        median_generated=generated_median, median_reference=reference_median,
                        per_sample=[_ratio(reference_median, float(np.median(d)), config.loop_cap)
                                    for d in per_sample],
                        frames=generated.shape[1])


def _ratio(reference: float, generated: float, cap: float) -> float:
    return cap if generated * cap <= reference else reference / generated


# ------------------------------------------------------------------------------------------- the whole report

def motion_report(short: np.ndarray, long: np.ndarray, real: np.ndarray,
                  config: MotionMetricsConfig = MotionMetricsConfig()) -> dict[str, object]:
    """All DESIGN §10 motion metrics of a generator, as a JSON-ready dict.

    `short` [B, window, k]: independent samples as long as the training window. `long` [B', T, k]: long
    samples (T >= `min_loop_frames`). `real` [N, k]: the training sequence (N >= `min_real_frames`). The
    looping score compares the long samples with the training sequence cut into pieces of the same length
    (the long samples are cut to N frames when the training sequence is shorter than T).
    """
    short, long = _as_set(short), _as_set(long)
    if short.shape[1] != config.window:
        raise ValueError(f"short samples must be {config.window} frames long, got {short.shape[1]}")
    short_fd, long_fd = fd_scores(short, real, config), fd_scores(long, real, config)
    length = min(long.shape[1], len(real))
    loop = looping_score(long[:, :length], chunks(real, length), config)
    return {
        "short": asdict(short_fd),
        "long": asdict(long_fd),
        "long_short_window_fd_ratio": long_fd.window_fd / max(short_fd.window_fd, 1e-12),
        "looping": asdict(loop),
        "self": asdict(self_reference(real, config)),
        "real_variance": float(real.var(axis=0).sum()),
    }
