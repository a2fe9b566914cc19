"""A slow timescale: a second critic on long windows at a low frame rate (DESIGN §5b, beyond the paper).

The paper's critic C sees 25 frames (1 s): motion slower than that (head drift over 5-20 s, moods that last a
minute) is invisible to it, and long samples lack it. LongVideoGAN's answer is a discriminator over long,
low-resolution clips; here the "low resolution" is the run's top PCA components (the slow motion of a face
lives in a few of them) and the low frame rate is every `stride`-th frame:

    C_slow:  (x_0, x_stride, ..., x_{(window-1) stride}),  x_k = U_k^T (w_k - mu),  k-dim PCA coordinates

with the same architecture as C (E then stride-2 temporal convs, `TemporalCritic`), trained with WGAN-GP beside
C. G's long windows start at `init(i)` and step `(window - 1) * stride` times; T and the style maps run only on
the frames C_slow reads (P alone steps in between), and gradients flow through the whole rollout (at the
defaults 630 steps, 25.2 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from svgan.models import PCABasis, TemporalCritic, TemporalCriticConfig, TemporalGenerator


@dataclass(frozen=True)
class SlowWindows:
    """Where a slow window's samples sit: every `stride`-th frame, `window` of them."""

    window: int
    stride: int

    @property
    def span(self) -> int:
        """Frames from a slow window's first sample to its last, inclusive."""
        return (self.window - 1) * self.stride + 1


def build_slow_critic(window: int, components: int, critic: dict) -> TemporalCritic:
    """C_slow: C's architecture over `window` samples of `components` PCA coordinates (one 'style')."""
    return TemporalCritic(TemporalCriticConfig(**{**critic, "window": window, "n_styles": 1,
                                                  "style_dim": components}))


class PCAProjection(torch.nn.Module):
    """x = U_k^T (w - mu): W+ codes [..., n_styles, style_dim] -> their top-k PCA coordinates, differentiably."""

    def __init__(self, pca: PCABasis, components: int):
        super().__init__()
        if components > pca.components.shape[0]:
            raise ValueError(f"the run's PCA has {pca.components.shape[0]} components, {components} asked for")
        self.register_buffer("mean", torch.from_numpy(pca.mean).float())
        self.register_buffer("basis", torch.from_numpy(pca.components[:components]).float())

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        return (wplus.flatten(-2) - self.mean) @ self.basis.T


def real_slow_windows(coordinates: torch.Tensor, layout: SlowWindows, batch: int,
                      generator: torch.Generator) -> torch.Tensor:
    """`batch` slow windows of the training codes' PCA coordinates [N, k] -> [batch, window, 1, k], starting
    anywhere in the video."""
    starts = torch.randint(0, coordinates.shape[0] - layout.span + 1, (batch, 1), generator=generator,
                           device=coordinates.device)
    index = starts + layout.stride * torch.arange(layout.window, device=coordinates.device)
    return coordinates[index][:, :, None]


def fake_slow_windows(generator: TemporalGenerator, projection: PCAProjection, layout: SlowWindows, batch: int,
                      noise: torch.Generator) -> torch.Tensor:
    """G's long windows from `init(i)`, sampled like `real_slow_windows` -> [batch, window, 1, k]."""
    d = generator.config.latent_dim
    device = projection.mean.device
    state, w = generator.init(torch.randn(batch, d, generator=noise, device=device))
    samples = [projection(w)]
    for _ in range(layout.window - 1):
        for _ in range(layout.stride - 1):
            state = generator.advance(torch.randn(batch, d, generator=noise, device=device), state)
        state, w = generator.step(torch.randn(batch, d, generator=noise, device=device), state)
        samples.append(projection(w))
    return torch.stack(samples, 1)[:, :, None]
