"""Fitting the PCA of the training codes: the basis U of the offset trick (paper §3, DESIGN §6).

The basis itself, and its file `pca.npz`, is `svgan.models.PCABasis`.
"""

from __future__ import annotations

import numpy as np
import torch

from svgan.models import PCABasis


def fit_pca(wplus: np.ndarray, k: int = 32, seed: int = 0) -> PCABasis:
    """Top-`k` PCA of [N, n_styles, style_dim] codes.

    A randomised SVD (`torch.svd_lowrank`, 4 power iterations, 2k probes) rather than a full one: a 10-minute
    video is 15,000 x 9,216, where the full SVD costs minutes on a CPU and the randomised one seconds; the
    power iterations make the top-32 subspace exact to float precision for spectra like these.
    """
    n, s, d = wplus.shape
    x = torch.from_numpy(np.ascontiguousarray(wplus.reshape(n, s * d), dtype=np.float32)).double()
    mean = x.mean(0)
    x = x - mean
    k = min(k, n - 1, s * d)
    with torch.random.fork_rng(devices=[]):  # svd_lowrank draws its probes from the global generator
        torch.manual_seed(seed)
        _, sv, v = torch.svd_lowrank(x, q=min(2 * k, n, s * d), niter=4)
    variance = sv[:k] ** 2 / (n - 1)
    total = float(x.pow(2).sum() / (n - 1))
    return PCABasis(mean=mean.float().numpy(), components=v[:, :k].T.contiguous().float().numpy(),
                    explained_variance=variance.float().numpy(), total_variance=total, n_styles=s, style_dim=d)
