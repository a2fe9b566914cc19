"""A write-only binary file object that a `VideoSink` muxes into and an HTTP response drains."""

from __future__ import annotations

import threading


class BytePipe:
    """FFmpeg's mp4 muxer writes here (on the stream's worker thread); the response takes what has accumulated.

    It has no `seek`, so PyAV treats it as a non-seekable output, which the fragmented MP4 of `VideoSink` needs.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered beyond what `take` hands over."""

    def take(self) -> bytes:
        """Everything written since the last call (b"" if nothing)."""
        with self._lock:
            data = b"".join(self._chunks)
            self._chunks.clear()
        return data
