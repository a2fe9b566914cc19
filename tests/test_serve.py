"""`svgan-serve` over real HTTP against a real local Ray Serve: one server (the CLI, `--num-cpus 2`, two replicas
of at most 4 streams each) for the whole module, since Ray takes tens of seconds to come up on this machine.

The tests run in file order: the last ones kill a replica and then stop the server with SIGTERM.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from svgan import DEMO_WORLD
from svgan.bench.serve import ServerProcess, alive
from svgan.runtime.video import VideoReader

pytestmark = pytest.mark.slow

PHOTO = DEMO_WORLD / "new_actor.png"
MAX_STREAMS = 4  # per replica
# (form or JSON fields, svgan-stream arguments): random identities, an aligned photo and a W+ code
CASES = [
    ({"seed": 3, "frames": 30}, ["--seed", "3", "--frames", "30"]),
    ({"seed": 11, "seconds": 2, "fps": 10}, ["--seed", "11", "--seconds", "2", "--fps", "10"]),
    ({"seed": 5, "frames": 30, "aligned": "true", "identity": "photo"},
     ["--seed", "5", "--frames", "30", "--identity", str(PHOTO), "--aligned"]),
    ({"seed": 8, "frames": 25, "identity": "code"}, ["--seed", "8", "--frames", "25", "--identity", "CODE"]),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    np.save(folder / "code.npy", (np.load(DEMO_WORLD / "bundle" / "w_avg.npy")
                                  + 0.1 * rng.standard_normal((10, 128))).astype(np.float32))
    (folder / "notes.txt").write_text("not an image\n")
    from PIL import Image

    Image.new("RGB", (300, 300), (128, 128, 128)).save(folder / "blank.png")   # no face in it
    Image.new("RGB", (6000, 6000)).save(folder / "huge.png")                  # 36 MP, a small file
    (folder / "big.bin").write_bytes(os.urandom(1_200_000))                   # over --max-upload-mb 1
    wrong = np.zeros((3, 128), np.float32)
    np.save(folder / "wrong.npy", wrong)
    nan = np.zeros((10, 128), np.float32)
    nan[4, 2] = np.nan
    np.save(folder / "nan.npy", nan)
    return folder


@pytest.fixture(scope="module")
def cli_frames(files) -> dict[int, list[np.ndarray]]:
    """What `svgan-stream` writes for each case (same encoder settings as the server: one x264 thread)."""
    procs = {}
    for index, (_, args) in enumerate(CASES):
        args = [str(files / "code.npy") if a == "CODE" else a for a in args]
        procs[index] = subprocess.Popen([sys.executable, "-m", "svgan.runtime.cli_stream", *args,
                                         "--encoder-threads", "1", "-o", str(files / f"cli-{index}.mp4")],
                                        stderr=subprocess.PIPE)
    frames = {}
    for index, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        frames[index] = decode(files / f"cli-{index}.mp4")
    return frames


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "svgan-serve.log"
    proc = ServerProcess("--num-cpus", "2", "--replicas", "2", "--max-streams", str(MAX_STREAMS),
                         "--max-upload-mb", "1", log=log)
    try:
        proc.wait_ready()
        wait_for_replicas(proc.url, 2)
        yield proc
    finally:
        everything = proc.processes()
        proc.stop()
        left = alive(everything)
        for pid in left:  # only after a failure: never leave a Ray of ours running
            os.kill(pid, signal.SIGKILL)
        assert not left, f"left running after svgan-serve stopped: {sorted(left)}\n" + log.read_text()[-3000:]


def decode(data_or_path: bytes | Path) -> list[np.ndarray]:
    path = data_or_path
    if isinstance(data_or_path, bytes):
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"svgan-serve-test-{os.getpid()}-{threading.get_ident()}.mp4"
        path.write_bytes(data_or_path)
    with VideoReader(path) as reader:
        return list(reader)


def health(url: str) -> dict:
    return httpx.get(url + "/healthz", timeout=10).json()


def wait_for_replicas(url: str, count: int, timeout: float = 90.0, not_in: set[str] = frozenset()) -> set[str]:
    """Polls /healthz (each call lands on some replica) until `count` replicas outside `not_in` have answered."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            replica = health(url)["replica"]
        except (httpx.HTTPError, KeyError, ValueError):
            replica = None
        if replica and replica not in not_in:
            seen.add(replica)
            if len(seen) >= count:
                return seen
        time.sleep(0.2)
    raise AssertionError(f"only {len(seen)} of {count} replicas answered within {timeout:.0f} s")


def replica_streams(url: str, replica: str, timeout: float = 20.0) -> int:
    """Streams open on `replica`, asking /healthz until that replica answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = health(url)
        if status["replica"] == replica:
            return status["streams_open"]
    raise AssertionError(f"replica {replica} did not answer /healthz within {timeout:.0f} s")


@contextlib.contextmanager
def endless_streams_on_both_replicas(client: httpx.Client, url: str):
    """{replica: (response, its bytes from the first)}, one endless real-time stream on each of the two replicas,
    each with its MP4 header arrived. Serve sends a new request to the less loaded replica, so two requests
    usually suffice."""
    streams: dict[str, tuple[httpx.Response, object]] = {}
    extra = []
    try:
        for _ in range(2 * MAX_STREAMS):
            response = client.send(client.build_request("POST", url + "/streams", json={"seed": 4}), stream=True)
            assert response.status_code == 200
            replica = response.headers["x-svgan-replica"]
            if replica in streams:
                extra.append(response)
                continue
            pieces = response.iter_raw()  # one iterator: dropping one closes httpx's connection
            header = next(pieces)
            assert header[4:8] == b"ftyp"
            streams[replica] = (response, itertools.chain([header], pieces))
            if len(streams) == 2:
                break
        for response in extra:
            response.close()
        assert len(streams) == 2, "every stream went to the same replica"
        yield streams
    finally:
        for response, _ in streams.values():
            response.close()


def post(url: str, fields: dict, files: Path | None = None, client: httpx.Client | None = None, **kwargs):
    """POST /streams: JSON when no file is involved, else a multipart form (as curl -F sends it)."""
    upload = fields.get("identity")
    send = client or httpx
    if upload is None:
        return send.post(url + "/streams", json=fields, timeout=120, **kwargs)
    path = PHOTO if upload == "photo" else files / ("code.npy" if upload == "code" else upload)
    form = {k: str(v) for k, v in fields.items() if k != "identity"}
    with open(path, "rb") as f:
        return send.post(url + "/streams", data=form, files={"identity": (path.name, f.read())}, timeout=120,
                         **kwargs)


def test_four_concurrent_streams_match_the_cli(server, files, cli_frames):
    results: dict[int, httpx.Response] = {}

    def run(index: int) -> None:
        results[index] = post(server.url, CASES[index][0], files)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(CASES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index, response in sorted(results.items()):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "video/mp4"
        frames = decode(response.content)
        expected = cli_frames[index]
        assert len(frames) == len(expected) == [30, 20, 30, 25][index]
        worst = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, expected))
        assert worst <= 1, f"case {index}: frames differ from svgan-stream's by up to {worst} levels"
        assert not np.array_equal(frames[0], frames[-1])  # it moves


def test_a_client_that_disconnects_frees_its_stream_at_once(server):
    with httpx.Client(timeout=30) as client, endless_streams_on_both_replicas(client, server.url) as streams:
        (leaving, (response, _)), (_, (_, staying)) = streams.items()
        assert replica_streams(server.url, leaving) == 1
        response.close()
        left = time.monotonic()
        # Serve routes /healthz to the less loaded replica: the one that was left, once its slot is free. A slot
        # kept after the client left would be kept for ever (the stream is endless), so a bound generous enough
        # for a loaded machine still tells the two apart.
        while replica_streams(server.url, leaving) and time.monotonic() - left < 15.0:
            time.sleep(0.05)
        assert replica_streams(server.url, leaving) == 0, "the stream kept its slot after the client left"
        assert next(staying) and next(staying)  # the other stream goes on


def test_beyond_max_streams_is_503_and_the_open_streams_finish(server):
    # Whether the open streams keep real time is a speed figure (`svgan-bench serve`), not a test: on a loaded
    # 2-core machine (four training jobs beside the test) a paced 4-s stream took 17 s.
    # 100 frames, paced: about 8 s with the 2 s lead, so the first stream outlasts the opening of all nine. With
    # 4-s streams the ninth request came after 5.9 s on a loaded machine (two training jobs beside the suite), as
    # the first stream ended: some of its runs found no replica full.
    fields = {"seed": 2, "seconds": 10, "fps": 10}
    open_streams, rejected = [], []
    client = httpx.Client(timeout=60)
    try:
        for _ in range(2 * MAX_STREAMS + 1):  # two replicas: the ninth at the latest finds both full
            request = client.build_request("POST", server.url + "/streams", json=fields)
            response = client.send(request, stream=True)
            if response.status_code != 200:
                rejected.append(response)
                break
            open_streams.append(response)
        assert rejected, "no request was turned away"
        assert len(open_streams) >= MAX_STREAMS, "a 503 came before any replica was full"
        refused = rejected[0]
        refused.read()
        assert refused.status_code == 503
        assert refused.text.count("\n") == 0 and "busy" in json.loads(refused.text)["error"]
        start = time.monotonic()
        for _ in range(10):  # a burst of refusals costs the open streams nothing
            again = client.post(server.url + "/streams", json=fields)
            if again.status_code == 503:
                assert again.text.count("\n") == 0
        assert time.monotonic() - start < 30.0  # refused at once, not queued behind the open streams
        for response in open_streams:
            assert len(decode(response.read())) == 100
    finally:
        for response in open_streams:
            response.close()
        client.close()


@pytest.mark.parametrize("fields, status, message", [
    ({"identity": "notes.txt", "frames": 5}, 422, "cannot read identity image notes.txt"),
    ({"identity": "blank.png", "frames": 5}, 422, "no face found in blank.png"),
    ({"identity": "huge.png", "frames": 5}, 413, "6000x6000 pixels is too large"),
    ({"identity": "big.bin", "frames": 5}, 413, "too large"),
    ({"identity": "wrong.npy", "frames": 5}, 422, "shape [3, 128]"),
    ({"identity": "nan.npy", "frames": 5}, 422, "NaN"),
    ({"frames": -2}, 422, "frames must be an integer at least 1"),
    ({"frames": 5, "colour": "red"}, 422, "unknown field 'colour'"),
])
def test_bad_input_gets_a_one_line_4xx(server, files, fields, status, message):
    response = post(server.url, fields, files)
    assert response.status_code == status, response.text
    assert response.text.count("\n") == 0
    assert message in json.loads(response.text)["error"]
    assert "Traceback" not in response.text and str(files) not in response.text


def test_malformed_bodies_get_a_one_line_4xx(server):
    for content, content_type, status in ((b'{"frames": ', "application/json", 400), (b"[1, 2]", "application/json",
                                          400), (b"frames=5", "text/plain", 415)):
        response = httpx.post(server.url + "/streams", content=content, headers={"content-type": content_type})
        assert response.status_code == status and response.text.count("\n") == 0, response.text
    assert health(server.url)["status"] == "ok"


def test_metrics_reach_rays_prometheus_endpoint(server):
    wanted = ["ray_svgan_streams_open", "ray_svgan_frames_total", "ray_svgan_batch_frames_bucket",
              "ray_svgan_queue_wait_seconds_bucket", "ray_svgan_frame_latency_seconds_bucket"]
    deadline = time.monotonic() + 40
    while True:
        text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
        missing = [name for name in wanted if name not in text]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"not exported: {missing}"
    frames = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("ray_svgan_frames_total"))
    assert frames >= 105  # at least the four CLI-matched streams' frames


def test_a_dying_replica_ends_only_its_own_streams(server):
    with httpx.Client(timeout=60) as client, endless_streams_on_both_replicas(client, server.url) as streams:
        (doomed, (_, pieces)), (survivor, (_, other)) = streams.items()
        received, start = bytearray(), time.monotonic()
        while time.monotonic() - start < 1.0:  # a few fragments (one per second of video, 2 s ahead of time)
            received += next(pieces)
        os.kill(int(doomed.rsplit(":", 1)[1]), signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):  # the dead replica's stream ends, unfinished
            for piece in pieces:
                received += piece
        assert len(decode(bytes(received))) >= 1   # what arrived plays: fragmented MP4
        got, start = 0, time.monotonic()
        for piece in other:  # the other replica's stream goes on
            got += len(piece)
            if time.monotonic() - start > 2.0:
                break
        assert got > 0
    wait_for_replicas(server.url, 1, not_in={doomed, survivor})  # Serve replaced the dead replica
    response = httpx.post(server.url + "/streams", json={"frames": 5}, timeout=60)
    assert response.status_code == 200 and len(decode(response.content)) == 5


def test_sigterm_stops_the_server_and_every_process_of_its_ray(server):
    everything = server.processes()
    assert len(everything) > 5  # the CLI, GCS, raylet, Serve's controller and proxy, two replicas ...
    took = server.stop()
    assert server.process.returncode == 0
    assert took < 10.0, f"stopping took {took:.1f} s"
    deadline = time.monotonic() + 2.0
    while alive(everything) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(everything)
