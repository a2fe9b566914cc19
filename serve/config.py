"""What every replica of `svgan-serve` needs to know: the bundle, the backend, the limits and the encoding.

One frozen value, built by the CLI (or by `app_builder` from a Ray Serve config file / KubeRay RayService) and
shipped to each replica, so a replica never reads options from anywhere else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from svgan.errors import UserError
from svgan.runtime.cli_stream import DEFAULT_BUNDLE


@dataclass(frozen=True)
class ServeConfig:
    bundle: str | None = None     # None: the demo world's bundle, found where svgan is installed on each node
    backend: str = "ort"
    device: str = "cpu"
    max_streams: int = 16         # per replica; the server's capacity is replicas x this
    batch_wait_ms: float = 5.0    # longest wait for other streams' frames before a synthesis call
    chunk_frames: int = 4         # frames a stream asks for per synthesis request
    lead_seconds: float = 2.0     # how far a stream may render ahead of real time; 0: as fast as possible
    upscale: int = 1
    crf: int = 20
    preset: str = "veryfast"
    encoder_threads: int = 1      # libx264 threads per stream: many streams share the cores already
    max_upload_mb: float = 10.0
    max_image_pixels: int = 4096 * 4096

    @property
    def bundle_dir(self) -> Path:
        return Path(self.bundle) if self.bundle else DEFAULT_BUNDLE

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ServeConfig:
        """From a Ray Serve config file's `args`; unknown keys are a one-line error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown svgan-serve setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)

    def check(self, fps: float) -> None:
        """Limits that need the bundle's frame rate: the batch wait must leave each stream its frame budget."""
        frame_ms = 1000.0 / fps
        if not 0 <= self.batch_wait_ms < frame_ms:
            raise UserError(f"--batch-wait-ms must be at least 0 and below one frame period ({frame_ms:.0f} ms at "
                            f"{fps:g} fps), got {self.batch_wait_ms:g}")
