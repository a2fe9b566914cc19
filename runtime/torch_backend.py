"""The PyTorch backend: the fast path on GPUs without TensorRT (DESIGN §9c, issue 14).

It runs the PyTorch weights the bundle carries (`weights.safetensors`: G's EMA weights and the whole pSp)
through `svgan.models`, so it imports torch; the ort and trt backends do not. Synthesis comes in two kinds:

* fast (the default): `FastSynthesis` — constant weights precomputed once, fp16 with `--fp16`, channels-last on
  CUDA, the up-sampling FIR folded into the conv weights at high resolution, bias + noise + activation in one
  epilogue. On CUDA each batch size is captured once as a CUDA graph: a 1024² frame is ~150 launches of small
  kernels, and at batch 1 launching them costs more than computing them.
* eager (`fast=False`): the decoder's own batch-friendly modules, op by op — the baseline the benchmark compares
  the fast path against.

For streams, `stream_renderer` (runtime/torch_stream.py) puts G's steps for a whole batch, the offset, synthesis
and the colour conversion into the same graph.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from svgan.errors import UserError
from svgan.models import (PSP, FastSynthesis, FastSynthesisConfig, Generator, TemporalGenerator,
                          load_torch_weights)

from .backends import State
from .bundle import Bundle
from .torch_colour import quantise_rgb


def check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to torch")


class TorchBackend:
    name = "torch"

    def __init__(self, generator: TemporalGenerator, decoder: Generator, device: str = "cpu", fp16: bool = False,
                 fast: bool = True, psp: PSP | None = None, synthesis_config: FastSynthesisConfig | None = None):
        """G and the StyleGAN2 decoder; `psp` (whose decoder `decoder` is) only for `encoder`. `fast=False`: the
        eager baseline; `synthesis_config` overrides the fast path's defaults (the benchmark's variants)."""
        check_device(device)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        # fp16 convolutions are a CUDA feature; on the CPU half precision would only be slow.
        self.dtype = torch.float16 if fp16 and self.cuda else torch.float32
        self.generator = generator.to(self.device).eval()
        self.psp = None if psp is None else psp.to(self.device).eval()
        self.decoder = decoder.to(self.device).eval()
        self.fast = fast
        if fast:
            config = synthesis_config or FastSynthesisConfig(
                dtype="float16" if self.dtype == torch.float16 else "float32", channels_last=self.cuda)
            self.synthesize = FastSynthesis(self.decoder, config).to(self.device).eval()
        else:  # a copy, so that mapping keeps the fp32 decoder
            self.synthesize = copy.deepcopy(self.decoder).use_modconv("export").to(self.dtype).synthesize
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str = "cpu", fp16: bool = False, fast: bool = True
                    ) -> "TorchBackend":
        check_device(device)
        generator, psp = load_torch_weights(bundle.torch_weights_file(), device)
        return cls(generator, psp.decoder, device, fp16, fast, psp=psp)

    def tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device, dtype)

    @torch.no_grad()
    def generator_init(self, i: np.ndarray) -> tuple[State, np.ndarray]:
        state, w = self.generator.init(self.tensor(i))
        return [h.cpu().numpy() for h in state], w.cpu().numpy()

    @torch.no_grad()
    def generator_step(self, s: np.ndarray, state: State) -> tuple[State, np.ndarray]:
        state, w = self.generator.step(self.tensor(s), tuple(self.tensor(h) for h in state))
        return [h.cpu().numpy() for h in state], w.cpu().numpy()

    @torch.no_grad()
    def mapping(self, z: np.ndarray) -> np.ndarray:
        return self.decoder.mapping(self.tensor(z)).cpu().numpy()

    def render(self, wplus: torch.Tensor) -> torch.Tensor:
        """W+ [B, S, D] (float32, on the device) -> the image [B, 3, R, R] in the synthesis dtype, unclamped."""
        return self.synthesize(wplus.to(self.dtype))

    @torch.no_grad()
    def synthesis(self, wplus: np.ndarray, rgb: bool = True) -> np.ndarray:
        w = self.tensor(wplus)
        if not rgb:
            return self.render(w).float().cpu().numpy()
        if not (self.cuda and self.fast):
            return quantise_rgb(self.render(w)).cpu().numpy()
        graph, static_in, static_out = self._graph(w.shape[0])
        static_in.copy_(w)
        graph.replay()
        return static_out.cpu().numpy()

    def _graph(self, batch: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        if batch not in self._graphs:
            static_in = torch.zeros(batch, self.decoder.n_styles, self.decoder.config.style_dim, device=self.device)
            graph, static_out = capture(lambda: quantise_rgb(self.render(static_in)))
            self._graphs[batch] = (graph, static_in, static_out)
        return self._graphs[batch]

    @torch.no_grad()
    def encoder(self, image: np.ndarray) -> np.ndarray:
        if self.psp is None:
            raise UserError("this torch backend was built without pSp's encoder")
        return (self.psp.encoder(self.tensor(image)) + self.psp.latent_avg).cpu().numpy()

    def stream_renderer(self, latent_dim: int, offset: np.ndarray, seed: int, batch: int, yuv420p: bool,
                        burn_in: int = 0):
        from .torch_stream import TorchStreamRenderer

        return TorchStreamRenderer(self, latent_dim, offset, seed, batch, yuv420p, burn_in)


def capture(body, warmup: int = 2) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Captures `body()` (a function of static tensors) as a CUDA graph; returns it and its static output.

    The warm-up runs on a side stream, as CUDA graphs require (lazy initialisation, cuDNN's algorithm search and
    allocations must not happen during capture). A body that updates state in place must save and restore it
    around this call: the warm-up runs execute it.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(warmup):
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out = body()
    return graph, out
