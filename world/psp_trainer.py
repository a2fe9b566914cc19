"""Training a small pSp encoder for the demo world's StyleGAN2 (issue 6): the paper's other pretrained network.

The official pSp is trained with L2 + LPIPS + ID (ArcFace) losses; no LPIPS or ArcFace weights exist here, so the
encoder E learns from what the world offers instead. Each batch is half generator samples, half rendered faces:

* generator samples: z -> mapping -> w (style-mixed like StyleGAN2's training) -> image; E must recover the W+
  code (latent loss, L2 on W+) and the image (pixel loss, L2);
* rendered faces (`face_world`, the images the encoder meets in `svgan-embed` and `svgan-stream`): pixel loss
  through the frozen generator only, optionally plus pSp's `w_norm` pull of the code towards `latent_avg` (off by
  default, as in pSp's FFHQ encoder: it kept shut eyes out of the codes, see `lambda_w_norm`).

Mouth and eyes are a few percent of the pixels, so plain L2 hardly notices whether the mouth is open;
`feature_weight` > 1 weights the pixel loss up inside the renderer's eye and mouth boxes (a stand-in, chosen from
the world's known layout, for what LPIPS and the ID loss do for the official pSp).

The decoder is the StyleGAN2 run's EMA generator, frozen; `latent_avg` is its mean w, repeated over the styles,
as pSp's `start_from_latent_avg`. A run directory holds `checkpoint.pt`, `metrics.csv`, `config.json`, and on every
checkpoint `psp.pt` (official pSp layout: `load_psp` reads it) and `reconstructions.png` (rows of rendered faces
over their reconstructions).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from svgan.atomic import atomic_write_text
from svgan.models import (PSP, Generator, PSPEncoderConfig, RunError, atomic_torch_save, load_psp, load_stylegan2,
                          save_psp)
from svgan.training.trainer import TrainingDiverged

from .chunked_run import CHECKPOINT, ChunkedRun, random_state, run_state, set_random_state
from .renderer import FaceDataset, feature_weights, render_dataset, save_image
from .stylegan2_trainer import image_grid, to_images, to_uint8

EXPORTED = "psp.pt"
RECONSTRUCTIONS = "reconstructions.png"
RUN_FORMAT = "svgan-psp-run/1"


@dataclass
class PSPTrainConfig:
    """Defaults: the demo world's encoder (64x64 input, about 1.6 M weights)."""

    stages: tuple[tuple[int, int, int], ...] = ((32, 32, 2), (32, 48, 2), (48, 64, 2), (64, 64, 2))
    batch_size: int = 16
    lr: float = 3e-4
    lambda_latent: float = 1.0
    lambda_pixel: float = 1.0
    # pSp's FFHQ encoder trains without w_norm. 0.005 (pSp's value for other tasks) kept the demo world's shut eyes
    # out of reach: the codes that close the eyes lie farther from latent_avg than the pixels gained are worth.
    lambda_w_norm: float = 0.0
    feature_weight: float = 1.0  # pixel-loss weight inside face_world.FEATURE_BOXES (eyes, mouth); 1 = plain L2
    mixing: float = 0.5
    dataset_size: int = 10_000
    checkpoint_every: int = 250
    seed: int = 0
    init: str | None = None  # a psp.pt whose encoder this run starts from (fine-tuning for a newer decoder)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PSPTrainConfig":
        values = dict(values)
        values["stages"] = tuple(tuple(stage) for stage in values["stages"])
        return cls(**values)


@dataclass
class PSPStats:
    iteration: int
    loss: float
    latent: float
    pixel_generated: float
    pixel_rendered: float
    seconds: float


def build_psp(decoder: Generator, config: PSPTrainConfig) -> PSP:
    """A pSp whose decoder is `decoder` (copied) and whose latent_avg is the decoder's mean w."""
    encoder = PSPEncoderConfig(input_size=decoder.resolution, stages=config.stages)
    psp = PSP(decoder.config, encoder_config=encoder)
    psp.decoder.load_state_dict(decoder.state_dict())
    if decoder.latent_avg is None:
        raise RunError("the StyleGAN2 checkpoint has no latent_avg; write it with svgan-world train-stylegan")
    psp.set_latent_avg(decoder.latent_avg)
    psp.decoder.use_modconv("export").requires_grad_(False).eval()
    return psp


def _initial_encoder(path: Path, encoder: nn.Module, shape: PSPEncoderConfig) -> dict[str, torch.Tensor]:
    """The weights of `encoder` (read from `path`), which must have the shape this run trains."""
    if encoder.config != shape:
        raise RunError(f"--init {path}: its encoder ({encoder.config.input_size}x{encoder.config.input_size}, "
                       f"stages {encoder.config.stages}, {encoder.config.style_dim}-d styles) is not the one this "
                       "run trains")
    return encoder.state_dict()


class PSPTrainer(ChunkedRun):
    stats_type = PSPStats

    def __init__(self, decoder: Generator, data: FaceDataset, run_dir: Path, config: PSPTrainConfig,
                 stylegan_path: Path, device: str | torch.device = "cpu"):
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_every = config.checkpoint_every
        self.stylegan_path = stylegan_path
        self.device = torch.device(device)
        self.rendered = torch.from_numpy(data.images).to(self.device)
        initial = None if config.init is None else load_psp(config.init).encoder  # before seeding, as without it
        torch.manual_seed(config.seed)
        self.psp = build_psp(decoder, config).to(self.device)
        if initial is not None:
            self.psp.encoder.load_state_dict(_initial_encoder(Path(config.init), initial, self.psp.encoder.config))
        self.opt = torch.optim.Adam(self.psp.encoder.parameters(), lr=config.lr)
        weights = torch.from_numpy(feature_weights(self.psp.resolution, config.feature_weight))
        self.pixel_weights = (weights / weights.mean()).to(self.device)  # keeps lambda_pixel's scale
        self.iteration = 0

    def state_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "config": asdict(self.config), "stylegan": str(self.stylegan_path),
                "encoder": self.psp.encoder.state_dict(), "opt": self.opt.state_dict(),
                "iteration": self.iteration, **random_state(self.device)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.psp.encoder.load_state_dict(state["encoder"])
        self.opt.load_state_dict(state["opt"])
        set_random_state(state, self.device)
        self.iteration = int(state["iteration"])

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.state_dict(), self.run_dir / CHECKPOINT)
        save_psp(self.run_dir / EXPORTED, self.psp)
        self.save_reconstructions()

    @torch.no_grad()
    def save_reconstructions(self, n: int = 8) -> None:
        """Rendered faces (seeded, never the training ones' order) over their reconstructions, two row pairs."""
        self.psp.eval()
        faces = render_dataset(2 * n, self.psp.resolution, seed=self.config.seed + 1000).images
        recon = to_uint8(self.psp(to_images(faces).to(self.device), randomize_noise=False))
        rows = np.concatenate([faces[:n], recon[:n], faces[n:], recon[n:]])
        save_image(self.run_dir / RECONSTRUCTIONS, image_grid(rows, n))

    def _generated_batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, W+) from the frozen generator; half the codes mix two w at a random style."""
        decoder = self.psp.decoder
        with torch.no_grad():
            z = torch.randn(2 * batch, decoder.config.style_dim, device=self.device)
            w = decoder.mapping(z).view(2, batch, 1, -1)
            wplus = w[0].repeat(1, decoder.n_styles, 1)
            cut = torch.randint(1, decoder.n_styles, (batch,), device=self.device)
            mixed = ((torch.rand(batch, device=self.device) < self.config.mixing)[:, None]
                     & (torch.arange(decoder.n_styles, device=self.device) >= cut[:, None]))
            wplus = torch.where(mixed[..., None], w[1], wplus)
            return decoder.synthesize(wplus), wplus

    def _pixel_loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """L2, weighted up where the small features are (`feature_weight`), normalised to the plain L2's scale."""
        return ((recon - target).pow(2) * self.pixel_weights).mean()

    def train_iteration(self) -> PSPStats:
        start = time.perf_counter()
        c, psp = self.config, self.psp
        psp.encoder.train()
        half = c.batch_size // 2
        generated, target = self._generated_batch(half)
        index = torch.randint(len(self.rendered), (c.batch_size - half,), device=self.device)
        rendered = to_images(self.rendered[index])
        codes = psp.encode(torch.cat([generated, rendered]))
        recon = psp.decoder.synthesize(codes)
        latent = F.mse_loss(codes[:half], target)
        pixel_generated = self._pixel_loss(recon[:half], generated)
        pixel_rendered = self._pixel_loss(recon[half:], rendered)
        w_norm = (codes[half:] - psp.latent_avg).pow(2).sum(-1).mean()
        loss = (c.lambda_latent * latent + c.lambda_pixel * (pixel_generated + pixel_rendered)
                + c.lambda_w_norm * w_norm)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"loss became non-finite at iteration {self.iteration + 1}")
        self.iteration += 1
        return PSPStats(self.iteration, loss.item(), latent.item(), pixel_generated.item(), pixel_rendered.item(),
                        time.perf_counter() - start)


def start_psp_run(run_dir: Path, stylegan_path: Path, config: PSPTrainConfig, resume: bool = False,
                  progress=lambda done: None, device: str | torch.device = "cpu", workers: int = 1) -> PSPTrainer:
    """A new encoder run for the StyleGAN2 at `stylegan_path`, or the run stored in `run_dir` when `resume`."""
    run_dir = Path(run_dir)
    state = run_state(run_dir, RUN_FORMAT, resume, "pSp")
    if state is not None:
        config = PSPTrainConfig.from_dict(state["config"])
    decoder = load_stylegan2(stylegan_path)
    data = render_dataset(config.dataset_size, decoder.resolution, config.seed + 500, progress, workers)
    if state is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(
            {"train": asdict(config), "stylegan": str(Path(stylegan_path).resolve())}, indent=2))
    trainer = PSPTrainer(decoder, data, run_dir, config, Path(stylegan_path), device)
    if state is not None:
        trainer.load_state_dict(state)
    return trainer
