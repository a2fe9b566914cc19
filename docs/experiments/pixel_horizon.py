"""Does a long stream keep the training video's motion in pixels? (issue 13, docs/long-horizon.md §4)

`svgan-eval`'s horizon figures live in W+ (the run's PCA space). This script asks the same question of what a
viewer sees: it steps each bundle's G for the training actor (offset 0, the bundle's burn-in, as `svgan-stream`
steps it) for `--seconds`, renders the frames, reads every state the demo world's attribute reader R knows (mouth,
blink, smile, head rotation, gaze, ...) and compares each `--block`-second block of the streams with what G was
trained to imitate: R's readings of pSp's reconstruction of the training video (the bundles' own encoder and
synthesis, so what pSp and StyleGAN2 lose, e.g. lip rounding, is left out). Figures: the Fréchet distance of R's
state readings standardised by the reconstruction's, and per state the spread ratio (std / the reconstruction's)
and the mean offset (in its stds); the FD against the video itself is kept as `fd_video`. The floor is the same
figures for the reconstruction's own blocks against all of it. The bundles must share one pSp.

    .venv/bin/python docs/experiments/pixel_horizon.py runs/world/actor.mp4 svgan/demo_world/bundle \
        runs/world/bundle-e [--seconds 180] [--block 30] [--seeds 0 1 2 3] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from svgan.runtime.backends import make_backend
from svgan.runtime.bundle import load_bundle
from svgan.runtime.video import VideoReader
from svgan.training.motion_metrics import frechet_distance
from svgan.world.attribute_reader import AttributeReader, load_reader
from svgan.world.measure import encode, motion_codes, render
from svgan.world.renderer import STATE_FIELDS

READER = Path(__file__).resolve().parents[2] / "tests" / "data" / "world_reader.pt"


def state_readings(reader: AttributeReader, frames: np.ndarray) -> np.ndarray:
    """R's state readings [N, len(STATE_FIELDS)] (the identity readings are left out: motion only)."""
    return reader.read(frames)[0]


def block_figures(blocks: list[np.ndarray], target: np.ndarray, video: np.ndarray) -> dict[str, Any]:
    """Per block (a list over streams of [frames, states] arrays), pooled over the streams: FD against `target`
    (and against the video) in the target's standardised units, spread ratio and mean offset per state."""
    mean, std = target.mean(0), target.std(0) + 1e-8
    pooled = (np.concatenate(blocks) - mean) / std
    spread = pooled.std(0)
    offset = pooled.mean(0)
    return {"fd": round(frechet_distance(pooled, (target - mean) / std), 3),
            "fd_video": round(frechet_distance(pooled, (video - mean) / std), 3),
            "spread": {name: round(float(s), 3) for name, s in zip(STATE_FIELDS, spread)},
            "offset": {name: round(float(o), 3) for name, o in zip(STATE_FIELDS, offset)},
            "spread_min": round(float(spread.min()), 3), "spread_max": round(float(spread.max()), 3),
            "offset_max_abs": round(float(np.abs(offset).max()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="the training video (svgan-world video)")
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--block", type=float, default=30.0, help="seconds per block")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="one stream per seed")
    parser.add_argument("--reader", type=Path, default=READER)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reader = load_reader(args.reader)
    with VideoReader(args.video) as clip:
        fps = clip.fps
        video_frames = np.stack(list(clip))
    video = state_readings(reader, video_frames)
    bundles = [load_bundle(path) for path in args.bundles]
    if len({b.manifest["source"]["psp_sha256"] for b in bundles}) != 1:
        parser.error("the bundles were exported with different pSp checkpoints: no common reconstruction")
    first = make_backend("ort", bundles[0])
    target = state_readings(reader, render(first, encode(first, video_frames)))
    frames, block = round(args.seconds * fps), round(args.block * fps)
    starts = range(0, frames - block + 1, block)
    report: dict[str, Any] = {"video": str(args.video), "video_frames": len(video), "fps": fps,
                              "seconds": args.seconds, "block_seconds": args.block, "seeds": args.seeds,
                              "states": list(STATE_FIELDS),
                              "floor": [block_figures([target[s:s + block]], target, video)
                                        for s in range(0, len(target) - block + 1, block)],
                              "bundles": {}}
    for path, bundle in zip(args.bundles, bundles):
        backend = make_backend("ort", bundle)
        streams = [state_readings(reader, render(backend, motion_codes(backend, bundle, frames, seed)))
                   for seed in args.seeds]
        report["bundles"][str(path)] = {
            "burn_in": bundle.burn_in, "run": bundle.manifest["source"]["run"],
            "blocks": [{"seconds": [s / fps, (s + block) / fps], **block_figures([x[s:s + block] for x in streams],
                                                                              target, video)} for s in starts]}
        print(path, [b["fd"] for b in report["bundles"][str(path)]["blocks"]])
    print("floor", [b["fd"] for b in report["floor"]])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
