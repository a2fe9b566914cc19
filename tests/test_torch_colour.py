"""RGB -> yuv420p on the torch device (svgan.runtime.torch_colour) against PyAV's own conversion, and the video
sinks' yuv420p input (`write_yuv420p_batch`) against their RGB input."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from svgan.runtime.torch_colour import rgb_to_yuv420p
from svgan.runtime.video import ThreadedSink, VideoSink, read_video

B = 3  # frames per batch: each one different


def noise(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise [B, H, W, 3] uint8: the worst case for chroma subsampling."""
    return rng.integers(0, 256, (B, height, width, 3), dtype=np.uint8)


def gradient(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour gradients [B, H, W, 3] uint8, shifted per frame."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phases = rng.uniform(0, 2 * np.pi, (B, 1, 1, 3))
    rgb = 127.5 + 127.5 * np.sin(3 * x[..., None] + 2 * y[..., None] + phases)
    return rgb.round().astype(np.uint8)


def edges(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Saturated primaries meeting at sharp edges, with one-pixel lines and dots: [B, H, W, 3] uint8."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, width // 3:] = [255, 0, 0]
    frame[height // 3:, : width // 2] = [0, 0, 255]
    frame[::3, ::5] = [0, 255, 0]
    frame[1::4, 1::3] = 255
    shifts = rng.integers(0, min(height, width), B)
    return np.stack([np.roll(frame, (shift, -shift), (0, 1)) for shift in shifts])


IMAGES = {"noise": noise, "gradient": gradient, "edges": edges}


def synthesis_output(rgb: np.ndarray) -> torch.Tensor:
    """The float [B, 3, H, W] image in [-1, 1] that TorchBackend's quantisation turns back into `rgb`."""
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1


def pyav_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """PyAV's (libswscale's) conversion of each frame, as the CPU sink does it at upscale 1: [B, H * 3 // 2, W]."""
    return np.stack([
        av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            format="yuv420p", interpolation="AREA", dst_colorspace="ITU709", dst_color_range="MPEG"
        ).to_ndarray()
        for frame in rgb
    ])


def max_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


@pytest.mark.parametrize("kind", sorted(IMAGES))
@pytest.mark.parametrize("height, width", [(64, 64), (36, 20), (22, 30)])
def test_matches_pyav_within_one_level(kind: str, height: int, width: int) -> None:
    rgb = IMAGES[kind](height, width, np.random.default_rng(height * width))
    planes = rgb_to_yuv420p(synthesis_output(rgb))
    assert planes.dtype == torch.uint8 and planes.shape == (B, height * 3 // 2, width)
    assert max_difference(planes.numpy(), pyav_yuv420p(rgb)) <= 1


@pytest.mark.parametrize("variant", ["channels_last", "float16"])
def test_memory_format_and_dtype(variant: str) -> None:
    rgb = noise(36, 20, np.random.default_rng(1))
    image = synthesis_output(rgb)
    # float16 stores c / 127.5 - 1 to within 2^-11, i.e. 0.07 of a level once scaled by 127.5: it rounds back to c.
    image = image.half() if variant == "float16" else image.contiguous(memory_format=torch.channels_last)
    assert max_difference(rgb_to_yuv420p(image).numpy(), pyav_yuv420p(rgb)) <= 1


def test_quantises_like_the_torch_backend() -> None:
    """Values between codes and outside [-1, 1] (synthesis overshoots) are rounded and clamped first."""
    image = torch.empty(B, 3, 20, 36).uniform_(-1.5, 1.5, generator=torch.Generator().manual_seed(0))
    rgb = ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert max_difference(rgb_to_yuv420p(image).numpy(), pyav_yuv420p(rgb)) <= 1


@pytest.mark.parametrize("shape", [(1, 3, 35, 20), (1, 3, 36, 21), (1, 4, 36, 20), (3, 36, 20)])
def test_odd_size_or_bad_shape_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="even frame size|shape"):
        rgb_to_yuv420p(torch.zeros(shape))


W, H, FPS = 64, 48, 25


def encode(path: Path, sink_class: type[VideoSink], rgb: np.ndarray, as_yuv: bool) -> None:
    """Losslessly (crf 0), so that the decoded frames show the colour conversion alone."""
    with sink_class(path, fps=FPS, width=W, height=H, crf=0) as sink:
        if as_yuv:
            sink.write_yuv420p_batch(rgb_to_yuv420p(synthesis_output(rgb)).numpy())
        else:
            sink.write_batch(rgb)
    assert sink.frames_written == len(rgb)


def decode_yuv420p(path: Path) -> tuple[np.ndarray, list[float]]:
    """The decoded planes [N, H * 3 // 2, W] and presentation times (s)."""
    with av.open(path) as container:
        frames = list(container.decode(container.streams.video[0]))
        return np.stack([frame.to_ndarray() for frame in frames]), [float(frame.time) for frame in frames]


@pytest.mark.parametrize("sink_class", [VideoSink, ThreadedSink])
def test_yuv420p_frames_encode_like_rgb_frames(tmp_path: Path, sink_class: type[VideoSink]) -> None:
    rng = np.random.default_rng(2)
    rgb = np.concatenate([make(H, W, rng) for make in IMAGES.values()])
    encode(tmp_path / "rgb.mp4", sink_class, rgb, as_yuv=False)
    encode(tmp_path / "yuv.mp4", sink_class, rgb, as_yuv=True)

    from_rgb, rgb_times = decode_yuv420p(tmp_path / "rgb.mp4")
    from_yuv, yuv_times = decode_yuv420p(tmp_path / "yuv.mp4")
    assert yuv_times == rgb_times == pytest.approx([k / FPS for k in range(len(rgb))])
    np.testing.assert_array_equal(from_yuv, rgb_to_yuv420p(synthesis_output(rgb)).numpy())  # planes as given
    assert max_difference(from_yuv, from_rgb) <= 1

    # Back in RGB (through the stream's BT.709 tags), a level of Y, U or V moves R, G or B by at most ~3.
    decoded_rgb, decoded_yuv = (np.stack(list(read_video(tmp_path / name)[0])) for name in ("rgb.mp4", "yuv.mp4"))
    assert max_difference(decoded_rgb, decoded_yuv) <= 4


@pytest.mark.parametrize("sink_class", [VideoSink, ThreadedSink])
def test_wrong_yuv420p_frames_refused(tmp_path: Path, sink_class: type[VideoSink]) -> None:
    with sink_class(tmp_path / "x.mp4", fps=FPS, width=W, height=H) as sink:
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            sink.write_yuv420p_batch(np.zeros((1, W * 3 // 2, H), np.uint8))
        with pytest.raises(ValueError, match="uint8 frame of shape"):
            sink.write_yuv420p_batch(np.zeros((1, H * 3 // 2, W), np.float32))
        with pytest.raises(ValueError, match=r"\[B, H \* 3 // 2, W\]"):
            sink.write_yuv420p_batch(np.zeros((H * 3 // 2, W), np.uint8))
    with VideoSink(tmp_path / "big.mp4", fps=FPS, width=W, height=H, upscale=2) as sink:
        with pytest.raises(ValueError, match="upscale"):
            sink.write_yuv420p_batch(np.zeros((1, H * 3 // 2, W), np.uint8))
