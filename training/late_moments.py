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
    docs/long-horizon.md §3b)."""

    def __init__(self, projection: PCAProjection, data_wplus: torch.Tensor, over: str = "frames", window: int = 25):
        super().__init__()
        if over not in OVER:
            raise ValueError(f"late moments are over 'frames' or 'windows', not {over!r}")
        self.projection, self.over = projection, over
        with torch.no_grad():
            coordinates = projection(data_wplus)
            if over == "windows":  # the mean of every stretch of `window` frames
                coordinates = coordinates.unfold(0, window, 1).mean(-1)
        self.register_buffer("data_mean", coordinates.mean(0))
        self.register_buffer("data_std", coordinates.std(0))

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        coordinates = self.projection(wplus)   # [batch, window, k]
        coordinates = coordinates.mean(1) if self.over == "windows" else coordinates.flatten(0, -2)
        offset = (coordinates.mean(0) - self.data_mean) / self.data_std
        log_spread = torch.log(coordinates.std(0) / self.data_std)
        return (offset.pow(2) + log_spread.pow(2)).sum()
