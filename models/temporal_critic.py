"""StyleVideoGAN's critic C (paper §3, DESIGN §4).

    E:  a 6-layer MLP W+ (n_styles*512) -> R^32 that extracts features from every frame,
    then a temporal convolutional network derived from DCGAN's discriminator: its spatial convs become
    1-D temporal convs (kernel 4, stride 2, LeakyReLU 0.2), with NO batch norm (the WGAN-GP gradient
    penalty needs a per-sample critic), ending in one scalar per window.

The window length is fixed by the config (25 in training): the flattened output of the last conv goes
through one linear layer, which plays the part of DCGAN's final valid convolution for any length.

C first standardises its input with the training codes' mean W+ and RMS deviation (fixed buffers, set by the
trainer). An actor's codes sit far from the origin and move little around their mean (in the demo world the
motion is ~5% of the offset): unstandardised, every unit of E sees the same large constant plus a tiny
perturbation, so E is linear over the whole data and C can only compare means, never how much or how codes
move; a generator that stands still at the mean then looks real to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .temporal_generator import mlp


@dataclass(frozen=True)
class TemporalCriticConfig:
    """Sizes of C. The paper fixes E's 6 layers and 32 features; the rest is our choice (DCGAN-like)."""

    window: int = 25                                 # frames per sample t (paper: 25)
    n_styles: int = 18
    style_dim: int = 512
    feature_dim: int = 32                            # E's output (paper)
    e_layers: int = 6                                # E's depth (paper)
    e_width: int = 512
    conv_channels: tuple[int, ...] = (64, 128, 256)  # DCGAN doubling; each conv halves the time axis

    def time_steps_after_convs(self) -> int:
        t = self.window
        for _ in self.conv_channels:
            t = (t + 2 - 4) // 2 + 1  # kernel 4, stride 2, padding 1
        return t

    def __post_init__(self) -> None:
        if self.time_steps_after_convs() < 1:
            raise ValueError(f"window {self.window} is too short for {len(self.conv_channels)} stride-2 convs")


class TemporalCritic(nn.Module):
    """C: W+ windows (B x window x n_styles x 512) -> scores (B,)."""

    def __init__(self, config: TemporalCriticConfig = TemporalCriticConfig()):
        super().__init__()
        c = config
        self.config = c
        self.E = mlp(c.n_styles * c.style_dim, c.e_width, c.feature_dim, c.e_layers)
        layers: list[nn.Module] = []
        in_ch = c.feature_dim
        for out_ch in c.conv_channels:
            layers += [nn.Conv1d(in_ch, out_ch, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            in_ch = out_ch
        self.temporal = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch * c.time_steps_after_convs(), 1)
        self.register_buffer("input_mean", torch.zeros(c.n_styles, c.style_dim))
        self.register_buffer("input_scale", torch.ones(()))

    @torch.no_grad()
    def set_input_statistics(self, wplus: torch.Tensor) -> None:
        """Standardise future inputs with these codes' (N x n_styles x style_dim) mean and RMS deviation."""
        mean = wplus.mean(0)
        self.input_mean.copy_(mean)
        self.input_scale.copy_((wplus - mean).pow(2).mean().sqrt().clamp_min(1e-8))

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        b, t = wplus.shape[:2]
        if t != self.config.window:
            raise ValueError(f"the critic scores windows of {self.config.window} frames, got {t}")
        x = (wplus - self.input_mean) / self.input_scale
        features = self.E(x.reshape(b, t, -1))                  # B x t x 32
        out = self.temporal(features.transpose(1, 2))           # B x C x t'
        return self.head(out.flatten(1)).squeeze(1)
