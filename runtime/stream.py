"""The streaming loop (paper §3-4, DESIGN §9): step G frame by frame, offset, render, encode.

    i ~ N(0,1)^32;  (state, w_0) = init(i)
    for k = 0, 1, ...:  (state, w_{k+1}) = step(s_k ~ N(0,1)^32, state)
    frame_k = synthesis(w_k + Delta)          # Delta from the offset trick, constant for the stream

A `Renderer` turns that into batches of `batch` frames. `CodeRenderer` works with every backend: G is stepped
one frame at a time on the backend (it is tiny), then the batch is synthesised. The torch backend on CUDA has its
own renderer (`runtime/torch_stream.py`) that does G's steps, synthesis and the colour conversion of a batch in
one CUDA graph and returns before the frames exist, so `run_stream` keeps one batch in flight: the GPU renders
batch k+1 while the host waits for batch k and hands it to the encoder (a `ThreadedSink`, whose worker thread
encodes while the loop goes on). Memory does not grow with the stream's length: the only per-frame state is G's
memory and a batch or two of frames.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .backends import Backend, State


@dataclass
class StreamStats:
    frames: int = 0
    setup_seconds: float = 0.0
    first_frame_seconds: float | None = None   # from the start of the loop to the first frame handed over
    render_seconds: float = 0.0                # G stepping + synthesis, and waiting for a batch in flight
    wall_seconds: float = 0.0                  # the loop, encoding included
    fps_target: float = 25.0
    extra: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def realtime_factor(self) -> float:
        return self.fps / self.fps_target

    def as_dict(self) -> dict:
        return {"frames": self.frames, "fps": round(self.fps, 3), "realtime_factor": round(self.realtime_factor, 3),
                "first_frame_latency_s": None if self.first_frame_seconds is None else round(self.first_frame_seconds, 4),
                "setup_s": round(self.setup_seconds, 3), "render_s": round(self.render_seconds, 3),
                "wall_s": round(self.wall_seconds, 3), **self.extra}


@dataclass(frozen=True)
class FrameBatch:
    """Rendered frames for the encoder: uint8 RGB [B, H, W, 3], or yuv420p [B, H * 3 // 2, W] (I420 planes, what
    a GPU renderer converts to so that half the bytes cross to the host)."""

    pixels: np.ndarray
    format: str = "rgb24"  # or "yuv420p"

    def __len__(self) -> int:
        return len(self.pixels)


class Renderer(Protocol):
    """The next frames of one stream. `submit(count)` starts rendering them and returns a function that waits for
    them; `ahead` is how many batches `run_stream` may keep submitted before it collects one (0: `submit` does all
    the work itself, so collecting at once costs nothing; 1: the device renders while the host encodes)."""

    ahead: int

    def submit(self, count: int) -> Callable[[], FrameBatch]: ...


class MotionSource:
    """G's trajectory for one stream, offset onto the actor: yields batches of W+ codes forever. The first code is
    frame `burn_in` of G's trajectory: the bundle's burn-in steps are taken, and their codes dropped, first."""

    def __init__(self, backend: Backend, latent_dim: int, offset: np.ndarray, seed: int, burn_in: int = 0):
        self.backend = backend
        self.latent_dim = latent_dim
        self.offset = offset
        self.burn_in = burn_in
        self.rng = np.random.default_rng([seed, 1])  # the identity's draw uses `seed` itself
        self.state: State | None = None

    def _step(self) -> np.ndarray:
        s = self.rng.standard_normal((1, self.latent_dim), dtype=np.float32)
        self.state, w = self.backend.generator_step(s, self.state)
        return w

    def _next_code(self) -> np.ndarray:
        if self.state is None:
            i = self.rng.standard_normal((1, self.latent_dim), dtype=np.float32)
            self.state, w = self.backend.generator_init(i)
            for _ in range(self.burn_in):
                w = self._step()
        else:
            w = self._step()
        return w[0]

    def codes(self, count: int) -> np.ndarray:
        """The next `count` codes, offset: [count, n_styles, style_dim]."""
        return np.stack([self._next_code() for _ in range(count)]) + self.offset


class CodeRenderer:
    """Any backend: G stepped frame by frame, then one synthesis call per batch, RGB out."""

    ahead = 0

    def __init__(self, backend: Backend, motion: MotionSource):
        self.backend = backend
        self.motion = motion

    def submit(self, count: int) -> Callable[[], FrameBatch]:
        batch = FrameBatch(self.backend.synthesis(self.motion.codes(count)))
        return lambda: batch


def make_renderer(backend: Backend, latent_dim: int, offset: np.ndarray, seed: int, batch: int,
                  yuv420p: bool = False, burn_in: int = 0) -> Renderer:
    """The backend's own renderer where it has one (torch: one CUDA graph per batch), else `CodeRenderer`.
    `yuv420p` allows the renderer to hand over yuv420p instead of RGB (the sink must take it: no upscaling);
    `burn_in` G steps are taken before the first frame (the bundle's `burn_in`)."""
    own = getattr(backend, "stream_renderer", None)
    if own is not None:
        return own(latent_dim, offset, seed, batch, yuv420p, burn_in)
    return CodeRenderer(backend, MotionSource(backend, latent_dim, offset, seed, burn_in))


def sink_writer(sink) -> Callable[[FrameBatch], None]:
    """`write` for `run_stream` into a `VideoSink`: RGB or yuv420p, whichever the renderer produced."""
    def write(batch: FrameBatch) -> None:
        if batch.format == "yuv420p":
            sink.write_yuv420p_batch(batch.pixels)
        else:
            sink.write_batch(batch.pixels)
    return write


def run_stream(renderer: Renderer, write: Callable[[FrameBatch], None], frames: int | None, batch: int,
               stats: StreamStats, should_stop: Callable[[], bool] = lambda: False) -> StreamStats:
    """Render `frames` frames (None: until `should_stop()`) through `write` (e.g. `sink_writer(sink)`), keeping up
    to `renderer.ahead` batches in flight beyond the one being handed over."""
    start = time.perf_counter()
    submitted = 0
    in_flight: deque[Callable[[], FrameBatch]] = deque()
    try:
        while True:
            more = (frames is None or submitted < frames) and not should_stop()
            if more:
                count = batch if frames is None else min(batch, frames - submitted)
                t0 = time.perf_counter()
                in_flight.append(renderer.submit(count))
                stats.render_seconds += time.perf_counter() - t0
                submitted += count
            if not in_flight:
                break
            if len(in_flight) > renderer.ahead or not more:
                t0 = time.perf_counter()
                frames_ready = in_flight.popleft()()
                stats.render_seconds += time.perf_counter() - t0
                write(frames_ready)
                stats.frames += len(frames_ready)
                if stats.first_frame_seconds is None:
                    stats.first_frame_seconds = time.perf_counter() - start
    finally:
        stats.wall_seconds = time.perf_counter() - start
    return stats
