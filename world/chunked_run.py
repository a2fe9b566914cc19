"""Training in resumable chunks: the loop the demo world's StyleGAN2 and pSp trainers share.

A subclass owns its models and a `run_dir`; it provides `train_iteration()` (returning a stats dataclass whose
first field is the iteration) and `save_checkpoint()` (atomic). `run` then trains until a total number of
iterations, a wall-time budget for this call, or a stop request (Ctrl-C), checkpointing on the way and at the end,
so a CPU can train a model across several sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from svgan.models import RunError, safe_torch_load
from svgan.training.trainer import MetricsLog

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"


def run_state(run_dir: Path, run_format: str, resume: bool, what: str) -> dict[str, Any] | None:
    """The checkpoint of the run in `run_dir` when `resume` (it must be a `run_format` run), else None after making
    sure `run_dir` holds no run that a new one would overwrite."""
    checkpoint = Path(run_dir) / CHECKPOINT
    if not resume:
        if checkpoint.exists():
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another directory")
        return None
    if not checkpoint.is_file():
        raise RunError(f"--resume: no {CHECKPOINT} in {run_dir}")
    state = safe_torch_load(checkpoint)
    if not isinstance(state, dict) or state.get("format") != run_format:
        raise RunError(f"{checkpoint} is not an svgan {what} run checkpoint")
    return state


def random_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's CPU stream and, on a GPU, the device's: what a run saves to resume bit for bit."""
    state = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


class ChunkedRun:
    run_dir: Path
    iteration: int
    checkpoint_every: int
    stats_type: type

    def train_iteration(self) -> Any:
        raise NotImplementedError

    def save_checkpoint(self) -> None:
        raise NotImplementedError

    def run(self, iterations: int, minutes: float | None = None, should_stop: Callable[[], bool] = lambda: False,
            progress: Callable[[Any], None] = lambda stats: None) -> str:
        """Train until `iterations` in all, `minutes` of wall time in this call, or `should_stop()`; then write a
        checkpoint. Returns why it stopped: "done", "time" or "stopped"."""
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        reason = "done"
        with MetricsLog(self.run_dir / METRICS, self.iteration, self.stats_type) as log:
            while self.iteration < iterations:
                if should_stop():
                    reason = "stopped"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    reason = "time"
                    break
                stats = self.train_iteration()
                log.write(stats)
                progress(stats)
                if self.iteration % self.checkpoint_every == 0:
                    self.save_checkpoint()
        self.save_checkpoint()
        return reason
