"""Video I/O (svgan.runtime.video): round trips through files and pipes, closed readers, bad inputs, no torch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from svgan.runtime.video import (
    SinkClosed,
    ThreadedSink,
    VideoError,
    VideoReader,
    VideoSink,
    is_terminal,
    read_video,
)

W, H, N = 64, 48, 37  # N frames: not a multiple of anything the encoder or muxer groups by


def gradient_frames(n: int = N, width: int = W, height: int = H) -> np.ndarray:
    """Smooth colour gradients that drift a little per frame: [n, H, W, 3] uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for k in range(n):
        r = 40 + 170 * x / width + k
        g = 30 + 190 * y / height
        b = 128 + 60 * np.sin((x + y + 2 * k) / 20)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(frames, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def decode(source: str | Path | io.BytesIO) -> tuple[list[np.ndarray], list[float], Fraction]:
    """Frames, presentation times (s) and average rate, with PyAV directly (independent of VideoReader)."""
    with av.open(source) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
        return frames, times, stream.average_rate


def check_round_trip(decoded: list[np.ndarray], times: list[float], rate: Fraction, fps: Fraction | int) -> None:
    written = gradient_frames()
    assert len(decoded) == N
    assert rate == fps
    np.testing.assert_allclose(times, [k / float(fps) for k in range(N)], atol=1e-3)
    assert min(psnr(a, b) for a, b in zip(decoded, written)) > 30


@pytest.mark.parametrize("sink_class", [VideoSink, ThreadedSink])
@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001)])
def test_round_trip_file(tmp_path: Path, sink_class: type[VideoSink], fps: int | Fraction) -> None:
    path = tmp_path / "out.mp4"
    with sink_class(path, fps=fps, width=W, height=H) as sink:
        for frame in gradient_frames():
            sink.write(frame)
    assert sink.frames_written == N
    check_round_trip(*decode(path), fps)

    reader = VideoReader(path)
    assert (reader.width, reader.height, reader.n_frames_estimate) == (W, H, N)
    assert reader.fps == pytest.approx(float(fps))
    with av.open(path) as container:  # duration exactly N / fps
        assert container.duration / av.time_base == pytest.approx(N / float(fps), abs=1e-3)


@pytest.mark.parametrize("sink_class", [VideoSink, ThreadedSink])
def test_round_trip_pipe(sink_class: type[VideoSink]) -> None:
    """A non-seekable output works (fragmented MP4), here via write_batch."""
    read_fd, write_fd = os.pipe()
    received = io.BytesIO()
    reader = threading.Thread(target=lambda: received.write(os.fdopen(read_fd, "rb").read()))
    reader.start()
    with os.fdopen(write_fd, "wb") as pipe:
        assert not pipe.seekable()
        with sink_class(pipe, fps=25, width=W, height=H) as sink:
            sink.write_batch(gradient_frames())
    reader.join()
    received.seek(0)
    check_round_trip(*decode(received), 25)


def test_read_video(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    with VideoSink(path, fps=25, width=W, height=H) as sink:
        sink.write_batch(gradient_frames())
    frames, fps, n_estimate = read_video(path)
    frames = list(frames)
    assert (fps, n_estimate, len(frames)) == (25.0, N, N)
    assert frames[0].shape == (H, W, 3) and frames[0].dtype == np.uint8
    assert psnr(frames[-1], gradient_frames()[-1]) > 30


@pytest.mark.parametrize("width, height", [(65, 48), (64, 47), (0, 48)])
def test_odd_or_empty_size_refused(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoSink(tmp_path / "x.mp4", fps=25, width=width, height=height)


def test_wrong_frame_refused(tmp_path: Path) -> None:
    with VideoSink(tmp_path / "x.mp4", fps=25, width=W, height=H) as sink:
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            sink.write(np.zeros((W, H, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            sink.write(np.zeros((H, W, 3), np.float32))
        with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
            sink.write_batch(np.zeros((H, W, 3), np.uint8))


@pytest.mark.parametrize("sink_class", [VideoSink, ThreadedSink])
def test_closed_reader_raises_sink_closed(sink_class: type[VideoSink]) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    frame = gradient_frames(1)[0]
    with os.fdopen(write_fd, "wb") as pipe:
        with pytest.raises(SinkClosed), sink_class(pipe, fps=25, width=W, height=H) as sink:
            for _ in range(200):  # the first fragment (1 s) reaches the pipe after ~25 frames
                sink.write(frame)
        # The descriptor now points at /dev/null, so a later flush (the interpreter's, at exit) cannot fail.
        assert os.write(write_fd, b"late bytes") == 10


def test_threaded_sink_reraises_worker_errors(tmp_path: Path) -> None:
    """An encoder failure on the worker thread surfaces in the producer (and does not leave it blocked)."""

    class FailingSink(ThreadedSink):
        def _encode(self, rgb: av.VideoFrame) -> None:
            if self.frames_written == 3:
                raise RuntimeError("encoder exploded")
            super()._encode(rgb)

    frame = gradient_frames(1)[0]
    with pytest.raises(RuntimeError, match="encoder exploded"):
        with FailingSink(tmp_path / "x.mp4", fps=25, width=W, height=H, queue_size=2) as sink:
            for _ in range(1000):
                sink.write(frame)
    with pytest.raises(RuntimeError, match="encoder exploded"):  # every later call, too
        sink.write(frame)


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from svgan.runtime.video import SinkClosed, {cls}
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    try:
        with {cls}(sys.stdout.buffer, fps=25, width=64, height=48) as sink:
            for _ in range(100_000):
                sink.write(frame)
    except SinkClosed:
        sys.exit(3)
    """
)


@pytest.mark.parametrize("cls", ["VideoSink", "ThreadedSink"])
def test_closed_stdout_exits_quietly(cls: str) -> None:
    """`svgan-stream | head -c N`: SinkClosed, and no traceback from the interpreter's final flush of stdout."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(cls=cls)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert len(child.stdout.read(10_000)) == 10_000
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 3, stderr.decode()
    assert stderr == b""


def test_missing_file_raises_video_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.mp4"
    with pytest.raises(VideoError) as info:
        read_video(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_corrupt_file_raises_video_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError) as info:
        frames, _, _ = read_video(path)
        list(frames)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_is_terminal() -> None:
    assert not is_terminal(io.BytesIO())
    assert not is_terminal(object())
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "wb", closefd=False) as tty:
            assert is_terminal(tty)
    finally:
        os.close(leader)
        os.close(follower)


def test_imports_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = None; import svgan.runtime.video"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_video_cut_short_is_refused_not_half_read(tmp_path: Path) -> None:
    """A plain MP4 with its index up front (faststart) still opens when its end is cut off; FFmpeg then decodes what
    is there and stops without an error. The header's frame count shows the loss."""
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(50):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with VideoReader(path) as reader:
        assert len(list(reader)) == 50
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    with VideoReader(cut) as reader, pytest.raises(VideoError, match=r"decodes only \d+ of the 50 frames"):
        list(reader)
    with VideoReader(cut) as reader:  # reading only a prefix that is there is fine
        assert len([frame for _, frame in zip(range(5), reader)]) == 5
