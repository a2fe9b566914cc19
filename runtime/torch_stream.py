"""One stream's frames on the torch backend: G's steps, offset, synthesis and colour conversion per batch.

For a batch of B frames starting from G's memory `state` (whose top cell is the current latent l_k, since
l_0 = i = h3 after init and l_{k+1} = h3 after each step):

    l_k .. l_{k+B-1} = state[-1] before each of B steps of P (advance(s_k, state) for the batch's B inputs s)
    W+ = A(T(l)) + Delta                       # all B codes in one call of T and the style maps
    frames = yuv420p(synthesis(W+))            # or uint8 RGB

Everything is a function of static tensors (`state`, `s`), so on CUDA it is captured once per stream as a CUDA
graph and each batch is one `replay()`, no host synchronisation inside. The new memory is written back into
`state` in the graph, and the frames are copied asynchronously into pinned host memory; `submit` returns at once
and the function it returns waits for the copy (a CUDA event), so the GPU renders batch k+1 while the host
encodes batch k. The inputs s come from the same NumPy generator, drawn in the same order, as `MotionSource`'s,
so a seed gives the same stream on every backend.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .stream import FrameBatch
from .torch_backend import TorchBackend, capture
from .torch_colour import quantise_rgb, rgb_to_yuv420p

# Host buffers in the ring: `run_stream` keeps one batch in flight while the previous one is handed to the
# encoder, whose `write` copies it before returning, so the copy of batch k+2 never meets batch k's readers.
HOST_BUFFERS = 2


class TorchStreamRenderer:
    def __init__(self, backend: TorchBackend, latent_dim: int, offset: np.ndarray, seed: int, batch: int,
                 yuv420p: bool, burn_in: int = 0):
        self.backend = backend
        self.batch = batch
        self.format = "yuv420p" if yuv420p else "rgb24"
        self.rng = np.random.default_rng([seed, 1])  # as MotionSource: the identity's draw uses `seed` itself
        i = self.rng.standard_normal((1, latent_dim), dtype=np.float32)
        with torch.no_grad():
            state = backend.generator.init(backend.tensor(i))[0]
            for _ in range(burn_in):  # one draw per step, as MotionSource takes them
                s = self.rng.standard_normal((1, latent_dim), dtype=np.float32)
                state = backend.generator.advance(backend.tensor(s), state)
            self.state = [h.clone() for h in state]
        self.s = torch.zeros(batch, 1, latent_dim, device=backend.device)
        self.offset = backend.tensor(offset)
        self.ahead = 1 if backend.cuda else 0
        self.graph: torch.cuda.CUDAGraph | None = None
        if backend.cuda:
            saved = [h.clone() for h in self.state]  # the warm-up runs step the memory
            self.graph, self.frames = capture(self._render_batch)
            for h, h0 in zip(self.state, saved):
                h.copy_(h0)
            # Pinned host memory on both sides, so that neither copy waits for the GPU: the inputs s go up and the
            # frames come down asynchronously, in stream order with the graph.
            self.host_s = [torch.empty(self.s.shape, pin_memory=True) for _ in range(HOST_BUFFERS)]
            self.host = [torch.empty(self.frames.shape, dtype=torch.uint8, pin_memory=True)
                         for _ in range(HOST_BUFFERS)]
            self.copied = [torch.cuda.Event() for _ in range(HOST_BUFFERS)]
            self.submitted = 0

    @torch.no_grad()
    def _render_batch(self) -> torch.Tensor:
        generator, state, latents = self.backend.generator, tuple(self.state), []
        for k in range(self.batch):
            latents.append(state[-1])
            state = generator.advance(self.s[k], state)
        wplus = generator.to_wplus(torch.cat(latents)) + self.offset
        for h, new in zip(self.state, state):  # after W+: the batch's first latent is self.state[-1] itself
            h.copy_(new)
        image = self.backend.render(wplus)
        return rgb_to_yuv420p(image) if self.format == "yuv420p" else quantise_rgb(image)

    def submit(self, count: int) -> Callable[[], FrameBatch]:
        """Starts rendering the next `count` (<= batch) frames; the returned function waits for them."""
        if not 0 < count <= self.batch:
            raise ValueError(f"count must be in 1..{self.batch}, got {count}")
        # A whole batch of inputs even for a short last batch: the draws stay in MotionSource's order.
        if self.graph is None:
            self.s.copy_(torch.from_numpy(self.rng.standard_normal(tuple(self.s.shape), dtype=np.float32)))
            frames = self._render_batch()[:count].numpy()
            return lambda: FrameBatch(frames, self.format)
        slot = self.submitted % HOST_BUFFERS
        self.submitted += 1
        self.rng.standard_normal(dtype=np.float32, out=self.host_s[slot].numpy())
        self.s.copy_(self.host_s[slot], non_blocking=True)
        self.graph.replay()
        host = self.host[slot][:count]
        host.copy_(self.frames[:count], non_blocking=True)
        self.copied[slot].record()

        def collect() -> FrameBatch:
            self.copied[slot].synchronize()
            return FrameBatch(host.numpy(), self.format)
        return collect
