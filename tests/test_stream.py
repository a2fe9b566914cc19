"""`svgan-stream`: playable MP4 on stdout or -o, no torch on the ORT path, clean ends, flat memory."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from svgan.runtime.backends import OrtBackend
from svgan.runtime.bundle import BundleError, load_bundle
from svgan.runtime.offset_trick import identity_offset
from svgan.runtime.video import VideoReader

from .conftest import absolute_paths, package_file

# Runs the CLI with torch made unimportable: the ORT path must never need it.
NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.argv[0] = 'svgan-stream'; "
            "from svgan.runtime.cli_stream import main; main()")


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_stray_streams():
    """An endless stream left running by a failed test would eat the CPU of every later test."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stream(*args: str, stdout=subprocess.PIPE, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", NO_TORCH, *args], stdout=stdout, stderr=subprocess.PIPE, **kwargs)
    STARTED.append(proc)
    return proc


def decoded_frames(data_or_path: bytes | Path) -> list[np.ndarray]:
    if isinstance(data_or_path, bytes):
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"svgan-test-{os.getpid()}.mp4"
        path.write_bytes(data_or_path)
    else:
        path = data_or_path
    with VideoReader(path) as reader:
        return list(reader)


def test_random_identity_to_stdout_without_torch(tiny_bundle, tmp_path):
    proc = stream("--bundle", str(tiny_bundle), "--seed", "1", "--frames", "30", "--batch", "4",
                  "--json", str(tmp_path / "stats.json"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    frames = decoded_frames(out)
    assert len(frames) == 30 and frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])  # it moves
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["frames"] == 30 and stats["fps"] > 0 and stats["first_frame_latency_s"] > 0
    assert "fps" in err.decode() and err.decode().count("\n") == 1


def test_identity_from_a_real_photo_and_from_npy(tiny_bundle, tmp_path):
    photo = package_file("skimage", "data/astronaut.png")
    proc = stream("--bundle", str(tiny_bundle), "--identity", str(photo), "--frames", "5", "-o",
                  str(tmp_path / "a.mp4"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert len(decoded_frames(tmp_path / "a.mp4")) == 5
    np.save(tmp_path / "w.npy", np.zeros((10, 512), np.float32))
    proc = stream("--bundle", str(tiny_bundle), "--identity", str(tmp_path / "w.npy"), "--seconds", "0.2", "-o",
                  str(tmp_path / "b.mp4"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert len(decoded_frames(tmp_path / "b.mp4")) == 5  # 0.2 s at the run's 25 fps


@pytest.mark.parametrize("args, message", [
    (["--identity", "{tmp}/nothing.png"], "svgan-stream: error: identity image not found: {tmp}/nothing.png"),
    (["--identity", "{tmp}/w.npy"], "svgan-stream: error: {tmp}/w.npy holds a code of shape [3, 512]; "
                                    "this bundle needs [10, 512]"),
    (["--identity", "{tmp}/flat.png"], "svgan-stream: error: no face found in {tmp}/flat.png"),
    (["--bundle", "{tmp}"], "svgan-stream: error: not an svgan bundle: {tmp}/manifest.json not found "
                            "(make one with svgan-export)"),
])
def test_bad_input_is_one_line(tiny_bundle, tmp_path, args, message):
    np.save(tmp_path / "w.npy", np.zeros((3, 512), np.float32))
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "flat.png")
    args = [a.format(tmp=tmp_path) for a in args]
    proc = stream("--bundle", str(tiny_bundle), *args, "-o", str(tmp_path / "x.mp4"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert err.decode().strip() == message.format(tmp=tmp_path)


def test_refuses_a_terminal(tiny_bundle):
    leader, follower = pty.openpty()
    proc = stream("--bundle", str(tiny_bundle), "--frames", "1", stdout=follower)
    _, err = proc.communicate(timeout=120)
    os.close(follower)
    os.close(leader)
    assert proc.returncode == 1 and "refusing to write video to a terminal" in err.decode()


def test_closed_pipe_ends_cleanly(tiny_bundle):
    proc = stream("--bundle", str(tiny_bundle), "--frames", "0", "--batch", "4")
    head = proc.stdout.read(20_000)  # then the reader goes away, as `| head -c 20000` does
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert len(head) == 20_000
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "the reader closed the output" in err


def test_ctrl_c_ends_cleanly_with_a_playable_file(tiny_bundle, tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((10, 512), np.float32))  # no encoder to load: streaming starts at once
    proc = stream("--bundle", str(tiny_bundle), "--frames", "0", "--batch", "4", "--identity", str(tmp_path / "w.npy"),
                  "-o", str(tmp_path / "c.mp4"))
    deadline = time.time() + 120
    while time.time() < deadline and (not (tmp_path / "c.mp4").exists() or
                                      (tmp_path / "c.mp4").stat().st_size < 2_000):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err.decode() and "interrupted after" in err.decode()
    assert len(decoded_frames(tmp_path / "c.mp4")) > 0


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_stream(tiny_bundle, tmp_path):
    """RSS sampled while 3,000 frames (2 minutes of video) stream: no growth after warm-up."""
    np.save(tmp_path / "w.npy", np.zeros((10, 512), np.float32))
    proc = stream("--bundle", str(tiny_bundle), "--frames", "3000", "--batch", "8", "--identity",
                  str(tmp_path / "w.npy"), "-o", str(tmp_path / "l.mp4"))
    samples = []
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError:
            break
        rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")]
        if not rss:  # it exited between poll() and the read: a zombie has no memory left to sample
            break
        samples.append(rss[0])
        time.sleep(0.25)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert len(samples) >= 8, "stream too short to sample"
    warm = samples[len(samples) // 4:]
    growth_mb = (max(warm[len(warm) // 2:]) - max(warm[: len(warm) // 2])) / 1024
    assert growth_mb < 20, f"RSS grew by {growth_mb:.1f} MB over the stream: {samples}"
    assert len(decoded_frames(tmp_path / "l.mp4")) == 3000


def test_offset_trick_keeps_the_motion_subspace_and_moves_the_identity(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    pca = bundle.pca()
    rng = np.random.default_rng(0)
    w_new = rng.standard_normal((bundle.n_styles, 512)).astype(np.float32)
    delta = identity_offset(w_new, pca)
    # Delta is orthogonal to every motion direction, and w_new - Delta lies in mu + span(U).
    assert np.abs(pca.components @ delta.reshape(-1)).max() < 1e-3
    anchor = (w_new - delta).reshape(-1) - pca.mean
    np.testing.assert_allclose(pca.components.T @ (pca.components @ anchor), anchor, atol=1e-3)


def test_ort_backend_steps_like_the_bundle_says(tiny_bundle):
    bundle = load_bundle(tiny_bundle, verify=True)
    backend = OrtBackend(bundle)
    state, w0 = backend.generator_init(np.zeros((2, 32), np.float32))
    assert [h.shape for h in state] == [(2, n) for n in bundle.state_sizes] and w0.shape == (2, 10, 512)
    state, w1 = backend.generator_step(np.ones((2, 32), np.float32), state)
    rgb = backend.synthesis(np.concatenate([w0, w1]))
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 64, 64, 3)


@pytest.mark.parametrize("burn_in, problem", [(25, None), (-1, "burn_in must be a whole number"),
                                               (2.5, "burn_in must be a whole number")])
def test_the_manifest_burn_in_is_read_and_checked(tiny_bundle, tmp_path, burn_in, problem):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["burn_in"] == 0   # svgan-export's default: streams start at G's initial state
    copy = tmp_path / "bundle"
    copy.mkdir()
    for path in tiny_bundle.iterdir():
        if path.name != "manifest.json":
            (copy / path.name).symlink_to(path)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "burn_in": burn_in}))
    if problem is None:
        assert load_bundle(copy).burn_in == 25
    else:
        with pytest.raises(BundleError, match=problem):
            load_bundle(copy)


def test_corrupt_bundle_file_is_caught_by_verify(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "pca.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00corrupt")
    with pytest.raises(BundleError, match="pca.npz: sha256 differs from the manifest"):
        load_bundle(copy, verify=True)


def test_bundle_files_are_checked_when_first_used_and_a_graph_that_does_not_load_is_named(world_bundle, tmp_path):
    """Without --verify each file's sha256 is checked the first time the stream uses it (issue 16, item 2)."""
    import hashlib
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(world_bundle, copy)
    with open(copy / "synthesis.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00corrupt")
    proc = stream("--bundle", str(copy), "--frames", "2", "-o", str(tmp_path / "a.mp4"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and not (tmp_path / "a.mp4").exists()
    assert err.decode().strip() == f"svgan-stream: error: {copy} is corrupt or modified: synthesis.onnx: sha256 " \
                                   "differs from the manifest"
    # A graph whose bytes match its manifest entry but that onnxruntime cannot load (e.g. a manifest rewritten by
    # hand) is named too.
    shutil.copy(world_bundle / "synthesis.onnx", copy / "synthesis.onnx")
    (copy / "mapping.onnx").write_bytes(b"not a graph")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["graphs"]["mapping"]["sha256"] = hashlib.sha256(b"not a graph").hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    proc = stream("--bundle", str(copy), "--frames", "2", "-o", str(tmp_path / "b.mp4"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.decode().count("\n") == 1
    assert err.decode().startswith(f"svgan-stream: error: onnxruntime cannot load {copy / 'mapping.onnx'}")


def test_torch_backend_renders_what_onnxruntime_renders(tiny_bundle):
    from svgan.runtime.torch_backend import TorchBackend

    bundle = load_bundle(tiny_bundle)
    ort_backend, torch_backend = OrtBackend(bundle), TorchBackend.from_bundle(bundle, "cpu")
    i = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    (state_o, w_o), (state_t, w_t) = ort_backend.generator_init(i), torch_backend.generator_init(i)
    np.testing.assert_allclose(w_t, w_o, atol=1e-4)
    (_, w_o), (_, w_t) = ort_backend.generator_step(i, state_o), torch_backend.generator_step(i, state_t)
    np.testing.assert_allclose(w_t, w_o, atol=1e-4)
    frames_o, frames_t = ort_backend.synthesis(w_o), torch_backend.synthesis(w_t)
    assert frames_t.dtype == np.uint8 and frames_t.shape == frames_o.shape
    assert np.abs(frames_t.astype(int) - frames_o.astype(int)).max() <= 1


# --------------------------------------------------------------------------------------------------
# The shipped demo bundle is self-contained: the torch backend needs nothing but the bundle


@pytest.fixture(scope="module")
def demo_bundle_copy(tmp_path_factory) -> Path:
    """The shipped demo bundle, copied away from the repository (no runs/, no source checkpoints beside it)."""
    import shutil

    from svgan import DEMO_WORLD

    copy = tmp_path_factory.mktemp("elsewhere") / "bundle"
    shutil.copytree(DEMO_WORLD / "bundle", copy)
    return copy


def rendered_frames(bundle_dir: Path, backend: str, seed: int, frames: int) -> np.ndarray:
    """The frames `svgan-stream --seed SEED` renders (random identity), before the encoder sees them."""
    from svgan.runtime.backends import make_backend
    from svgan.runtime.identity import load_identity
    from svgan.runtime.stream import StreamStats, make_renderer, run_stream

    bundle = load_bundle(bundle_dir, verify=True)
    assert absolute_paths(bundle.manifest) == []  # nothing ties it to the machine that exported it
    engine = make_backend(backend, bundle, "cpu")
    offset = identity_offset(load_identity(None, seed, bundle, engine, False).wplus, bundle.pca())
    out: list[np.ndarray] = []
    run_stream(make_renderer(engine, bundle.latent_dim, offset, seed, 10), lambda batch: out.append(batch.pixels),
               frames, 10, StreamStats())
    return np.concatenate(out)


def test_shipped_bundle_renders_the_same_frames_with_torch_as_with_onnxruntime(demo_bundle_copy):
    ort_frames = rendered_frames(demo_bundle_copy, "ort", seed=1, frames=100)
    torch_frames = rendered_frames(demo_bundle_copy, "torch", seed=1, frames=100)
    assert torch_frames.shape == ort_frames.shape == (100, 64, 64, 3)
    difference = np.abs(torch_frames.astype(int) - ort_frames.astype(int))
    within = float((difference <= 1).mean())
    print(f"\ntorch vs onnxruntime, 100 frames of the shipped bundle: {within:.6f} of pixels within 1 level, "
          f"max {difference.max()} levels")
    assert within >= 0.999
    assert ort_frames.std(axis=0).mean() > 1  # the frames move: the comparison is not of a still image


def test_torch_backend_streams_the_shipped_bundle_from_anywhere(demo_bundle_copy, tmp_path):
    out = tmp_path / "x.mp4"
    done = subprocess.run([sys.executable, "-m", "svgan.runtime.cli_stream", "--bundle", str(demo_bundle_copy),
                           "--backend", "torch", "--seed", "1", "--frames", "50", "-o", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    frames = decoded_frames(out)
    assert len(frames) == 50 and frames[0].shape == (64, 64, 3)
