"""A fast, inference-only StyleGAN2 synthesis network, built once from a loaded `Generator` (DESIGN §9c).

`FastSynthesis(decoder)(wplus)` computes what `decoder.synthesize(wplus)` computes (constant stored noise),
rearranged for a GPU. §9c found batch 1 launch-bound and batch 16 memory-bound in the FIR, bias, noise and
activation passes, so the rearrangement removes passes over full-resolution activations rather than FLOPs:

* Everything that does not depend on W+ is computed once, in the target dtype and memory format: the
  equalised-lr conv weights (`scale * weight`), the demodulation matrices, each layer's noise term
  (`strength * noise buffer`), the biases, the FIR kernels.
* Modulated convs use the batch-friendly form (rosinality's unfused path, `ModulatedConv2d._forward_shared`):
  scale the input by the style, one conv with weights shared by the batch, demodulate the output. No
  per-sample weights and no grouped conv, so every op's shape depends on the batch size through the batch
  dim only (one CUDA graph per batch size), and nothing syncs with the host.
* Each styled conv ends in one elementwise epilogue, `leaky_relu(out * demod + noise + bias, 0.2) * sqrt(2)`,
  which also applies the *next* modulated convs' input styles: the activation is only ever read by convs,
  and each of them wants it multiplied by its style first, so that multiply costs no pass of its own.
  With `compile_epilogue` Inductor emits the epilogue as one kernel.
* The FIR blur after an up-sampling conv is folded into its transposed-conv weights where that pays off
  (`FastSynthesisConfig.fold_fir_from`).
* All style affines (the `EqualLinear` modulations) are one GEMM, in float32; demodulation factors are
  computed in float32 (the rsqrt of a sum of squares is not safe in float16) and cast.

Images come out in the config's dtype, unclamped, nominally in [-1, 1]. The module holds only buffers
(not in its state dict) derived from the decoder: move it with `.to(device)`, never `.to(dtype)`.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .stylegan2 import Generator, ModulatedConv2d, StyledConv, ToRGB

DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
SQRT2 = math.sqrt(2)


@dataclass(frozen=True)
class FastSynthesisConfig:
    """How `FastSynthesis` lays out its computation; none of it changes the maths."""

    dtype: str = "float16"
    channels_last: bool = True
    # Fold the FIR blur of the up-sampling convs into their weights for output resolutions >= this (None:
    # never). The 3x3 stride-2 transposed conv convolved with the 4x4 blur is a 6x6 stride-2 transposed
    # conv: 4x the MACs (9 R² Cin Cout instead of 2.25 R² Cin Cout at output resolution R), but the
    # (R+1)² pre-blur tensor is never written and read back and the depthwise blur (a kernel that runs
    # far below bandwidth) disappears: 2 passes of R² Cout values saved. In fp16 the extra 13.5 R² Cin Cout
    # FLOP cost less than the 4 R² Cout bytes saved when Cin < ~4 x (FLOP/byte ridge) / 13.5, i.e.
    # Cin < ~90 on an H100 (ridge ~300 FLOP/byte dense fp16). Per resolution in FFHQ config-f (Cin of the
    # up conv: 512 up to 128², 256 at 256², 128 at 512², 64 at 1024²) that is a clear win at 1024² (the
    # unfolded conv is itself memory-bound there, so the extra MACs are nearly free), about break-even at
    # 512² (where the blur's poor efficiency tips it), and a loss at 256² and below. Hence 512; the GPU
    # benchmark should sweep {256, 512, 1024, None}.
    fold_fir_from: int | None = 512
    # Wrap the styled-conv epilogue in torch.compile (dynamic shapes: a few graphs for all layers, no
    # recompile per resolution) so that on CUDA it is one Triton kernel instead of ~5 eager passes.
    compile_epilogue: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.fold_fir_from is not None and (not isinstance(self.fold_fir_from, int) or self.fold_fir_from < 1):
            raise ValueError(f"fold_fir_from must be a positive resolution or None, got {self.fold_fir_from!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


# --------------------------------------------------------------------------------------------------
# Constant preparation (float64, once)


def fold_fir_into_transposed_conv(weight: torch.Tensor, fir: torch.Tensor) -> torch.Tensor:
    """The transposed-conv weight [in, out, k + K - 1, ...] equal to `weight` [in, out, k, k] then the FIR [K, K].

    A stride-2 transposed conv scatters x[i] * w[t] to output 2i + t; a true convolution with the FIR
    then gives x[i] * (w * fir)[n - 2i]: a transposed conv whose kernel is the full convolution
    (w * fir)[n] = sum_u fir[u] w[n - u], built here as K² shifted copies of w.
    """
    k, taps = weight.shape[-1], fir.shape[0]
    folded = weight.new_zeros(*weight.shape[:2], k + taps - 1, k + taps - 1)
    for u in range(taps):
        for v in range(taps):
            folded[:, :, u: u + k, v: v + k] += fir[u, v] * weight
    return folded


def _prepare(t: torch.Tensor, dtype: torch.dtype, memory_format: torch.memory_format) -> torch.Tensor:
    t = t.detach().to(dtype)
    return t.contiguous(memory_format=memory_format) if t.ndim == 4 else t.contiguous()


def _crop(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Drop `lo` leading and `hi` trailing rows and columns (a view; static for a given input shape)."""
    return x if lo == hi == 0 else x[:, :, lo: x.shape[2] - hi, lo: x.shape[3] - hi]


# --------------------------------------------------------------------------------------------------
# Layers


class FastModulatedConv(nn.Module):
    """A `ModulatedConv2d` as one shared conv on a pre-modulated input, plus its demodulation factors.

    `forward(x * style)` is the un-demodulated conv output (after the FIR blur when up-sampling);
    multiplying it by `demodulation(style)` gives what the reference conv gives.
    """

    def __init__(self, conv: ModulatedConv2d, dtype: torch.dtype, memory_format: torch.memory_format,
                 fold_fir: bool = False):
        super().__init__()
        weight = conv.scale * conv.weight.detach().squeeze(0).double()  # [out, in, k, k], equalised lr applied
        self.demodulate = conv.demodulate
        self.upsample = conv.upsample
        self.fold_fir = fold_fir and conv.upsample
        if conv.demodulate:
            # ||w_oi s_i||² over (i, kh, kw) = sum_i s_i² sum_(kh,kw) w_oi²: one [B, in] @ [in, out] matmul.
            # In float32 (float64 for a float64 conv) whatever the conv dtype: a sum of squares and its rsqrt
            # are not safe in fp16.
            demod_dtype = torch.promote_types(dtype, torch.float32)
            self.register_buffer("demod_weight", weight.pow(2).sum([2, 3]).t().to(demod_dtype), persistent=False)
        self.padding = conv.padding
        self.crop = (0, 0)
        if conv.upsample:
            fir = conv.blur.kernel.double()
            taps, (pad0, pad1) = fir.shape[0], conv.blur.pad
            weight = weight.transpose(0, 1)  # conv_transpose2d layout [in, out, k, k]
            if self.fold_fir:
                # The blur's output is the full convolution cropped by (taps - 1 - pad) on each side.
                weight = fold_fir_into_transposed_conv(weight, fir)
                self.crop = (taps - 1 - pad0, taps - 1 - pad1)
            else:
                # Depthwise FIR blur: correlation with the flipped kernel is upfirdn2d's true convolution.
                blur = torch.flip(fir, [0, 1]).expand(conv.out_channels, 1, taps, taps)
                self.register_buffer("blur_weight", _prepare(blur, dtype, memory_format), persistent=False)
                self.blur_pad = (pad0, pad1)
        self.register_buffer("weight", _prepare(weight, dtype, memory_format), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.upsample:
            return F.conv2d(x, self.weight, padding=self.padding)
        # conv_transpose2d's `padding` crops symmetrically; any asymmetric remainder is a view.
        lo, hi = self.crop
        out = _crop(F.conv_transpose2d(x, self.weight, stride=2, padding=min(lo, hi)), lo - min(lo, hi),
                    hi - min(lo, hi))
        if self.fold_fir:
            return out
        pad0, pad1 = self.blur_pad
        if pad0 != pad1:  # an extra pass, only for FIR kernels whose padding is asymmetric
            out, pad0 = F.pad(out, [pad0, pad1, pad0, pad1]), 0
        return F.conv2d(out, self.blur_weight, padding=pad0, groups=out.shape[1])

    def demodulation(self, style: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-output-channel factors [B, out] from the style [B, in], both in `demod_weight`'s dtype."""
        return torch.rsqrt(style.square() @ self.demod_weight + 1e-8)


def styled_conv_epilogue(out: torch.Tensor, demod: torch.Tensor, noise: torch.Tensor, bias: torch.Tensor,
                         gains: list[torch.Tensor]) -> list[torch.Tensor]:
    """Demodulate, add noise and bias, leaky ReLU; one output per consumer, pre-multiplied by its input style.

    `gains` are `sqrt(2) * style` of the convs that read this activation (the fused leaky ReLU's gain
    folded in). Pure elementwise maths with broadcasting: torch.compile fuses it into a single pass.
    """
    x = F.leaky_relu(out * demod + noise + bias, 0.2)
    return [x * gain for gain in gains]


def _own_copy(fn: types.FunctionType) -> types.FunctionType:
    """`fn` with a code object of its own (torch.compile caches graphs per code object)."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


class FastStyledConv(nn.Module):
    """A `StyledConv` with its constant noise term: modulated conv, then the fused epilogue."""

    def __init__(self, layer: StyledConv, noise: torch.Tensor, dtype: torch.dtype, memory_format: torch.memory_format,
                 fold_fir: bool = False, epilogue=styled_conv_epilogue):
        super().__init__()
        self.conv = FastModulatedConv(layer.conv, dtype, memory_format, fold_fir)
        self.register_buffer("noise", _prepare(layer.noise.weight * noise, dtype, memory_format), persistent=False)
        self.register_buffer("bias", _prepare(layer.activate.bias.view(1, -1, 1, 1), dtype, memory_format),
                             persistent=False)
        self.epilogue = epilogue

    def forward(self, x: torch.Tensor, demod: torch.Tensor, gains: list[torch.Tensor]) -> list[torch.Tensor]:
        """`x` arrives multiplied by this layer's style; `demod` is [B, out, 1, 1] in the activation dtype."""
        return self.epilogue(self.conv(x), demod, self.noise, self.bias, gains)


class FastToRGB(nn.Module):
    """A `ToRGB`: 1x1 modulated conv (no demodulation) + bias + the 2x FIR up-sampled skip image."""

    def __init__(self, layer: ToRGB, dtype: torch.dtype, memory_format: torch.memory_format):
        super().__init__()
        self.conv = FastModulatedConv(layer.conv, dtype, memory_format)
        self.register_buffer("bias", _prepare(layer.bias, dtype, memory_format), persistent=False)
        if hasattr(layer, "upsample"):
            # upfirdn2d(up=2) as a depthwise stride-2 transposed conv whose weight is the un-flipped FIR;
            # its output is upfirdn2d's with pads (taps-1, taps-2): crop the difference.
            fir = layer.upsample.kernel
            taps, (pad0, pad1) = fir.shape[0], layer.upsample.pad
            self.register_buffer("upsample_weight", _prepare(fir.expand(3, 1, taps, taps), dtype, memory_format),
                                 persistent=False)
            self.skip_crop = (taps - 1 - pad0, taps - 2 - pad1)

    def upsample(self, skip: torch.Tensor) -> torch.Tensor:
        lo, hi = self.skip_crop
        pad = min(lo, hi)
        out = F.conv_transpose2d(skip, self.upsample_weight, stride=2, padding=pad, groups=skip.shape[1])
        return _crop(out, lo - pad, hi - pad)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """`x` arrives multiplied by this layer's style."""
        out = self.conv(x) + self.bias
        return out if skip is None else out + self.upsample(skip)


# --------------------------------------------------------------------------------------------------
# Synthesis


class FastSynthesis(nn.Module):
    """Inference-only synthesis W+ [B, n_styles, style_dim] -> RGB [B, 3, size, size] of a `Generator`.

    Modulated convs are numbered in the order they run: conv1 (0), to_rgb1 (1), then per resolution
    block j the up-sampling conv (2 + 3j), the conv (3 + 3j) and the ToRGB (4 + 3j), as in
    `Generator.synthesize`, which also fixes the W+ row each one reads.
    """

    def __init__(self, decoder: Generator, config: FastSynthesisConfig = FastSynthesisConfig()):
        super().__init__()
        self.config = config
        self.n_styles = decoder.n_styles
        self.style_dim = decoder.config.style_dim
        self.resolution = decoder.resolution
        dtype, fmt = config.torch_dtype, config.memory_format
        epilogue = styled_conv_epilogue
        if config.compile_epilogue:
            # Dynamo keeps at most 8 graphs per code object (`recompile_limit`) and one instance needs up to 4
            # (1 or 2 readers x batch 1 or more; dtype and layout are guards too), so each instance compiles
            # its own copy of the function: several configurations in one process never fall back to eager.
            epilogue = torch.compile(_own_copy(styled_conv_epilogue), dynamic=True, fullgraph=True)

        # Modulated convs in execution order with the W+ row each one reads (Generator.synthesize).
        modconvs: list[tuple[ModulatedConv2d, int]] = [(decoder.conv1.conv, 0), (decoder.to_rgb1.conv, 1)]
        for j, (up, conv, rgb) in enumerate(zip(decoder.convs[::2], decoder.convs[1::2], decoder.to_rgbs)):
            modconvs += [(up.conv, 1 + 2 * j), (conv.conv, 2 + 2 * j), (rgb.conv, 3 + 2 * j)]

        # Every modulation is an EqualLinear on one W+ row: stack them into one [sum(in), style_dim] affine,
        # applied to all rows at once (one GEMM instead of ~26 tiny ones; the unused row/layer pairs cost
        # ~0.1 % of a frame's FLOPs). Layer i's style is `styles[:, row_i, start_i:end_i]`.
        weights, biases, self.style_slices = [], [], []
        start = 0
        for conv, row in modconvs:
            mod = conv.modulation
            weights.append(mod.weight.detach().double() * mod.scale)
            biases.append(mod.bias.detach().double() * mod.lr_mul)
            self.style_slices.append((row, start, start + conv.in_channels))
            start += conv.in_channels
        self.register_buffer("affine_weight", torch.cat(weights).float(), persistent=False)
        self.register_buffer("affine_bias", torch.cat(biases).float(), persistent=False)

        self.register_buffer("input", _prepare(decoder.input.input, dtype, fmt), persistent=False)
        noise = decoder.constant_noise()
        fold_from = math.inf if config.fold_fir_from is None else config.fold_fir_from
        self.conv1 = FastStyledConv(decoder.conv1, noise[0], dtype, fmt, epilogue=epilogue)
        self.to_rgb1 = FastToRGB(decoder.to_rgb1, dtype, fmt)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for j, (up, conv, rgb) in enumerate(zip(decoder.convs[::2], decoder.convs[1::2], decoder.to_rgbs)):
            resolution = 2 ** (j + 3)
            self.convs.append(FastStyledConv(up, noise[1 + 2 * j], dtype, fmt, resolution >= fold_from, epilogue))
            self.convs.append(FastStyledConv(conv, noise[2 + 2 * j], dtype, fmt, epilogue=epilogue))
            self.to_rgbs.append(FastToRGB(rgb, dtype, fmt))

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        if wplus.ndim != 3 or wplus.shape[1:] != (self.n_styles, self.style_dim):
            raise ValueError(f"expected W+ of shape (B, {self.n_styles}, {self.style_dim}), got {tuple(wplus.shape)}")
        dtype = self.config.torch_dtype
        styles = F.linear(wplus.float(), self.affine_weight, self.affine_bias)  # [B, n_styles, sum(in)], fp32
        gains = (styles * SQRT2).to(dtype)  # the inputs of every conv but the first are sqrt(2)-gained activations

        def style(i: int, of: torch.Tensor = styles) -> torch.Tensor:
            row, start, end = self.style_slices[i]
            return of[:, row, start:end]

        def gain(i: int) -> torch.Tensor:
            return style(i, gains)[:, :, None, None]

        def demod(layer: FastStyledConv, i: int) -> torch.Tensor:
            return layer.conv.demodulation(style(i)).to(dtype)[:, :, None, None]

        x = (self.input * style(0).to(dtype)[:, :, None, None]).contiguous(memory_format=self.config.memory_format)
        x_rgb, x = self.conv1(x, demod(self.conv1, 0), [gain(1), gain(2)])  # read by to_rgb1 and the first up conv
        image = self.to_rgb1(x_rgb)
        n_blocks = len(self.to_rgbs)
        for j, (up, conv, rgb) in enumerate(zip(self.convs[::2], self.convs[1::2], self.to_rgbs)):
            i = 2 + 3 * j
            (x,) = up(x, demod(up, i), [gain(i + 1)])
            # The block's output is read by its ToRGB and, except in the last block, the next up conv.
            readers = [gain(i + 2)] if j == n_blocks - 1 else [gain(i + 2), gain(i + 3)]
            x_rgb, *rest = conv(x, demod(conv, i + 1), readers)
            image = rgb(x_rgb, image)
            x = rest[0] if rest else None
        return image
