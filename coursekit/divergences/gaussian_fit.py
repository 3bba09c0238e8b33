"""Fitting one 1-D Gaussian to a density by forward or reverse KL, on a quadrature grid.

Forward KL(p || q) covers every mode of p (moment matching); reverse KL(q || p) seeks one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from coursekit.divergences.f_divergences import gaussian_log_prob

# ----------------------------------------------------------------------------------------------
# fitting one Gaussian by forward or reverse KL, on a quadrature grid


@dataclass
class GaussianFit:
    """A fitted 1-D Gaussian and the KL it reached."""

    mu: float
    std: float
    kl: float
    losses: list[float] = field(default_factory=list)


def fit_gaussian(
    log_p: Callable[[Tensor], Tensor],
    grid: Tensor,
    *,
    direction: str,
    mu0: float = 0.5,
    std0: float = 1.0,
    steps: int = 500,
    lr: float = 0.05,
) -> GaussianFit:
    """Fit ``q = N(mu, std^2)`` to p by minimising KL(p || q) (``"forward"``) or KL(q || p)
    (``"reverse"``), both computed by quadrature on ``grid`` (float64, deterministic).

    Forward KL: ``int p (log p - log q)``, which only needs q where p has mass: mode covering.
    Reverse KL: ``int q (log q - log p)``, infinite unless q avoids where p ~ 0: mode seeking.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}.")
    mu = torch.tensor(float(mu0), dtype=grid.dtype, requires_grad=True)
    log_std = torch.tensor(math.log(std0), dtype=grid.dtype, requires_grad=True)
    opt = torch.optim.Adam([mu, log_std], lr=lr)
    lp = log_p(grid)

    def kl() -> Tensor:
        lq = gaussian_log_prob(grid, mu, log_std.exp())
        if direction == "forward":
            return torch.trapezoid(torch.exp(lp) * (lp - lq), grid)
        return torch.trapezoid(torch.exp(lq) * (lq - lp), grid)

    losses = []
    for _ in range(steps):
        loss = kl()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(kl())
    return GaussianFit(mu=mu.item(), std=log_std.exp().item(), kl=final, losses=losses)
