"""Rectified flow's reflow (Liu et al., 2023) and a measure of how straight a flow is.

``reflow_pairs`` draws noise x₀ and carries each one along the model's ODE to its x₁: these
deterministic (x₀, x₁) pairs, not fresh independent draws, are the coupling that the next
("2-rectified") flow is trained on. Each pair costs a full ODE solve: that is reflow's price.

``straightness`` is Liu et al.'s S (their eq. 9) for a recorded trajectory on a grid from 0 to
1: S = ∫₀¹ E|| (x₁ − x₀) − dx_s/ds ||² ds, the squared gap between the velocity and the
straight line from start to end, here per example and averaged over the dimensions. A flow
with S = 0 moves on straight lines at constant speed, and one Euler step is then exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from coursekit import solvers, utils


@torch.no_grad()
def reflow_pairs(
    model,
    n: int,
    y: Tensor | None = None,
    *,
    solver: str = "rk4",
    steps: int = 25,
    chunk: int = 2000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(n, 2, *data_shape) in model space: noise at [:, 0], its ODE endpoint at [:, 1]."""
    x0 = utils.randn((n, *model.data_shape), torch.empty(0, device=model.device), generator)
    x1 = torch.cat([
        model.transport(x0[i : i + chunk], None if y is None else y[i : i + chunk],
                        solver=solver, steps=steps)
        for i in range(0, n, chunk)
    ])  # fmt: skip
    return torch.stack([x0, x1], 1)  # (n, 2, *data_shape)


def straightness(trajectory: solvers.Trajectory) -> Tensor:
    """Liu et al.'s S per example (B,): Σ_i h_i mean_d ((x_K − x_0) − (x_{i+1} − x_i)/h_i)²."""
    xs, ts = trajectory.xs, trajectory.ts.to(trajectory.xs.dtype)  # (K+1, B, ...), (K+1,)
    h = ts[1:] - ts[:-1]  # (K,)
    if not torch.allclose(ts[-1] - ts[0], torch.ones_like(ts[0])):
        raise ValueError("straightness expects a trajectory recorded on a grid from 0 to 1.")
    chord = (xs[-1] - xs[0]).flatten(1)  # (B, D)
    steps = (xs[1:] - xs[:-1]).flatten(2) / h.view(-1, 1, 1)  # (K, B, D): the velocity used
    gap = (chord[None] - steps).pow(2).mean(-1)  # (K, B)
    return (h.view(-1, 1) * gap).sum(0)  # (B,)
