"""Rational-quadratic spline coupling: Neural Spline Flows (Durkan et al. 2019).

An affine coupling moves and stretches the transformed half, but keeps its conditional
shape (a Gaussian stays a Gaussian). A spline coupling replaces ``x * exp(s) + t`` by a
monotone rational-quadratic spline per dimension: K bins on [-bound, bound] with learned
widths, heights and knot derivatives (their §3.1), the identity outside. A spline can
squeeze a region to nothing and open a gap, which is what a multimodal target needs.

Inside bin k, with xi = (x - x_k) / w_k in [0, 1] and s_k = h_k / w_k (their eq. 4-6):

    y = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))
    dy/dx = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2)
            / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))^2

and the inverse solves a quadratic in xi (their Appendix A). The end derivatives are 1,
so the spline joins the identity tails smoothly. Forward is the density direction x -> z,
as everywhere in ``coursekit.flows``; log-dets in nats, (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit.flows.base import Flow


def knots(
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivs: Tensor,
    bound: float,
    min_bin: float = 1e-3,
    min_deriv: float = 1e-3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Unconstrained (..., K), (..., K), (..., K-1) -> knot x, knot y, derivatives, each
    (..., K+1): bins of at least ``min_bin`` of the range, derivatives > ``min_deriv``, 1 at
    both ends. All-zero inputs give the identity (equal bins, derivatives 1)."""
    K = raw_widths.shape[-1]

    def positions(raw: Tensor) -> Tensor:
        frac = min_bin + (1 - min_bin * K) * F.softmax(raw, dim=-1)  # (..., K), sums to 1
        edges = F.pad(torch.cumsum(frac, dim=-1), (1, 0))  # (..., K+1), from 0 to 1
        return bound * (2 * edges - 1)

    one = math.log(math.expm1(1 - min_deriv))  # min_deriv + softplus(one) = 1: zero is the identity
    d = min_deriv + F.softplus(raw_derivs + one)  # (..., K-1) inner knots
    d = F.pad(d, (1, 1), value=1.0)  # (..., K+1): slope 1 where the identity tails join
    return positions(raw_widths), positions(raw_heights), d


def rq_spline(
    x: Tensor, kx: Tensor, ky: Tensor, d: Tensor, *, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic spline through knots (kx, ky) with derivatives d,
    each (..., K+1) broadcasting with x (...), the identity outside [kx[0], kx[-1]].
    Returns (y, log|dy/dx|) elementwise; with ``inverse=True`` x is read as y and the
    result is (x, log|dx/dy|)."""
    edges = ky if inverse else kx
    inside = (x > edges[..., 0]) & (x < edges[..., -1])
    # the bin of each point: the number of inner edges below it, clamped for the outside points
    k = torch.sum(x[..., None] >= edges[..., 1:-1], dim=-1, keepdim=True)  # (..., 1)

    def at(t: Tensor, offset: int) -> Tensor:
        return t.expand(*x.shape, t.shape[-1]).gather(-1, k + offset).squeeze(-1)

    x0, x1, y0, y1 = at(kx, 0), at(kx, 1), at(ky, 0), at(ky, 1)
    d0, d1 = at(d, 0), at(d, 1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    if inverse:
        dy = (x - y0) * inside  # 0 outside, so the quadratic stays finite there
        a = h * (s - d0) + dy * (d0 + d1 - 2 * s)
        b = h * d0 - dy * (d0 + d1 - 2 * s)
        c = -s * dy
        xi = 2 * c / (-b - torch.sqrt((b**2 - 4 * a * c).clamp_min(0)))  # the stable root
    else:
        xi = (x - x0) / w * inside
    xi = xi.clamp(0, 1)
    one_m = xi * (1 - xi)
    denom = s + (d0 + d1 - 2 * s) * one_m
    y = y0 + h * (s * xi**2 + d0 * one_m) / denom
    deriv = s**2 * (d1 * xi**2 + 2 * s * one_m + d0 * (1 - xi) ** 2) / denom**2
    log_deriv = torch.log(deriv)
    if inverse:
        out = torch.where(inside, x0 + xi * w, x)
        return out, torch.where(inside, -log_deriv, torch.zeros_like(x))
    return torch.where(inside, y, x), torch.where(inside, log_deriv, torch.zeros_like(x))


class SplineCoupling(Flow):
    """A coupling whose transformed part goes through a rational-quadratic spline per
    dimension; ``net(m * x)`` returns (B, D * (3K - 1)) for vectors (B, D): per dimension K
    raw widths, K raw heights and K - 1 raw inner derivatives (``MLPNet(D, hidden,
    out_mult=3 * bins - 1)``, zero last layer: a fresh coupling is the identity)."""

    def __init__(self, mask: Tensor, net: nn.Module, *, bins: int = 8, bound: float = 4.0):
        super().__init__()
        if mask.dim() != 1:
            raise ValueError(f"SplineCoupling takes vectors (B, D) and a mask (D,), got a mask "
                             f"of shape {tuple(mask.shape)}; flatten images first (Reshape).")  # fmt: skip
        self.register_buffer("mask", mask.float())
        self.net = net
        self.bins, self.bound = bins, bound

    def _spline(self, x: Tensor, *, inverse: bool) -> tuple[Tensor, Tensor]:
        m, K = self.mask, self.bins
        B, D = x.shape
        raw = self.net(m * x).view(B, D, 3 * K - 1)  # (B, D, 3K-1)
        kx, ky, d = knots(raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :], self.bound)
        y, log_deriv = rq_spline(x, kx, ky, d, inverse=inverse)  # each (B, D)
        return m * x + (1 - m) * y, ((1 - m) * log_deriv).sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, inverse=True)
