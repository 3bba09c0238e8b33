"""Mode coverage of 2-D GANs on mixtures on a circle (the 8-gaussians and a ring of gaussians).

Following the unrolled-GAN paper (Metz et al. 2017): a sample is *high quality* if it lies
within ``3 std`` of its nearest mode; a mode is *covered* if it holds at least ``min_share``
of the high-quality samples it would get if all modes were equally filled.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ring_centers(k: int = 8, radius: float = 4 / math.sqrt(2)) -> Tensor:
    """(k, 2) centres equally spaced on a circle (k = 8, the default radius: data.toy_2d's
    "8gaussians", whose std is 0.5 / sqrt(2))."""
    a = torch.arange(k) * (2 * math.pi / k)
    return radius * torch.stack([torch.cos(a), torch.sin(a)], 1)


def ring_of_gaussians(
    n: int, k: int = 16, radius: float = 2.0, std: float = 0.05, seed: int = 0
) -> Tensor:
    """n points of k narrow gaussians on a circle (the "ring" toy of the unrolled-GAN paper)."""
    g = torch.Generator().manual_seed(seed)
    c = ring_centers(k, radius)
    return c[torch.randint(0, k, (n,), generator=g)] + std * torch.randn(n, 2, generator=g)


def mode_coverage(
    samples: Tensor, centers: Tensor, std: float, min_share: float = 0.2
) -> dict[str, float]:
    """{"modes": modes covered, "high_quality": fraction within 3 std of a mode}."""
    if samples.dim() != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples must be (n, {centers.shape[1]}), got {tuple(samples.shape)}.")
    d = torch.cdist(samples.float(), centers.float())  # (n, k)
    dist, nearest = d.min(1)
    good = dist < 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    expected = samples.shape[0] / len(centers)
    return {
        "modes": int((counts >= min_share * expected).sum()),
        "high_quality": float(good.float().mean()),
    }
