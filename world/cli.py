"""`svgan-world`: build the demo world (issue 6): its StyleGAN2, its pSp, its training video and identities.

    svgan-world train-stylegan runs/world/stylegan2 --minutes 30      # resumable chunks: add --resume
    svgan-world train-psp runs/world/psp --stylegan runs/world/stylegan2/stylegan2.pt --minutes 15
    svgan-world video runs/world/actor.mp4 --seconds 180
    svgan-world identity assets/demo_world/new_actor.png --seed 7

Every long command prints progress on stderr, saves atomically, and on Ctrl-C finishes its step and saves.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from svgan.atomic import atomic_write
from svgan.cli_types import Device, FiniteRange, IntList, OutputDir, OutputFile, write_summary
from svgan.errors import StopFlag, UserError, fail, one_line_errors
from svgan.training.trainer import TrainingDiverged

from .attribute_reader import ReaderConfig, load_reader, save_reader, train_reader, validate_reader
from .chunked_run import ChunkedRun
from .renderer import (StateParams, random_identity, render_dataset, render_face, render_video, save_image,
                         talking_trajectory)
from .psp_trainer import PSPTrainConfig, start_psp_run
from .stylegan2_trainer import StyleGAN2TrainConfig, load_dataset, save_dataset, start_stylegan2_run

GAN_DEFAULTS = StyleGAN2TrainConfig()
PSP_DEFAULTS = PSPTrainConfig()
VALIDATION_SEED = 999_999  # faces no training set draws (those use small seeds)
SETTINGS = {"show_default": True, "help_option_names": ["-h", "--help"]}


@click.group(context_settings=SETTINGS)
def main() -> None:
    """Train and render the demo world: procedural cartoon faces with their own StyleGAN2 and pSp."""


def _stop_flag(tool: str) -> StopFlag:
    stop = StopFlag(notice=lambda: tqdm.write(f"{tool}: interrupt received; saving after this step "
                                              "(Ctrl-C again to abort)", file=sys.stderr))
    signal.signal(signal.SIGINT, stop.handle)
    return stop


def _torch_setup(threads: int | None, device: str = "cpu") -> str:
    """Thread count and device for a training command; an unusable device is a one-line error."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        kind = torch.device(device).type
    except RuntimeError as e:
        raise UserError(f"--device {device!r}: {e}") from None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: this torch sees no CUDA GPU")
        torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its fastest kernels
    elif kind != "cpu":
        raise UserError(f"--device {device}: only cpu and cuda are supported")
    return device


def _train_chunks(tool: str, trainer: ChunkedRun, iterations: int, minutes: float | None, json_out: Path | None,
                  postfix: Callable[[Any], dict[str, str]]) -> None:
    """Run `trainer` for one chunk with a progress bar and graceful Ctrl-C; exit 130 when interrupted."""
    stop = _stop_flag(tool)
    bar = tqdm(total=iterations, initial=trainer.iteration, desc=tool.split()[-1], unit="it", file=sys.stderr,
               dynamic_ncols=True)

    def progress(stats: Any) -> None:
        bar.update(1)
        bar.set_postfix(postfix(stats), refresh=False)

    try:
        reason = trainer.run(iterations, minutes=minutes, should_stop=stop, progress=progress)
    except TrainingDiverged as e:
        fail(tool, f"{e}; the last checkpoint in {trainer.run_dir} is kept")
    finally:
        bar.close()
    write_summary(json_out, {"run": str(trainer.run_dir), "iteration": trainer.iteration, "stopped": reason,
                              "config": asdict(trainer.config)})
    if reason == "stopped":
        fail(tool, f"interrupted; checkpoint written at iteration {trainer.iteration} (continue with --resume)",
             code=130)


@main.command("train-stylegan", context_settings=SETTINGS)
@click.argument("run_dir", type=OutputDir())
@click.option("--iterations", type=click.IntRange(min=1), default=100_000,
              help="Total iterations of the run (one D and one G step each).")
@click.option("--minutes", type=FiniteRange(min=0, min_open=True), default=None,
              help="Stop (with a checkpoint) after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR bit for bit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=GAN_DEFAULTS.batch_size,
              help="Images per D and G step.")
@click.option("--dataset-size", type=click.IntRange(min=1), default=GAN_DEFAULTS.dataset_size,
              help="Faces rendered once into the run.")
@click.option("--dataset", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Train on these faces (from `svgan-world dataset`) instead of rendering --dataset-size.")
@click.option("--eye-weight", type=FiniteRange(min=0), default=GAN_DEFAULTS.eye_weight,
              help="Weight of a second discriminator that sees only the eye box (0 = none).")
@click.option("--init", "init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start G from this stylegan2.pt (e.g. one trained elsewhere); D starts fresh.")
@click.option("--r1-gamma", default=GAN_DEFAULTS.r1_gamma, type=FiniteRange(min=0),
              help="Weight of the R1 penalty on real images.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), default=GAN_DEFAULTS.lr,
              help="Adam learning rate (D's is corrected for lazy R1).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=GAN_DEFAULTS.checkpoint_every,
              help="Iterations between checkpoints.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Processes that render the dataset.")
@click.option("--device", default="cpu", type=Device(), help="Where to train: cpu, cuda or cuda:N.")
@click.option("--seed", type=click.IntRange(min=0), default=GAN_DEFAULTS.seed,
              help="Seeds the dataset, initialisation and noise.")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write a JSON summary here ('-' for stdout).")
@one_line_errors("svgan-world train-stylegan")
def train_stylegan(run_dir: Path, iterations: int, minutes: float | None, resume: bool, batch_size: int,
                   dataset_size: int, dataset: Path | None, eye_weight: float, init: Path | None, r1_gamma: float,
                   lr: float, checkpoint_every: int, threads: int | None, workers: int, device: str, seed: int,
                   json_out: Path | None) -> None:
    """Train the demo world's 64x64 StyleGAN2 (non-saturating loss + lazy R1, EMA) in RUN_DIR.

    Writes checkpoint.pt, metrics.csv, samples.png and stylegan2.pt (the EMA generator in rosinality's
    format) at every checkpoint. A run resumes on the device it was trained on; on another device it
    continues, but not bit for bit.
    """
    device = _torch_setup(threads, device)
    config = StyleGAN2TrainConfig(batch_size=batch_size, dataset_size=dataset_size, r1_gamma=r1_gamma, lr=lr,
                                  checkpoint_every=checkpoint_every, seed=seed, eye_weight=eye_weight,
                                  init=None if init is None else str(init))
    quiet = resume or dataset is not None
    with tqdm(total=dataset_size, desc="render faces", unit="img", file=sys.stderr, disable=quiet) as bar:
        trainer = start_stylegan2_run(run_dir, config, resume=resume, progress=lambda done: bar.update(1),
                                      device=device, dataset=dataset, workers=workers)
    _train_chunks("svgan-world train-stylegan", trainer, iterations, minutes, json_out, lambda stats: dict(
        kimg=f"{stats.kimg:.1f}", D=f"{stats.loss_d:.3f}", G=f"{stats.loss_g:.3f}"))


@main.command("train-psp", context_settings=SETTINGS)
@click.argument("run_dir", type=OutputDir())
@click.option("--stylegan", "stylegan_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The world's StyleGAN2 (stylegan2.pt from train-stylegan): the frozen decoder.")
@click.option("--iterations", type=click.IntRange(min=1), default=20_000, help="Total iterations of the run.")
@click.option("--minutes", type=FiniteRange(min=0, min_open=True), default=None,
              help="Stop (with a checkpoint) after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR bit for bit.")
@click.option("--batch-size", type=click.IntRange(min=1), default=PSP_DEFAULTS.batch_size,
              help="Half generator samples, half rendered faces.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), default=PSP_DEFAULTS.lr,
              help="Adam learning rate of the encoder.")
@click.option("--feature-weight", type=FiniteRange(min=0), default=PSP_DEFAULTS.feature_weight,
              help="Pixel-loss weight inside the eye and mouth boxes of the aligned crop (1 = plain L2).")
@click.option("--w-norm", type=FiniteRange(min=0), default=PSP_DEFAULTS.lambda_w_norm,
              help="Weight of pSp's w_norm pull of rendered faces' codes towards latent_avg.")
@click.option("--dataset-size", type=click.IntRange(min=1), default=PSP_DEFAULTS.dataset_size,
              help="Rendered faces the encoder learns from.")
@click.option("--init", "init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start the encoder from this psp.pt (fine-tuning it for a newer --stylegan).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=PSP_DEFAULTS.checkpoint_every,
              help="Iterations between checkpoints.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Processes that render the faces.")
@click.option("--device", default="cpu", type=Device(), help="Where to train: cpu, cuda or cuda:N.")
@click.option("--seed", type=click.IntRange(min=0), default=PSP_DEFAULTS.seed,
              help="Seeds the rendered faces, initialisation and batches.")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write a JSON summary here ('-' for stdout).")
@one_line_errors("svgan-world train-psp")
def train_psp(run_dir: Path, stylegan_path: Path, iterations: int, minutes: float | None, resume: bool,
              batch_size: int, lr: float, feature_weight: float, w_norm: float, dataset_size: int, init: Path | None,
              checkpoint_every: int, threads: int | None, workers: int, device: str, seed: int,
              json_out: Path | None) -> None:
    """Train a small pSp encoder for the world's StyleGAN2 in RUN_DIR (latent + pixel losses).

    Writes checkpoint.pt, metrics.csv, reconstructions.png and psp.pt (official pSp layout) at every checkpoint.
    """
    device = _torch_setup(threads, device)
    config = PSPTrainConfig(batch_size=batch_size, lr=lr, feature_weight=feature_weight, lambda_w_norm=w_norm,
                            dataset_size=dataset_size, checkpoint_every=checkpoint_every, seed=seed,
                            init=None if init is None else str(init))
    with tqdm(total=config.dataset_size, desc="render faces", unit="img", file=sys.stderr) as bar:
        trainer = start_psp_run(run_dir, stylegan_path, config, resume=resume, progress=lambda done: bar.update(1),
                                device=device, workers=workers)
    _train_chunks("svgan-world train-psp", trainer, iterations, minutes, json_out, lambda stats: dict(
        loss=f"{stats.loss:.4f}", latent=f"{stats.latent:.4f}", pix=f"{stats.pixel_rendered:.4f}"))


@main.command("dataset", context_settings=SETTINGS)
@click.argument("out", type=OutputFile())
@click.option("--faces", type=click.IntRange(min=1), default=GAN_DEFAULTS.dataset_size,
              help="How many faces (random identity x random state).")
@click.option("--size", type=click.IntRange(min=8), default=GAN_DEFAULTS.size, help="Face side in pixels.")
@click.option("--seed", type=click.IntRange(min=0), default=GAN_DEFAULTS.seed, help="Seeds identities and states.")
@click.option("--workers", type=click.IntRange(min=1), default=1, help="Processes that render.")
@one_line_errors("svgan-world dataset")
def dataset_command(out: Path, faces: int, size: int, seed: int, workers: int) -> None:
    """Render a training set of faces with their parameters to OUT (.npz), for train-stylegan --dataset and
    train-reader --dataset; the same seed gives the same faces whatever --workers."""
    with tqdm(total=faces, desc="render faces", unit="img", file=sys.stderr) as bar:
        data = render_dataset(faces, size, seed, lambda done: bar.update(1), workers)
    save_dataset(out, data)
    click.echo(f"wrote {out}: {faces} faces of {size}x{size}", err=True)


@main.command("video", context_settings=SETTINGS)
@click.argument("out", type=OutputFile())
@click.option("--seconds", type=FiniteRange(min=0, min_open=True), default=180.0,
              help="Length of the talking sequence.")
@click.option("--fps", type=FiniteRange(min=0, min_open=True), default=25.0, help="Frame rate.")
@click.option("--size", type=click.IntRange(min=8), default=64, help="Frame side in pixels.")
@click.option("--identity-seed", type=click.IntRange(min=0), default=0, help="Which actor (random_identity's seed).")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seeds the talking trajectory.")
@one_line_errors("svgan-world video")
def video(out: Path, seconds: float, fps: float, size: int, identity_seed: int, seed: int) -> None:
    """Render one actor talking (speech-like mouth, blinks, gaze, head sway) to an MP4, and its per-frame state
    parameters beside it (OUT with .states.npy) as ground truth."""
    states, _ = talking_trajectory(seconds, fps=fps, seed=seed)
    rendered = render_video(random_identity(identity_seed), tqdm(states, desc="render", unit="frame",
                                                                  file=sys.stderr), size, out, fps=fps)
    atomic_write(out.with_suffix(".states.npy"), lambda f: np.save(f, states))
    click.echo(f"wrote {out}: {rendered} frames", err=True)


@main.command("identity", context_settings=SETTINGS)
@click.argument("out", type=OutputFile())
@click.option("--seed", type=click.IntRange(min=0), default=7, help="Which actor (random_identity's seed).")
@click.option("--size", type=click.IntRange(min=8), default=64, help="Image side in pixels.")
@one_line_errors("svgan-world identity")
def identity(out: Path, seed: int, size: int) -> None:
    """Render an actor in a neutral state, as an aligned identity image for `svgan-stream --aligned`."""
    save_image(out, render_face(random_identity(seed), StateParams(), size))


@main.command("train-reader", context_settings=SETTINGS)
@click.argument("out", type=OutputFile())
@click.option("--dataset", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rendered faces to learn from (a train-stylegan run's dataset.npz); default: render --size-n.")
@click.option("--size-n", type=click.IntRange(min=1), default=30_000,
              help="Faces to render when no --dataset is given.")
@click.option("--epochs", type=click.IntRange(min=1), default=ReaderConfig.epochs, help="Passes over the faces.")
@click.option("--validate", type=click.IntRange(min=1), default=2_000,
              help="Fresh faces (never trained on) to measure the reader on.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write the validation report as JSON here ('-' for stdout).")
@one_line_errors("svgan-world train-reader")
def train_reader_command(out: Path, dataset: Path | None, size_n: int, epochs: int, validate: int,
                         threads: int | None, json_out: Path | None) -> None:
    """Train the attribute reader R (face -> state and identity parameters) that the measurements use."""
    _torch_setup(threads)
    config = ReaderConfig(epochs=epochs)
    data = load_dataset(dataset) if dataset else render_dataset(size_n, config.size, seed=config.seed)
    steps = epochs * -(-len(data.images) // config.batch_size)
    with tqdm(total=steps, desc="train-reader", unit="step", file=sys.stderr) as bar:
        reader = train_reader(data, config, progress=lambda step, loss: (bar.update(1),
                                                                           bar.set_postfix(loss=f"{loss:.4f}")))
    save_reader(out, reader)
    report = validate_reader(reader, render_dataset(validate, config.size, seed=VALIDATION_SEED))
    write_summary(json_out, {"reader": str(out), "faces": len(data.images), "epochs": epochs,
                              "validation_faces": validate, "validation": report})


@main.command("measure", context_settings=SETTINGS)
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The world's exported bundle.")
@click.option("--reader", "reader_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The attribute reader (train-reader).")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The training video (svgan-world video); its .states.npy beside it gives the true states.")
@click.option("--video-frames", type=click.IntRange(min=1), default=1500,
              help="Frames of --video to use for the embedding check.")
@click.option("--stream", "streams", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A video written by svgan-stream (e.g. make demo's out.mp4): how much its face moves. "
                   "Repeatable.")
@click.option("--actors", default="101,102,103,104,105,106,107,108", type=IntList(min=0),
              help="Seeds of the unseen actors.")
@click.option("--frames", type=click.IntRange(min=1), default=1500, help="Frames per generated stream.")
@click.option("--samples", type=click.IntRange(min=1), default=2000,
              help="StyleGAN2 samples (and rendered faces) for the fidelity check.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seeds G's trajectory and the StyleGAN2 samples.")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default="-",
              help="Write the report as JSON here ('-' for stdout).")
@one_line_errors("svgan-world measure")
def measure(bundle_dir: Path, reader_path: Path, video: Path | None, video_frames: int, streams: tuple[Path, ...],
            actors: tuple[int, ...], frames: int, samples: int, seed: int, json_out: Path) -> None:
    """Generator fidelity, motion transfer (offset trick vs naive offset) and identity preservation, read from
    rendered frames by the attribute reader."""
    from svgan.runtime.backends import make_backend
    from svgan.runtime.bundle import load_bundle
    from svgan.runtime.video import VideoReader

    from . import measure as wm

    bundle = load_bundle(bundle_dir)
    backend = make_backend("ort", bundle)
    reader = load_reader(reader_path)
    cast = wm.new_actors(list(actors), bundle.encoder_input_size)
    report: dict = {"bundle": str(bundle_dir), "reader": str(reader_path)}
    if video is not None:
        states = np.load(video.with_suffix(".states.npy"))[:video_frames]
        with VideoReader(video) as clip:
            frames_rgb = np.stack([f for _, f in zip(range(len(states)), clip)])
            fps = clip.fps
        report["embedding"] = wm.embedding_report(backend, reader, frames_rgb, states[:len(frames_rgb)], fps)
    for stream in streams:
        with VideoReader(stream) as clip:
            signals = wm.motion_signals(reader, np.stack(list(clip)))
            report.setdefault("streams", {})[str(stream)] = {"frames": len(signals),
                                                             **wm.motion_amplitude(signals, clip.fps)}
    with tqdm(total=3, desc="measure", file=sys.stderr) as bar:
        report["generator"] = wm.generator_report(backend, bundle, reader, samples, seed)
        bar.update(1)
        report["motion_transfer"] = wm.transfer_report(backend, bundle, reader, cast, frames, seed)
        bar.update(1)
        report["identity"] = wm.identity_report(backend, bundle, reader, cast[::2], frames, seed)
        bar.update(1)
    write_summary(json_out, report)


if __name__ == "__main__":
    main()
