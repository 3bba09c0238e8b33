"""An exponential moving average of a model's parameters (Polyak averaging).

``fit(..., ema=0.999)`` keeps one for the model; ``Adversarial(..., ema_decay=0.999)`` keeps
one for the generator only (averaging a discriminator would be pointless: it is never sampled).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class EMA:
    """An exponential moving average of a model's parameters (Polyak averaging).

    After update ``t`` the average is the weighted mean of the parameters after steps
    ``1 .. t`` with weights proportional to ``decay ** (t - i)``: the usual recursion
    ``ema <- decay * ema + (1 - decay) * param`` with Adam's bias correction, that is, each
    update moves the average by the weight ``(1 - decay) / (1 - decay ** t)`` (1 at the first
    update, ``1 - decay`` once ``t`` is large). Without the correction the average would
    start at the model's *initial* parameters and keep ``decay ** t`` of them: 42% after 870
    steps at 0.999, enough to ruin a short run's samples. Buffers (BatchNorm statistics,
    noise schedules) are copied, not averaged.

    ``module`` is the averaged copy of the model (in eval mode, without gradients);
    ``updates`` counts the updates (saved in ``state_dict`` so a resumed run continues).
    """

    UPDATES_KEY = "_ema_updates"

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), e.g. 0.999; got {decay}.")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = (1.0 - self.decay) / (1.0 - self.decay**self.updates)  # 1 - decay for large t
        for avg, p in zip(self.module.parameters(), model.parameters()):
            avg.lerp_(p.detach(), weight)  # avg + weight (p - avg)
        for avg, b in zip(self.module.buffers(), model.buffers()):
            avg.copy_(b)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict[str, Tensor]:
        return {**self.module.state_dict(), self.UPDATES_KEY: torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load an average; a bare model state (no update count) counts as fully warmed up."""
        state = dict(state)
        updates = state.pop(self.UPDATES_KEY, None)
        self.module.load_state_dict(state)
        self.updates = int(updates) if updates is not None else _WARM

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, updates={self.updates})"


# an update count at which decay ** updates is 0 in floating point for any decay < 1 used in
# practice: the correction is then off, as for an average of unknown age
_WARM = 10**9
