"""The PyTorch backend: the fast path on GPUs without TensorRT (fp16, channels-last, CUDA graphs).

It runs the PyTorch weights the bundle carries (`weights.safetensors`: G's EMA weights and the whole pSp)
through `svgan.models`, so it imports torch; the ort and trt backends do not. On CUDA, synthesis is
captured once per batch size as a CUDA graph: a 1024² frame is ~150 launches of small kernels, and at
batch 1 launching them costs more than computing them.
"""

from __future__ import annotations

import numpy as np
import torch

from svgan.errors import UserError
from svgan.models import load_torch_weights

from .backends import State
from .bundle import Bundle


class TorchBackend:
    name = "torch"

    def __init__(self, bundle: Bundle, device: str = "cpu", fp16: bool = False):
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available to torch")
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 and device == "cuda" else torch.float32
        self.generator, psp = load_torch_weights(bundle.torch_weights_file(), device)
        self.encoder_net = psp.encoder
        self.latent_avg = psp.latent_avg
        self.decoder = psp.decoder.use_modconv("export").to(self.dtype)
        if self.device.type == "cuda":
            self.decoder = self.decoder.to(memory_format=torch.channels_last)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device, dtype)

    @torch.no_grad()
    def generator_init(self, i: np.ndarray) -> tuple[State, np.ndarray]:
        state, w = self.generator.init(self._tensor(i))
        return [h.cpu().numpy() for h in state], w.cpu().numpy()

    @torch.no_grad()
    def generator_step(self, s: np.ndarray, state: State) -> tuple[State, np.ndarray]:
        state, w = self.generator.step(self._tensor(s), tuple(self._tensor(h) for h in state))
        return [h.cpu().numpy() for h in state], w.cpu().numpy()

    @torch.no_grad()
    def mapping(self, z: np.ndarray) -> np.ndarray:
        return self.decoder.mapping(self._tensor(z, self.dtype)).float().cpu().numpy()

    def _to_rgb(self, image: torch.Tensor) -> torch.Tensor:
        return ((image.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    def _render(self, wplus: torch.Tensor) -> torch.Tensor:
        return self._to_rgb(self.decoder.synthesize(wplus))

    @torch.no_grad()
    def synthesis(self, wplus: np.ndarray, rgb: bool = True) -> np.ndarray:
        w = self._tensor(wplus, self.dtype)
        if not rgb:
            return self.decoder.synthesize(w).float().cpu().numpy()
        if self.device.type != "cuda":
            return self._render(w).numpy()
        graph, static_in, static_out = self._graph(w.shape[0])
        static_in.copy_(w)
        graph.replay()
        return static_out.cpu().numpy()

    def _graph(self, batch: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        if batch not in self._graphs:
            static_in = torch.zeros(batch, self.decoder.n_styles, self.decoder.config.style_dim,
                                    device=self.device, dtype=self.dtype)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs require
                for _ in range(2):
                    self._render(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._render(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
        return self._graphs[batch]

    @torch.no_grad()
    def encoder(self, image: np.ndarray) -> np.ndarray:
        return (self.encoder_net(self._tensor(image)) + self.latent_avg).cpu().numpy()
