"""Batch-size study (issue 17, item 2): what batch 64, 256 and 1024 reach per epoch and per wall-clock minute.

Trains the small model on the long-horizon ablation's synthetic sequence (ten minutes of 4 x 32 W+ codes with slow
drift and mood switches, `long_horizon_ablation.DATA`) once per arm, in stages: after each of `--epochs` it scores
G_ema with `svgan-eval` (short and long window FD, spread, offset, loop score) and records the training seconds so
far, so every arm gives a curve of quality against epochs and against minutes.

Scaling from batch 64 (the arm every other is compared with), justified in docs/benchmarks.md:
* Adam's learning rates grow with the square root of the batch (the square-root rule for adaptive optimisers:
  the update's noise falls with sqrt(B), so a step sqrt(B) longer keeps it);
* the EMA of G's weights keeps its half-life in windows seen, not in iterations (StyleGAN2-ADA's `ema_kimg`):
  beta_B = beta_64 ** (B / 64), else at batch 1024 the EMA would average over more iterations than a short run has;
* the critic keeps its 5 steps per generator step (WGAN-GP's ratio; each step sees B real windows).

    .venv/bin/python docs/experiments/batch_study.py OUT [--arms b64 b256 b1024] [--epochs 3 6 12 18 24] [--jobs 1] \
        [--data CODES.npz] [--threads 1] [--name NAME]

`--data` trains on a real W+ sequence (the demo world's actor, for issue 17's CPU goal: bundle D's quality in at
most 10 minutes) instead of the synthetic one.

OUT gets one run folder per arm with eval-e<EPOCH>.json at every stage, study.json and study.png (the curves).
An interrupted study resumes where it stopped. Each job runs on one thread. The training runs' own wall-clock
depends on what else the machine ran, so the minutes axis comes from a separate timing pass (`quiet_seconds_per_
iteration`: 5 iterations per arm after one warm-up, on `--threads` threads (one by default), run when nothing
else does) times the iterations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
# the sibling experiment's helpers
from long_horizon_ablation import DATA, WINDOW, batches_per_epoch, run, summarise, tool  # noqa: E402

BASE_BATCH, BASE_LR, BASE_EMA = 64, 1e-3, 0.995


@dataclass(frozen=True)
class Arm:
    """One training recipe of the small model. From batch 64: learning rates x sqrt(batch / 64), EMA beta ** (batch
    / 64), 5 critic steps, unless given."""

    batch: int
    lr: float | None = None
    ema: float | None = None
    critic_steps: int = 5
    lr_decay: float = 0.0
    lr_c: float | None = None   # the critic's learning rate, if not the generator's (two time-scale updates)
    paper: bool = True          # the paper's training (--paper), or svgan-train's defaults (state pool and L_M)
    critic_dtype: str = "float32"

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else BASE_LR * math.sqrt(self.batch / BASE_BATCH)

    @property
    def ema_beta(self) -> float:
        return self.ema if self.ema is not None else BASE_EMA ** (self.batch / BASE_BATCH)

    @property
    def critic_learning_rate(self) -> float:
        return self.lr_c if self.lr_c is not None else self.learning_rate

    def options(self) -> list[str]:
        # --paper: the study's first arms measured the paper's training (svgan-train's defaults before session 13)
        return (["--paper"] if self.paper else []) + [
            "--model", "small", "--batch-size", str(self.batch), "--lr-g", f"{self.learning_rate:g}",
            "--lr-c", f"{self.critic_learning_rate:g}", "--ema", f"{self.ema_beta:.6f}", "--critic-steps",
            str(self.critic_steps), "--checkpoint-every", "100000"] + (
            ["--lr-decay", f"{self.lr_decay:g}"] if self.lr_decay else []) + (
            ["--critic-dtype", self.critic_dtype] if self.critic_dtype != "float32" else [])

    def config(self) -> "TrainConfig":
        from svgan.training.trainer import LONG_HORIZON, MODEL_SIZES, TrainConfig

        return TrainConfig(batch_size=self.batch, lr_g=self.learning_rate, lr_c=self.critic_learning_rate,
                           ema=self.ema_beta, critic_steps=self.critic_steps, lr_decay=self.lr_decay,
                           critic_dtype=self.critic_dtype,
                           **MODEL_SIZES["small"], **({} if self.paper else LONG_HORIZON))


ARMS: dict[str, Arm] = {
    "b64": Arm(64),
    "b256": Arm(256),
    "b1024": Arm(1024),
    # the control: batch 1024 at batch 64's learning rate (is the square-root rule what helps or hurts?)
    "b1024-lr1": Arm(1024, lr=1e-3),
    # the demo world (--data its actor's codes): bundle D's recipe, and it with 2 critic steps (the critic steps
    # are 5/6 of an iteration's time on the CPU, docs/benchmarks.md)
    "d": Arm(32, lr=1e-3, ema=0.995),
    "d-c2": Arm(32, lr=1e-3, ema=0.995, critic_steps=2),
    # bundle D's recipe at batch 64 (learning rate x sqrt(2), EMA half-life kept in windows): an epoch costs
    # 11.0 s of two threads against batch 32's 13.9 s; and batch 32 at twice the learning rate
    "d-b64": Arm(64, lr=1e-3 * math.sqrt(2), ema=0.995 ** 2),
    "d-lr2": Arm(32, lr=2e-3, ema=0.995),
    # bundle D's recipe with both learning rates falling linearly to zero over the second half of the run (its
    # largest --epochs stage): a budget spent settling instead of stopping mid-stride
    "d-decay": Arm(32, lr=1e-3, ema=0.995, lr_decay=0.5),
    # bundle F's recipe (svgan-train's defaults, bundle D's batch and rates; docs/long-horizon.md §5b), and it with
    # fewer critic steps: after issue 17's batched fake windows, the critic steps are 3/7 of an iteration on two
    # threads, G's step (GAP's double backward, L_M's 128 pool windows) the rest. With one critic step, the critic
    # at three times G's rate (two time-scale updates, Heusel et al. 2017) against at G's.
    "f": Arm(32, lr=1e-3, ema=0.995, paper=False),
    "f-c2": Arm(32, lr=1e-3, ema=0.995, critic_steps=2, paper=False),
    "f-c1": Arm(32, lr=1e-3, ema=0.995, critic_steps=1, paper=False),
    "f-c1-ttur": Arm(32, lr=1e-3, ema=0.995, critic_steps=1, lr_c=3e-3, paper=False),
    # bundle F's recipe with C in bfloat16 (AMX on this CPU), and with 3 critic steps
    "f-bf16": Arm(32, lr=1e-3, ema=0.995, paper=False, critic_dtype="bfloat16"),
    "f-c3": Arm(32, lr=1e-3, ema=0.995, critic_steps=3, paper=False),
}


# What docs/benchmarks.md says above the study's table (bench/report.py renders study.json copied to
# docs/benchmarks/batch-study-<--name>.json, and study.png to batch-study-<--name>.png).
DESCRIPTION = ("The small model on {data}, seed {seed}, scored by `svgan-eval` after each stage. Unless the options "
               "say otherwise, learning rates grow with the square root of the batch from batch 64's 1e-3, the EMA "
               "keeps its half-life in windows (0.995 ** (batch / 64)), 5 critic steps per generator step. Minutes: "
               "iterations x the median seconds of an iteration measured on {threads} of this 2-core CPU with "
               "nothing else running.")
SYNTHETIC = ("the long-horizon ablation's synthetic sequence (10 min of 4 x 32 W+ codes with slow drift and mood "
             "switches)")


def iterations_for(epochs: float, frames: int, arm: Arm) -> int:
    """The iteration at which `epochs` epochs are done (the trainer's own count: every window once through C)."""
    return math.ceil(round(epochs * batches_per_epoch(frames, arm.batch) / arm.critic_steps, 3))


def stages_at(iterations: list[int], frames: int, arm: Arm) -> list[float]:
    """The epochs at which `arm` has run each of `iterations` (a study that compares arms at equal G updates)."""
    return [round(n * arm.critic_steps / batches_per_epoch(frames, arm.batch), 6) for n in iterations]


def study_arm(out: Path, data: Path, frames: int, arm: str, stages: list[float], seed: int) -> dict[str, Any]:
    """Train `arm` stage by stage (`stages` in epochs), scoring after each; returns its curve."""
    import torch

    run_dir, log = out / arm, out / f"{arm}.log"
    timing = out / f"{arm}-seconds.json"
    seconds: dict[str, float] = json.loads(timing.read_text()) if timing.is_file() else {}
    curve = []
    for epochs in stages:
        target = iterations_for(epochs, frames, ARMS[arm])
        result = run_dir / f"eval-e{epochs:g}.json"
        if not result.is_file():
            checkpoint = run_dir / "checkpoint.pt"
            done = int(torch.load(checkpoint, weights_only=True)["iteration"]) if checkpoint.is_file() else 0
            if done < target:  # (a stage whose scoring was interrupted is trained already)
                start = time.perf_counter()
                run(tool("svgan-train") + [str(data), "--out", str(run_dir), "--seed", str(seed),
                                           "--epochs", str(math.ceil(max(stages))), "--max-iterations", str(target - done),
                                           *ARMS[arm].options()] + (["--resume"] if done else []), log)
                seconds[f"{epochs:g}"] = seconds.get(f"{epochs:g}", 0.0) + time.perf_counter() - start
                timing.write_text(json.dumps(seconds))
            run(tool("svgan-eval") + [str(run_dir), "--json", str(run_dir / "eval-full.json"), "--plots",
                                      str(run_dir / f"eval-e{epochs:g}")], log)
            figures = summarise(json.loads((run_dir / "eval-full.json").read_text()))
            figures.update(load_average=os.getloadavg()[0])
            result.write_text(json.dumps(figures, indent=2) + "\n")
        figures = json.loads(result.read_text())
        train_seconds = sum(v for k, v in seconds.items() if float(k) <= epochs)
        curve.append({"epochs": epochs, "iterations": target, "train_seconds": round(train_seconds, 1),
                      "seconds_per_iteration": round(train_seconds / target, 3), **figures})
    return {"arm": arm, "options": " ".join(ARMS[arm].options()), "curve": curve}


def quiet_seconds_per_iteration(data: Path, arm: str, threads: int = 1, repeats: int = 5) -> float:
    """Median seconds of one training iteration of `arm` on `threads` threads (after one warm-up iteration)."""
    import tempfile

    import torch

    from svgan.training.trainer import start_run
    from svgan.training.wplus_data import load_wplus

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = start_run(load_wplus(data, window=WINDOW), Path(run_dir) / "run", ARMS[arm].config())
        trainer.train_iteration()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            trainer.train_iteration()
            times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def plot(report: dict[str, Any], path: Path) -> None:
    """Short window FD, long/short ratio and loop score of every arm against epochs and against quiet minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("short_window_fd", "short window FD"), ("long_short_window_fd_ratio", "long / short window FD"),
            ("looping_score", "loop score")]
    fig, axes = plt.subplots(2, len(keys), figsize=(4.2 * len(keys), 6.5))
    for arm in report["arms"]:
        epochs = [p["epochs"] for p in arm["curve"]]
        minutes = [p["quiet_minutes"] for p in arm["curve"]]
        for column, (key, label) in enumerate(keys):
            values = [p[key] for p in arm["curve"]]
            axes[0, column].plot(epochs, values, "o-", label=arm["arm"])
            axes[1, column].plot(minutes, values, "o-", label=arm["arm"])
            axes[0, column].set_title(label)
            axes[0, column].set_xlabel("epochs")
            axes[1, column].set_xlabel(f"minutes on {report['threads']}")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["b64", "b256", "b1024"])
    parser.add_argument("--epochs", type=float, nargs="+", default=[3, 6, 12, 18, 24])
    parser.add_argument("--iterations", type=int, nargs="+",
                        help="stages in iterations (G updates) instead of epochs, for arms with other critic steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the timing pass (2: what one run gets on this 2-core CPU by itself)")
    parser.add_argument("--data", type=Path, help="a W+ sequence to train on instead of the synthetic one")
    parser.add_argument("--name", default="synthetic-cpu",
                        help="docs/benchmarks/batch-study-NAME.json/.png is where the study is meant to be copied")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data:
        import numpy as np

        data = args.data.resolve()
        frames = len(np.load(data)["wplus"])
    else:
        from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz

        data, sequence = args.out / "data.npz", make_sequence(SyntheticConfig(**DATA))
        if not data.is_file():
            save_npz(data, sequence)
        frames = len(sequence["wplus"])
    stages = {arm: stages_at(sorted(args.iterations), frames, ARMS[arm]) if args.iterations else sorted(args.epochs)
              for arm in args.arms}
    with ThreadPoolExecutor(args.jobs) as pool:
        arms = list(pool.map(lambda arm: study_arm(args.out, data, frames, arm, stages[arm], args.seed), args.arms))
    timing = args.out / ("quiet-seconds-per-iteration.json" if args.threads == 1 else
                         f"quiet-seconds-per-iteration-{args.threads}-threads.json")
    quiet = json.loads(timing.read_text()) if timing.is_file() else {}
    for arm in args.arms:  # after the training runs, so that this pass has the machine to itself
        quiet.setdefault(arm, round(quiet_seconds_per_iteration(data, arm, args.threads), 4))
    timing.write_text(json.dumps(quiet, indent=2) + "\n")
    for arm in arms:
        arm["quiet_seconds_per_iteration"] = quiet[arm["arm"]]
        for point in arm["curve"]:
            point["quiet_minutes"] = round(point["iterations"] * quiet[arm["arm"]] / 60, 2)
    described = f"`{args.data}` ({frames} frames)" if args.data else SYNTHETIC
    threads = "one thread" if args.threads == 1 else f"{args.threads} threads"
    report = {"description": DESCRIPTION.format(data=described, seed=args.seed, threads=threads),
              "data": str(args.data or DATA), "seed": args.seed, "threads": threads,
              "stages_epochs": stages, "stages_iterations": args.iterations, "arms": arms, "plot": f"benchmarks/batch-study-{args.name}.png",
              "command": "python docs/experiments/batch_study.py " + " ".join(sys.argv[1:])}
    plot(report, args.out / "study.png")
    (args.out / "study.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
