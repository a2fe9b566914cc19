"""The demo world's training code (issue 6): discriminator, StyleGAN2 and pSp trainers in resumable chunks, the
reduced pSp encoder's checkpoint round trip, the attribute reader, `svgan-world` and streaming an aligned
identity through a world-shaped bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from svgan.models import (PSP, CheckpointError, PSPEncoderConfig, StyleGAN2Config, load_psp, load_stylegan2,
                          save_psp)
from svgan.models.stylegan2_discriminator import Discriminator
from svgan.runtime.video import VideoReader
from svgan.world import cli as cli_world
from svgan.world.attribute_reader import ReaderConfig, train_reader, validate_reader
from svgan.world.renderer import STATE_FIELDS, render_dataset
from svgan.world.psp_trainer import PSPTrainConfig, start_psp_run
from svgan.world.stylegan2_trainer import StyleGAN2TrainConfig, start_stylegan2_run

from .conftest import WORLD_TEST_CHANNELS, WORLD_TEST_STAGES

TINY_GAN = dict(size=16, style_dim=32, n_mlp=2, channels=(32, 16, 8), batch_size=4, dataset_size=24,
                checkpoint_every=2)


def test_discriminator_scores_each_image_and_sees_batch_variety():
    d = Discriminator(StyleGAN2Config(size=32, channels=(32, 16, 16, 8)))
    images = torch.randn(8, 3, 32, 32, requires_grad=True)
    scores = d(images)
    assert scores.shape == (8, 1)
    scores.sum().backward()
    assert images.grad.abs().sum() > 0
    # The minibatch-stddev feature makes a sample's score depend on the rest of its group.
    alone = d(images[:4].detach())
    together = d(torch.cat([images[:2].detach(), torch.zeros(2, 3, 32, 32)]))
    assert not torch.allclose(alone[:2], together[:2])


@pytest.mark.parametrize("eye_weight", [0.0, 1.0])
def test_stylegan2_run_resumes_bit_for_bit(tmp_path, eye_weight):
    config = StyleGAN2TrainConfig(**TINY_GAN, eye_weight=eye_weight)
    straight = start_stylegan2_run(tmp_path / "straight", config)
    assert straight.run(4) == "done"
    chunked = start_stylegan2_run(tmp_path / "chunked", config)
    chunked.run(2)
    resumed = start_stylegan2_run(tmp_path / "chunked", config, resume=True)
    assert resumed.iteration == 2
    resumed.run(4)
    names = ("G", "D", "G_ema") + (("D_eye",) if eye_weight else ())
    assert (resumed.D_eye is not None) == bool(eye_weight)
    for name in names:
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows = (tmp_path / "chunked" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    exported = load_stylegan2(tmp_path / "chunked" / "stylegan2.pt")
    assert exported.latent_avg is not None and exported.latent_avg.shape == (1, 32)
    assert Image.open(tmp_path / "chunked" / "samples.png").size == (8 * 16, 4 * 16)


def test_stylegan2_run_refuses_to_overwrite_and_needs_a_checkpoint_to_resume(tmp_path):
    config = StyleGAN2TrainConfig(**TINY_GAN)
    with pytest.raises(Exception, match="--resume: no checkpoint.pt"):
        start_stylegan2_run(tmp_path / "run", config, resume=True)
    start_stylegan2_run(tmp_path / "run", config).run(1)
    with pytest.raises(Exception, match="already holds a run"):
        start_stylegan2_run(tmp_path / "run", config)


def test_gan_training_makes_d_separate_real_from_fake(tmp_path):
    """A few dozen steps are enough for D to score rendered faces above G's early samples: the losses are wired
    the right way round (a sign error would push the scores apart the other way)."""
    trainer = start_stylegan2_run(tmp_path / "run", StyleGAN2TrainConfig(
        size=16, style_dim=32, n_mlp=2, channels=(32, 16, 8), batch_size=8, dataset_size=64, checkpoint_every=100))
    stats = [trainer.train_iteration() for _ in range(30)]
    assert np.mean([s.real_score - s.fake_score for s in stats[-10:]]) > 0


def test_eye_crop_sees_the_eye_box_and_only_it():
    from svgan.world.renderer import FEATURE_BOXES
    from svgan.world.stylegan2_trainer import eye_crop

    images = torch.zeros(2, 3, 64, 64)
    top, bottom, left, right = (round(v * 64) for v in FEATURE_BOXES[0])
    assert eye_crop(images).shape == (2, 3, 32, 32)
    outside, inside = images.clone(), images.clone()
    outside[..., bottom:, :] = 1.0  # mouth and chin
    inside[..., (top + bottom) // 2, left:right] = 1.0  # a line where shut eyes are drawn
    assert torch.equal(eye_crop(outside), eye_crop(images))
    assert eye_crop(inside).abs().sum() > 0


def test_eye_discriminator_learns_real_eye_crops_from_fake_ones(tmp_path):
    """D_eye is trained like D (a sign error would push its scores apart the wrong way) and G's loss includes it."""
    config = StyleGAN2TrainConfig(size=16, style_dim=32, n_mlp=2, channels=(32, 16, 8), batch_size=8,
                                  dataset_size=64, checkpoint_every=100, eye_weight=1.0)
    trainer = start_stylegan2_run(tmp_path / "run", config)
    stats = [trainer.train_iteration() for _ in range(30)]
    assert all(np.isfinite(s.loss_d_eye) for s in stats)
    assert np.mean([s.loss_d_eye for s in stats[-10:]]) < np.log(4)  # below chance: D_eye tells them apart
    from svgan.world.stylegan2_trainer import eye_crop

    with torch.no_grad():
        real = eye_crop(trainer._real_batch())
        fake = eye_crop(trainer._fake(8))
        assert trainer.D_eye(real).mean() > trainer.D_eye(fake).mean()


def test_world_cli_shares_one_dataset_between_runs_and_refuses_bad_ones(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_world.main, ["dataset", str(tmp_path / "faces.npz"), "--faces", "12", "--size", "16",
                                            "--workers", "2"])
    assert result.exit_code == 0, result.output
    tiny = ["--batch-size", "4", "--iterations", "1", "--checkpoint-every", "1"]
    result = runner.invoke(cli_world.main, ["train-stylegan", str(tmp_path / "run64"), "--dataset",
                                            str(tmp_path / "faces.npz"), *tiny])
    assert result.exit_code == 1 and "16x16 faces" in result.output and "64x64" in result.output
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    result = runner.invoke(cli_world.main, ["train-stylegan", str(tmp_path / "run2"), "--dataset",
                                            str(tmp_path / "broken.npz"), *tiny])
    assert result.exit_code == 1
    assert "cannot read face dataset" in result.output and "not an .npy or .npz" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli_world.main, ["train-stylegan", str(tmp_path / "run3"), "--device", "tpu", *tiny])
    assert result.exit_code == 2 and "--device" in result.output  # refused by the option's type, before any work
    # A 16x16 model on the 12 shared faces: the run records how many it trained on.
    data = cli_world.load_dataset(tmp_path / "faces.npz")
    trainer = start_stylegan2_run(tmp_path / "run16", StyleGAN2TrainConfig(**TINY_GAN), dataset=tmp_path / "faces.npz")
    assert trainer.config.dataset_size == 12 and torch.equal(trainer.real.cpu(), torch.from_numpy(data.images))


def test_runs_start_from_checkpoints_trained_elsewhere_and_refuse_other_shapes(tmp_path):
    """--init: G (and G_ema) start from a stylegan2.pt, the encoder from a psp.pt; D and the optimisers start fresh."""
    from svgan.models import Generator, save_stylegan2

    config = StyleGAN2TrainConfig(**TINY_GAN)
    source = start_stylegan2_run(tmp_path / "source", config)
    source.run(2)
    init = tmp_path / "source" / "stylegan2.pt"
    started = start_stylegan2_run(tmp_path / "fine", replace(config, init=str(init)))
    expected = load_stylegan2(init).state_dict()
    for model in (started.G, started.G_ema):
        assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
    fresh = start_stylegan2_run(tmp_path / "fresh", config)  # D starts as in a run without --init
    assert all(torch.equal(fresh.D.state_dict()[k], started.D.state_dict()[k]) for k in fresh.D.state_dict())
    wider = replace(config, channels=(32, 32, 8), init=str(init))
    with pytest.raises(Exception, match="--init .* widths"):
        start_stylegan2_run(tmp_path / "wider", wider)

    g = Generator(StyleGAN2Config(size=64, style_dim=128, n_mlp=2, channels=WORLD_TEST_CHANNELS))
    save_stylegan2(tmp_path / "g.pt", g, g.mapping(torch.randn(100, 128)).mean(0))
    psp_config = PSPTrainConfig(stages=WORLD_TEST_STAGES, batch_size=4, dataset_size=4, checkpoint_every=100)
    first = start_psp_run(tmp_path / "psp", tmp_path / "g.pt", psp_config)
    first.run(2)
    second = start_psp_run(tmp_path / "psp2", tmp_path / "g.pt", replace(psp_config, init=str(tmp_path / "psp" /
                                                                                               "psp.pt")))
    a, b = first.psp.encoder.state_dict(), second.psp.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = replace(psp_config, stages=((16, 16, 1), (16, 16, 1), (16, 16, 1), (16, 16, 1)),
                    init=str(tmp_path / "psp" / "psp.pt"))
    with pytest.raises(Exception, match="--init .* not the one this run trains"):
        start_psp_run(tmp_path / "psp3", tmp_path / "g.pt", other)


def test_reduced_psp_encoder_round_trips_through_the_official_layout(tmp_path):
    decoder = StyleGAN2Config(size=64, style_dim=128, n_mlp=2, channels=WORLD_TEST_CHANNELS)
    psp = PSP(decoder, encoder_config=PSPEncoderConfig(input_size=64, stages=WORLD_TEST_STAGES)).eval()
    save_psp(tmp_path / "psp.pt", psp)
    loaded = load_psp(tmp_path / "psp.pt")
    assert loaded.input_size == 64 and loaded.encoder.config.stages == WORLD_TEST_STAGES
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(loaded.encode(x), psp.encode(x))
    assert loaded.encode(x).shape == (2, 10, 128)
    with pytest.raises(ValueError, match="64x64"):
        psp.encode(torch.zeros(1, 3, 256, 256))
    # A reduced encoder records its shape in opts; a malformed record is one clear error.
    blob = torch.load(tmp_path / "psp.pt", weights_only=True)
    assert blob["opts"]["svgan_encoder"]["input_size"] == 64
    blob["opts"]["svgan_encoder"] = {"input_size": 64}
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="svgan_encoder"):
        load_psp(tmp_path / "bad.pt")


def test_default_psp_keeps_the_official_encoder_shape():
    encoder = PSP(StyleGAN2Config(size=64, channels=(8, 8, 8, 8, 8))).encoder
    assert encoder.config.input_size == 256 and encoder.config.c1_index == 6 and encoder.config.c2_index == 20
    assert encoder.styles[0].linear.weight.shape == (512, 512)


def test_psp_run_learns_latents_and_resumes(tmp_path):
    from svgan.models import Generator, save_stylegan2

    torch.manual_seed(0)
    g = Generator(StyleGAN2Config(size=64, style_dim=128, n_mlp=2, channels=WORLD_TEST_CHANNELS))
    save_stylegan2(tmp_path / "g.pt", g, g.mapping(torch.randn(500, 128)).mean(0))
    config = PSPTrainConfig(stages=WORLD_TEST_STAGES, batch_size=8, dataset_size=16, checkpoint_every=5, lr=1e-3)
    trainer = start_psp_run(tmp_path / "run", tmp_path / "g.pt", config)
    stats = [trainer.train_iteration() for _ in range(12)]
    trainer.save_checkpoint()
    assert np.mean([s.latent for s in stats[-3:]]) < np.mean([s.latent for s in stats[:3]])
    psp = load_psp(tmp_path / "run" / "psp.pt")
    assert psp.input_size == 64 and torch.equal(psp.latent_avg[0], load_stylegan2(tmp_path / "g.pt").latent_avg[0])
    resumed = start_psp_run(tmp_path / "run", tmp_path / "g.pt", config, resume=True)
    assert resumed.iteration == 12
    assert Image.open(tmp_path / "run" / "reconstructions.png").size == (8 * 64, 4 * 64)


def test_attribute_reader_learns_mouth_and_blink_from_pixels():
    data = render_dataset(1500, 64, seed=3)
    reader = train_reader(data, ReaderConfig(epochs=6, widths=(16, 32, 32, 32)))
    report = validate_reader(reader, render_dataset(300, 64, seed=4))
    assert report["mouth_open"]["corr"] > 0.7, report["mouth_open"]
    assert report["blink"]["corr"] > 0.7, report["blink"]
    assert report["background_r"]["corr"] > 0.9, report["background_r"]
    assert len(report) == len(STATE_FIELDS) + data.identities.shape[1]


def test_world_cli_renders_video_states_and_identity(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_world.main, ["video", str(tmp_path / "v.mp4"), "--seconds", "1"])
    assert result.exit_code == 0, result.output
    states = np.load(tmp_path / "v.states.npy")
    with VideoReader(tmp_path / "v.mp4") as reader:
        frames = list(reader)
    assert len(frames) == len(states) == 25 and frames[0].shape == (64, 64, 3)
    result = runner.invoke(cli_world.main, ["identity", str(tmp_path / "id.png"), "--seed", "3"])
    assert result.exit_code == 0 and Image.open(tmp_path / "id.png").size == (64, 64)


def test_stream_encodes_an_aligned_identity_at_the_bundle_encoder_size(world_bundle, tmp_path):
    from svgan.runtime.bundle import load_bundle

    assert load_bundle(world_bundle).encoder_input_size == 64
    face = tmp_path / "face.png"
    CliRunner().invoke(cli_world.main, ["identity", str(face)])
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "svgan.runtime.cli_stream", "--bundle", str(world_bundle), "--identity", str(face),
           "--aligned", "--frames", "12", "--upscale", "2", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with VideoReader(out) as reader:
        frames = list(reader)
    assert len(frames) == 12 and frames[0].shape == (128, 128, 3)


def test_measure_reports_transfer_and_identity(world_bundle, tmp_path):
    from svgan.world.attribute_reader import save_reader

    reader = train_reader(render_dataset(64, 64, seed=5), ReaderConfig(epochs=1, widths=(8, 8, 8, 8)))
    save_reader(tmp_path / "reader.pt", reader)
    runner = CliRunner()
    runner.invoke(cli_world.main, ["video", str(tmp_path / "v.mp4"), "--seconds", "2"])
    result = runner.invoke(cli_world.main, [
        "measure", "--bundle", str(world_bundle), "--reader", str(tmp_path / "reader.pt"), "--video",
        str(tmp_path / "v.mp4"), "--stream", str(tmp_path / "v.mp4"), "--actors", "1,2", "--frames", "60",
        "--samples", "40", "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert set(report["motion_transfer"]["actors"]) == {"seed1-neutral", "seed1-expressive", "seed2-neutral",
                                                       "seed2-expressive"}
    for entry in report["motion_transfer"]["actors"].values():
        for method in ("offset_trick", "naive_offset"):
            corr = entry[method]["mouth_open"]["corr"]
            assert corr is None or -1 <= corr <= 1
    assert set(report["identity"]["actors"]) == {"seed1-neutral", "seed2-neutral"}
    assert set(report["embedding"]) == {"mouth_open", "blink", "amplitude"}
    assert report["streams"][str(tmp_path / "v.mp4")]["frames"] == 50
    truth = report["embedding"]["amplitude"]["truth"]
    assert truth["mouth_std"] > 0.05  # the rendered actor talks
    assert report["generator"]["reader_frechet_distance"] >= 0 and report["generator"]["samples"] == 40


def test_motion_amplitude_counts_blinks_and_measures_the_mouth():
    from svgan.world.measure import motion_amplitude

    fps, frames = 25.0, 1500  # one minute
    blink = np.zeros(frames)
    for start in (100, 700, 1400):
        blink[start:start + 5] = 0.9   # three 0.2 s blinks
    mouth = 0.3 + 0.2 * np.sin(np.arange(frames) / fps * 2 * np.pi * 4)
    amplitude = motion_amplitude(np.stack([mouth, blink], axis=1), fps)
    assert amplitude["blinks_per_minute"] == 3.0
    assert amplitude["shut_eyes_share"] == pytest.approx(15 / 1500)
    assert amplitude["mouth_std"] == pytest.approx(0.2 / np.sqrt(2), rel=1e-2)
    assert 0.35 < amplitude["mouth_range_5_95"] < 0.4
    half_shut = 0.45 + 0.2 * np.sign(np.sin(np.arange(frames)))  # eyes flickering, never quite open
    flicker = motion_amplitude(np.stack([mouth, half_shut], axis=1), fps)
    assert flicker["blinks_per_minute"] == 0.0 and flicker["shut_eyes_share"] > 0.3


WORLD_READER = Path(__file__).parent / "data" / "world_reader.pt"  # the attribute reader of docs/demo-world.md


def test_shipped_demo_world_talks_and_blinks_for_the_unseen_actor(tmp_path):
    """`make demo`'s output, read back by the attribute reader: the unseen actor's mouth moves like speech and its
    eyes blink. The bundle in the repository is intact (every sha256) and small enough to ship."""
    from svgan.world.demo import WORLD_BUNDLE
    from svgan.runtime.bundle import load_bundle, manifest_files
    from svgan.world.attribute_reader import load_reader
    from svgan.world.measure import motion_amplitude, motion_signals

    bundle = load_bundle(WORLD_BUNDLE)
    assert bundle.problems() == []
    assert sum((WORLD_BUNDLE / name).stat().st_size for name in manifest_files(bundle.manifest)) <= 30 * 2 ** 20
    assert (bundle.resolution, bundle.encoder_input_size) == (64, 64)
    out = tmp_path / "demo.mp4"
    done = subprocess.run([sys.executable, "-m", "svgan.world.demo", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with VideoReader(out) as clip:
        frames = np.stack(list(clip))
        fps = clip.fps
    assert frames.shape == (500, 256, 256, 3)
    # The reader reads 64x64 faces (it area-pools the 4x-enlarged frames). Bundle D (shipped) gives mouth std
    # 0.18 and 12 blinks per minute here (4 blinks); bundle C, shipped before the eye discriminator and the encoder
    # without w_norm, gave mouth std 0.069 and no blink.
    amplitude = motion_amplitude(motion_signals(load_reader(WORLD_READER), frames), fps)
    assert amplitude["mouth_std"] > 0.1, amplitude
    assert amplitude["blinks_per_minute"] >= 6, amplitude  # at least two blinks, eyes seen open before each


def test_feature_weighted_pixel_loss_counts_mouth_errors_more(tmp_path):
    from svgan.models import Generator, save_stylegan2
    from svgan.world.renderer import FEATURE_BOXES

    g = Generator(StyleGAN2Config(size=64, style_dim=128, n_mlp=2, channels=WORLD_TEST_CHANNELS))
    save_stylegan2(tmp_path / "g.pt", g, g.mapping(torch.randn(100, 128)).mean(0))
    losses = {}
    for weight in (1.0, 10.0):
        trainer = start_psp_run(tmp_path / f"run{weight}", tmp_path / "g.pt", PSPTrainConfig(
            stages=WORLD_TEST_STAGES, dataset_size=4, feature_weight=weight))
        target = torch.zeros(1, 3, 64, 64)
        top, bottom, left, right = (round(v * 64) for v in FEATURE_BOXES[1])
        in_mouth, in_background = target.clone(), target.clone()
        in_mouth[..., top:bottom, left:right] = 0.5
        in_background[..., :bottom - top, :right - left] = 0.5  # the same number of pixels, top-left corner
        losses[weight] = (trainer._pixel_loss(in_mouth, target).item(), trainer._pixel_loss(in_background, target).item())
    assert losses[1.0][0] == pytest.approx(losses[1.0][1])
    assert losses[1.0][0] == pytest.approx(torch.nn.functional.mse_loss(in_mouth, target).item())
    assert losses[10.0][0] > 5 * losses[10.0][1]
