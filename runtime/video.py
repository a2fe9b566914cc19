"""Video in and out with PyAV (FFmpeg), without torch.

Reading (`VideoReader`, `read_video`) decodes any container/codec FFmpeg knows into HxWx3 uint8 RGB frames.
Writing (`VideoSink`, `ThreadedSink`) encodes RGB frames to H.264 (libx264, yuv420p) in *fragmented* MP4, so the
output can be a path or a non-seekable binary stream such as a pipe on stdout (DESIGN §9): with
``movflags=frag_keyframe+empty_moov+default_base_moof`` the mp4 muxer writes an empty `moov` up front and then
self-contained `moof`+`mdat` fragments, never seeking back.

Choices, measured on the 2-core dev machine (busy with other jobs, so lower bounds; smooth synthetic 1024x1024
frames, CRF 20): ``veryfast`` encodes ~90-105 fps at 1.4 Mbit/s, ``ultrafast`` ~150-210 fps at 4.4 Mbit/s;
256x256: ~1,200 / ~2,000 fps. RGB -> yuv420p costs ~2.5 ms per 1024x1024 frame (0.17 ms at 256x256), copying the
array into an AVFrame 0.4 ms.

* Colour: frames are converted RGB -> yuv420p with BT.709 coefficients, limited range, and the stream is tagged
  BT.709. Untagged H.264 is read as BT.601 by some players and BT.709 by others (mostly depending on the
  height), which would shift the colours of 1024x1024 output; a tag makes every decoder agree.
* The conversion is an explicit ``VideoFrame.reformat`` (libswscale, one thread) rather than the encoder's implicit
  one: same speed, but it lets us choose the matrix, and libx264 already uses the other cores.
* Chroma is subsampled with swscale's ``AREA`` filter at ``upscale=1``: it is the exact 2x2 box average of the
  full-resolution U and V (within 1 level of a float64 reference, even on uniform noise), which the GPU conversion
  `svgan.runtime.torch_colour.rgb_to_yuv420p` reproduces, so frames handed over as yuv420p planes
  (`VideoSink.write_yuv420p_batch`, half the bytes of RGB) encode like RGB frames. ``BICUBIC`` chroma is a wider
  filter (up to 20 levels from the box average on noise); it is kept only for ``upscale > 1``, for the luma.
* Preset ``veryfast`` at CRF 20: about 3x smaller than ``ultrafast`` and still over 3x real time at 1024x1024 and
  25 fps on 2 cores; use ``ultrafast`` when encoding throughput is the bottleneck.
* No B-frames, so that frame k is shown at exactly k/fps from 0 (see `VideoSink`); ~20% larger files.
* Fragments are also cut every ``fragment_seconds`` (not only at keyframes, which x264 places every 250 frames by
  default), so a player reading a pipe starts within about a second and the muxer never holds more than one
  fragment in memory.

A reader that goes away (``| head -c 100000``, a closed player) raises `SinkClosed` from `write`/`close`. At that
point the sink has already pointed the file descriptor at /dev/null, so the interpreter's final flush of
``sys.stdout`` cannot print a BrokenPipeError traceback; the CLI only has to catch `SinkClosed` and exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

from svgan.errors import UserError

__all__ = [
    "VideoError",
    "SinkClosed",
    "VideoReader",
    "read_video",
    "VideoSink",
    "ThreadedSink",
    "is_terminal",
]

# Fragmented MP4 that never seeks: the only layout the mp4 muxer accepts for a non-seekable output.
_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# A reader that disappears shows up as one of these, from Python's file object or from FFmpeg's own file protocol
# (av.error.BrokenPipeError subclasses the builtin).
_CLOSED_READER_ERRORS = (BrokenPipeError, ConnectionResetError)


class VideoError(UserError):
    """A video file that cannot be opened or decoded. The message is one line and names the path."""


class SinkClosed(Exception):
    """The consumer of a `VideoSink` went away (broken pipe); nothing more can be written."""


def _one_line(err: BaseException) -> str:
    """FFmpeg's message for an av error ("Invalid data found when processing input"), else str(err), on one line."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


class VideoReader:
    """Decodes the first video stream of a file into HxWx3 uint8 RGB frames.

    Attributes: ``fps`` (average frame rate), ``n_frames_estimate`` (from the header's frame count, or duration x
    fps when the container has none, e.g. fragmented MP4; use it for progress bars, not for allocation),
    ``width``, ``height``. Iterate once; use as a context manager or call `close`.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 0) -> None:
        self.path = os.fspath(path)
        try:
            self._container = av.open(self.path, "r")
        except (av.FFmpegError, OSError) as err:
            raise VideoError(f"cannot open video {self.path!r}: {_one_line(err)}") from None
        try:
            if not self._container.streams.video:
                raise VideoError(f"no video stream in {self.path!r}")
            self._stream = self._container.streams.video[0]
            rate = self._stream.average_rate or self._stream.guessed_rate
            if not rate:
                raise VideoError(f"unknown frame rate in {self.path!r}")
        except VideoError:
            self._container.close()
            raise
        # Frame and slice threads (PyAV decodes with slice threads only by default); threads=0: FFmpeg picks.
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self.fps = float(rate)
        self.width = self._stream.codec_context.width
        self.height = self._stream.codec_context.height
        self.n_frames_estimate = self._stream.frames or self._estimate_frames()

    def _estimate_frames(self) -> int:
        stream = self._stream
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            seconds = self._container.duration / av.time_base
        else:
            return 0
        return round(seconds * self.fps)

    def __iter__(self) -> Iterator[np.ndarray]:
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                # to_ndarray honours the stream's colour tags (BT.601/709, range) in the YUV->RGB conversion.
                yield frame.to_ndarray(format="rgb24")
                index += 1
        except av.FFmpegError as err:
            raise VideoError(f"cannot decode {self.path!r} at frame {index}: {_one_line(err)}") from None
        # FFmpeg ends quietly where a file was cut short; the header's frame count (where the container has one:
        # not fragmented MP4, whose fragments carry their own) says whether it did.
        declared = self._stream.frames
        if declared and index < declared - 1:
            raise VideoError(f"{self.path!r} decodes only {index} of the {declared} frames its header declares "
                             "(cut short or corrupt); re-encode it, or embed the readable part with --max-frames "
                             f"{index}")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_video(path: str | os.PathLike[str]) -> tuple[Iterator[np.ndarray], float, int]:
    """Opens `path` and returns ``(frames, fps, n_frames_estimate)``; the file is closed when `frames` is exhausted
    (or garbage-collected). Raises `VideoError` right away if the file is missing or not a video."""
    reader = VideoReader(path)

    def frames() -> Iterator[np.ndarray]:
        with reader:
            yield from reader

    return frames(), reader.fps, reader.n_frames_estimate


def is_terminal(fileobj: object) -> bool:
    """True if `fileobj` is an open terminal (where a CLI must not write binary video)."""
    try:
        return bool(fileobj.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # no isatty / closed file
        return False


def _as_rate(fps: int | float | Fraction) -> Fraction:
    rate = Fraction(fps).limit_denominator(1_000_000)  # 25.0 -> 25, 29.97 -> 2997/100, Fraction unchanged
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def _silence(fileobj: object) -> None:
    """Points `fileobj`'s descriptor at /dev/null after its reader has gone, so that later flushes (the interpreter
    flushing sys.stdout at exit, FFmpeg writing the trailer) succeed silently instead of raising EPIPE again."""
    try:
        fd = fileobj.fileno()  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class VideoSink:
    """Encodes HxWx3 uint8 RGB frames to H.264 in fragmented MP4.

    Args:
        target: a path, or a binary file object (``sys.stdout.buffer``, a pipe); file objects are flushed but not
            closed by `close`.
        fps: frame rate (int, float or Fraction, e.g. ``Fraction(30000, 1001)``); frame k gets pts k in a 1/fps
            time base, so the file holds exactly the frames written and lasts ``frames / fps`` seconds.
        width, height: frame size; both must be even (yuv420p halves the chroma planes). StyleGAN's 256/512/1024
            always are, so odd sizes are refused rather than silently padded.
        crf: x264 constant rate factor (0 lossless .. 51; 20 is visually clean for faces).
        preset: x264 speed/size trade-off; ``veryfast`` by default, ``ultrafast`` for the highest throughput.
        threads: x264 threads; 0 lets x264 choose (about 1.5 per core).
        fragment_seconds: longest MP4 fragment, i.e. how often data reaches a reader of a pipe.
        upscale: encode frames enlarged by this integer factor (bicubic, in the same swscale pass as the colour
            conversion): small models' 64x64 frames are easier to watch at 256x256.

    `SinkClosed` is raised (by the constructor, `write*` or `close`) when the reader of the output goes away; after
    that, `close` only releases resources and raises nothing.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        fps: int | float | Fraction,
        width: int,
        height: int,
        crf: int = 20,
        preset: str = "veryfast",
        threads: int = 0,
        fragment_seconds: float = 1.0,
        upscale: int = 1,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"frame size must be positive and even for yuv420p H.264, got {width}x{height}")
        if upscale < 1:
            raise ValueError(f"upscale must be a positive integer, got {upscale}")
        self.width, self.height = width, height
        self.upscale = upscale
        self.rate = _as_rate(fps)
        self.frames_written = 0
        self._fileobj = None if isinstance(target, (str, os.PathLike)) else target
        self._closed = False  # by close(): no more writes
        self._broken = False  # the reader went away: nothing more can be delivered
        # flush_packets: hand every finished fragment to the OS at once (a seekable file is otherwise written in 32 KB
        # blocks), so that a writer killed mid-stream leaves a file that ends at a fragment boundary and plays.
        options = {"movflags": _MOVFLAGS, "frag_duration": str(round(fragment_seconds * 1e6)), "flush_packets": "1"}
        with self._reader_guard():
            self._container = av.open(
                os.fspath(target) if self._fileobj is None else target, "w", format="mp4", options=options
            )
        # No B-frames ("bf": 0): with them x264's first packet has dts -2, and a fragmented MP4 (written without an
        # edit list) shifts the whole track so that the first frame shows at 2/fps instead of 0. Costs ~20% bitrate.
        x264_options = {"crf": str(crf), "preset": preset, "bf": "0"}
        self._stream = self._container.add_stream("libx264", rate=self.rate, options=x264_options)
        context = self._stream.codec_context
        context.width, context.height, context.pix_fmt = width * upscale, height * upscale, "yuv420p"
        context.time_base = 1 / self.rate
        # x264 frame threads (PyAV defaults the encoder to slice threads: lower latency, ~10% less throughput here).
        context.thread_type, context.thread_count = "FRAME", threads
        # BT.709, limited range: what `_encode` converts to, written into the stream so decoders invert it exactly.
        context.colorspace = context.color_primaries = context.color_trc = 1  # AVCOL_*_BT709
        context.color_range = 1  # AVCOL_RANGE_MPEG

    def write(self, frame: np.ndarray) -> None:
        """Encodes one HxWx3 uint8 RGB frame."""
        self._submit(frame, "rgb24")

    def write_batch(self, frames: np.ndarray) -> None:
        """Encodes a batch [B, H, W, 3] of uint8 RGB frames, in order."""
        if frames.ndim != 4:
            raise ValueError(f"expected frames of shape [B, H, W, 3], got {frames.shape}")
        for frame in frames:
            self.write(frame)

    def write_yuv420p_batch(self, planes: np.ndarray) -> None:
        """Encodes a batch [B, H * 3 // 2, W] of uint8 yuv420p frames, in order, without a colour conversion.

        Each frame is I420 as ``av.VideoFrame.from_ndarray(..., format="yuv420p")`` takes it (the Y plane, then the
        H/2 x W/2 U and V planes, flat, viewed as rows of W), BT.709 limited range: what
        `svgan.runtime.torch_colour.rgb_to_yuv420p` returns. Only at ``upscale=1`` (enlarging needs swscale).
        """
        if self.upscale != 1:
            raise ValueError(f"yuv420p frames are encoded as they are, so upscale must be 1, got {self.upscale}")
        if planes.ndim != 3:
            raise ValueError(f"expected yuv420p frames of shape [B, H * 3 // 2, W], got {planes.shape}")
        for frame in planes:
            self._submit(frame, "yuv420p")

    def _submit(self, frame: np.ndarray, pix_fmt: str) -> None:
        """Validates and encodes one ``rgb24`` or ``yuv420p`` frame (`ThreadedSink` queues it instead)."""
        self._encode(self._to_av_frame(frame, pix_fmt))

    def _to_av_frame(self, frame: np.ndarray, pix_fmt: str) -> av.VideoFrame:
        """Validates `frame` and copies it into an AVFrame (so the caller may reuse its buffer right away)."""
        if self._closed:
            raise ValueError("write to a closed VideoSink")
        shape = (self.height, self.width, 3) if pix_fmt == "rgb24" else (self.height * 3 // 2, self.width)
        if frame.shape != shape or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {shape} ({pix_fmt}), got {frame.dtype} {frame.shape}")
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=pix_fmt)
        if pix_fmt == "yuv420p":  # tagged as `_to_yuv`'s reformat tags its output, so the encoder sees no difference
            av_frame.colorspace = av_frame.color_range = 1  # AVCOL_SPC_BT709, AVCOL_RANGE_MPEG
        return av_frame

    def _encode(self, frame: av.VideoFrame) -> None:
        """Encodes an rgb24 frame (converted here) or a yuv420p one (as it is, BT.709 limited range)."""
        if self._broken:
            raise SinkClosed("the reader of the video output went away (broken pipe)")
        yuv = frame if frame.format.name == "yuv420p" else self._to_yuv(frame)
        yuv.pts = self.frames_written
        yuv.time_base = self._stream.codec_context.time_base
        with self._reader_guard():
            self._container.mux(self._stream.encode(yuv))
        self.frames_written += 1

    def _to_yuv(self, rgb: av.VideoFrame) -> av.VideoFrame:
        # AREA at upscale 1: box-filtered chroma, as the GPU conversion computes it (see the module docstring).
        interpolation = "AREA" if self.upscale == 1 else "BICUBIC"
        return rgb.reformat(width=self.width * self.upscale, height=self.height * self.upscale, format="yuv420p",
                            interpolation=interpolation, dst_colorspace="ITU709", dst_color_range="MPEG", threads=1)

    @contextlib.contextmanager
    def _reader_guard(self) -> Iterator[None]:
        """Turns a vanished reader (EPIPE) into `SinkClosed`, after pointing a file object's fd at /dev/null."""
        try:
            yield
        except _CLOSED_READER_ERRORS:
            self._broken = True
            if self._fileobj is not None:
                _silence(self._fileobj)
            raise SinkClosed("the reader of the video output went away (broken pipe)") from None

    def close(self) -> None:
        """Flushes the encoder, writes the last fragment and flushes a file-object target. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._broken:
            self._release()
            return
        try:
            with self._reader_guard():
                self._container.mux(self._stream.encode(None))
                self._container.close()
                if self._fileobj is not None:
                    self._fileobj.flush()
        finally:
            self._release()

    def _release(self) -> None:
        """Frees FFmpeg's resources whether or not the output still accepts data."""
        self._closed = True
        try:
            self._container.close()  # no-op when already closed; may write the trailer to a dead pipe
        except (av.FFmpegError, OSError):
            pass

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        # Another error is propagating (SinkClosed, KeyboardInterrupt, a render failure): finish the file if the
        # output still takes data, but never replace the original exception with a secondary SinkClosed.
        try:
            self.close()
        except SinkClosed:
            pass


_STOP = object()  # queue sentinel: no more frames


class ThreadedSink(VideoSink):
    """A `VideoSink` that encodes on a background thread, so that rendering the next frames overlaps encoding.

    `write` only validates and copies the frame into an AVFrame (~0.4 ms at 1024x1024) and queues it; the worker
    converts it to YUV (frames from `write_yuv420p_batch` already are) and encodes it (libswscale and libx264
    release the GIL). The queue holds at most `queue_size` frames, so memory stays flat when the encoder is the
    bottleneck (the producer then blocks). An error on the worker (e.g. `SinkClosed`) is raised in the producer by
    the next `write`/`write_batch`/`write_yuv420p_batch`/`close`.
    Same arguments as `VideoSink`, plus `queue_size`.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, *, queue_size: int = 8, **kwargs: object) -> None:
        super().__init__(target, **kwargs)  # type: ignore[arg-type]
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="svgan-video-encoder", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is None:
                try:
                    self._encode(item)  # type: ignore[arg-type]
                except BaseException as err:  # handed to the producer; keep draining so that put() never blocks
                    self._error = err

    def _check_worker(self) -> None:
        """Re-raises the worker's error in the producer (every time: the sink is unusable after one)."""
        if self._error is not None:
            self._stop_worker()
            self._release()
            raise self._error

    def _stop_worker(self) -> None:
        if self._worker.is_alive():
            self._queue.put(_STOP)
            self._worker.join()

    def _submit(self, frame: np.ndarray, pix_fmt: str) -> None:
        self._check_worker()  # first: after a worker error the sink is closed, and that error is the one to raise
        self._queue.put(self._to_av_frame(frame, pix_fmt))

    def close(self) -> None:
        if self._closed:
            return
        self._stop_worker()
        self._check_worker()
        super().close()
