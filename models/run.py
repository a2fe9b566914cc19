"""A training run directory, as the trainer writes it and everyone else reads it (DESIGN §5).

`RUN/checkpoint.pt` holds G, its EMA copy G_ema, the critic, optimisers, GAP statistics, RNG states and
config (format `svgan-run/1`); `RUN/pca.npz` holds the PCA basis of the training codes. Writing a run is
`svgan.training.trainer`'s job; reading its EMA generator (what gets exported and streamed) lives here, so
that export and the runtime's torch backend need not import the training package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from svgan.errors import UserError

from .checkpoints import load_state_strict, safe_torch_load
from .temporal_generator import TemporalGenerator, TemporalGeneratorConfig

CHECKPOINT = "checkpoint.pt"
PCA_FILE = "pca.npz"
RUN_FORMAT = "svgan-run/1"
# What a run's checkpoint must hold for its EMA generator to be read; the rest (C, optimisers, RNG states)
# only matters for resuming, which is the trainer's business.
GENERATOR_KEYS = ("generator_config", "G_ema", "iteration", "fps")


class RunError(UserError):
    """A run directory that cannot be used as asked (one line for the user)."""


def load_run_checkpoint(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """`RUN/checkpoint.pt` as a dict, checked to be an svgan run (`weights_only=True`: it is untrusted input)."""
    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file():
        raise RunError(f"{run_dir} is not a training run: no {CHECKPOINT}")
    state = safe_torch_load(checkpoint, map_location=device)
    if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
        raise RunError(f"{checkpoint} is not an svgan run checkpoint")
    missing = [key for key in GENERATOR_KEYS if key not in state]
    if missing:
        raise RunError(f"{checkpoint} lacks '{missing[0]}'")
    return state


def load_run_generator(run_dir: str | os.PathLike,
                       device: str | torch.device = "cpu") -> tuple[TemporalGenerator, dict[str, Any]]:
    """The EMA generator G_ema of a run (what gets exported) and the run's metadata: iteration, fps and,
    where the checkpoint has them, the training, generator and critic configs."""
    state = load_run_checkpoint(run_dir, device)
    try:
        generator = TemporalGenerator(TemporalGeneratorConfig(**state["generator_config"]))
    except TypeError as e:
        raise RunError(f"{Path(run_dir) / CHECKPOINT}: generator_config does not fit this svgan: {e}") from None
    load_state_strict(generator, state["G_ema"], f"{Path(run_dir) / CHECKPOINT} (G_ema)")
    meta = {"iteration": int(state["iteration"]), "fps": float(state["fps"]),
            "generator_config": state["generator_config"],
            **{k: state[k] for k in ("config", "critic_config") if k in state}}
    return generator.eval().requires_grad_(False).to(device), meta
