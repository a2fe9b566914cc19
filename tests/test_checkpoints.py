"""Checkpoint loading refuses bad input with one line naming the problem, and never runs pickled code."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from svgan.models import CheckpointError, Generator, StyleGAN2Config, load_psp, load_stylegan2, save_stylegan2

TINY = StyleGAN2Config(size=16, style_dim=32, n_mlp=2, channels=(16, 8, 8))


def tiny_checkpoint(tmp_path: Path, **extra) -> tuple[Path, dict]:
    torch.manual_seed(0)
    generator = Generator(TINY)
    ckpt = {"g_ema": generator.state_dict(), "latent_avg": torch.randn(TINY.style_dim), **extra}
    path = tmp_path / "tiny.pt"
    torch.save(ckpt, path)
    return path, ckpt


def assert_one_line(err: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_tiny_rosinality_round_trip_reads_architecture_from_tensors(tmp_path):
    path, ckpt = tiny_checkpoint(tmp_path)
    generator = load_stylegan2(path)
    assert generator.config.channels == TINY.channels and generator.config.size == 16
    assert generator.config.n_mlp == 2 and generator.config.style_dim == 32
    for key, value in ckpt["g_ema"].items():
        assert torch.equal(generator.state_dict()[key], value), key
    assert torch.equal(generator.latent_avg, ckpt["latent_avg"].reshape(1, -1))


def test_training_checkpoint_with_argparse_namespace_loads(tmp_path):
    path, _ = tiny_checkpoint(tmp_path, args=argparse.Namespace(size=16, channel_multiplier=2), ada_aug_p=0.0,
                              g_optim={}, d_optim={})
    assert load_stylegan2(path).resolution == 16


def test_missing_key_is_named(tmp_path):
    path, ckpt = tiny_checkpoint(tmp_path)
    del ckpt["g_ema"]["convs.1.noise.weight"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_stylegan2(path)
    assert_one_line(err, "missing key 'convs.1.noise.weight'")


def test_extra_key_is_named(tmp_path):
    path, ckpt = tiny_checkpoint(tmp_path)
    ckpt["g_ema"]["convs.1.extra"] = torch.zeros(3)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_stylegan2(path)
    assert_one_line(err, "unexpected key 'convs.1.extra'")


def test_misshaped_key_is_named(tmp_path):
    path, ckpt = tiny_checkpoint(tmp_path)
    ckpt["g_ema"]["to_rgbs.0.bias"] = torch.zeros(1, 4, 1, 1)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as err:
        load_stylegan2(path)
    assert_one_line(err, "'to_rgbs.0.bias'", "[1, 4, 1, 1]", "[1, 3, 1, 1]")


class RunsCode:
    """A pickle payload that would create a file when unpickled without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("loader", [load_psp, load_stylegan2])
def test_pickle_that_runs_code_is_refused(tmp_path, loader):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "state_dict": {}, "payload": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        loader(path)
    assert_one_line(err, "weights_only=True", "refusing")
    assert not marker.exists()


@pytest.mark.parametrize("loader", [load_psp, load_stylegan2])
def test_missing_and_corrupt_files_are_one_line_errors(tmp_path, loader):
    with pytest.raises(CheckpointError) as err:
        loader(tmp_path / "nope.pt")
    assert_one_line(err, "checkpoint not found")
    path, _ = tiny_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])  # truncated download
    with pytest.raises(CheckpointError) as err:
        loader(path)
    assert_one_line(err, "cannot read checkpoint")


def test_wrong_kind_of_checkpoint_is_explained(tmp_path):
    path, _ = tiny_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as err:
        load_psp(path)
    assert_one_line(err, "not a pSp checkpoint", "load_stylegan2")
    torch.save({"state_dict": {}, "opts": {"output_size": 256}}, tmp_path / "psp.pt")
    with pytest.raises(CheckpointError) as err:
        load_stylegan2(tmp_path / "psp.pt")
    assert_one_line(err, "no 'g_ema'")


def test_unsupported_psp_variant_is_refused(tmp_path):
    torch.save({"state_dict": {}, "opts": {"encoder_type": "BackboneEncoderUsingLastLayerIntoW",
                                           "learn_in_w": True}}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as err:
        load_psp(tmp_path / "w.pt")
    assert_one_line(err, "not supported")


def test_saved_checkpoint_is_atomic_and_complete(tmp_path):
    generator = Generator(TINY)
    save_stylegan2(tmp_path / "g.pt", generator)
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]
    assert load_stylegan2(tmp_path / "g.pt").latent_avg is None
