"""`svgan-eval`'s work: sample a run's EMA generator, score its motion (`motion_metrics`), draw the plots.

G is sampled the way the paper evaluates it (§4): a "short" set of independent samples as long as the training
window and a "long" set of 1,500-frame samples (the length the paper shows), both from the EMA generator that
gets exported. Long samples are stepped frame by frame (the runtime's `init`/`step` path) and projected to the
run's PCA coordinates a chunk at a time, so W+ is never held whole: 16 x 1,500 frames of 18 x 512 floats would
be 880 MB, their 32 PCA coordinates are 3 MB.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svgan.models import PCABasis, TemporalGenerator, load_run_generator
from svgan.models.run import PCA_FILE, RunError

from .motion_metrics import MotionMetricsConfig, motion_report
from .trainer import METRICS
from .wplus_data import DataError, load_wplus

EVAL_DIR = "eval"
PLOTS = ("losses.png", "trajectories.png", "metrics.png")


@dataclass(frozen=True)
class EvalConfig:
    """What to sample. The paper used 2,048 short and 128 long (>= 128-frame) samples of images; in W+ far
    fewer suffice for stable FDs (see `motion_metrics.MotionMetricsConfig`).

    `short` None means as many short samples as the long set has windows (16 x 1500 / 25 = 960): window FDs
    estimated from equally many windows carry the same sampling bias, so their long/short ratio compares like
    with like (with 512 short vs 960 long windows a perfect generator's ratio is about 0.8, not 1).
    """

    short: int | None = None       # independent window-length samples (None: the long set's window count)
    long: int = 16                 # long samples
    long_frames: int = 1500        # frames per long sample (paper: "e.g. 1500 frames")
    seed: int = 0                  # short samples use seed, long ones seed + 1
    batch: int = 64                # samples generated at once
    chunk: int = 50                # frames of W+ held per batch before projecting to PCA (batch x chunk x
                                   # 18 x 512 floats: 118 MB at the defaults)
    metrics: MotionMetricsConfig = field(default_factory=MotionMetricsConfig)

    def short_count(self) -> int:
        return self.long * (self.long_frames // self.metrics.window) if self.short is None else self.short


@dataclass
class Evaluation:
    summary: dict[str, Any]   # the JSON summary
    long: np.ndarray          # [long, long_frames, k] PCA coordinates of the long samples
    real: np.ndarray          # [N, k] PCA coordinates of the training sequence
    fps: float


@torch.no_grad()
def sample_pca_trajectories(generator: TemporalGenerator, pca: PCABasis, count: int, length: int, seed: int,
                            device: str = "cpu", batch: int = 64, chunk: int = 50) -> np.ndarray:
    """`count` trajectories of `length` frames from G, in PCA coordinates: [count, length, k] float32.

    Stepped with `init`/`step` like the runtime; W+ is moved to the CPU and projected every `chunk` frames.
    The inputs come from a torch generator seeded with `seed`, drawn batch after batch, so a result depends
    only on (seed, count, length, batch).
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    out = np.empty((count, length, len(pca.components)), np.float32)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        held: list[torch.Tensor] = []
        done = 0
        for w in _stepped(generator, *generator.sample_inputs(n, length, generator=rng, device=device)):
            held.append(w)
            if len(held) == chunk or done + len(held) == length:
                out[start:start + n, done:done + len(held)] = pca.project(torch.stack(held, 1).cpu().numpy())
                done += len(held)
                held = []
    return out


def _stepped(generator: TemporalGenerator, i: torch.Tensor, s: torch.Tensor) -> Iterator[torch.Tensor]:
    """w_0, w_1, ... of one batch, one frame at a time (the runtime's view of G)."""
    state, w = generator.init(i)
    yield w
    for k in range(s.shape[1]):
        state, w = generator.step(s[:, k], state)
        yield w


def recorded_data_path(run_dir: Path) -> Path:
    """The W+ data a run was trained on, as `svgan-train` recorded it in config.json ("data")."""
    try:
        recorded = json.loads((run_dir / "config.json").read_text()).get("data")
    except (OSError, ValueError):
        recorded = None
    if not recorded:
        raise RunError(f"{run_dir / 'config.json'} does not record the training data; pass --data DATA.npz")
    return Path(recorded)


def evaluate_run(run_dir: Path, data: Path | None = None, config: EvalConfig = EvalConfig(), device: str = "cpu",
                 progress: Callable[[str], None] = lambda message: None) -> Evaluation:
    """Sample the run's EMA generator and compute every motion metric against the training data
    (`data`, by default the file recorded in the run's config.json)."""
    run_dir = Path(run_dir)
    generator, meta = load_run_generator(run_dir, device)
    data = recorded_data_path(run_dir) if data is None else Path(data)
    if not (run_dir / PCA_FILE).is_file():
        raise RunError(f"{run_dir} has no {PCA_FILE}")
    pca = PCABasis.load(run_dir / PCA_FILE)
    sequence = load_wplus(data, window=config.metrics.window)
    if (sequence.n_styles, sequence.style_dim) != (pca.n_styles, pca.style_dim):
        raise DataError(f"{data}: W+ codes are {sequence.n_styles}x{sequence.style_dim}, the run was trained on "
                        f"{pca.n_styles}x{pca.style_dim}")
    if len(sequence.wplus) < config.metrics.min_real_frames():
        raise DataError(f"{data}: {len(sequence.wplus)} frames; the metrics need at least "
                        f"{config.metrics.min_real_frames()}")
    if config.long_frames < config.metrics.min_loop_frames():
        raise RunError(f"the looping score needs long samples of at least {config.metrics.min_loop_frames()} frames")
    if config.short_count() < 2 or config.long < 1:
        raise RunError("need at least 2 short samples and 1 long sample")
    real = pca.project(sequence.wplus)
    progress(f"sampling {config.short_count()} short samples of {config.metrics.window} frames")
    short = sample_pca_trajectories(generator, pca, config.short_count(), config.metrics.window, config.seed,
                                    device, config.batch, config.chunk)
    progress(f"sampling {config.long} long samples of {config.long_frames} frames")
    long = sample_pca_trajectories(generator, pca, config.long, config.long_frames, config.seed + 1,
                                   device, config.batch, config.chunk)
    progress("computing Fréchet distances and the looping score")
    summary = {"run": str(run_dir), "data": str(data), "iteration": meta["iteration"],
               "frames": len(sequence.wplus), "fps": sequence.fps,
               "settings": {**asdict(config), "short": config.short_count()},
               **motion_report(short, long, real, config.metrics)}
    return Evaluation(summary=summary, long=long, real=real, fps=sequence.fps)


# ------------------------------------------------------------------------------------------------------ plots

def write_plots(evaluation: Evaluation, run_dir: Path, out_dir: Path) -> list[Path]:
    """losses.png (from metrics.csv), trajectories.png, metrics.png in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in PLOTS]
    plot_losses(run_dir / METRICS, paths[0])
    plot_trajectories(evaluation.long[0], evaluation.real, evaluation.fps, paths[1])
    plot_metric_table(evaluation.summary, paths[2])
    return paths


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed). Imported here, not at the top,
    so that computing metrics does not need matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as one float array per column (empty arrays when the run logged no iteration)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = rows[0].keys() if rows else []
    return {c: np.array([float(r[c]) for r in rows]) for c in columns}


def plot_losses(metrics_csv: Path, path: Path) -> None:
    """Critic loss, Wasserstein estimate, gradient penalty, generator loss, GAP and phi over iterations."""
    plt = _pyplot()
    metrics = read_metrics(metrics_csv) if metrics_csv.is_file() else {}
    panels = ("loss_c", "wasserstein", "gp", "loss_g", "gap", "phi")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for ax, name in zip(axes.flat, panels, strict=True):
        if name in metrics and len(metrics[name]):
            ax.plot(metrics["iteration"], metrics[name], lw=0.6, alpha=0.4)
            ax.plot(metrics["iteration"], _running_mean(metrics[name]), lw=1.2)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name)
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    if "phi" in metrics:
        axes.flat[-1].axhline(math.pi / 4, color="k", lw=0.8, ls="--")  # GAP's target angle
    fig.suptitle(f"training losses ({metrics_csv})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _running_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last ~2 % of iterations (at least 1), to see the trend through the WGAN noise."""
    width = max(1, len(values) // 50)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), width)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def plot_trajectories(generated: np.ndarray, real: np.ndarray, fps: float, path: Path) -> None:
    """The first 3 PCA coordinates over time: one long generated sample and the training sequence."""
    plt = _pyplot()
    frames = min(len(generated), len(real))
    seconds = np.arange(frames) / fps
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    for c, ax in enumerate(axes):
        ax.plot(seconds, real[:frames, c], lw=0.7, label="training sequence")
        ax.plot(seconds, generated[:frames, c], lw=0.7, label="generated (long sample 0)")
        ax.set_ylabel(f"PCA {c + 1}")
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("seconds")
    fig.suptitle("motion in the first 3 PCA components")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def metric_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of the metric table."""
    loop = summary["looping"]
    fds = [(f"{name} {kind} FD", f"{summary[name][f'{kind}_fd']:.4g}")
           for name in ("short", "long", "self") for kind in ("frame", "window")]
    return fds + [
        ("long / short window FD", f"{summary['long_short_window_fd_ratio']:.3f}"),
        (f"looping score ({loop['frames']} frames)", f"{loop['score']:.3f}"),
        ("looping score per long sample: min / median / max",
         " / ".join(f"{f(loop['per_sample']):.3f}" for f in (np.min, np.median, np.max))),
        ("training frames / variance", f"{summary['frames']} / {summary['real_variance']:.4g}"),
        ("iteration", str(summary["iteration"])),
    ]


def plot_metric_table(summary: dict[str, Any], path: Path) -> None:
    """`metric_rows` as a two-column table figure."""
    plt = _pyplot()
    rows = metric_rows(summary)
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 0.8))
    ax.axis("off")
    ax.table(cellText=[list(r) for r in rows], colLabels=["metric", "value"], cellLoc="left", colWidths=[0.6, 0.4],
             bbox=[0, 0, 1, 1])
    ax.set_title(f"svgan-eval: {summary['run']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
