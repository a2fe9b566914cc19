"""The command line the per-run experiments share: `SCRIPT RUN [RUN ...] [--json OUT.json]`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def per_run_main(doc: str, measure: Callable[[Path], Any], metadata: dict[str, Any], key: str = "runs") -> None:
    """Measure every RUN on one thread (the experiments run beside training jobs), print one line per run, and
    write `metadata` plus {key: {run name: figures}} to --json."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {}
    for run in args.runs:
        report[run.name] = measure(run)
        print(run.name, json.dumps(report[run.name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({**metadata, key: report}, indent=2) + "\n")
