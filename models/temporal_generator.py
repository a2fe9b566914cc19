"""StyleVideoGAN's temporal generator G (paper §3, DESIGN §3).

    i ~ N(0,1)^32 per sequence, s_k ~ N(0,1)^32 per step.
    H:  MLP that "hallucinates" the initial memory of the three lower GRU cells, (h0, h1, h2) = H(i); h3 = i.
    P:  a stack of 4 GRU cells; ((h0..h3)', l_{k+1}) = P(s_k, (h0..h3)), l_k = the top cell's state, l_0 = i.
    T:  MLP R^32 -> R^512 that "translates" the motion latent l_k,
    A:  one learned affine map per style, giving w_k in W+ = R^{n_styles x 512}.

The runtime needs G one frame at a time, so the model is written as `init(i) -> (state, w_0)` and
`step(s_k, state) -> (state', w_{k+1})`; `unroll` (training) computes the same recurrence for a whole window.
The GRU cell is written out in plain ops rather than `nn.GRUCell` so that the gradient angle penalty can
differentiate through it twice (create_graph=True) on every device and it exports to ONNX as matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

GRUState = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class TemporalGeneratorConfig:
    """Sizes of G. The paper fixes 4 GRU cells and 32-d i, s_k and l_k; the widths are our choice.

    `hidden_dim` is the memory of the three lower cells (the top cell's memory is l_k, 32-d);
    128 keeps G small (about 0.5 M parameters besides the style maps) while giving the lower cells
    room to carry slow dynamics (phrases, head drift) beside the fast ones.
    """

    latent_dim: int = 32          # |i| = |s_k| = |l_k| (paper)
    n_cells: int = 4              # GRU cells in P (paper)
    hidden_dim: int = 128         # memory of cells 0 .. n_cells-2
    h_mlp_width: int = 256        # H: latent_dim -> ... -> (n_cells-1) * hidden_dim
    h_mlp_layers: int = 2
    t_mlp_width: int = 512        # T: latent_dim -> ... -> style_dim
    t_mlp_layers: int = 3
    n_styles: int = 18            # 2 * log2(resolution) - 2
    style_dim: int = 512

    def __post_init__(self) -> None:
        if self.n_cells < 2:
            raise ValueError("P needs at least 2 GRU cells (H initialises all but the top one)")


def mlp(in_dim: int, width: int, out_dim: int, layers: int) -> nn.Sequential:
    """`layers` linear layers with LeakyReLU(0.2) between them (none after the last)."""
    dims = [in_dim] + [width] * (layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*modules[:-1])


class GRUCell(nn.Module):
    """A GRU cell with `torch.nn.GRUCell`'s parameters and maths (gates r, z, n in that order)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        bound = hidden_size ** -0.5
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gi = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        gh = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(gi[0] + gh[0])
        z = torch.sigmoid(gi[1] + gh[1])
        n = torch.tanh(gi[2] + r * gh[2])
        return (1 - z) * n + z * h


def _pad_gates(weight: torch.Tensor, width: int) -> torch.Tensor:
    """A GRU weight [3h, d] or bias [3h] with each gate's block zero-padded to h = d = `width`."""
    gates = weight.unflatten(0, (3, -1))                     # [3, h, d] or [3, h]
    rows = (0, width - gates.shape[1])
    return F.pad(gates, (0, width - gates.shape[2], *rows) if weight.ndim == 2 else rows).flatten(0, 1)


class StyleAffine(nn.Module):
    """One affine map R^512 -> R^512 per style (n_styles of them), applied as one batched einsum."""

    def __init__(self, n_styles: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(dim).repeat(n_styles, 1, 1) + torch.randn(n_styles, dim, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(n_styles, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,soi->bso", x, self.weight) + self.bias


class TemporalGenerator(nn.Module):
    """G: (i, s_0..s_{t-2}) -> w_0..w_{t-1} in W+."""

    def __init__(self, config: TemporalGeneratorConfig = TemporalGeneratorConfig()):
        super().__init__()
        c = config
        self.config = c
        self.H = mlp(c.latent_dim, c.h_mlp_width, (c.n_cells - 1) * c.hidden_dim, c.h_mlp_layers)
        sizes = [c.hidden_dim] * (c.n_cells - 1) + [c.latent_dim]
        inputs = [c.latent_dim] + sizes[:-1]
        self.P = nn.ModuleList(GRUCell(i, h) for i, h in zip(inputs, sizes))
        self.T = mlp(c.latent_dim, c.t_mlp_width, c.style_dim, c.t_mlp_layers)
        self.A = StyleAffine(c.n_styles, c.style_dim)

    def to_wplus(self, latent: torch.Tensor) -> torch.Tensor:
        """l_k (B x 32) -> w_k (B x n_styles x 512) through T and the per-style affine maps."""
        return self.A(self.T(latent))

    def init(self, i: torch.Tensor) -> tuple[GRUState, torch.Tensor]:
        """Initial memory from i: (h0, h1, h2) = H(i), h3 = i; returns (state, w_0) with l_0 = i."""
        lower = self.H(i).split(self.config.hidden_dim, dim=-1)
        return (*lower, i), self.to_wplus(i)

    def step(self, s: torch.Tensor, state: GRUState) -> tuple[GRUState, torch.Tensor]:
        """One step of P: feed s_k up the cell stack; returns (state', w_{k+1}), l_{k+1} = state'[-1]."""
        new_state = self.advance(s, state)
        return new_state, self.to_wplus(new_state[-1])

    def advance(self, s: torch.Tensor, state: GRUState) -> GRUState:
        """P alone, without T and the style maps: the step for states whose W+ code nobody reads."""
        x, new_state = s, []
        for cell, h in zip(self.P, state):
            x = cell(x, h)
            new_state.append(x)
        return tuple(new_state)

    def unroll(self, i: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training view: i (B x 32), s (B x (t-1) x 32) -> (w: B x t x n_styles x 512, l: B x t x 32)."""
        state, w = self.init(i)
        if s.shape[1] == 0:  # a one-frame window
            return w[:, None], i[:, None]
        ws, latents, _ = self.rollout(state, s)
        return torch.cat([w[:, None], ws], 1), torch.cat([i[:, None], latents], 1)

    def rollout(self, state: GRUState, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, GRUState]:
        """Step P from `state` once per s_k (s: B x n x 32): (w: B x n x n_styles x 512, l: B x n x 32, the
        final state). A window that starts from a state reached earlier (training's state pool) is this."""
        latent, state = self.rollout_latents(state, s)
        # T and the style maps for every step at once: one large GEMM instead of one small one per step (the
        # recurrence is P alone). 1.6x faster forward + backward for the paper's widths at batch 64 on 2 CPU cores,
        # and on a GPU n times fewer launches; the same numbers as `step` frame by frame (a test checks).
        ws = self.to_wplus(latent.flatten(0, 1)).unflatten(0, latent.shape[:2])
        return ws, latent, state

    def rollout_latents(self, state: GRUState, s: torch.Tensor) -> tuple[torch.Tensor, GRUState]:
        """P alone from `state` once per s_k (s: B x n x 32): (l: B x n x 32, the final state).

        The cells are stepped as a wavefront: cell j takes its step k at wave k + j, when cell j - 1 has just
        made its input, so each wave steps every cell at once with one batched matmul per gate input (the cells'
        weights stacked, zero-padded to the widest cell) and one set of gate ops: n + cells - 1 waves instead of
        n x cells cell steps, 3.6x fewer kernels for a 25-step window of 4 cells, forward and in both backwards
        (issue 17: an iteration is mostly per-kernel overhead, on the CPU as on a GPU). Padded units have zero
        weights and biases, so they stay at 0: r = z = 1/2 and n = 0 leave a zero memory zero. On this 2-core
        CPU at the demo world's widths, 25 steps forward and backward took 15.8 ms against 24.7 cell by cell for 48
        windows and 48.5 against 58.5 for 256 on both cores (on one thread, from ~80 windows up, the cell loop is
        faster: 61 against 78 ms for 256)."""
        cells, steps = len(self.P), s.shape[1]
        if steps == 0:
            return s.new_zeros(s.shape[0], 0, self.config.latent_dim), state
        width = max(cell.hidden_size for cell in self.P)   # also the widest input: each cell reads the one below
        w_ih, w_hh, b_ih, b_hh = (torch.stack([_pad_gates(getattr(cell, name), width) for cell in self.P])
                                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        # [cells, width, 3 width], laid out once for every wave's matmul (a transposed view would be copied in each)
        w_ih, w_hh = w_ih.transpose(1, 2).contiguous(), w_hh.transpose(1, 2).contiguous()
        h = torch.stack([F.pad(x, (0, width - x.shape[-1])) for x in state])    # [cells, B, width]
        s = F.pad(s, (0, width - s.shape[-1]))
        latents = []
        for wave in range(steps + cells - 1):
            below = s[:, min(wave, steps - 1)]                # cell 0's input; idle after the last step
            gi = torch.baddbmm(b_ih[:, None], torch.cat([below[None], h[:-1]]), w_ih).chunk(3, -1)
            gh = torch.baddbmm(b_hh[:, None], h, w_hh).chunk(3, -1)
            r = torch.sigmoid(gi[0] + gh[0])
            z = torch.sigmoid(gi[1] + gh[1])
            new = (1 - z) * torch.tanh(gi[2] + r * gh[2]) + z * h
            first, last = max(0, wave - steps + 1), min(cells - 1, wave)   # the cells with a step in this wave
            h = new if (first, last) == (0, cells - 1) else torch.cat([h[:first], new[first:last + 1], h[last + 1:]])
            if wave >= cells - 1:
                latents.append(h[-1])
        sizes = [cell.hidden_size for cell in self.P]
        return torch.stack(latents, 1)[..., :sizes[-1]], tuple(x[:, :size] for x, size in zip(h, sizes))

    def forward(self, i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.unroll(i, s)[0]

    def sample_inputs(self, batch: int, length: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw i (batch x 32) and s (batch x (length-1) x 32) from N(0, 1)."""
        device = device if device is not None else self.A.bias.device
        d = self.config.latent_dim
        i = torch.randn(batch, d, generator=generator, device=device)
        s = torch.randn(batch, length - 1, d, generator=generator, device=device)
        return i, s
