"""svgan.models: the networks (PyTorch) and their checkpoint loaders.

* `Generator` — StyleGAN2 (rosinality layout), mapping z -> w and synthesis W+ -> RGB.
* `FastSynthesis` — an inference-only synthesis network built from a `Generator`, laid out for GPUs.
* `PSP` — pSp's GradualStyleEncoder (IR-SE50) + StyleGAN2 decoder + latent_avg.
* `TemporalGenerator` (G) and `TemporalCritic` (C) — StyleVideoGAN's recurrent W+ generator and critic.
* `load_psp`, `load_stylegan2` — official checkpoints, strict, `weights_only=True`.
* `load_run_generator` — a training run's EMA generator; `PCABasis` — its `pca.npz`.
* `save_torch_weights`, `load_torch_weights` — a bundle's PyTorch weights (safetensors).
"""

from .checkpoints import (CheckpointError, atomic_torch_save, load_psp, load_stylegan2, safe_torch_load,
                          save_psp, save_stylegan2)
from .fast_synthesis import FastSynthesis, FastSynthesisConfig
from .pca_basis import PCABasis
from .psp import PSP
from .psp_encoder import GradualStyleEncoder, PSPEncoderConfig
from .stylegan2 import MODCONV_IMPLS, Generator, StyleGAN2Config
from .temporal_critic import TemporalCritic, TemporalCriticConfig
from .temporal_generator import TemporalGenerator, TemporalGeneratorConfig
from .run import RunError, load_run_generator
from .torch_weights import load_torch_weights, save_torch_weights

__all__ = [
    "CheckpointError", "FastSynthesis", "FastSynthesisConfig", "GradualStyleEncoder", "Generator", "MODCONV_IMPLS",
    "PCABasis", "PSP", "PSPEncoderConfig",
    "RunError", "load_run_generator", "load_torch_weights", "save_torch_weights",
    "StyleGAN2Config", "atomic_torch_save", "load_psp", "load_stylegan2", "safe_torch_load", "save_psp",
    "save_stylegan2", "TemporalCritic", "TemporalCriticConfig", "TemporalGenerator", "TemporalGeneratorConfig",
]
