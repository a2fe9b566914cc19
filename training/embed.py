"""Embed a training video into W+ (paper §3 "Data Preprocessing", DESIGN §7).

Two passes over the video, so memory does not grow with its length:

1. detect the largest face and its eye corners in every frame (dlib HOG + 5-point model) and turn them into
   FFHQ-style crop parameters (centre, side, angle; eye corners only, never the mouth); frames without a
   face are interpolated from their neighbours, then rotation, scale and centre are low-pass filtered;
2. decode again, warp each frame to its filtered 256x256 crop and encode batches with pSp; unless turned off,
   synthesise each code again and measure its reconstruction PSNR against the crop (runtime/domain.py), so that
   frames pSp represents far worse than the rest of the video (an occluder, a profile, a cut) can be named.

`--aligned` input (already FFHQ-aligned frames) skips pass 1 and only resizes to 256x256.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from svgan import __version__
from svgan.atomic import atomic_write
from svgan.models import PSP
from svgan.runtime.bundle import sha256_file
from svgan.runtime.domain import COMPARE_SIZE, FRAME_OUTLIER_DB, outlier_frames, reconstruction_psnr
from svgan.runtime.face_align import DEFAULT_SIGMA_SECONDS, Aligner, align_image
from svgan.runtime.video import VideoReader, VideoSink

ENCODER_SIZE = 256


@dataclass
class EmbedOptions:
    aligned: bool = False                      # frames are already FFHQ-aligned: no detection, no filtering
    sigma_seconds: tuple[float, float, float] = DEFAULT_SIGMA_SECONDS  # low-pass widths: centre, side, angle
    detect_size: int = 640                     # detect on frames shrunk to this longest side (HOG cost ~ pixels)
    batch_size: int = 8
    max_frames: int | None = None              # embed only the first N frames
    device: str = "cpu"
    reconstruction: bool = True                # measure each frame's reconstruction PSNR (one synthesis per frame)


@dataclass
class Embedding:
    wplus: np.ndarray                          # [N, n_styles, 512] float32
    fps: float
    params: np.ndarray | None = None           # [N, 4] filtered crop parameters (centre x, centre y, side, angle)
    raw_params: np.ndarray | None = None       # [N, 4] per-frame detections (NaN where no face)
    interpolated: np.ndarray | None = None     # [N] bool, frames whose crop was interpolated
    provenance: dict = field(default_factory=dict)
    recon_psnr: np.ndarray | None = None       # [N] reconstruction PSNR (dB) of each frame, when measured

    def outliers(self) -> np.ndarray:
        """Frames reconstructed more than FRAME_OUTLIER_DB below the video's median (empty when not measured)."""
        return np.zeros(0, np.int64) if self.recon_psnr is None else outlier_frames(self.recon_psnr)


def to_encoder_input(frames: list[np.ndarray], device: str) -> torch.Tensor:
    """256x256 uint8 RGB frames -> B x 3 x 256 x 256 in [-1, 1] (pSp's ToTensor + Normalize(0.5, 0.5))."""
    x = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output in about [-1, 1] -> HxWx3 uint8, as pSp's tensor2im (clip, then truncate)."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1)
    return x.to(torch.uint8).cpu().numpy()


def _frames(path: Path, limit: int | None) -> Iterator[np.ndarray]:
    with VideoReader(path) as reader:
        for index, frame in enumerate(reader):
            if limit is not None and index >= limit:
                return
            yield frame


def _detection_params(aligner: Aligner, frame: np.ndarray, detect_size: int) -> np.ndarray | None:
    scale = min(1.0, detect_size / max(frame.shape[:2]))
    if scale < 1.0:
        small = Image.fromarray(frame).resize((round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                                              Image.Resampling.BILINEAR)
        frame = np.asarray(small)
    params = aligner.params(frame)
    if params is not None:
        params[:3] /= scale  # centre and side back to full-resolution pixels; the angle is scale-free
    return params


def track_faces(video: Path, options: EmbedOptions, progress: Callable[[int], None] = lambda n: None) -> np.ndarray:
    """Pass 1: crop parameters per frame, NaN rows where no face was found."""
    aligner = Aligner()
    rows = []
    for frame in _frames(video, options.max_frames):
        found = _detection_params(aligner, frame, options.detect_size)
        rows.append(np.full(4, np.nan) if found is None else found)
        progress(1)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def aligned_frames(video: Path, options: EmbedOptions, params: np.ndarray | None,
                   size: int = ENCODER_SIZE) -> Iterator[np.ndarray]:
    """Pass 2: size x size crops (pSp's input), from the filtered parameters (or plainly resized with --aligned)."""
    for index, frame in enumerate(_frames(video, options.max_frames)):
        if params is None:
            yield frame if frame.shape[:2] == (size, size) else np.asarray(
                Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS))
        else:
            yield align_image(frame, params[index], size)


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _compare_view(images: torch.Tensor) -> np.ndarray:
    """What `reconstruction_psnr` compares, made on the device: clipped and area-averaged to COMPARE_SIZE (a
    1024x1024 synthesis is 12 MB to copy to the CPU, its 64x64 average 48 kB)."""
    size = min(COMPARE_SIZE, images.shape[-1])
    return F.adaptive_avg_pool2d(images.float().clamp(-1, 1), (size, size)).cpu().numpy()


@torch.no_grad()
def encode_frames(psp: PSP, frames: Iterator[np.ndarray], options: EmbedOptions,
                  preview: VideoSink | None = None,
                  progress: Callable[[int], None] = lambda n: None) -> tuple[np.ndarray, np.ndarray | None]:
    """pSp codes of aligned frames, in batches, and (with `options.reconstruction`) each frame's reconstruction
    PSNR; optionally writes crop | reconstruction to `preview`."""
    codes, psnr = [], []
    for batch in _batches(frames, options.batch_size):
        crops = to_encoder_input(batch, options.device)
        wplus = psp.encode(crops)
        codes.append(wplus.float().cpu().numpy())
        if preview is not None or options.reconstruction:
            synthesized = psp.decoder.synthesize(wplus)
            if options.reconstruction:
                psnr.append(reconstruction_psnr(_compare_view(crops), _compare_view(synthesized)))
            if preview is not None:
                recon = F.adaptive_avg_pool2d(synthesized, (psp.input_size, psp.input_size))
                preview.write_batch(np.concatenate([np.stack(batch), to_uint8(recon)], axis=2))
        progress(len(batch))
    return np.concatenate(codes).astype(np.float32), np.concatenate(psnr).astype(np.float32) if psnr else None


def save_embedding(path: str | os.PathLike, embedding: Embedding) -> None:
    """Write the npz `svgan-train` reads (atomically): wplus, fps, alignment arrays, provenance JSON."""
    arrays: dict[str, np.ndarray] = {"wplus": embedding.wplus, "fps": np.float64(embedding.fps),
                                     "provenance": np.array(json.dumps(embedding.provenance))}
    if embedding.recon_psnr is not None:
        arrays |= {"recon_psnr": embedding.recon_psnr, "recon_outliers": embedding.outliers()}
    if embedding.params is not None:
        arrays |= {"align_params": embedding.params.astype(np.float32),
                   "align_params_raw": embedding.raw_params.astype(np.float32),
                   "interpolated": embedding.interpolated}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def provenance(video: Path, checkpoint: Path | None, options: EmbedOptions) -> dict:
    return {"tool": f"svgan-embed {__version__}", "video": video.name, "video_sha256": sha256_file(video),
            "psp_checkpoint": checkpoint.name if checkpoint else None,
            "psp_sha256": sha256_file(checkpoint) if checkpoint else None,
            "aligned_input": options.aligned, "sigma_seconds": list(options.sigma_seconds),
            "alignment": "FFHQ-style from the eye corners only (dlib 5-point), temporally low-passed",
            "reconstruction": (f"recon_psnr: PSNR (dB) of each frame's pSp reconstruction against its crop, both "
                               f"area-averaged to {COMPARE_SIZE}x{COMPARE_SIZE} or less; recon_outliers: frames more "
                               f"than {FRAME_OUTLIER_DB:g} dB below the video's median") if options.reconstruction
                              else None}
