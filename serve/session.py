"""One HTTP stream: its motion, its encoder and the loop that turns chunks of frames into fragmented MP4 bytes.

The stream's state (G's GRU state, its noise generator and the identity offset Δ, all in runtime's
`MotionSource`) lives here and nowhere else. Frames come from `synthesise`, an awaitable that the replica batches
across all its streams; the session only asks for the next `chunk` codes at a time, keeping one chunk in flight
while the previous one is encoded. G's steps and the encoder run on the session's own worker thread, in order,
so the event loop stays free and a close queued behind an unfinished write never races it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from svgan.runtime.stream import MotionSource
from svgan.runtime.video import VideoSink

from .pipe import BytePipe

Synthesise = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Encoding:
    fps: float
    resolution: int
    upscale: int = 1
    crf: int = 20
    preset: str = "veryfast"
    threads: int = 1


@dataclass(frozen=True)
class Pacing:
    """`lead_seconds` > 0: a stream renders at most that far ahead of real time (a slow viewer cannot make the
    server buffer an endless stream); 0: as fast as the server can (files, benchmarks)."""

    lead_seconds: float = 2.0


class StreamSession:
    def __init__(self, motion: MotionSource, synthesise: Synthesise, frames: int | None, chunk: int,
                 encoding: Encoding, pacing: Pacing, on_chunk: Callable[[int, float], None] = lambda n, s: None):
        self.motion = motion
        self.synthesise = synthesise
        self.frames = frames
        self.chunk = chunk
        self.encoding = encoding
        self.pacing = pacing
        self.on_chunk = on_chunk  # (frames, seconds from asking for them to having encoded them)
        self.pipe = BytePipe()
        self.sink = VideoSink(self.pipe, fps=encoding.fps, width=encoding.resolution, height=encoding.resolution,
                              crf=encoding.crf, preset=encoding.preset, threads=encoding.threads,
                              upscale=encoding.upscale)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="svgan-stream")
        self._submitted = 0
        self._started: float | None = None
        self._pending: asyncio.Future | None = None
        self._closed = False

    async def mp4(self) -> AsyncIterator[bytes]:
        """The fragmented MP4, piece by piece as the muxer writes it (the first piece holds the header)."""
        try:
            self._started = time.perf_counter()
            self._pending = self._next_chunk()
            while self._pending is not None:
                frames, asked = await self._pending
                self._pending = self._next_chunk()
                await self._in_worker(self.sink.write_batch, frames)
                self.on_chunk(len(frames), time.perf_counter() - asked)
                if data := self.pipe.take():
                    yield data
            await self._in_worker(self.sink.close)
            if data := self.pipe.take():
                yield data
        finally:
            self.close()

    def close(self) -> None:
        """Ends the stream however it ended (finished, client gone, replica stopping); idempotent. The encoder is
        released on the worker, after whatever it is doing, and the worker thread then ends."""
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            self._pending.cancel()
        self._worker.submit(self._release_sink)
        self._worker.shutdown(wait=False)

    def _release_sink(self) -> None:
        # Nobody reads the rest of an abandoned stream: whatever closing it raises has no one to go to.
        with contextlib.suppress(Exception):
            self.sink.close()

    def _next_chunk(self) -> asyncio.Future | None:
        count = self.chunk if self.frames is None else min(self.chunk, self.frames - self._submitted)
        if count <= 0:
            return None
        first, self._submitted = self._submitted, self._submitted + count
        return asyncio.ensure_future(self._render(first, count))

    async def _render(self, first: int, count: int) -> tuple[np.ndarray, float]:
        """Frames first .. first + count - 1 and when they were asked for."""
        if self.pacing.lead_seconds > 0:
            due = self._started + first / self.encoding.fps - self.pacing.lead_seconds
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        codes = await self._in_worker(self.motion.codes, count)
        asked = time.perf_counter()
        return await self.synthesise(codes), asked

    def _in_worker(self, function: Callable, *args: object) -> Awaitable:
        return asyncio.get_running_loop().run_in_executor(self._worker, function, *args)
