"""The demo world's attribute reader R: a small CNN that reads a face's state and identity parameters back from
pixels, trained on rendered faces whose parameters are known (`face_world.render_dataset`).

R is the world's ground-truth instrument (issue 6, measurements): it reads the mouth opening and blink of frames
the StyleGAN2 renders, so motion transfer and identity preservation can be measured on generated video. How far
R can be trusted is itself measured, on freshly rendered faces it never saw (`validate_reader`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from svgan.models import CheckpointError, atomic_torch_save, safe_torch_load

from .renderer import STATE_FIELDS, FaceDataset, IdentityParams
from .stylegan2_trainer import to_images

READER_FORMAT = "svgan-attribute-reader/1"


def identity_fields() -> tuple[str, ...]:
    """Names of `identity_vector`'s entries (colours split into _r, _g, _b)."""
    names: list[str] = []
    for name, value in asdict(IdentityParams()).items():
        names += [f"{name}_{c}" for c in "rgb"] if isinstance(value, tuple) else [name]
    return tuple(names)


@dataclass
class ReaderConfig:
    size: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 128)
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


class AttributeReader(nn.Module):
    """64x64 face -> standardised (state, identity) parameters; `read` undoes the standardisation."""

    def __init__(self, config: ReaderConfig, n_outputs: int):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_ch = 3
        for width in config.widths:  # each stage halves the resolution
            layers += [nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            in_ch = width
        self.features = nn.Sequential(*layers)
        side = config.size // 2 ** len(config.widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * side * side, 256), nn.ReLU(),
                                  nn.Linear(256, n_outputs))
        self.register_buffer("mean", torch.zeros(n_outputs))
        self.register_buffer("std", torch.ones(n_outputs))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def read(self, rgb: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """uint8 faces [N, H, W, 3] -> (states [N, len(STATE_FIELDS)], identity vectors [N, ...])."""
        self.eval()
        outputs = []
        for start in range(0, len(rgb), batch):
            images = to_images(np.ascontiguousarray(rgb[start:start + batch]))
            if images.shape[-1] != self.config.size:
                images = F.interpolate(images, size=(self.config.size, self.config.size), mode="area")
            outputs.append((self(images) * self.std + self.mean).numpy())
        values = np.concatenate(outputs)
        return values[:, :len(STATE_FIELDS)], values[:, len(STATE_FIELDS):]


def _targets(data: FaceDataset) -> np.ndarray:
    return np.concatenate([data.states, data.identities], axis=1).astype(np.float32)


def train_reader(data: FaceDataset, config: ReaderConfig = ReaderConfig(),
                 progress: Callable[[int, float], None] = lambda step, loss: None) -> AttributeReader:
    """Fit R with an MSE on standardised parameters, `config.epochs` passes over `data`."""
    targets = torch.from_numpy(_targets(data))
    torch.manual_seed(config.seed)
    reader = AttributeReader(config, targets.shape[1])
    reader.mean.copy_(targets.mean(0))
    reader.std.copy_(targets.std(0).clamp_min(1e-6))
    normalised = (targets - reader.mean) / reader.std
    steps_per_epoch = math.ceil(len(data.images) / config.batch_size)
    opt = torch.optim.Adam(reader.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    reader.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data.images), generator=generator)
        for k in range(steps_per_epoch):
            index = order[k * config.batch_size:(k + 1) * config.batch_size]
            loss = F.mse_loss(reader(to_images(data.images[index.numpy()])), normalised[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            progress(epoch * steps_per_epoch + k + 1, loss.item())
    return reader.eval()


def validate_reader(reader: AttributeReader, data: FaceDataset) -> dict[str, Any]:
    """R's accuracy on faces it never saw: per-field correlation and R² (1 = perfect, 0 = predicts the mean)."""
    states, identities = reader.read(data.images)
    predicted = np.concatenate([states, identities], axis=1)
    truth = _targets(data)
    names = STATE_FIELDS + identity_fields()
    report = {}
    for k, name in enumerate(names):
        residual = np.mean((predicted[:, k] - truth[:, k]) ** 2)
        variance = np.var(truth[:, k])
        report[name] = {"r2": round(float(1 - residual / variance), 4) if variance > 0 else None,
                        "corr": round(float(np.corrcoef(predicted[:, k], truth[:, k])[0, 1]), 4)
                        if variance > 0 else None}
    return report


def save_reader(path: Path, reader: AttributeReader) -> None:
    atomic_torch_save({"format": READER_FORMAT, "config": asdict(reader.config), "n_outputs": reader.mean.numel(),
                       "state": reader.state_dict()}, path)


def load_reader(path: Path) -> AttributeReader:
    blob = safe_torch_load(path)
    if not isinstance(blob, dict) or blob.get("format") != READER_FORMAT:
        raise CheckpointError(f"{path} is not an svgan attribute reader")
    config = blob["config"]
    reader = AttributeReader(ReaderConfig(**{**config, "widths": tuple(config["widths"])}), int(blob["n_outputs"]))
    reader.load_state_dict(blob["state"])
    return reader.eval()
