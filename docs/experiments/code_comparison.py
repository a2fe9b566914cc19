"""Does session 15's training code train as well as session 14's? (docs/long-horizon.md Next 7)

Session 15 made an iteration cheaper with four changes meant to compute the same training up to float rounding and
the order of random draws. Over seeds 0-4 its runs of svgan-train's default recipe on the demo world looked worse
on the long-horizon figures. This gathers every 2,500-iteration run of that recipe by code (session 14's, commit
0bb8975 or before; session 15's and later) from the ablation JSON files that hold them, and tests each figure for a
difference between the codes: means and standard deviations over seeds, a two-sided Mann-Whitney U test and a
two-sided exact permutation test of the difference of means.

    .venv/bin/python docs/experiments/code_comparison.py > docs/long-horizon/code-comparison-session16.json

Each source is (file, commit or None for the working tree, code). Seed 0 of session 15's code is the `f` arm of
the critic-steps study at its 2,500-iteration stage (the same recipe, command and seed, trained in stages with
bit-exact resume).
"""

from __future__ import annotations

import itertools
import math
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

ARM = "pool-quarter-window-moments-128-ages4-directions"
FIGURES = ("short_window_fd", "long_window_fd", "late_spread_min", "late_spread_max", "late_offset_max_abs",
           "looping_score")
# (ablation JSON, the commit that holds the version with these seeds or None, which code trained them)
ABLATIONS = [
    ("docs/long-horizon/ablation-world-spread-2500-128.json", None, "session 14"),
    ("docs/long-horizon/ablation-world-128-session14-code-seeds34.json", None, "session 14"),
    ("docs/long-horizon/ablation-world-128-session16-old.json", None, "session 14"),
    ("docs/long-horizon/ablation-world-128-session15.json", "2192d2b", "session 15"),
    ("docs/long-horizon/ablation-world-128-session15.json", None, "session 15"),
    ("docs/long-horizon/ablation-world-128-session16-new.json", None, "session 15"),
]
STUDY = "docs/benchmarks/batch-study-world-f-critic-steps.json"


def _read(path: str, commit: str | None) -> dict:
    if commit is None:
        return json.loads(Path(path).read_text())
    return json.loads(subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True,
                                     check=True).stdout)


def gather() -> dict[str, dict[int, dict]]:
    """{code: {seed: figures}} of every 2,500-iteration run of the recipe; a seed found twice must agree."""
    runs: dict[str, dict[int, dict]] = {"session 14": {}, "session 15": {}}
    for path, commit, code in ABLATIONS:
        for run in _read(path, commit)["runs"]:
            if run["arm"] == ARM and run["iterations"] == 2500:
                figures = {f: run[f] for f in FIGURES} | {"source": path + (f"@{commit}" if commit else "")}
                runs[code].setdefault(run["seed"], figures)
    stage = next(s for s in next(a for a in _read(STUDY, None)["arms"] if a["arm"] == "f")["curve"]
                 if s["iterations"] == 2500)
    runs["session 15"].setdefault(0, {f: stage[f] for f in FIGURES} | {"source": STUDY + " (arm f)"})
    return runs


def permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact permutation test of the difference of means (every split of the pooled seeds)."""
    pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    total = pooled.sum()
    extreme = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        first = pooled[list(chosen)].sum()
        extreme += abs(first / len(a) - (total - first) / len(b)) >= observed - 1e-12
    return extreme / math.comb(len(pooled), len(a))


def compare(groups: dict[str, np.ndarray]) -> dict:
    """Two groups' values of one figure: mean, standard deviation and count of each, and the two tests' p."""
    (first, a), (second, b) = groups.items()
    return {
        first: {"mean": round(float(a.mean()), 3), "std": round(float(a.std(ddof=1)), 3), "n": len(a)},
        second: {"mean": round(float(b.mean()), 3), "std": round(float(b.std(ddof=1)), 3), "n": len(b)},
        "mann_whitney_p": round(float(mannwhitneyu(a, b, alternative="two-sided").pvalue), 4),
        "permutation_p": round(permutation_p(a, b), 4),
    }


def main() -> None:
    runs = gather()
    report = {"arm": ARM, "iterations": 2500, "runs": {code: {str(k): v for k, v in sorted(seeds.items())}
                                                        for code, seeds in runs.items()}, "figures": {}}
    for figure in FIGURES:
        report["figures"][figure] = compare({c: np.array([r[figure] for _, r in sorted(runs[c].items())], dtype=float)
                                             for c in ("session 14", "session 15")})
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
