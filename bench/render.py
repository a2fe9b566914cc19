"""The torch render path (issue 14): correctness, ms per frame per variant and batch, end to end into MP4.

On the conformance fixture's StyleGAN2 weights (`svgan.models.fixture_weights`, no files needed) at one
resolution:

* correctness: every variant's image against the CPU fp32 reference (the official modulated convolution) on
  the same W+ codes: max abs error and PSNR (image range 2), and how many uint8 RGB levels apart;
* render ms/frame: W+ on the device -> uint8 RGB on the device, per variant and batch size (CUDA graphs where the
  variant uses them, timed with CUDA events after a warm-up, no host copy);
* end to end: `svgan-stream`'s loop — G's steps + synthesis + colour conversion in one graph, pinned copies,
  libx264 into /dev/null on a `ThreadedSink` — frames per second at one batch size, and the first frame's
  latency at batch 1 (from the loop's start, the renderer built).

The variants switch one fast-path step off at a time, so each step's gain is measured, not assumed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from svgan import __version__
from svgan.models import FastSynthesisConfig, Generator, TemporalGenerator, TemporalGeneratorConfig
from svgan.models.fixture_weights import fixture_generator
from svgan.runtime.stream import StreamStats, make_renderer, run_stream, sink_writer
from svgan.runtime.torch_backend import TorchBackend, capture
from svgan.runtime.torch_colour import quantise_rgb
from svgan.runtime.video import ThreadedSink

# name -> (fast path?, fp16?, fast-path settings relative to the defaults, CUDA graphs?)
VARIANTS: dict[str, tuple[bool, bool, dict, bool]] = {
    "eager-fp32": (False, False, {}, False),            # the decoder's batch-friendly modules, op by op
    "eager-fp16": (False, True, {}, False),
    "fast-fp32": (True, False, {}, True),
    "fast-fp16": (True, True, {}, True),                # the default fast path with --fp16
    "fast-fp16-no-graph": (True, True, {}, False),
    "fast-fp16-no-fold": (True, True, {"fold_fir_from": None}, True),
    "fast-fp16-contiguous": (True, True, {"channels_last": False}, True),
    "fast-fp16-compiled": (True, True, {"compile_epilogue": True}, True),
}


@dataclass
class RenderBenchConfig:
    resolution: int = 1024
    device: str = "cuda"
    batches: tuple[int, ...] = (1, 4, 16, 32)
    variants: tuple[str, ...] = tuple(VARIANTS)
    repeats: int = 10
    check_codes: int = 4          # W+ codes for the correctness check
    stream_frames: int = 500
    stream_batch: int = 16
    preset: str = "ultrafast"
    seed: int = 0


def fixture_codes(decoder: Generator, count: int, seed: int) -> torch.Tensor:
    """W+ codes as a stream sees them: mapped z, each style row slightly different (CPU, float32)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(count, decoder.n_styles, decoder.config.style_dim, generator=g)
    with torch.no_grad():
        return decoder.mapping(z.flatten(0, 1)).view(count, decoder.n_styles, -1)


def backend_for(variant: str, decoder: Generator, generator: TemporalGenerator, device: str) -> TorchBackend:
    fast, fp16, settings, _ = VARIANTS[variant]
    dtype = "float16" if fp16 and device == "cuda" else "float32"
    config = replace(FastSynthesisConfig(dtype=dtype, channels_last=device == "cuda"), **settings)
    return TorchBackend(generator, decoder, device, fp16=fp16, fast=fast, synthesis_config=config)


def render_function(backend: TorchBackend, batch: int, graphs: bool) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
    """`render()` -> uint8 RGB of `batch` frames of the static input it returns, as a graph replay if asked."""
    static_in = torch.zeros(batch, backend.decoder.n_styles, backend.decoder.config.style_dim, device=backend.device)

    def body() -> torch.Tensor:
        with torch.no_grad():
            return quantise_rgb(backend.render(static_in))
    if graphs and backend.cuda:
        graph, out = capture(body)

        def replay() -> torch.Tensor:
            graph.replay()
            return out
        return replay, static_in
    return body, static_in


def time_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Mean milliseconds per call after two warm-up calls (CUDA events on a GPU)."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - t0) / repeats


def psnr_db(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(((image.float().cpu() - reference) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)  # peak-to-peak 2 ([-1, 1])


def check_variant(backend: TorchBackend, codes: torch.Tensor, reference: torch.Tensor, graphs: bool) -> dict:
    run, static_in = render_function(backend, len(codes), graphs)
    static_in.copy_(codes.to(backend.device))
    rgb = run().cpu().numpy().astype(int)
    with torch.no_grad():
        image = backend.render(codes.to(backend.device)).float().cpu()
    reference_rgb = quantise_rgb(reference).numpy().astype(int)
    levels = np.abs(rgb - reference_rgb)
    return {"max_abs_error": float((image - reference).abs().max()), "psnr_db": round(psnr_db(image, reference), 2),
            "rgb_max_levels": int(levels.max()), "rgb_within_1_level": round(float((levels <= 1).mean()), 6)}


def end_to_end(backend: TorchBackend, generator: TemporalGenerator, frames: int, batch: int, preset: str) -> dict:
    """fps of the streaming loop into /dev/null, and its first frame's latency."""
    offset = np.zeros((backend.decoder.n_styles, backend.decoder.config.style_dim), np.float32)
    r = backend.decoder.resolution
    result = {}
    for name, yuv in (("yuv420p", True), ("rgb24", False)):
        build = time.perf_counter()
        renderer = make_renderer(backend, generator.config.latent_dim, offset, 0, batch, yuv420p=yuv)
        setup = time.perf_counter() - build
        stats = StreamStats()
        with open(os.devnull, "wb") as null:
            sink = ThreadedSink(null, fps=25, width=r, height=r, preset=preset)
            run_stream(renderer, sink_writer(sink), frames, batch, stats)
            sink.close()
        wall = time.perf_counter() - build - setup
        result[name] = {"fps": round(frames / wall, 2), "renderer_setup_s": round(setup, 3),
                        "first_frame_ms": round(1000 * stats.first_frame_seconds, 2)}
    return result


def run_render_bench(config: RenderBenchConfig) -> dict:
    device = torch.device(config.device)
    reference_decoder = fixture_generator(config.resolution)
    codes = fixture_codes(reference_decoder, config.check_codes, config.seed)
    with torch.no_grad():
        reference = reference_decoder.use_modconv("reference").synthesize(codes)
    decoder = fixture_generator(config.resolution).use_modconv("export")
    # G's weights do not change its cost: a fresh paper-sized G on the decoder's W+ shape.
    generator = TemporalGenerator(TemporalGeneratorConfig(n_styles=decoder.n_styles,
                                                          style_dim=decoder.config.style_dim))
    results: dict[str, dict] = {}
    for variant in config.variants:
        graphs = VARIANTS[variant][3]
        start = time.perf_counter()
        backend = backend_for(variant, decoder, generator, config.device)
        row: dict = {"correctness": check_variant(backend, codes, reference, graphs), "ms_per_frame": {}}
        for batch in config.batches:
            run, static_in = render_function(backend, batch, graphs)
            static_in.copy_(codes[torch.arange(batch) % len(codes)].to(device))
            row["ms_per_frame"][str(batch)] = round(time_ms(run, config.repeats, device) / batch, 3)
        row["fps_at_largest_batch"] = round(1000 / row["ms_per_frame"][str(config.batches[-1])], 1)
        row["seconds"] = round(time.perf_counter() - start, 1)
        results[variant] = row
        del backend
        if device.type == "cuda":
            torch.cuda.empty_cache()
    fast = backend_for("fast-fp16", decoder, generator, config.device)
    stream = {"batch": config.stream_batch, "frames": config.stream_frames, "preset": config.preset,
              "batched": end_to_end(fast, generator, config.stream_frames, config.stream_batch, config.preset),
              "batch_1": end_to_end(fast, generator, min(50, config.stream_frames), 1, config.preset)}
    return {"benchmark": "render", "svgan": __version__, "torch": torch.__version__,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "cpu_cores": os.cpu_count(), "config": asdict(config), "variants": results, "end_to_end": stream}
