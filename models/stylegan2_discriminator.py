"""StyleGAN2 discriminator (residual architecture) with rosinality's `Discriminator` state-dict layout.

Only training needs it (the demo world trains its own small StyleGAN2, `svgan.world.stylegan2_trainer`);
nothing is exported. The architecture follows config-f: a 1x1 "fromRGB" conv, one residual block per
resolution halving the image (3x3 conv, then a 3x3 stride-2 conv after a FIR blur, with a blurred 1x1
stride-2 skip, summed and scaled by 1/sqrt(2)), a minibatch standard-deviation feature at 4x4, a 3x3 conv
and two equalised linear layers down to one logit. Widths mirror the generator's `StyleGAN2Config`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .stylegan2 import Blur, EqualLinear, FusedLeakyReLU, StyleGAN2Config


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: weights stored unscaled, scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Sequential):
    """[FIR blur ->] equalised conv (stride 2 when down-sampling) [-> bias + leaky ReLU]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[int] = (1, 3, 3, 1), bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
            blur.impl = "export"  # the depthwise-conv FIR: same result, faster than zero-insertion upfirdn2d
            layers.append(blur)
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, blur_kernel=blur_kernel,
                              activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """Image (B x 3 x size x size, [-1, 1]) -> realness logit (B x 1)."""

    def __init__(self, config: StyleGAN2Config, stddev_group: int = 4):
        super().__init__()
        c = config
        self.stddev_group = stddev_group
        layers: list[nn.Module] = [ConvLayer(3, c.channels_at(c.size), 1)]
        for log_res in range(c.log_size, 2, -1):
            layers.append(ResBlock(c.channels_at(2 ** log_res), c.channels_at(2 ** (log_res - 1)), c.blur_kernel))
        self.convs = nn.Sequential(*layers)
        ch4 = c.channels_at(4)
        self.final_conv = ConvLayer(ch4 + 1, ch4, 3)
        self.final_linear = nn.Sequential(EqualLinear(ch4 * 4 * 4, ch4, activation=True), EqualLinear(ch4, 1))

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append the features' standard deviation over groups of samples: lets D see a lack of variety."""
        b, c, h, w = x.shape
        group = math.gcd(b, self.stddev_group)
        std = torch.sqrt(x.view(group, -1, 1, c, h, w).var(0, unbiased=False) + 1e-8)
        std = std.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, h, w)
        return torch.cat([x, std], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.minibatch_stddev(self.convs(images)))
        return self.final_linear(x.flatten(1))
