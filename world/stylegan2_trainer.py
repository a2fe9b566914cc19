"""Training a small StyleGAN2 on the demo world (issue 6): the network the paper takes pretrained on FFHQ.

The generator is the foundation's `Generator` (same class, same rosinality layout) with reduced widths; the
discriminator is `models.stylegan2_discriminator.Discriminator`. The objective is StyleGAN2's: the
non-saturating logistic loss for both players, R1 on real images every `d_reg_every` critic steps (lazy
regularisation, with Adam's hyper-parameters corrected as in the paper), style mixing, and an EMA of G whose
half-life is `ema_kimg` thousand images (ramped up at the start, as StyleGAN2-ADA does). Path-length
regularisation is left out. The data are faces from `face_world.render_dataset`, rendered once into the run.

Shut eyes are a few pixels of a 64x64 face, and a whole-image D let G drop them (4.6% of samples against 22% of
the renders, at 145 and at 277 kimg alike). With `eye_weight` > 0 a second discriminator D_eye sees only the eye
box of `face_world.FEATURE_BOXES`, enlarged to half the image side, and G's loss adds its non-saturating term with
that weight; D_eye has its own R1 and its own minibatch-stddev feature, so it sees a lack of shut eyes directly.

A run directory holds `checkpoint.pt` (everything, written atomically; a run resumes bit for bit),
`metrics.csv`, `dataset.npz`, `config.json`, and on every checkpoint `stylegan2.pt` (the EMA generator as a
converted rosinality checkpoint with its `latent_avg`, what `load_stylegan2` reads) and `samples.png`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from svgan.array_files import read_npz
from svgan.atomic import atomic_write, atomic_write_text
from svgan.models import Generator, RunError, StyleGAN2Config, atomic_torch_save, load_stylegan2, save_stylegan2
from svgan.models.stylegan2_discriminator import Discriminator
from svgan.training.trainer import TrainingDiverged

from .renderer import FEATURE_BOXES, FaceDataset, render_dataset, save_image
from .chunked_run import CHECKPOINT, ChunkedRun, random_state, run_state, set_random_state

DATASET = "dataset.npz"
EXPORTED = "stylegan2.pt"
SAMPLES = "samples.png"
RUN_FORMAT = "svgan-stylegan2-run/1"


@dataclass
class StyleGAN2TrainConfig:
    """Defaults: the demo world's 64x64 model (about 0.8 M generator weights), trainable on a laptop CPU."""

    size: int = 64
    style_dim: int = 128
    n_mlp: int = 4
    channels: tuple[int, ...] = (128, 128, 64, 32, 16)  # at 4, 8, 16, 32, 64
    batch_size: int = 16
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.1
    d_reg_every: int = 16
    mixing: float = 0.9
    ema_kimg: float = 5.0
    ema_rampup: float = 0.05
    eye_weight: float = 0.0  # weight of the eye-box discriminator D_eye in G's loss; 0 = no D_eye
    init: str | None = None  # a stylegan2.pt whose generator G and G_ema start from (D starts fresh)
    dataset_size: int = 30_000
    checkpoint_every: int = 250
    seed: int = 0

    @property
    def generator(self) -> StyleGAN2Config:
        return StyleGAN2Config(size=self.size, style_dim=self.style_dim, n_mlp=self.n_mlp,
                               channels=tuple(self.channels))

    @property
    def eye_discriminator(self) -> StyleGAN2Config:
        """D_eye's shape: the eye box resampled to half the image side, D's widths at those resolutions."""
        side = self.size // 2
        return StyleGAN2Config(size=side, style_dim=self.style_dim, channels=tuple(self.channels[:-1]))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "StyleGAN2TrainConfig":
        values = dict(values)
        values["channels"] = tuple(values["channels"])
        values["betas"] = tuple(values["betas"])
        return cls(**values)


@dataclass
class GANStats:
    iteration: int
    kimg: float
    loss_d: float
    loss_g: float
    r1: float
    real_score: float
    fake_score: float
    loss_d_eye: float  # nan without D_eye
    seconds: float


def to_images(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] (an array, or a tensor on any device) -> float [B, 3, H, W] in [-1, 1]."""
    if isinstance(rgb, np.ndarray):
        if not rgb.flags.writeable:  # e.g. np.asarray of a PIL image: torch only wraps writable memory
            rgb = rgb.copy()
        rgb = torch.from_numpy(rgb)
    return rgb.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3], clipped."""
    return images.detach().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def eye_crop(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] -> the eye box of `FEATURE_BOXES` bilinearly resampled to [B, 3, S/2, S/2] (D_eye's input)."""
    top, bottom, left, right = FEATURE_BOXES[0]
    side = images.shape[-1]
    box = images[..., round(top * side):round(bottom * side), round(left * side):round(right * side)]
    return F.interpolate(box, size=(side // 2, side // 2), mode="bilinear", align_corners=False)


def image_grid(rgb: np.ndarray, columns: int) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one [rows*H, columns*W, 3] image (missing cells black)."""
    n, h, w, _ = rgb.shape
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * h, columns * w, 3), np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = rgb[k]
    return grid


def load_dataset(path: Path) -> FaceDataset:
    """Faces written by `save_dataset` (`svgan-world dataset`, or a StyleGAN2 run's dataset.npz)."""
    arrays = read_npz(path, "face dataset")
    missing = [name for name in ("images", "states", "identities") if name not in arrays]
    if missing:
        raise RunError(f"{path} is not a face dataset written by svgan-world (no '{missing[0]}' array)")
    images, states, identities = arrays["images"], arrays["states"], arrays["identities"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise RunError(f"{path}: 'images' must be uint8 [N, size, size, 3], got {images.dtype} {list(images.shape)}")
    if len(images) == 0 or len(states) != len(images) or len(identities) != len(images):
        raise RunError(f"{path}: 'images', 'states' and 'identities' must hold the same number (> 0) of faces")
    return FaceDataset(images, states, identities)


def save_dataset(path: Path, data: FaceDataset) -> None:
    atomic_write(path, lambda f: np.savez(f, images=data.images, states=data.states, identities=data.identities))


class StyleGAN2Trainer(ChunkedRun):
    """Owns G, D (and D_eye), G_ema, their optimisers and the random stream of one run on one device; `run` (from
    `ChunkedRun`) is the loop.

    Random choices that steer the loop (style mixing, where to cut) come from torch's CPU stream, tensors from the
    device's; the run seeds and saves both, so a run resumes bit for bit on the device it was written on.
    """

    stats_type = GANStats

    def __init__(self, data: FaceDataset, run_dir: Path, config: StyleGAN2TrainConfig,
                 device: str | torch.device = "cpu"):
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_every = config.checkpoint_every
        self.device = torch.device(device)
        self.real = torch.from_numpy(data.images).to(self.device)  # uint8: a 100k-face set is 1.2 GB
        # Read before seeding, so that everything else starts as in a run without --init.
        initial = None if config.init is None else _initial_generator(Path(config.init), config.generator)
        torch.manual_seed(config.seed)  # the run owns the global streams: noise inputs draw from them
        self.G = Generator(config.generator).use_modconv("export").to(self.device)
        self.G_ema = Generator(config.generator).use_modconv("export").eval().requires_grad_(False).to(self.device)
        if initial is not None:
            self.G.load_state_dict(initial)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas)
        self.D = Discriminator(config.generator).to(self.device)
        self.opt_d = self._d_optimiser(self.D)
        self.D_eye = self.opt_d_eye = None
        if config.eye_weight > 0:
            self.D_eye = Discriminator(config.eye_discriminator).to(self.device)
            self.opt_d_eye = self._d_optimiser(self.D_eye)
        self.iteration = 0

    def _d_optimiser(self, d: Discriminator) -> torch.optim.Adam:
        """Adam with lr and betas corrected for lazy R1 (every `d_reg_every` steps), as in StyleGAN2."""
        c = self.config
        ratio = c.d_reg_every / (c.d_reg_every + 1)
        return torch.optim.Adam(d.parameters(), lr=c.lr * ratio, betas=(c.betas[0] ** ratio, c.betas[1] ** ratio))

    def _modules(self) -> dict[str, Any]:
        modules = {"G": self.G, "D": self.D, "G_ema": self.G_ema, "opt_g": self.opt_g, "opt_d": self.opt_d}
        if self.D_eye is not None:
            modules.update(D_eye=self.D_eye, opt_d_eye=self.opt_d_eye)
        return modules

    # ---------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "config": asdict(self.config), "iteration": self.iteration,
                **random_state(self.device), **{name: m.state_dict() for name, m in self._modules().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self._modules().items():
            module.load_state_dict(state[name])
        set_random_state(state, self.device)
        self.iteration = int(state["iteration"])

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.state_dict(), self.run_dir / CHECKPOINT)
        with torch.no_grad():
            z = torch.randn(10_000, self.config.style_dim, generator=torch.Generator().manual_seed(1))
            latent_avg = self.G_ema.mapping(z.to(self.device)).mean(0)
        save_stylegan2(self.run_dir / EXPORTED, self.G_ema, latent_avg)
        self.save_samples()

    @torch.no_grad()
    def save_samples(self, n: int = 32) -> None:
        """A grid of EMA samples from fixed z (the same faces at every checkpoint), constant noise."""
        z = torch.randn(n, self.config.style_dim, generator=torch.Generator().manual_seed(self.config.seed + 3))
        images = self.G_ema([z.to(self.device)], randomize_noise=False)[0]
        save_image(self.run_dir / SAMPLES, image_grid(to_uint8(images), 8))

    # ----------------------------------------------------------------------------------------------- steps

    def _real_batch(self) -> torch.Tensor:
        index = torch.randint(len(self.real), (self.config.batch_size,), device=self.device)
        return to_images(self.real[index])

    def _fake(self, batch: int) -> torch.Tensor:
        """G's images from fresh z; with probability `mixing` two z switch at a random style (style mixing)."""
        c = self.config
        if torch.rand(()) < c.mixing:
            z = torch.randn(2, batch, c.style_dim, device=self.device)
            inject = int(torch.randint(1, self.G.n_styles, ()))
            return self.G([z[0], z[1]], inject_index=inject)[0]
        return self.G([torch.randn(batch, c.style_dim, device=self.device)])[0]

    def _d_update(self, d: Discriminator, opt: torch.optim.Adam, real: torch.Tensor,
                  fake: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor, torch.Tensor]:
        """One logistic-loss step of `d` and, every `d_reg_every` steps, its lazy R1 step on `real`.
        Returns (loss, R1 or nan, real scores, fake scores)."""
        fake_score, real_score = d(fake), d(real)
        loss = F.softplus(fake_score).mean() + F.softplus(-real_score).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        r1 = float("nan")
        if self.iteration % self.config.d_reg_every == 0:
            real = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
            penalty = grad.pow(2).flatten(1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            (self.config.r1_gamma / 2 * penalty * self.config.d_reg_every).backward()
            opt.step()
            r1 = penalty.item()
        return loss, r1, real_score, fake_score

    def _d_step(self) -> tuple[float, float, float, float, float]:
        real = self._real_batch()
        with torch.no_grad():
            fake = self._fake(real.shape[0])
        loss, r1, real_score, fake_score = self._d_update(self.D, self.opt_d, real, fake)
        loss_eye = float("nan")
        if self.D_eye is not None:
            loss_eye = self._d_update(self.D_eye, self.opt_d_eye, eye_crop(real), eye_crop(fake))[0].item()
        return loss.item(), r1, real_score.mean().item(), fake_score.mean().item(), loss_eye

    def _g_step(self) -> float:
        discriminators = [d for d in (self.D, self.D_eye) if d is not None]
        for d in discriminators:
            d.requires_grad_(False)
        fake = self._fake(self.config.batch_size)
        loss = F.softplus(-self.D(fake)).mean()
        if self.D_eye is not None:
            loss = loss + self.config.eye_weight * F.softplus(-self.D_eye(eye_crop(fake))).mean()
        for d in discriminators:
            d.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.item()

    def _update_ema(self) -> None:
        c = self.config
        images_seen = (self.iteration + 1) * c.batch_size
        half_life = min(c.ema_kimg * 1000, images_seen * c.ema_rampup)
        beta = 0.5 ** (c.batch_size / max(half_life, 1e-8))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - beta)
            for ema_buf, buf in zip(self.G_ema.buffers(), self.G.buffers()):
                ema_buf.copy_(buf)

    def train_iteration(self) -> GANStats:
        start = time.perf_counter()
        loss_d, r1, real_score, fake_score, loss_d_eye = self._d_step()
        loss_g = self._g_step()
        self._update_ema()
        if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
            raise TrainingDiverged(f"loss became non-finite at iteration {self.iteration + 1} "
                                   f"(D {loss_d}, G {loss_g})")
        self.iteration += 1
        return GANStats(self.iteration, self.iteration * self.config.batch_size / 1000, loss_d, loss_g, r1,
                        real_score, fake_score, loss_d_eye, time.perf_counter() - start)


def _initial_generator(path: Path, shape: StyleGAN2Config) -> dict[str, torch.Tensor]:
    """The weights of the generator in `path` (a stylegan2.pt), which must have the shape this run trains."""
    generator = load_stylegan2(path)
    if generator.config != shape:
        raise RunError(f"--init {path} is a {generator.config.size}x{generator.config.size} generator of widths "
                       f"{generator.config.channels}; this run trains {shape.size}x{shape.size}, {shape.channels}")
    return generator.state_dict()


def start_stylegan2_run(run_dir: Path, config: StyleGAN2TrainConfig, resume: bool = False,
                        progress: Callable[[int], None] = lambda done: None, device: str | torch.device = "cpu",
                        dataset: Path | None = None, workers: int = 1) -> StyleGAN2Trainer:
    """A new run in `run_dir` on the faces in `dataset` (an .npz from `save_dataset`; rendered with `workers`
    processes when None), or the run stored there when `resume`."""
    run_dir = Path(run_dir)
    state = run_state(run_dir, RUN_FORMAT, resume, "StyleGAN2")
    if state is not None:
        trainer = StyleGAN2Trainer(load_dataset(run_dir / DATASET), run_dir,
                                   StyleGAN2TrainConfig.from_dict(state["config"]), device)
        trainer.load_state_dict(state)
        return trainer
    run_dir.mkdir(parents=True, exist_ok=True)
    if dataset is None:
        data = render_dataset(config.dataset_size, config.size, config.seed, progress, workers)
    else:
        data = load_dataset(dataset)
        if data.images.shape[1:3] != (config.size, config.size):
            raise RunError(f"{dataset} holds {data.images.shape[1]}x{data.images.shape[2]} faces; "
                           f"this model trains on {config.size}x{config.size}")
        config = replace(config, dataset_size=len(data.images))
    save_dataset(run_dir / DATASET, data)
    atomic_write_text(run_dir / "config.json", json.dumps(asdict(config), indent=2))
    return StyleGAN2Trainer(data, run_dir, config, device)
