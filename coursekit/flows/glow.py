"""Glow's layers (Kingma & Dhariwal 2018, "Glow: generative flow with invertible 1x1
convolutions", table 1) and RealNVP's multi-scale architecture (Dinh et al. 2017, §3.6).

- ``ActNorm``: z = (x + b) * exp(log_s) per channel; log|det| = (H*W) * sum(log_s).
  Data-dependent initialisation: on the first batch, b = -mean and log_s = -log(std) per
  channel, so that batch comes out with zero mean and unit variance. A channel with (almost)
  zero variance on that batch -- the border pixels of the 8x8 digits -- keeps log_s = 0
  instead of a division by zero. The ``initialised`` flag is a saved buffer: a loaded model
  is not re-initialised on its first batch.
- ``InvConv1x1``: z = W x at every pixel; log|det| = (H*W) * log|det W|, O(C^3). With
  ``lu=True`` (Glow eq. 10) W = P L (U + diag(s)) with P fixed, L unit lower triangular, U
  strictly upper, and log|det| = (H*W) * sum(log|s|), O(C); s = sign * exp(log_abs_s).
- ``Squeeze``: (C, H, W) -> (4C, H/2, W/2), a permutation (log-det 0).
- ``Split``: the multi-scale factor-out: half the channels go to the base distribution
  directly, the other half through the inner flow (which may squeeze again); z is the
  flattened concatenation, so ``out_shape`` is (D,).

Channels are dim 1: images (B, C, H, W) or vectors (B, C) (then H*W = 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from coursekit.flows.base import Flow


def _pixels(x: Tensor) -> int:
    """H * W of an image batch, 1 for vectors."""
    return math.prod(x.shape[2:])


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A (C,) vector shaped to broadcast against x (B, C, ...)."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


class ActNorm(Flow):
    """Per-channel affine with data-dependent initialisation (see the module docstring)."""

    def __init__(self, channels: int, *, min_std: float = 1e-3):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialised", torch.tensor(False))
        self.min_std = min_std

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        dims = [0, *range(2, x.dim())]  # every dim but the channels
        mean, std = x.mean(dims), x.std(dims, correction=0)
        self.bias.copy_(-mean)
        # a constant channel carries no scale to normalise: leave it at 1, not 1/0
        self.log_scale.copy_(torch.where(std > self.min_std, -std.clamp_min(1e-12).log(), 0.0))
        self.initialised.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.initialised and self.training:
            self.initialise(x)
        z = (x + _per_channel(self.bias, x)) * _per_channel(self.log_scale, x).exp()
        return z, (_pixels(x) * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = z * _per_channel(-self.log_scale, z).exp() - _per_channel(self.bias, z)
        return x, (-_pixels(z) * self.log_scale.sum()).expand(z.shape[0])


def _random_rotation(channels: int, generator: torch.Generator | None) -> Tensor:
    q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    return q


class InvConv1x1(Flow):
    """An invertible 1x1 convolution, a learned mixing of the channels (Glow §3.2)."""

    def __init__(
        self, channels: int, *, lu: bool = False, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.lu = lu
        w = _random_rotation(channels, generator)
        if not lu:
            self.weight = nn.Parameter(w)
            return
        P, L, U = torch.linalg.lu(w)
        s = torch.diagonal(U)
        self.register_buffer("P", P)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(L)
        self.upper = nn.Parameter(torch.triu(U, 1))
        self.log_abs_s = nn.Parameter(s.abs().log())

    def matrix(self) -> Tensor:
        """W (C, C)."""
        if not self.lu:
            return self.weight
        C = self.lower.shape[0]
        L = self.lower * self.lower_mask + torch.eye(C, device=self.lower.device)
        U = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_abs_s.exp())
        return self.P @ L @ U

    def log_abs_det(self) -> Tensor:
        """log|det W|: slogdet's O(C^3), or the LU's O(C) sum."""
        if self.lu:
            return self.log_abs_s.sum()
        return torch.linalg.slogdet(self.weight).logabsdet

    def _mix(self, w: Tensor, x: Tensor) -> Tensor:
        return torch.einsum("oc,bc...->bo...", w, x)  # (B, C, ...) -> (B, C, ...)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self._mix(self.matrix(), x)
        return z, (_pixels(x) * self.log_abs_det()).expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = self._mix(torch.linalg.inv(self.matrix()), z)
        return x, (-_pixels(z) * self.log_abs_det()).expand(z.shape[0])


class Squeeze(Flow):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        B, C, H, W = x.shape
        z = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
        return z.reshape(B, 4 * C, H // 2, W // 2), x.new_zeros(B)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        B, C4, h, w = z.shape
        x = z.view(B, C4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, h, 2, w, 2)
        return x.reshape(B, C4 // 4, 2 * h, 2 * w), z.new_zeros(B)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        C, H, W = shape
        if H % 2 or W % 2:
            raise ValueError(f"Squeeze needs an even height and width, got {H}x{W}.")
        return (4 * C, H // 2, W // 2)


class Split(Flow):
    """Factor out half the channels to the base; the other half goes through ``inner``."""

    def __init__(self, inner: Flow, in_shape: tuple[int, ...]):
        super().__init__()
        self.inner = inner
        C = in_shape[0]
        self.keep_shape = (C - C // 2, *in_shape[1:])
        self.out_inner = inner.out_shape(self.keep_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        keep = self.keep_shape[0]
        x1, x2 = x[:, :keep], x[:, keep:]
        z1, logdet = self.inner(x1)
        return torch.cat([z1.flatten(1), x2.flatten(1)], 1), logdet  # (B, D)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        B, n1 = z.shape[0], math.prod(self.out_inner)
        x1, logdet = self.inner.inverse(z[:, :n1].view(B, *self.out_inner))
        x2 = z[:, n1:].view(B, -1, *self.keep_shape[1:])
        return torch.cat([x1, x2], 1), logdet

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)
