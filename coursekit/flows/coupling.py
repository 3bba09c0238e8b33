"""Coupling layers: NICE (Dinh et al. 2014) and RealNVP (Dinh et al. 2017).

A binary mask ``m`` splits x into a part that passes unchanged and a part that is
transformed elementwise, with parameters computed from the unchanged part only:

    additive (NICE eq. 5):    z = m*x + (1-m) * (x + t(m*x))                log|det| = 0
    affine (RealNVP eq. 7-9): z = m*x + (1-m) * (x * exp(s(m*x)) + t(m*x))  log|det| = sum (1-m) s

The Jacobian is triangular (after a permutation), its diagonal 1 on the masked part and
exp(s) on the rest: the log-det costs O(D). The inverse needs no inverse of the network,
``x = m*z + (1-m) * (z - t(m*z)) * exp(-s(m*z))``, since m*z = m*x. The network must see
*only* m*x: a mask that lets a dimension see itself breaks both the triangular log-det and
the inverse (measured in the lecture).

``net(x_masked)`` returns ``(B, 2*C, ...)``, split along dim 1 into (shift, raw scale);
``s = scale_limit * tanh(raw / scale_limit)`` keeps the scales bounded early in training.
Vectors (B, D) take a mask (D,); images (B, C, H, W) a mask (C, H, W) or broadcastable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from coursekit.flows.base import Flow


def checkerboard_mask(shape: tuple[int, ...], parity: int = 0) -> Tensor:
    """1 where (i + j + parity) is even: for (C, H, W) images (the same for every channel) or
    (D,) vectors (alternating dimensions)."""
    if len(shape) == 1:
        return ((torch.arange(shape[0]) + parity) % 2 == 0).float()
    C, H, W = shape
    ij = torch.arange(H)[:, None] + torch.arange(W)[None, :]  # (H, W)
    return ((ij + parity) % 2 == 0).float().expand(C, H, W).clone()


def channel_mask(shape: tuple[int, ...], parity: int = 0) -> Tensor:
    """1 on the first half of the channels (dim 0 of ``shape``), or the second if ``parity``."""
    C = shape[0]
    first = (torch.arange(C) < C // 2).float()
    m = first if parity == 0 else 1 - first
    return m.view(C, *([1] * (len(shape) - 1))).expand(*shape).clone()


class AffineCoupling(Flow):
    """RealNVP's affine coupling; ``additive=True`` gives NICE's (no scale, log-det 0)."""

    def __init__(
        self, mask: Tensor, net: nn.Module, *, additive: bool = False, scale_limit: float = 3.0
    ):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = net
        self.additive = additive
        self.scale_limit = scale_limit

    def shift_and_log_scale(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        t, raw = self.net(x_masked).chunk(2, dim=1)  # each (B, C, ...) like x
        if self.additive:
            return t, torch.zeros_like(t)
        return t, self.scale_limit * torch.tanh(raw / self.scale_limit)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.mask
        t, s = self.shift_and_log_scale(m * x)
        z = m * x + (1 - m) * (x * s.exp() + t)
        return z, ((1 - m) * s).flatten(1).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        m = self.mask
        t, s = self.shift_and_log_scale(m * z)
        x = m * z + (1 - m) * (z - t) * (-s).exp()
        return x, -((1 - m) * s).flatten(1).sum(1)


class MLPNet(nn.Module):
    """The coupling network for vectors: D -> hidden -> hidden -> 2D, last layer zero (so a
    fresh coupling is the identity)."""

    def __init__(self, dim: int, hidden: int = 64, out_mult: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.out = nn.Linear(hidden, out_mult * dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


class ConvNet(nn.Module):
    """The coupling network for images: C -> hidden -> hidden -> 2C channels, 3x3 convs, last
    layer zero-initialised (Glow §3.3: each coupling starts as the identity)."""

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
        )
        self.out = nn.Conv2d(hidden, 2 * channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))
