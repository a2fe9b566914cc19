"""`svgan-stream --identity img.png > out.mp4`: endless talking-head video for any identity (DESIGN §9).

Nothing but video goes to stdout; statistics and errors go to stderr. With the ort and trt backends this
module and everything it imports stay free of torch.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

import svgan
from svgan.cli_types import FiniteRange, OutputFile, write_summary
from svgan.errors import StopFlag, UserError, fail, one_line_errors

from .backends import Backend, make_backend
from .bundle import Bundle, load_bundle
from .domain import IdentityCheck, check_identity
from .identity import Identity, load_identity
from .offset_trick import identity_offset
from .stream import StreamStats, make_renderer, run_stream, sink_writer
from .video import SinkClosed, ThreadedSink, is_terminal
from .x264 import X264_PRESETS

DEFAULT_BUNDLE = svgan.DEMO_WORLD / "bundle"  # ships with the package


def _open_output(output: Path | None):
    if output is not None:
        return output
    if is_terminal(sys.stdout):
        raise UserError("refusing to write video to a terminal: redirect stdout (> out.mp4, | ffplay -) or use -o FILE")
    return sys.stdout.buffer


def _judge_identity(identity: Identity, source: Path | None, bundle: Bundle, engine: Backend,
                    strict: bool) -> IdentityCheck | None:
    """Warn (or with `strict` refuse, before any video is written) when pSp reconstructs the identity image poorly."""
    check = check_identity(identity, bundle, engine)
    if check is None:
        return None
    if check.reference is None:
        note = (f"{bundle.path} records no in-domain reference, so {source}'s reconstruction ({check.psnr_db:.1f} dB "
                "PSNR) cannot be judged; add one with `python -m svgan.export.domain BUNDLE`")
        if strict:
            raise UserError(f"--strict: {note}")
        click.echo(f"svgan-stream: note: {note}", err=True)
    elif check.out_of_domain:
        if strict:
            raise UserError(f"{check.message(str(source))} (--strict)")
        click.echo(f"svgan-stream: warning: {check.message(str(source))}", err=True)
    return check


def _frame_count(frames: int | None, seconds: float | None, fps: float) -> int | None:
    """None streams until stopped (--frames 0)."""
    if frames is not None:
        return frames or None
    return max(1, round((seconds if seconds is not None else 10.0) * fps))


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_BUNDLE,
              help="Exported bundle (svgan-export). Default: the demo world's (64x64 cartoon faces, use --aligned).")
@click.option("--identity", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The actor: a photo (aligned and encoded with pSp) or a W+ code (.npy). Default: random (--seed).")
@click.option("--aligned", is_flag=True,
              help="The --identity image is an aligned face already (as svgan-embed --aligned): resize, do not detect.")
@click.option("--strict", is_flag=True,
              help="Refuse (exit 1, no video) an --identity image that the bundle's pSp reconstructs poorly "
                   "(PSNR more than 12 dB below the bundle's own faces, manifest domain_reference) instead of "
                   "warning; also refuse to stream when the bundle records no such reference (else only a note).")
@click.option("--seed", default=0, type=click.IntRange(min=0),
              help="Seeds the random identity (without --identity) and the motion.")
@click.option("--frames", type=click.IntRange(min=0), default=None,
              help="Frames to write; 0 streams until stopped. Overrides --seconds.")
@click.option("--seconds", type=FiniteRange(min=0, min_open=True), default=None,
              help="Seconds of video to write (default 10).")
@click.option("--fps", type=FiniteRange(min=0, min_open=True), default=None,
              help="Frame rate of the video (default: the training video's).")
@click.option("-o", "--output", type=OutputFile(), default=None,
              help="Write the MP4 here instead of stdout.")
@click.option("--backend", type=click.Choice(["ort", "trt", "torch"]), default="ort",
              help="ort: onnxruntime (CPU, or CUDA with onnxruntime-gpu); trt: TensorRT engines; torch: PyTorch.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", help="Where frames are rendered.")
@click.option("--fp16", is_flag=True, help="Use the bundle's fp16 graphs (ort) / half precision (torch).")
@click.option("--batch", default=1, type=click.IntRange(min=1), help="Frames rendered per synthesis call.")
@click.option("--upscale", default=1, type=click.IntRange(min=1),
              help="Encode frames enlarged this many times (bicubic): e.g. 4 turns 64x64 frames into 256x256.")
@click.option("--crf", default=20, type=click.IntRange(0, 51), help="x264 quality (lower = better, larger).")
@click.option("--preset", default="veryfast", type=click.Choice(X264_PRESETS), help="x264 preset: speed vs size.")
@click.option("--encoder-threads", default=0, type=click.IntRange(min=0),
              help="libx264 frame threads; 0 lets x264 choose (about 1.5 per core).")
@click.option("--verify", is_flag=True, help="Check every bundle file against its sha256 first.")
@click.option("--json", "json_out", type=OutputFile(), default=None,
              help="Write the statistics as JSON to this file.")
@one_line_errors("svgan-stream")
def main(bundle_dir: Path, identity: Path | None, aligned: bool, strict: bool, seed: int, frames: int | None,
         seconds: float | None, fps: float | None, output: Path | None, backend: str, device: str, fp16: bool,
         batch: int, upscale: int, crf: int, preset: str, encoder_threads: int, verify: bool,
         json_out: Path | None) -> None:
    """Stream endless, smooth talking-head video for any identity as H.264 in fragmented MP4 (stdout or -o)."""
    start = time.perf_counter()
    target = _open_output(output)
    bundle = load_bundle(bundle_dir, verify=verify)
    engine = make_backend(backend, bundle, device, fp16=fp16)
    actor = load_identity(identity, seed, bundle, engine, aligned)
    check = _judge_identity(actor, identity, bundle, engine, strict)
    offset = identity_offset(actor.wplus, bundle.pca())
    fps = fps or bundle.fps
    # A GPU renderer may hand over yuv420p (half the bytes of RGB); the sink takes it only without upscaling.
    renderer = make_renderer(engine, bundle.latent_dim, offset, seed, batch, yuv420p=upscale == 1,
                             burn_in=bundle.burn_in)
    stats = StreamStats(fps_target=fps, setup_seconds=time.perf_counter() - start,
                        extra={"backend": backend, "device": device, "batch": batch,
                               "resolution": bundle.resolution,
                               "identity_reconstruction": None if check is None else check.as_dict()})
    n = _frame_count(frames, seconds, fps)
    sink = ThreadedSink(target, fps=fps, width=bundle.resolution, height=bundle.resolution, crf=crf, preset=preset,
                        threads=encoder_threads, upscale=upscale)
    closed = interrupted = False
    stop = StopFlag()
    previous = signal.signal(signal.SIGINT, stop.handle)
    loop_start = time.perf_counter()
    try:
        run_stream(renderer, sink_writer(sink), n, batch, stats, should_stop=stop)
    except SinkClosed:
        closed = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            sink.close()
        except SinkClosed:
            closed = True
        signal.signal(signal.SIGINT, previous)
    interrupted = interrupted or stop.requested
    stats.wall_seconds = time.perf_counter() - loop_start  # encoding of the last frames included
    _report(stats, json_out, closed, interrupted)
    if interrupted:
        fail("svgan-stream", f"interrupted after {stats.frames} frames", code=130)


def _report(stats: StreamStats, json_out: Path | None, closed: bool, interrupted: bool) -> None:
    summary = stats.as_dict() | {"output_closed": closed}
    first = summary["first_frame_latency_s"]
    click.echo(f"svgan-stream: {stats.frames} frames in {stats.wall_seconds:.2f} s = {stats.fps:.1f} fps "
               f"({stats.realtime_factor:.2f}x real time), first frame after "
               f"{'-' if first is None else f'{first * 1000:.0f} ms'}, setup {stats.setup_seconds:.2f} s"
               + ("; the reader closed the output" if closed else ""), err=True)
    write_summary(json_out, summary)


if __name__ == "__main__":
    main()
