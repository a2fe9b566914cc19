"""Long-horizon motion metrics (DESIGN §5b): G's long samples against the training codes, as functions of the
time since the stream started (frame 0 = G's `init`, w_0 = T(l_0 = i)).

The paper trains its critic on 25-frame windows that all start at G's initial state and scores "long" samples
with one FVD over all their windows (§4, Table 1). That average hides *when* motion goes wrong: a recurrent G can
settle within seconds into a regime narrower than the data and offset from its mean, without the data's slow
(5-20 s) motion, and stay there (measured on the demo world, DESIGN §5b). So here each figure is a function of
time, in the run's PCA coordinates (ordered by the training codes' variance, so "the top components" are the
first columns):

* **window FD by start time** (`window_fd_by_start`): the window FD of `motion_metrics` (25 frames x the first
  `k_window` = 8 components, against every training window) of the one window each sample has at a given start
  (0, 1, 5, 10, 30, 60 s). With one window per sample (16 by default) the FD carries a large estimation bias, so
  `window_fd_floor` gives the same FD for equally many *training* windows drawn at random: a generator as good
  as the data scores about the floor at every start.
* **spread ratio and mean offset per block** (`block_moments`, `block_report`): per 10-s block, pooled over
  samples, each top component's std over the data's std (1: as wide as the data) and its mean minus the data's
  mean in data stds (0: centred); `late_blocks` holds their extremes over the blocks after the settling time,
  and `block_floor` what as many stretches of the training sequence score on those extremes. With 16 samples
  the data themselves miss the ideal by 0.3 std of offset (demo world), so these figures are read against the
  floor, and `svgan-eval` draws 128 long samples by default.
* **slow-band power** (`slow_band_report`): Welch power spectra (`scipy.signal.welch`, Hann, half-overlapping
  segments) of the *late* frames against the training sequence's, integrated over 0.02-0.3 Hz (periods of
  3-50 s), as a ratio in dB per top component. Resolving 0.02 Hz needs segments of at least 1 / 0.02 Hz = 50 s
  (`nperseg` = 1,250 frames at 25 fps), and a Welch estimate needs several segments: with the default 4
  half-overlapping ones the training sequence must be at least 2.5 x 50 s = 125 s long (10 minutes give 23
  segments). Each generated sample's late stretch must hold one whole segment. When either is too short the
  figure is null with the reason: a shorter segment would move the band's lower edge, not measure it.
* **autocorrelation** (`autocorrelation`, `autocorrelation_report`) of the top components at lags of 1, 2, 5,
  10 and 20 s, late frames against the training sequence: how long motion persists.
* the **looping score** of `motion_metrics.looping_score` over the horizon's frames.

"Late" frames are those after `settle_seconds` (10 s: the time within which the demo world's G settles), or the
second half of a horizon shorter than twice that. Everything is reported per *horizon* T, the figures of the
stream's first T frames (the paper's t = 250 and its 1,500-frame samples): blocks, late frames and looping score
use frames [0, T); window FD is reported for the start times up to and including T (the window that starts at
the horizon's end, e.g. the 60-s one at T = 1,500, reaches `window` frames past it, which is why the long samples
run one window past the longest horizon). A figure that does not fit the samples or the data is null with a
`reason`, never estimated from less.

Pure numpy/scipy on PCA trajectories: real, generated and hand-made ones are scored by the same code; sampling
G lives in `evaluate.py`. Shapes: a set of equally long trajectories is [B, T, k], the training sequence [N, k].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.signal import welch

from .motion_metrics import (Gaussian, MotionMetricsConfig, chunks, looping_score, sample_frechet_distance,
                             windows)


@dataclass(frozen=True)
class HorizonConfig:
    """What the long-horizon report measures. Times are in seconds (converted with the data's fps), horizons in
    frames."""

    horizons: tuple[int, ...] = (250, 1500)       # the paper's t = 250 and its 1,500-frame samples
    starts: tuple[float, ...] = (0, 1, 5, 10, 30, 60)   # window-FD start times
    floor_draws: int = 8           # random draws of training windows (stretches) averaged into each floor
    floor_seed: int = 0            # seeds those draws
    block_seconds: float = 10.0    # length of a spread/offset block
    block_components: int = 8      # top components reported per block (the ones window FD uses)
    settle_seconds: float = 10.0   # late frames start here (or at half the horizon, when that is earlier)
    slow_band: tuple[float, float] = (0.02, 0.3)   # Hz: periods of 3.3-50 s, around the 5-20 s head motion
    psd_components: int = 4        # top components whose slow-band power is reported
    psd_min_segments: int = 4      # Welch segments each side needs (training sequence; all samples together)
    lags: tuple[float, ...] = (1, 2, 5, 10, 20)    # autocorrelation lags
    acf_components: int = 4        # top components whose autocorrelation is reported

    def __post_init__(self) -> None:
        low, high = self.slow_band
        if (not self.horizons or min(self.horizons) < 1 or min(self.starts, default=0) < 0
                or self.block_seconds <= 0 or self.settle_seconds < 0 or not 0 < low < high
                or min(self.lags, default=1) <= 0 or self.floor_draws < 1 or self.psd_min_segments < 1
                or min(self.block_components, self.psd_components, self.acf_components) < 1):
            raise ValueError(f"invalid HorizonConfig: {self}")


def to_frames(seconds: float, fps: float) -> int:
    """A time in frames at `fps`, rounded (10 s at 25 fps: frame 250)."""
    return round(seconds * fps)


def seconds_key(seconds: float) -> str:
    """The JSON key of a time: "0", "1", "60", "0.5"."""
    return f"{seconds:g}"


# ------------------------------------------------------------------------------------ window FD by start time

def window_fd_at(trajectories: np.ndarray, start: int, reference: Gaussian,
                 config: MotionMetricsConfig = MotionMetricsConfig()) -> float:
    """Window FD of the one window [start, start + window) of each trajectory [B, T, k] against `reference`
    (the Gaussian of every training window, see `reference_windows`)."""
    cut = trajectories[:, start:start + config.window, :config.k_window]
    if cut.shape[1] != config.window:
        raise ValueError(f"a window at frame {start} does not fit in {trajectories.shape[1]} frames")
    return sample_frechet_distance(cut.reshape(len(cut), -1), reference)


def reference_windows(real: np.ndarray, config: MotionMetricsConfig = MotionMetricsConfig()) -> np.ndarray:
    """Every window of the training sequence [N, k], flattened as window FD compares them: [N - window + 1, d]."""
    return windows(real, config.window, 1, config.k_window)


def window_fd_floor(real_windows: np.ndarray, reference: Gaussian, count: int, draws: int, seed: int
                    ) -> dict[str, float | int]:
    """The window FD that `count` training windows drawn at random (without replacement) score against all of
    them, mean and std over `draws` draws: what a generator as good as the data scores with `count` windows per
    start. It is large when `count` is small next to the window's 200 dimensions (16 windows: the covariance has
    rank 15), which is why start-time FDs must be read against it."""
    rng = np.random.default_rng(seed)
    count = min(count, len(real_windows))
    fds = [sample_frechet_distance(real_windows[rng.choice(len(real_windows), count, replace=False)], reference)
           for _ in range(draws)]
    return {"fd": float(np.mean(fds)), "std": float(np.std(fds)), "windows": count, "draws": draws}


def window_fd_by_start(trajectories: np.ndarray, reference: Gaussian, starts: tuple[float, ...], fps: float,
                       config: MotionMetricsConfig = MotionMetricsConfig()) -> dict[str, dict[str, Any]]:
    """{start seconds: {"frame", "fd"}} for each start whose window fits in the trajectories [B, T, k]; the
    others get "fd": None and a "reason"."""
    length = trajectories.shape[1]
    out: dict[str, dict[str, Any]] = {}
    for seconds in starts:
        frame = to_frames(seconds, fps)
        entry: dict[str, Any] = {"frame": frame}
        if frame + config.window <= length:
            entry["fd"] = window_fd_at(trajectories, frame, reference, config)
        else:
            entry.update(fd=None, reason=f"the samples have {length} frames; a {config.window}-frame window at "
                                          f"{seconds:g} s needs {frame + config.window}")
        out[seconds_key(seconds)] = entry
    return out


# ------------------------------------------------------------------------------------ spread and offset per block

def block_moments(frames: np.ndarray, data_mean: np.ndarray, data_std: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mean offset, spread ratio) per component of the frames [..., k] pooled over samples and time:
    (mean - data mean) / data std and std / data std. Pooling keeps the differences between samples in the
    spread: a set of samples that each sit still at a different place is as wide as the data, a set that
    moves around one narrow regime is not. Computed in the frames' dtype (the figures of
    docs/experiments/world_long_horizon.py reproduce)."""
    frames = frames.reshape(-1, frames.shape[-1])
    return (frames.mean(0) - data_mean) / data_std, frames.std(0) / data_std


def block_report(trajectories: np.ndarray, real: np.ndarray, length: int, block: int, components: int
                 ) -> list[dict[str, Any]]:
    """One entry per `block`-frame block of the first `length` frames of [B, T, k] (the last block may be
    shorter): frames, spread ratio and mean offset of the top `components`, their min/max spread and largest
    |offset| (with its component, 0-based)."""
    mean, std = real.mean(0), real.std(0)
    std = np.where(std > 0, std, 1.0)   # a component the data never moves in: report raw units, not inf
    out = []
    for start in range(0, length, block):
        stop = min(start + block, length)
        offset, spread = (v[:components].astype(float) for v in block_moments(trajectories[:, start:stop], mean, std))
        largest = int(np.abs(offset).argmax())
        out.append({"frames": [start, stop], "spread": spread.tolist(), "offset": offset.tolist(),
                    "spread_min": float(spread.min()), "spread_max": float(spread.max()),
                    "offset_max_abs": float(abs(offset[largest])), "offset_max_abs_component": largest})
    return out


def late_blocks(blocks: list[dict[str, Any]], late_start: int) -> list[dict[str, Any]]:
    """The blocks of `block_report` that start at or after the late frames' first frame (`late_frames`)."""
    return [b for b in blocks if b["frames"][0] >= late_start]


def block_extremes(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Over `blocks`: the lowest and highest spread ratio and the largest |offset| of any top component, or
    None and a reason when there are none (a horizon whose late frames start inside its only block)."""
    if not blocks:
        return {"blocks": 0, "spread_min": None, "spread_max": None, "offset_max_abs": None,
                "reason": "no block starts after the settling time"}
    return {"blocks": len(blocks), "spread_min": min(b["spread_min"] for b in blocks),
            "spread_max": max(b["spread_max"] for b in blocks),
            "offset_max_abs": max(b["offset_max_abs"] for b in blocks)}


def data_stretches(real: np.ndarray, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """[count, length, k]: stretches of the training sequence [N, k] from uniform random starts, wrapping round
    its end. Wrapping makes every frame of a stretch uniform over the whole sequence, so a block's moments
    scatter around the data's by sampling noise alone; stretches cut without it would put the first block in
    the sequence's first minutes more often than its last, a bias that more samples never remove."""
    starts = rng.integers(0, len(real), count)
    return real[(starts[:, None] + np.arange(length)) % len(real)]


def block_floor(real: np.ndarray, count: int, length: int, block: int, components: int, late_start: int,
                draws: int, seed: int) -> dict[str, Any]:
    """What a generator whose samples are drawn like the data scores on the late blocks' extremes
    (`block_extremes` of `late_blocks`) with `count` samples of `length` frames: mean and std over `draws` sets
    of `data_stretches`. With few samples this floor is far from the ideal 1 and 0 (16 samples of the demo
    world's codes: largest late |offset| 0.29 ± 0.08 std, spread down to 0.88), so goals on these figures can
    only be read against it and with enough samples."""
    if all(start < late_start for start in range(0, length, block)):   # no late block: nothing to draw
        return {"samples": count, "draws": draws, "reason": block_extremes([])["reason"]}
    rng = np.random.default_rng(seed)
    extremes = [block_extremes(late_blocks(block_report(data_stretches(real, count, length, rng), real, length,
                                                        block, components), late_start))
                for _ in range(draws)]
    return {"samples": count, "draws": draws,
            **{key: {"mean": float(np.mean([e[key] for e in extremes])),
                     "std": float(np.std([e[key] for e in extremes]))}
               for key in ("spread_min", "spread_max", "offset_max_abs")}}


# -------------------------------------------------------------------------------------------- late frames

def late_frames(length: int, fps: float, settle_seconds: float) -> tuple[int, int]:
    """[start, stop) of the late frames of a `length`-frame horizon: after the settling time, or its second half
    when that starts earlier (a 250-frame horizon has nothing after 10 s)."""
    return min(to_frames(settle_seconds, fps), length // 2), length


# ------------------------------------------------------------------------------------------- slow-band power

def slow_band_nperseg(fps: float, low_hz: float) -> int:
    """Welch segment length that resolves `low_hz`: fps / low_hz frames (1,250 at 25 fps for 0.02 Hz). The
    small tolerance keeps 25 / 0.02 = 1250.0000000000002 from becoming 1,251."""
    return math.ceil(fps / low_hz - 1e-6)


def welch_segments(length: int, nperseg: int) -> int:
    """Half-overlapping Welch segments in `length` frames (0 when shorter than one segment)."""
    return 0 if length < nperseg else (length - nperseg) // (nperseg - nperseg // 2) + 1


def welch_psd(trajectories: np.ndarray, fps: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies [F], PSD [F, k]) averaged over the trajectories [B, T, k] (or one [T, k]) and their
    half-overlapping Hann segments of `nperseg` frames, each segment's mean removed (so the power of an
    offset, which the blocks measure, stays out of the spectrum)."""
    trajectories = np.asarray(trajectories, dtype=np.float64)
    if trajectories.ndim == 2:
        trajectories = trajectories[None]
    frequencies, psd = welch(trajectories, fs=fps, nperseg=nperseg, axis=1)
    return frequencies, psd.mean(0)


def band_power(frequencies: np.ndarray, psd: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Power [k] of a PSD [F, k] in the bins whose frequency lies in `band` (inclusive, with a rounding
    tolerance so that 15 x 0.02 Hz counts as 0.3 Hz)."""
    low, high = band
    step = frequencies[1] - frequencies[0]
    inside = (frequencies >= low - 1e-6 * step) & (frequencies <= high + 1e-6 * step)
    return psd[inside].sum(0) * step


def slow_band_report(late: np.ndarray, real: np.ndarray, fps: float, band: tuple[float, float],
                     components: int, min_segments: int) -> dict[str, Any]:
    """Slow-band power of the late frames [B, L, k] and of the training sequence [N, k], top `components`:
    "generated", "data" and their ratio "power_db" = 10 log10(generated / data), or "power_db": None and a
    "reason" when a side is too short (see the module docstring: segments of fps / band[0] frames, at least
    one per sample and `min_segments` in all on each side)."""
    nperseg = slow_band_nperseg(fps, band[0])
    out: dict[str, Any] = {"band_hz": list(band), "nperseg": nperseg}
    generated_segments = len(late) * welch_segments(late.shape[1], nperseg)
    data_segments = welch_segments(len(real), nperseg)
    reasons = []
    if late.shape[1] < nperseg:
        reasons.append(f"each sample has {late.shape[1]} late frames; resolving {band[0]:g} Hz needs {nperseg} "
                       f"({nperseg / fps:g} s)")
    elif generated_segments < min_segments:
        reasons.append(f"the samples hold {generated_segments} Welch segments of {nperseg} frames; "
                       f"{min_segments} needed")
    if data_segments < min_segments:
        needed = nperseg + (min_segments - 1) * (nperseg - nperseg // 2)
        reasons.append(f"the training sequence has {len(real)} frames ({len(real) / fps:.0f} s); {min_segments} "
                       f"half-overlapping {nperseg / fps:g}-s Welch segments need {needed} ({needed / fps:.0f} s)")
    if reasons:
        return {**out, "power_db": None, "reason": "; ".join(reasons)}
    generated = band_power(*welch_psd(late[..., :components], fps, nperseg), band)
    data = band_power(*welch_psd(real[:, :components], fps, nperseg), band)
    return {**out, "segments": {"generated": generated_segments, "data": data_segments},
            "power_db": (10 * np.log10(generated / data)).tolist(), "generated": generated.tolist(),
            "data": data.tolist()}


# -------------------------------------------------------------------------------------------- autocorrelation

def autocorrelation(trajectories: np.ndarray, lag: int) -> np.ndarray:
    """Autocorrelation [k] at `lag` frames of trajectories [B, T, k] (or one [T, k]), pooled: centred on the
    mean over all samples and frames and divided by the pooled variance, so that samples which each keep to
    their own level count as persistent motion (as the slow motion of the data does)."""
    x = np.asarray(trajectories, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    x = x - x.reshape(-1, x.shape[-1]).mean(0)
    variance = (x ** 2).reshape(-1, x.shape[-1]).mean(0)
    products = (x[:, :-lag] * x[:, lag:]).reshape(-1, x.shape[-1]).mean(0) if lag else variance
    return products / np.where(variance > 0, variance, 1.0)


def autocorrelation_report(late: np.ndarray, real: np.ndarray, lags: tuple[float, ...], fps: float,
                           components: int) -> dict[str, dict[str, Any]]:
    """{lag seconds: {"frames", "generated" [components], "data" [components]}}. A side whose trajectories are
    shorter than twice the lag is None, with a "reason" (fewer pairs than the lag spans is too few to trust)."""
    out: dict[str, dict[str, Any]] = {}
    for seconds in lags:
        lag = to_frames(seconds, fps)
        entry: dict[str, Any] = {"frames": lag}
        reasons = []
        for side, x in (("generated", late), ("data", real[None])):
            if x.shape[1] >= 2 * lag:
                entry[side] = autocorrelation(x[..., :components], lag).tolist()
            else:
                entry[side] = None
                reasons.append(f"{side}: {x.shape[1]} {'late ' if side == 'generated' else ''}frames, a "
                               f"{seconds:g}-s lag needs {2 * lag}")
        if reasons:
            entry["reason"] = "; ".join(reasons)
        out[seconds_key(seconds)] = entry
    return out


# ------------------------------------------------------------------------------------------------- looping

def looping_report(trajectories: np.ndarray, real: np.ndarray, length: int,
                   config: MotionMetricsConfig = MotionMetricsConfig()) -> dict[str, Any]:
    """`looping_score` of the first `length` frames against the training sequence cut into `length`-frame
    pieces, or "score": None and a "reason" (too short a horizon, or a training sequence shorter than it: the
    score compares equally long stretches)."""
    if length < config.min_loop_frames():
        return {"score": None, "reason": f"{length} frames; the looping score needs {config.min_loop_frames()}"}
    if len(real) < length:
        return {"score": None, "reason": f"the training sequence has {len(real)} frames, fewer than {length}"}
    return asdict(looping_score(trajectories[:, :length], chunks(real, length), config))


# -------------------------------------------------------------------------------------------- the report

def horizon_report(trajectories: np.ndarray, real: np.ndarray, fps: float, config: HorizonConfig = HorizonConfig(),
                   metrics: MotionMetricsConfig = MotionMetricsConfig()) -> dict[str, dict[str, Any]]:
    """Every long-horizon figure, per horizon, as a JSON-ready dict {"250": {...}, "1500": {...}}.

    `trajectories` [B, T, k]: G's long samples from its initial state (frame 0 = `init`), in PCA coordinates;
    `real` [N, k]: the training sequence. A horizon longer than the samples is {"frames": T, "reason": ...}.
    Window FDs by start time are computed once (they depend on the start, not the horizon) and each horizon
    lists the starts up to its end, the later ones as null with a reason.
    """
    trajectories = np.asarray(trajectories)
    real_windows = reference_windows(real, metrics)
    reference = Gaussian.fit(real_windows)
    by_start = window_fd_by_start(trajectories, reference, config.starts, fps, metrics)
    floor = window_fd_floor(real_windows, reference, len(trajectories), config.floor_draws, config.floor_seed)
    return {str(length): _one_horizon(trajectories, real, fps, length, by_start, floor, config, metrics)
            for length in config.horizons}


def _one_horizon(trajectories: np.ndarray, real: np.ndarray, fps: float, length: int,
                 by_start: dict[str, dict[str, Any]], floor: dict[str, Any], config: HorizonConfig,
                 metrics: MotionMetricsConfig) -> dict[str, Any]:
    if length > trajectories.shape[1]:
        return {"frames": length, "reason": f"the long samples have {trajectories.shape[1]} frames, fewer than "
                                            f"this horizon (raise --long-frames)"}
    start, stop = late_frames(length, fps, config.settle_seconds)
    late = trajectories[:, start:stop]
    block = to_frames(config.block_seconds, fps)
    blocks = block_report(trajectories, real, length, block, config.block_components)
    return {
        "frames": length,
        "seconds": length / fps,
        "samples": len(trajectories),
        "window_fd": {key: entry if entry["frame"] <= length else
                      {"frame": entry["frame"], "fd": None, "reason": f"starts after this {length}-frame horizon"}
                      for key, entry in by_start.items()},
        "window_fd_floor": floor,
        "blocks": blocks,
        "late_frames": [start, stop],
        "late_blocks": block_extremes(late_blocks(blocks, start)),
        "block_floor": block_floor(real, len(trajectories), length, block, config.block_components, start,
                                   config.floor_draws, config.floor_seed),
        "slow_band": slow_band_report(late, real, fps, config.slow_band, config.psd_components,
                                      config.psd_min_segments),
        "autocorrelation": autocorrelation_report(late, real, config.lags, fps, config.acf_components),
        "looping": looping_report(trajectories, real, length, metrics),
    }
