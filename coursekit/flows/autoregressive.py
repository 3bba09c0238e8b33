"""Autoregressive flows: MAF (Papamakarios et al. 2017) and IAF (Kingma et al. 2016).

Both transform dimension i with a shift and log-scale computed from the dimensions before it
in an order, by one MADE (lecture 03's masks, ``coursekit.autoregressive.made``):

    MAF, forward (x -> z):   z_i = x_i * exp(s_i(x_<i)) + t_i(x_<i)     one pass of the MADE
         inverse (z -> x):   x_i = (z_i - t_i(x_<i)) * exp(-s_i(x_<i))  D passes, in order
    IAF, inverse (z -> x):   x_i = z_i * exp(s_i(z_<i)) + t_i(z_<i)     one pass
         forward (x -> z):   z_i = (x_i - t_i(z_<i)) * exp(-s_i(z_<i))  D passes

so a MAF evaluates densities fast and samples slowly, and an IAF the reverse. The Jacobian
is triangular: log|det dz/dx| = sum_i s_i for MAF and -sum_i s_i for IAF.

The conditioner is any module ``net(v) -> (shift, log_scale)``, each (B, D), whose output i
depends on v_<i only; ``MADEConditioner`` is the course's. (The tests plug in ``zuko``'s
masked network to compare with ``zuko.flows.MAF``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit.autoregressive.made import MaskedLinear, made_masks
from coursekit.flows.base import Flow


class MADEConditioner(nn.Module):
    """A MADE from (B, D) to a shift and a bounded log-scale per dimension, in raster order.

    Output unit k*D + i (k = 0: shift, k = 1: log-scale) has degree i + 1: it sees inputs 1..i
    only (MADE's strict output mask). The last layer starts at zero: the flow starts as the
    identity.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), scale_limit: float = 3.0):
        super().__init__()
        rank = torch.arange(1, dim + 1)
        hidden_degrees = [torch.arange(h) % max(dim - 1, 1) + 1 for h in hidden]
        masks = made_masks(rank, hidden_degrees, rank.repeat(2))
        sizes = [dim, *hidden, 2 * dim]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer, mask in zip(self.layers, masks):
            layer.mask.copy_(mask)
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)
        self.scale_limit = scale_limit

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        h = v
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        shift, raw = self.layers[-1](h).chunk(2, dim=1)  # (B, D) each
        return shift, self.scale_limit * torch.tanh(raw / self.scale_limit)


def _sequential(v_out: Tensor, net: nn.Module, step) -> Tensor:
    """Fill dimension i of the output from passes of ``net`` over the part already filled."""
    out = torch.zeros_like(v_out)
    for i in range(v_out.shape[1]):
        shift, log_scale = net(out)
        out = out.clone()
        out[:, i] = step(v_out[:, i], shift[:, i], log_scale[:, i])
    return out


class MAF(Flow):
    """One masked autoregressive layer: density in one pass, sampling in D passes."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(x)
        return x * log_scale.exp() + shift, log_scale.sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = _sequential(z, self.net, lambda zi, t, s: (zi - t) * (-s).exp())
        _, log_scale = self.net(x)
        return x, -log_scale.sum(1)


class IAF(Flow):
    """One inverse autoregressive layer: sampling in one pass, density in D passes."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self.net(z)
        return z * log_scale.exp() + shift, log_scale.sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = _sequential(x, self.net, lambda xi, t, s: (xi - t) * (-s).exp())
        _, log_scale = self.net(z)
        return z, -log_scale.sum(1)
