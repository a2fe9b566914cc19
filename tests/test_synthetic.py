"""Synthetic W+ sequences (svgan.training.synthetic): determinism, shapes, rank, dynamics, speed, file layout."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from svgan.training.synthetic import (
    STATE_NAMES,
    SyntheticConfig,
    identity_mean,
    make_sequence,
    motion_basis,
    save_npz,
    simulate_state,
)

K = len(STATE_NAMES)


def autocorrelation(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return np.array([np.dot(x[:-lag], x[lag:]) for lag in lags]) / np.dot(x, x)


def test_deterministic_from_seed() -> None:
    cfg = SyntheticConfig(seconds=8)
    a, b = make_sequence(cfg), make_sequence(cfg)
    assert a["wplus"].tobytes() == b["wplus"].tobytes()
    assert a["state"].tobytes() == b["state"].tobytes()
    other_motion = make_sequence(dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(other_motion["state"], a["state"])
    other_actor = make_sequence(dataclasses.replace(cfg, identity_seed=1))
    np.testing.assert_array_equal(other_actor["state"], a["state"])  # same motion ...
    assert not np.allclose(other_actor["wplus"], a["wplus"])  # ... on another actor


def test_shapes_and_dtypes() -> None:
    cfg = SyntheticConfig(seconds=2, fps=30, n_styles=14)  # a 256x256 generator has 14 styles
    seq = make_sequence(cfg)
    assert seq["wplus"].shape == (60, 14, 512) and seq["wplus"].dtype == np.float32
    assert seq["state"].shape == (60, K) and seq["state"].dtype == np.float32
    assert seq["fps"] == 30.0 and isinstance(seq["fps"], float)
    assert seq["state_names"] == STATE_NAMES
    assert json.loads(seq["provenance"])["config"]["n_styles"] == 14
    assert identity_mean(3, 14, 512).shape == motion_basis(cfg).shape[1:] == (14, 512)


def test_codes_are_mean_plus_basis_times_state() -> None:
    cfg = SyntheticConfig(seconds=2, state_noise=0, wplus_noise=0)
    seq = make_sequence(cfg)
    expected = identity_mean(cfg.identity_seed) + np.einsum("nk,ksd->nsd", seq["state"], motion_basis(cfg))
    np.testing.assert_allclose(seq["wplus"], expected, atol=1e-5)


def test_about_k_principal_components() -> None:
    """The motion spans K directions of W+: the top K explain >= 99% of the variance, then the spectrum drops."""
    seq = make_sequence(SyntheticConfig(seconds=20, wplus_noise=0.002))
    codes = seq["wplus"].reshape(len(seq["wplus"]), -1).astype(np.float64)
    codes -= codes.mean(axis=0)
    # Squared singular values of the centred codes, via the (frames x frames) Gram matrix: much faster than
    # an SVD of 500 x 9216 and the same numbers.
    variances = np.linalg.eigvalsh(codes @ codes.T)[::-1]
    explained = np.cumsum(variances) / variances.sum()
    assert explained[K - 1] >= 0.99
    assert variances[K - 1] > 30 * variances[K]  # the K-th is motion, the (K+1)-th noise


def test_blinks_are_sparse() -> None:
    blink = simulate_state(SyntheticConfig(seconds=120))[:, STATE_NAMES.index("blink")]
    in_blink = blink > 0.1
    assert 0.02 <= in_blink.mean() <= 0.15
    assert blink.max() == pytest.approx(1, abs=0.1)
    n_blinks = np.count_nonzero(np.diff(in_blink.astype(int)) == 1)
    assert 0.15 * 120 <= n_blinks <= 0.45 * 120


def test_talking_is_rhythmic_but_does_not_loop() -> None:
    fps = 25
    mouth = simulate_state(SyntheticConfig(seconds=120, fps=fps))[:, STATE_NAMES.index("mouth_open")]
    short = autocorrelation(mouth, np.arange(4, 9))  # 0.16-0.32 s: one syllable at ~4 Hz
    assert short.max() > 0.2
    long_lags = np.arange(2 * fps, 10 * fps)
    assert np.abs(autocorrelation(mouth, long_lags)).max() < 0.25
    # The same measure flags a pure 4 Hz oscillation, i.e. it would catch a looping sequence.
    sine = np.sin(2 * np.pi * 4 * np.arange(len(mouth)) / fps)
    assert np.abs(autocorrelation(sine, long_lags)).max() > 0.9


def test_second_identity_offset_is_nearly_orthogonal_to_motion() -> None:
    """What the offset trick relies on: two actors differ mostly outside the span of the motion directions."""
    cfg = SyntheticConfig()
    basis = motion_basis(cfg).reshape(K, -1).astype(np.float64)
    q, _ = np.linalg.qr(basis.T)
    offset = (identity_mean(1) - identity_mean(0)).reshape(-1).astype(np.float64)
    assert np.linalg.norm(q.T @ offset) < 0.1 * np.linalg.norm(offset)


def test_ten_minutes_is_fast() -> None:
    start = time.perf_counter()
    seq = make_sequence(SyntheticConfig(seconds=600))
    elapsed = time.perf_counter() - start
    assert seq["wplus"].shape == (15_000, 18, 512)
    assert elapsed < 12, f"{elapsed:.1f} s"  # ~3-4 s on 2 cores; half of it is faulting in 553 MB


def test_save_npz(tmp_path: Path) -> None:
    seq = make_sequence(SyntheticConfig(seconds=2))
    path = tmp_path / "train.npz"
    save_npz(path, seq)
    assert [p.name for p in tmp_path.iterdir()] == ["train.npz"]  # no temporary left behind
    with np.load(path) as data:  # no allow_pickle
        assert set(data.files) == {"wplus", "fps", "state", "state_names", "provenance"}
        np.testing.assert_array_equal(data["wplus"], seq["wplus"])
        assert data["wplus"].dtype == np.float32
        assert float(data["fps"]) == 25.0
        assert tuple(data["state_names"]) == STATE_NAMES
        assert json.loads(str(data["provenance"]))["source"] == "svgan.training.synthetic"


@pytest.mark.parametrize("field, value", [("fps", 0), ("blink_hz", -1), ("wplus_noise", -0.1), ("seconds", 0)])
def test_invalid_config(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})
