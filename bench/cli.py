"""`svgan-bench`: benchmarks whose figures go into docs/benchmarks.md (never into unit tests)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from svgan.cli_types import FiniteRange, IntList, OutputFile
from svgan.errors import UserError, one_line_errors
from svgan.runtime.x264 import X264_PRESETS
from svgan.training.trainer import CRITIC_DTYPES, check_cuda_graph

from .report import write_report
from .train import TrainBenchConfig, run_train_bench

DEFAULTS = TrainBenchConfig()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Measure svgan's speed; results are JSON files that `docs/benchmarks.md` is rendered from."""


@main.command(context_settings={"show_default": True})
@click.option("--frames", type=click.IntRange(min=1), default=DEFAULTS.frames,
              help="Length of the synthetic W+ training set (paper: ~10 min).")
@click.option("--n-styles", type=click.IntRange(min=1), default=DEFAULTS.n_styles,
              help="Styles per code (18 = 1024x1024).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size,
              help="Windows per step (svgan-train's default).")
@click.option("--iterations", type=click.IntRange(min=1), default=DEFAULTS.iterations,
              help="Timed repetitions of each measurement.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Training device.")
@click.option("--paper", is_flag=True,
              help="Time the paper's training (svgan-train --paper) instead of svgan-train's defaults, which add "
                   "the state pool and L_M.")
@click.option("--critic-dtype", type=click.Choice(CRITIC_DTYPES), default=DEFAULTS.critic_dtype,
              help="What the critic computes in (svgan-train --critic-dtype).")
@click.option("--cuda-graph", is_flag=True,
              help="Time iterations replayed as one CUDA graph (svgan-train --cuda-graph; --device cuda), and "
                   "compare their losses with eager iterations from the same seed.")
@click.option("--json", "json_out", type=OutputFile(), default=None,
              help="Write the result here (e.g. docs/benchmarks/train-cpu.json).")
@click.option("--report", type=OutputFile(), default=None,
              help="Re-render this markdown report from the JSON files beside --json.")
@one_line_errors("svgan-bench")
def train(frames: int, n_styles: int, batch_size: int, iterations: int, device: str, paper: bool,
          critic_dtype: str, cuda_graph: bool, json_out: Path | None, report: Path | None) -> None:
    """Seconds per training iteration and per paper epoch, and what GP and GAP cost."""
    config = TrainBenchConfig(frames, n_styles, batch_size, iterations, device, paper, critic_dtype, cuda_graph)
    if cuda_graph:
        check_cuda_graph(device)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available")
    _record(run_train_bench(config), json_out, report)


@main.command(context_settings={"show_default": True})
@click.option("--bundle", required=True, type=click.Path(file_okay=False), help="Bundle to stream from.")
@click.option("--backend", type=click.Choice(["ort", "trt", "torch"]), default="ort", help="Inference backend.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Rendering device.")
@click.option("--batch", default=1, type=click.IntRange(min=1), help="Frames per synthesis call.")
@click.option("--frames", default=50, type=click.IntRange(min=1), help="Frames per measurement.")
@click.option("--preset", default="veryfast", type=click.Choice(X264_PRESETS),
              help="x264 preset of the encode and end-to-end runs.")
@click.option("--fp16", is_flag=True, help="fp16 graphs (ort) / half precision (torch).")
@click.option("--label", default="", help="What the bundle is, for the report (e.g. 'config-f').")
@click.option("--json", "json_out", type=OutputFile(), default=None,
              help="Write the result here (e.g. docs/benchmarks/stream-ort-cpu-256.json).")
@click.option("--report", type=OutputFile(), default=None,
              help="Re-render this markdown report from the JSON files beside --json.")
@one_line_errors("svgan-bench")
def stream(bundle: str, backend: str, device: str, batch: int, frames: int, preset: str, fp16: bool, label: str,
           json_out: Path | None, report: Path | None) -> None:
    """Render-only, encode-only and end-to-end fps and first-frame latency of one bundle."""
    # Imported here: `svgan-bench train` runs on training machines that have no PyAV.
    from .stream import StreamBenchConfig, run_stream_bench

    _record(run_stream_bench(StreamBenchConfig(bundle, backend, device, batch, frames, preset, fp16, label)),
            json_out, report)


@main.command(context_settings={"show_default": True})
@click.option("--resolution", type=click.Choice(["256", "512", "1024"]), default="1024",
              help="StyleGAN2 resolution (the conformance fixture's weights at this size).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cuda", help="Rendering device.")
@click.option("--batches", default="1,4,16,32", type=IntList(min=1),
              help="Batch sizes timed for every variant, comma-separated.")
@click.option("--variants", default="all",
              help="Comma-separated subset of: eager-fp32, eager-fp16, fast-fp32, fast-fp16, fast-fp16-no-graph, "
                   "fast-fp16-no-fold, fast-fp16-contiguous, fast-fp16-compiled; or 'all'.")
@click.option("--repeats", default=10, type=click.IntRange(min=1), help="Timed calls per variant and batch.")
@click.option("--stream-frames", default=500, type=click.IntRange(min=1), help="Frames of the end-to-end run into MP4.")
@click.option("--stream-batch", default=16, type=click.IntRange(min=1), help="Batch of the end-to-end run.")
@click.option("--preset", default="ultrafast", type=click.Choice(X264_PRESETS),
              help="x264 preset of the end-to-end run.")
@click.option("--json", "json_out", type=OutputFile(), default=None,
              help="Write the result here (e.g. docs/benchmarks/render-cuda-1024.json).")
@click.option("--report", type=OutputFile(), default=None,
              help="Re-render this markdown report from the JSON files beside --json.")
@one_line_errors("svgan-bench")
def render(resolution: str, device: str, batches: tuple[int, ...], variants: str, repeats: int, stream_frames: int,
           stream_batch: int, preset: str, json_out: Path | None, report: Path | None) -> None:
    """The torch render path: correctness against the CPU fp32 reference, ms/frame per variant and batch (each
    variant switches one fast-path step off), and end-to-end fps into MP4 with first-frame latency."""
    import torch

    from .render import VARIANTS, RenderBenchConfig, run_render_bench

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    chosen = tuple(VARIANTS) if variants == "all" else tuple(v.strip() for v in variants.split(","))
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    _record(run_render_bench(RenderBenchConfig(int(resolution), device, batches, chosen, repeats,
                                               stream_frames=stream_frames, stream_batch=stream_batch,
                                               preset=preset)), json_out, report)


@main.command(context_settings={"show_default": True})
@click.option("--bundle", type=click.Path(file_okay=False), default=None,
              help="Bundle to serve. Default: the demo world's.")
@click.option("--streams", default="1,2,4,8,16", type=IntList(min=1),
              help="Concurrent stream counts to measure, comma-separated.")
@click.option("--frames", default=100, type=click.IntRange(min=1), help="Frames per stream.")
@click.option("--chunk-frames", default=4, type=click.IntRange(min=1), help="svgan-serve --chunk-frames.")
@click.option("--batch-wait-ms", default=5.0, type=FiniteRange(min=0), help="svgan-serve --batch-wait-ms.")
@click.option("--json", "json_out", type=OutputFile(), default=None,
              help="Write the result here (e.g. docs/benchmarks/serve-cpu-demo.json).")
@click.option("--report", type=OutputFile(), default=None,
              help="Re-render this markdown report from the JSON files beside --json.")
@one_line_errors("svgan-bench")
def serve(bundle: str | None, streams: tuple[int, ...], frames: int, chunk_frames: int, batch_wait_ms: float,
          json_out: Path | None, report: Path | None) -> None:
    """svgan-serve over real HTTP: aggregate frames/s, per-stream real-time factor, frame latency, batch sizes and
    memory for each number of concurrent streams, against the same bundle rendered in one process."""
    from .serve import ServeBenchConfig, run_serve_bench

    _record(run_serve_bench(ServeBenchConfig(bundle, streams, frames, chunk_frames, batch_wait_ms)), json_out, report)


def _record(result: dict, json_out: Path | None, report: Path | None) -> None:
    result["command"] = "svgan-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = json.dumps(result, indent=2)
    click.echo(text)
    if json_out is not None:
        json_out.write_text(text + "\n")
        if report is not None:
            write_report(json_out.parent, report)


if __name__ == "__main__":
    main()
