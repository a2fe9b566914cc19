"""What the demo world makes measurable (issue 6): motion transfer and identity preservation, read from pixels.

Everything runs on an exported bundle through the streaming runtime's own backend (onnxruntime), so what is
measured is what `svgan-stream` shows. The attribute reader R (`attribute_reader.py`) turns frames back into
the renderer's parameters.

* Generator fidelity: the Fréchet distance between R's readings (standardised) of StyleGAN2 samples and of
  rendered faces, against the same distance between two sets of rendered faces (the floor), and how often the
  samples show an open mouth or shut eyes compared with the renders.
* Embedding: R on the training video's frames against the renderer's true states (how well R reads), and R on
  pSp's reconstructions of those frames (how much of the motion survives pSp + StyleGAN2, i.e. what G can learn).
* Motion transfer: one trajectory of G, w_k, rendered for the training actor (w_k) and for new actors
  (w_k + Delta). The mouth and blink signals R reads from the new actor's frames are correlated with the training
  actor's: with the offset trick (Delta = w_new - projection of w_new onto the training PCA space) and with the
  naive offset Delta = w_new - mu (which also adds the new photo's expression). New actors are shown in a neutral
  state and in an expressive one (mouth open, eyes shut, smiling) to make that difference visible.
* Motion amplitude: how much a face moves at all, in R's units (mouth std and range, share of frames with shut
  eyes, blinks per minute), for the training video, pSp's reconstruction of it, G's trajectory and any streamed
  MP4 (e.g. `make demo`'s out.mp4). Correlations alone cannot tell a face that talks from one that trembles.
* Identity preservation: R's identity reading (face shape, skin, hair, iris, background, shirt) of every frame of
  a long stream against its reading of the identity image, early in the stream and late in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from svgan.runtime.backends import Backend
from svgan.runtime.bundle import Bundle
from svgan.runtime.identity import image_to_encoder_input
from svgan.runtime.offset_trick import identity_offset
from svgan.runtime.stream import MotionSource
from svgan.training.motion_metrics import frechet_distance

from .attribute_reader import AttributeReader, identity_fields
from .renderer import (STATE_FIELDS, render_dataset, IdentityParams, StateParams, random_identity, render_face, state_from_row,
                         talking_trajectory)

MOTION_FIELDS = ("mouth_open", "blink")
# R's blink reading above which the eyes count as mostly shut, and below which they count as open again: a
# blink goes from open to shut. On the training video R's readings peak at 0.63-1.12 in true blinks.
BLINK_SHUT = 0.6
BLINK_OPEN = 0.25
# Colour entries of the identity reading: what a viewer notices first when an identity drifts.
COLOUR_FIELDS = tuple(name for name in identity_fields() if name[-2:] in ("_r", "_g", "_b"))
EXPRESSIVE = StateParams(mouth_open=0.7, blink=1.0, smile=0.8)


@dataclass(frozen=True)
class NewActor:
    name: str
    image: np.ndarray  # uint8 [H, W, 3], aligned
    identity: IdentityParams


def new_actors(seeds: Sequence[int], size: int) -> list[NewActor]:
    """Unseen actors (random_identity(seed)), each in a neutral and in an expressive state."""
    actors = []
    for seed in seeds:
        identity = random_identity(seed)
        actors.append(NewActor(f"seed{seed}-neutral", render_face(identity, StateParams(), size), identity))
        actors.append(NewActor(f"seed{seed}-expressive", render_face(identity, EXPRESSIVE, size), identity))
    return actors


def motion_codes(backend: Backend, bundle: Bundle, frames: int, seed: int) -> np.ndarray:
    """G's trajectory for the training actor, [frames, n_styles, style_dim], stepped as the stream steps it."""
    source = MotionSource(backend, bundle.latent_dim, np.zeros((bundle.n_styles, bundle.style_dim), np.float32), seed,
                          bundle.burn_in)
    return source.codes(frames)


def render(backend: Backend, codes: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([backend.synthesis(codes[k:k + batch]) for k in range(0, len(codes), batch)])


def encode(backend: Backend, faces: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([backend.encoder(image_to_encoder_input(faces[k:k + batch]))
                           for k in range(0, len(faces), batch)])


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation; None when either signal is constant (nothing to correlate)."""
    if np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


def motion_signals(reader: AttributeReader, frames: np.ndarray) -> np.ndarray:
    """R's mouth and blink readings, [frames, 2]."""
    states, _ = reader.read(frames)
    return states[:, [STATE_FIELDS.index(name) for name in MOTION_FIELDS]]


def motion_amplitude(signals: np.ndarray, fps: float) -> dict[str, float]:
    """Mouth std and 5-95% range, share of frames with shut eyes and blinks per minute, from R's [frames, 2]
    mouth/blink readings. A blink is a rise above BLINK_SHUT after the eyes were open (below BLINK_OPEN): eyes
    that hover half-shut around the threshold are not blinking."""
    mouth, blink = signals[:, 0], signals[:, 1]
    shut = blink > BLINK_SHUT
    blinks, is_open = 0, False  # a blink needs the eyes seen open first
    for value in blink:
        if is_open and value > BLINK_SHUT:
            blinks, is_open = blinks + 1, False
        elif value < BLINK_OPEN:
            is_open = True
    low, high = np.percentile(mouth, [5, 95])
    return {"mouth_std": round(float(mouth.std()), 4), "mouth_range_5_95": round(float(high - low), 4),
            "shut_eyes_share": round(float(shut.mean()), 4),
            "blinks_per_minute": round(blinks / (len(signals) / fps / 60), 2)}


def generator_report(backend: Backend, bundle: Bundle, reader: AttributeReader, samples: int, seed: int) -> dict:
    """StyleGAN2 samples (z ~ N(0, I), no truncation) against rendered faces, in R's standardised readings."""
    z = np.random.default_rng(seed).standard_normal((samples, bundle.style_dim), dtype=np.float32)
    w = np.concatenate([backend.mapping(z[k:k + 256]) for k in range(0, samples, 256)])
    generated = _readings(reader, render(backend, np.repeat(w[:, None], bundle.n_styles, axis=1)))
    size = bundle.encoder_input_size
    rendered = [_readings(reader, render_dataset(samples, size, seed=seed + k).images) for k in (1, 2)]
    thresholds = {"mouth_open": 0.3, "blink": 0.5}  # "mouth visibly open", "eyes at least half shut"

    def shares(readings: np.ndarray) -> dict[str, float]:
        values = readings * reader.std.numpy() + reader.mean.numpy()
        return {f"{name}_above_{t}": round(float((values[:, STATE_FIELDS.index(name)] > t).mean()), 4)
                for name, t in thresholds.items()}

    return {"samples": samples, "seed": seed,
            "reader_frechet_distance": round(frechet_distance(generated, rendered[0]), 4),
            "reader_frechet_distance_floor": round(frechet_distance(rendered[1], rendered[0]), 4),
            "share_generated": shares(generated), "share_rendered": shares(rendered[0])}


def _readings(reader: AttributeReader, frames: np.ndarray) -> np.ndarray:
    """R's standardised readings [N, all fields]: every field weighs the same in a distance."""
    states, identities = reader.read(frames)
    values = np.concatenate([states, identities], axis=1)
    return (values - reader.mean.numpy()) / reader.std.numpy()


def embedding_report(backend: Backend, reader: AttributeReader, frames: np.ndarray, true_states: np.ndarray,
                     fps: float) -> dict[str, dict]:
    """Correlations with the renderer's true mouth/blink: R on the video itself, and R on pSp's reconstructions;
    and the motion amplitude of both (what G can learn is at most the reconstruction's)."""
    truth = true_states[:, [STATE_FIELDS.index(name) for name in MOTION_FIELDS]]
    read = motion_signals(reader, frames)
    recon = motion_signals(reader, render(backend, encode(backend, frames)))
    report: dict[str, dict] = {name: {"reader_on_video": correlation(read[:, k], truth[:, k]),
                                      "reader_on_psp_reconstruction": correlation(recon[:, k], truth[:, k])}
                               for k, name in enumerate(MOTION_FIELDS)}
    report["amplitude"] = {"truth": motion_amplitude(truth, fps), "reader_on_video": motion_amplitude(read, fps),
                           "reader_on_psp_reconstruction": motion_amplitude(recon, fps)}
    return report


def transfer_report(backend: Backend, bundle: Bundle, reader: AttributeReader, actors: Sequence[NewActor],
                    frames: int, seed: int) -> dict:
    """Motion transfer for every actor, offset trick vs naive offset, against the training actor's signals."""
    codes = motion_codes(backend, bundle, frames, seed)
    reference = motion_signals(reader, render(backend, codes))
    pca = bundle.pca()
    mean_code = pca.mean.reshape(bundle.n_styles, bundle.style_dim).astype(np.float32)
    actors_report = {}
    for actor, w_new in zip(actors, encode(backend, np.stack([a.image for a in actors]))):
        offsets = {"offset_trick": identity_offset(w_new, pca), "naive_offset": w_new - mean_code}
        entry = {}
        for method, delta in offsets.items():
            signals = motion_signals(reader, render(backend, codes + delta))
            entry[method] = {name: {"corr": correlation(signals[:, k], reference[:, k]),
                                    "mean": round(float(signals[:, k].mean()), 4)}
                             for k, name in enumerate(MOTION_FIELDS)}
        actors_report[actor.name] = entry
    return {"frames": frames, "seed": seed,
            "training_actor": {name: {"mean": round(float(reference[:, k].mean()), 4),
                                      "std": round(float(reference[:, k].std()), 4)}
                               for k, name in enumerate(MOTION_FIELDS)},
            "training_actor_amplitude": motion_amplitude(reference, bundle.fps),
            "actors": actors_report, "summary": _transfer_summary(actors_report)}


def _transfer_summary(actors_report: dict) -> dict:
    """Median correlation over actors, per method, signal and kind of identity photo."""
    summary: dict = {}
    for kind in ("neutral", "expressive"):
        for method in ("offset_trick", "naive_offset"):
            for name in MOTION_FIELDS:
                values = [entry[method][name]["corr"] for actor, entry in actors_report.items()
                          if actor.endswith(kind) and entry[method][name]["corr"] is not None]
                summary.setdefault(kind, {}).setdefault(method, {})[name] = (
                    round(float(np.median(values)), 4) if values else None)
    return summary


def identity_report(backend: Backend, bundle: Bundle, reader: AttributeReader, actors: Sequence[NewActor],
                    frames: int, seed: int, span: int = 250) -> dict:
    """Mean absolute error of R's colour readings (0..1 units) between stream frames and the identity image, over
    the first and the last `span` frames of a `frames`-long offset-trick stream, per actor."""
    codes = motion_codes(backend, bundle, frames, seed)
    pca = bundle.pca()
    columns = [identity_fields().index(name) for name in COLOUR_FIELDS]
    talking, _ = talking_trajectory(span / bundle.fps, fps=bundle.fps, seed=seed)
    report = {}
    for actor, w_new in zip(actors, encode(backend, np.stack([a.image for a in actors]))):
        _, photo = reader.read(actor.image[None])
        _, stream = reader.read(render(backend, codes + identity_offset(w_new, pca)))
        error = np.abs(stream[:, columns] - photo[:, columns]).mean(1)
        # The same error for the renderer's own frames of this actor talking: what R's noise alone gives.
        _, rendered = reader.read(np.stack([render_face(actor.identity, state_from_row(row), actor.image.shape[0])
                                            for row in talking]))
        floor = np.abs(rendered[:, columns] - photo[:, columns]).mean(1)
        report[actor.name] = {"first": round(float(error[:span].mean()), 4),
                              "last": round(float(error[-span:].mean()), 4),
                              "max": round(float(error.max()), 4), "reader_floor": round(float(floor.mean()), 4)}
    summary = {key: round(float(np.median([v[key] for v in report.values()])), 4)
               for key in ("first", "last", "reader_floor")}
    return {"frames": frames, "span": span, "seed": seed, "actors": report, "median": summary}

