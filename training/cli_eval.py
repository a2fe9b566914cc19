"""`svgan-eval RUN`: motion quality of a trained run in W+ (DESIGN §10; the paper's short/long FID and FVD)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from svgan.errors import fail, one_line_errors

from .evaluate import EVAL_DIR, EvalConfig, evaluate_run, write_plots

DEFAULTS = EvalConfig()


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The W+ training sequence (.npz). Default: the file recorded in RUN/config.json.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON summary here ('-' for stdout).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder for losses.png, trajectories.png, metrics.png. Default: RUN/{EVAL_DIR}.")
@click.option("--short", type=click.IntRange(min=2), default=None,
              help="Independent 25-frame samples. Default: as many as the long set has windows "
                   "(--long x --long-frames / 25), so both window FDs carry the same sampling bias.")
@click.option("--long", "long_", type=click.IntRange(min=1), default=DEFAULTS.long,
              help="Long samples, each cut into non-overlapping 25-frame windows.")
@click.option("--long-frames", type=click.IntRange(min=DEFAULTS.metrics.min_loop_frames()),
              default=DEFAULTS.long_frames, help="Frames per long sample (the looping score uses these).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Device G is sampled on.")
@click.option("--seed", default=DEFAULTS.seed, help="Seeds G's inputs (short: SEED, long: SEED + 1).")
@one_line_errors("svgan-eval")
def main(run_dir: Path, data: Path | None, json_out: Path | None, plots_dir: Path | None, short: int | None,
         long_: int, long_frames: int, device: str, seed: int) -> None:
    """Score the motion of RUN's EMA generator against its W+ training sequence.

    Frame and 25-frame-window Fréchet distances in the run's PCA space, for short (25-frame) and long
    samples, their long/short ratio, and a looping score (1: as repetitive as the training video, > 1: loops);
    plus the same FDs between the two halves of the training sequence, as a floor. Progress goes to stderr.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("svgan-eval", "--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    config = EvalConfig(short=short, long=long_, long_frames=long_frames, seed=seed)
    evaluation = evaluate_run(run_dir, data, config, device,
                              progress=lambda message: click.echo(f"svgan-eval: {message}", err=True))
    plots = write_plots(evaluation, run_dir, run_dir / EVAL_DIR if plots_dir is None else plots_dir)
    summary = {**evaluation.summary, "plots": [str(p) for p in plots]}
    s, lo, loop = summary["short"], summary["long"], summary["looping"]
    click.echo(f"svgan-eval: window FD short {s['window_fd']:.4g}, long {lo['window_fd']:.4g} "
               f"(ratio {summary['long_short_window_fd_ratio']:.3f}, self {summary['self']['window_fd']:.4g}); "
               f"frame FD short {s['frame_fd']:.4g}, long {lo['frame_fd']:.4g}; looping score {loop['score']:.3f}; "
               f"plots in {plots[0].parent}", err=True)
    if json_out is not None:
        text = json.dumps(summary, indent=2)
        click.echo(text) if str(json_out) == "-" else json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
