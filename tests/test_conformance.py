"""Equality with the official pSp / rosinality code, proved on `shared/conformance/` (README there).

The fixture weights are built by the conformance rule, written as real checkpoints in the official
layouts, loaded through the public loaders (`weights_only=True`, strict) and run in eval mode, float32, on
CPU, with both modulated-convolution implementations; every output must be within the fixture's atol.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from svgan.models import PSP, Generator, StyleGAN2Config, load_psp, load_stylegan2, save_psp, save_stylegan2
from svgan.models.fixture_weights import fixture_latent_avg, fixture_state_dict

from .conftest import load_json

SMALL_EXCLUDED = re.compile(r"^(encoder\.styles\.(1[4-7])\.|decoder\.convs\.(1[2-5])\.|"
                            r"decoder\.to_rgbs\.[67]\.|decoder\.noises\.noise_(1[3-6])$)")
RESOLUTION = {"small": 256, "full": 1024}
IMPLS = ["reference", "export"]


def reference_layout(conformance: Path, config: str) -> list[dict]:
    entries = load_json(conformance / "psp_ffhq_encode.keys.json")["state_dict"]
    return [e for e in entries if config == "full" or not SMALL_EXCLUDED.match(e["key"])]


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key, tensor in state.items():
        h.update(key.encode("utf-8"))
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("config", ["small", "full"])
def test_psp_state_dict_layout_is_official(conformance, config):
    with torch.device("meta"):
        model = PSP(StyleGAN2Config(size=RESOLUTION[config]))
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    ref = [(e["key"], e["shape"], e["dtype"]) for e in reference_layout(conformance, config)]
    assert ours == ref


def test_rosinality_g_ema_layout_is_official(conformance):
    entries = load_json(conformance / "stylegan2_rosinality_1024.keys.json")["g_ema"]
    with torch.device("meta"):
        generator = Generator(StyleGAN2Config(size=1024))
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in generator.state_dict().items()]
    assert ours == [(e["key"], e["shape"], e["dtype"]) for e in entries]


@pytest.fixture(scope="session")
def fixture_checkpoints(conformance, tmp_path_factory):
    """Fixture-rule weights written as official pSp checkpoints, one per configuration (built lazily)."""
    made: dict[str, tuple[Path, str]] = {}

    def get(config: str) -> tuple[Path, str]:
        if config not in made:
            with torch.device("meta"):
                template = PSP(StyleGAN2Config(size=RESOLUTION[config])).state_dict()
            state = fixture_state_dict(template)
            digest = state_sha256(state)
            path = tmp_path_factory.mktemp(config) / "psp_fixture.pt"
            model = PSP(StyleGAN2Config(size=RESOLUTION[config]))
            model.load_state_dict(state, strict=True)
            model.set_latent_avg(fixture_latent_avg(model.n_styles))
            del state
            save_psp(path, model)
            made[config] = (path, digest)
        return made[config]

    return get


@pytest.mark.parametrize("config", ["small", pytest.param("full", marks=pytest.mark.slow)])
def test_fixture_rule_reproduces_the_fixture_weights(conformance, fixture_checkpoints, config):
    _, digest = fixture_checkpoints(config)
    assert digest == load_json(conformance / config / "fixture.json")["model"]["state_sha256"]
    expected = load_json(conformance / "fixture_weights.json")["latent_avg_18"]["sha256"]
    assert hashlib.sha256(fixture_latent_avg(18).numpy().tobytes()).hexdigest() == expected


def assert_within(name: str, ours: torch.Tensor, reference: np.ndarray, atol: float) -> None:
    ours_np = ours.detach().numpy()
    assert ours_np.shape == reference.shape, name
    err = float(np.abs(ours_np - reference).max())
    assert err <= atol, f"{name}: max abs error {err:.3g} > atol {atol:.3g}"


def run_calls(model: PSP, conformance: Path, config: str) -> dict[str, torch.Tensor]:
    """The fixture's calls (conformance README §4) through the public API."""
    x = torch.from_numpy(np.load(conformance / "input.npy"))
    z = torch.from_numpy(np.load(conformance / "z.npy"))
    zt = z[:4] if config == "small" else z[:2]
    decoder = model.decoder
    with torch.no_grad():
        encoder_out = model.encoder(x)
        codes = model.encode(x)
        image = decoder.synthesize(codes)
        truncation, _ = decoder([zt], truncation=0.7, truncation_latent=model.latent_avg[0:1], randomize_noise=False)
        return {"encoder_out": encoder_out, "codes": codes, "image": image,
                "face_pool": model(x, randomize_noise=False), "mapping": decoder.mapping(z),
                "truncation": truncation}


def reference_views(outputs: dict[str, torch.Tensor], config: str) -> dict[str, tuple[str, torch.Tensor]]:
    """Map our outputs to the fixture's files (the full config stores pooled and cropped images)."""
    views = {"encoder_out.npy": ("encoder_out", outputs["encoder_out"]), "codes.npy": ("codes", outputs["codes"]),
             "mapping.npy": ("mapping", outputs["mapping"])}
    if config == "small":
        views |= {"image.npy": ("image", outputs["image"]), "truncation.npy": ("truncation", outputs["truncation"])}
    else:
        image, trunc = outputs["image"], outputs["truncation"]
        views |= {"image_pool64.npy": ("image", F.avg_pool2d(image, 16)),
                  "image_crop32.npy": ("image", image[..., 496:528, 496:528]),
                  "image_face_pool256.npy": ("face_pool", outputs["face_pool"]),
                  "truncation_pool64.npy": ("truncation", F.avg_pool2d(trunc, 16)),
                  "truncation_crop32.npy": ("truncation", trunc[..., 496:528, 496:528])}
    return views


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", ["small", pytest.param("full", marks=pytest.mark.slow)])
def test_psp_matches_official_outputs(conformance, fixture_checkpoints, config, impl):
    path, _ = fixture_checkpoints(config)
    model = load_psp(path)
    assert (model.n_styles, model.resolution) == ((14, 256) if config == "small" else (18, 1024))
    model.decoder.use_modconv(impl)
    tolerance = load_json(conformance / config / "fixture.json")["tolerance"]
    for filename, (kind, ours) in reference_views(run_calls(model, conformance, config), config).items():
        assert_within(f"{config}/{filename} ({impl})", ours, np.load(conformance / config / filename),
                      tolerance[kind]["atol"])


@pytest.mark.parametrize("impl", IMPLS)
def test_rosinality_checkpoint_matches_official_outputs(conformance, tmp_path, impl):
    """A converted rosinality checkpoint (`g_ema` + [512] `latent_avg`) of the fixture's decoder."""
    with torch.device("meta"):
        template = Generator(StyleGAN2Config(size=256)).state_dict()
    generator = Generator(StyleGAN2Config(size=256))
    generator.load_state_dict(fixture_state_dict(template, prefix="decoder."), strict=True)
    save_stylegan2(tmp_path / "g.pt", generator, latent_avg=fixture_latent_avg(14)[0])
    loaded = load_stylegan2(tmp_path / "g.pt").use_modconv(impl)
    z = torch.from_numpy(np.load(conformance / "z.npy"))
    tolerance = load_json(conformance / "small" / "fixture.json")["tolerance"]
    with torch.no_grad():
        mapping = loaded.mapping(z)
        truncation, _ = loaded([z], truncation=0.7, truncation_latent=loaded.latent_avg, randomize_noise=False)
    assert_within("mapping", mapping, np.load(conformance / "small" / "mapping.npy"), tolerance["mapping"]["atol"])
    assert_within("truncation", truncation, np.load(conformance / "small" / "truncation.npy"),
                  tolerance["truncation"]["atol"])
