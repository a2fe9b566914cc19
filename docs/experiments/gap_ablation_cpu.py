"""GAP ablation on the synthetic W+ set, CPU-sized (issue 3's closing measurement without a GPU).

Trains the same small model twice on 60 s of synthetic talking-head codes (4 styles x 32 dims, so a 2-core
CPU can afford it), with and without the gradient angle penalty, and evaluates both with svgan-eval's
metrics (long/short window-FD ratio, looping score over 1,500-frame samples). Usage:

    .venv/bin/python docs/experiments/gap_ablation_cpu.py OUT_DIR [ITERATIONS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from svgan.training.evaluate import EvalConfig, evaluate_run
from svgan.training.synthetic import SyntheticConfig, make_sequence, save_npz
from svgan.training.trainer import MODEL_SIZES, TrainConfig, start_run
from svgan.training.wplus_data import load_wplus

SMALL_MODEL = MODEL_SIZES["small"]


def main(out: Path, iterations: int) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "synthetic.npz"
    save_npz(data_path, make_sequence(SyntheticConfig(seconds=60, n_styles=4, style_dim=32)))
    data = load_wplus(data_path, window=25)
    results = {"iterations": iterations, "data": "60 s synthetic, 4 styles x 32", "model": SMALL_MODEL}
    for name, gap in (("gap", True), ("no_gap", False)):
        config = TrainConfig(batch_size=32, lr_g=1e-3, lr_c=1e-3, ema=0.95, gap=gap, **SMALL_MODEL)
        start = time.perf_counter()
        start_run(data, out / name, config, data_path=data_path).run(max_iterations=iterations)
        seconds = time.perf_counter() - start
        evaluation = evaluate_run(out / name, data_path, EvalConfig(long_frames=1500))  # as recorded
        results[name] = {"train_seconds": round(seconds, 1), **evaluation.summary}
    (out / "gap_ablation.json").write_text(json.dumps(results, indent=2, default=float))
    for name in ("gap", "no_gap"):
        r = results[name]
        print(name, "long/short window FD", r["long_short_window_fd_ratio"], "looping", r["looping"]["score"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 600)
