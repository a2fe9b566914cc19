"""PCA of the training codes: the basis U of the offset trick (paper §3, DESIGN §6).

All training codes are flattened to n_styles*512 dimensions; the mean mu, the top-k principal directions
(rows of `components`, orthonormal) and their explained variance are stored in `pca.npz`, which the
runtime reads with numpy alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PCABasis:
    mean: np.ndarray                 # [D] float32, D = n_styles * style_dim
    components: np.ndarray           # [k, D] float32, orthonormal rows
    explained_variance: np.ndarray   # [k] float32
    total_variance: float
    n_styles: int
    style_dim: int

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        return self.explained_variance / self.total_variance

    def project(self, wplus: np.ndarray) -> np.ndarray:
        """W+ codes [..., n_styles, style_dim] -> PCA coordinates [..., k]."""
        flat = wplus.reshape(*wplus.shape[:-2], -1) - self.mean
        return flat @ self.components.T

    def save(self, path: str | os.PathLike) -> None:
        np.savez(path, mean=self.mean, components=self.components, explained_variance=self.explained_variance,
                 explained_variance_ratio=self.explained_variance_ratio,
                 total_variance=np.float64(self.total_variance), n_styles=self.n_styles, style_dim=self.style_dim)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCABasis":
        with np.load(path, allow_pickle=False) as d:
            return cls(mean=d["mean"], components=d["components"], explained_variance=d["explained_variance"],
                       total_variance=float(d["total_variance"]), n_styles=int(d["n_styles"]),
                       style_dim=int(d["style_dim"]))


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
