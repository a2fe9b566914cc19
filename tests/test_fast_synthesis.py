"""`FastSynthesis` computes what `Generator.synthesize` computes (constant noise), in every layout it offers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from svgan.models import FastSynthesis, FastSynthesisConfig, Generator, StyleGAN2Config
from svgan.models.fast_synthesis import FastModulatedConv
from svgan.models.stylegan2 import ModulatedConv2d

from .conftest import load_json

SMALL = StyleGAN2Config(size=64, style_dim=64, n_mlp=2, channels=(32, 32, 16, 16, 8))
# Asymmetric FIR taps catch a missing flip; 5 taps give asymmetric pads and crops.
ODD_FIRS = [StyleGAN2Config(size=32, style_dim=32, n_mlp=2, channels=(16, 8, 8, 4), blur_kernel=taps)
            for taps in [(1, 2, 3, 4), (1, 4, 6, 4, 1)]]
# 1e-5 of the nominal image range [-1, 1]. fp32 rounding alone (reference vs float64) is ~2e-6 on these images.
ATOL = 2e-5


def random_generator(config: StyleGAN2Config, seed: int = 0) -> Generator:
    """Random weights with every term switched on (a fresh model has zero noise strengths and biases), and
    ToRGB layers scaled so that images have std 0.5, i.e. sit in the nominal range like a trained model's."""
    torch.manual_seed(seed)
    generator = Generator(config).eval()
    with torch.no_grad():
        for name, p in generator.named_parameters():
            if name.endswith("noise.weight"):
                p.uniform_(0.1, 0.3)
            elif name.endswith("modulation.bias"):
                p.normal_(1.0, 0.1)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
        std = generator.synthesize(torch.randn(8, config.n_styles, config.style_dim)).std()
        for name, p in generator.named_parameters():  # images are linear in every ToRGB weight and bias
            if name.startswith(("to_rgb1.", "to_rgbs.")) and not name.endswith("modulation.weight") \
                    and not name.endswith("modulation.bias"):
                p.mul_(0.5 / std)
    return generator.use_modconv("reference")


def wplus_for(config: StyleGAN2Config, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, config.n_styles, config.style_dim, generator=torch.Generator().manual_seed(seed))


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def psnr(ours: torch.Tensor, reference: torch.Tensor, peak_to_peak: float = 2.0) -> float:
    mse = float((ours.double() - reference.double()).pow(2).mean())
    return 10 * math.log10(peak_to_peak ** 2 / mse)


@pytest.mark.parametrize("config", [SMALL, *ODD_FIRS], ids=["fir1331", "fir1234", "fir14641"])
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("fold_fir_from", [None, 8, 16, 64])
def test_fp32_matches_reference_synthesis(config, channels_last, fold_fir_from):
    generator = random_generator(config)
    wplus = wplus_for(config)
    fast = FastSynthesis(generator, FastSynthesisConfig(dtype="float32", channels_last=channels_last,
                                                        fold_fir_from=fold_fir_from))
    with torch.no_grad():
        reference = generator.synthesize(wplus)
        ours = fast(wplus)
    assert ours.shape == reference.shape == (3, 3, config.size, config.size)
    assert ours.dtype == torch.float32
    assert 0.2 < float(reference.std()) < 1.0  # the images are in the nominal range, so ATOL means what it says
    assert max_error(ours, reference) <= ATOL


@pytest.mark.parametrize("fold_fir", [True, False])
def test_upsampling_modconv_matches_reference_layer(fold_fir):
    torch.manual_seed(0)
    layer = ModulatedConv2d(8, 6, 3, style_dim=16, upsample=True).double()
    with torch.no_grad():
        layer.modulation.bias.normal_(1.0, 0.1)
    x = torch.randn(2, 8, 9, 7, dtype=torch.float64)  # odd and non-square, to catch a wrong crop
    w = torch.randn(2, 16, dtype=torch.float64)
    for dtype, atol in [(torch.float64, 1e-12), (torch.float32, 1e-5)]:
        fast = FastModulatedConv(layer, dtype, torch.channels_last, fold_fir=fold_fir)
        assert fast.weight.shape[-1] == (6 if fold_fir else 3)  # 3x3 conv (*) 4x4 FIR = 6x6
        with torch.no_grad():
            reference = layer(x, w)
            style = layer.modulation(w)
            demod = fast.demodulation(style.to(fast.demod_weight.dtype))
            ours = fast((x * style[:, :, None, None]).to(dtype)) * demod[:, :, None, None]
        assert ours.shape == reference.shape == (2, 6, 18, 14)
        assert max_error(ours, reference) <= atol, (dtype, max_error(ours, reference))


@pytest.fixture(scope="module")
def conformance_decoder(conformance):
    """The conformance fixture's 256x256 decoder (fixture-rule weights), as test_conformance builds it."""
    from svgan.models.fixture_weights import fixture_state_dict

    with torch.device("meta"):
        template = Generator(StyleGAN2Config(size=256)).state_dict()
    generator = Generator(StyleGAN2Config(size=256))
    generator.load_state_dict(fixture_state_dict(template, prefix="decoder."), strict=True)
    return generator.eval()


@pytest.mark.parametrize("fold_fir_from", [None, 64])
def test_fp32_reproduces_the_conformance_fixture(conformance, conformance_decoder, fold_fir_from):
    """`image.npy` is the official decoder on `codes.npy` with the stored noise (conformance README §4)."""
    codes = torch.from_numpy(np.load(conformance / "small" / "codes.npy"))
    expected = np.load(conformance / "small" / "image.npy")
    atol = load_json(conformance / "small" / "fixture.json")["tolerance"]["image"]["atol"]
    fast = FastSynthesis(conformance_decoder, FastSynthesisConfig(dtype="float32", fold_fir_from=fold_fir_from))
    with torch.no_grad():
        ours = fast(codes).numpy()
    assert ours.shape == expected.shape
    err = float(np.abs(ours - expected).max())
    assert err <= atol, f"max abs error {err:.3g} > atol {atol:.3g}"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("fold_fir_from", [None, 8])
def test_reduced_precision_is_close_to_fp32(dtype, fold_fir_from):
    generator = random_generator(SMALL)
    wplus = wplus_for(SMALL, batch=4)
    with torch.no_grad():
        full = FastSynthesis(generator, FastSynthesisConfig(dtype="float32", fold_fir_from=fold_fir_from))(wplus)
        reduced = FastSynthesis(generator, FastSynthesisConfig(dtype=dtype, fold_fir_from=fold_fir_from))(wplus)
    assert reduced.dtype == getattr(torch, dtype)
    assert torch.isfinite(reduced).all()
    assert psnr(reduced, full) >= 40.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_samples_do_not_depend_on_the_batch(dtype):
    generator = random_generator(SMALL)
    wplus = wplus_for(SMALL, batch=3)
    fast = FastSynthesis(generator, FastSynthesisConfig(dtype=dtype, fold_fir_from=8))
    with torch.no_grad():
        batch = fast(wplus)
        # Changing one sample's W+ leaves the other rows bit-identical: nothing mixes samples.
        changed = fast(torch.cat([wplus[:1], wplus[1:2] + 1, wplus[2:]]))
        assert torch.equal(changed[0], batch[0]) and torch.equal(changed[2], batch[2])
        assert not torch.equal(changed[1], batch[1])
        # Batch 1 gives each row again, up to the rounding of a conv algorithm chosen per batch size.
        atol = {"float32": 1e-5, "bfloat16": 2e-2}[dtype]  # bf16: ~2 ulps at 1
        for row in range(3):
            torch.testing.assert_close(fast(wplus[row: row + 1]), batch[row: row + 1], atol=atol, rtol=0)


def test_constants_are_prepared_once_in_the_target_dtype_and_layout():
    generator = random_generator(SMALL)
    fast = FastSynthesis(generator, FastSynthesisConfig(dtype="float16", fold_fir_from=32))
    assert fast.state_dict() == {}  # derived buffers only: nothing to save or load
    up32, up64 = fast.convs[4].conv, fast.convs[6].conv  # the up-sampling convs into 32² and 64²
    assert not fast.convs[2].conv.fold_fir and up32.fold_fir and up64.fold_fir
    for layer in [fast.conv1, *fast.convs]:
        assert layer.conv.weight.dtype == layer.noise.dtype == layer.bias.dtype == torch.float16
        assert layer.conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert layer.conv.demod_weight.dtype == torch.float32  # demodulation is computed in fp32
    assert fast.affine_weight.dtype == torch.float32


def test_config_validation():
    with pytest.raises(ValueError, match="dtype"):
        FastSynthesisConfig(dtype="float8")
    with pytest.raises(ValueError, match="fold_fir_from"):
        FastSynthesisConfig(fold_fir_from=0)
    fast = FastSynthesis(random_generator(SMALL), FastSynthesisConfig(dtype="float32"))
    with pytest.raises(ValueError, match="W\\+"):
        fast(torch.zeros(1, SMALL.n_styles - 1, SMALL.style_dim))


@pytest.mark.slow
def test_compiled_epilogue_matches_eager():
    """Inductor (C++ on CPU, Triton on CUDA) fuses the epilogue. Dynamic shapes: a few graphs serve every layer
    and batch size, and several configurations in one process never reach dynamo's recompile limit."""
    generator = random_generator(SMALL)
    wplus = wplus_for(SMALL)
    with torch.no_grad(), torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        for dtype, channels_last in [("float32", True), ("float32", False), ("bfloat16", True)]:
            config = FastSynthesisConfig(dtype=dtype, channels_last=channels_last, fold_fir_from=16)
            eager = FastSynthesis(generator, config)
            compiled = FastSynthesis(generator, replace(config, compile_epilogue=True))
            atol = 1e-5 if dtype == "float32" else 5e-2
            for batch in [wplus, wplus[:1], wplus[:2]]:
                torch.testing.assert_close(compiled(batch), eager(batch), atol=atol, rtol=0)
