"""The stream pipeline of the torch fast path, on the CPU (issue 14, item 4).

* `run_stream` keeps one batch in flight for an asynchronous renderer (the GPU renders batch k+1 while the host
  encodes batch k) and none for a synchronous one, and drains what is in flight when stopped;
* `TorchStreamRenderer` (G's steps for a batch, offset, synthesis and colour conversion as one function of static
  tensors: what a CUDA graph captures) renders the frames the generic path renders with onnxruntime, across
  batch boundaries and a short last batch, as RGB and as yuv420p;
* `svgan-bench render` runs on the CPU and its JSON renders into the benchmark report.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from svgan.runtime.backends import OrtBackend
from svgan.runtime.bundle import load_bundle
from svgan.runtime.stream import CodeRenderer, FrameBatch, MotionSource, StreamStats, make_renderer, run_stream


class RecordingRenderer:
    """Frames numbered 0, 1, 2, ...; logs every submit and collect."""

    def __init__(self, ahead: int):
        self.ahead = ahead
        self.log: list[str] = []
        self.next = 0

    def submit(self, count: int):
        first, self.next = self.next, self.next + count
        self.log.append(f"submit {first}")

        def collect() -> FrameBatch:
            self.log.append(f"collect {first}")
            return FrameBatch(np.arange(first, first + count, dtype=np.uint8)[:, None, None, None])
        return collect


@pytest.mark.parametrize("ahead", [0, 1])
def test_run_stream_keeps_batches_in_flight_as_the_renderer_allows(ahead):
    renderer, written = RecordingRenderer(ahead), []
    stats = run_stream(renderer, lambda batch: written.append(batch.pixels.ravel().tolist()), 7, 3, StreamStats())
    assert written == [[0, 1, 2], [3, 4, 5], [6]] and stats.frames == 7
    if ahead == 0:
        assert renderer.log == ["submit 0", "collect 0", "submit 3", "collect 3", "submit 6", "collect 6"]
    else:  # batch k+1 is submitted before batch k is collected
        assert renderer.log == ["submit 0", "submit 3", "collect 0", "submit 6", "collect 3", "collect 6"]


def test_run_stream_drains_the_batches_in_flight_when_stopped():
    renderer, written = RecordingRenderer(1), []
    stop_after = iter([False, False, True])
    stats = run_stream(renderer, lambda batch: written.append(len(batch)), None, 2, StreamStats(),
                       should_stop=lambda: next(stop_after, True))
    assert renderer.log == ["submit 0", "submit 2", "collect 0", "collect 2"]
    assert stats.frames == 4 and written == [2, 2]


def test_motion_draws_match_whole_batch_draws():
    # TorchStreamRenderer draws a batch of inputs at once where MotionSource draws one per frame.
    a, b = np.random.default_rng([3, 1]), np.random.default_rng([3, 1])
    one_by_one = np.concatenate([a.standard_normal((1, 32), dtype=np.float32) for _ in range(7)])
    out = np.empty((7, 1, 32), np.float32)
    b.standard_normal(dtype=np.float32, out=out)
    np.testing.assert_array_equal(one_by_one, out[:, 0])


@pytest.fixture(scope="module")
def backends(tiny_bundle):
    from svgan.runtime.torch_backend import TorchBackend

    bundle = load_bundle(tiny_bundle)
    return bundle, OrtBackend(bundle), TorchBackend.from_bundle(bundle, "cpu")


def stream_frames(renderer, frames: int, batch: int) -> FrameBatch:
    out: list[FrameBatch] = []
    run_stream(renderer, out.append, frames, batch, StreamStats())
    assert len({b.format for b in out}) == 1
    return FrameBatch(np.concatenate([b.pixels for b in out]), out[0].format)


def reference_frames(bundle, backend, offset, seed, frames, batch) -> np.ndarray:
    return stream_frames(CodeRenderer(backend, MotionSource(backend, bundle.latent_dim, offset, seed)),
                         frames, batch).pixels


def test_torch_stream_renderer_renders_the_generic_paths_frames(backends):
    bundle, ort_backend, torch_backend = backends
    offset = np.random.default_rng(5).normal(0, 0.1, (bundle.n_styles, bundle.style_dim)).astype(np.float32)
    expected = reference_frames(bundle, ort_backend, offset, 7, 23, 10)
    renderer = make_renderer(torch_backend, bundle.latent_dim, offset, 7, 10)
    assert renderer.ahead == 0  # on the CPU the renderer renders inside submit
    got = stream_frames(renderer, 23, 10)
    assert got.format == "rgb24" and got.pixels.shape == expected.shape == (23, 64, 64, 3)
    difference = np.abs(got.pixels.astype(int) - expected.astype(int))
    assert difference.max() <= 2 and (difference <= 1).mean() > 0.999
    assert expected.std(axis=0).mean() > 1  # the frames move


def test_burn_in_starts_the_stream_that_many_frames_in_on_both_paths(backends):
    """A bundle's burn-in drops G's first N frames: a stream with burn-in 7 is the same seed's stream without it
    from frame 7 on, on the generic path (the same calls, so bit for bit) and on the torch renderer."""
    bundle, ort_backend, torch_backend = backends
    offset = np.zeros((bundle.n_styles, bundle.style_dim), np.float32)
    plain = MotionSource(ort_backend, bundle.latent_dim, offset, 4).codes(12)
    np.testing.assert_array_equal(MotionSource(ort_backend, bundle.latent_dim, offset, 4, burn_in=7).codes(5),
                                  plain[7:])
    assert np.abs(plain[7] - plain[0]).max() > 1e-3   # the first frames differ: dropping them shows
    expected = reference_frames(bundle, ort_backend, offset, 4, 12, 6)[7:]
    got = stream_frames(make_renderer(torch_backend, bundle.latent_dim, offset, 4, 5, burn_in=7), 5, 5).pixels
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2


def test_torch_stream_renderer_hands_over_yuv420p_as_the_cpu_sink_converts(backends):
    bundle, ort_backend, torch_backend = backends
    offset = np.zeros((bundle.n_styles, bundle.style_dim), np.float32)
    rgb = reference_frames(bundle, ort_backend, offset, 2, 12, 5)
    got = stream_frames(make_renderer(torch_backend, bundle.latent_dim, offset, 2, 5, yuv420p=True), 12, 5)
    assert got.format == "yuv420p" and got.pixels.shape == (12, 96, 64) and got.pixels.dtype == np.uint8
    for frame, planes in zip(rgb, got.pixels):
        cpu = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            format="yuv420p", interpolation="AREA", dst_colorspace="ITU709", dst_color_range="MPEG").to_ndarray()
        assert np.abs(cpu.astype(int) - planes.astype(int)).max() <= 2  # 1 from the backends, 1 from rounding


def test_render_benchmark_runs_on_the_cpu_and_reports(tmp_path):
    from svgan.bench.render import RenderBenchConfig, run_render_bench
    from svgan.bench.report import write_report

    result = run_render_bench(RenderBenchConfig(resolution=256, device="cpu", batches=(1, 2),
                                                variants=("eager-fp32", "fast-fp32"), repeats=1, check_codes=1,
                                                stream_frames=3, stream_batch=2, preset="ultrafast"))
    for variant in ("eager-fp32", "fast-fp32"):
        row = result["variants"][variant]
        assert row["correctness"]["max_abs_error"] < 1e-3 and row["correctness"]["rgb_max_levels"] <= 1
        assert set(row["ms_per_frame"]) == {"1", "2"} and min(row["ms_per_frame"].values()) > 0
    assert result["end_to_end"]["batched"]["yuv420p"]["fps"] > 0
    result["command"] = "svgan-bench render --device cpu"
    (tmp_path / "render-cpu-256.json").write_text(json.dumps(result))
    write_report(tmp_path, tmp_path / "benchmarks.md")
    report = (tmp_path / "benchmarks.md").read_text()
    assert "| fast-fp32 |" in report and "svgan-bench render --device cpu" in report
