"""StyleGAN2 generator (Karras et al. 2020) with rosinality's `stylegan2-pytorch` state-dict layout.

`Generator(StyleGAN2Config(size=1024))` has exactly the keys, shapes and buffers of rosinality's
`Generator(1024, 512, 8, channel_multiplier=2)` (= pSp's `decoder.*`), so official checkpoints load with
`strict=True` and compute what the official code computes (proved against `shared/conformance/`).

Two implementations of the modulated convolution, chosen at run time with `Generator.use_modconv(...)`:

* ``"reference"`` — as the official code: per-sample modulated + demodulated weights, one grouped conv
  whose group count is the batch size, FIR resampling through `upfirdn2d`.
* ``"export"`` — batch-friendly: scale the input by the style, one shared conv, demodulate the output;
  FIR up-sampling as a depthwise conv-transpose and FIR blur as a depthwise conv. No op depends on the
  batch size, which is what ONNX/TensorRT need (DESIGN §8). Mathematically identical; in float32 the
  two differ by rounding only (about 1e-5 on 1024² images).

Pure PyTorch, no compiled extensions: it runs on CPU and CUDA alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn
from torch.nn import functional as F

ModconvImpl = Literal["reference", "export"]
MODCONV_IMPLS: tuple[str, ...] = ("reference", "export")


@dataclass(frozen=True)
class StyleGAN2Config:
    """Architecture of a rosinality StyleGAN2 generator; the defaults are FFHQ config-f at 1024².

    Feature maps at resolution r have `min(channel_max, channel_multiplier * 16384 // r)` channels, which
    reproduces rosinality's table (512 up to 32², then 256·m, 128·m, ... at 64², 128², ...). `channels`
    overrides that table with one entry per resolution 4, 8, ..., size (used for reduced models and
    when a checkpoint's widths are read off its tensors).
    """

    size: int = 1024
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    channel_max: int = 512
    channels: tuple[int, ...] | None = None
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    lr_mlp: float = 0.01

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_styles(self) -> int:
        """Number of W+ style vectors, `2 * log2(size) - 2` (18 at 1024²)."""
        return 2 * self.log_size - 2

    @property
    def num_layers(self) -> int:
        """Number of styled convolutions, each with its own noise buffer."""
        return 2 * (self.log_size - 2) + 1

    def channels_at(self, resolution: int) -> int:
        if self.channels is not None:
            return self.channels[int(math.log2(resolution)) - 2]
        return min(self.channel_max, self.channel_multiplier * 16384 // resolution)

    def __post_init__(self) -> None:
        if self.size < 8 or 2 ** self.log_size != self.size:
            raise ValueError(f"StyleGAN2 size must be a power of two >= 8, got {self.size}")
        if self.channels is not None and len(self.channels) != self.log_size - 1:
            raise ValueError(f"channels needs {self.log_size - 1} entries (4² .. {self.size}²), got {len(self.channels)}")


# --------------------------------------------------------------------------------------------------
# FIR resampling


def make_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with `kernel` (true convolution), downsample.

    The same operation as the official `upfirdn2d` (its pure-PyTorch path), for the reference
    modulated convolution. Negative pads crop.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    out = x.reshape(b * c, 1, h, 1, w, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
    out = out.reshape(b * c, 1, h * up, w * up)
    p0, p1 = pad
    out = F.pad(out, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    out = out[:, :, max(-p0, 0): out.shape[2] - max(-p1, 0), max(-p0, 0): out.shape[3] - max(-p1, 0)]
    out = F.conv2d(out, torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).to(out.dtype))
    out = out[:, :, ::down, ::down]
    return out.reshape(b, c, out.shape[2], out.shape[3])


def fir_blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """`upfirdn2d(x, kernel, pad=pad)` as one depthwise conv (export-friendly)."""
    c = x.shape[1]
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), weight, groups=c)


def fir_upsample2x(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """`upfirdn2d(x, kernel, up=2, pad=pad)` as one depthwise conv-transpose (export-friendly).

    A stride-2 conv-transpose is zero insertion followed by a full correlation with the flipped
    weight, so the un-flipped FIR kernel is the weight; the pads of upfirdn2d become a crop.
    """
    c, k = x.shape[1], kernel.shape[0]
    weight = kernel.to(x.dtype).expand(c, 1, k, k)
    out = F.conv_transpose2d(x, weight, stride=2, groups=c)
    # conv_transpose2d's output equals upfirdn2d with pads (k-1, k-2): crop the difference.
    lo, hi = (k - 1) - pad[0], (k - 2) - pad[1]
    return out[:, :, lo: out.shape[2] - hi, lo: out.shape[3] - hi]


class Upsample(nn.Module):
    """2x FIR up-sampling of the skip (RGB) path; buffer `kernel` = FIR * 4 as in the official code."""

    def __init__(self, blur_kernel: Sequence[int], factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", make_kernel(blur_kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)
        self.impl: ModconvImpl = "reference"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "export":
            return fir_upsample2x(x, self.kernel, self.pad)
        return upfirdn2d(x, self.kernel, up=2, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass after the transposed conv of an up-sampling modulated conv."""

    def __init__(self, blur_kernel: Sequence[int], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(blur_kernel) * upsample_factor ** 2)
        self.pad = pad
        self.impl: ModconvImpl = "reference"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "export":
            return fir_blur(x, self.kernel, self.pad)
        return upfirdn2d(x, self.kernel, pad=self.pad)


# --------------------------------------------------------------------------------------------------
# Layers


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2,
                     scale: float = math.sqrt(2)) -> torch.Tensor:
    """Bias + leaky ReLU + gain sqrt(2): StyleGAN2's 'fused_lrelu' activation."""
    bias = bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x + bias, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored unscaled, scaled by lr_mul/sqrt(fan_in)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (optionally demodulated, optionally 2x up-sampling)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1)
        self.impl: ModconvImpl = "reference"

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = self.modulation(style)
        if self.impl == "export":
            return self._forward_shared(x, style)
        return self._forward_grouped(x, style)

    def _forward_grouped(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernel_size
        weight = self.scale * self.weight * style.view(b, 1, c, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, -1, 1, 1, 1)
        x = x.reshape(1, b * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, self.out_channels, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
            out = self.blur(out.view(b, self.out_channels, out.shape[2], out.shape[3]))
        else:
            weight = weight.reshape(b * self.out_channels, c, k, k)
            out = F.conv2d(x, weight, padding=self.padding, groups=b)
            out = out.view(b, self.out_channels, out.shape[2], out.shape[3])
        return out

    def _forward_shared(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        weight = self.scale * self.weight.squeeze(0)
        x = x * style[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # ||w_oi * s_i||² over (i, kh, kw) = sum_i s_i² * sum_(kh,kw) w_oi²: a matmul, no per-sample weights.
            demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum([2, 3]).t() + 1e-8)
            out = out * demod[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv + per-pixel noise + bias/leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation), added to the up-sampled skip image."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# --------------------------------------------------------------------------------------------------
# Generator


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network z -> w (`style`) and synthesis network W+ -> RGB.

    Attribute names follow rosinality's `Generator` so its `g_ema` state dict (and pSp's `decoder.*`)
    loads strictly. Images come out nominally in [-1, 1]; nothing clamps them.
    """

    def __init__(self, config: StyleGAN2Config = StyleGAN2Config()):
        super().__init__()
        self.config = config
        self.latent_avg: torch.Tensor | None = None  # w average (1 x 512) when a checkpoint provides one
        c = config
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(c.style_dim, c.style_dim, lr_mul=c.lr_mlp, activation=True) for _ in range(c.n_mlp)])
        ch4 = c.channels_at(4)
        self.input = ConstantInput(ch4)
        self.conv1 = StyledConv(ch4, ch4, 3, c.style_dim, blur_kernel=c.blur_kernel)
        self.to_rgb1 = ToRGB(ch4, c.style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer in range(c.num_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_ch = ch4
        for log_res in range(3, c.log_size + 1):
            out_ch = c.channels_at(2 ** log_res)
            self.convs.append(StyledConv(in_ch, out_ch, 3, c.style_dim, upsample=True, blur_kernel=c.blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, c.style_dim, blur_kernel=c.blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, c.style_dim, blur_kernel=c.blur_kernel))
            in_ch = out_ch

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    @property
    def resolution(self) -> int:
        return self.config.size

    def use_modconv(self, impl: ModconvImpl) -> "Generator":
        """Switch every modulated conv and FIR filter to `impl` ("reference" or "export")."""
        if impl not in MODCONV_IMPLS:
            raise ValueError(f"modconv implementation must be one of {MODCONV_IMPLS}, got {impl!r}")
        for m in self.modules():
            if isinstance(m, (ModulatedConv2d, Blur, Upsample)):
                m.impl = impl
        return self

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """Mapping network: z (B x 512) -> w (B x 512)."""
        return self.style(z)

    get_latent = mapping  # rosinality's name

    def constant_noise(self) -> list[torch.Tensor]:
        """The stored noise buffers, one per styled conv (`randomize_noise=False`)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.config.num_layers)]

    def synthesize(self, wplus: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Synthesis network: W+ (B x n_styles x 512) -> RGB (B x 3 x size x size).

        `noise=None` uses the constant stored noise (deterministic, flicker-free video); pass a list of
        `None`s for fresh random noise, or your own tensors.
        """
        if wplus.ndim != 3 or wplus.shape[1] != self.n_styles:
            raise ValueError(f"expected W+ of shape (B, {self.n_styles}, {self.config.style_dim}), got {tuple(wplus.shape)}")
        noise = self.constant_noise() if noise is None else list(noise)
        out = self.conv1(self.input(wplus.shape[0]), wplus[:, 0], noise[0])
        skip = self.to_rgb1(out, wplus[:, 1])
        i = 1
        for conv_up, conv, rgb in zip(self.convs[::2], self.convs[1::2], self.to_rgbs):
            out = conv_up(out, wplus[:, i], noise[i])
            out = conv(out, wplus[:, i + 1], noise[i + 1])
            skip = rgb(out, wplus[:, i + 2], skip)
            i += 2
        return skip

    def mean_latent(self, n: int = 100_000, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of w over `n` random z (1 x 512), for truncation when a checkpoint has no latent_avg."""
        device = self.input.input.device
        z = torch.randn(n, self.config.style_dim, device=device, generator=generator)
        return self.mapping(z).mean(0, keepdim=True)

    def forward(self, styles: Sequence[torch.Tensor], return_latents: bool = False, inject_index: int | None = None,
                truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
                input_is_latent: bool = False, noise: Sequence[torch.Tensor | None] | None = None,
                randomize_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality's call signature, for drop-in use: `styles` is a list of one or two z (or w) batches.

        Returns `(image, W+ or None)`. Style mixing with two styles needs an explicit `inject_index`
        (the official code draws it at random).
        """
        if not input_is_latent:
            styles = [self.mapping(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        n = self.n_styles
        if len(styles) == 1:
            latent = styles[0] if styles[0].ndim == 3 else styles[0].unsqueeze(1).repeat(1, n, 1)
        elif len(styles) == 2 and inject_index is not None:
            latent = torch.cat([styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                                styles[1].unsqueeze(1).repeat(1, n - inject_index, 1)], 1)
        else:
            raise ValueError("styles must hold one batch, or two with inject_index for style mixing")
        if noise is None and randomize_noise:
            noise = [None] * self.config.num_layers
        image = self.synthesize(latent, noise)
        return image, (latent if return_latents else None)
