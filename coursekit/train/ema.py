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

    After each optimizer step, ``ema <- decay * ema + (1 - decay) * param`` for every
    parameter; buffers (BatchNorm statistics, noise schedules) are copied, not averaged.
    The average starts at the model's initial parameters, so it needs about
    ``1 / (1 - decay)`` steps (1000 for 0.999) to forget them: use a smaller decay for
    short runs.

    ``module`` is the averaged copy of the model (in eval mode, without gradients).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), e.g. 0.999; got {decay}.")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for avg, p in zip(self.module.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1.0 - self.decay)  # avg + (1 - decay) (p - avg)
        for avg, b in zip(self.module.buffers(), model.buffers()):
            avg.copy_(b)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict[str, Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.module.load_state_dict(state)
