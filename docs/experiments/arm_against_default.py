"""Does an arm train differently from svgan-train's default recipe on the demo world? (docs/long-horizon.md Next 2)

Session 16 found the default recipe's 18 runs of 2,500 iterations (seeds 0-8 under session 14's code and under
session 15's, one population, §5c) spread widely: a new arm needs several seeds to be told apart from it. This
compares ARM's 2,500-iteration runs in the given ablation JSON files (`long_horizon_ablation.py`) with those 18 runs,
figure by figure: means and standard deviations, a two-sided Mann-Whitney U test and a two-sided exact permutation
test of the difference of means (`code_comparison.compare`).

    .venv/bin/python docs/experiments/arm_against_default.py ARM ABLATION.json [...] > COMPARISON.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
# the sibling comparison's sources of the default's runs and its tests
from code_comparison import ARM as DEFAULT, FIGURES, compare, gather  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arm")
    parser.add_argument("ablations", type=Path, nargs="+")
    args = parser.parse_args()
    default = [run for seeds in gather().values() for _, run in sorted(seeds.items())]
    arm = {run["seed"]: {f: run[f] for f in FIGURES} | {"source": str(path)}
           for path in args.ablations for run in json.loads(path.read_text())["runs"]
           if run["arm"] == args.arm and run["iterations"] == 2500}
    if not arm:
        sys.exit(f"no 2,500-iteration run of {args.arm} in {', '.join(map(str, args.ablations))}")
    report = {"arm": args.arm, "default": DEFAULT, "iterations": 2500,
              "runs": {str(seed): run for seed, run in sorted(arm.items())}, "figures": {}}
    for figure in FIGURES:
        report["figures"][figure] = compare({
            "default": np.array([run[figure] for run in default], dtype=float),
            args.arm: np.array([run[figure] for _, run in sorted(arm.items())], dtype=float)})
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
