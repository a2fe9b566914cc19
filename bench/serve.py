"""Serving speed (issue 15): 1 .. 16 concurrent streams of one bundle through `svgan-serve` over real HTTP.

The server is the real CLI in a subprocess (its own local Ray), started with `--lead-seconds 0` so that streams
render as fast as the machine allows; each level opens N streams of the same length at once and reads them to
the end. Per level: aggregate frames/s (all frames / the level's wall time), each stream's real-time factor
(its frames/s over the frame rate), frame latency and queue wait percentiles and the mean synthesis batch
(from the replica's GET /stats for the level's time window), and the peak resident memory of the server and
every process of its Ray. The reference is the same bundle rendered in one process, batched
(`svgan-bench stream`'s render-only and end-to-end figures), measured just before the server starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from svgan import __version__
from svgan.runtime.bundle import load_bundle
from svgan.serve.config import ServeConfig

from .stream import StreamBenchConfig, _device_name, run_stream_bench

STARTUP_TIMEOUT_S = 240.0


@dataclass
class ServeBenchConfig:
    bundle: str | None = None
    streams: tuple[int, ...] = (1, 2, 4, 8, 16)
    frames: int = 100                  # per stream, at the bundle's frame rate
    chunk_frames: int = ServeConfig.chunk_frames
    batch_wait_ms: float = ServeConfig.batch_wait_ms
    reference_batch: int = 8
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (read from /proc: Ray's processes are the server's children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # the process ended while we looked
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (zombies, ended but not yet reaped by their parent, do not count)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def rss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`svgan-serve` in a subprocess on free ports; `stop()` sends SIGTERM and returns the seconds it took."""

    def __init__(self, *args: str, log: Path | None = None) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log or os.devnull, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "svgan.serve.cli", "--port", str(self.port), "--metrics-port",
             str(self.metrics_port), *args], stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"svgan-serve exited with {self.process.returncode} while starting")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"svgan-serve did not answer /healthz within {timeout:.0f} s")

    def processes(self) -> set[int]:
        return {self.process.pid} | descendants(self.process.pid)

    def stop(self, timeout: float = 30.0) -> float:
        start = time.perf_counter()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return time.perf_counter() - start


def _stream(url: str, body: dict, result: dict) -> None:
    request = urllib.request.Request(url + "/streams", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    result["start"] = time.perf_counter()
    chunks = []
    with urllib.request.urlopen(request, timeout=600) as response:
        while piece := response.read1(1 << 16):
            result.setdefault("first_byte", time.perf_counter())
            chunks.append(piece)
    result["end"] = time.perf_counter()
    result["data"] = b"".join(chunks)


def _level(server: ServerProcess, n: int, frames: int, fps: float) -> dict:
    since = time.time()
    results = [{} for _ in range(n)]
    threads = [threading.Thread(target=_stream, args=(server.url, {"seed": i, "frames": frames}, results[i]))
               for i in range(n)]
    peak = [0]
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_bytes(server.processes()))

    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler.join()
    with urllib.request.urlopen(f"{server.url}/stats?since={since}") as response:
        stats = json.load(response)
    from svgan.runtime.video import VideoReader  # decoded after the level, so decoding does not load the server

    counts = []
    for i, r in enumerate(results):
        path = Path(f"/tmp/svgan-bench-serve-{os.getpid()}-{i}.mp4")
        path.write_bytes(r["data"])
        with VideoReader(path) as reader:
            counts.append(sum(1 for _ in reader))
        path.unlink()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    rtf = [frames / (r["end"] - r["start"]) / fps for r in results]
    return {"streams": n, "frames_per_stream": frames, "frames_decoded": counts, "wall_s": round(wall, 3),
            "aggregate_fps": round(n * frames / wall, 1), "realtime_factor_min": round(min(rtf), 3),
            "realtime_factor_median": round(float(np.median(rtf)), 3),
            "first_byte_ms_p50": round(float(np.median([r["first_byte"] - r["start"] for r in results])) * 1000, 1),
            "frame_latency_ms": stats["frame_latency_ms"], "queue_wait_ms": stats["queue_wait_ms"],
            "mean_batch_frames": stats["mean_batch_frames"], "synthesis_calls": stats["synthesis_calls"],
            "peak_rss_mb": round(peak[0] / 2**20, 1)}


def run_serve_bench(config: ServeBenchConfig) -> dict:
    bundle_dir = config.bundle or str(ServeConfig().bundle_dir)
    bundle = load_bundle(bundle_dir)
    reference = run_stream_bench(StreamBenchConfig(bundle_dir, batch=config.reference_batch, frames=200))
    args = ["--lead-seconds", "0", "--max-streams", str(max(config.streams)), "--chunk-frames",
            str(config.chunk_frames), "--batch-wait-ms", str(config.batch_wait_ms), *config.extra_args]
    if config.bundle:
        args += ["--bundle", config.bundle]
    server = ServerProcess(*args)
    try:
        startup = server.wait_ready()
        idle_mb = rss_bytes(server.processes()) / 2**20
        levels = [_level(server, n, config.frames, bundle.fps) for n in config.streams]
    finally:
        stop_s = server.stop()
    render_fps = reference["render_fps"]
    for level in levels:
        level["vs_render"] = round(level["aggregate_fps"] / render_fps, 3)
        level["vs_end_to_end"] = round(level["aggregate_fps"] / reference["end_to_end_fps"], 3)
    return {"benchmark": "serve", "svgan": __version__, "device_name": _device_name("cpu"),
            "config": asdict(config), "resolution": bundle.resolution, "fps": bundle.fps,
            "reference": {"batch": config.reference_batch, "render_fps": round(render_fps, 1),
                          "end_to_end_fps": round(reference["end_to_end_fps"], 1)},
            "startup_s": round(startup, 1), "stop_s": round(stop_s, 1), "idle_rss_mb": round(idle_mb, 1),
            "levels": levels}
