"""`svgan-embed VIDEO --psp CKPT -o DATA.npz`: a training video -> its W+ sequence (DESIGN §7)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from svgan.cli_types import FiniteRange, OutputFile, write_summary
from svgan.errors import UserError, one_line_errors
from svgan.models import load_psp
from svgan.runtime.domain import FRAME_OUTLIER_DB
from svgan.runtime.face_align import DEFAULT_SIGMA_SECONDS, smooth_params
from svgan.runtime.video import VideoReader, VideoSink

from .embed import (EmbedOptions, Embedding, aligned_frames, encode_frames, provenance,
                    save_embedding, track_faces)
from .synthetic import SyntheticConfig, make_sequence, save_npz

DEFAULTS = EmbedOptions()
SYNTHETIC = SyntheticConfig()


def _bar(desc: str, total: int | None) -> tqdm:
    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)


def _synthetic(config: SyntheticConfig, out: Path) -> dict:
    sequence = make_sequence(config)
    save_npz(out, sequence)
    return {"output": str(out), "frames": len(sequence["wplus"]), "fps": sequence["fps"], "n_styles": config.n_styles,
            "synthetic": True, "slow_drift_std": config.slow_drift_std, "moods": config.moods}


def _embed_video(video: Path, checkpoint: Path, out: Path, options: EmbedOptions, preview: Path | None) -> dict:
    with VideoReader(video) as reader:
        fps, estimate = reader.fps, reader.n_frames_estimate
    total = min(estimate, options.max_frames) if options.max_frames else estimate
    psp = load_psp(checkpoint, device=options.device)
    params = raw = interpolated = None
    if not options.aligned:
        with _bar("faces", total) as bar:
            raw = track_faces(video, options, progress=bar.update)
        params, interpolated = smooth_params(raw, fps, options.sigma_seconds)
    size = psp.input_size
    sink = VideoSink(preview, fps=fps, width=2 * size, height=size) if preview else None
    try:
        with _bar("pSp", len(raw) if raw is not None else total) as bar:
            wplus, psnr = encode_frames(psp, aligned_frames(video, options, params, size), options, sink,
                                        progress=bar.update)
    finally:
        if sink is not None:
            sink.close()
    embedding = Embedding(wplus, fps, params, raw, interpolated, provenance(video, checkpoint, options), psnr)
    save_embedding(out, embedding)
    n_interp = int(interpolated.sum()) if interpolated is not None else 0
    return {"output": str(out), "frames": len(wplus), "fps": fps, "n_styles": int(wplus.shape[1]),
            "frames_without_face": n_interp, "aligned_input": options.aligned,
            "preview": str(preview) if preview else None, "reconstruction": _reconstruction_summary(embedding)}


def _reconstruction_summary(embedding: Embedding) -> dict | None:
    """Per-frame reconstruction PSNR and the frames far below the video's median; warns about those on stderr."""
    psnr = embedding.recon_psnr
    if psnr is None:
        return None
    median, outliers = float(np.median(psnr)), embedding.outliers().tolist()
    if outliers:
        shown = ", ".join(str(i) for i in outliers[:8]) + (", ..." if len(outliers) > 8 else "")
        click.echo(f"svgan-embed: warning: {len(outliers)} of {len(psnr)} frames reconstruct more than "
                   f"{FRAME_OUTLIER_DB:g} dB below the video's median PSNR ({median:.1f} dB): frames {shown}; pSp "
                   "does not represent them well (an occluder, a profile, a cut?), so their codes teach the "
                   "generator motion that is not there", err=True)
    return {"median_psnr_db": round(median, 2), "min_psnr_db": round(float(psnr.min()), 2),
            "outlier_rule": f"more than {FRAME_OUTLIER_DB:g} dB below the median", "outlier_frames": outliers,
            "psnr_db": [round(float(v), 2) for v in psnr]}


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.argument("video", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--psp", "checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="pSp checkpoint (e.g. psp_ffhq_encode.pt). Required unless --synthetic.")
@click.option("-o", "--output", required=True, type=OutputFile(),
              help="Output .npz: wplus [N, n_styles, 512], fps, alignment parameters, provenance.")
@click.option("--aligned", is_flag=True, help="Frames are already FFHQ-aligned faces: skip detection and filtering.")
@click.option("--sigma-centre", default=DEFAULT_SIGMA_SECONDS[0], type=FiniteRange(min=0),
              help="Low-pass width (s) of the crop centre.")
@click.option("--sigma-side", default=DEFAULT_SIGMA_SECONDS[1], type=FiniteRange(min=0),
              help="Low-pass width (s) of the crop scale.")
@click.option("--sigma-angle", default=DEFAULT_SIGMA_SECONDS[2], type=FiniteRange(min=0),
              help="Low-pass width (s) of the crop rotation.")
@click.option("--detect-size", default=DEFAULTS.detect_size, type=click.IntRange(min=32),
              help="Detect faces on frames shrunk to this longest side (speed); crops use full resolution.")
@click.option("--batch-size", default=DEFAULTS.batch_size, type=click.IntRange(min=1), help="Frames per pSp batch.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None,
              help="Embed only the first N frames (a quick trial).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Where pSp runs.")
@click.option("--reconstruction/--no-reconstruction", default=DEFAULTS.reconstruction,
              help="Synthesise every frame's code again and measure its reconstruction PSNR against the aligned "
                   f"crop (saved as recon_psnr; frames more than {FRAME_OUTLIER_DB:g} dB below the video's median "
                   "are named in a warning and saved as recon_outliers). Costs one StyleGAN2 synthesis per frame, "
                   "about as much again as pSp's encoding (2 CPU cores: 33 vs 39 ms per frame for the demo world's "
                   "64x64, 3.5 vs 3.0 s for a full-width 256x256 StyleGAN2 and IR-SE50).")
@click.option("--preview", type=OutputFile(), default=None,
              help="Also write an MP4 of aligned crop | pSp reconstruction side by side.")
@click.option("--synthetic", type=FiniteRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Instead of a video: write a synthetic W+ sequence of this length (known dynamics, no weights).")
@click.option("--n-styles", default=18, type=click.IntRange(min=1),
              help="With --synthetic: styles per code (18 = 1024x1024).")
@click.option("--seed", default=0, type=click.IntRange(min=0), help="With --synthetic: the motion's seed.")
@click.option("--slow-drift", "slow_drift_std", type=FiniteRange(min=0), default=SYNTHETIC.slow_drift_std,
              metavar="STD", help="With --synthetic: add a slow Ornstein-Uhlenbeck head drift with this std (state "
                                  "units; the fast yaw drift has 0.6) to yaw, 0.6x to pitch, 0.35x to roll. 0: off.")
@click.option("--slow-drift-tau", type=FiniteRange(min=0, min_open=True), default=SYNTHETIC.slow_drift_tau,
              metavar="SECONDS", help="With --slow-drift: its time constant; yaw drifts with 2x, pitch 1x, roll 0.5x "
                                      "(20, 10, 5 s by default).")
@click.option("--moods", type=click.IntRange(min=0), default=SYNTHETIC.moods, metavar="N",
              help="With --synthetic: switch between N >= 2 moods (a Markov chain; each mood offsets smile, brow "
                   "raise, yaw and pitch). 0: off.")
@click.option("--mood-seconds", type=FiniteRange(min=0, min_open=True), default=SYNTHETIC.mood_seconds,
              metavar="SECONDS", help="With --moods: mean time in a mood; each stay lasts 0.5-1.5x this.")
@click.option("--mood-shift", type=FiniteRange(min=0), default=SYNTHETIC.mood_shift, metavar="STDS",
              help="With --moods: std of a mood's offset of each shifted component, in that component's own stds.")
@click.option("--json", "json_out", type=OutputFile(allow_dash=True), default=None,
              help="Write a JSON summary here ('-' for stdout).")
@one_line_errors("svgan-embed")
def main(video: Path | None, checkpoint: Path | None, output: Path, aligned: bool, sigma_centre: float,
         sigma_side: float, sigma_angle: float, detect_size: int, batch_size: int, max_frames: int | None,
         device: str, reconstruction: bool, preview: Path | None, synthetic: float | None, n_styles: int, seed: int,
         slow_drift_std: float, slow_drift_tau: float, moods: int, mood_seconds: float, mood_shift: float,
         json_out: Path | None) -> None:
    """Turn a training VIDEO into a sequence of W+ codes: align every frame's face (FFHQ-style, eye corners
    only, temporally low-passed), then encode it with pSp. Frames without a face get interpolated crops and
    are counted in the summary.

    With --synthetic SECONDS, write a synthetic sequence instead (no video, no weights): speech-like mouth
    motion, blinks, gaze, head and expression drift, optionally with slow dynamics (--slow-drift, --moods; off
    by default, so sequences written before they existed keep their bytes)."""
    start = time.perf_counter()
    if synthetic is not None:
        try:
            config = SyntheticConfig(seconds=synthetic, n_styles=n_styles, seed=seed, slow_drift_std=slow_drift_std,
                                     slow_drift_tau=slow_drift_tau, moods=moods, mood_seconds=mood_seconds,
                                     mood_shift=mood_shift)
        except ValueError as e:
            raise UserError(str(e)) from e
        summary = _synthetic(config, output)
    else:
        if video is None or checkpoint is None:
            raise UserError("give a VIDEO and --psp CKPT (or --synthetic SECONDS)")
        if not video.is_file():
            raise UserError(f"video not found: {video}")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserError("--device cuda: no CUDA device is available")
        options = EmbedOptions(aligned=aligned, sigma_seconds=(sigma_centre, sigma_side, sigma_angle),
                               detect_size=detect_size, batch_size=batch_size, max_frames=max_frames, device=device,
                               reconstruction=reconstruction)
        summary = _embed_video(video, checkpoint, output, options, preview)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    missing = summary.get("frames_without_face", 0)
    click.echo(f"svgan-embed: {summary['frames']} codes -> {output}"
               + (f" ({missing} frames without a face were interpolated)" if missing else ""), err=True)
    write_summary(json_out, summary)


if __name__ == "__main__":
    main()
