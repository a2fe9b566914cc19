"""A training iteration as one CUDA graph (issue 17; CUDA only, beyond the paper).

At the paper's batch of 64 an iteration is thousands of small kernels: five critic steps with GP's double backward
through C, G's 25-step unroll with GAP's double backward, the pool's 25 steps. A GPU spends most of it waiting for
the host to launch them (docs/benchmarks.md: 0.44 s per iteration on an H200, mostly launches). Replayed as one
CUDA graph, the iteration is one launch. `torch.compile` cannot take GP's and GAP's double backwards; a graph of the
whole iteration takes whatever autograd does, given what capture asks of the captured work:

* static inputs: the host still draws each iteration's real windows (`Trainer._real_batch`) and copies them into
  the graph's buffers before each replay;
* random numbers from a generator registered with the graph, so each replay draws on from where the last one
  stopped, as the eager iteration does, and the generator's state in a checkpoint is where the run is;
* no host reads inside the iteration (a test checks on the CPU) and state changed in place: capturable Adam, the
  state pool, G's EMA, GAP's statistics, L_M's running moments;
* learning rates a replay can change: a float rate would be baked into the graph at its capture, so with
  --lr-decay the rates live in device tensors the schedule overwrites before each replay
  (`Trainer.hold_learning_rates_on_device`).

The first `warmup` iterations run eagerly on a side stream, as capture requires (lazy initialisation, cuBLAS
workspaces, Adam's state, the pool's first fill). Not yet run on a GPU: no device was lent to the sessions that
wrote it. `svgan-bench train --cuda-graph` (in `bench/gpu_round.sh`) times it and compares its losses with the
eager iteration's from the same seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# eager iterations before the capture
GRAPH_WARMUP = 3


class IterationGraph:
    """`step(real)` (an iteration's device work on its real batches, returning its losses) run eagerly `warmup`
    times, then captured once and replayed: calling it runs one iteration and returns that iteration's losses."""

    def __init__(self, step: Callable[[list[torch.Tensor]], torch.Tensor], generator: torch.Generator,
                 warmup: int = GRAPH_WARMUP):
        if warmup < 1:
            raise ValueError("a CUDA graph needs at least one eager iteration before its capture")
        self.step, self.generator, self.warmup = step, generator, warmup
        self.eager_calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.real: list[torch.Tensor] = []
        self.losses: torch.Tensor | None = None

    def __call__(self, real: list[torch.Tensor]) -> torch.Tensor:
        if self.graph is None and self.eager_calls < self.warmup:
            self.eager_calls += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                losses = self.step(real)
            torch.cuda.current_stream().wait_stream(side)
            return losses
        if self.graph is None:
            self._capture(real)
        for buffer, batch in zip(self.real, real, strict=True):
            buffer.copy_(batch)
        self.graph.replay()
        return self.losses.clone()   # the next replay overwrites the graph's own output

    def _capture(self, real: list[torch.Tensor]) -> None:
        """Record one iteration (capture runs nothing: the first replay is the iteration)."""
        self.real = [torch.empty_like(batch) for batch in real]
        graph = torch.cuda.CUDAGraph()
        if hasattr(graph, "register_generator_state"):  # newer torch registers a generator at its first draw
            graph.register_generator_state(self.generator)
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            self.losses = self.step(self.real)
        self.graph = graph
