"""The PCA basis of a run's training codes, as stored in its `pca.npz` (paper §3, DESIGN §6).

All training codes are flattened to n_styles*512 dimensions; the mean mu, the top-k principal directions
(rows of `components`, orthonormal) and their explained variance are stored in `pca.npz`, which the
runtime reads with numpy alone. Fitting it is training's work (`svgan.training.pca.fit_pca`); reading it is
everyone's (export checks it against the generator, evaluation projects samples onto it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from svgan.atomic import atomic_write


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
        atomic_write(path, lambda f: np.savez(
            f, mean=self.mean, components=self.components, explained_variance=self.explained_variance,
            explained_variance_ratio=self.explained_variance_ratio, total_variance=np.float64(self.total_variance),
            n_styles=self.n_styles, style_dim=self.style_dim))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCABasis":
        with np.load(path, allow_pickle=False) as d:
            return cls(mean=d["mean"], components=d["components"], explained_variance=d["explained_variance"],
                       total_variance=float(d["total_variance"]), n_styles=int(d["n_styles"]),
                       style_dim=int(d["style_dim"]))

