"""Is a face in the bundle's domain? Its pSp reconstruction, judged against the bundle's own faces (issue 16.5).

pSp encodes any face, but only faces like those its StyleGAN2 makes come back looking like themselves: a real
photo given to the cartoon demo world, a profile or a heavy occlusion gets a W+ code whose synthesis, and so every
frame streamed from it, looks unlike the input. The measure is the reconstruction PSNR: the encoder's input face
against the synthesis of its W+ code, both clipped to [-1, 1] and area-averaged to 64x64 (`COMPARE_SIZE`, or less
for smaller images), so that fine texture no encoder reproduces does not count; higher is better.

What "poor" means comes from the bundle: at export, `measure_reference` draws random identities of the bundle's own
generator (faces of its domain by construction, no training data needed), re-encodes and re-synthesises them, and
the manifest records the distribution (`domain_reference`). A face is flagged when its PSNR is more than
`WARN_MARGIN_DB` below that median. Measured on the shipped demo world (64 samples, seed 0: median 30.5 dB, so
flagged below 18.5 dB): 400 rendered actors in a neutral state 19.4-29.7 dB (none flagged; 1 of 200 in random
expressive states, at 18.2 dB), six real photos 10.9-16.0 dB (all flagged), actors with the lower half blacked
out 9.1-14.4 dB (all), turned by 90 degrees 11.3-23.5 dB (70 of 100); a grey square over the central quarter
(16.3-23.8 dB, 12 of 100) mostly passes. The generator's own faces come back ~6 dB better than rendered world
faces (medians 30.5 vs 24.8 dB), hence a margin that wide.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .backends import Backend
from .bundle import Bundle, BundleError
from .identity import Identity, pool_to, random_faces

COMPARE_SIZE = 64
# 12 dB = 16x the squared error of the bundle's typical face (see the module docstring for the measurements).
WARN_MARGIN_DB = 12.0
# Frames of one video: the demo world's talking actors stay within 1.3 dB of their video's median (3 videos x 200
# frames), a frame of noise falls 13 dB below it, a black box over the eyes and nose 7-9 dB. 6 dB = 4x the
# median frame's squared error.
FRAME_OUTLIER_DB = 6.0
REFERENCE_SAMPLES = 64
REFERENCE_SEED = 0


def reconstruction_psnr(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """PSNR in dB per image of [B, 3, H, W] images in [-1, 1] (peak-to-peak 2) at COMPARE_SIZE or less."""
    size = min(COMPARE_SIZE, images.shape[-1], reconstructions.shape[-1])
    x = pool_to(np.clip(images, -1, 1), size)
    y = pool_to(np.clip(reconstructions, -1, 1), size)
    mse = np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(4.0 / np.maximum(mse, 1e-12))


def reconstruct_psnr(faces: np.ndarray, backend: Backend, wplus: np.ndarray | None = None) -> np.ndarray:
    """Reconstruction PSNR of encoder inputs [B, 3, E, E]; pass their W+ codes when they are known already."""
    codes = backend.encoder(faces) if wplus is None else wplus
    return reconstruction_psnr(faces, backend.synthesis(codes, rgb=False))


@dataclass(frozen=True)
class DomainReference:
    """The manifest's `domain_reference`: the PSNR of the bundle's own faces and the warning threshold."""

    median_db: float
    p5_db: float
    warn_below_db: float

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> DomainReference | None:
        entry = manifest.get("domain_reference")
        if not entry:
            return None
        try:  # the manifest is not sha256-checked: it may have been edited by hand
            return cls(float(entry["median_db"]), float(entry["p5_db"]), float(entry["warn_below_db"]))
        except (KeyError, TypeError, ValueError):
            raise BundleError("the manifest's domain_reference needs the numbers median_db, p5_db and "
                              "warn_below_db; measure it again with `python -m svgan.export.domain BUNDLE`") from None


def measure_reference(bundle: Bundle, backend: Backend, samples: int = REFERENCE_SAMPLES,
                      seed: int = REFERENCE_SEED, batch: int = 8) -> dict[str, Any]:
    """The manifest's `domain_reference` entry: `samples` random faces of the bundle, each re-encoded by pSp and
    re-synthesised. Costs 2 syntheses and 1 encoding per sample (64 at 64x64: 1.3-2.5 s on 2 CPU cores)."""
    start = time.perf_counter()
    faces = random_faces(seed, samples, bundle, backend, batch)
    psnr = np.concatenate([reconstruct_psnr(faces[k:k + batch], backend) for k in range(0, samples, batch)])
    median = float(np.median(psnr))
    size = min(COMPARE_SIZE, bundle.encoder_input_size, bundle.resolution)
    return {
        "metric": f"PSNR (dB, higher is better) of synthesis(encoder(face)) against the face, both clipped to "
                  f"[-1, 1] and area-averaged to {size}x{size}",
        "faces": f"{samples} random identities of this bundle's generator (z ~ N(0, 1), seed {seed}, truncation "
                 f"{bundle.truncation_psi:g}), pooled to the encoder's input size",
        "samples": samples, "seed": seed,
        "median_db": round(median, 3), "p5_db": round(float(np.percentile(psnr, 5)), 3),
        "p95_db": round(float(np.percentile(psnr, 95)), 3), "min_db": round(float(psnr.min()), 3),
        "warn_margin_db": WARN_MARGIN_DB, "warn_below_db": round(median - WARN_MARGIN_DB, 3),
        "seconds": round(time.perf_counter() - start, 2),
    }


@dataclass(frozen=True)
class IdentityCheck:
    """An identity image's reconstruction PSNR and, when the bundle records one, its domain reference."""

    psnr_db: float
    reference: DomainReference | None

    @property
    def out_of_domain(self) -> bool:
        return self.reference is not None and self.psnr_db < self.reference.warn_below_db

    def as_dict(self) -> dict[str, Any]:
        return {"psnr_db": round(self.psnr_db, 2), "out_of_domain": self.out_of_domain,
                "reference": None if self.reference is None else asdict(self.reference)}

    def message(self, what: str) -> str:
        """One line on why `what` is flagged (only meaningful when `out_of_domain`)."""
        r = self.reference
        assert r is not None
        return (f"{what}: reconstruction PSNR {self.psnr_db:.1f} dB, {r.median_db - self.psnr_db:.1f} dB worse than "
                f"the bundle's in-domain faces (median {r.median_db:.1f} dB; flagged below {r.warn_below_db:.1f} dB)"
                "; the bundle's pSp does not represent this face well, so the stream will look unlike it")


def check_identity(identity: Identity, bundle: Bundle, backend: Backend) -> IdentityCheck | None:
    """None for an identity that did not come from an image (a W+ code, a random face): nothing to compare."""
    if identity.face is None:
        return None
    psnr = reconstruct_psnr(identity.face[None], backend, identity.wplus[None])[0]
    return IdentityCheck(float(psnr), DomainReference.from_manifest(bundle.manifest))


def outlier_frames(psnr: np.ndarray, margin_db: float = FRAME_OUTLIER_DB) -> np.ndarray:
    """Indices of the frames whose reconstruction PSNR is more than `margin_db` below the video's median."""
    return np.flatnonzero(psnr < np.median(psnr) - margin_db)
