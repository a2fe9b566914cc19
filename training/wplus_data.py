"""W+ training sequences (`svgan-embed` output) and the 25-frame windows the critic sees as "real".

The npz layout: `wplus` float32 [N, n_styles, 512], `fps` scalar, plus optional `provenance` and alignment
data. An epoch is every window of the sequence once (N - t + 1 windows), in an order drawn per epoch from
the run's seed, so a resumed run visits the same windows in the same order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from svgan.array_files import read_npz
from svgan.errors import UserError


class DataError(UserError):
    """An unusable W+ data file; the message is one line for the user."""


@dataclass
class WPlusSequence:
    wplus: np.ndarray   # [N, n_styles, style_dim] float32
    fps: float

    @property
    def n_styles(self) -> int:
        return self.wplus.shape[1]

    @property
    def style_dim(self) -> int:
        return self.wplus.shape[2]


def load_wplus(path: str | os.PathLike, window: int = 1) -> WPlusSequence:
    """Read a W+ npz; refuse (one line) files without `wplus`, with bad shapes, NaNs or < `window` frames."""
    try:
        arrays = read_npz(path, "W+ data")
    except UserError as e:
        raise DataError(str(e)) from None
    if "wplus" not in arrays:
        raise DataError(f"{path}: no 'wplus' array (found {', '.join(arrays) or 'nothing'})")
    wplus = arrays["wplus"]
    if wplus.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'wplus' holds {wplus.dtype}, not numbers")
    wplus = wplus.astype(np.float32)
    fps = arrays.get("fps", np.float64(25.0))
    if fps.shape != () or fps.dtype.kind not in "fiu" or not 0 < float(fps) < 1000:
        raise DataError(f"{path}: 'fps' must be one frame rate in (0, 1000), got {fps!r}")
    fps = float(fps)
    if wplus.ndim != 3:
        raise DataError(f"{path}: 'wplus' must be [frames, n_styles, style_dim], got shape {list(wplus.shape)}")
    if len(wplus) < window:
        raise DataError(f"{path}: {len(wplus)} frames, fewer than one {window}-frame window")
    if not np.isfinite(wplus).all():
        raise DataError(f"{path}: 'wplus' contains NaN or inf")
    return WPlusSequence(wplus=wplus, fps=fps)


class WindowSampler:
    """Batches of consecutive-frame windows from one sequence held on the training device."""

    def __init__(self, wplus: torch.Tensor, window: int, seed: int):
        self.wplus = wplus
        self.window = window
        self.seed = seed
        self.n_windows = wplus.shape[0] - window + 1
        self._offsets = torch.arange(window, device=wplus.device)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Window start indices of `epoch`, a permutation fixed by (seed, epoch)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n_windows, generator=g)

    def windows(self, starts: torch.Tensor) -> torch.Tensor:
        """[B] start indices -> [B, window, n_styles, style_dim]."""
        return self.wplus[starts.to(self.wplus.device)[:, None] + self._offsets]
