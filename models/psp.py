"""pSp (pixel2style2pixel): GradualStyleEncoder + StyleGAN2 decoder + latent_avg, as in `models/psp.py`."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from .psp_encoder import GradualStyleEncoder, PSPEncoderConfig
from .stylegan2 import Generator, StyleGAN2Config


def n_styles_for(resolution: int) -> int:
    """pSp's style count for an output size: `2 * log2(size) - 2` (18 at 1024)."""
    return int(math.log2(resolution)) * 2 - 2


class PSP(nn.Module):
    """The pSp network. `state_dict()` has exactly the official checkpoint's `encoder.*`/`decoder.*` keys.

    `latent_avg` is kept as a non-persistent buffer (in the official code it is a plain attribute saved
    next to the state dict), always of shape [n_styles, 512]: a [512] average is repeated over the
    styles, which is what the official broadcast computes.
    """

    def __init__(self, decoder_config: StyleGAN2Config = StyleGAN2Config(), input_nc: int = 3,
                 encoder_config: PSPEncoderConfig | None = None):
        super().__init__()
        n_styles = decoder_config.n_styles
        # The decoder decides how many styles of which width the encoder must produce.
        encoder_config = dataclasses.replace(encoder_config or PSPEncoderConfig(), n_styles=n_styles,
                                             input_nc=input_nc, style_dim=decoder_config.style_dim)
        self.encoder = GradualStyleEncoder(encoder_config)
        self.decoder = Generator(decoder_config)
        self.register_buffer("latent_avg", torch.zeros(n_styles, decoder_config.style_dim), persistent=False)

    @property
    def n_styles(self) -> int:
        return self.decoder.n_styles

    @property
    def resolution(self) -> int:
        return self.decoder.resolution

    @property
    def input_size(self) -> int:
        """Side of the aligned faces the encoder reads (256 for pSp's FFHQ encoder)."""
        return self.encoder.config.input_size

    def set_latent_avg(self, latent_avg: torch.Tensor) -> None:
        """Accept the checkpoint's [n_styles, 512], [1, 512] or [512] average."""
        target = self.latent_avg.shape
        avg = latent_avg.detach().to(self.latent_avg.dtype).reshape(-1, target[1])
        if avg.shape[0] not in (1, target[0]):
            raise ValueError(f"latent_avg has shape {list(latent_avg.shape)}, expected {list(target)} or [{target[1]}]")
        self.latent_avg.copy_(avg.expand(target))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Aligned faces (B x 3 x input_size² in [-1, 1]) -> W+ codes (B x n_styles x 512), latent_avg included."""
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"pSp expects {self.input_size}x{self.input_size} inputs, got {tuple(images.shape)}")
        return self.encoder(images) + self.latent_avg

    def forward(self, x: torch.Tensor, resize: bool = True, randomize_noise: bool = True,
                return_latents: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """pSp's forward for the encoding task: encode, synthesise, optionally pool to the encoder's input size."""
        codes = self.encode(x)
        noise = [None] * self.decoder.config.num_layers if randomize_noise else None
        images = self.decoder.synthesize(codes, noise)
        if resize:
            images = F.adaptive_avg_pool2d(images, (self.input_size, self.input_size))
        return (images, codes) if return_latents else images
