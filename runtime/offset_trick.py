"""The offset trick (paper §3, DESIGN §6): move the training actor's motion onto a new identity.

Project the new actor's code onto the PCA basis of the training codes, w' = mu + U U^T (w_new - mu): the
training actor in the new actor's state. The offset Delta = w_new - w' is what makes the actor new; every
generated code w_k becomes w_k + Delta. Shifting by w_new - w_0 instead ("naive offset") would add the
new actor's expression on top of the generated one.
"""

from __future__ import annotations

import numpy as np

from .bundle import PCA


def identity_offset(w_new: np.ndarray, pca: PCA) -> np.ndarray:
    """Delta = w_new - (mu + U U^T (w_new - mu)), shaped like `w_new` ([n_styles, 512])."""
    flat = w_new.reshape(-1).astype(np.float64) - pca.mean
    coordinates = pca.components.astype(np.float64) @ flat
    in_motion_space = pca.components.T.astype(np.float64) @ coordinates
    return (flat - in_motion_space).reshape(w_new.shape).astype(np.float32)
