"""The StyleVideoGAN training loop (paper §3, DESIGN §5), read top to bottom in `Trainer.run`.

One iteration = `critic_steps` critic updates on batches of real 25-frame W+ windows against G's windows,
then one generator update (WGAN + GAP) and the EMA of G's weights. With a state pool (`pool_size` > 0, beyond
the paper, `state_pool.py`) a share of every fake batch starts from G states of random age instead of `init(i)`,
and the pool advances after every generator update. With a slow critic (`slow_weight` > 0, `slow_critic.py`)
one more critic step per iteration compares long windows at a low frame rate, and G's objective gains its term.
With late moments (`late_moment_weight` > 0, `late_moments.py`) G's objective also asks the pool windows for the
data's mean and spread in the top PCA components. With a learning-rate decay (`lr_decay` > 0) both rates fall to
zero over the run's last iterations.
An epoch is every real window once through the critic. Everything random comes from generators owned by the run
(window order per epoch, noise i/s, GP interpolation), so a run stopped and resumed from its checkpoint continues bit for bit.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svgan.atomic import atomic_write, atomic_write_text, naming
from svgan.errors import UserError
from svgan.models import (PCABasis, TemporalCritic, TemporalCriticConfig, TemporalGenerator, TemporalGeneratorConfig,
                          atomic_torch_save)
from svgan.models.run import CHECKPOINT, PCA_FILE, RUN_FORMAT, RunError, load_run_checkpoint

from .cuda_graph import GRAPH_WARMUP, IterationGraph
from .losses import GAPStatistics, critic_objective, generator_wgan_loss, gradient_angle, gradient_angle_penalty
from .late_moments import OVER as LATE_MOMENTS_OVER, LateMoments
from .pca import fit_pca
from .slow_critic import PCAProjection, SlowWindows, build_slow_critic, fake_slow_windows, real_slow_windows
from .state_pool import StatePool
from .wplus_data import WindowSampler, WPlusSequence

METRICS = "metrics.csv"
SAMPLES = "samples.npz"
# `svgan-train --model`: the paper's widths, or about a quarter of them (CPU experiments, the demo world).
MODEL_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"generator": {}, "critic": {}},
    "small": {"generator": {"hidden_dim": 64, "h_mlp_width": 64, "t_mlp_width": 128},
              "critic": {"e_width": 128, "conv_channels": (32, 64, 128)}},
}


# svgan-train's defaults beyond the paper (`svgan-train --paper` drops them): a quarter of every fake batch
# continues from a 256-state pool, and L_M asks 128 pool windows of its own, in 4 age strata, for the data's mean
# and spread of window means along 32 random data-whitened directions. On the demo world's actor (3 seeds) long
# windows stay as close to the data as short ones (long/short window FD 1.02 against the paper's 10.7) and fill the
# data's spread (0.90-1.06); with 32 windows, 8 per stratum, L_M was mostly sampling noise and the spread stayed at
# 0.85 (docs/long-horizon.md §3c, §3f, §5).
LONG_HORIZON: dict[str, Any] = dict(pool_size=256, pool_fraction=0.25, late_moment_weight=1.0,
                                    late_moment_over="windows", late_moment_windows=128, late_moment_ages=4,
                                    late_moment_directions=32)

# What C may compute in (`TrainConfig.critic_dtype`).
CRITIC_DTYPES = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """Hyper-parameters. Paper values: lambda_gp 50, lambda_gap 100, EMA 0.995, window 25, 350 epochs, Adam,
    PCA 32. The rest the paper leaves open; the defaults are WGAN-GP's own (Gulrajani et al.: Adam lr 1e-4,
    betas (0, 0.9), 5 critic steps per generator step), see README "Training defaults". The dataclass defaults are
    the paper's method; `svgan-train` adds `LONG_HORIZON` unless given `--paper`."""

    epochs: int = 350
    batch_size: int = 64
    window: int = 25
    critic_steps: int = 5
    lr_g: float = 1e-4
    lr_c: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    lambda_gp: float = 50.0
    lambda_gap: float = 100.0
    gap: bool = True
    gap_momentum: float = 0.01
    ema: float = 0.995
    pca_components: int = 32
    checkpoint_every: int = 200   # iterations
    # Iterations whose losses are read back from the device at once: one host synchronisation per this many
    # iterations instead of several per iteration (the progress bar, metrics.csv and the divergence check follow).
    readback_every: int = 10
    # Windows that start late (DESIGN §5b, beyond the paper; pool_size 0 is the paper: every fake window starts
    # at init(i)). See state_pool.py.
    pool_size: int = 0            # G states kept in the pool
    pool_fraction: float = 0.5    # share of every fake batch (critic and generator) taken from the pool
    pool_advance: int = 25        # steps every pool state takes after each generator update
    pool_reset: float = 0.02      # share of the pool restarted from init(i) after each generator update
    # A slow timescale (DESIGN §5b, beyond the paper; slow_weight 0 is the paper). See slow_critic.py.
    slow_weight: float = 0.0      # weight of the slow critic's WGAN loss in G's objective (0: no slow critic)
    slow_window: int = 64         # samples per slow window
    slow_stride: int = 10         # frames between them: 2.5 per second at 25 fps, a window spans 25.2 s
    slow_components: int = 8      # top PCA components the slow critic reads
    slow_batch: int = 16          # long windows per slow critic step and per generator step
    # Late windows keep the data's mean and spread (beyond the paper; needs a pool; 0 is off). See late_moments.py.
    late_moment_weight: float = 0.0
    late_moment_components: int = 8   # top PCA components whose moments the pool windows must match
    late_moment_over: str = "frames"  # the moments of every frame, or of each window's mean ("windows")
    late_moment_windows: int = 0      # pool windows drawn for L_M alone each generator step (0: the batch's own)
    late_moment_ages: int = 1         # age strata of that draw, each asked for the data's moments (1: their mixture)
    late_moment_directions: int = 0   # random directions the moments are matched along (0: each component's own)
    late_moment_momentum: float = 1.0  # weight of each step's moments in running ones (1: each step's own)
    # The learning rates fall linearly to zero over this share of the run's iterations, at its end (beyond the
    # paper; 0: constant). With a pool, G stops moving while the pool's old states, stepped by the G's of the last
    # ~1 / pool_reset updates (50 at the defaults), catch up with it, and G_ema with G (docs/long-horizon.md §3f).
    lr_decay: float = 0.0
    # C's matmuls and convolutions in this type (autocast; "float32" is the paper's). "bfloat16" uses a CPU's AMX
    # or a GPU's tensor cores; scores, losses and C's weights stay float32.
    critic_dtype: str = "float32"
    seed: int = 0
    generator: dict[str, Any] = field(default_factory=dict)   # TemporalGeneratorConfig overrides
    critic: dict[str, Any] = field(default_factory=dict)      # TemporalCriticConfig overrides

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.betas = tuple(config.betas)
        return config

    def pool_windows(self, batch: int) -> int:
        """How many of a batch of `batch` fake windows come from the state pool."""
        return round(batch * self.pool_fraction) if self.pool_size else 0

    def check(self) -> None:
        """Refuse settings that cannot work, before any work starts (one line for the user)."""
        if self.pool_size:
            if not 0 <= self.pool_fraction < 1:
                raise UserError(f"--pool-fraction must be in [0, 1) (some windows must start at init(i) for GAP), "
                                f"got {self.pool_fraction}")
            if not 0 < self.pool_reset <= 1:
                raise UserError(f"--pool-reset must be in (0, 1], got {self.pool_reset}")
            if self.pool_advance < 1:
                raise UserError(f"--pool-advance must be at least 1, got {self.pool_advance}")
            if self.pool_size < self.pool_windows(self.batch_size):
                raise UserError(f"--pool-size {self.pool_size} is smaller than the {self.pool_windows(self.batch_size)} "
                                "pool windows of every batch")
        if self.critic_dtype not in CRITIC_DTYPES:
            raise UserError(f"--critic-dtype must be one of {', '.join(CRITIC_DTYPES)}, got {self.critic_dtype!r}")
        if not 0 <= self.lr_decay <= 1:
            raise UserError(f"--lr-decay must be in [0, 1] (a share of the run's iterations), got {self.lr_decay}")
        if self.late_moment_windows < 0:
            raise UserError(f"--late-moment-windows must be >= 0, got {self.late_moment_windows}")
        if self.late_moment_weight < 0:
            raise UserError(f"--late-moments must be >= 0, got {self.late_moment_weight}")
        if self.late_moment_weight:
            if not self.pool_size:
                raise UserError("--late-moments acts on the windows that start from pool states: it needs --pool-size "
                                "(--paper turns both off)")
            if not 1 <= self.late_moment_components <= self.pca_components:
                raise UserError(f"--late-moment-components must be in 1..{self.pca_components} (the run's PCA), "
                                f"got {self.late_moment_components}")
            if self.late_moment_over not in LATE_MOMENTS_OVER:
                raise UserError(f"--late-moments-over must be frames or windows, got {self.late_moment_over!r}")
            if self.late_moment_windows > self.pool_size:
                raise UserError(f"--late-moment-windows {self.late_moment_windows} is more than the "
                                f"{self.pool_size} states of the pool")
            late_windows = self.late_moment_windows or self.pool_windows(self.batch_size)
            if self.late_moment_over == "windows" and late_windows < 2:
                raise UserError("--late-moments-over windows measures a spread of window means: it needs at least 2 "
                                f"pool windows per batch, got {late_windows} (raise --late-moment-windows, "
                                "--pool-fraction or --batch-size)")
            if self.late_moment_ages > 1:
                if not self.late_moment_windows:
                    raise UserError("--late-moment-ages splits L_M's own draw of pool windows by age: it needs "
                                    "--late-moment-windows")
                if self.late_moment_windows < 2 * self.late_moment_ages:
                    raise UserError(f"--late-moment-ages {self.late_moment_ages} needs at least 2 windows per age "
                                    f"stratum: --late-moment-windows of at least {2 * self.late_moment_ages}, got "
                                    f"{self.late_moment_windows}")
                if self.pool_size // self.late_moment_ages < -(-self.late_moment_windows // self.late_moment_ages):
                    raise UserError(f"--late-moment-windows {self.late_moment_windows} in {self.late_moment_ages} "
                                    f"age strata is more than the {self.pool_size // self.late_moment_ages} states "
                                    "each stratum of the pool holds")
        elif self.late_moment_windows:
            raise UserError("--late-moment-windows sets how many windows --late-moments reads: it needs --late-moments")
        if self.late_moment_ages < 1:
            raise UserError(f"--late-moment-ages must be >= 1, got {self.late_moment_ages}")
        if self.late_moment_directions < 0:
            raise UserError(f"--late-moment-directions must be >= 0, got {self.late_moment_directions}")
        if self.late_moment_directions and not self.late_moment_weight:
            raise UserError("--late-moment-directions sets how --late-moments matches moments: it needs --late-moments")
        if not 0 < self.late_moment_momentum <= 1:
            raise UserError(f"--late-moment-momentum must be in (0, 1], got {self.late_moment_momentum}")
        if self.late_moment_momentum < 1 and not self.late_moment_weight:
            raise UserError("--late-moment-momentum sets how --late-moments estimates moments: it needs --late-moments")
        if self.late_moment_ages > 1 and not self.late_moment_weight:
            raise UserError("--late-moment-ages splits the windows --late-moments reads: it needs --late-moments")
        if self.slow_weight < 0:
            raise UserError(f"--slow-weight must be >= 0, got {self.slow_weight}")
        if self.slow_weight:
            if self.slow_stride < 1 or self.slow_batch < 1:
                raise UserError("--slow-stride and --slow-batch must be at least 1")
            if not 1 <= self.slow_components <= self.pca_components:
                raise UserError(f"--slow-components must be in 1..{self.pca_components} (the run's PCA), "
                                f"got {self.slow_components}")
            try:
                build_slow_critic(self.slow_window, self.slow_components, self.critic)
            except ValueError as e:
                raise UserError(f"--slow-window {self.slow_window}: {e}") from None


def check_cuda_graph(device: str) -> None:
    """Refuse a CUDA graph (`Trainer.use_cuda_graph`) where it cannot run, before a run is started."""
    if device != "cuda":
        raise UserError(f"--cuda-graph needs --device cuda (training would run on {device})")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the run keeps its last good checkpoint."""


@dataclass
class IterationStats:
    iteration: int
    epoch: float
    loss_c: float
    wasserstein: float
    gp: float
    loss_g: float
    gap: float
    phi: float
    slow_wasserstein: float   # the slow critic's Wasserstein estimate (NaN without one)
    late_moments: float       # L_M of the generator step's pool windows (NaN when off)
    seconds: float


@dataclass
class PendingStats:
    """An iteration's figures still on the training device: `read_back` copies many at once."""

    iteration: int
    epoch: float
    losses: torch.Tensor   # loss_c, wasserstein, gp, loss_g, gap, phi, slow_wasserstein, late_moments
    seconds: float


def read_back(pending: list[PendingStats]) -> list[IterationStats]:
    """The figures of `pending` iterations with one device-to-host copy (one synchronisation)."""
    values = torch.stack([p.losses for p in pending]).tolist()
    return [IterationStats(p.iteration, p.epoch, *v, p.seconds) for p, v in zip(pending, values)]


def build_models(config: TrainConfig, n_styles: int, style_dim: int) -> tuple[TemporalGenerator, TemporalCritic]:
    g_config = TemporalGeneratorConfig(**{**config.generator, "n_styles": n_styles, "style_dim": style_dim})
    c_config = TemporalCriticConfig(**{**config.critic, "window": config.window, "n_styles": n_styles,
                                       "style_dim": style_dim})
    return TemporalGenerator(g_config), TemporalCritic(c_config)


class Trainer:
    """Owns the models, optimisers, random streams and run directory of one training run."""

    def __init__(self, data: WPlusSequence, run_dir: Path, config: TrainConfig, device: str = "cpu"):
        config.check()
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.data = data
        wplus = torch.from_numpy(data.wplus).to(self.device)
        self.sampler = WindowSampler(wplus, config.window, config.seed)
        self.batches_per_epoch = max(1, self.sampler.n_windows // config.batch_size)
        self.total_iterations = math.ceil(config.epochs * self.batches_per_epoch / config.critic_steps)

        with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.G, self.C = build_models(config, data.n_styles, data.style_dim)
            self.C_slow = (build_slow_critic(config.slow_window, config.slow_components, config.critic)
                           if config.slow_weight else None)
        with torch.no_grad():  # centre G's output on the actor's mean code, so the critic sees motion, not offset
            self.G.T[-1].bias.zero_()
            self.G.A.bias.copy_(torch.from_numpy(data.wplus.mean(0)))
        self.C.set_input_statistics(torch.from_numpy(data.wplus))  # see TemporalCritic: C must see the motion
        self.G.to(self.device)
        self.C.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.gap_stats = GAPStatistics(self.G.config.latent_dim, momentum=config.gap_momentum).to(self.device)
        self.opt_g = self._adam(self.G, config.lr_g)
        self.opt_c = self._adam(self.C, config.lr_c)
        self.noise = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.pool = StatePool(config.pool_size, config.pool_reset, self.device) if config.pool_size else None
        if self.C_slow is not None:
            self._init_slow_critic()
        self.late_moments = (LateMoments(PCAProjection(PCABasis.load(self.run_dir / PCA_FILE),
                                                       config.late_moment_components),
                                         torch.from_numpy(data.wplus), config.late_moment_over,
                                         config.window, config.late_moment_directions, config.late_moment_momentum,
                                         strata=config.late_moment_ages).to(self.device)
                             if config.late_moment_weight else None)
        self.iteration = 0
        self._order: tuple[int, torch.Tensor | None] = (-1, None)
        self.graph: IterationGraph | None = None

    def _adam(self, model: torch.nn.Module, lr: float) -> torch.optim.Adam:
        # Capturable Adam keeps its step count on the GPU: the non-capturable one reads it back to the host every
        # step (a synchronisation per parameter group, and no CUDA graph capture). torch has it on CUDA only.
        return torch.optim.Adam(model.parameters(), lr=lr, betas=self.config.betas,
                                capturable=self.device.type == "cuda")

    def _init_slow_critic(self) -> None:
        """The slow critic's view of the data: the training codes' top PCA coordinates, and its optimiser."""
        c = self.config
        self.slow_layout = SlowWindows(c.slow_window, c.slow_stride)
        if len(self.data.wplus) < self.slow_layout.span:
            raise RunError(f"the training sequence has {len(self.data.wplus)} frames, fewer than one slow window "
                           f"({c.slow_window} samples every {c.slow_stride} frames = {self.slow_layout.span})")
        self.projection = PCAProjection(PCABasis.load(self.run_dir / PCA_FILE), c.slow_components).to(self.device)
        with torch.no_grad():
            self.slow_real = self.projection(torch.from_numpy(self.data.wplus).to(self.device))
        self.C_slow.set_input_statistics(self.slow_real[:, None].cpu())
        self.C_slow.to(self.device)
        self.opt_slow = self._adam(self.C_slow, c.lr_c)

    # ---------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT, "config": asdict(self.config),
            "generator_config": asdict(self.G.config), "critic_config": asdict(self.C.config),
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "C": self.C.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_c": self.opt_c.state_dict(),
            "gap_stats": self.gap_stats.state_dict(), "noise_rng": self.noise.get_state(),
            "pool": self.pool.state_dict() if self.pool is not None and self.pool.filled else None,
            **({"C_slow": self.C_slow.state_dict(), "opt_slow": self.opt_slow.state_dict()}
               if self.C_slow is not None else {}),
            **({"late_moments": running} if self.late_moments is not None
               and (running := self.late_moments.running_state()) else {}),
            "iteration": self.iteration, "fps": self.data.fps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.C.load_state_dict(state["C"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_c.load_state_dict(state["opt_c"])
        self.gap_stats.load_state_dict(state["gap_stats"])
        self.noise.set_state(state["noise_rng"])
        if self.pool is not None and state.get("pool"):
            self.pool.load_state_dict(state["pool"])
        if self.C_slow is not None:
            self.C_slow.load_state_dict(state["C_slow"])
            self.opt_slow.load_state_dict(state["opt_slow"])
        if "late_moments" in state:
            self.late_moments.load_running_state(state["late_moments"])
        self.iteration = int(state["iteration"])

    def save_checkpoint(self) -> Path:
        path = self.run_dir / CHECKPOINT
        atomic_torch_save(self.state_dict(), path)
        return path

    # ----------------------------------------------------------------------------------------------- steps

    def learning_rate_scale(self, iteration: int) -> float:
        """The share of lr_g and lr_c that iteration `iteration` (from 0) uses: 1 until the last `lr_decay` of the
        run's iterations, then linear down to 1 / (their number) at its last iteration."""
        decay_iterations = self.config.lr_decay * self.total_iterations
        if decay_iterations <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.total_iterations - iteration) / decay_iterations))

    def _optimisers(self) -> list[tuple[torch.optim.Adam, float]]:
        """Every optimiser with its configured learning rate."""
        optimisers = [(self.opt_g, self.config.lr_g), (self.opt_c, self.config.lr_c)]
        if self.C_slow is not None:
            optimisers.append((self.opt_slow, self.config.lr_c))
        return optimisers

    def _set_learning_rates(self) -> None:
        # A function of the iteration alone, so a resumed run follows the same schedule (an optimiser's saved
        # state holds the rate of its last step, which this overwrites).
        scale = self.learning_rate_scale(self.iteration)
        for optimiser, lr in self._optimisers():
            for group in optimiser.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr * scale)   # in place: a CUDA graph's replays read this tensor
                else:
                    group["lr"] = lr * scale

    def hold_learning_rates_on_device(self) -> None:
        """Keep every optimiser's rate in a device tensor that `_set_learning_rates` overwrites in place, so that a
        CUDA graph follows --lr-decay: a float rate is baked into the graph at its capture, a tensor one is read at
        each replay (capturable Adam takes it). Checkpoints then hold the rates as tensors; a resume keeps them."""
        for optimiser, _ in self._optimisers():
            for group in optimiser.param_groups:
                group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32, device=self.device)

    def _real_batch(self, critic_batch: int) -> torch.Tensor:
        epoch, index = divmod(critic_batch, self.batches_per_epoch)
        if self._order[0] != epoch:
            self._order = (epoch, self.sampler.epoch_order(epoch))
        b = min(self.config.batch_size, self.sampler.n_windows)
        return self.sampler.windows(self._order[1][index * b: (index + 1) * b])

    def _sample_noise(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.G.sample_inputs(batch, self.config.window, generator=self.noise, device=self.device)

    def _fake_windows(self, batch: int, gap: bool = False, batches: int = 1
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """`batches` batches of `batch` windows of G, one after the other; in each, the windows that start at
        `init(i)` come first, then those that start from pool states. All fresh windows are one unroll and all
        pool windows one rollout: the critic steps take their fake batches from one call, since G does not change
        between them, which launches a fifth of the kernels of five calls (issue 17).
        Returns (windows, (i, s, latents) of the fresh windows, for GAP); `gap` makes i and s require grad."""
        n_pool = self.config.pool_windows(batch)
        i, s = self._sample_noise(batches * (batch - n_pool))
        i.requires_grad_(gap)
        s.requires_grad_(gap)
        wplus, latents = self.G.unroll(i, s)
        if n_pool:
            draws = [self._filled_pool().sample(n_pool, self.noise) for _ in range(batches)]
            pooled = self._continue(tuple(torch.cat(h) for h in zip(*draws)))
            wplus = torch.cat([part for pair in zip(wplus.tensor_split(batches), pooled.tensor_split(batches))
                               for part in pair])
        return wplus, (i, s, latents)

    def _filled_pool(self) -> StatePool:
        if not self.pool.filled:
            self.pool.fill(self.G, self.noise)
        return self.pool

    def _continue(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One window of G from each of the states (gradient through its own steps only)."""
        return self.G.rollout(state, self._window_steps(state))[0]

    def _continue_means(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The mean W+ code of the window `_continue` would give each state, as a window of one frame [n, 1, ...]:
        the style maps A are affine, so A of the window's mean T(l_k) is the mean of its codes, for 1/window of
        A's work. L_M over window means reads nothing else, and A on every frame of its 128 windows was 40% of its
        cost (issue 17)."""
        latents = self.G.rollout_latents(state, self._window_steps(state))[0]
        return self.G.A(self.G.T(latents).mean(1))[:, None]

    def _window_steps(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.randn(state[0].shape[0], self.config.window, self.G.config.latent_dim, generator=self.noise,
                           device=self.device)

    def _late_moments(self, wplus: torch.Tensor, batch: int) -> torch.Tensor:
        """L_M of the generator step: on the batch's pool windows (the last of `wplus`), on a draw of its own, or,
        with `late_moment_ages` > 1, the mean of L_M over a draw balanced across that many age strata of the pool:
        a mixture of ages can have the data's moments while young states sit on one side of the data's mean and
        old ones on the other, which streams show as a drift through the minutes (docs/long-horizon.md §3e)."""
        config = self.config
        if not config.late_moment_windows:
            return self.late_moments(wplus[batch - config.pool_windows(batch):], self.noise)
        windows = self._continue_means if config.late_moment_over == "windows" else self._continue
        if config.late_moment_ages == 1:
            return self.late_moments(windows(self._filled_pool().sample(config.late_moment_windows, self.noise)),
                                     self.noise)
        state, sizes = self._filled_pool().sample_by_age(config.late_moment_windows, config.late_moment_ages,
                                                         self.noise)
        return torch.stack([self.late_moments(w, self.noise, stratum)
                            for stratum, w in enumerate(windows(state).split(sizes))]).mean()

    def _scores(self, windows: torch.Tensor) -> torch.Tensor:
        """C's scores of `windows` (float32), computed in `critic_dtype`: C's first layer reads every frame's whole
        W+ code and is most of a critic step's arithmetic; in bfloat16 it runs on AMX (this 2-core CPU: bundle F's
        recipe 0.307 -> 0.266 s per iteration on both cores; the paper's widths 6.7 -> 3.9 s)."""
        # without autocast's cache of cast weights, which a CUDA graph's capture must not keep (each call casts
        # each weight once anyway)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.critic_dtype == "bfloat16",
                            cache_enabled=False):
            return self.C(windows).float()

    def _critic_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One WGAN-GP step of C on a real and a fake batch; returns [loss, Wasserstein estimate, GP] on the
        device."""
        wasserstein_loss, gp = critic_objective(self._scores, real, fake, generator=self.noise)
        loss = wasserstein_loss + self.config.lambda_gp * gp
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_c.step()
        return torch.stack([loss, -wasserstein_loss, gp]).detach()

    def _slow_critic_step(self) -> torch.Tensor:
        """One WGAN-GP step of the slow critic on long windows; returns its Wasserstein estimate (on the device)."""
        real = real_slow_windows(self.slow_real, self.slow_layout, self.config.slow_batch, self.noise)
        with torch.no_grad():
            fake = fake_slow_windows(self.G, self.projection, self.slow_layout, self.config.slow_batch, self.noise)
        wasserstein_loss, gp = critic_objective(self.C_slow, real, fake, generator=self.noise)
        loss = wasserstein_loss + self.config.lambda_gp * gp
        self.opt_slow.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_slow.step()
        return -wasserstein_loss.detach()

    def _generator_step(self, batch: int) -> torch.Tensor:
        """One update of G (WGAN + GAP, and the options' terms), its EMA and the pool; returns [loss, GAP, mean phi,
        L_M] on the device."""
        use_gap = self.config.gap and self.config.lambda_gap > 0
        wplus, (i, s, latents) = self._fake_windows(batch, gap=use_gap)
        self.C.requires_grad_(False)
        loss = generator_wgan_loss(self._scores(wplus))
        self.C.requires_grad_(True)
        if self.C_slow is not None:  # G's long windows, gradient through the whole rollout
            self.C_slow.requires_grad_(False)
            slow = fake_slow_windows(self.G, self.projection, self.slow_layout, self.config.slow_batch, self.noise)
            loss = loss + self.config.slow_weight * generator_wgan_loss(self.C_slow(slow))
            self.C_slow.requires_grad_(True)
        late_moments = torch.full((), float("nan"), device=loss.device)
        if self.late_moments is not None:
            late_moments = self._late_moments(wplus, batch)
            loss = loss + self.config.late_moment_weight * late_moments
        gap = phi_mean = torch.full((), float("nan"), device=loss.device)
        if use_gap:
            phi = gradient_angle(i, s, latents, self.gap_stats)
            gap_loss = gradient_angle_penalty(phi)
            loss = loss + self.config.lambda_gap * gap_loss
            gap, phi_mean = gap_loss, phi.mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - self.config.ema)
        if self.pool is not None and self.pool.filled:
            self.pool.advance(self.G, self.config.pool_advance, self.noise)
        return torch.stack([loss.detach(), gap.detach(), phi_mean.detach(), late_moments.detach()])

    def iterate(self) -> PendingStats:
        """One iteration (the critic steps, the slow critic's, G's), with no host synchronisation: its figures stay
        on the device until `read_back`. With `use_cuda_graph` its device work is a graph's replay."""
        start = time.perf_counter()
        if self.config.lr_decay:
            self._set_learning_rates()
        first, steps = self.iteration * self.config.critic_steps, self.config.critic_steps
        real = [self._real_batch(b) for b in range(first, first + steps)]
        losses = self._step(real) if self.graph is None else self.graph(real)
        self.iteration += 1
        return PendingStats(self.iteration, self.iteration * self.config.critic_steps / self.batches_per_epoch,
                            losses, time.perf_counter() - start)

    def _step(self, real: list[torch.Tensor]) -> torch.Tensor:
        """An iteration's device work on its real batches, one per critic step; returns its losses (`PendingStats`).
        What `IterationGraph` captures: it reads nothing back to the host and changes the run's state in place."""
        steps = len(real)
        with torch.no_grad():
            fake = self._fake_windows(real[0].shape[0], batches=steps)[0].tensor_split(steps)
        critic = torch.stack([self._critic_step(r, f) for r, f in zip(real, fake)]).mean(0)
        slow_wasserstein = (self._slow_critic_step() if self.C_slow is not None
                            else torch.full((), float("nan"), device=critic.device))
        generator = self._generator_step(min(self.config.batch_size, self.sampler.n_windows))
        return torch.cat([critic, generator[:3], slow_wasserstein[None], generator[3:]])

    def use_cuda_graph(self, warmup: int = GRAPH_WARMUP) -> None:
        """Run every iteration from here on as the replay of one CUDA graph (`cuda_graph.py`), after `warmup` eager
        ones (CUDA only). With --lr-decay the graph reads the rates from device tensors the schedule updates."""
        check_cuda_graph(self.device.type)
        if self.config.lr_decay:
            self.hold_learning_rates_on_device()
        self.graph = IterationGraph(self._step, self.noise, warmup)

    def resolve(self, pending: list[PendingStats]) -> list[IterationStats]:
        """Read `pending` back; raises TrainingDiverged at the first iteration whose losses are not finite."""
        stats = read_back(pending)
        for row in stats:
            if not (math.isfinite(row.loss_c) and math.isfinite(row.loss_g)):
                raise TrainingDiverged(f"loss became non-finite at iteration {row.iteration} "
                                       f"(critic {row.loss_c}, generator {row.loss_g})")
        return stats

    def train_iteration(self) -> IterationStats:
        """One iteration, its figures read back at once."""
        return self.resolve([self.iterate()])[0]

    # ---------------------------------------------------------------------------------------------- the run

    def stop_iteration(self, max_iterations: int | None = None) -> int:
        """The iteration `run(max_iterations)` stops at when nothing interrupts it."""
        if max_iterations is None:
            return self.total_iterations
        return min(self.total_iterations, self.iteration + max_iterations)

    def run(self, max_iterations: int | None = None, should_stop: Callable[[], bool] = lambda: False,
            progress: Callable[[IterationStats], None] = lambda stats: None, max_seconds: float | None = None) -> str:
        """Train until the configured epochs are done, `max_iterations` more iterations ran, `max_seconds` passed
        (checked before each iteration, so the last one may end after it), or `should_stop()`.

        Returns why it stopped ("done", "max_iterations", "max_minutes", "stopped"). A checkpoint is written every
        `checkpoint_every` iterations and whenever it stops; on divergence none is written.
        """
        started = time.monotonic()
        target = self.stop_iteration(max_iterations)
        reason = "done" if target == self.total_iterations else "max_iterations"
        with MetricsLog(self.run_dir / METRICS, self.iteration) as log:
            pending: list[PendingStats] = []

            def settle() -> None:  # read back, log and check what ran since the last read-back
                for stats in self.resolve(pending) if pending else []:
                    log.write(stats)
                    progress(stats)
                pending.clear()

            while self.iteration < target:
                if should_stop():
                    reason = "stopped"
                    break
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    reason = "max_minutes"
                    break
                pending.append(self.iterate())
                checkpoint_due = self.iteration % self.config.checkpoint_every == 0
                if checkpoint_due or len(pending) >= self.config.readback_every:
                    settle()  # before a checkpoint too: a diverged state is never saved
                if checkpoint_due:
                    self.save_checkpoint()
            settle()
        self.save_checkpoint()
        self.save_samples()
        return reason

    @torch.no_grad()
    def save_samples(self, n: int = 4, length: int = 250) -> None:
        """G_ema trajectories and real windows in PCA coordinates, for `svgan-eval` plots."""
        pca = PCABasis.load(self.run_dir / PCA_FILE)
        g = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
        fake = self.G_ema(*self.G_ema.sample_inputs(n, length, generator=g, device=self.device)).cpu().numpy()
        atomic_write(self.run_dir / SAMPLES, lambda f: np.savez(
            f, generated=pca.project(fake).astype(np.float32),
            real=pca.project(self.data.wplus[:length]).astype(np.float32), iteration=self.iteration))


def _row_iteration(row: list[str]) -> float:
    """A metrics row's iteration; infinite for an empty or partial row (dropped on resume)."""
    try:
        return int(row[0])
    except (IndexError, ValueError):
        return math.inf


class MetricsLog:
    """metrics.csv, one row per iteration (the fields of a stats dataclass whose first field is the iteration);
    on resume the rows after the checkpoint are dropped.

    The kept rows are written to a new file that replaces the old one atomically, so a kill at that moment cannot
    lose the run's history; new rows are then appended line by line (a kill leaves at most a partial last row,
    which is after the checkpoint and so dropped at the next resume)."""

    def __init__(self, path: Path, resume_iteration: int, stats_type: type = IterationStats):
        self.path = path
        self.columns = [f.name for f in fields(stats_type)]
        rows: list[list[str]] = []
        if resume_iteration > 0 and path.exists():
            with path.open(newline="") as f:
                header, *old_rows = list(csv.reader(f)) or [[]]
            # A run resumed by a newer svgan may log more columns: keep the old rows under their own names and
            # leave the new columns empty in them (NaN when read).
            where = {name: k for k, name in enumerate(header)}
            rows = [[r[where[c]] if where.get(c, len(r)) < len(r) else "" for c in self.columns]
                    for r in old_rows if _row_iteration(r) <= resume_iteration]
        kept = io.StringIO()
        csv.writer(kept).writerows([self.columns, *rows])
        atomic_write_text(path, kept.getvalue())
        self.file = path.open("a", newline="", buffering=1)  # line-buffered: progress is visible as it happens
        self.writer = csv.writer(self.file)

    def write(self, stats: Any) -> None:
        try:
            self.writer.writerow([f"{getattr(stats, c):.6g}" if isinstance(getattr(stats, c), float)
                                  else getattr(stats, c) for c in self.columns])
        except OSError as e:  # a full disk: name the file (a write error carries no file name)
            raise naming(e, self.path) from None

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def start_run(data: WPlusSequence, run_dir: Path, config: TrainConfig, device: str = "cpu",
              resume: bool = False, data_path: Path | None = None) -> Trainer:
    """A new run in an empty `run_dir` (PCA fitted and saved), or the run stored there when `resume`."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT
    if resume:
        if not checkpoint.is_file():
            raise RunError(f"--resume: no {CHECKPOINT} in {run_dir}")
        state = load_run_checkpoint(run_dir, device)
        if "input_mean" not in state.get("C", {}):
            raise RunError(f"{checkpoint} was written before the critic standardised its input and cannot be "
                           "resumed; start a new run")
        stored = TrainConfig.from_dict(state["config"])
        stored.epochs = config.epochs  # the one setting a resumed run may change: how long to go on
        trainer = Trainer(data, run_dir, stored, device)
        trainer.load_state_dict(state)
        return trainer
    if checkpoint.exists():
        raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    fit_pca(data.wplus, config.pca_components, seed=config.seed).save(run_dir / PCA_FILE)
    trainer = Trainer(data, run_dir, config, device)
    atomic_write_text(run_dir / "config.json", json.dumps(
        {"train": asdict(config), "generator": asdict(trainer.G.config), "critic": asdict(trainer.C.config),
         "frames": len(data.wplus), "fps": data.fps,
         "data": str(Path(data_path).resolve()) if data_path else None}, indent=2))
    return trainer

