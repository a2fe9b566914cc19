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
COARSE_STYLES, MIDDLE_STYLES = 3, 7


@dataclass(frozen=True)
class PSPEncoderConfig:
    """The defaults are pSp's FFHQ encoder. `stages` (in_channels, depth, units), `input_size` and `style_dim`
    shrink it for small worlds (the demo world's encoder reads 64x64 faces); the official layout is kept
    whenever they are left alone."""

    n_styles: int = 18
    input_nc: int = 3
    input_size: int = 256
    style_dim: int = 512
    stages: tuple[tuple[int, int, int], ...] = IR50_STAGES

    @property
    def pyramid_channels(self) -> int:
        """Width of the feature pyramid and of every style block: the last stage's depth (512 in IR-50)."""
        return self.stages[-1][1]

    @property
    def c1_index(self) -> int:
        """Body index of the last unit of stage 2, whose output is the pyramid's finest level c1."""
        return self.stages[0][2] + self.stages[1][2] - 1

    @property
    def c2_index(self) -> int:
        return self.c1_index + self.stages[2][2]

    def __post_init__(self) -> None:
        if len(self.stages) != 4:
            raise ValueError(f"the GradualStyleEncoder needs 4 IR stages, got {len(self.stages)}")
        if self.input_size % 16 or self.input_size < 64:
            raise ValueError(f"encoder input_size must be a multiple of 16 and >= 64, got {self.input_size}")
        if min(depth for _, depth, _ in self.stages) < 16:
            raise ValueError("every IR stage needs >= 16 channels (the SE gate divides them by 16)")


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

    def __init__(self, channels: int, spatial: int, style_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(channels, style_dim, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


class GradualStyleEncoder(nn.Module):
    """Aligned face (B x 3 x input_size², [-1, 1]) -> W+ offsets (B x n_styles x style_dim), before latent_avg."""

    def __init__(self, config: PSPEncoderConfig = PSPEncoderConfig()):
        super().__init__()
        self.config = config
        stem = config.stages[0][0]
        self.input_layer = nn.Sequential(nn.Conv2d(config.input_nc, stem, 3, 1, 1, bias=False),
                                         nn.BatchNorm2d(stem), nn.PReLU(stem))
        units = []
        for in_ch, depth, n in config.stages:
            units.append(BottleneckIRSE(in_ch, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        pyramid, size = config.pyramid_channels, config.input_size
        # c3 is at input/16, p2 at input/8, p1 at input/4 (16², 32², 64² for pSp's 256² input).
        self.styles = nn.ModuleList(
            GradualStyleBlock(pyramid, size // 16 if i < COARSE_STYLES else size // 8 if i < MIDDLE_STYLES
                              else size // 4, config.style_dim)
            for i in range(config.n_styles))
        self.latlayer1 = nn.Conv2d(config.stages[2][1], pyramid, 1)
        self.latlayer2 = nn.Conv2d(config.stages[1][1], pyramid, 1)

    @staticmethod
    def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i == self.config.c1_index:
                c1 = x
            elif i == self.config.c2_index:
                c2 = x
        c3 = x
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        sources = [c3] * COARSE_STYLES + [p2] * (MIDDLE_STYLES - COARSE_STYLES)
        sources += [p1] * (self.config.n_styles - MIDDLE_STYLES)
        return torch.stack([style(src) for style, src in zip(self.styles, sources)], dim=1)
