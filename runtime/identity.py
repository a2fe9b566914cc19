"""Where a stream's actor comes from (DESIGN §6): an image, a W+ `.npy`, or a random StyleGAN2 face.

An image is aligned with the same code as `svgan-embed` (eye corners, FFHQ-style, no temporal filter), or
only resized when it is already aligned (`--aligned`, e.g. the demo world's cartoon faces, which no face
detector knows), and encoded with pSp at the bundle's encoder input size. A random identity follows the paper: z ~ N(0, 1)^512 -> mapping -> truncation ->
synthesis -> pSp, so it lives where pSp's codes of real faces live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from svgan.array_files import read_npy
from svgan.errors import UserError

from .backends import Backend
from .bundle import Bundle


@dataclass(frozen=True)
class Identity:
    """The actor's W+ code [n_styles, style_dim] and, when it came from an image, the face the encoder read
    ([3, E, E] in [-1, 1]), which `domain.check_identity` compares with the code's synthesis."""

    wplus: np.ndarray
    face: np.ndarray | None = None


def image_to_encoder_input(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 aligned faces [B, H, W, 3] -> [B, 3, H, W] in [-1, 1], as pSp's ToTensor + Normalize."""
    return rgb.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def pool_to(images: np.ndarray, size: int) -> np.ndarray:
    """[B, 3, R, R] -> [B, 3, size, size] as AdaptiveAvgPool2d does for integer ratios (pSp's face_pool)."""
    r = images.shape[-1]
    if r >= size:
        f = r // size
        return images.reshape(*images.shape[:2], size, f, size, f).mean(axis=(3, 5))
    f = size // r
    return images.repeat(f, axis=2).repeat(f, axis=3)


# A small compressed file can declare an image that decodes to gigabytes; refused from its header alone.
MAX_IDENTITY_PIXELS = 4096 * 4096


class ImageTooLarge(UserError):
    """An identity image whose header declares more than the allowed number of pixels."""


def identity_from_image(path: Path, backend: Backend, size: int, aligned: bool = False,
                        max_pixels: int = MAX_IDENTITY_PIXELS) -> Identity:
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > max_pixels:
                raise ImageTooLarge(f"identity image {path} of {opened.width}x{opened.height} pixels is too large "
                                    f"(at most {max_pixels} pixels)")
            image = opened.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"identity image not found: {path}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read identity image {path}: {e}") from None
    if aligned:
        face = np.asarray(image if image.size == (size, size) else image.resize((size, size), Image.Resampling.LANCZOS))
    else:
        from .face_align import align_face  # dlib loads only when a photo has to be aligned

        face, _ = align_face(np.asarray(image), size, what=str(path))
    encoder_input = image_to_encoder_input(face[None])
    return Identity(backend.encoder(encoder_input)[0], encoder_input[0])


def identity_from_npy(path: Path, bundle: Bundle) -> np.ndarray:
    w = read_npy(path, "W+ code")
    expected = (bundle.n_styles, bundle.style_dim)
    if w.shape not in (expected, (1, *expected)):
        raise UserError(f"{path} holds a code of shape {list(w.shape)}; this bundle needs {list(expected)}")
    if w.dtype.kind not in "fiu":
        raise UserError(f"{path} holds a code of dtype {w.dtype}; expected floating-point numbers")
    if not np.all(np.isfinite(w)):
        raise UserError(f"{path} holds a code with NaN or infinite values")
    return w.reshape(expected).astype(np.float32)


def random_faces(seed: int, n: int, bundle: Bundle, backend: Backend, batch: int = 8) -> np.ndarray:
    """n random faces of the bundle's StyleGAN2 as the encoder reads them, [n, 3, E, E] in [-1, 1]. Face k is the
    same for every n >= k + 1 (numpy draws z row by row), so face 0 is `random_identity(seed)`'s."""
    z = np.random.default_rng(seed).standard_normal((n, bundle.style_dim), dtype=np.float32)
    w = backend.mapping(z)
    w_avg = bundle.w_avg()
    w = np.repeat((w_avg + bundle.truncation_psi * (w - w_avg))[:, None], bundle.n_styles, axis=1)
    # Clipped as a rendered face saved to an image would be, then pooled to pSp's input size (face_pool).
    return np.concatenate([pool_to(np.clip(backend.synthesis(w[k:k + batch], rgb=False), -1, 1),
                                   bundle.encoder_input_size) for k in range(0, n, batch)]).astype(np.float32)


def random_identity(seed: int, bundle: Bundle, backend: Backend) -> np.ndarray:
    return backend.encoder(random_faces(seed, 1, bundle, backend))[0]


def load_identity(identity: Path | None, seed: int, bundle: Bundle, backend: Backend,
                  aligned: bool = False, max_pixels: int = MAX_IDENTITY_PIXELS) -> Identity:
    """The actor; `aligned`: the image is an aligned face already."""
    if identity is None:
        return Identity(random_identity(seed, bundle, backend))
    if identity.suffix.lower() == ".npy":
        return Identity(identity_from_npy(identity, bundle))
    return identity_from_image(identity, backend, bundle.encoder_input_size, aligned, max_pixels)
