"""The export-friendly StyleGAN2 path computes what the reference path computes, per sample."""

from __future__ import annotations

import pytest
import torch

from svgan.models import Generator, StyleGAN2Config
from svgan.models.stylegan2 import fir_blur, fir_upsample2x, upfirdn2d

SMALL = StyleGAN2Config(size=64, style_dim=64, n_mlp=2, channels=(32, 32, 16, 16, 8))


def test_fir_ops_equal_upfirdn2d_with_an_asymmetric_kernel():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64)
    kernel = torch.rand(4, 4, dtype=torch.float64)
    for pad in [(2, 1), (1, 1), (3, 2)]:
        torch.testing.assert_close(fir_upsample2x(x, kernel, pad), upfirdn2d(x, kernel, up=2, pad=pad))
        torch.testing.assert_close(fir_blur(x, kernel, pad), upfirdn2d(x, kernel, pad=pad))


def test_export_modconv_matches_reference_for_per_sample_styles():
    torch.manual_seed(0)
    generator = Generator(SMALL).double().eval()
    wplus = torch.randn(3, SMALL.n_styles, SMALL.style_dim, dtype=torch.float64)
    with torch.no_grad():
        reference = generator.use_modconv("reference").synthesize(wplus)
        export = generator.use_modconv("export").synthesize(wplus)
    assert reference.shape == (3, 3, 64, 64)
    torch.testing.assert_close(export, reference, atol=1e-10, rtol=0)
    # Each sample depends on its own styles only: the batch is not mixed.
    with torch.no_grad():
        single = generator.synthesize(wplus[1:2])
    torch.testing.assert_close(single, export[1:2], atol=1e-10, rtol=0)


def test_constant_noise_is_deterministic_and_random_noise_is_not():
    torch.manual_seed(0)
    generator = Generator(SMALL).eval()
    for name, p in generator.named_parameters():
        if name.endswith("noise.weight"):  # noise strengths start at 0 in a fresh model
            p.data.fill_(0.1)
    wplus = torch.randn(1, SMALL.n_styles, SMALL.style_dim)
    with torch.no_grad():
        a, b = generator.synthesize(wplus), generator.synthesize(wplus)
        fresh = [None] * SMALL.num_layers
        c, d = generator.synthesize(wplus, fresh), generator.synthesize(wplus, fresh)
    assert torch.equal(a, b)
    assert not torch.equal(c, d)


def test_rosinality_forward_signature():
    torch.manual_seed(0)
    generator = Generator(SMALL).eval()
    z = torch.randn(2, SMALL.style_dim)
    with torch.no_grad():
        image, latent = generator([z], return_latents=True, randomize_noise=False)
        w = generator.mapping(z)
        torch.testing.assert_close(latent, w[:, None].expand(-1, SMALL.n_styles, -1))
        torch.testing.assert_close(image, generator.synthesize(latent))
        mixed, latent = generator([z, z.flip(0)], inject_index=2, return_latents=True, randomize_noise=False)
        assert torch.equal(latent[:, :2], w[:, None].expand(-1, 2, -1))
    with pytest.raises(ValueError, match="truncation_latent"):
        generator([z], truncation=0.5)


@pytest.mark.parametrize("size", [6, 48])
def test_config_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(size=size)


def test_default_channels_follow_rosinality_table():
    config = StyleGAN2Config(size=1024)
    assert [config.channels_at(2 ** r) for r in range(2, 11)] == [512, 512, 512, 512, 512, 256, 128, 64, 32]
    assert config.n_styles == 18 and config.num_layers == 17
