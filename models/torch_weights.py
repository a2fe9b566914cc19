"""A bundle's PyTorch weights: G's EMA weights and the whole pSp in one safetensors file (DESIGN §8).

The ONNX graphs of a bundle hold constant-folded weights (equalised-lr scales multiplied in, BatchNorm folded
into convolutions, noise multiplied by its strength), which PyTorch cannot load back. So a bundle that the
torch backend streams from also carries the weights themselves, as exported:

* `generator.*` — the run's EMA temporal generator G (`TemporalGenerator.state_dict()`);
* `psp.*` — pSp's state dict in the official key layout (`encoder.*`, `decoder.*` incl. mapping and noise
  buffers), plus `psp.latent_avg`.

The file's header metadata (plain strings, readable without loading a tensor) records the three configs as
JSON, so the file alone rebuilds both networks. safetensors rather than a pickle: loading it runs no code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import torch

from .checkpoints import CheckpointError, load_state_strict
from .psp import PSP
from .psp_encoder import PSPEncoderConfig
from .stylegan2 import StyleGAN2Config
from .temporal_generator import TemporalGenerator, TemporalGeneratorConfig

FORMAT = "svgan-torch-weights/1"
GENERATOR_PREFIX = "generator."
PSP_PREFIX = "psp."
LATENT_AVG = "psp.latent_avg"


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the config dataclasses hold (`channels`, `blur_kernel`, `stages`)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _config(cls: type, text: str) -> Any:
    values = json.loads(text)
    return cls(**{k: _tuples(v) for k, v in values.items()})


def save_torch_weights(path: str | os.PathLike, generator: TemporalGenerator, psp: PSP) -> None:
    """Write G's and pSp's weights and configs to `path` (a `.safetensors` file)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {f"{GENERATOR_PREFIX}{k}": v for k, v in generator.state_dict().items()}
    tensors.update({f"{PSP_PREFIX}{k}": v for k, v in psp.state_dict().items()})
    tensors[LATENT_AVG] = psp.latent_avg
    # safetensors stores each tensor on its own: no views, no shared storage, CPU, contiguous.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {"format": FORMAT,
                "generator_config": json.dumps(dataclasses.asdict(generator.config)),
                "stylegan2_config": json.dumps(dataclasses.asdict(psp.decoder.config)),
                "encoder_config": json.dumps(dataclasses.asdict(psp.encoder.config))}
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as e:
        # safetensors reports a failed write (a full disk) as its own error with the errno in the text; make it
        # the OSError it is, so that the tools print it as one line naming the file
        found = re.search(r"os error (\d+)", str(e))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), os.fspath(path)) from None


def load_torch_weights(path: str | os.PathLike,
                       device: str | torch.device = "cpu") -> tuple[TemporalGenerator, PSP]:
    """G (eval, no grad) and pSp (eval) from a file written by `save_torch_weights`, loaded strictly."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an svgan torch-weights file (format {metadata.get('format')!r})")
    try:
        g_config = _config(TemporalGeneratorConfig, metadata["generator_config"])
        decoder_config = _config(StyleGAN2Config, metadata["stylegan2_config"])
        encoder_config = _config(PSPEncoderConfig, metadata["encoder_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its configs are missing or malformed ({e})") from None
    generator = TemporalGenerator(g_config)
    load_state_strict(generator, _strip(tensors, GENERATOR_PREFIX), f"{path} (generator)")
    psp = PSP(decoder_config, input_nc=encoder_config.input_nc, encoder_config=encoder_config)
    latent_avg = tensors.pop(LATENT_AVG, None)
    if latent_avg is None:
        raise CheckpointError(f"{path} has no {LATENT_AVG}")
    load_state_strict(psp, _strip(tensors, PSP_PREFIX), f"{path} (pSp)")
    psp.set_latent_avg(latent_avg)
    return generator.eval().requires_grad_(False).to(device), psp.eval().requires_grad_(False).to(device)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
