"""A stream's motion: the actor (random, an uploaded photo or W+ code) offset onto G's trajectory.

An uploaded photo that the bundle's pSp reconstructs poorly (runtime/domain.py: a real photo given to the cartoon
demo world, a profile, a heavy occlusion) gets the same one-line warning as `svgan-stream`, which the response
carries in its `X-Svgan-Warning` header; with the request field `strict` it is refused with a 422 instead.

Exactly what `svgan-stream` does (runtime's `load_identity`, `identity_offset`, `MotionSource`), so the same seed
and identity give the same codes. An upload is written to a private temporary file because the runtime reads
identities from paths (and tells a W+ code from a photo by its `.npy` name); its messages then name the upload,
not that file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from svgan.array_files import NPY_MAGIC
from svgan.errors import UserError
from svgan.runtime.backends import Backend
from svgan.runtime.bundle import PCA, Bundle
from svgan.runtime.domain import check_identity
from svgan.runtime.identity import Identity, ImageTooLarge, load_identity
from svgan.runtime.offset_trick import identity_offset
from svgan.runtime.stream import MotionSource

from .stream_request import RequestError, StreamRequest

def stream_motion(request: StreamRequest, bundle: Bundle, backend: Backend, pca: PCA,
                  max_image_pixels: int) -> tuple[MotionSource, str | None]:
    """The stream's `MotionSource` and the out-of-domain warning, if any; a bad upload raises `RequestError` (422,
    or 413 for a huge image)."""
    actor = _identity(request, bundle, backend, max_image_pixels)
    warning = _domain_warning(actor, request, bundle, backend)
    return (MotionSource(backend, bundle.latent_dim, identity_offset(actor.wplus, pca), request.seed, bundle.burn_in),
            warning)


def _domain_warning(actor: Identity, request: StreamRequest, bundle: Bundle, backend: Backend) -> str | None:
    """None unless the actor is a photo the bundle flags (a bundle without a domain reference flags nothing)."""
    check = check_identity(actor, bundle, backend)
    if check is None or not check.out_of_domain:
        return None
    message = check.message(request.identity_name)
    if request.strict:
        raise RequestError(f"{message} (strict)")
    return message.encode("ascii", "replace").decode()  # an HTTP header is latin-1; the upload's name may not be


def _identity(request: StreamRequest, bundle: Bundle, backend: Backend, max_image_pixels: int) -> Identity:
    if request.identity is None:
        return load_identity(None, request.seed, bundle, backend)
    is_code = request.identity.startswith(NPY_MAGIC)
    with tempfile.TemporaryDirectory(prefix="svgan-serve-") as folder:
        path = Path(folder) / ("identity.npy" if is_code else "identity.image")
        path.write_bytes(request.identity)
        try:
            return load_identity(path, request.seed, bundle, backend, request.aligned, max_image_pixels)
        except ImageTooLarge as e:
            raise RequestError(str(e).replace(str(path), request.identity_name), 413) from None
        except UserError as e:
            raise RequestError(str(e).replace(str(path), request.identity_name)) from None
