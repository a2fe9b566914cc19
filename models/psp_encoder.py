"""pSp's GradualStyleEncoder (Richardson et al., CVPR 2021) on an IR-SE50 backbone.

Module names and registration order follow the official `models/encoders/psp_encoders.py` and
`helpers.py`, so the `encoder.*` half of a pSp checkpoint loads with `strict=True`.

Shape of the computation (256x256 input): an input stem, 24 IR-SE bottleneck units in four stages
(3 + 4 + 14 + 3 units; 64, 128, 256, 512 channels; each stage halves the resolution), and a feature
pyramid read at the ends of stages 2, 3 and 4 (c1: 64², c2: 32², c3: 16²). Coarse styles 0-2 read c3,
middle styles 3-6 read p2 = up(c3) + lat1(c2), fine styles 7.. read p1 = up(p2) + lat2(c1). Each style
is a stack of stride-2 convs down to 1x1 followed by an equalised linear layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .stylegan2 import EqualLinear

# IR-50: (in_channels, depth, number of units) per stage; the first unit of each stage has stride 2.
IR50_STAGES: tuple[tuple[int, int, int], ...] = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))
# Body indices whose outputs feed the pyramid (ends of stages 2 and 3; c3 is the body's output).
C1_INDEX, C2_INDEX = 6, 20
COARSE_STYLES, MIDDLE_STYLES = 3, 7


@dataclass(frozen=True)
class PSPEncoderConfig:
    n_styles: int = 18
    input_nc: int = 3


class SEModule(nn.Module):
    """Squeeze-and-excitation gate: global average pool -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """IR-SE residual unit: BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN -> SE, plus a shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class GradualStyleBlock(nn.Module):
    """log2(spatial) stride-2 convs (LeakyReLU 0.01) down to 1x1, then EqualLinear -> one style vector."""

    def __init__(self, channels: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, channels, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


class GradualStyleEncoder(nn.Module):
    """Aligned face (B x 3 x 256 x 256, [-1, 1]) -> W+ offsets (B x n_styles x 512), before latent_avg."""

    def __init__(self, config: PSPEncoderConfig = PSPEncoderConfig()):
        super().__init__()
        self.config = config
        self.input_layer = nn.Sequential(nn.Conv2d(config.input_nc, 64, 3, 1, 1, bias=False),
                                         nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_ch, depth, n in IR50_STAGES:
            units.append(BottleneckIRSE(in_ch, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(
            GradualStyleBlock(512, 16 if i < COARSE_STYLES else 32 if i < MIDDLE_STYLES else 64)
            for i in range(config.n_styles))
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    @staticmethod
    def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i == C1_INDEX:
                c1 = x
            elif i == C2_INDEX:
                c2 = x
        c3 = x
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        sources = [c3] * COARSE_STYLES + [p2] * (MIDDLE_STYLES - COARSE_STYLES)
        sources += [p1] * (self.config.n_styles - MIDDLE_STYLES)
        return torch.stack([style(src) for style, src in zip(self.styles, sources)], dim=1)
