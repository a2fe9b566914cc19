"""Deterministic pSp/StyleGAN2 weights by the conformance fixture's rule (`shared/conformance/README.md` §2).

No pretrained weights can be downloaded here, so the tests, the export checks and the built-in demo use
these: each tensor is a float32 standard-normal draw seeded by the CRC-32 of its full pSp key
(`encoder.*` / `decoder.*`), mapped by a per-class affine rule that keeps every layer's activations in a
sensible range. The official code, given the same tensors, produced the fixture's reference outputs.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from .psp import PSP
from .stylegan2 import Generator, StyleGAN2Config

FIR_4 = (np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16.0).astype(np.float32)


def _draw(key: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode("utf-8"))).standard_normal(shape, dtype=np.float32)


def _encoder_tensor(key: str, module: str, leaf: str, shape: tuple[int, ...], keys: set[str]) -> np.ndarray:
    f32 = np.float32
    n = _draw(key, shape)
    if leaf == "running_var":
        return f32(1) + f32(0.1) * np.abs(n)
    if leaf in ("running_mean", "bias"):
        return f32(0.1) * n
    if len(shape) == 4:  # convs: 1/sqrt(fan_in); the SE gates need gain 2 or their sigmoids sit at 0.5
        gain = 2.0 if module.endswith((".fc1", ".fc2")) else 1.0
        return n * f32(gain / math.sqrt(shape[1] * shape[2] * shape[3]))
    if len(shape) == 2:  # EqualLinear scales at run time
        return n
    if module + ".running_mean" in keys:  # BatchNorm weight
        return f32(1) + f32(0.1) * n
    return f32(0.25) + f32(0.05) * n  # PReLU slope


def _decoder_tensor(key: str, module: str, leaf: str, shape: tuple[int, ...]) -> np.ndarray:
    f32 = np.float32
    n = _draw(key, shape)
    if module.startswith("decoder.style."):  # mapping MLP stores weights / lr_mul (0.01)
        return n * f32(100) if leaf == "weight" else n * f32(10)
    if module.endswith(".modulation") and leaf == "bias":
        return f32(1) + f32(0.1) * n
    if module.endswith(".noise"):  # noise strengths >= 0.1 so that every noise buffer matters
        return f32(0.1) + f32(0.1) * np.abs(n)
    if leaf == "bias":
        return f32(0.1) * n
    return n


def fixture_tensor(key: str, shape: Iterable[int], dtype: torch.dtype, keys: set[str]) -> torch.Tensor:
    """The fixture tensor for one full pSp key (`keys`: every key of the state dict)."""
    shape = tuple(shape)
    if dtype == torch.int64:  # BatchNorm num_batches_tracked
        return torch.zeros(shape, dtype=torch.int64)
    module, leaf = key.rsplit(".", 1)
    if leaf == "kernel":
        array = FIR_4.copy()
    elif key.startswith("encoder."):
        array = _encoder_tensor(key, module, leaf, shape, keys)
    else:
        array = _decoder_tensor(key, module, leaf, shape)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def fixture_state_dict(template: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Fixture tensors for every key of `template` (a state dict), seeded with `prefix + key`.

    Use `prefix=""` for a pSp state dict and `prefix="decoder."` for a rosinality `g_ema`.
    """
    keys = {prefix + k for k in template}
    return {k: fixture_tensor(prefix + k, v.shape, v.dtype, keys) for k, v in template.items()}


def fixture_latent_avg(n_styles: int) -> torch.Tensor:
    """The fixture checkpoint's `latent_avg` ([n_styles, 512], rows differ on purpose)."""
    return torch.from_numpy(np.float32(0.5) * _draw("latent_avg", (n_styles, 512)))


def fixture_psp(resolution: int = 256) -> PSP:
    """A pSp (encoder + decoder + latent_avg) holding the fixture weights, in eval mode."""
    model = PSP(StyleGAN2Config(size=resolution))
    model.load_state_dict(fixture_state_dict(model.state_dict()), strict=True)
    model.set_latent_avg(fixture_latent_avg(model.n_styles))
    return model.eval()


def fixture_generator(resolution: int = 256) -> Generator:
    """A rosinality-layout generator holding the fixture's decoder weights, in eval mode."""
    generator = Generator(StyleGAN2Config(size=resolution))
    generator.load_state_dict(fixture_state_dict(generator.state_dict(), prefix="decoder."), strict=True)
    return generator.eval()
