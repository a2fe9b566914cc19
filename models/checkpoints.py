"""Loading and writing official pSp and rosinality StyleGAN2 checkpoints.

Every load goes through `torch.load(..., weights_only=True)`: a checkpoint is untrusted input and must
not be able to run code. rosinality *training* checkpoints also pickle `args` as an
`argparse.Namespace`; exactly that class is allowed, for that one call (`torch.serialization.safe_globals`).

Every state dict is compared key by key with the model before `load_state_dict(strict=True)`, so a
missing, extra or misshaped tensor is reported as one line naming the key (`CheckpointError`).
Layouts: `shared/conformance/README.md` §1.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svgan.atomic import atomic_write
from svgan.errors import UserError

from .psp import PSP
from .psp_encoder import PSPEncoderConfig
from .stylegan2 import Generator, StyleGAN2Config

DEFAULT_PSP_OUTPUT_SIZE = 1024  # releases from 2020-10 have no `output_size` in opts (DESIGN §2)
SVGAN_ENCODER_OPT = "svgan_encoder"  # opts key of a reduced encoder's shape (official pSp ignores unknown opts)


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in lines:  # torch's weights_only refusal names the offending global on a later line
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line
    return lines[0] if lines else type(text).__name__


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    allow_namespace: bool = False) -> Any:
    """`torch.load` with `weights_only=True`, turning every failure into a one-line `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    allowed = [argparse.Namespace] if allow_namespace else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing {path}: it pickles Python objects beyond tensors and plain containers "
            f"({_first_line(e)}); checkpoints are loaded with weights_only=True") from None
    except Exception as e:  # noqa: BLE001 - garbage bytes fail anywhere in the unpickler (IndexError, struct.error...)
        raise CheckpointError(f"cannot read checkpoint {path}: {_first_line(e) or type(e).__name__}") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` with `torch.save` to a temporary file beside `path`, then rename: never a half file
    (`svgan.atomic`; a full disk is an OSError naming `path`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_state_strict(model: nn.Module, state: Mapping[str, Any], source: str) -> None:
    """`model.load_state_dict(state, strict=True)`, with a one-line error naming the first bad key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    for keys, what in ((missing, "missing key"), (extra, "unexpected key")):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise CheckpointError(f"{source}: {what} '{keys[0]}'{more}")
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: key '{key}' is a {type(value).__name__}, not a tensor")
        if value.shape != ref.shape:
            raise CheckpointError(f"{source}: key '{key}' has shape {list(value.shape)}, "
                                  f"the model expects {list(ref.shape)}")
    model.load_state_dict(state, strict=True)


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def stylegan2_config_from_state(state: Mapping[str, torch.Tensor], size: int | None = None,
                                prefix: str = "", source: str = "checkpoint") -> StyleGAN2Config:
    """Read a rosinality generator's architecture off its tensors (converted checkpoints carry no args).

    `state` holds the generator's keys without `prefix`; errors name the full key. Only widths and
    depths are inferred; whatever else is inconsistent is left for the strict key check to name.
    """
    def shape(key: str) -> torch.Size:
        if key not in state:
            raise CheckpointError(f"{source}: missing key '{prefix}{key}'")
        return state[key].shape

    n_mlp = sum(1 for k in state if k.startswith("style.") and k.endswith(".weight"))
    style_dim = shape("style.1.weight")[0] if n_mlp else shape("conv1.conv.modulation.weight")[1]
    if size is None:
        n_rgb = sum(1 for k in state if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
        size = 2 ** (n_rgb + 2)
    log_size = size.bit_length() - 1
    channels = [shape("input.input")[1]]
    channels += [shape(f"convs.{2 * i}.conv.weight")[1] for i in range(log_size - 2)]
    return StyleGAN2Config(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=tuple(channels))


def _as_opts(opts: Any) -> dict[str, Any]:
    if opts is None:
        return {}
    if isinstance(opts, Mapping):
        return dict(opts)
    raise CheckpointError(f"pSp checkpoint 'opts' is a {type(opts).__name__}, expected a dict")


def load_psp(path: str | os.PathLike, device: str | torch.device = "cpu") -> PSP:
    """Load an official pSp checkpoint (`{'state_dict', 'opts', 'latent_avg'}`) strictly, in eval mode.

    Supports the FFHQ-encoder configuration: GradualStyleEncoder, `learn_in_w=False`. Every `opts`
    field is optional (`output_size` defaults to 1024, as `scripts/inference.py` does).
    """
    ckpt = safe_torch_load(path, map_location="cpu")
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        found = ", ".join(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        hint = " (a rosinality StyleGAN2 checkpoint? use load_stylegan2)" if isinstance(ckpt, Mapping) and "g_ema" in ckpt else ""
        raise CheckpointError(f"{path} is not a pSp checkpoint: no 'state_dict' (found {found}){hint}")
    opts = _as_opts(ckpt.get("opts"))
    encoder_type = opts.get("encoder_type", "GradualStyleEncoder")
    if encoder_type != "GradualStyleEncoder" or opts.get("learn_in_w", False):
        raise CheckpointError(f"{path}: pSp encoder_type={encoder_type!r} learn_in_w={opts.get('learn_in_w')} "
                              "is not supported; svgan needs the W+ GradualStyleEncoder (e.g. psp_ffhq_encode.pt)")
    state = ckpt["state_dict"]
    size = int(opts.get("output_size") or DEFAULT_PSP_OUTPUT_SIZE)
    config = stylegan2_config_from_state(_strip_prefix(state, "decoder."), size=size, prefix="decoder.", source=str(path))
    model = PSP(config, input_nc=int(opts.get("input_nc", 3)), encoder_config=_encoder_config(opts, path))
    load_state_strict(model, state, str(path))
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        try:
            model.set_latent_avg(latent_avg)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    elif opts.get("start_from_latent_avg", False):
        raise CheckpointError(f"{path}: opts say start_from_latent_avg but the checkpoint has no 'latent_avg'")
    return model.eval().to(device)


def _encoder_config(opts: Mapping[str, Any], path: str | os.PathLike) -> PSPEncoderConfig | None:
    """svgan's own small encoders record their shape under `opts["svgan_encoder"]`; official ones have none."""
    shape = opts.get(SVGAN_ENCODER_OPT)
    if shape is None:
        return None
    try:
        return PSPEncoderConfig(input_size=int(shape["input_size"]),
                                stages=tuple(tuple(int(v) for v in stage) for stage in shape["stages"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: opts['{SVGAN_ENCODER_OPT}'] is malformed ({e})") from None


def load_stylegan2(path: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """Load a rosinality StyleGAN2 checkpoint's `g_ema` strictly (converted or training checkpoint).

    The checkpoint's `latent_avg` (w average, [512]), when present, is attached as `generator.latent_avg`
    (None otherwise) for truncation.
    """
    ckpt = safe_torch_load(path, map_location="cpu", allow_namespace=True)
    if not isinstance(ckpt, Mapping) or "g_ema" not in ckpt:
        found = ", ".join(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a rosinality StyleGAN2 checkpoint: no 'g_ema' (found {found})")
    state = ckpt["g_ema"]
    config = stylegan2_config_from_state(state, source=f"{path} g_ema")
    generator = Generator(config)
    load_state_strict(generator, state, f"{path} g_ema")
    latent_avg = ckpt.get("latent_avg")
    generator.latent_avg = None if latent_avg is None else latent_avg.detach().float().reshape(1, -1).to(device)
    return generator.eval().to(device)


def psp_opts(output_size: int) -> dict[str, Any]:
    """The `opts` fields pSp itself reads, for checkpoints svgan writes."""
    return {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "label_nc": 0, "output_size": output_size,
            "start_from_latent_avg": True, "learn_in_w": False, "n_styles": 2 * (output_size.bit_length() - 1) - 2}


def save_psp(path: str | os.PathLike, model: PSP, opts: Mapping[str, Any] | None = None) -> None:
    """Write `model` in the official pSp layout (atomically)."""
    opts = dict(psp_opts(model.resolution), **(opts or {}))
    encoder = model.encoder.config
    if (encoder.input_size, encoder.stages) != (PSPEncoderConfig.input_size, PSPEncoderConfig.stages):
        opts[SVGAN_ENCODER_OPT] = {"input_size": encoder.input_size, "stages": [list(s) for s in encoder.stages]}
    atomic_torch_save({"state_dict": model.state_dict(), "opts": opts, "latent_avg": model.latent_avg.clone()}, path)


def save_stylegan2(path: str | os.PathLike, generator: Generator, latent_avg: torch.Tensor | None = None) -> None:
    """Write `generator` as a converted rosinality checkpoint (`g_ema`, `latent_avg`), atomically."""
    ckpt: dict[str, Any] = {"g_ema": generator.state_dict()}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg.detach().reshape(-1).clone()
    atomic_torch_save(ckpt, path)
