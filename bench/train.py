"""Training speed (DESIGN §10): wall time per paper epoch on a 15,000-frame (10 min at 25 fps) W+ set.

Times whole iterations of the real training loop on a synthetic sequence of the real shape, plus the parts
that dominate them: the critic step with and without the WGAN gradient penalty (a double backward through C)
and the generator step with and without the gradient angle penalty (a double backward through the unrolled
GRU stack). On CUDA it also records whether cuDNN's fused GRU can be differentiated twice, which decides
whether GAP could use `nn.GRU` instead of the explicit cell. With `cuda_graph` the iterations are replays of one
CUDA graph (`svgan.training.cuda_graph`), and the result says how far their losses and G's weights stray from the
eager iterations' from the same seed, with constant learning rates and with falling ones (--lr-decay).
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from svgan import __version__

from svgan.training.cuda_graph import GRAPH_WARMUP
from svgan.training.losses import critic_wasserstein_loss, gradient_penalty
from svgan.training.synthetic import SyntheticConfig, make_sequence
from svgan.training.trainer import LONG_HORIZON, TrainConfig, start_run
from svgan.training.wplus_data import WPlusSequence


@dataclass
class TrainBenchConfig:
    frames: int = 15_000
    n_styles: int = 18
    batch_size: int = 64
    iterations: int = 3       # timed iterations (after one warm-up)
    device: str = "cpu"
    paper: bool = False       # time the paper's training instead of svgan-train's defaults (pool and L_M)
    critic_dtype: str = "float32"
    cuda_graph: bool = False  # time iterations replayed as one CUDA graph (CUDA only)

    @property
    def recipe(self) -> str:
        return "paper" if self.paper else "default"

    def train_config(self) -> TrainConfig:
        return TrainConfig(batch_size=self.batch_size, critic_dtype=self.critic_dtype,
                           **({} if self.paper else LONG_HORIZON))


def _timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds per call of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def cudnn_gru_double_backward(device: torch.device) -> str:
    """'supported', or the error cuDNN's GRU raises when differentiated twice (CUDA only)."""
    if device.type != "cuda":
        return "not applicable (CPU)"
    gru = torch.nn.GRU(32, 32, batch_first=True).to(device)
    x = torch.randn(4, 25, 32, device=device, requires_grad=True)
    try:
        out, _ = gru(x)
        (g,) = torch.autograd.grad(out[:, -1].sum(), x, create_graph=True)
        g.pow(2).sum().backward()
        return "supported"
    except RuntimeError as e:
        return f"unsupported: {str(e).splitlines()[0]}"


def graph_against_eager(config: TrainBenchConfig, data: WPlusSequence, iterations: int,
                        lr_decay: bool = False) -> dict:
    """The largest differences between `iterations` iterations replayed as a CUDA graph and as many eager ones
    from the same seed (the first GRAPH_WARMUP of both are eager): per loss, and in G's weights at the end.

    With `lr_decay` both runs' rates fall over a one-epoch run (--lr-decay 1) and both hold them in device tensors,
    as `--cuda-graph --lr-decay` does, so the two compute the same; a graph that kept the rates of its capture
    would stray from the eager run by the rates' change, far more than by rounding."""
    train = replace(config.train_config(), epochs=1, lr_decay=1.0) if lr_decay else config.train_config()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for graphed in (False, True):
            trainer = start_run(data, Path(tmp) / f"run-{graphed}", train, device=config.device)
            if graphed:
                trainer.use_cuda_graph()
            elif lr_decay:
                trainer.hold_learning_rates_on_device()
            losses = torch.stack([trainer.iterate().losses for _ in range(iterations)])
            runs.append((losses, torch.cat([p.detach().flatten() for p in trainer.G.parameters()])))
    (eager, eager_g), (graph, graph_g) = runs
    return {"iterations": iterations, "eager_iterations": GRAPH_WARMUP,
            "loss_max_abs_difference": max_difference(eager, graph),
            "generator_weights_max_abs_difference": max_difference(eager_g, graph_g),
            **({"learning_rate_share_at_end": trainer.learning_rate_scale(iterations - 1)} if lr_decay else {})}


def max_difference(reference: torch.Tensor, other: torch.Tensor) -> float:
    """The largest |reference - other| where `reference` is a number (a NaN loss is a term that is off, such as
    the slow critic's); infinite where `other` is NaN and `reference` is not."""
    known = ~torch.isnan(reference)
    return (reference[known] - other[known]).abs().nan_to_num(nan=math.inf).max().item()


def run_train_bench(config: TrainBenchConfig) -> dict:
    device = torch.device(config.device)
    seq = make_sequence(SyntheticConfig(seconds=config.frames / 25, n_styles=config.n_styles))
    data = WPlusSequence(seq["wplus"], seq["fps"])
    train = config.train_config()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = start_run(data, Path(tmp) / "run", train, device=config.device)
        real = trainer._real_batch(0)
        n = config.iterations
        if config.cuda_graph:  # the eager iterations and the capture before the timed replays
            trainer.use_cuda_graph()
            for _ in range(GRAPH_WARMUP):
                trainer.train_iteration()

        def fake() -> torch.Tensor:  # one critic step's fake batch (the loop makes all of an iteration's at once)
            with torch.no_grad():
                return trainer._fake_windows(real.shape[0])[0]

        def critic_without_gp() -> None:
            critic_wasserstein_loss(trainer._scores, real, fake()).backward()   # one pass, as in training

        def gp_only() -> None:
            gradient_penalty(trainer._scores, real, fake()).backward()

        iteration = _timed(trainer.train_iteration, n, device)
        parts = {
            "critic_step_s": _timed(lambda: trainer._critic_step(real, fake()), n, device),
            "critic_step_without_gp_s": _timed(critic_without_gp, n, device),
            "gradient_penalty_s": _timed(gp_only, n, device),
            "generator_step_s": _timed(lambda: trainer._generator_step(config.batch_size), n, device),
        }
        trainer.config.gap = False
        parts["generator_step_without_gap_s"] = _timed(lambda: trainer._generator_step(config.batch_size), n, device)
        iterations_per_epoch = trainer.batches_per_epoch / train.critic_steps
    epoch = iteration * iterations_per_epoch
    return {
        "benchmark": "train", "svgan": __version__, "torch": torch.__version__, "device": _device_name(device),
        "config": asdict(config) | {"recipe": config.recipe},
        "train_config": {k: v for k, v in asdict(train).items() if k in (
            "batch_size", "critic_steps", "window", "epochs", "critic_dtype", *LONG_HORIZON)},
        "seconds_per_iteration": iteration, "iterations_per_epoch": iterations_per_epoch,
        "seconds_per_epoch": epoch, "projected_350_epochs_minutes": epoch * 350 / 60, **parts,
        "cudnn_gru_double_backward": cudnn_gru_double_backward(device),
        **({"graph_against_eager": graph_against_eager(config, data, GRAPH_WARMUP + 5),
            "graph_against_eager_lr_decay": graph_against_eager(config, data, GRAPH_WARMUP + 5, lr_decay=True)}
           if config.cuda_graph else {}),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
