"""Windows that start late: a pool of G's GRU states advanced without gradient (DESIGN §5b, beyond the paper).

The paper's critic only sees 25-frame windows that start at G's initial state `init(i)`, so nothing in training
constrains the regime the GRU settles into after hundreds of steps, and long streams drift into one that is
narrower than the data and offset from it. The pool keeps `size` states of P (the GRU stack) that G keeps
stepping with fresh noise s_k, `advance` steps after every generator update and without gradient (R2D2's
burn-in; StyleGAN-V's frames at random offsets); each iteration a `reset` fraction of them starts again from
`init(i)`, so the ages spread from 0 to many windows (mean age `advance / reset` frames, 1,250 at the defaults)
and the pool follows G as it trains. A fake window taken from the pool is `window` more steps of G from a pool
state, with gradient through those steps only (truncated backpropagation through time).
"""

from __future__ import annotations

from typing import Any

import torch

from svgan.models import TemporalGenerator


class StatePool:
    """`size` GRU states of G (one tensor per cell, [size, dim]) and their ages in frames."""

    def __init__(self, size: int, reset: float, device: torch.device):
        if size < 1:
            raise ValueError("a state pool needs at least one state")
        if not 0 < reset <= 1:
            raise ValueError(f"the pool's reset fraction must be in (0, 1], got {reset}")
        self.size, self.reset_fraction, self.device = size, reset, device
        self.states: tuple[torch.Tensor, ...] = ()
        self.ages = torch.zeros(size, dtype=torch.long, device=device)

    @property
    def filled(self) -> bool:
        return bool(self.states)

    @torch.no_grad()
    def fill(self, generator: TemporalGenerator, noise: torch.Generator) -> None:
        """Every state fresh from `init(i)`, age 0."""
        i = torch.randn(self.size, generator.config.latent_dim, generator=noise, device=self.device)
        self.states = tuple(h.detach() for h in generator.init(i)[0])
        self.ages.zero_()

    @torch.no_grad()
    def advance(self, generator: TemporalGenerator, steps: int, noise: torch.Generator) -> None:
        """Step every state `steps` times with fresh s_k, then restart a `reset` fraction from `init(i)`."""
        s = torch.stack([torch.randn(self.size, generator.config.latent_dim, generator=noise, device=self.device)
                         for _ in range(steps)], 1)   # drawn step by step, as a frame-by-frame stream draws them
        state = generator.rollout_latents(self.states, s)[1]
        self.ages += steps
        n_reset = max(1, round(self.reset_fraction * self.size))
        chosen = torch.randperm(self.size, generator=noise, device=self.device)[:n_reset]
        i = torch.randn(n_reset, generator.config.latent_dim, generator=noise, device=self.device)
        fresh = generator.init(i)[0]
        for h, stepped, f in zip(self.states, state, fresh):  # in place: a CUDA graph replays into these tensors
            h.copy_(stepped.index_copy(0, chosen, f))
        self.ages[chosen] = 0

    def sample(self, batch: int, noise: torch.Generator) -> tuple[torch.Tensor, ...]:
        """`batch` states drawn without replacement (detached: gradient stops at the window's start)."""
        chosen = torch.randperm(self.size, generator=noise, device=self.device)[:batch]
        return tuple(h[chosen] for h in self.states)

    def sample_by_age(self, batch: int, strata: int, noise: torch.Generator
                      ) -> tuple[tuple[torch.Tensor, ...], list[int]]:
        """`batch` states drawn evenly from `strata` age strata (the pool sorted by age and cut into `strata`
        equal parts, youngest first), returned stratum after stratum with the stratum sizes. A draw that is
        balanced over ages lets a term ask every age for the data's moments, not only their mixture."""
        order = torch.argsort(self.ages, stable=True)
        sizes = [len(part) for part in torch.arange(batch).tensor_split(strata)]
        chosen = [part[torch.randperm(len(part), generator=noise, device=self.device)[:n]]
                  for part, n in zip(order.tensor_split(strata), sizes)]
        if any(len(c) < n for c, n in zip(chosen, sizes)):
            raise ValueError(f"{batch} states in {strata} age strata need {max(sizes)} per stratum; "
                             f"the pool holds {self.size}")
        chosen_all = torch.cat(chosen)
        return tuple(h[chosen_all] for h in self.states), sizes

    def state_dict(self) -> dict[str, Any]:
        return {"states": [h.clone() for h in self.states], "ages": self.ages.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # copies: `advance` changes them in place
        self.states = tuple(h.to(self.device, copy=True) for h in state["states"])
        self.ages = state["ages"].to(self.device, copy=True)
