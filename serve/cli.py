"""`svgan-serve`: many concurrent talking-head streams over HTTP on Ray Serve (DESIGN §9d).

Without `--address` it starts a local Ray sized to this machine, serves until Ctrl-C or SIGTERM and then stops
Serve and that Ray, every process of it. With `--address` it deploys onto an existing cluster and, when stopped,
removes only its application.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from svgan.cli_types import FiniteRange, HostName, RayAddress
from svgan.errors import UserError, one_line_errors
from svgan.runtime.bundle import load_bundle
from svgan.runtime.x264 import X264_PRESETS

from .config import ServeConfig

DEFAULTS = ServeConfig()
# Ray Serve gives its HTTP proxy 5 s to report ready (10 s per health check) and kills it after three misses; on a
# loaded machine (2 busy cores here) start-up then fails with ActorDiedError. Patience costs nothing when the
# proxy is quick. The local Ray's processes inherit this environment; a cluster sets its own.
PATIENT_SERVE_ENV = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}


@click.command(context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Exported bundle (svgan-export). Default: the demo world's (64x64 cartoon faces).")
@click.option("--host", default="127.0.0.1", type=HostName(),
              help="Address the HTTP server listens on (0.0.0.0: every interface).")
@click.option("--port", default=8000, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option("--replicas", default=1, type=click.IntRange(min=1), help="Replicas of the stream server.")
@click.option("--max-streams", default=DEFAULTS.max_streams, type=click.IntRange(min=1),
              help="Streams one replica serves at once; more get 503. The server's capacity is replicas x this.")
@click.option("--batch-wait-ms", default=DEFAULTS.batch_wait_ms, type=FiniteRange(min=0),
              help="Longest wait for other streams' frames before a synthesis call (below one frame period).")
@click.option("--chunk-frames", default=DEFAULTS.chunk_frames, type=click.IntRange(min=1),
              help="Frames a stream asks for per synthesis request (more: bigger batches, later first frame).")
@click.option("--lead-seconds", default=DEFAULTS.lead_seconds, type=FiniteRange(min=0),
              help="How far a stream may render ahead of real time (bounds what a slow viewer makes the server "
                   "hold); 0 renders as fast as possible.")
@click.option("--address", default=None, type=RayAddress(),
              help="Deploy onto this running Ray cluster (e.g. auto, ray://head:10001) instead of a local Ray.")
@click.option("--num-cpus", default=os.cpu_count() or 1, type=click.IntRange(min=1),
              help="CPUs of the local Ray (default: this machine's); ignored with --address.")
@click.option("--metrics-port", default=8080, type=click.IntRange(1, 65535),
              help="Ray's Prometheus endpoint of the local Ray (/metrics); with --address the cluster's own.")
@click.option("--backend", type=click.Choice(["ort", "trt", "torch"]), default=DEFAULTS.backend,
              help="ort: onnxruntime, no torch; trt: TensorRT engines; torch: PyTorch.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=DEFAULTS.device,
              help="Where frames are rendered; cuda gives each replica one GPU.")
@click.option("--upscale", default=DEFAULTS.upscale, type=click.IntRange(min=1),
              help="Encode frames enlarged this many times (4 turns the demo's 64x64 into 256x256).")
@click.option("--crf", default=DEFAULTS.crf, type=click.IntRange(0, 51), help="x264 quality (lower = better).")
@click.option("--preset", default=DEFAULTS.preset, type=click.Choice(X264_PRESETS), help="x264 preset.")
@click.option("--encoder-threads", default=DEFAULTS.encoder_threads, type=click.IntRange(min=0),
              help="libx264 threads per stream (0: x264 chooses); streams already share the cores.")
@click.option("--max-upload-mb", default=DEFAULTS.max_upload_mb, type=FiniteRange(min=0, min_open=True),
              help="Largest request body (identity photo or W+ code) accepted; larger get 413.")
@one_line_errors("svgan-serve")
def main(bundle_dir: Path | None, host: str, port: int, replicas: int, max_streams: int, batch_wait_ms: float,
         chunk_frames: int, lead_seconds: float, address: str | None, num_cpus: int, metrics_port: int, backend: str,
         device: str, upscale: int, crf: int, preset: str, encoder_threads: int, max_upload_mb: float) -> None:
    """Serve talking-head video to many clients at once: POST /streams answers with a fragmented MP4 that plays
    while it downloads. See the README's "Serving many streams" for the HTTP API."""
    config = ServeConfig(bundle=None if bundle_dir is None else str(bundle_dir.resolve()), backend=backend,
                         device=device, max_streams=max_streams, batch_wait_ms=batch_wait_ms,
                         chunk_frames=chunk_frames, lead_seconds=lead_seconds, upscale=upscale, crf=crf,
                         preset=preset, encoder_threads=encoder_threads, max_upload_mb=max_upload_mb)
    if address is None:  # on a cluster the bundle's path is the nodes' business; here it can be checked first
        config.check(load_bundle(config.bundle_dir).fps)
    serve_until_stopped(config, host, port, replicas, address, num_cpus, metrics_port)


def serve_until_stopped(config: ServeConfig, host: str, port: int, replicas: int, address: str | None,
                        num_cpus: int, metrics_port: int) -> None:
    """Deploy, announce, wait for Ctrl-C or SIGTERM, then take down what was started."""
    import ray  # here, so that --help and option errors come without Ray's start-up cost
    from ray import serve

    from .app import APP_NAME, build_app

    local = address is None
    if local:
        for name, value in PATIENT_SERVE_ENV.items():
            os.environ.setdefault(name, value)
        # address="local": a new Ray of our own, never one that happens to run on this machine already.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 _metrics_export_port=metrics_port)
    else:
        try:
            ray.init(address=address)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UserError(f"--address {address}: no Ray cluster reached: {str(e).strip().splitlines()[0]}") \
                from None
    # After ray.init, which installs a SIGTERM handler of its own (exit status 15, no clean-up of ours).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            serve.start(http_options={"host": host, "port": port})
        except ray.exceptions.RayError as e:  # e.g. the HTTP proxy died: the port taken, or no start-up in time
            raise UserError(f"Ray Serve did not start on {host}:{port}: {str(e).strip().splitlines()[0]}") from None
        cpus = min(1.0, num_cpus / replicas) if local else 1.0
        try:
            serve.run(build_app(config, replicas, num_cpus=cpus, num_gpus=1.0 if config.device == "cuda" else 0.0),
                      name=APP_NAME, route_prefix="/")
        except RuntimeError as e:  # Serve's deployment failure, with the replica's traceback in its message
            raise UserError(f"the deployment failed: {str(e).strip().splitlines()[-1]}") from None
        where = "a local Ray" if local else f"the Ray cluster at {address}"
        click.echo(f"svgan-serve: {replicas} replica(s) on {where}, POST http://{host}:{port}/streams"
                   + (f"; metrics on http://127.0.0.1:{metrics_port}/metrics" if local else "")
                   + "; Ctrl-C stops", err=True)
        while not stop.wait(0.5):
            pass
        click.echo("svgan-serve: stopping", err=True)
    finally:
        if local:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
        ray.shutdown()


if __name__ == "__main__":
    main()
