"""Late windows keep the data's place and spread: a moment-matching term on G's pool windows (DESIGN §5b, beyond
the paper).

With a state pool (`state_pool.py`) the critic sees windows from deep into long streams, and on the demo world that
brought their motion close to the data's, but late streams still sit 0.5-0.8 data standard deviations off the
data's mean in the top components (docs/long-horizon.md §3b): each 1-s window looks like *some* part of the data,
and a critic of single windows has little reason to ask *which* part, over many windows. This term asks it
directly (feature matching, Salimans et al. 2016, on the run's PCA coordinates): over all frames of a batch's pool
windows, each of the top k components' mean and standard deviation should be the training codes'.

    L_M = sum_k ((m_k - mu_k) / sigma_k)^2 + log(s_k / sigma_k)^2

with m_k, s_k the batch's mean and standard deviation of component k and mu_k, sigma_k the data's, over every
frame or (`late_moment_over` "windows") over each window's mean. G's objective gains `late_moment_weight` x L_M.
The windows are the batch's pool share, or (`late_moment_windows` N) a draw of N pool windows for this term alone,
which the critic never sees (more pool windows in the critic's batch cost short samples). On the demo world 32 such
windows left the late offset where 8 had (0.4 std) but improved long samples (docs/long-horizon.md §3b).
Pool states have random ages (mean 1,250 frames at the defaults), so their frames stand for a long stream at a
random time, and their moments are those of a mixture of ages: on the demo world's worst seed young pool states sat
0.5-0.7 std below the data's mean in PC 1 and old ones up to 1.0 above, L_M as small as on the good seeds, and its
streams drifted through the minute. `late_moment_ages` K > 1 draws the term's own windows evenly from K age strata
of the pool and takes the mean of the strata's L_M (the trainer's `_late_moments`), so each age must match.

Matching each component's mean and spread leaves their correlations free, and on the demo world G's late windows
used that freedom: with every component's spread within 0.87-0.99 of the data's and every offset under 0.15 std,
their window means correlated up to 0.6 between components the data keeps nearly uncorrelated (in the data's
whitened coordinates their covariance's eigenvalues ran from 0.24 to 2.2), which is most of their window FD
(docs/long-horizon.md §3f). With `late_moment_directions` D > 0 the moments are matched along D random unit
directions u of the data-whitened top-k coordinates z (z has the data's mean 0 and covariance I), drawn anew at
every step, a sliced form of the same term:

    L_M = (k / D) sum_u (mean(z . u))^2 + log(std(z . u))^2

whose expectation over u weighs an offset as the axes' form does (|mean z|^2), and which a tilted or flattened
covariance cannot satisfy with right marginals.

Each step's moments come from few windows (8 per age stratum at svgan-train's defaults), and the estimate is not
only noisy but biased: the expected square of a sample mean of n windows is the offset^2 plus their variance / n,
so the mean term alone asks G for a smaller spread, and at the defaults L_M's floor (about 1.6 for a G that matches
the data) is most of its value at the end of training (2.05 on the demo world's bundle E), whose late window means
fill 0.85-0.98 of the data's spread. With `momentum` m < 1 (BatchNorm's convention, the weight of the newest step)
the term's value is read from running moments instead: per age stratum, a running mean and covariance of the
windows' whitened (or standardised) coordinates, each step's blended in with weight m, and its gradient is the
step's own moments' (the running value plus the step's moments minus their detached copy), so G is pulled by the
offset and spread of many steps' windows, not by one step's sampling noise:

    L_M = (k / D) sum_u (u . mean)^2 + (1/4) log(u^T cov u)^2

with u the D random directions, or the k axes when there are none (then k / D = 1 and this is the axes' form).
"""

from __future__ import annotations

import torch
from torch import nn

from .slow_critic import PCAProjection

# What the moments are taken over: every frame, or each window's mean.
OVER = ("frames", "windows")


class LateMoments(nn.Module):
    """L_M of G's windows [batch, window, n_styles, style_dim] against the data's top-k PCA moments.

    `over` "frames" compares the moments of every frame; "windows" those of each window's mean (the data's: of
    every `window`-frame stretch), so spread must come from where windows sit, not from motion within them: on the
    demo world, matching frames was met with fast jitter (late autocorrelation at 1 s fell to ~0, the data's is 0.6;
    docs/long-horizon.md §3b). `directions` D > 0 matches the moments along D random directions of the data-whitened
    coordinates instead of along each component (the module docstring)."""

    def __init__(self, projection: PCAProjection, data_wplus: torch.Tensor, over: str = "frames", window: int = 25,
                 directions: int = 0, momentum: float = 1.0, strata: int = 1):
        super().__init__()
        if over not in OVER:
            raise ValueError(f"late moments are over 'frames' or 'windows', not {over!r}")
        if directions < 0:
            raise ValueError(f"late moments need directions >= 0, got {directions}")
        if not 0 < momentum <= 1:
            raise ValueError(f"late moments need a momentum in (0, 1], got {momentum}")
        self.projection, self.over, self.directions, self.momentum = projection, over, directions, momentum
        with torch.no_grad():
            coordinates = projection(data_wplus)
            if over == "windows":  # the mean of every stretch of `window` frames
                coordinates = coordinates.unfold(0, window, 1).mean(-1)
        self.register_buffer("data_mean", coordinates.mean(0))
        self.register_buffer("data_std", coordinates.std(0))
        if directions:  # z = (x - mean) @ whiten has covariance I over the data (whiten = L^-T, cov = L L^T)
            cholesky = torch.linalg.cholesky(torch.cov(coordinates.T.double()))
            self.register_buffer("whiten", torch.linalg.inv(cholesky).T.to(coordinates.dtype))
        if momentum < 1:  # per stratum: the running mean and covariance of z, and how many steps they hold
            k = coordinates.shape[1]
            self.register_buffer("running_mean", torch.zeros(strata, k))
            self.register_buffer("running_cov", torch.zeros(strata, k, k))
            self.register_buffer("running_steps", torch.zeros(strata, dtype=torch.long))

    def running_state(self) -> dict[str, torch.Tensor]:
        """What a resumed run needs of the term (its running moments; nothing without them)."""
        return ({k: getattr(self, k).clone() for k in ("running_mean", "running_cov", "running_steps")}
                if self.momentum < 1 else {})

    def load_running_state(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            getattr(self, key).copy_(value)

    def forward(self, wplus: torch.Tensor, generator: torch.Generator | None = None, stratum: int = 0
                ) -> torch.Tensor:
        """L_M of `wplus`; `generator` draws the directions (when there are any: the axes' form draws nothing).
        With momentum < 1 this also moves `stratum`'s running moments: call it once per generator step and
        stratum."""
        coordinates = self.projection(wplus)   # [batch, window, k]
        coordinates = coordinates.mean(1) if self.over == "windows" else coordinates.flatten(0, -2)
        if self.momentum < 1:
            return self._running(coordinates, generator, stratum)
        if self.directions:
            z = (coordinates - self.data_mean) @ self.whiten
            along = z @ self._directions(z, generator)
            return z.shape[1] / self.directions * (along.mean(0).pow(2) + torch.log(along.std(0)).pow(2)).sum()
        offset = (coordinates.mean(0) - self.data_mean) / self.data_std
        log_spread = torch.log(coordinates.std(0) / self.data_std)
        return (offset.pow(2) + log_spread.pow(2)).sum()

    def _running(self, coordinates: torch.Tensor, generator: torch.Generator | None, stratum: int) -> torch.Tensor:
        """L_M from `stratum`'s running moments, with the gradient of this step's own (the module docstring)."""
        z = ((coordinates - self.data_mean) @ self.whiten if self.directions
             else (coordinates - self.data_mean) / self.data_std)
        mean, cov = z.mean(0), torch.cov(z.T)
        with torch.no_grad():  # the first step has no history: its own moments are the running ones
            weight = torch.where(self.running_steps[stratum] == 0, 1.0, self.momentum).to(z.dtype)
            self.running_mean[stratum].lerp_(mean.detach(), weight)
            self.running_cov[stratum].lerp_(cov.detach(), weight)
            self.running_steps[stratum] += 1
        mean = self.running_mean[stratum].clone() + (mean - mean.detach())
        cov = self.running_cov[stratum].clone() + (cov - cov.detach())
        u = (self._directions(z, generator) if self.directions
             else torch.eye(z.shape[1], device=z.device, dtype=z.dtype))
        variance = (u * (cov @ u)).sum(0)
        return z.shape[1] / u.shape[1] * ((mean @ u).pow(2) + 0.25 * torch.log(variance).pow(2)).sum()

    def _directions(self, z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """[k, D]: this step's D random unit directions in the whitened coordinates of z [n, k]."""
        u = torch.randn(z.shape[1], self.directions, generator=generator, device=z.device, dtype=z.dtype)
        return u / u.norm(dim=0)
