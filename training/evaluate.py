"""`svgan-eval`'s work: sample a run's EMA generator, score its motion (`motion_metrics`), draw the plots.

G is sampled the way the paper evaluates it (§4): a "short" set of independent samples as long as the training
window and a "long" set of 1,525-frame samples (the 1,500 frames the paper shows, plus one window so that the
window starting at 60 s fits), both from the EMA generator that gets exported. Long samples are stepped frame by
frame (the runtime's `init`/`step` path) and projected to the run's PCA coordinates a chunk at a time, so W+ is
never held whole: 128 x 1,525 frames of 18 x 512 floats would be 7.2 GB, their 32 PCA coordinates are 25 MB.

The long samples feed both the paper's figures (`motion_metrics.motion_report`: FDs over all their windows,
looping score) and the long-horizon ones (`horizon_metrics.horizon_report`, DESIGN §5b: the same questions as
functions of the time since the stream started, at the paper's t = 250 and at 1,500 frames). G is recurrent, so
the first T frames of a long sample are exactly a T-frame sample: one long set serves every horizon.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svgan.atomic import atomic_write
from svgan.models import PCABasis, TemporalGenerator, load_run_generator
from svgan.models.run import PCA_FILE, RunError

from .horizon_metrics import HorizonConfig, horizon_report, slow_band_nperseg, welch_psd
from .motion_metrics import MotionMetricsConfig, motion_report
from .trainer import METRICS
from .wplus_data import DataError, load_wplus

EVAL_DIR = "eval"
PLOTS = ("losses.png", "trajectories.png", "metrics.png", "horizon.png")


@dataclass(frozen=True)
class EvalConfig:
    """What to sample. The paper used 2,048 short and 128 long (>= 128-frame) samples of images; in W+ far
    fewer suffice for stable FDs (see `motion_metrics.MotionMetricsConfig`).

    `long` is 128, the paper's count: with 16 (the default until session 11) stretches of the demo world's own
    codes score a largest late |offset| of 0.29 ± 0.08 std and spread down to 0.88 (`horizon_metrics.block_floor`),
    so the long-horizon goals (0.2 std, 0.9-1.1) could not be told from noise; with 128 they score 0.10 ± 0.02
    and 0.96-1.04. Sampling 128 x 1,525 frames of the small model takes ~20 s on one core.

    `short` None means as many short samples as the long set has windows (128 x 1525 // 25 = 7,808): window FDs
    estimated from equally many windows carry the same sampling bias, so their long/short ratio compares like
    with like (with 512 short vs 960 long windows a perfect generator's ratio is about 0.8, not 1).

    `long_frames` is the paper's 1,500 ("e.g. 1500 frames") plus one 25-frame window, so that the long-horizon
    window FD at 60 s (frames 1,500-1,524) fits; before the long-horizon report it was 1,500, and the figures in
    docs/demo-world.md were measured with `--long-frames 1500` (which reproduces them; the 60-s window is then
    null with its reason).
    """

    short: int | None = None       # independent window-length samples (None: the long set's window count)
    long: int = 128                # long samples (see above)
    long_frames: int = 1525        # frames per long sample: the paper's 1,500 + one window (see above)
    seed: int = 0                  # short samples use seed, long ones seed + 1
    burn_in: int = 0               # G steps before a sample's first frame (a bundle's burn-in, svgan-export)
    batch: int = 64                # samples generated at once
    chunk: int = 50                # frames of W+ held per batch before projecting to PCA (batch x chunk x
                                   # 18 x 512 floats: 118 MB at the defaults)
    metrics: MotionMetricsConfig = field(default_factory=MotionMetricsConfig)
    horizon: HorizonConfig = field(default_factory=HorizonConfig)

    def short_count(self) -> int:
        return self.long * (self.long_frames // self.metrics.window) if self.short is None else self.short


@dataclass
class Evaluation:
    summary: dict[str, Any]   # the JSON summary
    long: np.ndarray          # [long, long_frames, k] PCA coordinates of the long samples
    real: np.ndarray          # [N, k] PCA coordinates of the training sequence
    fps: float
    config: EvalConfig = field(default_factory=EvalConfig)   # what was sampled and measured (the plots re-read it)


@torch.no_grad()
def sample_pca_trajectories(generator: TemporalGenerator, pca: PCABasis, count: int, length: int, seed: int,
                            device: str = "cpu", batch: int = 64, chunk: int = 50, burn_in: int = 0) -> np.ndarray:
    """`count` trajectories of `length` frames from G, in PCA coordinates: [count, length, k] float32.

    Stepped with `init`/`step` like the runtime, the first `burn_in` frames dropped (a bundle's burn-in: the
    stream starts there); W+ is moved to the CPU and projected every `chunk` frames. The inputs come from a torch
    generator seeded with `seed`, drawn batch after batch, so a result depends only on (seed, count, length,
    batch, burn_in).
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    out = np.empty((count, length, len(pca.components)), np.float32)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        held: list[torch.Tensor] = []
        done = 0
        inputs = generator.sample_inputs(n, burn_in + length, generator=rng, device=device)
        for w in itertools.islice(_stepped(generator, *inputs), burn_in, None):
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
                                    device, config.batch, config.chunk, config.burn_in)
    progress(f"sampling {config.long} long samples of {config.long_frames} frames")
    long = sample_pca_trajectories(generator, pca, config.long, config.long_frames, config.seed + 1,
                                   device, config.batch, config.chunk, config.burn_in)
    progress("computing Fréchet distances and the looping score")
    summary = {"run": str(run_dir), "data": str(data), "iteration": meta["iteration"],
               "frames": len(sequence.wplus), "fps": sequence.fps,
               "settings": {**asdict(config), "short": config.short_count()},
               **motion_report(short, long, real, config.metrics)}
    progress(f"computing the long-horizon metrics at {', '.join(map(str, config.horizon.horizons))} frames")
    summary["horizon"] = horizon_report(long, real, sequence.fps, config.horizon, config.metrics)
    return Evaluation(summary=summary, long=long, real=real, fps=sequence.fps, config=config)


# ------------------------------------------------------------------------------------------------------ plots

def write_plots(evaluation: Evaluation, run_dir: Path, out_dir: Path) -> list[Path]:
    """losses.png (from metrics.csv), trajectories.png, metrics.png, horizon.png in `out_dir`; returns their
    paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in PLOTS]
    plot_losses(run_dir / METRICS, paths[0])
    plot_trajectories(evaluation.long[0], evaluation.real, evaluation.fps, paths[1])
    plot_metric_table(evaluation.summary, paths[2])
    plot_horizon(evaluation, paths[3])
    return paths


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed). Imported here, not at the top,
    so that computing metrics does not need matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(plt: Any, fig: Any, path: Path) -> None:
    """A PNG, atomically: `svgan-eval` killed while plotting never leaves half a picture."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as one float array per column (empty arrays when the run logged no iteration); a cell a row does
    not have (a column added by a newer svgan, a partial last row) is NaN."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows, columns = list(reader), reader.fieldnames or []
    return {c: np.array([_cell_value(r.get(c)) for r in rows]) for c in columns}


def _cell_value(cell: str | None) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


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
    _save_figure(plt, fig, path)


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
    _save_figure(plt, fig, path)


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
        *horizon_rows(summary),
        ("training frames / variance", f"{summary['frames']} / {summary['real_variance']:.4g}"),
        ("iteration", str(summary["iteration"])),
    ]


def measured_horizons(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The horizons the long samples held (the others carry only a "reason"), shortest first."""
    return {key: h for key, h in summary.get("horizon", {}).items() if "blocks" in h}


def block_text(h: dict[str, Any]) -> tuple[str, str]:
    """(name, value) of a horizon's spread and offset: over its late blocks against the data's floor for as many
    samples (`horizon_metrics.block_floor`), or of its last block where no block is late (a 250-frame horizon)."""
    late, floor = h["late_blocks"], h["block_floor"]
    if not late["blocks"]:
        last = h["blocks"][-1]
        return (f"block {last['frames'][0]}-{last['frames'][1]}: spread min-max, largest |offset|",
                f"{last['spread_min']:.2f}-{last['spread_max']:.2f}, {last['offset_max_abs']:.2f}")
    return (f"late blocks: spread min-max, largest |offset| (data floor, {floor['samples']} samples)",
            f"{late['spread_min']:.2f}-{late['spread_max']:.2f}, {late['offset_max_abs']:.2f} "
            f"({floor['spread_min']['mean']:.2f}-{floor['spread_max']['mean']:.2f}, "
            f"{floor['offset_max_abs']['mean']:.2f})")


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def horizon_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows of the long-horizon figures: window FD at the first and last start, the last block's
    spread and offset, slow-band power (longest measured horizon), and the looping score per horizon."""
    horizons = measured_horizons(summary)
    if not horizons:
        return []
    key, h = list(horizons.items())[-1]
    fds = [(k, e["fd"]) for k, e in h["window_fd"].items() if e["fd"] is not None]
    band = h["slow_band"]
    rows = [(f"window FD at {fds[0][0]} s / {fds[-1][0]} s ({key} frames; data floor)",
             f"{fds[0][1]:.4g} / {fds[-1][1]:.4g} ({h['window_fd_floor']['fd']:.4g})"),
            block_text(h),
            (f"slow-band power {band['band_hz'][0]:g}-{band['band_hz'][1]:g} Hz, late frames (dB)",
             "n/a (see JSON)" if band["power_db"] is None else " ".join(f"{v:+.1f}" for v in band["power_db"]))]
    return rows + [(f"looping score at {k} frames", _number(v["looping"]["score"], 3)) for k, v in horizons.items()]


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
    _save_figure(plt, fig, path)


def plot_horizon(evaluation: Evaluation, path: Path) -> None:
    """horizon.png: the long-horizon figures of the longest measured horizon (DESIGN §5b) against time since
    the stream started: window FD by start time (with the data's floor), spread ratio and mean offset per block,
    late-frame power spectra against the data's (slow band shaded), autocorrelation at the reported lags."""
    plt = _pyplot()
    horizons = measured_horizons(evaluation.summary)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    if not horizons:
        for ax in axes.flat:
            ax.axis("off")
        axes.flat[0].text(0, 0.5, "no horizon fits the long samples (see the JSON)", transform=axes.flat[0].transAxes)
    else:
        key, h = list(horizons.items())[-1]
        _plot_window_fd(axes[0, 0], h)
        _plot_blocks(axes[0, 1], axes[0, 2], h, evaluation.fps)
        _plot_psd(axes[1, 0], evaluation, h)
        _plot_autocorrelation(axes[1, 1], h)
        _plot_horizon_text(axes[1, 2], horizons)
        fig.suptitle(f"long horizon: {len(evaluation.long)} samples of G from its initial state, first {key} frames")
    fig.tight_layout()
    _save_figure(plt, fig, path)


def _plot_window_fd(ax: Any, h: dict[str, Any]) -> None:
    measured = [(float(k), e["fd"]) for k, e in h["window_fd"].items() if e["fd"] is not None]
    ax.plot(*zip(*measured), "o-", label="generated (one window per sample)")
    floor = h["window_fd_floor"]
    ax.axhline(floor["fd"], color="k", ls="--", lw=0.8, label=f"{floor['windows']} random training windows")
    ax.set_xscale("symlog", linthresh=1)   # starts from 0 s to a minute: linear below 1 s, logarithmic above
    ax.set_xlim(0, max(x for x, _ in measured) * 1.5 + 0.5)
    ax.set(xlabel="window start (s since init)", ylabel="window FD", title="window FD by start time")
    ax.legend(fontsize=8)


def _plot_blocks(spread_ax: Any, offset_ax: Any, h: dict[str, Any], fps: float) -> None:
    mids = np.array([sum(b["frames"]) / 2 / fps for b in h["blocks"]])
    spread = np.array([b["spread"] for b in h["blocks"]])
    offset = np.array([b["offset"] for b in h["blocks"]])
    for c in range(spread.shape[1]):
        spread_ax.plot(mids, spread[:, c], "o-", ms=3, lw=0.8, label=f"PCA {c + 1}")
        offset_ax.plot(mids, offset[:, c], "o-", ms=3, lw=0.8)
    spread_ax.axhline(1, color="k", lw=0.8)
    offset_ax.axhline(0, color="k", lw=0.8)
    spread_ax.set(xlabel="block centre (s)", ylabel="generated std / data std", title="spread ratio per block")
    offset_ax.set(xlabel="block centre (s)", ylabel="(generated - data mean) / data std",
                  title="mean offset per block")
    spread_ax.legend(fontsize=7, ncol=2)


def _plot_psd(ax: Any, evaluation: Evaluation, h: dict[str, Any]) -> None:
    band = h["slow_band"]
    ax.set_title("power spectra: late frames (-) vs data (--)")
    if band["power_db"] is None:
        ax.set_axis_off()
        ax.text(0, 0.9, "slow band not measured:\n" + textwrap.fill(band["reason"], 55), va="top",
                transform=ax.transAxes, fontsize=8)
        return
    config = evaluation.config.horizon
    nperseg = slow_band_nperseg(evaluation.fps, config.slow_band[0])
    start, stop = h["late_frames"]
    k = config.psd_components
    freqs, generated = welch_psd(evaluation.long[:, start:stop, :k], evaluation.fps, nperseg)
    _, data = welch_psd(evaluation.real[:, :k], evaluation.fps, nperseg)
    for c in range(k):
        line, = ax.loglog(freqs[1:], generated[1:, c], lw=1, label=f"PCA {c + 1}: {band['power_db'][c]:+.1f} dB")
        ax.loglog(freqs[1:], data[1:, c], lw=1, ls="--", color=line.get_color())
    ax.axvspan(*config.slow_band, color="0.9", zorder=0)
    ax.set(xlabel="Hz", ylabel="PSD")
    ax.legend(fontsize=7, title="slow-band power", title_fontsize=7)


def _plot_autocorrelation(ax: Any, h: dict[str, Any]) -> None:
    lags = [(float(k), e) for k, e in h["autocorrelation"].items()]
    for side, style in (("generated", "o-"), ("data", "s--")):
        points = [(lag, e[side]) for lag, e in lags if e[side] is not None]
        if points:
            x, values = zip(*points)
            for c, line in enumerate(np.array(values).T):
                ax.plot(x, line, style, ms=3, lw=0.8, color=f"C{c}",
                        label=f"PCA {c + 1}" if side == "generated" else None)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="lag (s)", ylabel="autocorrelation", title="autocorrelation: late (o-) vs data (s--)")
    ax.legend(fontsize=7)


def _plot_horizon_text(ax: Any, horizons: dict[str, dict[str, Any]]) -> None:
    ax.axis("off")
    lines = []
    for key, h in horizons.items():
        band = h["slow_band"]["power_db"]
        name, value = block_text(h)
        lines += [f"{key} frames ({h['seconds']:g} s), late frames {h['late_frames'][0]}-{h['late_frames'][1]}",
                  f"  {name}:", f"    {value}",
                  "  slow band " + ("n/a" if band is None else " ".join(f"{v:+.1f}" for v in band) + " dB"),
                  f"  looping score {_number(h['looping']['score'], 3)}", ""]
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8, transform=ax.transAxes)
