"""`svgan-train DATA.npz --out RUN`: train the temporal generator on a W+ sequence (DESIGN §5)."""

from __future__ import annotations

import copy
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import click
from tqdm import tqdm

from svgan.cli_types import FiniteRange, OutputDir, OutputFile, write_summary
from svgan.errors import StopFlag, fail, one_line_errors

from .late_moments import OVER as LATE_MOMENTS_OVER
from .cuda_graph import GRAPH_WARMUP
from .trainer import (CHECKPOINT, CRITIC_DTYPES, LONG_HORIZON, MODEL_SIZES, TrainConfig, TrainingDiverged,
                      check_cuda_graph, start_run)
from .wplus_data import load_wplus

DEFAULTS = TrainConfig(**LONG_HORIZON)
PAPER = TrainConfig()


def recipe_default(name: str) -> str:
    """Help text for an option whose default `--paper` changes (click shows no default for None)."""
    return f"  [default: {getattr(DEFAULTS, name)}; with --paper: {getattr(PAPER, name)}]"


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "run_dir", required=True, type=OutputDir(),
              help="Run directory: checkpoint.pt, pca.npz, metrics.csv, samples.npz, config.json.")
@click.option("--epochs", default=DEFAULTS.epochs, type=click.IntRange(min=1),
              help="Passes over every 25-frame window of DATA (paper: 350).")
@click.option("--batch-size", default=DEFAULTS.batch_size, type=click.IntRange(min=1),
              help="Windows per critic and generator step.")
@click.option("--critic-steps", default=DEFAULTS.critic_steps, type=click.IntRange(min=1),
              help="Critic updates per generator update.")
@click.option("--lr-g", default=DEFAULTS.lr_g, type=FiniteRange(min=0, min_open=True),
              help="Adam learning rate of G.")
@click.option("--lr-c", default=DEFAULTS.lr_c, type=FiniteRange(min=0, min_open=True),
              help="Adam learning rate of C.")
@click.option("--lambda-gp", default=DEFAULTS.lambda_gp, type=FiniteRange(min=0),
              help="Weight of the WGAN gradient penalty (paper: 50).")
@click.option("--lambda-gap", default=DEFAULTS.lambda_gap, type=FiniteRange(min=0),
              help="Weight of the gradient angle penalty (paper: 100).")
@click.option("--no-gap", is_flag=True, help="Train without the gradient angle penalty (the paper's ablation).")
@click.option("--ema", default=DEFAULTS.ema, type=FiniteRange(0, 1, max_open=True),
              help="EMA momentum of G's weights (paper: 0.995).")
@click.option("--critic-dtype", type=click.Choice(CRITIC_DTYPES), default=DEFAULTS.critic_dtype,
              help="What the critic's matmuls and convolutions compute in (autocast; scores, losses and weights "
                   "stay float32). bfloat16 runs them on a CPU's AMX units (measured: docs/benchmarks.md) or a "
                   "GPU's tensor cores (not measured); on a CPU without bfloat16 units it is slower.")
@click.option("--model", "model_size", type=click.Choice(sorted(MODEL_SIZES)), default="paper",
              help="Widths of G and C: the paper's, or 'small' (about a quarter; CPU experiments, the demo world).")
@click.option("--paper", is_flag=True,
              help="Train the paper's method alone: the options marked 'with --paper' below (the state pool and "
                   "L_M, svgan-train's defaults for long streams) default to off. Options given still apply.")
@click.option("--pool-size", type=click.IntRange(min=0), default=None,
              help="Windows that start late (beyond the paper): G states kept in a pool that G keeps stepping "
                   "without gradient, so the critic also sees windows from deep into long streams. 0 is the "
                   "paper: every window starts at G's initial state." + recipe_default("pool_size"))
@click.option("--pool-fraction", type=FiniteRange(0, 1, max_open=True), default=None,
              help="With --pool-size: share of every fake batch taken from the pool (GAP acts on the rest)."
                   + recipe_default("pool_fraction"))
@click.option("--pool-advance", type=click.IntRange(min=1), default=DEFAULTS.pool_advance,
              help="With --pool-size: steps every pool state takes after each generator update.")
@click.option("--pool-reset", type=FiniteRange(0, 1, min_open=True), default=DEFAULTS.pool_reset,
              help="With --pool-size: share of the pool restarted from G's initial state after each generator "
                   "update; states reach a mean age of pool-advance / pool-reset frames (1,250 at the defaults).")
@click.option("--slow-weight", type=FiniteRange(min=0), default=DEFAULTS.slow_weight,
              help="A slow timescale (beyond the paper): weight of a second critic that compares long windows "
                   "at a low frame rate in the top PCA components. 0 is the paper: no slow critic.")
@click.option("--slow-window", type=click.IntRange(min=2), default=DEFAULTS.slow_window,
              help="With --slow-weight: samples per slow window.")
@click.option("--slow-stride", type=click.IntRange(min=1), default=DEFAULTS.slow_stride,
              help="With --slow-weight: frames between a slow window's samples (window x stride frames ~ its span).")
@click.option("--slow-components", type=click.IntRange(min=1), default=DEFAULTS.slow_components,
              help="With --slow-weight: top PCA components the slow critic reads.")
@click.option("--slow-batch", type=click.IntRange(min=1), default=DEFAULTS.slow_batch,
              help="With --slow-weight: long windows per slow critic step and per generator step.")
@click.option("--late-moments", "late_moment_weight", type=FiniteRange(min=0), default=None,
              help="With --pool-size (beyond the paper): weight of a term that asks the frames of the pool's "
                   "windows to have the training codes' mean and spread in the top PCA components, so long "
                   "streams keep the data's place. 0: off." + recipe_default("late_moment_weight"))
@click.option("--late-moment-components", type=click.IntRange(min=1), default=DEFAULTS.late_moment_components,
              help="With --late-moments: top PCA components whose mean and spread are matched.")
@click.option("--late-moments-over", "late_moment_over", type=click.Choice(LATE_MOMENTS_OVER), default=None,
              help="With --late-moments: match the moments of every frame, or of each window's mean (spread from "
                   "where windows sit rather than from motion within them)." + recipe_default("late_moment_over"))
@click.option("--late-moment-windows", type=click.IntRange(min=0), default=None,
              help="With --late-moments: pool windows drawn for the term alone at every generator step (the critic "
                   "never sees them), so it can estimate the moments from more windows than the batch's pool share. "
                   "0: the batch's own pool windows." + recipe_default("late_moment_windows"))
@click.option("--late-moment-ages", type=click.IntRange(min=1), default=None,
              help="With --late-moment-windows: draw those windows evenly from this many age strata of the pool and "
                   "ask each stratum for the data's moments (L_M is their mean), so that young and old states cannot "
                   "sit on opposite sides of the data's mean. 1: one draw, its moments over all ages."
                   + recipe_default("late_moment_ages"))
@click.option("--late-moment-directions", type=click.IntRange(min=0), default=None,
              help="With --late-moments: match the mean and spread along this many random directions of the "
                   "data-whitened top components, drawn anew every step, so the components' correlations must be "
                   "the data's too. 0: along each component, its correlations free."
                   + recipe_default("late_moment_directions"))
@click.option("--late-moment-momentum", type=FiniteRange(0, 1, min_open=True), default=DEFAULTS.late_moment_momentum,
              help="With --late-moments: read the moments from running ones per age stratum, each generator step's "
                   "blended in with this weight (its gradient stays the step's), so a few windows' sampling noise "
                   "neither drowns the pull nor shrinks the spread. 1: each step's own moments.")
@click.option("--lr-decay", type=FiniteRange(0, 1), default=DEFAULTS.lr_decay,
              help="Share of the run's iterations (its --epochs) at the end over which both learning rates fall "
                   "linearly to zero (beyond the paper): G settles, and with --pool-size the pool's old states and "
                   "G_ema catch up with it. 0: constant rates, the paper.")
@click.option("--checkpoint-every", default=DEFAULTS.checkpoint_every, type=click.IntRange(min=1),
              help="Iterations between checkpoints.")
@click.option("--max-iterations", type=click.IntRange(min=1), default=None,
              help="Stop (with a checkpoint) after this many more iterations: train in resumable chunks.")
@click.option("--max-minutes", type=FiniteRange(min=0, min_open=True), default=None,
              help="Stop (with a checkpoint) once this invocation has trained this long, checked before each "
                   "iteration: the best model a time budget buys (with --max-iterations, whichever comes first; "
                   "--epochs still sets the --lr-decay schedule).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Training device.")
@click.option("--cuda-graph", is_flag=True,
              help=f"Replay each iteration as one CUDA graph after {GRAPH_WARMUP} eager ones (--device cuda; "
                   "not yet measured on a GPU, see docs/benchmarks.md).")
@click.option("--seed", default=DEFAULTS.seed, type=click.IntRange(min=0),
              help="Seeds initialisation, window order and noise.")
@click.option("--resume", is_flag=True, help="Continue the run in --out bit for bit (--epochs may be raised).")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write a JSON summary here ('-' for stdout).")
@one_line_errors("svgan-train")
def main(data: Path, run_dir: Path, epochs: int, batch_size: int, critic_steps: int, lr_g: float, lr_c: float,
         lambda_gp: float, lambda_gap: float, no_gap: bool, ema: float, critic_dtype: str, model_size: str,
         paper: bool,
         pool_size: int | None, pool_fraction: float | None, pool_advance: int, pool_reset: float,
         slow_weight: float, slow_window: int, slow_stride: int, slow_components: int, slow_batch: int,
         late_moment_weight: float | None, late_moment_components: int, late_moment_over: str | None,
         late_moment_windows: int | None, late_moment_ages: int | None, late_moment_directions: int | None,
         late_moment_momentum: float, lr_decay: float, checkpoint_every: int, max_iterations: int | None,
         max_minutes: float | None, device: str, cuda_graph: bool, seed: int, resume: bool,
         json_out: Path | None) -> None:
    """Train StyleVideoGAN's recurrent W+ generator on DATA (a W+ sequence from svgan-embed).

    WGAN-GP + gradient angle penalty, EMA of G, PCA-32 basis of the training codes saved in the run. By default
    with windows that start late and L_M, which keep long streams in the training video's regime (--paper: without).
    Ctrl-C writes a checkpoint; --resume continues from it.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("svgan-train", "--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    given = dict(pool_size=pool_size, pool_fraction=pool_fraction, late_moment_weight=late_moment_weight,
                 late_moment_over=late_moment_over, late_moment_windows=late_moment_windows,
                 late_moment_ages=late_moment_ages, late_moment_directions=late_moment_directions)
    recipe = PAPER if paper else DEFAULTS
    long_horizon = {name: getattr(recipe, name) if value is None else value for name, value in given.items()}
    config = TrainConfig(epochs=epochs, batch_size=batch_size, critic_steps=critic_steps, lr_g=lr_g, lr_c=lr_c,
                         lambda_gp=lambda_gp, lambda_gap=lambda_gap, gap=not no_gap, ema=ema,
                         critic_dtype=critic_dtype,
                         pool_advance=pool_advance, pool_reset=pool_reset, slow_weight=slow_weight,
                         slow_window=slow_window, slow_stride=slow_stride, slow_components=slow_components,
                         slow_batch=slow_batch, late_moment_components=late_moment_components,
                         late_moment_momentum=late_moment_momentum, lr_decay=lr_decay,
                         checkpoint_every=checkpoint_every, seed=seed, **long_horizon,
                         **copy.deepcopy(MODEL_SIZES[model_size]))
    config.check()
    if cuda_graph:
        check_cuda_graph(device)
    sequence = load_wplus(data, window=config.window)
    trainer = start_run(sequence, run_dir, config, device=device, resume=resume, data_path=data)
    if cuda_graph:
        trainer.use_cuda_graph()
    stop = StopFlag(notice=lambda: tqdm.write("svgan-train: interrupt received; writing a checkpoint after this "
                                              "iteration (Ctrl-C again to abort)", file=sys.stderr))
    previous = signal.signal(signal.SIGINT, stop.handle)
    # The bar ends where this invocation stops: --max-iterations can end a run long before its last epoch.
    bar = tqdm(total=trainer.stop_iteration(max_iterations), initial=trainer.iteration, desc="svgan-train",
               unit="it", file=sys.stderr, dynamic_ncols=True)

    def progress(stats) -> None:
        bar.update(1)
        bar.set_postfix(epoch=f"{stats.epoch:.1f}", C=f"{stats.loss_c:.3f}", G=f"{stats.loss_g:.3f}",
                        gap=f"{stats.gap:.3f}", refresh=False)

    try:
        reason = trainer.run(max_iterations=max_iterations, should_stop=stop, progress=progress,
                             max_seconds=None if max_minutes is None else 60 * max_minutes)
    except TrainingDiverged as e:
        bar.close()
        kept = run_dir / CHECKPOINT
        fail("svgan-train", f"{e}; stopped. The last good checkpoint is kept: {kept}" if kept.exists()
             else f"{e}; stopped before the first checkpoint")
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    summary = {"run": str(run_dir), "stopped": reason, "iteration": trainer.iteration,
               "total_iterations": trainer.total_iterations, "checkpoint": str(run_dir / CHECKPOINT),
               "config": asdict(trainer.config)}
    click.echo(f"svgan-train: {reason} at iteration {trainer.iteration}/{trainer.total_iterations}; "
               f"checkpoint {run_dir / CHECKPOINT}", err=True)
    write_summary(json_out, summary)
    if reason == "stopped":
        sys.exit(130)


if __name__ == "__main__":
    main()
