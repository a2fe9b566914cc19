"""The demo world's renderer and talking trajectories (svgan.world.renderer)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from svgan.runtime.video import VideoReader
from svgan.world.renderer import (
    STATE_FIELDS,
    STATE_RANGES,
    IdentityParams,
    StateParams,
    random_identity,
    random_state,
    render_dataset,
    render_face,
    render_video,
    talking_trajectory,
)

# A light-skinned default identity, so that "dark" pixels can only be the mouth and "white" ones only the sclera.
PLAIN = IdentityParams()


def region(image: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    return image[round(rows[0] * h):round(rows[1] * h), round(cols[0] * w):round(cols[1] * w)].astype(int)


def dark_mouth_pixels(image: np.ndarray) -> tuple[int, int]:
    """(count, height in rows) of dark pixels in the lower-middle of the face."""
    dark = region(image, (0.58, 0.8), (0.35, 0.65)).sum(axis=2) < 250
    return int(dark.sum()), int(dark.any(axis=1).sum())


def sclera_pixels(image: np.ndarray) -> int:
    return int((region(image, (0.38, 0.52), (0.3, 0.7)).min(axis=2) > 215).sum())


@pytest.mark.parametrize("size", [64, 128])
def test_shape_dtype_and_determinism(size):
    a = render_face(random_identity(7), random_state(7), size)
    b = render_face(random_identity(7), random_state(7), size)
    c = render_face(random_identity(8), random_state(8), size)
    assert a.shape == (size, size, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5


def test_dataset_is_the_same_whatever_the_number_of_render_processes():
    serial = render_dataset(40, 32, seed=11)
    parallel = render_dataset(40, 32, seed=11, workers=3)
    for a, b in zip((serial.images, serial.states, serial.identities),
                    (parallel.images, parallel.states, parallel.identities)):
        np.testing.assert_array_equal(a, b)
    assert len({img.tobytes() for img in serial.images}) == 40  # each face a fresh identity in a fresh state


def test_antialiased_edges():
    image = render_face(PLAIN, StateParams(), 64)
    colours = {tuple(p) for p in image.reshape(-1, 3)}
    assert len(colours) > 100  # flat fills alone would give a dozen colours; edges are blended


def test_mouth_grows_with_mouth_open():
    counts, heights = zip(*(dark_mouth_pixels(render_face(PLAIN, StateParams(mouth_open=m), 128))
                            for m in (0.0, 0.5, 1.0)))
    assert counts[0] < counts[1] < counts[2]
    assert heights[0] < heights[1] < heights[2]
    assert counts[0] < 0.2 * counts[2]


def test_blink_closes_the_eyes():
    open_eyes = sclera_pixels(render_face(PLAIN, StateParams(blink=0.0), 128))
    half = sclera_pixels(render_face(PLAIN, StateParams(blink=0.5), 128))
    closed = sclera_pixels(render_face(PLAIN, StateParams(blink=1.0), 128))
    assert open_eyes > 20  # two small eyes of about 13x6 pixels, less the irises
    assert closed < half < open_eyes
    assert closed <= 0.05 * open_eyes


def test_gaze_and_pose_move_pixels():
    neutral = render_face(PLAIN, StateParams(), 64).astype(int)
    for change in ({"gaze_x": 1.0}, {"yaw": 0.3}, {"pitch": 0.2}, {"roll": 0.15}, {"brow_raise": 1.0},
                   {"smile": 1.0}):
        moved = render_face(PLAIN, StateParams(**change), 64)
        assert np.abs(moved - neutral).max() > 60, change


def test_identities_differ_in_colour():
    means = np.array([render_face(random_identity(seed), StateParams(), 64).reshape(-1, 3).mean(axis=0)
                      for seed in range(8)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(8, 1)]
    assert distances.min() > 3
    styles = {random_identity(seed).hair_style for seed in range(40)}
    assert len(styles) == 4


def test_random_state_in_range():
    rng = np.random.default_rng(0)
    states = np.array([dataclasses.astuple(random_state(rng)) for _ in range(500)])
    low, high = np.array([STATE_RANGES[name] for name in STATE_FIELDS]).T
    assert np.all((low <= states) & (states <= high))
    blink = states[:, STATE_FIELDS.index("blink")]
    assert 0.05 < (blink == 1).mean() < 0.3  # closed eyes are common enough to be learned


def autocorrelation(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return np.array([np.dot(x[:-lag], x[lag:]) for lag in lags]) / np.dot(x, x)


def test_talking_trajectory_dynamics():
    fps = 25
    states, names = talking_trajectory(300, fps, seed=3)
    assert states.shape == (300 * fps, len(STATE_FIELDS)) and states.dtype == np.float32 and names == STATE_FIELDS
    np.testing.assert_array_equal(states, talking_trajectory(300, fps, seed=3)[0])
    assert not np.array_equal(states, talking_trajectory(300, fps, seed=4)[0])
    for name, column in zip(names, states.T):
        low, high = STATE_RANGES[name]
        assert low <= column.min() and column.max() <= high, name
        assert column.std() > 0.03, name  # every component moves

    blink = states[:, names.index("blink")]
    assert 0.02 <= (blink > 0.25).mean() <= 0.15
    assert blink.max() > 0.95

    mouth = states[:, names.index("mouth_open")]
    power = np.abs(np.fft.rfft(mouth - mouth.mean())) ** 2
    freq = np.fft.rfftfreq(len(mouth), 1 / fps)
    assert power[(freq >= 3) & (freq <= 5)].sum() > 0.3 * power[freq > 0.5].sum()  # syllables
    assert np.abs(autocorrelation(mouth, np.arange(2 * fps, 10 * fps))).max() < 0.2  # never loops


def test_render_video_roundtrip(tmp_path):
    states, _ = talking_trajectory(1.0, 25, seed=0)
    path = tmp_path / "talk.mp4"
    assert render_video(random_identity(0), states, 64, path, fps=25) == 25
    with VideoReader(path) as reader:
        frames = list(reader)
    assert len(frames) == 25 and frames[0].shape == (64, 64, 3)
    expected = render_face(random_identity(0), StateParams(*states[0].tolist()), 64)
    assert np.abs(frames[0].astype(int) - expected).mean() < 6  # H.264 at crf 20 stays close
