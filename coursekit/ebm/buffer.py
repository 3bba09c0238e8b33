"""The replay buffer of persistent short-run chains (Du & Mordatch, 2019).

Each training step draws a batch of chain states: most continue earlier chains (so a few
Langevin steps per update add up to long chains), a fraction ``reinit`` restarts from the
initial distribution (so the buffer does not collapse onto a few modes). After the Langevin
steps the states are written back in place of the ones drawn.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from coursekit.errors import CourseError


class BufferError(CourseError, ValueError):
    """A replay buffer asked for something it cannot give."""


class ReplayBuffer:
    """``capacity`` chain states of ``shape``, started by ``init(n, generator) -> (n, *shape)``."""

    def __init__(
        self,
        capacity: int,
        init: Callable[[int, torch.Generator | None], Tensor],
        *,
        reinit: float = 0.05,
    ):
        if capacity < 1:
            raise BufferError(f"capacity must be a positive integer, got {capacity}.")
        if not 0.0 <= reinit <= 1.0:
            raise BufferError(f"reinit is a fraction in [0, 1], got {reinit}.")
        self.capacity, self.init, self.reinit = capacity, init, reinit
        self.states: Tensor | None = None
        self._index: Tensor | None = None

    def draw(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n states: a ``reinit`` fraction fresh from ``init``, the rest from the buffer."""
        if self.states is None:
            self.states = self.init(self.capacity, generator).detach()
        if n > self.capacity:
            raise BufferError(
                f"asked for {n} states from a buffer of {self.capacity}; "
                "make the capacity at least the batch size."
            )
        dev = generator.device if generator is not None else self.states.device
        idx = torch.randperm(self.capacity, generator=generator, device=dev)[:n]
        self._index = idx.to(self.states.device)
        x = self.states[self._index].clone()
        fresh = torch.rand(n, generator=generator, device=dev).to(x.device) < self.reinit
        if fresh.any():  # restarts replace the drawn states, never the buffer's others
            x[fresh] = self.init(int(fresh.sum()), generator).to(x)
        return x

    def push(self, x: Tensor) -> None:
        """Write the states after the chain steps back where the last ``draw`` took them."""
        if self._index is None or len(self._index) != len(x):
            raise BufferError("push(x) must follow draw(n) with the same n.")
        self.states[self._index] = x.detach().to(self.states)
        self._index = None

    def state_dict(self) -> dict:
        return {
            "states": None if self.states is None else self.states.clone(),
            "capacity": self.capacity,
            "reinit": self.reinit,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise BufferError(
                f"the saved buffer holds {state['capacity']} states, this one "
                f"{self.capacity}; build it with the saved capacity."
            )
        self.reinit = state["reinit"]
        self.states = None if state["states"] is None else state["states"].clone()
        self._index = None
