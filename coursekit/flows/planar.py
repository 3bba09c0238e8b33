"""Planar and radial flows (Rezende & Mohamed 2015, "Variational inference with normalizing
flows", §4.1 and appendix A).

Both are written in the *sampling* direction ``x = g(z)``, where their log-det is cheap and
exact; that is the direction a reverse-KL fit uses (``FlowModel.sample_with_log_prob``), so
in this module ``inverse`` is the closed form and ``forward`` (x -> z) is solved numerically:

- planar: ``g(z) = z + u_hat * tanh(w.z + b)``, ``log|det| = log|1 + u_hat . psi(z)|`` with
  ``psi = tanh'(w.z + b) w`` (their eq. 11-12). ``g`` is invertible iff ``w . u_hat >= -1``;
  appendix A enforces it with ``u_hat = u + (m(w.u) - w.u) w / ||w||^2``, ``m(a) = -1 +
  softplus(a)``: the division is by ``||w||^2`` (with ``||w||`` the constraint fails);
- radial: ``g(z) = z + beta h(r) (z - z0)``, ``h = 1 / (alpha + r)``, ``r = ||z - z0||``,
  with ``alpha > 0`` and ``beta >= -alpha`` (invertible), log-det of their eq. 14.

Inputs are vectors (B, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit.flows.base import Flow


class Planar(Flow):
    """One planar layer in D dimensions (``inverse`` is g; ``forward`` solves g(z) = x)."""

    def __init__(self, dim: int, *, generator: torch.Generator | None = None):
        super().__init__()
        self.u = nn.Parameter(0.1 * torch.randn(dim, generator=generator))
        self.w = nn.Parameter(0.1 * torch.randn(dim, generator=generator))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> Tensor:
        """u moved along w so that w . u_hat = -1 + softplus(w . u) > -1 (appendix A)."""
        wu = self.w @ self.u
        return self.u + (-1 + F.softplus(wu) - wu) * self.w / (self.w @ self.w)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        u = self.u_hat()
        a = z @ self.w + self.b  # (B,)
        x = z + u * torch.tanh(a)[:, None]  # (B, D)
        psi = (1 - torch.tanh(a) ** 2)[:, None] * self.w  # (B, D)
        return x, torch.log((1 + psi @ u).abs())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # w.x = alpha + (w.u_hat) tanh(alpha + b) with alpha = w.z: monotone in alpha, and
        # |alpha - w.x| <= |w.u_hat|, so bisection on that bracket finds it
        u = self.u_hat()
        wx, wu = x @ self.w, self.w @ u
        with torch.no_grad():
            lo, hi = wx - wu.abs() - 1e-6, wx + wu.abs() + 1e-6
            for _ in range(80):
                mid = (lo + hi) / 2
                too_big = mid + wu * torch.tanh(mid + self.b) > wx
                hi, lo = torch.where(too_big, mid, hi), torch.where(too_big, lo, mid)
            alpha0 = (lo + hi) / 2
        # one Newton step from the root, with gradients: exact derivatives (implicit function)
        th = torch.tanh(alpha0 + self.b)
        alpha = alpha0 - (alpha0 + wu * th - wx) / (1 + wu * (1 - th**2))
        z = x - u * torch.tanh(alpha + self.b)[:, None]
        return z, -self.inverse(z)[1]


class Radial(Flow):
    """One radial layer in D dimensions (``inverse`` is g; ``forward`` inverts it exactly)."""

    def __init__(self, dim: int, *, generator: torch.Generator | None = None):
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(dim, generator=generator))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)  # beta >= -alpha: invertible

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self.alpha_beta()
        d = z - self.z0  # (B, D)
        r = d.norm(dim=1)  # (B,)
        h = 1 / (alpha + r)
        x = z + (beta * h)[:, None] * d
        dh = -(h**2)
        D = z.shape[1]
        logdet = (D - 1) * torch.log1p(beta * h) + torch.log1p(beta * h + beta * dh * r)
        return x, logdet

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # ||x - z0|| = r (1 + beta / (alpha + r)): a quadratic in r with one root r >= 0
        alpha, beta = self.alpha_beta()
        dx = x - self.z0
        rx = dx.norm(dim=1)
        p = alpha + beta - rx
        r = (-p + torch.sqrt(p**2 + 4 * alpha * rx)) / 2
        z = self.z0 + dx / (1 + beta / (alpha + r))[:, None]
        return z, -self.inverse(z)[1]
