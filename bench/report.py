"""Render docs/benchmarks.md from the benchmark JSON files (one per benchmark and device)."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = """# Benchmarks

Rendered by `make bench` from the JSON files in `docs/benchmarks/`; every figure names the device and the
exact command that produced it. GPU rows come from the lent GPU machine when a session had one; a row says
"not measured" where no such run was made. Nothing here is estimated.
"""

# (device, batch): the rows docs/benchmarks.md always shows, "not measured" until a JSON file holds them. Larger
# batches are GPU rows: on the CPU an iteration's time grows with the batch (issue 17's batch study).
# (device, batch, training): svgan-train's defaults, the paper's training (`--paper`) they add to, and the defaults
# with the critic in bfloat16 (`--critic-dtype bfloat16`), and the defaults replayed as a CUDA graph (`--cuda-graph`)
BF16_SUFFIX = "C in bfloat16"
BF16 = f"default, {BF16_SUFFIX}"
GRAPH_SUFFIX = "CUDA graph"
TRAIN_EXPECTED = {("cpu", 64, "default"): "CPU (this 2-core machine)",
                  ("cpu", 64, "paper"): "CPU (this 2-core machine)", ("cpu", 64, BF16): "CPU (this 2-core machine)",
                  ("cuda", 64, "default"): "GPU (device tool)", ("cuda", 64, "paper"): "GPU (device tool)",
                  ("cuda", 64, BF16): "GPU (device tool)",
                  ("cuda", 64, f"default, {GRAPH_SUFFIX}"): "GPU (device tool)",
                  ("cuda", 256, "paper"): "GPU (device tool)", ("cuda", 1024, "paper"): "GPU (device tool)"}


def _training(config: dict) -> str:
    """A train result's recipe as the table names it (results from before session 13 timed the paper's)."""
    recipe = config.get("recipe", "paper")
    if config.get("critic_dtype", "float32") == "bfloat16":
        recipe += f", {BF16_SUFFIX}"
    return recipe + f", {GRAPH_SUFFIX}" if config.get("cuda_graph") else recipe


def _load(folder: Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(pattern))]


def _train_section(folder: Path) -> str:
    rows = {(r["config"]["device"], r["config"]["batch_size"], _training(r["config"])): r
            for r in _load(folder, "train-*.json")}
    lines = ["## Training (`svgan-bench train`)", "",
             "Seconds per iteration (5 critic steps + 1 generator step, 25-frame windows, 18 x 512 W+) and per paper"
             " epoch (every window of a 15,000-frame sequence once through the critic). The 350-epoch column"
             " multiplies the measured epoch time by 350. Training: svgan-train's defaults (`default`: the paper's"
             " method plus the state pool and L_M; `C in bfloat16`: with `--critic-dtype bfloat16`; `CUDA graph`: each"
             " iteration replayed as one CUDA graph, `--cuda-graph`) or the paper's"
             " alone (`paper`, `--paper`); rows measured before"
             " session 13 timed the paper's training, then svgan-train's default, so their commands have no"
             " `--paper`. Issue 17's goal: 350"
             " epochs (or the same quality in fewer epochs at a larger batch) in 10 minutes on one H100.", "",
             "| device | batch | training | s / iteration | s / epoch | 350 epochs (min) | critic step (s) |"
             " GP term alone (s) | generator step (s) | without GAP (s) | cuDNN GRU double backward | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(set(TRAIN_EXPECTED) | set(rows)):
        r = rows.get(key)
        if r is None:
            lines.append(f"| {TRAIN_EXPECTED[key]} | {key[1]} | {key[2]} | not measured | | | | | | | | |")
            continue
        lines.append(f"| {r['device']} | {key[1]} | {key[2]} | {r['seconds_per_iteration']:.3f} | "
                     f"{r['seconds_per_epoch']:.1f} | "
                     f"{r['projected_350_epochs_minutes']:.0f} | {r['critic_step_s']:.3f} | "
                     f"{r['gradient_penalty_s']:.3f} | {r['generator_step_s']:.3f} | "
                     f"{r['generator_step_without_gap_s']:.3f} | {r['cudnn_gru_double_backward'].split('. ')[0]} | "
                     f"`{r['command']}` |")
    checks = [f"* {r['device']}, {key[2]}{_decaying(c)}: over {c['iterations']} iterations from one seed (the "
              f"first {c['eager_iterations']} eager in both), losses differ from the eager iterations' by at most "
              f"{c['loss_max_abs_difference']:.3g} and G's weights by {c['generator_weights_max_abs_difference']:.3g}."
              for key, r in sorted(rows.items())
              for c in (r.get("graph_against_eager"), r.get("graph_against_eager_lr_decay")) if c]
    if checks:
        lines += ["", "CUDA graph against eager iterations:", "", *checks]
    return "\n".join(lines) + "\n"


def _decaying(check: dict) -> str:
    """How a CUDA-graph check's learning rates moved (`bench.train.graph_against_eager`)."""
    share = check.get("learning_rate_share_at_end")
    return "" if share is None else f", `--lr-decay` (rates falling to {share:.2f} of their start)"


def _batch_study_section(folder: Path) -> str:
    """Issue 17's batch study (docs/experiments/batch_study.py): quality per epoch and per minute, batch 64-1024,
    and on the demo world the critic's steps and precision."""
    studies = _load(folder, "batch-study-*.json")
    lines = ["### Batch size, critic steps, precision: quality per epoch and per minute", ""]
    if not studies:
        return "\n".join(lines + ["Not measured yet (`docs/experiments/batch_study.py`).", ""])
    for study in studies:
        lines += [study["description"], "",
                  f"| arm | options | epochs | iterations | minutes ({study.get('threads', 'one thread')}, quiet CPU)"
                  " | short window FD |"
                  " long window FD | long / short | late spread (min - max) | largest late offset | loop score |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm in study["arms"]:
            for k, p in enumerate(arm["curve"]):  # the options once per arm
                options = f"`{arm['options']}`" if k == 0 else "〃"
                lines.append(f"| {arm['arm']} | {options} | {p['epochs']:g} | {p['iterations']} |"
                             f" {p['quiet_minutes']:.1f} | {p['short_window_fd']:.1f} | {p['long_window_fd']:.1f} |"
                             f" {p['long_short_window_fd_ratio']:.2f} | {p['late_spread_min']:.2f} -"
                             f" {p['late_spread_max']:.2f} | {p['late_offset_max_abs']:.2f} |"
                             f" {p['looping_score']:.2f} |")
        conclusion = [study["conclusion"], ""] if study.get("conclusion") else []
        lines += ["", *conclusion, f"Command: `{study['command']}`", "",
                  f"![quality against epochs and minutes]({study['plot']})", ""]
    return "\n".join(lines)


STREAM_GPU_GOALS = ("Goals on one H100 at 1024x1024 (issue 5): end-to-end >= 200 fps into MP4, render batch 1 <= 3 ms"
                    "/frame, >= 1500 frames/s batched.")


def _stream_section(folder: Path) -> str:
    rows = _load(folder, "stream-*.json")
    lines = ["## Streaming (`svgan-bench stream`)", "",
             "Render-only = G stepping + synthesis; encode-only = libx264 into /dev/null; end-to-end = the "
             "`svgan-stream` loop with threaded encoding. First-frame latency is from the loop's start.",
             STREAM_GPU_GOALS, "",
             "| device | backend | bundle | resolution | batch | render fps (ms/frame) | encode fps | end-to-end fps |"
             " first frame (ms) | command |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["config"]["device"], r["config"]["backend"], r["resolution"],
                                         r["config"]["batch"])):
        c = r["config"]
        lines.append(f"| {r['device_name']} | {c['backend']}{' fp16' if c['fp16'] else ''} | {c['label']} | "
                     f"{r['resolution']} | {c['batch']} | {r['render_fps']:.1f} ({r['render_ms_per_frame']:.1f}) | "
                     f"{r['encode_fps']:.0f} | {r['end_to_end_fps']:.1f} | {r['first_frame_latency_ms']:.0f} | "
                     f"`{r['command']}` |")
    if not any(r["config"]["device"] == "cuda" for r in rows):
        lines.append("| NVIDIA H100 (device tool) | torch, ort | config-f | 256 / 512 / 1024 | 1, 16 | not measured |"
                     " | | | |")
    return "\n".join(lines) + "\n"


def _export_section(folder: Path) -> str:
    rows = sorted(_load(folder, "export-parity-*.json"), key=lambda r: r["resolution"])
    lines = ["## Export parity (`svgan-export`, onnxruntime vs PyTorch)", "",
             "Max abs error of every fp32 graph (bound 1e-3; synthesis on the raw, unclamped image of conformance"
             " weights), the 250-step onnxruntime loop of `generator_step` against PyTorch's unrolled G, and the"
             " fp16 variants (synthesis: PSNR vs fp32, bound 40 dB; encoder: max abs error on W+, bound 1e-2).", "",
             "| resolution | generator_init | generator_step | 250-step loop | mapping | synthesis | encoder |"
             " fp16 synthesis PSNR | fp16 encoder | device | command |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e, fp16 = r["fp32_max_abs_error"], r.get("fp16", {})
        psnr = fp16.get("synthesis", {}).get("psnr_db")
        enc16 = fp16.get("encoder", {}).get("max_abs_error")
        lines.append(f"| {r['resolution']} | {e['generator_init']:.1e} | {e['generator_step']:.1e} | "
                     f"{r['gru_loop']['max_abs_error']:.1e} | {e['mapping']:.1e} | {e['synthesis']:.1e} | "
                     f"{e['encoder']:.1e} | {'not measured' if psnr is None else f'{psnr:.1f} dB'} | "
                     f"{'not measured' if enc16 is None else f'{enc16:.1e}'} | {r['device']} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


RENDER_GOALS = ("Goals on one H100 at 1024x1024 (issue 14): render <= 3 ms/frame at batch 1 and >= 1,500 frames/s "
                "batched; end to end into MP4 >= 200 fps; first frame <= 300 ms after the models are loaded; "
                "PSNR >= 40 dB against the CPU fp32 reference.")


def _render_section(folder: Path) -> str:
    rows = sorted(_load(folder, "render-*.json"), key=lambda r: (r["device_name"], r["config"]["resolution"]))
    lines = ["## The torch render path (`svgan-bench render`, `bench/gpu_round.sh`)", "",
             "Conformance-fixture StyleGAN2 weights; ms per frame from W+ on the device to uint8 RGB on the device "
             "(CUDA events, no host copy). Each variant switches one step of the fast path off. PSNR and max abs "
             "error against the CPU fp32 reference (official modulated convolution) on 4 codes. End to end: G's "
             "steps + synthesis + yuv420p conversion in one CUDA graph, pinned copies, libx264 into /dev/null.",
             RENDER_GOALS, ""]
    if not rows:
        lines.append("GPU: not measured (no session with a GPU has run `bench/gpu_round.sh` yet).")
        return "\n".join(lines) + "\n"
    for r in rows:
        batches = [str(b) for b in r["config"]["batches"]]
        lines += [f"### {r['device_name']}, {r['config']['resolution']}x{r['config']['resolution']} "
                  f"(torch {r['torch']})", "",
                  "| variant | " + " | ".join(f"ms/frame @ {b}" for b in batches) +
                  " | PSNR (dB) | max abs error | RGB within 1 level |",
                  "|---|" + "---|" * (len(batches) + 3)]
        for name, v in r["variants"].items():
            c = v["correctness"]
            lines.append(f"| {name} | " + " | ".join(f"{v['ms_per_frame'][b]:.2f}" for b in batches) +
                         f" | {c['psnr_db']:.1f} | {c['max_abs_error']:.1e} | {c['rgb_within_1_level']:.4f} |")
        e = r["end_to_end"]
        lines += ["", "| end to end (fast-fp16) | frames | batch | fps | first frame (ms) | renderer set-up (s) |",
                  "|---|---|---|---|---|---|"]
        for label, key, batch in (("yuv420p on the GPU", "batched", e["batch"]), ("RGB to the host", "batched",
                                  e["batch"]), ("yuv420p, batch 1", "batch_1", 1)):
            fmt = "rgb24" if label.startswith("RGB") else "yuv420p"
            row = e[key][fmt]
            lines.append(f"| {label} ({e['preset']}) | {e['frames'] if key == 'batched' else min(50, e['frames'])} |"
                         f" {batch} | {row['fps']:.1f} | {row['first_frame_ms']:.0f} | {row['renderer_setup_s']:.2f} |")
        lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines) + "\n"


SERVE_GOAL = ("Goal (issue 15): with 8 concurrent streams the aggregate is at least 0.8 of the single-process batched "
              "render throughput on the same machine, and every stream stays real time while the aggregate allows it.")


def _serve_section(folder: Path) -> str:
    lines = ["## Serving many streams (`svgan-bench serve`)", "",
             "`svgan-serve` (its own local Ray, one replica, `--lead-seconds 0`: streams render as fast as they can) "
             "over real HTTP; N streams of the same length opened at once and read to the end. Aggregate = all "
             "frames / the level's wall time; real-time factor = a stream's frames/s over the frame rate (slowest, "
             "median); frame latency = from a stream asking for a chunk of frames to their being encoded (queue wait "
             "+ synthesis + x264); batch = frames per synthesis call; memory = peak resident set of the server and "
             "every process of its Ray. The reference is the same bundle rendered in one process at batch 8 (G + "
             "synthesis; and end to end into MP4), measured just before.", SERVE_GOAL, ""]
    rows = sorted(_load(folder, "serve-*.json"), key=lambda r: r["device_name"])
    if not rows:
        lines.append("Not measured yet.")
    for r in rows:
        ref = r["reference"]
        lines += [f"### {r['device_name']}, {r['resolution']}x{r['resolution']} at {r['fps']:g} fps", "",
                  f"Reference, one process, batch {ref['batch']}: render {ref['render_fps']:.0f} frames/s, end to end "
                  f"{ref['end_to_end_fps']:.0f} frames/s. Server start {r['startup_s']:.0f} s, stop (SIGTERM) "
                  f"{r['stop_s']:.1f} s, idle memory {r['idle_rss_mb']:.0f} MB.", "",
                  "| streams | aggregate frames/s | / render ref | / end-to-end ref | real-time factor (min / median)"
                  " | frame latency p50 / p99 (ms) | queue wait p50 / p99 (ms) | mean batch (frames)"
                  " | peak memory (MB) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v in r["levels"]:
            lat, wait = v["frame_latency_ms"], v["queue_wait_ms"]
            lines.append(f"| {v['streams']} | {v['aggregate_fps']:.0f} | {v['vs_render']:.2f} |"
                         f" {v['vs_end_to_end']:.2f} |"
                         f" {v['realtime_factor_min']:.2f} / {v['realtime_factor_median']:.2f} |"
                         f" {lat['p50']:.0f} / {lat['p99']:.0f} | {wait['p50']:.1f} / {wait['p99']:.1f} |"
                         f" {v['mean_batch_frames']:.1f} | {v['peak_rss_mb']:.0f} |")
        lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, out: Path) -> None:
    sections = [HEADER, _train_section(folder), _batch_study_section(folder), _export_section(folder),
                _stream_section(folder), _render_section(folder), _serve_section(folder)]
    out.write_text("\n".join(sections))
