"""Motion metrics in W+ and `svgan-eval` (DESIGN §10): Fréchet distance maths, the looping score on hand-made
trajectories, trained vs untrained generators, and the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from svgan.models import PCABasis, RunError, load_run_generator
from svgan.models.run import PCA_FILE
from svgan.training.evaluate import recorded_data_path, sample_pca_trajectories
from svgan.training.motion_metrics import (Gaussian, MotionMetricsConfig, chunks, frechet_distance, looping_score,
                                           motion_report, sample_frechet_distance, windows)
from svgan.training.pca import fit_pca
from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz
from svgan.training.trainer import TrainConfig, start_run
from svgan.training.wplus_data import load_wplus

SMALL = dict(n_styles=4, style_dim=32)  # W+ of 4 x 32: the dynamics of the real thing at a fraction of the cost

# Small models, batch 16, learning rates 10x the default (1e-4) and an EMA of 0.9 instead of 0.995 (so that the EMA
# generator, which svgan-eval scores, follows G within 100 iterations): at the defaults the separation below
# needs ~500 iterations (~150 s of CPU). Measured numbers in the docstring of `test_metrics_separate_...`.
TRAIN = TrainConfig(epochs=10_000, batch_size=16, critic_steps=5, lr_g=1e-3, lr_c=1e-3, ema=0.9, seed=0,
                    generator={"hidden_dim": 64, "h_mlp_width": 64, "t_mlp_width": 128},
                    critic={"e_width": 128, "conv_channels": (32, 64, 128)})
TRAIN_ITERATIONS = 200


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The models here are tiny: a second thread only adds synchronisation, which costs 2-3x the wall time
    when the cores are shared with other processes (pytest-xdist, a parallel build)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(rng: np.random.Generator, n: int, mean: np.ndarray, mixing: np.ndarray) -> np.ndarray:
    return rng.standard_normal((n, len(mean))) @ mixing.T + mean


# ---------------------------------------------------------------------------------------------- Fréchet maths

def test_frechet_distance_of_gaussians() -> None:
    rng = np.random.default_rng(0)
    d = 6
    mixing = rng.standard_normal((d, d)) * 0.5 + np.eye(d)
    x = gaussian(rng, 50_000, np.zeros(d), mixing)
    y = gaussian(rng, 50_000, np.zeros(d), mixing)
    shift = np.array([0.3, -0.2, 0.0, 0.5, 0.1, -0.4])

    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    same = frechet_distance(x, y)
    assert same < 0.01  # two samples of one Gaussian: only estimation noise (~d^2 / n)
    # A mean shift adds |dmu|^2 exactly when the covariances are the same ...
    assert frechet_distance(x, x + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-9)
    # ... and on top of the estimation noise for independent samples.
    assert frechet_distance(x, y + shift) == pytest.approx(same + np.sum(shift ** 2), abs=0.02)
    assert frechet_distance(x, 2 * y) == pytest.approx(frechet_distance(2 * y, x), rel=1e-9)


def test_frechet_distance_matches_the_sqrtm_formula_and_survives_singular_covariances() -> None:
    rng = np.random.default_rng(1)
    x = gaussian(rng, 3000, np.ones(5), rng.standard_normal((5, 5)))
    y = gaussian(rng, 2000, np.zeros(5), rng.standard_normal((5, 5)))
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    expected = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(cx) + np.trace(cy)
                - 2 * np.trace(scipy.linalg.sqrtm(cx @ cy).real))
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)
    frozen = np.zeros((100, 5))  # zero covariance: a generator that never moves
    assert frechet_distance(frozen, y) == pytest.approx(np.sum(y.mean(0) ** 2) + np.trace(cy), rel=1e-9)
    few = frechet_distance(x[:4], y)  # fewer samples than dimensions: a singular covariance
    assert np.isfinite(few) and few > 0


def test_sample_frechet_distance_is_frechet_distance_for_few_and_many_samples() -> None:
    rng = np.random.default_rng(2)
    reference = gaussian(rng, 5000, np.ones(20), rng.standard_normal((20, 20)))
    fitted = Gaussian.fit(reference)
    for n in (3, 16, 20, 60):   # n <= d: the n x n route; n > d: the d x d one
        x = gaussian(rng, n, np.zeros(20), rng.standard_normal((20, 20)))
        # rel 1e-7, not 1e-9: with n < d the d x d route takes square roots of d - n + 1 rounding-error
        # eigenvalues (sqrt(1e-14) = 1e-7 each), which the n x n route never forms.
        assert sample_frechet_distance(x, fitted) == pytest.approx(frechet_distance(x, reference), rel=1e-7)


def test_windows_are_consecutive_frames_flattened_frame_major() -> None:
    trajectory = np.arange(20 * 3, dtype=float).reshape(20, 3)
    cut = windows(trajectory, window=4, stride=5, k=2)
    assert cut.shape == (4, 8)
    np.testing.assert_array_equal(cut[1], trajectory[5:9, :2].ravel())
    assert chunks(trajectory, 6).shape == (3, 6, 3)


# ------------------------------------------------------------------------------------------------- looping

@pytest.fixture(scope="module")
def training_pca() -> tuple[np.ndarray, PCABasis]:
    """A 2-minute synthetic talking head and its PCA, as a run would fit it."""
    wplus = make_sequence(SyntheticConfig(seconds=120, **SMALL))["wplus"]
    pca = fit_pca(wplus, 32)
    return pca.project(wplus), pca


def test_looping_score_flags_replayed_clips_and_frozen_faces(training_pca) -> None:
    real, pca = training_pca
    reference = chunks(real, 1500)   # the training video as two 1,500-frame "samples"
    rng = np.random.default_rng(0)
    clip = real[300:350]             # 2 seconds
    periodic = np.tile(clip, (30, 1))[None]
    noisy_periodic = periodic + 0.2 * real.std(0) * rng.standard_normal(periodic.shape)
    frozen = np.repeat(real[:1], 1500, axis=0)[None] + 0.05 * real.std(0) * rng.standard_normal((1, 1500, 32))
    in_order = np.roll(real, 700, axis=0)[None, :1500]   # the training motion, replayed from another start
    fresh = pca.project(make_sequence(SyntheticConfig(seconds=60, seed=7, **SMALL))["wplus"])[None]

    scores = {name: looping_score(trajectories, reference).score for name, trajectories in
              {"training": reference, "in order": in_order, "fresh": fresh, "periodic": periodic,
               "noisy periodic": noisy_periodic, "frozen": frozen}.items()}
    print(scores)
    assert scores["training"] == 1.0
    assert 0.8 < scores["in order"] < 1.25 and 0.8 < scores["fresh"] < 1.25
    assert scores["periodic"] == MotionMetricsConfig().loop_cap  # exact repetition
    assert scores["noisy periodic"] > 2.5 and scores["frozen"] > 5
    with pytest.raises(ValueError, match="equally long"):
        looping_score(periodic[:, :1000], reference)


# ----------------------------------------------------------------------------------- trained vs untrained

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A synthetic sequence on disk, an untrained run and the same run trained for TRAIN_ITERATIONS
    (~40 s of one CPU core)."""
    root = tmp_path_factory.mktemp("eval")
    save_npz(root / "seq.npz", make_sequence(SyntheticConfig(seconds=60, **SMALL)))
    data = load_wplus(root / "seq.npz", window=TRAIN.window)
    start_run(data, root / "untrained", TRAIN).save_checkpoint()
    start_run(data, root / "trained", TRAIN).run(max_iterations=TRAIN_ITERATIONS)
    return {"data": root / "seq.npz", "untrained": root / "untrained", "trained": root / "trained"}


def report_of(run_dir: Path, data: Path) -> dict:
    generator, _ = load_run_generator(run_dir)
    pca = PCABasis.load(run_dir / PCA_FILE)
    short = sample_pca_trajectories(generator, pca, 256, 25, seed=0)
    long = sample_pca_trajectories(generator, pca, 4, 1500, seed=1)
    return motion_report(short, long, pca.project(load_wplus(data).wplus))


def test_a_burn_in_drops_the_first_frames_of_the_same_draws(runs) -> None:
    """`svgan-eval --burn-in N` scores what a bundle exported with that burn-in streams: frames N.. of G's
    trajectory from the same inputs."""
    generator, _ = load_run_generator(runs["trained"])
    pca = PCABasis.load(runs["trained"] / PCA_FILE)
    whole = sample_pca_trajectories(generator, pca, 3, 50, seed=2, chunk=7)
    # equal up to float rounding: the projection's chunks start at other frames
    np.testing.assert_allclose(sample_pca_trajectories(generator, pca, 3, 40, seed=2, chunk=7, burn_in=10),
                               whole[:, 10:], atol=1e-5)
    assert np.abs(whole[:, 10] - whole[:, 0]).max() > 1e-2


@pytest.mark.slow
def test_metrics_separate_a_trained_generator_from_an_untrained_one(runs) -> None:
    """Measured on this CPU (2 cores), with the critic standardising its input (session 3, batch 32): untrained G
    barely moves (looping score ~59, frame FD ~0.69 short / 0.77 long = the data's whole variance); 100
    iterations leave frame FD unchanged (0.69) while window FD falls to 15.9 and the looping score to 5.3; 200
    iterations bring frame FD to 0.27 / 0.29, window FD to 10.4 / 9.8, looping to 2.6; 300 reach frame FD 0.20,
    below the halves-of-the-data floor 0.22 (before the standardisation: ~0.67 at 100, ~0.23 at 500). At batch
    16 (here since session 10, 28% less time) 200 iterations leave frame FD at 0.48 / 0.50 of the untrained
    model's, window FD at 0.71 / 0.63 and the looping score at 3.6 (batch 32: 0.39 / 0.38, 0.56 / 0.50, 2.6)."""
    untrained, trained = report_of(runs["untrained"], runs["data"]), report_of(runs["trained"], runs["data"])
    for name, r in (("untrained", untrained), ("trained", trained)):
        print(name, {k: round(r[k]["frame_fd"], 3) for k in ("short", "long", "self")},
              {k: round(r[k]["window_fd"], 2) for k in ("short", "long", "self")}, round(r["looping"]["score"], 2))
    for kind in ("short", "long"):
        assert trained[kind]["frame_fd"] < 0.92 * untrained[kind]["frame_fd"]
        assert trained[kind]["window_fd"] < 0.95 * untrained[kind]["window_fd"]
    assert 1 < trained["looping"]["score"] < untrained["looping"]["score"] / 3


# ------------------------------------------------------------------------------------------------------ CLI

def svgan_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svgan.training.cli_eval", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # see `one_torch_thread`


@pytest.mark.slow
def test_cli_writes_json_and_plots(runs, tmp_path) -> None:
    run = runs["trained"]
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": str(runs["data"])}))  # as newer runs record it
    done = svgan_eval(str(run), "--json", "-", "--plots", str(tmp_path / "plots"),
                      "--short", "64", "--long", "2", "--long-frames", "300", "--burn-in", "25")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    for key in ("short", "long", "self", "looping", "long_short_window_fd_ratio", "plots", "horizon"):
        assert key in summary
    assert summary["data"] == str(runs["data"]) and summary["long"]["windows"] == 2 * 12
    assert summary["settings"]["burn_in"] == 25
    # --long-frames 300 holds the 250-frame horizon (its 10-s window reaches frame 275); 1,500 gets a reason.
    assert summary["horizon"]["250"]["window_fd"]["10"]["fd"] is not None
    assert "--long-frames" in summary["horizon"]["1500"]["reason"]
    for name in ("losses.png", "trajectories.png", "metrics.png", "horizon.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 10_000
    assert "horizon 250 frames: window FD at 0 s" in done.stderr


def test_cli_refuses_a_folder_without_checkpoint_in_one_line(tmp_path) -> None:
    done = svgan_eval(str(tmp_path), "--data", str(tmp_path / "seq.npz"))
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no checkpoint.pt" in done.stderr
    with pytest.raises(RunError, match="--data"):
        recorded_data_path(tmp_path)
