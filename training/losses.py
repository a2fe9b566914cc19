"""The training objective L = L_WGAN + 50 L_GP + 100 L_GAP (paper §3, DESIGN §5).

* WGAN-GP (Gulrajani et al. 2017): the critic maximises C(real) - C(fake) with the gradient norm of C held
  near 1 on random interpolates between real and fake windows.
* Gradient angle penalty (GAP, the paper's contribution against looping): with d = ||norm(l_{t-1} - l_0)||,
  phi = arctan(||dd/ds_{0..t-2}|| / ||dd/di||) and L_GAP = max(0, pi/4 - phi)^2, averaged over the batch.
  It makes the end of a window depend on the per-step noise s at least as much as on the initial i.
  `norm` standardises each of the 32 components of l_{t-1} - l_0 with running statistics (`GAPStatistics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def critic_wgan_loss(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein loss, C(fake) - C(real) averaged (minimised)."""
    return score_fake.mean() - score_real.mean()


def generator_wgan_loss(score_fake: torch.Tensor) -> torch.Tensor:
    return -score_fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad C(x_hat)|| - 1)^2] with x_hat = a real + (1 - a) fake, a ~ U(0, 1) per window."""
    alpha = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, generator=generator)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def critic_wasserstein_loss(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                            fake: torch.Tensor) -> torch.Tensor:
    """`critic_wgan_loss` of C's scores of equal-sized real and fake batches, from one pass of C.

    C scores every window on its own (no batch statistics), so real and fake windows can share a pass: its small
    layers run half as many times, forward and backward (issue 17: on the CPU an iteration is mostly per-kernel
    overhead)."""
    return critic_wgan_loss(*critic(torch.cat([real, fake])).tensor_split(2))


def critic_objective(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the Wasserstein loss, GP) of one critic step. x_hat keeps a pass of C of its own: inside a joint pass
    with the real and fake windows, GP's double backward would run over all three batches."""
    return critic_wasserstein_loss(critic, real, fake), gradient_penalty(critic, real, fake, generator)


class GAPStatistics(nn.Module):
    """Running mean and variance of l_{t-1} - l_0 per component, for GAP's `norm`.

    Updated as an exponential moving average (`momentum` = weight of the newest batch, as in BatchNorm);
    the first batch initialises them so early steps are not normalised by placeholders.
    """

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, delta: torch.Tensor) -> None:
        batch_mean, batch_var = delta.mean(0), delta.var(0, unbiased=False)
        # the weight stays on the device: `if self.count == 0` would wait for the GPU at every generator step
        m = torch.where(self.count == 0, 1.0, self.momentum).to(delta.dtype)
        self.mean.lerp_(batch_mean, m)
        self.var.lerp_(batch_var, m)
        self.count += 1

    def normalise(self, delta: torch.Tensor) -> torch.Tensor:
        return (delta - self.mean) / torch.sqrt(self.var + self.eps)


def gradient_angle(i: torch.Tensor, s: torch.Tensor, latents: torch.Tensor, stats: GAPStatistics) -> torch.Tensor:
    """phi per sample (radians, in [0, pi/2]); `i` and `s` must require grad and `latents` come from them.

    The graph is kept (create_graph) so the penalty can be minimised through G.
    """
    delta = latents[:, -1] - latents[:, 0]
    stats.update(delta.detach())
    d = stats.normalise(delta).norm(dim=1)
    grad_i, grad_s = torch.autograd.grad(d.sum(), (i, s), create_graph=True)
    # Each d depends on its own sample's (i, s) only, so the gradient of the sum holds per-sample gradients.
    return torch.atan2(grad_s.flatten(1).norm(dim=1), grad_i.norm(dim=1))


def gradient_angle_penalty(phi: torch.Tensor) -> torch.Tensor:
    """L_GAP = mean(max(0, pi/4 - phi)^2)."""
    return torch.clamp(math.pi / 4 - phi, min=0).pow(2).mean()
