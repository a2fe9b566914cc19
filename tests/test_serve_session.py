"""svgan-serve without Ray: request validation, and a stream session's MP4 against `svgan-stream`'s."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from svgan import DEMO_WORLD
from svgan.runtime.backends import OrtBackend
from svgan.runtime.bundle import load_bundle
from svgan.runtime.cli_stream import main as svgan_stream
from svgan.serve.motion import stream_motion
from svgan.serve.session import Encoding, Pacing, StreamSession
from svgan.serve.stream_request import RequestError, StreamRequest, frame_count, parse_fields

BUNDLE = DEMO_WORLD / "bundle"


@pytest.fixture(scope="module")
def demo():
    bundle = load_bundle(BUNDLE)
    return bundle, OrtBackend(bundle), bundle.pca()


def test_json_and_form_fields_validate_alike():
    assert parse_fields({"seed": 7, "frames": 250, "fps": 25}) == StreamRequest(seed=7, frames=250, fps=25.0)
    assert parse_fields({"seed": "7", "frames": "250", "fps": "25"}) == StreamRequest(seed=7, frames=250, fps=25.0)
    endless = parse_fields({})
    assert frame_count(endless, 25.0) is None and endless.seed == 0
    assert frame_count(parse_fields({"seconds": 2, "fps": "10"}), 10.0) == 20
    assert parse_fields({"aligned": "true", "identity": ("me.png", b"x")}).aligned


@pytest.mark.parametrize("fields, message", [
    ({"frames": 0}, "frames must be an integer at least 1"),
    ({"frames": True}, "frames must be an integer"),
    ({"frames": 2.5}, "frames must be an integer"),
    ({"seed": -1}, "seed must be an integer from 0"),
    ({"fps": "nan"}, "fps must be a number above 0"),
    ({"fps": 1000}, "at most 240"),
    ({"seconds": 0}, "seconds must be a number above 0"),
    ({"frames": 3, "seconds": 1}, "not both"),
    ({"aligned": "maybe"}, "aligned must be true or false"),
    ({"identity": "w.npy"}, "must be an uploaded file"),
    ({"identity": ("w.npy", b"")}, "is empty"),
    ({"frame": 3}, "unknown field 'frame'"),
])
def test_bad_fields_are_one_line_422(fields, message):
    with pytest.raises(RequestError, match=message) as caught:
        parse_fields(fields)
    assert caught.value.status == 422 and "\n" not in str(caught.value)


def _session(demo, request: StreamRequest, frames: int | None, chunk: int, lead: float = 0.0) -> StreamSession:
    bundle, backend, pca = demo

    async def synthesise(codes: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(backend.synthesis, codes)

    motion, _ = stream_motion(request, bundle, backend, pca, max_image_pixels=4096 * 4096)
    return StreamSession(motion, synthesise, frames, chunk, Encoding(fps=bundle.fps, resolution=bundle.resolution),
                         Pacing(lead))


async def _collect(session: StreamSession) -> bytes:
    return b"".join([piece async for piece in session.mp4()])


def test_concurrent_sessions_write_the_mp4_that_svgan_stream_writes(demo, tmp_path):
    """Same seed, same identity, same encoder settings: the same bytes, whatever the chunking."""
    photo = DEMO_WORLD / "new_actor.png"
    requests = [StreamRequest(seed=3), StreamRequest(seed=5, aligned=True, identity=photo.read_bytes())]
    sessions = [_session(demo, requests[0], 13, chunk=5), _session(demo, requests[1], 13, chunk=4)]

    async def both() -> list[bytes]:
        return list(await asyncio.gather(*(_collect(s) for s in sessions)))

    served = asyncio.run(both())
    for request, data, extra in zip(requests, served, ([], ["--identity", str(photo), "--aligned"])):
        out = tmp_path / f"cli-{request.seed}.mp4"
        result = CliRunner().invoke(svgan_stream, ["--seed", str(request.seed), "--frames", "13",
                                                   "--encoder-threads", "1", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert data == out.read_bytes()


def test_a_closed_session_stops_and_releases_its_worker(demo):
    session = _session(demo, StreamRequest(seed=1), None, chunk=2)  # endless

    async def first_piece_then_leave() -> bytes:
        stream = session.mp4()
        piece = await stream.__anext__()
        await stream.aclose()
        return piece

    assert asyncio.run(first_piece_then_leave())[4:8] == b"ftyp"
    session._worker.shutdown(wait=True)  # returns only once the queued release ran
    assert session.sink._closed


def test_pacing_keeps_a_stream_near_real_time(demo):
    fps = load_bundle(BUNDLE).fps
    session = _session(demo, StreamRequest(seed=2), 30, chunk=2, lead=0.4)
    start = time.perf_counter()
    asyncio.run(_collect(session))
    elapsed = time.perf_counter() - start
    # The last chunk (frames 28-29) may start 0.4 s before its time: 28 / fps - 0.4 s after the first.
    assert elapsed >= 28 / fps - 0.4 - 0.05


def test_an_upload_that_is_not_an_image_names_the_upload(demo):
    bundle, backend, pca = demo
    with pytest.raises(RequestError, match="cannot read identity image notes.txt") as caught:
        stream_motion(StreamRequest(identity=b"hello", identity_name="notes.txt"), bundle, backend, pca, 100)
    assert "/tmp" not in str(caught.value)


def test_a_huge_image_is_refused_from_its_header(demo, tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 200)).save(tmp_path / "big.png")
    bundle, backend, pca = demo
    with pytest.raises(RequestError, match="300x200 pixels is too large") as caught:
        stream_motion(StreamRequest(identity=(tmp_path / "big.png").read_bytes()), bundle, backend, pca, 50_000)
    assert caught.value.status == 413


def test_a_code_with_nan_or_the_wrong_shape_is_refused(demo, tmp_path):
    bundle, backend, pca = demo
    code = np.zeros((bundle.n_styles, bundle.style_dim), np.float32)
    code[0, 0] = np.nan
    for array, message in ((code, "NaN"), (code[:3], "shape")):
        np.save(tmp_path / "w.npy", array)
        with pytest.raises(RequestError, match=message):
            stream_motion(StreamRequest(identity=(tmp_path / "w.npy").read_bytes(), identity_name="w.npy"),
                          bundle, backend, pca, 100)


def test_the_serve_path_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import svgan.serve.app, svgan.serve.cli, svgan.serve.server"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_a_photo_out_of_the_bundles_domain_is_warned_about_or_refused_when_strict(demo):
    from .conftest import package_file

    bundle, backend, pca = demo
    photo = package_file("skimage", "data/astronaut.png").read_bytes()
    _, warning = stream_motion(StreamRequest(identity=photo, identity_name="astronaut.png"), bundle, backend, pca,
                               4096 * 4096)
    assert warning.startswith("astronaut.png: reconstruction PSNR ") and "\n" not in warning
    with pytest.raises(RequestError, match=r"^astronaut.png: reconstruction PSNR .*\(strict\)$") as caught:
        stream_motion(StreamRequest(identity=photo, identity_name="astronaut.png", strict=True), bundle, backend, pca,
                      4096 * 4096)
    assert caught.value.status == 422
    actor = (DEMO_WORLD / "new_actor.png").read_bytes()
    _, warning = stream_motion(StreamRequest(identity=actor, aligned=True, strict=True), bundle, backend, pca, 4096**2)
    assert warning is None
    assert parse_fields({"strict": "true"}).strict
