"""pSp checkpoints in the official layout: strict keys, latent_avg shapes, opts that old releases lack."""

from __future__ import annotations

import pytest
import torch

from svgan.models import PSP, CheckpointError, StyleGAN2Config, load_psp
from svgan.models.fixture_weights import fixture_psp


@pytest.fixture(scope="module")
def small_psp_state() -> dict:
    model = fixture_psp(256)
    return {"state_dict": model.state_dict(), "latent_avg": model.latent_avg.clone()}


def test_latent_avg_of_shape_512_is_broadcast_over_styles(tmp_path, small_psp_state):
    avg = small_psp_state["latent_avg"][3].clone()
    torch.save({"state_dict": small_psp_state["state_dict"], "opts": {"output_size": 256}, "latent_avg": avg},
               tmp_path / "p.pt")
    model = load_psp(tmp_path / "p.pt")
    assert model.latent_avg.shape == (14, 512)
    assert torch.equal(model.latent_avg, avg.expand(14, 512))
    x = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.allclose(model.encode(x), model.encoder(x) + avg, atol=0, rtol=0)


def test_missing_psp_key_is_named_and_output_size_defaults_to_1024(tmp_path, small_psp_state):
    state = dict(small_psp_state["state_dict"])
    del state["encoder.body.5.res_layer.2.weight"]
    torch.save({"state_dict": state, "opts": {"output_size": 256}}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match=r"missing key 'encoder\.body\.5\.res_layer\.2\.weight'"):
        load_psp(tmp_path / "p.pt")
    # A 2020-10 release has no output_size: 1024 is assumed, so a 256 decoder is refused by name.
    torch.save({"state_dict": small_psp_state["state_dict"], "opts": {}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"missing key 'decoder\.convs\.12\.conv\.weight'"):
        load_psp(tmp_path / "old.pt")


def test_psp_without_latent_avg_when_opts_require_it_is_refused(tmp_path, small_psp_state):
    torch.save({"state_dict": small_psp_state["state_dict"],
                "opts": {"output_size": 256, "start_from_latent_avg": True}}, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="no 'latent_avg'"):
        load_psp(tmp_path / "p.pt")


def test_psp_encode_checks_input_size():
    with torch.device("meta"):
        model = PSP(StyleGAN2Config(size=256))
    with pytest.raises(ValueError, match="256x256"):
        model.encode(torch.zeros(1, 3, 128, 128, device="meta"))
