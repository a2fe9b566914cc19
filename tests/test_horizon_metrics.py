"""Long-horizon metrics (DESIGN §5b, `training/horizon_metrics.py`): they tell a generator that settles into a
narrow, offset regime without slow motion from one that keeps the data's statistics, on hand-made trajectories
(no training); nulls come with reasons; `evaluate_run` on a tiny run reports them and draws horizon.png."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svgan.training.evaluate import PLOTS, EvalConfig, evaluate_run, plot_horizon
from svgan.training.horizon_metrics import (HorizonConfig, autocorrelation, band_power, block_floor,
                                            data_stretches, horizon_report, late_blocks, late_frames,
                                            slow_band_nperseg, slow_band_report, welch_psd, welch_segments,
                                            window_fd_at)
from svgan.training.motion_metrics import Gaussian, frechet_distance, windows
from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz
from svgan.training.trainer import TrainConfig, start_run
from svgan.training.wplus_data import load_wplus

FPS = 25.0
# Eight "PCA components", largest first: each an Ornstein-Uhlenbeck mixture of a slow part (6-12 s, head drift
# and mood) and a fast part (0.15-0.5 s, speech), the slow share largest in the top components.
SLOW_TAU = np.array([12, 10, 8, 6, 6, 5, 5, 5.0])
SLOW_SHARE = np.array([0.7, 0.6, 0.5, 0.5, 0.3, 0.2, 0.1, 0.1])
FAST_TAU = np.array([0.5, 0.3, 0.4, 0.2, 0.3, 0.2, 0.25, 0.15])
SCALE = np.array([2.0, 1.6, 1.3, 1.0, 0.8, 0.6, 0.5, 0.4])
SETTLE_SECONDS = 3.0   # the settling generator's decay time: within 10 s it is 96 % in its late regime
LATE_SPREAD, LATE_OFFSET = 0.6, 0.8   # of the settling generator, in data stds (the demo world's, DESIGN §5b)


def ornstein_uhlenbeck(rng: np.random.Generator, count: int, frames: int, tau: np.ndarray) -> np.ndarray:
    """[count, frames, len(tau)] unit-variance OU processes, started in their stationary distribution."""
    decay = np.exp(-1 / (FPS * tau))
    x = np.empty((count, frames, len(tau)))
    x[:, 0] = rng.standard_normal((count, len(tau)))
    kicks = rng.standard_normal((count, frames, len(tau))) * np.sqrt(1 - decay ** 2)
    for t in range(1, frames):
        x[:, t] = decay * x[:, t - 1] + kicks[:, t]
    return x


def talking(rng: np.random.Generator, count: int, frames: int) -> np.ndarray:
    """Draws of the "data" process: slow and fast parts mixed to the components' scales."""
    slow, fast = ornstein_uhlenbeck(rng, count, frames, SLOW_TAU), ornstein_uhlenbeck(rng, count, frames, FAST_TAU)
    return SCALE * (np.sqrt(SLOW_SHARE) * slow + np.sqrt(1 - SLOW_SHARE) * fast)


def settling(rng: np.random.Generator, count: int, frames: int) -> np.ndarray:
    """Starts as a draw of the data process, then decays (time constant SETTLE_SECONDS) into a regime with the
    fast part only, at LATE_SPREAD of the data's std, offset by LATE_OFFSET stds (alternating signs)."""
    start = talking(rng, count, frames)
    fast = ornstein_uhlenbeck(rng, count, frames, FAST_TAU)
    regime = SCALE * (LATE_SPREAD * fast + LATE_OFFSET * np.where(np.arange(len(SCALE)) % 2, 1, -1))
    weight = np.exp(-np.arange(frames) / (FPS * SETTLE_SECONDS))[None, :, None]
    return weight * start + (1 - weight) * regime


@pytest.fixture(scope="module")
def reports() -> dict[str, dict]:
    """Horizon reports of 16 x 1,525 frames of each kind against 15 minutes of data (~4 s on 2 cores)."""
    rng = np.random.default_rng(0)
    data = talking(rng, 1, 22_500)[0].astype(np.float32)
    sets = {"good": talking(rng, 16, 1525), "settling": settling(rng, 16, 1525)}
    return {name: horizon_report(x.astype(np.float32), data, FPS) for name, x in sets.items()}


def test_window_fd_by_start_time_grows_for_the_settling_generator(reports) -> None:
    good, settle = reports["good"]["1500"], reports["settling"]["1500"]
    floor = good["window_fd_floor"]["fd"]
    assert settle["window_fd_floor"] == good["window_fd_floor"]   # the floor depends on the data only
    for start in ("0", "1"):   # the settling generator starts as the data does
        assert settle["window_fd"][start]["fd"] < 1.3 * floor
    for start in ("30", "60"):
        assert good["window_fd"][start]["fd"] < 1.5 * floor
        assert settle["window_fd"][start]["fd"] > 2 * floor
        assert settle["window_fd"][start]["fd"] > 1.8 * good["window_fd"][start]["fd"]
    assert good["window_fd"]["60"]["frame"] == 1500


def test_late_blocks_show_the_narrow_offset_regime(reports) -> None:
    good, settle = (late_blocks(reports[name]["1500"]["blocks"], 250) for name in ("good", "settling"))
    assert len(good) == len(settle) == 5   # 10-50 s: blocks 10-20, ..., 50-60 s
    for block in settle:
        assert block["spread_max"] < 0.8 and block["offset_max_abs"] > 0.5
        assert len(block["spread"]) == len(block["offset"]) == HorizonConfig().block_components
    # A good generator's blocks scatter by sampling noise only (16 samples of slow motion: about +-0.25 std in
    # the block means; measured 0.11-0.54 over 5 seeds).
    for block in good:
        assert 0.7 < block["spread_min"] and block["spread_max"] < 1.5 and block["offset_max_abs"] < 0.6


def test_block_floor_is_what_the_data_score_and_the_settling_generator_is_far_above_it(reports) -> None:
    good, settle = reports["good"]["1500"], reports["settling"]["1500"]
    floor = good["block_floor"]
    assert floor == settle["block_floor"] and floor["samples"] == 16   # the data's, for as many samples
    # 16 samples of slow motion miss the ideal (offset 0, spread 1) by sampling noise alone; data-like samples
    # score within the floor's scatter, the settling generator (offset 0.8, spread 0.6) far outside it. Over
    # data seeds 0-2: floor offsets 0.32-0.35 ± 0.05-0.09 and low spread 0.84-0.87 ± 0.03-0.06; data-like
    # samples' largest offset 0.35-0.54, the settling generator's 0.94-1.0 and its widest spread 0.64-0.68.
    offset, spread = floor["offset_max_abs"], floor["spread_min"]
    assert 0.15 < offset["mean"] < 0.6 and spread["mean"] < 0.95
    assert good["late_blocks"]["blocks"] == settle["late_blocks"]["blocks"] == 5
    assert good["late_blocks"]["offset_max_abs"] < offset["mean"] + 5 * offset["std"]
    assert settle["late_blocks"]["offset_max_abs"] > offset["mean"] + 5 * offset["std"]
    assert settle["late_blocks"]["spread_max"] < spread["mean"] - 3 * spread["std"]
    assert reports["good"]["250"]["late_blocks"]["blocks"] == 0   # its late frames start inside its one block
    assert "reason" in reports["good"]["250"]["block_floor"]


def test_block_floor_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(3)
    data = talking(rng, 1, 22_500)[0]
    few, many = (block_floor(data, count, 1500, 250, 8, 250, draws=8, seed=0) for count in (16, 256))
    assert many["offset_max_abs"]["mean"] < 0.4 * few["offset_max_abs"]["mean"]   # about 1 / sqrt(16)
    assert 1 - many["spread_min"]["mean"] < 0.5 * (1 - few["spread_min"]["mean"])


def test_data_stretches_cover_the_sequence_evenly_at_every_position() -> None:
    """Every frame of a stretch is uniform over the sequence (wrapping round its end): on a ramp 0..N-1 each
    position's mean over many stretches is the ramp's mean. Stretches that had to fit inside the sequence would
    give position 0 a mean of (N - length) / 2 instead."""
    ramp = np.arange(1000.0)[:, None]
    cut = data_stretches(ramp, 20_000, 600, np.random.default_rng(4))
    assert cut.shape == (20_000, 600, 1)
    assert np.allclose(cut[:, [0, 300, 599], 0].mean(0), ramp.mean(), rtol=0.02)
    assert np.all(np.diff(cut[:, :, 0], axis=1) % 1000 == 1)   # consecutive frames, wrapping at the end


def test_slow_band_power_is_missing_in_the_settling_generator(reports) -> None:
    good, settle = reports["good"]["1500"]["slow_band"], reports["settling"]["1500"]["slow_band"]
    assert good["nperseg"] == 1250 and good["segments"] == {"generated": 16, "data": 35}
    assert max(settle["power_db"]) < -3
    assert max(abs(v) for v in good["power_db"]) < 2.5   # measured within +-2.0 dB over 5 seeds


def test_autocorrelation_loses_the_slow_persistence(reports) -> None:
    good, settle = reports["good"]["1500"]["autocorrelation"], reports["settling"]["1500"]["autocorrelation"]
    for lag in ("2", "5"):
        data = np.array(good[lag]["data"])
        assert np.all(np.array(settle[lag]["generated"]) < data - 0.1)
        assert np.all(np.abs(np.array(good[lag]["generated"]) - data) < 0.2)


def test_short_horizon_reports_what_fits_and_says_why_the_rest_does_not(reports) -> None:
    short = reports["settling"]["250"]
    assert [b["frames"] for b in short["blocks"]] == [[0, 250]]
    assert short["late_frames"] == [125, 250]   # the second half: nothing is later than 10 s
    assert short["window_fd"]["10"]["fd"] is not None   # the window starting at the horizon's end
    assert short["window_fd"]["30"]["fd"] is None
    assert "after this 250-frame horizon" in short["window_fd"]["30"]["reason"]
    assert short["slow_band"]["power_db"] is None and "1250" in short["slow_band"]["reason"]
    assert short["autocorrelation"]["2"]["generated"] is not None
    assert short["autocorrelation"]["5"]["generated"] is None and "generated" in short["autocorrelation"]["5"]["reason"]
    assert short["looping"]["score"] > 0
    json.dumps(reports)   # JSON-ready throughout


def test_nulls_for_samples_and_data_that_are_too_short() -> None:
    rng = np.random.default_rng(1)
    samples, data = talking(rng, 4, 1500), talking(rng, 1, 3000)[0]
    report = horizon_report(samples, data, FPS)
    assert report["1500"]["window_fd"]["60"]["fd"] is None
    assert "needs 1525" in report["1500"]["window_fd"]["60"]["reason"]
    band = report["1500"]["slow_band"]
    assert band["power_db"] is None and "3125" in band["reason"] and "125 s" in band["reason"]
    assert horizon_report(samples, data, FPS, HorizonConfig(horizons=(2000,)))["2000"]["reason"]
    enough = slow_band_report(samples[:, 250:], talking(rng, 1, 3125)[0], FPS, (0.02, 0.3), 4, 4)
    assert enough["power_db"] is not None and enough["segments"] == {"generated": 4, "data": 4}


def test_building_blocks() -> None:
    assert slow_band_nperseg(25.0, 0.02) == 1250 and slow_band_nperseg(30.0, 0.02) == 1500
    assert welch_segments(1249, 1250) == 0 and welch_segments(3125, 1250) == 4
    assert late_frames(1500, 25.0, 10.0) == (250, 1500) and late_frames(250, 25.0, 10.0) == (125, 250)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4000, 2))
    assert np.allclose(autocorrelation(x, 0), 1) and np.all(np.abs(autocorrelation(x, 10)) < 0.05)
    # White noise of variance 1 has a one-sided PSD of 2 / fps: a band of width B holds 2 B / fps.
    freqs, psd = welch_psd(x, FPS, 1250)
    assert band_power(freqs, psd, (0.02, 0.3)) == pytest.approx(2 * 0.3 / FPS, rel=0.25)
    # window_fd_at is window FD (motion_metrics) of one window per trajectory.
    real = rng.standard_normal((500, 8))
    reference = windows(real, 25, 1, 8)
    assert window_fd_at(x.repeat(4, axis=2), 100, Gaussian.fit(reference)) == pytest.approx(
        frechet_distance(x.repeat(4, axis=2)[:, 100:125].reshape(3, -1), reference))


# ------------------------------------------------------------------------------------- through svgan-eval

def test_evaluate_run_reports_horizons_and_draws_horizon_png(tmp_path) -> None:
    """A 2-iteration run on 60 s of synthetic codes (4 x 32): only the keys and the plot are checked (~5 s;
    the slow CLI test in test_motion_metrics.py draws all of `write_plots`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: a second thread only adds synchronisation
    try:
        save_npz(tmp_path / "seq.npz", make_sequence(SyntheticConfig(seconds=60, n_styles=4, style_dim=32)))
        config = TrainConfig(epochs=1, batch_size=8, critic_steps=1, generator={"hidden_dim": 16, "h_mlp_width": 16,
                             "t_mlp_width": 32}, critic={"e_width": 32, "conv_channels": (8, 16, 32)})
        start_run(load_wplus(tmp_path / "seq.npz", window=25), tmp_path / "run", config).run(max_iterations=2)
        evaluation = evaluate_run(tmp_path / "run", tmp_path / "seq.npz", EvalConfig(short=8, long=2))
        plot_horizon(evaluation, tmp_path / "horizon.png")
    finally:
        torch.set_num_threads(threads)
    summary = json.loads(json.dumps(evaluation.summary))
    for key in ("short", "long", "self", "looping", "long_short_window_fd_ratio", "real_variance", "horizon"):
        assert key in summary
    assert list(summary["horizon"]) == ["250", "1500"] and summary["settings"]["long_frames"] == 1525
    long_horizon = summary["horizon"]["1500"]
    assert set(long_horizon) >= {"window_fd", "window_fd_floor", "blocks", "late_frames", "slow_band",
                                 "autocorrelation", "looping"}
    assert all(long_horizon["window_fd"][k]["fd"] is not None for k in ("0", "1", "5", "10", "30", "60"))
    assert len(long_horizon["blocks"]) == 6
    assert long_horizon["slow_band"]["power_db"] is None and "60 s" in long_horizon["slow_band"]["reason"]
    assert "horizon.png" in PLOTS and (tmp_path / "horizon.png").stat().st_size > 10_000
