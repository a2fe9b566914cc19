"""RGB -> yuv420p on the synthesis device, for the fast CUDA path (issue 14).

A yuv420p frame is half the bytes of its RGB (1.5 bytes a pixel instead of 3), so converting before the copy to
the host halves the device-to-host traffic, and the CPU sink then encodes the planes without a libswscale pass
(`VideoSink.write_yuv420p_batch`). The conversion reproduces the CPU sink's own (``reformat`` with
``interpolation="AREA"``, BT.709, limited range) to within 1 level, so both paths give the same video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["quantise_rgb", "rgb_codes", "rgb_to_yuv420p"]

# BT.709 luma coefficients (the stream is tagged BT.709, see svgan.runtime.video).
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
# Limited ("MPEG") range on 0..255 RGB codes: Y' spans 219 levels from 16, U and V 224 levels around 128.
_Y_SCALE = 219 / 255
_U_SCALE = 224 / 255 / (2 * (1 - _KB))
_V_SCALE = 224 / 255 / (2 * (1 - _KR))


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """Y' of float RGB codes [B, 3, h, w] (0..255), on the same 0..255 scale: [B, h, w]."""
    return _KR * rgb[:, 0] + _KG * rgb[:, 1] + _KB * rgb[:, 2]


def rgb_codes(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] image in [-1, 1] -> float32 RGB codes 0..255, rounded as the ONNX synthesis graph rounds."""
    return ((image.float() + 1) * 127.5).round().clamp(0, 255)


def quantise_rgb(image: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] image in [-1, 1] -> uint8 RGB frames [B, H, W, 3]."""
    return rgb_codes(image).to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def rgb_to_yuv420p(image: torch.Tensor) -> torch.Tensor:
    """Synthesis output [B, 3, H, W] (float, nominally in [-1, 1]) -> uint8 I420 frames [B, H * 3 // 2, W].

    The image is first quantised to RGB codes exactly as `quantise_rgb` does (`rgb_codes`:
    ``round((x + 1) * 127.5)`` clamped to 0..255), then, with Y' = 0.2126 R + 0.7152 G + 0.0722 B:

        Y = 16 + 219/255 Y'
        U = 128 + 224/255 (B - Y') / 1.8556
        V = 128 + 224/255 (R - Y') / 1.5748

    U and V are averaged over each 2x2 block (a box filter, as libswscale's AREA conversion does; they are linear
    in RGB, so the RGB is averaged first), and all three are rounded. Each frame is packed like
    ``av.VideoFrame.from_ndarray(..., format="yuv420p")`` expects: the H x W luma plane, then the H/2 x W/2 U and
    V planes, flat and in that order, viewed as rows of W. Runs in float32 on the image's device without a host
    sync (any float dtype and memory format). Raises ValueError unless H and W are even.
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an image of shape [B, 3, H, W], got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
    rgb = rgb_codes(image)
    # Y stays within 16..235 and U, V within 16..240 for any RGB codes, so rounding needs no clamp.
    y = (16 + _Y_SCALE * _luma(rgb)).round()
    block = F.avg_pool2d(rgb, 2)  # exact: the mean of four integers is a multiple of 1/4
    block_luma = _luma(block)
    u = (128 + _U_SCALE * (block[:, 2] - block_luma)).round()
    v = (128 + _V_SCALE * (block[:, 0] - block_luma)).round()
    planes = torch.cat([y.reshape(batch, -1), u.reshape(batch, -1), v.reshape(batch, -1)], dim=1)
    return planes.to(torch.uint8).reshape(batch, height * 3 // 2, width)
