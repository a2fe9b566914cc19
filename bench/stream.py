"""Streaming speed (DESIGN §10, issue 5): render-only, encode-only and end-to-end fps, first-frame latency.

* render-only: G stepping + synthesis of `batch` frames per call, frames discarded;
* encode-only: the same frames (pre-rendered) through the H.264 sink into /dev/null;
* end-to-end: `svgan-stream`'s loop (G, offset, synthesis, threaded encoding) into /dev/null, and the
  latency from the loop's start to the first frame handed to the encoder.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

from svgan import __version__
from svgan.runtime.backends import make_backend
from svgan.runtime.bundle import load_bundle
from svgan.runtime.stream import FrameBatch, StreamStats, make_renderer, run_stream, sink_writer
from svgan.runtime.video import ThreadedSink, VideoSink


@dataclass
class StreamBenchConfig:
    bundle: str
    backend: str = "ort"
    device: str = "cpu"
    batch: int = 1
    frames: int = 50
    preset: str = "veryfast"
    fp16: bool = False
    label: str = ""       # what the bundle is, e.g. "config-f" or "demo (config-f / 4)"


def run_stream_bench(config: StreamBenchConfig) -> dict:
    bundle = load_bundle(config.bundle)
    backend = make_backend(config.backend, bundle, config.device, fp16=config.fp16)
    offset = np.zeros((bundle.n_styles, bundle.style_dim), np.float32)
    r = bundle.resolution

    def renderer(seed: int):
        return make_renderer(backend, bundle.latent_dim, offset, seed, config.batch, yuv420p=True,
                             burn_in=bundle.burn_in)

    renderer(0).submit(config.batch)()  # sessions, memory pools and kernels warm up once

    frames: list[FrameBatch] = []
    render_only = renderer(1)  # built outside the timing: a CUDA graph is captured once per stream
    start = time.perf_counter()
    run_stream(render_only, frames.append, config.frames, config.batch, StreamStats())
    render = time.perf_counter() - start

    with open(os.devnull, "wb") as null:
        start = time.perf_counter()
        with VideoSink(null, fps=25, width=r, height=r, preset=config.preset) as sink:
            for batch in frames:
                sink_writer(sink)(batch)
        encode = time.perf_counter() - start

        stats = StreamStats(fps_target=25.0)
        end_to_end_renderer = renderer(2)
        start = time.perf_counter()
        sink = ThreadedSink(null, fps=25, width=r, height=r, preset=config.preset)
        run_stream(end_to_end_renderer, sink_writer(sink), config.frames, config.batch, stats)
        sink.close()
        end_to_end = time.perf_counter() - start

    n = config.frames
    return {
        "benchmark": "stream", "svgan": __version__, "device_name": _device_name(config.device),
        "config": asdict(config), "resolution": r,
        "synthesis_mb": round(bundle.graph_file("synthesis").stat().st_size / 2**20, 1),
        "render_fps": n / render, "render_ms_per_frame": 1000 * render / n,
        "encode_fps": n / encode, "end_to_end_fps": n / end_to_end,
        "first_frame_latency_ms": 1000 * stats.first_frame_seconds,
    }


def _device_name(device: str) -> str:
    if device == "cuda":
        try:
            import torch

            return torch.cuda.get_device_name()
        except Exception:  # the name is decoration; the measurement stands without it
            return "CUDA device"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
