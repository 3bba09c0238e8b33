"""Toy 2-D distributions for density estimation and sampling demos.

``toy_2d(name, n, seed=0)`` returns ``n`` i.i.d. points, a float32 tensor of shape
``(n, 2)``. Every set is scaled to lie roughly in ``[-4, 4]^2`` (about unit scale per
coordinate), so one plotting range and one learning rate serve them all. The shapes
follow the FFJORD / RealNVP toy benchmarks (Grathwohl et al., 2019), with one change:
every point is drawn independently (mixture components are sampled, not split in
fixed halves), so any ``n`` is valid and any prefix of a sample is itself a sample.

Randomness comes only from a private ``torch.Generator`` seeded with ``seed``: the
same ``(name, n, seed)`` always gives the same tensor, and the global RNG is untouched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TOY_NAMES = ("moons", "8gaussians", "checkerboard", "swissroll", "spirals", "rings")


def _moons(n: int, g: torch.Generator) -> Tensor:
    # two interleaving half circles (sklearn's make_moons, noise 0.1), centred and doubled
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = torch.stack([x, y], dim=1) + 0.1 * torch.randn(n, 2, generator=g)  # (n, 2)
    return 2.0 * (pts - torch.tensor([0.5, 0.25]))


def _eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    # 8 modes on a circle of radius 4 / sqrt(2), each with std 0.5 / sqrt(2)
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 4.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (8, 2)
    k = torch.randint(0, 8, (n,), generator=g)
    pts = centers[k] + 0.5 * torch.randn(n, 2, generator=g)  # (n, 2)
    return pts / math.sqrt(2.0)


def _checkerboard(n: int, g: torch.Generator) -> Tensor:
    # uniform on the 8 dark squares of a 4x4 board covering [-4, 4]^2
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - 2 * torch.randint(0, 2, (n,), generator=g)
    x2 = x2 + torch.floor(x1) % 2  # shift up by one square on odd columns
    return 2.0 * torch.stack([x1, x2], dim=1)


def _swissroll(n: int, g: torch.Generator) -> Tensor:
    # sklearn's make_swiss_roll(noise=1.0) seen from above, divided by 5
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)  # (n, 2)
    return (pts + torch.randn(n, 2, generator=g)) / 5.0


def _spirals(n: int, g: torch.Generator) -> Tensor:
    # two interleaved spirals of 1.5 turns; the second is the first rotated by pi
    r = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi  # sqrt: uniform along the arc
    pts = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], dim=1)  # (n, 2)
    pts = pts + 0.5 * torch.rand(n, 2, generator=g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return sign[:, None] * pts / 3.0 + 0.1 * torch.randn(n, 2, generator=g)


def _rings(n: int, g: torch.Generator) -> Tensor:
    # 4 concentric circles of radius 0.75, 1.5, 2.25, 3, equally likely, noise 0.08
    radius = 0.75 * (1 + torch.randint(0, 4, (n,), generator=g)).float()
    theta = torch.rand(n, generator=g) * 2 * math.pi
    pts = radius[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)  # (n, 2)
    return pts + 0.08 * torch.randn(n, 2, generator=g)


_SAMPLERS = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "spirals": _spirals,
    "rings": _rings,
}


def toy_2d(name: str, n: int, *, seed: int = 0) -> Tensor:
    """``n`` i.i.d. points of the toy distribution ``name``: a float32 tensor ``(n, 2)`` on the CPU.

    Args:
        name: one of ``TOY_NAMES``: "moons", "8gaussians", "checkerboard", "swissroll",
            "spirals" (two interleaved spirals) or "rings" (four concentric circles).
        n: number of points (>= 0).
        seed: seed of the private generator; the result depends only on ``(name, n, seed)``.

    All sets lie roughly in ``[-4, 4]^2``; move the result with ``.to(device)``.
    """
    if name not in _SAMPLERS:
        raise ValueError(f"Unknown toy dataset {name!r}; choose one of: {', '.join(TOY_NAMES)}.")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    g = torch.Generator().manual_seed(seed)
    return _SAMPLERS[name](n, g).float()
