"""What a replica measures: Ray metrics for Prometheus, and a recent-window summary for GET /stats.

Ray exports application metrics on each node's Prometheus endpoint with a `ray_` prefix: `ray_svgan_streams_open`,
`ray_svgan_frames_total` (frames/s is its rate), `ray_svgan_batch_frames` (frames per synthesis call),
`ray_svgan_queue_wait_seconds` (a chunk's wait for its batch), `ray_svgan_frame_latency_seconds` (from asking for
a chunk to having encoded it) and `ray_svgan_streams_rejected_total`. The same figures, kept for the last
`WINDOW` chunks with their wall-clock times, answer GET /stats?since=T, which `svgan-bench serve` reads.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from ray.util import metrics

WINDOW = 20_000
SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


class ReplicaMetrics:
    def __init__(self, replica: str) -> None:
        self.replica = replica
        tags = ("replica",)
        self._streams = metrics.Gauge("svgan_streams_open", "Streams this replica is serving", tag_keys=tags)
        self._frames = metrics.Counter("svgan_frames_total", "Frames encoded into streams", tag_keys=tags)
        self._rejected = metrics.Counter("svgan_streams_rejected_total", "POST /streams answered with an error",
                                         tag_keys=(*tags, "status"))
        self._batch = metrics.Histogram("svgan_batch_frames", "Frames per synthesis call (all streams)",
                                        boundaries=BATCH_BUCKETS, tag_keys=tags)
        self._wait = metrics.Histogram("svgan_queue_wait_seconds", "A chunk's wait for its synthesis batch",
                                       boundaries=SECONDS_BUCKETS, tag_keys=tags)
        self._latency = metrics.Histogram("svgan_frame_latency_seconds", "From asking for frames to having "
                                          "encoded them", boundaries=SECONDS_BUCKETS, tag_keys=tags)
        self._tags = {"replica": replica}
        self.streams_open = 0
        self._chunks: deque[tuple[float, int, float]] = deque(maxlen=WINDOW)    # (time, frames, latency)
        self._batches: deque[tuple[float, int]] = deque(maxlen=WINDOW)          # (time, frames)
        self._waits: deque[tuple[float, float]] = deque(maxlen=WINDOW)          # (time, seconds)

    def stream_opened(self) -> None:
        self.streams_open += 1
        self._streams.set(self.streams_open, tags=self._tags)

    def stream_closed(self) -> None:
        self.streams_open -= 1
        self._streams.set(self.streams_open, tags=self._tags)

    def rejected(self, status: int) -> None:
        self._rejected.inc(tags={**self._tags, "status": str(status)})

    def chunk_encoded(self, frames: int, latency_s: float) -> None:
        self._frames.inc(frames, tags=self._tags)
        self._latency.observe(latency_s, tags=self._tags)
        self._chunks.append((time.time(), frames, latency_s))

    def batch_synthesised(self, frames: int, waits_s: list[float]) -> None:
        self._batch.observe(frames, tags=self._tags)
        now = time.time()
        self._batches.append((now, frames))
        for wait in waits_s:
            self._wait.observe(wait, tags=self._tags)
            self._waits.append((now, wait))

    def summary(self, since: float = 0.0) -> dict:
        """The recent window from wall-clock time `since` on: frames, synthesis calls, mean batch, percentiles."""
        chunks = [(n, s) for t, n, s in self._chunks if t >= since]
        batches = [n for t, n in self._batches if t >= since]
        waits = [s for t, s in self._waits if t >= since]
        latencies = np.repeat([s for _, s in chunks], [n for n, _ in chunks])  # per frame
        return {"replica": self.replica, "streams_open": self.streams_open,
                "frames": int(sum(n for n, _ in chunks)), "synthesis_calls": len(batches),
                "mean_batch_frames": float(np.mean(batches)) if batches else None,
                "frame_latency_ms": _percentiles(latencies), "queue_wait_ms": _percentiles(np.asarray(waits))}


def _percentiles(seconds: np.ndarray) -> dict | None:
    if not len(seconds):
        return None
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2), "max": round(float(seconds.max()) * 1000, 2)}
