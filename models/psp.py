"""pSp (pixel2style2pixel): GradualStyleEncoder + StyleGAN2 decoder + latent_avg, as in `models/psp.py`."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .psp_encoder import GradualStyleEncoder, PSPEncoderConfig
from .stylegan2 import Generator, StyleGAN2Config

ENCODER_INPUT_SIZE = 256


def n_styles_for(resolution: int) -> int:
    """pSp's style count for an output size: `2 * log2(size) - 2` (18 at 1024)."""
    return int(math.log2(resolution)) * 2 - 2


class PSP(nn.Module):
    """The pSp network. `state_dict()` has exactly the official checkpoint's `encoder.*`/`decoder.*` keys.

    `latent_avg` is kept as a non-persistent buffer (in the official code it is a plain attribute saved
    next to the state dict), always of shape [n_styles, 512]: a [512] average is repeated over the
    styles, which is what the official broadcast computes.
    """

    def __init__(self, decoder_config: StyleGAN2Config = StyleGAN2Config(), input_nc: int = 3):
        super().__init__()
        n_styles = decoder_config.n_styles
        self.encoder = GradualStyleEncoder(PSPEncoderConfig(n_styles=n_styles, input_nc=input_nc))
        self.decoder = Generator(decoder_config)
        self.register_buffer("latent_avg", torch.zeros(n_styles, decoder_config.style_dim), persistent=False)

    @property
    def n_styles(self) -> int:
        return self.decoder.n_styles

    @property
    def resolution(self) -> int:
        return self.decoder.resolution

    def set_latent_avg(self, latent_avg: torch.Tensor) -> None:
        """Accept the checkpoint's [n_styles, 512], [1, 512] or [512] average."""
        target = self.latent_avg.shape
        avg = latent_avg.detach().to(self.latent_avg.dtype).reshape(-1, target[1])
        if avg.shape[0] not in (1, target[0]):
            raise ValueError(f"latent_avg has shape {list(latent_avg.shape)}, expected {list(target)} or [{target[1]}]")
        self.latent_avg.copy_(avg.expand(target))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Aligned faces (B x 3 x 256 x 256 in [-1, 1]) -> W+ codes (B x n_styles x 512), latent_avg included."""
        if images.shape[-2:] != (ENCODER_INPUT_SIZE, ENCODER_INPUT_SIZE):
            raise ValueError(f"pSp expects {ENCODER_INPUT_SIZE}x{ENCODER_INPUT_SIZE} inputs, got {tuple(images.shape)}")
        return self.encoder(images) + self.latent_avg

    def forward(self, x: torch.Tensor, resize: bool = True, randomize_noise: bool = True,
                return_latents: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """pSp's forward for the encoding task: encode, synthesise, optionally pool to 256x256."""
        codes = self.encode(x)
        noise = [None] * self.decoder.config.num_layers if randomize_noise else None
        images = self.decoder.synthesize(codes, noise)
        if resize:
            images = F.adaptive_avg_pool2d(images, (ENCODER_INPUT_SIZE, ENCODER_INPUT_SIZE))
        return (images, codes) if return_latents else images
