"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015).

An MLP becomes autoregressive by zeroing weights. Give every unit a *degree*: input j has
the degree rank(j) in 1..D (its position in the chain-rule order), every hidden unit a
degree in 1..D-1. Then (Germain et al. 2015, eq. 12-13)

    hidden layers:  mask[out, in] = 1  if  degree(out) >= degree(in)
    output layer:   mask[out, in] = 1  if  degree(out) >  degree(in)   (strict!)

so output i can only be reached, through any path, from inputs of degree < rank(i).
Order-agnostic training (Uria et al. 2014; MADE §3.3) cycles through several orders; the
model then holds several autoregressive factorizations, and the *ensemble*
p(x) = (1/M) sum_m p_m(x) is itself a normalized distribution, usually a better one.

Data convention of ``base.Autoregressive``: x in [0, 1] = k / (levels - 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, utils
from coursekit.autoregressive.base import Autoregressive
from coursekit.metrics import units


def made_masks(
    in_degrees: Tensor, hidden_degrees: list[Tensor], out_degrees: Tensor
) -> list[Tensor]:
    """The connectivity masks of a MADE, one (fan_out, fan_in) float tensor per layer.

    Args:
        in_degrees: (D,) the rank of each input in the order, 1..D.
        hidden_degrees: one (H_l,) tensor per hidden layer, values in 1..D-1.
        out_degrees: (D_out,) the rank of the dimension each output unit predicts.
    """
    masks, prev = [], in_degrees
    for deg in hidden_degrees:
        masks.append((deg[:, None] >= prev[None, :]).float())  # (H_l, H_{l-1})
        prev = deg
    masks.append((out_degrees[:, None] > prev[None, :]).float())  # strict: no x_i -> x_i path
    return masks


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(Autoregressive):
    """A masked MLP over the D dimensions, ``levels`` logits per dimension.

    Args:
        shape, levels: as in ``Autoregressive``.
        hidden: the widths of the hidden layers.
        num_orders: how many orders to train with (1: raster order only). Order 0 is
            raster order; the others are random permutations drawn from ``seed``.
        seed: seeds the extra orders (no global RNG).
        mask_fn: builds the masks; the exercise of lecture 03 swaps in the student's.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        levels: int = 2,
        hidden: tuple[int, ...] = (256, 256),
        num_orders: int = 1,
        seed: int = 0,
        dropout: float = 0.0,
        mask_fn=made_masks,
    ):
        super().__init__(shape, levels)
        D, K = self.num_dims, levels
        g = torch.Generator().manual_seed(seed)
        orders = [torch.arange(D)] + [torch.randperm(D, generator=g) for _ in range(num_orders - 1)]
        self.register_buffer("orders", torch.stack(orders))  # (M, D)
        sizes = [D, *hidden, K * D]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        # one set of masks per order, kept as buffers: (M, fan_out, fan_in) per layer
        all_masks = [self.masks_for(o, hidden, mask_fn) for o in orders]
        for i in range(len(self.layers)):
            self.register_buffer(f"masks_{i}", torch.stack([m[i] for m in all_masks]))
        self.active = 0
        self.use_order(0)
        self._calls = 0  # training calls of loss: which order the next minibatch uses

    def masks_for(self, order: Tensor, hidden: tuple[int, ...], mask_fn) -> list[Tensor]:
        D = self.num_dims
        rank = torch.empty_like(order)
        rank[order] = torch.arange(1, D + 1)  # input j has degree rank(j) in 1..D
        # spread the hidden degrees evenly over 1..D-1 so that every degree is present
        hidden_degrees = [torch.arange(h) % max(D - 1, 1) + 1 for h in hidden]
        out_degrees = rank.repeat(self.levels)  # output unit k*D + i predicts dimension i
        return mask_fn(rank, hidden_degrees, out_degrees)

    @property
    def num_orders(self) -> int:
        return self.orders.shape[0]

    def use_order(self, m: int) -> None:
        """Make order ``m`` the active one (used by ``logits``, ``sample`` and the coder)."""
        self.active = m
        self.order = self.orders[m]
        for i, layer in enumerate(self.layers):
            layer.mask = getattr(self, f"masks_{i}")[m]

    def get_extra_state(self) -> dict[str, int]:
        # the order cycle is part of the training state: a resumed run continues it exactly
        return {"calls": self._calls, "active": self.active}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self._calls = int(state["calls"])
        self.use_order(int(state["active"]))

    def logits(self, k: Tensor) -> Tensor:
        B = k.shape[0]
        h = 2 * self.from_levels(k).flatten(1) - 1  # (B, D) in [-1, 1]
        for layer in self.layers[:-1]:
            h = self.dropout(F.relu(layer(h)))
        return self.layers[-1](h).view(B, self.levels, *self.data_shape)  # (B, K, *shape)

    def log_prob_order(self, x: Tensor, m: int) -> Tensor:
        """log p_m(x), (B,) nats, under order ``m``."""
        previous = self.active
        self.use_order(m)
        try:
            return super().log_prob(x)
        finally:
            self.use_order(previous)

    def log_prob(self, x: Tensor) -> Tensor:
        """The ensemble log (1/M) sum_m p_m(x); with one order, log p_0(x)."""
        if self.num_orders == 1:
            return super().log_prob(x)
        logps = torch.stack([self.log_prob_order(x, m) for m in range(self.num_orders)])  # (M, B)
        return torch.logsumexp(logps, 0) - math.log(self.num_orders)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        # order-agnostic training: each minibatch uses the next order in turn (no RNG needed)
        m = self._calls % self.num_orders
        self._calls += self.training
        nll = -self.log_prob_order(x, m).mean()
        return {"loss": nll, "bpd": units.bits_per_dim(nll.detach(), self.num_dims)}

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None, temperature: float = 1.0) -> Tensor:
        """Exact samples of the ensemble: draw an order per sample, then sample in it."""
        if self.num_orders == 1:
            return super().sample(n, generator=generator, temperature=temperature)
        dev = self.device
        m = utils.randint(0, self.num_orders, (n,), dev, generator)
        out = torch.empty(n, *self.data_shape, device=dev)
        previous = self.active
        for j in m.unique().tolist():
            self.use_order(j)
            idx = (m == j).nonzero().squeeze(1)
            out[idx] = super().sample(len(idx), generator=generator, temperature=temperature)
        self.use_order(previous)
        return out


@models.register_conformance("ar-made")
def _tiny_made() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (4, 1, 4, 4), generator=g).float() / 2
    model = MADE((1, 4, 4), 3, hidden=(16,), num_orders=2)
    return models.ConformanceCase(model=model, x=x, exact_log_prob=True, checks_input=True)
