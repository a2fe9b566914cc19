"""Synthetic W+ sequences with known, talking-head-like dynamics (numpy only).

No pretrained StyleGAN/pSp weights can be downloaded here, yet training, evaluation, tests and benchmarks need W+
sequences of realistic shape and character. This module simulates a low-dimensional facial state over time and maps
it linearly into W+:

    w_t = identity_mean + sum_i state_t[i] * basis[i] + noise_t          (every term [n_styles, style_dim])

State components (`STATE_NAMES`), all roughly O(1):

* talking: ``mouth_open`` follows a syllable oscillator (~4 Hz, with a randomly wandering rate and a random depth per
  syllable) gated by a phrase envelope (phrases ~2.5 s, pauses ~0.8 s), so it is quasi-periodic but never loops;
  ``lip_round`` (vowel shape) wanders quickly while speaking; ``smile`` and ``brow_raise`` drift slowly.
* blinks: ``blink`` is 0 except for sparse Poisson events (~0.3 Hz), each a 150-250 ms bump reaching 1.
* gaze: ``gaze_x``, ``gaze_y`` hold still and jump (saccades, ~0.5 Hz).
* head pose: ``yaw``, ``pitch``, ``roll`` are Ornstein-Uhlenbeck processes (time constants of seconds).

Slow dynamics, off by default (existing sequences stay byte-identical): real talking heads also move on the scale
of 5-20 s and change "mood" every half minute or so, which is what a recurrent generator that settles into one
narrow regime misses (DESIGN §5b) and what `horizon_metrics` measures. ``slow_drift_std`` adds a slow OU head
drift (yaw, pitch, roll with time constants 2x, 1x, 0.5x ``slow_drift_tau``: 20, 10, 5 s by default);
``moods`` > 1 adds regime switches: a Markov chain over that many moods, each a fixed offset of smile,
brow_raise, yaw and pitch, dwelling 0.5-1.5x ``mood_seconds`` (20-60 s) per visit and moving on to any other
mood with equal probability, the change eased over ~1 s.

The basis mimics where StyleGAN2 keeps these attributes: pose mostly in the coarse styles, mouth and eyes in the
middle ones, barely anything in the fine (colour/texture) styles. It depends only on `basis_seed`, i.e. it plays the
role of the generator's semantics and is shared by every identity, while `identity_seed` picks the mean code (the
"actor"). So two identities differ by an offset that is nearly orthogonal to the motion directions: exactly the
assumption behind the paper's offset trick, which tests can check with `identity_mean`.

Random streams: each purpose (each process, the noise, the identity, the basis) draws from its own generator seeded
with ``[seed, tag]``, so changing one knob (say the blink rate) leaves every other signal unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np

from svgan.atomic import atomic_write

__all__ = [
    "STATE_NAMES",
    "SyntheticConfig",
    "identity_mean",
    "motion_basis",
    "simulate_state",
    "make_sequence",
    "save_npz",
]

STATE_NAMES: tuple[str, ...] = (
    "mouth_open",
    "lip_round",
    "smile",
    "brow_raise",
    "blink",
    "gaze_x",
    "gaze_y",
    "yaw",
    "pitch",
    "roll",
)

# Where each state component lives in W+: centre and width of a bump over the style index, in units of the 18
# styles of a 1024x1024 StyleGAN2 (rescaled for other n_styles). Pose: coarse styles; mouth: 3-6; eyes: 5-7.
_STYLE_PROFILE = {
    "mouth_open": (4.5, 1.5),
    "lip_round": (4.5, 1.5),
    "smile": (4.5, 1.5),
    "brow_raise": (6.0, 1.5),
    "blink": (6.0, 1.5),
    "gaze_x": (6.0, 1.5),
    "gaze_y": (6.0, 1.5),
    "yaw": (1.5, 1.5),
    "pitch": (1.5, 1.5),
    "roll": (1.5, 1.5),
}
_PROFILE_FLOOR = 0.03  # every attribute leaks a little into every style (as lighting/shading does)

# Tags separating the random streams (see module docstring).
_TAG_IDENTITY, _TAG_BASIS, _TAG_SPEECH, _TAG_BLINK, _TAG_GAZE, _TAG_DRIFT, _TAG_NOISE, _TAG_SLOW, _TAG_MOOD = range(9)

# The slow-dynamics fields: left out of the provenance while all are off, so that files written before they
# existed and files written now with the defaults are the same bytes.
_SLOW_FIELDS = ("slow_drift_std", "slow_drift_tau", "moods", "mood_seconds", "mood_shift")
_MOOD_COMPONENTS = ("smile", "brow_raise", "yaw", "pitch")   # what a mood shifts (expression and head carriage)
_MOOD_EASE_SECONDS = 1.0   # moods change over about this long, not in one frame


@dataclass(frozen=True)
class SyntheticConfig:
    """Length, shape, seeds and dynamics of a synthetic W+ sequence. Times are in seconds, rates in Hz."""

    seconds: float = 60.0
    fps: float = 25.0
    n_styles: int = 18  # 2 * log2(resolution) - 2: 18 for 1024x1024
    style_dim: int = 512
    seed: int = 0  # the motion
    identity_seed: int = 0  # the mean code (the actor), see `identity_mean`
    basis_seed: int = 2021  # the motion directions in W+, shared by all identities

    # talking
    syllable_hz: float = 4.0  # mean syllable rate
    syllable_jitter: float = 0.25  # relative std of the (slowly wandering) syllable rate
    phrase_seconds: float = 2.5  # mean phrase length (gamma distributed, shape 4)
    pause_seconds: float = 0.8  # mean pause length (at least 0.2 s, exponential above)
    # blinks
    blink_hz: float = 0.3  # Poisson rate (with a 0.3 s refractory gap)
    blink_seconds: tuple[float, float] = (0.15, 0.25)  # duration, uniform in this range
    # gaze
    saccade_hz: float = 0.5
    # slow drifts (Ornstein-Uhlenbeck time constants)
    pose_tau: float = 3.0  # yaw, pitch, roll
    expression_tau: float = 4.0  # smile, brow_raise

    # slow dynamics (off by default; see the module docstring)
    slow_drift_std: float = 0.0  # std of the slow yaw drift (pitch 0.6x, roll 0.35x); 0: off
    slow_drift_tau: float = 10.0  # its time constant: yaw 2x, pitch 1x, roll 0.5x
    moods: int = 0  # regime switches between this many moods (>= 2); 0: off
    mood_seconds: float = 40.0  # mean dwell in a mood; each dwell is uniform in 0.5-1.5x this
    mood_shift: float = 1.0  # std of a mood's offset of each shifted component, in that component's own stds

    # mapping to W+
    identity_std: float = 0.5  # std of the identity mean's coordinates
    motion_scale: float = 0.2  # RMS per coordinate of a unit state change, on its most affected style
    state_noise: float = 0.02  # per-frame jitter added to every state component before mapping (stays low-rank)
    wplus_noise: float = 0.005  # per-frame isotropic noise per W+ coordinate (full rank, like pSp's jitter)

    def __post_init__(self) -> None:
        positive = ("seconds", "fps", "syllable_hz", "phrase_seconds", "pause_seconds", "blink_hz", "saccade_hz",
                    "pose_tau", "expression_tau", "slow_drift_tau", "mood_seconds")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"SyntheticConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("state_noise", "wplus_noise", "syllable_jitter", "slow_drift_std", "mood_shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.blink_seconds[0] <= self.blink_seconds[1]:
            raise ValueError(f"SyntheticConfig.blink_seconds needs 0 < low <= high: {self.blink_seconds}")
        if self.moods == 1 or self.moods < 0:
            raise ValueError(f"SyntheticConfig.moods must be 0 (off) or >= 2 (a chain needs somewhere to go), "
                             f"got {self.moods}")

    @property
    def slow_dynamics(self) -> bool:
        """Whether slow drift or mood switches are on."""
        return self.slow_drift_std > 0 or self.moods > 0

    @property
    def n_frames(self) -> int:
        """Number of frames: seconds x fps, rounded."""
        return round(self.seconds * self.fps)


def identity_mean(seed: int, n_styles: int = 18, style_dim: int = 512, std: float = 0.5) -> np.ndarray:
    """The W+ code of a neutral-looking actor, [n_styles, style_dim] float32.

    Like real W+ codes (which are close to W, i.e. one vector repeated), the rows share a common vector and differ by
    a smaller per-style part.
    """
    rng = np.random.default_rng([seed, _TAG_IDENTITY])
    shared = rng.standard_normal(style_dim)
    per_style = rng.standard_normal((n_styles, style_dim))
    return (std * (shared + 0.5 * per_style) / np.sqrt(1.25)).astype(np.float32)


def motion_basis(cfg: SyntheticConfig) -> np.ndarray:
    """Direction in W+ of each state component, [len(STATE_NAMES), n_styles, style_dim] float32.

    Row i on style s has RMS ``motion_scale * profile_i(s)``, where the profile is a bump over the style index
    (`_STYLE_PROFILE`) on top of a small floor; the direction within a style is a shared random vector plus a
    per-style part, so each component moves the styles it touches coherently.
    """
    rng = np.random.default_rng([cfg.basis_seed, _TAG_BASIS])
    k, n_styles, dim = len(STATE_NAMES), cfg.n_styles, cfg.style_dim
    style_index = np.arange(n_styles) * (18 / n_styles)  # profile positions are given for 18 styles
    basis = np.empty((k, n_styles, dim))
    for i, name in enumerate(STATE_NAMES):
        centre, width = _STYLE_PROFILE[name]
        profile = _PROFILE_FLOOR + (1 - _PROFILE_FLOOR) * np.exp(-0.5 * ((style_index - centre) / width) ** 2)
        direction = rng.standard_normal(dim) + 0.5 * rng.standard_normal((n_styles, dim))
        direction /= np.sqrt(np.mean(direction**2, axis=1, keepdims=True))  # unit RMS per style
        basis[i] = cfg.motion_scale * profile[:, None] * direction
    return basis.astype(np.float32)


def _ornstein_uhlenbeck(rng: np.random.Generator, n: int, dt: float, taus: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """[n, m] stationary OU processes with time constants `taus` (s) and marginal stds `stds`, exact discretisation."""
    decay = np.exp(-dt / taus)
    kicks = rng.standard_normal((n, len(taus))) * stds * np.sqrt(1 - decay**2)
    out = np.empty((n, len(taus)))
    out[0] = rng.standard_normal(len(taus)) * stds  # start in the stationary distribution
    for t in range(1, n):
        out[t] = decay * out[t - 1] + kicks[t]
    return out


def _smooth(signal: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """Moving average with a Hann window of `seconds` (edges padded by repetition), along axis 0."""
    taps = max(1, round(seconds * fps)) | 1  # odd, so the output is centred
    window = np.hanning(taps + 2)[1:-1]
    window /= window.sum()
    pad = taps // 2
    padded = np.pad(signal, [(pad, pad)] + [(0, 0)] * (signal.ndim - 1), mode="edge")
    return np.apply_along_axis(lambda x: np.convolve(x, window, mode="valid"), 0, padded)


def _speech_envelope(rng: np.random.Generator, cfg: SyntheticConfig, n: int) -> np.ndarray:
    """[n] in [0, 1]: alternating pauses (0) and phrases (each with its own loudness), with soft on- and offsets."""
    envelope = np.zeros(n)
    speaking = bool(rng.random() < 0.5)
    start = 0
    while start < n:
        if speaking:
            seconds = rng.gamma(4.0, cfg.phrase_seconds / 4.0)
        else:
            seconds = 0.2 + rng.exponential(max(cfg.pause_seconds - 0.2, 1e-3))
        stop = start + max(1, round(seconds * cfg.fps))
        if speaking:
            envelope[start:stop] = rng.uniform(0.6, 1.0)
        start, speaking = stop, not speaking
    return _smooth(envelope, cfg.fps, 0.15)


def _talking(cfg: SyntheticConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mouth_open, lip_round), each [n]."""
    rng = np.random.default_rng([cfg.seed, _TAG_SPEECH])
    dt = 1 / cfg.fps
    envelope = _speech_envelope(rng, cfg, n)
    # Syllables: a phase whose rate wanders (OU, 0.5 s), so that cycles drift out of step within a second or two;
    # each cycle opens the mouth to its own depth (stressed vs unstressed syllables) and closes it in between.
    wander = _ornstein_uhlenbeck(rng, n, dt, np.array([0.5]), np.array([cfg.syllable_jitter]))[:, 0]
    rate = cfg.syllable_hz * np.maximum(1 + wander, 0.3)
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(rate) * dt
    cycle = (phase // (2 * np.pi)).astype(np.int64)
    cycle -= cycle[0]
    depth = rng.uniform(0.4, 1.0, cycle[-1] + 1)[cycle]
    mouth_open = envelope * depth * 0.5 * (1 - np.cos(phase))
    # Vowel shape: fast random wandering, visible only while speaking.
    lip_round = envelope * _ornstein_uhlenbeck(rng, n, dt, np.array([0.25]), np.array([0.5]))[:, 0]
    return mouth_open, lip_round


def _blinks(cfg: SyntheticConfig, n: int) -> np.ndarray:
    """[n] in [0, 1]: a sin^2 bump per blink; blinks start as a Poisson process with a 0.3 s refractory gap."""
    rng = np.random.default_rng([cfg.seed, _TAG_BLINK])
    refractory = 0.3
    times = np.arange(n) / cfg.fps
    blink = np.zeros(n)
    start = rng.exponential(1 / cfg.blink_hz)
    while start < times[-1]:
        duration = rng.uniform(*cfg.blink_seconds)
        inside = slice(int(np.ceil(start * cfg.fps)), int(np.floor((start + duration) * cfg.fps)) + 1)
        blink[inside] = np.sin(np.pi * (times[inside] - start) / duration) ** 2
        start += duration + refractory + rng.exponential(max(1 / cfg.blink_hz - refractory - duration, 1e-3))
    return blink


def _gaze(cfg: SyntheticConfig, n: int) -> np.ndarray:
    """[n, 2] (x, y): fixations at random targets, switched by saccades (Poisson) lasting about two frames."""
    rng = np.random.default_rng([cfg.seed, _TAG_GAZE])
    gaze = np.empty((n, 2))
    start = 0
    while start < n:
        stop = start + max(1, round(rng.exponential(1 / cfg.saccade_hz) * cfg.fps))
        gaze[start:stop] = rng.standard_normal(2) * (0.4, 0.2)  # people look sideways more than up and down
        start = stop
    return _smooth(gaze, cfg.fps, 0.08)


def _slow_drift(cfg: SyntheticConfig, n: int) -> np.ndarray:
    """[n, 3] slow OU drift of (yaw, pitch, roll): time constants 2x, 1x, 0.5x `slow_drift_tau`, stds in the
    proportions of the fast pose drift (the head turns more than it nods, and nods more than it tilts)."""
    rng = np.random.default_rng([cfg.seed, _TAG_SLOW])
    taus = cfg.slow_drift_tau * np.array([2.0, 1.0, 0.5])
    return _ornstein_uhlenbeck(rng, n, 1 / cfg.fps, taus, cfg.slow_drift_std * np.array([1.0, 0.6, 0.35]))


def _mood_offsets(cfg: SyntheticConfig, n: int, stds: np.ndarray) -> np.ndarray:
    """[n, len(_MOOD_COMPONENTS)] offsets of a Markov chain over `moods` moods. Each mood shifts each component by
    a fixed N(0, (mood_shift x its std)^2) draw; a visit lasts uniform(0.5, 1.5) x `mood_seconds`, then the chain
    moves to one of the other moods, chosen uniformly; changes are eased over `_MOOD_EASE_SECONDS`."""
    rng = np.random.default_rng([cfg.seed, _TAG_MOOD])
    levels = rng.standard_normal((cfg.moods, len(stds))) * cfg.mood_shift * stds
    offsets = np.empty((n, len(stds)))
    mood, start = int(rng.integers(cfg.moods)), 0
    while start < n:
        stop = start + max(1, round(rng.uniform(0.5, 1.5) * cfg.mood_seconds * cfg.fps))
        offsets[start:stop] = levels[mood]
        mood = (mood + 1 + int(rng.integers(cfg.moods - 1))) % cfg.moods   # any mood but this one
        start = stop
    return _smooth(offsets, cfg.fps, _MOOD_EASE_SECONDS)


def _add_slow_dynamics(cfg: SyntheticConfig, columns: dict[str, np.ndarray], stds: dict[str, float]) -> None:
    """Adds the slow drift and the mood offsets to `columns` in place (only the parts that are on)."""
    n = len(columns["yaw"])
    if cfg.slow_drift_std > 0:
        for name, drift in zip(("yaw", "pitch", "roll"), _slow_drift(cfg, n).T, strict=True):
            columns[name] = columns[name] + drift
    if cfg.moods > 0:
        offsets = _mood_offsets(cfg, n, np.array([stds[name] for name in _MOOD_COMPONENTS]))
        for name, offset in zip(_MOOD_COMPONENTS, offsets.T, strict=True):
            columns[name] = columns[name] + offset


def simulate_state(cfg: SyntheticConfig) -> np.ndarray:
    """The noiseless state [n_frames, len(STATE_NAMES)] float32, columns in `STATE_NAMES` order."""
    n = cfg.n_frames
    if n < 2:
        raise ValueError(f"a sequence needs at least 2 frames, got {n} ({cfg.seconds} s at {cfg.fps} fps)")
    mouth_open, lip_round = _talking(cfg, n)
    drift_rng = np.random.default_rng([cfg.seed, _TAG_DRIFT])
    # smile, brow_raise, yaw, pitch, roll: head turns more than it nods, and nods more than it tilts.
    taus = np.array([cfg.expression_tau, cfg.expression_tau / 2, cfg.pose_tau, cfg.pose_tau / 1.5, cfg.pose_tau * 1.5])
    stds = np.array([0.4, 0.3, 0.6, 0.35, 0.2])
    smile, brow_raise, yaw, pitch, roll = _ornstein_uhlenbeck(drift_rng, n, 1 / cfg.fps, taus, stds).T
    gaze_x, gaze_y = _gaze(cfg, n).T
    columns = {
        "mouth_open": mouth_open,
        "lip_round": lip_round,
        "smile": smile,
        "brow_raise": brow_raise,
        "blink": _blinks(cfg, n),
        "gaze_x": gaze_x,
        "gaze_y": gaze_y,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
    }
    if cfg.slow_dynamics:   # skipped entirely when off: adding zeros would turn -0.0 into 0.0
        _add_slow_dynamics(cfg, columns, dict(zip(("smile", "brow_raise", "yaw", "pitch", "roll"), stds, strict=True)))
    return np.stack([columns[name] for name in STATE_NAMES], axis=1).astype(np.float32)


def make_sequence(cfg: SyntheticConfig) -> dict[str, object]:
    """A synthetic training sequence.

    Returns a dict: ``wplus`` float32 [n_frames, n_styles, style_dim]; ``fps`` float; ``state`` float32
    [n_frames, k], the noiseless ground-truth state; ``state_names`` tuple of k str; ``provenance`` str (JSON naming
    this generator and the full config). ``wplus`` is ``identity_mean + (state + state noise) @ basis + W+ noise``.
    """
    state = simulate_state(cfg)
    n, k = state.shape
    mean = identity_mean(cfg.identity_seed, cfg.n_styles, cfg.style_dim, cfg.identity_std).reshape(-1)
    basis = motion_basis(cfg).reshape(k, -1)
    rng = np.random.default_rng([cfg.seed, _TAG_NOISE])
    wplus = np.empty((n, mean.size), np.float32)
    # In chunks of frames: 10 minutes at 25 fps is 15,000 x 9,216 floats (553 MB); temporaries stay small.
    chunk = 1024
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        jittered = state[rows] + cfg.state_noise * rng.standard_normal((rows.stop - start, k), dtype=np.float32)
        block = wplus[rows]
        np.matmul(jittered, basis, out=block)
        block += mean
        if cfg.wplus_noise > 0:
            block += cfg.wplus_noise * rng.standard_normal(block.shape, dtype=np.float32)
    provenance = json.dumps({"source": "svgan.training.synthetic", "config": _provenance_config(cfg)})
    return {
        "wplus": wplus.reshape(n, cfg.n_styles, cfg.style_dim),
        "fps": float(cfg.fps),
        "state": state,
        "state_names": STATE_NAMES,
        "provenance": provenance,
    }


def _provenance_config(cfg: SyntheticConfig) -> dict[str, object]:
    """The config as recorded in a file's provenance: every field, but the slow-dynamics ones only when on
    (absent fields mean their defaults, i.e. off), so sequences written without them keep their bytes."""
    config = dataclasses.asdict(cfg)
    if not cfg.slow_dynamics:
        for name in _SLOW_FIELDS:
            del config[name]
    return config


def save_npz(path: str | os.PathLike[str], seq: dict[str, object]) -> None:
    """Writes `seq` in the layout `svgan-embed` writes, atomically (temporary file, then rename).

    Keys: ``wplus`` float32 [N, n_styles, style_dim], ``fps`` float64 scalar, ``provenance`` str scalar, and here
    also ``state`` float32 [N, k] and ``state_names`` str [k]. Loads with ``np.load(path)`` (no pickle needed).
    Uncompressed: W+ noise does not compress, and loading stays a plain read.
    """
    atomic_write(path, lambda f: np.savez(
        f,
        wplus=np.asarray(seq["wplus"], np.float32),
        fps=np.float64(seq["fps"]),
        state=np.asarray(seq["state"], np.float32),
        state_names=np.array(seq["state_names"], dtype=str),
        provenance=np.array(seq["provenance"], dtype=str),
    ))
