"""The streaming loop (paper §3-4, DESIGN §9): step G frame by frame, offset, render, encode.

    i ~ N(0,1)^32;  (state, w_0) = init(i)
    for k = 0, 1, ...:  (state, w_{k+1}) = step(s_k ~ N(0,1)^32, state)
    frame_k = synthesis(w_k + Delta)          # Delta from the offset trick, constant for the stream

G is stepped one frame at a time (it is tiny); frames are rendered `batch` at a time and handed to a
`ThreadedSink`, whose worker thread encodes while the next batch renders. Memory does not grow with the
stream's length: the only per-frame state is G's memory and one batch of codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .backends import Backend, State


@dataclass
class StreamStats:
    frames: int = 0
    setup_seconds: float = 0.0
    first_frame_seconds: float | None = None   # from the start of the loop to the first frame handed over
    render_seconds: float = 0.0                # G stepping + synthesis
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


class MotionSource:
    """G's trajectory for one stream, offset onto the actor: yields batches of W+ codes forever."""

    def __init__(self, backend: Backend, latent_dim: int, offset: np.ndarray, seed: int):
        self.backend = backend
        self.latent_dim = latent_dim
        self.offset = offset
        self.rng = np.random.default_rng([seed, 1])  # the identity's draw uses `seed` itself
        self.state: State | None = None

    def _next_code(self) -> np.ndarray:
        if self.state is None:
            i = self.rng.standard_normal((1, self.latent_dim), dtype=np.float32)
            self.state, w = self.backend.generator_init(i)
        else:
            s = self.rng.standard_normal((1, self.latent_dim), dtype=np.float32)
            self.state, w = self.backend.generator_step(s, self.state)
        return w[0]

    def batches(self, batch: int) -> Iterator[np.ndarray]:
        while True:
            yield np.stack([self._next_code() for _ in range(batch)]) + self.offset


def run_stream(backend: Backend, motion: MotionSource, write: Callable[[np.ndarray], None], frames: int | None,
               batch: int, stats: StreamStats, should_stop: Callable[[], bool] = lambda: False) -> StreamStats:
    """Render `frames` frames (None: until `should_stop()`) through `write` (a sink's `write_batch`)."""
    start = time.perf_counter()
    codes = motion.batches(batch)
    try:
        while (frames is None or stats.frames < frames) and not should_stop():
            t0 = time.perf_counter()
            wplus = next(codes)
            if frames is not None:
                wplus = wplus[: frames - stats.frames]
            rgb = backend.synthesis(wplus)
            stats.render_seconds += time.perf_counter() - t0
            write(rgb)
            stats.frames += len(rgb)
            if stats.first_frame_seconds is None:
                stats.first_frame_seconds = time.perf_counter() - start
    finally:
        stats.wall_seconds = time.perf_counter() - start
    return stats
