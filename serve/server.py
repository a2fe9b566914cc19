"""The Ray Serve deployment: one replica owns its streams and batches their synthesis (DESIGN §9d).

Each replica is a FastAPI ingress that holds a backend (onnxruntime by default, no torch), admits up to
`max_streams` streams, gives each a `StreamSession` and serves its MP4 through a `StreamingResponse`. The
sessions' synthesis requests meet in `_synthesise_batch`, a `@serve.batch` method: one call renders the chunks of
all the replica's streams that are waiting. Its batch size follows the number of open streams, so a batch goes as
soon as every stream has asked, and the wait for stragglers is bounded by `batch_wait_ms`, below one frame period.

Why one deployment rather than an ingress calling a renderer deployment: a stream's frames then never cross a
process (a chunk of codes out and frames back per stream per chunk would be two more serialisations), a replica
that dies takes only its own streams with it, and the batch is still across every stream of the replica.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures' annotations as objects
# (a string `Request` would make the request a query parameter).
import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from svgan.runtime.backends import Backend, make_backend
from svgan.runtime.bundle import Bundle, load_bundle

from .config import ServeConfig
from .metrics import ReplicaMetrics
from .motion import stream_motion
from .session import Encoding, Pacing, StreamSession
from .stream_request import RequestError, StreamRequest, frame_count, read_stream_request

log = logging.getLogger("ray.serve")
app = FastAPI(title="svgan-serve", docs_url=None, redoc_url=None, openapi_url=None)


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """Errors are one line of JSON: {"error": "..."}."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


@app.exception_handler(RequestError)
async def _request_error(request: Request, error: RequestError) -> JSONResponse:
    return error_response(error.status, str(error))


@app.exception_handler(Exception)
async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("svgan-serve: internal error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error ({type(error).__name__}); the server log has the details")


class SessionResponse(StreamingResponse):
    """A stream's MP4. However the response ends (finished, the client gone before or during the body, the
    request cancelled) the session is closed and its slot freed."""

    def __init__(self, session: StreamSession, on_end, headers: dict) -> None:
        super().__init__(session.mp4(), media_type="video/mp4", headers=headers)
        self.session = session
        self.on_end = on_end

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.session.close()
            self.on_end()

    async def listen_for_disconnect(self, receive) -> None:
        try:
            await super().listen_for_disconnect(receive)
        except Exception:  # Ray's `receive` raises (TaskCancelledError) when the proxy drops a gone client's request
            pass


def warm_up(backend: Backend, bundle: Bundle) -> None:
    """Create every session once, so the first streams neither wait for it nor race to do it."""
    state, w = backend.generator_init(np.zeros((1, bundle.latent_dim), np.float32))
    backend.generator_step(np.zeros((1, bundle.latent_dim), np.float32), state)
    backend.mapping(np.zeros((1, bundle.style_dim), np.float32))
    backend.synthesis(w)
    size = bundle.encoder_input_size
    backend.encoder(np.zeros((1, 3, size, size), np.float32))


@serve.deployment
@serve.ingress(app)
class StreamServer:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.bundle = load_bundle(config.bundle_dir)
        self.backend = make_backend(config.backend, self.bundle, config.device)
        warm_up(self.backend, self.bundle)
        self.pca = self.bundle.pca()
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = ReplicaMetrics(self.replica)
        # One at a time: photo alignment (dlib) and encoding are heavy, and a burst of uploads must not starve
        # the streams that are already running.
        self._identities = ThreadPoolExecutor(1, thread_name_prefix="svgan-identity")
        self._synthesise_batch.set_batch_wait_timeout_s(config.batch_wait_ms / 1000)
        self._synthesise_batch.set_max_batch_size(1)

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "replica": self.replica, "streams_open": self.metrics.streams_open,
                "max_streams": self.config.max_streams}

    @app.get("/stats")
    async def stats(self, since: float = 0.0) -> dict:
        return self.metrics.summary(since)

    @app.post("/streams")
    async def open_stream(self, request: Request):
        if self.metrics.streams_open >= self.config.max_streams:
            self.metrics.rejected(503)
            return error_response(503, f"server busy: this replica serves {self.config.max_streams} streams "
                                  "(--max-streams); try again later", headers={"Retry-After": "1"})
        self._opened()  # from here on: a stream whose upload is still being read holds its slot too
        try:
            session, warning = await self._session(await read_stream_request(request, self.config.max_upload_bytes))
        except BaseException as e:
            self._closed()
            if isinstance(e, RequestError):
                self.metrics.rejected(e.status)
            raise
        headers = {"X-Svgan-Replica": self.replica, "Cache-Control": "no-store"}
        if warning:
            headers["X-Svgan-Warning"] = warning
        return SessionResponse(session, self._closed, headers=headers)

    async def _session(self, request: StreamRequest) -> tuple[StreamSession, str | None]:
        """The session and the identity's out-of-domain warning, if any (serve/motion.py)."""
        loop = asyncio.get_running_loop()
        motion, warning = await loop.run_in_executor(self._identities, stream_motion, request, self.bundle,
                                                     self.backend, self.pca, self.config.max_image_pixels)
        fps = request.fps or self.bundle.fps
        config = self.config
        encoding = Encoding(fps=fps, resolution=self.bundle.resolution, upscale=config.upscale, crf=config.crf,
                            preset=config.preset, threads=config.encoder_threads)
        return StreamSession(motion, self._synthesise, frame_count(request, fps), config.chunk_frames, encoding,
                             Pacing(config.lead_seconds), on_chunk=self.metrics.chunk_encoded), warning

    def _opened(self) -> None:
        self.metrics.stream_opened()
        self._synthesise_batch.set_max_batch_size(max(1, self.metrics.streams_open))

    def _closed(self) -> None:
        self.metrics.stream_closed()
        self._synthesise_batch.set_max_batch_size(max(1, self.metrics.streams_open))

    async def _synthesise(self, codes: np.ndarray) -> np.ndarray:
        return await self._synthesise_batch((time.perf_counter(), codes))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def _synthesise_batch(self, requests: list[tuple[float, np.ndarray]]) -> list[np.ndarray]:
        """The chunks of W+ codes of many streams -> their frames, in one synthesis call."""
        start = time.perf_counter()
        chunks = [codes for _, codes in requests]
        frames = await asyncio.to_thread(self.backend.synthesis, np.concatenate(chunks))
        self.metrics.batch_synthesised(len(frames), [start - asked for asked, _ in requests])
        return np.split(frames, np.cumsum([len(c) for c in chunks])[:-1])
