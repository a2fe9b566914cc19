"""The demo world: procedural, antialiased cartoon talking faces (numpy + Pillow only).

No pretrained FFHQ weights can be downloaded here, so the demo trains a small StyleGAN2 + pSp + temporal model on a
domain we can render ourselves. A face is drawn from two parameter sets:

* `IdentityParams` (the "actor", fixed over a video): face shape, skin, hair colour and style, iris colour,
  background, shirt, eye spacing/size, nose size, mouth width. `random_identity` draws varied, plausible ones.
* `StateParams` (changes every frame): mouth opening and shape, smile, blink, brows, gaze, small head rotations.
  `random_state` draws independent states for a training set; `talking_trajectory` a speech-like sequence.

Layout mimics an FFHQ-aligned crop, so a pSp-style encoder sees aligned faces: eyes at 0.45 of the height, mouth
at about 0.66, the face oval filling ~60% of the image. All geometry below is in image fractions (0..1); it is
drawn with Pillow at 4x the output size and reduced with a box filter, which antialiases every edge.

Head pose is cheap 2.5-D: yaw and pitch slide the features (eyes, nose, mouth) over the face oval, as on a sphere,
and narrow the far eye; roll rotates the whole head layer (not the shoulders) about the face centre.

The talking trajectory reuses `svgan.training.synthetic.simulate_state` (syllables gated by phrases, Poisson
blinks, saccades, Ornstein-Uhlenbeck drift of expression and pose) and only rescales/clips it to the ranges here.
Everything is deterministic given a seed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from svgan.atomic import atomic_output, atomic_write
from svgan.training.synthetic import STATE_NAMES as _SYNTHETIC_NAMES
from svgan.training.synthetic import SyntheticConfig, simulate_state

__all__ = [
    "HAIR_STYLES",
    "STATE_FIELDS",
    "STATE_RANGES",
    "IdentityParams",
    "StateParams",
    "random_identity",
    "random_state",
    "render_face",
    "talking_trajectory",
    "render_video",
    "sample_grid",
    "state_from_row",
    "FEATURE_BOXES",
    "feature_weights",
    "FaceDataset",
    "render_dataset",
    "identity_vector",
]

RGB = tuple[int, int, int]

HAIR_STYLES: tuple[str, ...] = ("short", "long", "bald", "fringe")

_SUPERSAMPLE = 4
# Fixed landmarks of the aligned crop (image fractions), before pose and identity offsets.
_FACE_CX, _FACE_CY = 0.5, 0.50
_EYE_Y, _NOSE_Y, _MOUTH_Y = 0.45, 0.565, 0.665
# Where eyes, brows and mouth can be in the aligned crop, head pose and identity included: (top, bottom, left, right)
# as image fractions. Small features are a few percent of the pixels; losses can weight these boxes up.
FEATURE_BOXES: tuple[tuple[float, float, float, float], ...] = ((0.36, 0.53, 0.28, 0.72), (0.58, 0.77, 0.34, 0.66))


@dataclass(frozen=True)
class IdentityParams:
    """Who is shown. Lengths are image fractions; colours are 0..255 RGB triples."""

    face_width: float = 0.26  # half-width of the face oval (0.23..0.29)
    face_height: float = 0.32  # half-height of the face oval (0.29..0.34)
    jaw: float = 2.2  # superellipse exponent of the lower face: <2 pointed chin, >2 square jaw (1.6..2.8)
    skin: RGB = (224, 182, 150)
    hair: RGB = (70, 45, 30)
    hair_style: int = 0  # index into HAIR_STYLES
    iris: RGB = (90, 60, 40)
    background: RGB = (120, 140, 170)
    shirt: RGB = (60, 80, 120)
    eye_spacing: float = 0.105  # half the distance between the eye centres (0.09..0.12)
    eye_size: float = 1.0  # scales the eye opening (0.85..1.2)
    nose_size: float = 1.0  # (0.8..1.3)
    mouth_width: float = 1.0  # scales the mouth's half-width of 0.085 (0.8..1.2)


@dataclass(frozen=True)
class StateParams:
    """What the face does in one frame. Angles are in radians; head rotations stay small (aligned crops)."""

    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    lip_round: float = 0.0  # -1 wide (as in "ee") .. 1 rounded (as in "oo")
    smile: float = 0.0  # -1 frown .. 1 smile (mouth corners)
    brow_raise: float = 0.0  # -1 lowered, inner ends down .. 1 raised
    blink: float = 0.0  # 0 open .. 1 closed
    gaze_x: float = 0.0  # -1 left .. 1 right (image directions)
    gaze_y: float = 0.0  # -1 up .. 1 down
    yaw: float = 0.0  # -0.35 .. 0.35; positive turns the face to the image's right
    pitch: float = 0.0  # -0.25 .. 0.25; positive tilts the face down
    roll: float = 0.0  # -0.2 .. 0.2; positive rotates counter-clockwise in the image


STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StateParams))

# Limits of each state field, used to clip trajectories and to sample training states.
STATE_RANGES: dict[str, tuple[float, float]] = {
    "mouth_open": (0.0, 1.0),
    "lip_round": (-1.0, 1.0),
    "smile": (-1.0, 1.0),
    "brow_raise": (-1.0, 1.0),
    "blink": (0.0, 1.0),
    "gaze_x": (-1.0, 1.0),
    "gaze_y": (-1.0, 1.0),
    "yaw": (-0.35, 0.35),
    "pitch": (-0.25, 0.25),
    "roll": (-0.2, 0.2),
}

# --------------------------------------------------------------------------------------------------- sampling

_SKIN_TONES: tuple[RGB, ...] = ((255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 134, 90),
                                (161, 102, 64), (120, 75, 45), (86, 55, 35))
_HAIR_COLOURS: tuple[RGB, ...] = ((25, 20, 20), (60, 40, 28), (105, 70, 40), (200, 160, 90), (165, 75, 35),
                                  (150, 150, 150), (60, 90, 170), (190, 80, 140))
_HAIR_WEIGHTS = np.array([0.25, 0.22, 0.17, 0.12, 0.08, 0.08, 0.04, 0.04])  # dyed hair is rare
_IRIS_COLOURS: tuple[RGB, ...] = ((80, 50, 30), (120, 80, 40), (70, 120, 170), (80, 130, 80), (110, 120, 130))


def _rng(rng_or_seed: np.random.Generator | int) -> np.random.Generator:
    return rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)


def _jitter(rng: np.random.Generator, colour: RGB, amount: float) -> RGB:
    """`colour` with independent per-channel noise of std `amount` (0..255 units), clipped."""
    noisy = np.asarray(colour, float) + rng.normal(0, amount, 3)
    return tuple(int(c) for c in np.clip(noisy, 0, 255))  # type: ignore[return-value]


def _random_muted(rng: np.random.Generator, lightness: tuple[float, float]) -> RGB:
    """A colour of random hue with moderate saturation (backgrounds and shirts)."""
    hue, sat, val = rng.random(), rng.uniform(0.15, 0.6), rng.uniform(*lightness)
    rgb = val * (1 - sat * np.clip(np.abs((hue * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1))  # HSV -> RGB
    return tuple(int(c) for c in np.round(rgb * 255))  # type: ignore[return-value]


def random_identity(rng: np.random.Generator | int) -> IdentityParams:
    """A random, plausible cartoon actor; `rng` is a Generator or a seed."""
    rng = _rng(rng)
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS)]
    return IdentityParams(
        face_width=rng.uniform(0.23, 0.29),
        face_height=rng.uniform(0.29, 0.34),
        jaw=rng.uniform(1.6, 2.8),
        skin=_jitter(rng, _SKIN_TONES[rng.integers(len(_SKIN_TONES))], 8),
        hair=_jitter(rng, hair, 10),
        hair_style=int(rng.choice(len(HAIR_STYLES), p=[0.35, 0.3, 0.1, 0.25])),
        iris=_jitter(rng, _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))], 12),
        background=_random_muted(rng, (0.45, 0.95)),
        shirt=_random_muted(rng, (0.2, 0.9)),
        eye_spacing=rng.uniform(0.09, 0.12),
        eye_size=rng.uniform(0.85, 1.2),
        nose_size=rng.uniform(0.8, 1.3),
        mouth_width=rng.uniform(0.8, 1.2),
    )


def random_state(rng: np.random.Generator | int) -> StateParams:
    """An independent random state for training images: every expression occurs often, including closed eyes and a
    closed mouth (which a uniform draw would almost never produce)."""
    rng = _rng(rng)
    mouth = 0.0 if rng.random() < 0.3 else rng.uniform(0, 1)
    blink = rng.choice([0.0, rng.uniform(0, 1), 1.0], p=[0.7, 0.15, 0.15])
    values = {name: rng.uniform(*STATE_RANGES[name]) for name in STATE_FIELDS}
    values.update(mouth_open=mouth, blink=float(blink))
    values["gaze_y"] *= 0.5  # vertical gaze is rarer and smaller than horizontal
    return StateParams(**values)


# --------------------------------------------------------------------------------------------------- rendering

@dataclass(frozen=True)
class _Pose:
    """Where the features go for a given yaw/pitch (image fractions)."""

    dx: float  # shift of eyes and mouth
    dy: float
    nose_dx: float  # the nose sticks out, so it moves further
    squash_x: float  # face oval width factor
    squash_y: float

    @staticmethod
    def of(state: StateParams, identity: IdentityParams) -> _Pose:
        sy, sp = math.sin(state.yaw), math.sin(state.pitch)
        return _Pose(dx=0.75 * identity.face_width * sy, dy=0.35 * identity.face_height * sp,
                     nose_dx=1.0 * identity.face_width * sy,
                     squash_x=1 - 0.12 * sy * sy, squash_y=1 - 0.12 * sp * sp)


class _Painter:
    """ImageDraw in image-fraction coordinates on a supersampled canvas."""

    def __init__(self, image: Image.Image) -> None:
        self.draw = ImageDraw.Draw(image)
        self.scale = image.width

    def px(self, points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in (np.asarray(points) * self.scale).tolist()]  # type: ignore[misc]

    def polygon(self, points: np.ndarray, fill: RGB) -> None:
        self.draw.polygon(self.px(points), fill=fill)

    def line(self, points: np.ndarray, fill: RGB, width: float) -> None:
        self.draw.line(self.px(points), fill=fill, width=max(1, round(width * self.scale)), joint="curve")

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB) -> None:
        s = self.scale
        self.draw.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=fill)


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, c * factor)) for c in colour)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))  # type: ignore[return-value]


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, t: np.ndarray) -> np.ndarray:
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _face_outline(identity: IdentityParams, pose: _Pose) -> np.ndarray:
    """[n, 2] outline of the face: an ellipse on top, a superellipse (exponent `jaw`) below the cheekbones."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    lower = s > 0  # image y grows downwards, so sin > 0 is the chin side
    power = np.where(lower, 2 / identity.jaw, 1.0)
    x = np.sign(c) * np.abs(c) ** power * identity.face_width * pose.squash_x
    y = np.sign(s) * np.abs(s) ** power * identity.face_height * pose.squash_y
    return np.stack([_FACE_CX + x, _FACE_CY + y], axis=1)


def _draw_body(p: _Painter, identity: IdentityParams) -> None:
    """Neck and shoulders; they do not roll with the head."""
    neck_w = 0.45 * identity.face_width
    p.polygon(np.array([[0.5 - neck_w, 0.6], [0.5 + neck_w, 0.6], [0.5 + neck_w * 1.1, 0.95],
                        [0.5 - neck_w * 1.1, 0.95]]), _shade(identity.skin, 0.82))
    p.ellipse(0.5, 1.12, 0.46, 0.24, identity.shirt)


def _draw_hair_back(p: _Painter, identity: IdentityParams) -> None:
    """Hair behind the head: a cap a little larger than the skull, and for long hair a curtain to the shoulders."""
    style = HAIR_STYLES[identity.hair_style]
    if style == "bald":
        return
    w, h = identity.face_width, identity.face_height
    if style == "long":
        back = _shade(identity.hair, 0.85)
        p.polygon(np.array([[0.5 - 1.25 * w, 0.45], [0.5 + 1.25 * w, 0.45], [0.5 + 1.3 * w, 0.8],
                            [0.5 - 1.3 * w, 0.8]]), back)
        p.ellipse(0.5, 0.8, 1.3 * w, 0.08, back)  # rounded ends, which still look like hair when the head rolls
    p.ellipse(_FACE_CX, _FACE_CY - 0.3 * h, 1.12 * w, 0.82 * h, identity.hair)


def _draw_hair_front(p: _Painter, identity: IdentityParams, pose: _Pose) -> None:
    """Hair over the forehead: a side-parted hairline, or a straight fringe with a jagged edge."""
    style = HAIR_STYLES[identity.hair_style]
    if style == "bald":
        return
    w, h = identity.face_width * pose.squash_x, identity.face_height
    t = np.linspace(np.pi, 2 * np.pi, 25)
    if style == "fringe":
        edge_y = _EYE_Y - 0.085 + 0.006 * (np.arange(25) % 2)  # jagged: alternate strands
        edge_x = _FACE_CX + 1.02 * w * np.cos(t)
        edge = np.stack([edge_x, edge_y], axis=1)
    else:
        # Hairline: an arc, higher on the parting side, which follows the head's yaw a little.
        parting = _FACE_CX + 0.3 * w + 0.5 * pose.dx
        u = np.linspace(-1, 1, 25)
        edge_x = _FACE_CX + 1.02 * w * u
        edge_y = _FACE_CY - 0.45 * h - 0.06 * np.exp(-((edge_x - parting) / (0.35 * w)) ** 2) + 0.25 * h * u**4
        edge = np.stack([edge_x, edge_y], axis=1)
    crown = _ellipse_points(_FACE_CX, _FACE_CY - 0.3 * h, 1.12 * w, 0.82 * h, t)[::-1]  # the cap's upper half
    p.polygon(np.concatenate([edge, crown]), identity.hair)


def _draw_ears(p: _Painter, identity: IdentityParams, pose: _Pose) -> None:
    w = identity.face_width * pose.squash_x
    for side in (-1, 1):
        # The ear on the side the face turns towards hides behind the cheek.
        x = _FACE_CX + side * (w * 0.97) - 0.4 * pose.dx
        p.ellipse(x, _EYE_Y + 0.04 + pose.dy * 0.5, 0.035, 0.055, _shade(identity.skin, 0.93))


def _draw_eye(p: _Painter, identity: IdentityParams, state: StateParams, pose: _Pose, side: int) -> None:
    """One eye: sclera, iris, pupil and highlight, then skin-coloured lids that leave only the opening visible.

    Covering with lids (instead of clipping the iris to the opening) keeps this to plain ImageDraw polygons.
    The upper lid comes down to the lower lid's line as `blink` goes to 1, so the closed eye is a curved line.
    """
    foreshorten = 1 - 0.45 * side * math.sin(state.yaw)  # the eye turning away from the camera narrows
    ew = 0.05 * foreshorten
    eh = 0.028 * identity.eye_size
    ex = _FACE_CX + side * identity.eye_spacing * (1 - 0.3 * abs(math.sin(state.yaw))) + pose.dx
    ey = _EYE_Y + pose.dy
    lower = 0.75 - 0.25 * max(state.smile, 0.0)  # smiling raises the lower lid (a slight squint)
    upper = -(1 - state.blink) + lower * state.blink

    p.ellipse(ex, ey, ew, eh * 1.1, (245, 243, 238))
    r = 0.85 * eh
    ix, iy = ex + state.gaze_x * 0.45 * ew, ey + state.gaze_y * 0.35 * eh
    p.ellipse(ix, iy, r, r, identity.iris)
    p.ellipse(ix, iy, 0.5 * r, 0.5 * r, (15, 12, 12))
    p.ellipse(ix + 0.35 * r, iy - 0.35 * r, 0.22 * r, 0.22 * r, (255, 255, 255))

    t = np.linspace(0, np.pi, 17)
    xs = ex - ew * np.cos(t)  # left corner to right corner
    upper_arc = np.stack([xs, ey + upper * eh * np.sin(t)], axis=1)
    lower_arc = np.stack([xs, ey + lower * eh * np.sin(t)], axis=1)
    bx, by = 1.2 * ew, 1.8 * eh  # the lids fill this box around the eye
    upper_lid = np.concatenate([[[ex - bx, ey]], upper_arc, [[ex + bx, ey], [ex + bx, ey - by], [ex - bx, ey - by]]])
    lower_lid = np.concatenate([[[ex - bx, ey]], lower_arc, [[ex + bx, ey], [ex + bx, ey + by], [ex - bx, ey + by]]])
    p.polygon(upper_lid, identity.skin)
    p.polygon(lower_lid, identity.skin)
    p.line(upper_arc, (35, 25, 25), 0.007)  # lash line
    p.line(lower_arc, _shade(identity.skin, 0.75), 0.003)


def _draw_brow(p: _Painter, identity: IdentityParams, state: StateParams, pose: _Pose, side: int) -> None:
    """A thick arc above the eye; raising lifts it, lowering also drops the inner end (a frown)."""
    ex = _FACE_CX + side * identity.eye_spacing + pose.dx
    y = _EYE_Y + pose.dy - 0.058 - 0.022 * state.brow_raise
    inner_drop = 0.015 * max(-state.brow_raise, 0.0)
    u = np.linspace(-1, 1, 7)  # inner (-1) to outer (+1) end
    xs = ex + side * 0.055 * u
    ys = y - 0.012 * (1 - u**2) + inner_drop * (1 - u) / 2
    brow = identity.hair if HAIR_STYLES[identity.hair_style] != "bald" else _shade(identity.skin, 0.5)
    p.line(np.stack([xs, ys], axis=1), _shade(brow, 0.8), 0.014)


def _draw_nose(p: _Painter, identity: IdentityParams, pose: _Pose) -> None:
    s = 0.03 * identity.nose_size
    x, y = _FACE_CX + pose.nose_dx, _NOSE_Y + pose.dy
    p.polygon(np.array([[x - 0.15 * s, y - 1.4 * s], [x - 0.8 * s, y + 0.45 * s], [x, y + 0.7 * s],
                        [x + 0.8 * s, y + 0.45 * s], [x + 0.15 * s, y - 1.4 * s]]), _shade(identity.skin, 0.88))
    for side in (-1, 1):
        p.ellipse(x + side * 0.35 * s, y + 0.4 * s, 0.18 * s, 0.12 * s, _shade(identity.skin, 0.55))


def _draw_mouth(p: _Painter, identity: IdentityParams, state: StateParams, pose: _Pose) -> None:
    """Lips around an opening whose height follows `mouth_open`; `smile` lifts the corners, `lip_round` narrows.

    The mouth's centre line is a parabola through the corners, so a smile bends it upwards; upper and lower lips are
    offsets of that line that vanish at the corners.
    """
    half_w = 0.085 * identity.mouth_width * (1 + 0.15 * state.smile) * (1 - 0.25 * state.lip_round)
    half_w *= 1 - 0.35 * abs(math.sin(state.yaw))
    x0, y0 = _FACE_CX + pose.dx, _MOUTH_Y + pose.dy
    u = np.linspace(-1, 1, 21)
    centre = y0 - 0.03 * state.smile * u**2
    bulge = 1 - u**2
    gap = 0.075 * state.mouth_open * (1 + 0.3 * state.lip_round)
    top = centre - 0.3 * gap * bulge
    bottom = centre + 0.7 * gap * bulge
    xs = x0 + half_w * u
    lip = _mix(identity.skin, (175, 65, 75), 0.55)
    upper_lip = np.stack([xs, top - 0.012 * bulge], axis=1)
    lower_lip = np.stack([xs, bottom + 0.016 * bulge], axis=1)
    p.polygon(np.concatenate([upper_lip, lower_lip[::-1]]), lip)
    if state.mouth_open > 0.02:
        upper_edge, lower_edge = np.stack([xs, top], axis=1), np.stack([xs, bottom], axis=1)
        p.polygon(np.concatenate([upper_edge, lower_edge[::-1]]), (70, 20, 28))
        teeth = np.stack([xs, top + np.minimum(0.01, 0.5 * gap) * bulge], axis=1)
        p.polygon(np.concatenate([upper_edge, teeth[::-1]]), (240, 236, 225))
    p.line(np.stack([xs, centre if state.mouth_open <= 0.02 else top], axis=1), (90, 30, 35), 0.004)


def _draw_head(p: _Painter, identity: IdentityParams, state: StateParams) -> None:
    pose = _Pose.of(state, identity)
    _draw_hair_back(p, identity)
    _draw_ears(p, identity, pose)
    p.polygon(_face_outline(identity, pose), identity.skin)
    _draw_hair_front(p, identity, pose)
    for side in (-1, 1):
        _draw_eye(p, identity, state, pose, side)
        _draw_brow(p, identity, state, pose, side)
    _draw_nose(p, identity, pose)
    _draw_mouth(p, identity, state, pose)


def render_face(identity: IdentityParams, state: StateParams, size: int = 64) -> np.ndarray:
    """The face as a [size, size, 3] uint8 RGB array (drawn at 4x and box-reduced, so antialiased)."""
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    canvas = size * _SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), identity.background)
    _draw_body(_Painter(image), identity)
    if abs(state.roll) < 1e-3:
        _draw_head(_Painter(image), identity, state)  # no roll: skip the layer and its resampling
    else:
        head = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
        _draw_head(_Painter(head), identity, state)
        head = head.rotate(math.degrees(state.roll), resample=Image.BILINEAR,
                           center=(_FACE_CX * canvas, _FACE_CY * canvas))
        image.paste(head, (0, 0), head)
    return np.asarray(image.reduce(_SUPERSAMPLE))


# --------------------------------------------------------------------------------------------------- trajectories

# synthetic.simulate_state -> StateParams: (scale) per field; the synthetic pose components are O(1) with stds of
# 0.6/0.35/0.2, so 0.25 makes them radians of about 9/5/3 degrees.
_FROM_SYNTHETIC: dict[str, float] = {
    "mouth_open": 1.0, "lip_round": 1.0, "smile": 1.0, "brow_raise": 1.0, "blink": 1.0,
    "gaze_x": 1.5, "gaze_y": 1.5, "yaw": 0.25, "pitch": 0.25, "roll": 0.25,
}


def talking_trajectory(seconds: float, fps: float = 25.0, seed: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """A talking sequence for one identity: ``(states [N, k] float32, STATE_FIELDS)``, N = round(seconds * fps).

    Dynamics from `svgan.training.synthetic.simulate_state` (speech-like mouth at ~4 Hz in phrases and pauses,
    Poisson blinks of 150-250 ms, gaze saccades, slow smile/brow/head drift), scaled and clipped to `StateParams`'
    ranges.
    """
    simulated = simulate_state(SyntheticConfig(seconds=seconds, fps=fps, seed=seed))
    columns = []
    for name in STATE_FIELDS:
        low, high = STATE_RANGES[name]
        columns.append(np.clip(simulated[:, _SYNTHETIC_NAMES.index(name)] * _FROM_SYNTHETIC[name], low, high))
    return np.stack(columns, axis=1).astype(np.float32), STATE_FIELDS


def state_from_row(row: np.ndarray) -> StateParams:
    """A `StateParams` from one row of a trajectory ([k] in `STATE_FIELDS` order)."""
    return StateParams(**{name: float(v) for name, v in zip(STATE_FIELDS, row)})


def render_video(identity: IdentityParams, states: np.ndarray | Sequence[StateParams], size: int,
                 path: str | os.PathLike[str], fps: float = 25.0) -> int:
    """Renders one frame per state (rows of a [N, k] array in `STATE_FIELDS` order, or `StateParams`) to an H.264
    MP4 at `path`, atomically (it is training data: never half a video under that name); returns the number of
    frames written."""
    # Imported here: rendering faces for training needs no PyAV (the GPU machine trains the world without it).
    from svgan.runtime.video import VideoSink

    with atomic_output(path) as f, VideoSink(f, fps=fps, width=size, height=size) as sink:
        for state in states:
            sink.write(render_face(identity, state if isinstance(state, StateParams) else state_from_row(state), size))
    return sink.frames_written


def save_image(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """An HxWx3 uint8 image, atomically, in the format its file name says (PNG for an unknown suffix)."""
    image_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    atomic_write(path, lambda f: Image.fromarray(rgb).save(f, format=image_format))


# One column per state in `sample_grid`: neutral, talking, blinking, smiling, looking aside while turning, frowning
# with a rolled head.
_SHOWCASE: tuple[StateParams, ...] = (
    StateParams(),
    StateParams(mouth_open=0.8),
    StateParams(blink=1.0),
    StateParams(smile=1.0, mouth_open=0.3),
    StateParams(brow_raise=1.0, gaze_x=1.0, yaw=0.3),
    StateParams(brow_raise=-1.0, smile=-0.8, gaze_y=-1.0, pitch=0.2, roll=0.2),
)


def sample_grid(seed: int = 0, n_identities: int = 4, size: int = 128) -> np.ndarray:
    """A uint8 image with one row per random identity (from `seed`) and one column per showcase state."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_identities):
        identity = random_identity(rng)
        rows.append(np.concatenate([render_face(identity, state, size) for state in _SHOWCASE], axis=1))
    return np.concatenate(rows, axis=0)


# --------------------------------------------------------------------------------------------------- datasets

def feature_weights(size: int, weight: float) -> np.ndarray:
    """[size, size] float32 map: `weight` inside `FEATURE_BOXES` (eyes and brows, mouth), 1 elsewhere."""
    weights = np.ones((size, size), np.float32)
    for top, bottom, left, right in FEATURE_BOXES:
        weights[round(top * size):round(bottom * size), round(left * size):round(right * size)] = weight
    return weights


def identity_vector(identity: IdentityParams) -> np.ndarray:
    """The identity as numbers (colours in 0..1, hair style as its index): a target for attribute readers."""
    values: list[float] = []
    for f in dataclasses.fields(IdentityParams):
        v = getattr(identity, f.name)
        values.extend(np.asarray(v, float) / 255.0 if isinstance(v, tuple) else [float(v)])
    return np.asarray(values, np.float32)


@dataclass(frozen=True)
class FaceDataset:
    """Independent random identity x random state images with their parameters (`STATE_FIELDS` order)."""

    images: np.ndarray  # [N, size, size, 3] uint8
    states: np.ndarray  # [N, len(STATE_FIELDS)] float32
    identities: np.ndarray  # [N, len(identity_vector(...))] float32


def _render_job(job: tuple[IdentityParams, StateParams, int]) -> np.ndarray:
    return render_face(*job)


def render_dataset(n: int, size: int, seed: int, progress: Callable[[int], None] = lambda done: None,
                   workers: int = 1) -> FaceDataset:
    """`n` faces, each a fresh random identity in a fresh random state (~3.5 ms a face at 64x64 on one core).

    The parameters are drawn in one stream first, so `workers` > 1 (processes) renders the very same faces."""
    rng = np.random.default_rng(seed)
    pairs = [(random_identity(rng), random_state(rng)) for _ in range(n)]
    images = np.empty((n, size, size, 3), np.uint8)
    jobs = [(identity, state, size) for identity, state in pairs]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for k, image in enumerate(pool.map(_render_job, jobs, chunksize=max(1, min(256, n // workers)))):
                images[k] = image
                progress(k + 1)
    else:
        for k, job in enumerate(jobs):
            images[k] = _render_job(job)
            progress(k + 1)
    states = np.asarray([[getattr(state, name) for name in STATE_FIELDS] for _, state in pairs], np.float32)
    return FaceDataset(images, states, np.stack([identity_vector(identity) for identity, _ in pairs]))
