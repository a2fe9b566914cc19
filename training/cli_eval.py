"""`svgan-eval RUN`: motion quality of a trained run in W+ (DESIGN §10; the paper's short/long FID and FVD) and
its long-horizon behaviour as a function of time since the stream started (DESIGN §5b)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from svgan.cli_types import OutputDir, OutputFile, write_summary
from svgan.errors import fail, one_line_errors

from .evaluate import EVAL_DIR, PLOTS, EvalConfig, block_text, evaluate_run, measured_horizons, write_plots

DEFAULTS = EvalConfig()
HORIZON = DEFAULTS.horizon


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The W+ training sequence (.npz). Default: the file recorded in RUN/config.json.")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write the JSON summary here ('-' for stdout). Default: not written (the one-line summary "
                   "on stderr and the plots only).")
@click.option("--plots", "plots_dir", type=OutputDir(), default=None,
              help=f"Folder for {', '.join(PLOTS)}. Default: RUN/{EVAL_DIR}.")
@click.option("--short", type=click.IntRange(min=2), default=None,
              help="Independent 25-frame samples. Default: as many as the long set has windows "
                   "(--long x --long-frames / 25), so both window FDs carry the same sampling bias.")
@click.option("--long", "long_", type=click.IntRange(min=1), default=DEFAULTS.long,
              help="Long samples, each cut into non-overlapping 25-frame windows. Fewer make the late blocks' "
                   "spread and offset noisy (see their data floor in the JSON: with 16, the data themselves "
                   "score offsets of 0.3 std).")
@click.option("--long-frames", type=click.IntRange(min=DEFAULTS.metrics.min_loop_frames()),
              default=DEFAULTS.long_frames,
              help="Frames per long sample: the long FDs and the looping score use all of them, each horizon "
                   "its first N. The default is the paper's 1,500 plus one 25-frame window, so that the window "
                   "starting at 60 s fits; 1500 reproduces figures measured before the horizon report.")
@click.option("--horizon", "horizons", type=click.IntRange(min=1), multiple=True, default=HORIZON.horizons,
              help="Report the long-horizon metrics for the stream's first N frames (repeat for several; the "
                   "paper's t = 250 and its 1,500-frame samples by default). A horizon longer than "
                   "--long-frames is reported as null with the reason.")
@click.option("--burn-in", default=DEFAULTS.burn_in, type=click.IntRange(min=0),
              help="G's steps from its initial state before each sample's first frame: score streams as a bundle "
                   "exported with `svgan-export --burn-in N` shows them (every figure's time 0 is then frame N).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Device G is sampled on.")
@click.option("--seed", default=DEFAULTS.seed, type=click.IntRange(min=0),
              help="Seeds G's inputs (short: SEED, long: SEED + 1).")
@one_line_errors("svgan-eval")
def main(run_dir: Path, data: Path | None, json_out: Path | None, plots_dir: Path | None, short: int | None,
         long_: int, long_frames: int, horizons: tuple[int, ...], burn_in: int, device: str, seed: int) -> None:
    """Score the motion of RUN's EMA generator against its W+ training sequence.

    \b
    The paper's figures (JSON keys "short", "long", "self", "looping", "long_short_window_fd_ratio"):
    frame and 25-frame-window Fréchet distances in the run's PCA space for short (25-frame) and long samples,
    their long/short ratio, a looping score (1: as repetitive as the training video, > 1: loops), and the same
    FDs between the two halves of the training sequence as a floor.

    \b
    Long-horizon figures (key "horizon", one entry per --horizon; plot horizon.png), by time since G's
    initial state, for the top PCA components:
      window FD of the window starting at 0, 1, 5, 10, 30, 60 s (one per long sample; "window_fd_floor":
        the FD of as many random training windows, what a perfect generator scores);
      spread ratio (std / data std) and mean offset (in data stds) per 10-s block, top 8 components,
        and their extremes over the late blocks next to what as many stretches of the data score ("block_floor");
      slow-band power (Welch, 0.02-0.3 Hz) of the late frames (after 10 s) against the data's, in dB,
        top 4; needs late stretches of 50 s and at least 125 s of training data, else null with the reason;
      autocorrelation at lags of 1, 2, 5, 10, 20 s, late frames against the data, top 4;
      the looping score over the horizon.
    Progress goes to stderr.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("svgan-eval", "--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    config = EvalConfig(short=short, long=long_, long_frames=long_frames, seed=seed, burn_in=burn_in,
                        horizon=dataclasses.replace(HORIZON, horizons=tuple(sorted(set(horizons)))))
    evaluation = evaluate_run(run_dir, data, config, device,
                              progress=lambda message: click.echo(f"svgan-eval: {message}", err=True))
    plots = write_plots(evaluation, run_dir, run_dir / EVAL_DIR if plots_dir is None else plots_dir)
    summary = {**evaluation.summary, "plots": [str(p) for p in plots]}
    s, lo, loop = summary["short"], summary["long"], summary["looping"]
    click.echo(f"svgan-eval: window FD short {s['window_fd']:.4g}, long {lo['window_fd']:.4g} "
               f"(ratio {summary['long_short_window_fd_ratio']:.3f}, self {summary['self']['window_fd']:.4g}); "
               f"frame FD short {s['frame_fd']:.4g}, long {lo['frame_fd']:.4g}; looping score {loop['score']:.3f}; "
               f"plots in {plots[0].parent}", err=True)
    for line in horizon_lines(summary):
        click.echo(f"svgan-eval: {line}", err=True)
    write_summary(json_out, summary)


def horizon_lines(summary: dict[str, Any]) -> list[str]:
    """One stderr line per measured horizon: window FD at each start against the floor, the late blocks' spread
    range and largest offset against the data's floor (`block_text`), the slow-band power."""
    lines = []
    for key, h in measured_horizons(summary).items():
        fds = {k: e["fd"] for k, e in h["window_fd"].items() if e["fd"] is not None}
        band = h["slow_band"]["power_db"]
        name, value = block_text(h)
        lines.append(f"horizon {key} frames: window FD at " + ", ".join(f"{k} s {v:.4g}" for k, v in fds.items())
                     + f" (floor {h['window_fd_floor']['fd']:.4g}); {name} {value}; slow band "
                     + ("n/a" if band is None else " ".join(f"{v:+.1f}" for v in band) + " dB"))
    return lines


if __name__ == "__main__":
    main()
