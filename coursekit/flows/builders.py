"""Ready-made flows for the lecture: RealNVP on vectors, MAF/IAF stacks, a small Glow.

Each builder returns a ``Flow`` (or a ``FlowModel`` for vector data); the lecture builds its
own from the layers first and uses these to compare architectures at equal sizes.
"""

from __future__ import annotations

import math

import torch

from coursekit.flows import autoregressive as ar
from coursekit.flows import coupling, glow, spline
from coursekit.flows.base import Compose, Flow, FlowModel, Reshape, Reverse
from coursekit.flows.dequantization import Logit


def coupling_stack(
    dim: int,
    num_layers: int,
    hidden: int = 64,
    *,
    masks: list[torch.Tensor] | None = None,
    actnorm: bool = False,
    additive: bool = False,
) -> Flow:
    """``num_layers`` couplings on (B, dim) vectors; by default alternating masks (every
    dimension is transformed by every other layer). ``masks`` overrides them (one per layer)."""
    if masks is None:
        masks = [coupling.checkerboard_mask((dim,), parity=i % 2) for i in range(num_layers)]
    layers: list[Flow] = []
    for m in masks:
        if actnorm:
            layers.append(glow.ActNorm(dim))
        net = coupling.MLPNet(dim, hidden)
        layers.append(coupling.AffineCoupling(m, net, additive=additive))
    return Compose(*layers)


def realnvp(dim: int, num_layers: int = 6, hidden: int = 64, **kwargs) -> FlowModel:
    """A RealNVP density on R^dim (the 2-D toys)."""
    return FlowModel(coupling_stack(dim, num_layers, hidden, **kwargs), (dim,))


def spline_flow(
    dim: int, num_layers: int = 4, hidden: int = 64, *, bins: int = 8, bound: float = 4.0
) -> FlowModel:
    """A neural spline flow on R^dim (Durkan et al. 2019): rational-quadratic spline couplings
    with alternating masks, the identity outside [-bound, bound]."""
    layers: list[Flow] = []
    for i in range(num_layers):
        net = coupling.MLPNet(dim, hidden, out_mult=3 * bins - 1)
        mask = coupling.checkerboard_mask((dim,), parity=i % 2)
        layers.append(spline.SplineCoupling(mask, net, bins=bins, bound=bound))
    return FlowModel(Compose(*layers), (dim,))


def realnvp_flat(
    shape: tuple[int, ...],
    num_layers: int = 6,
    hidden: int = 128,
    *,
    mask: str = "checkerboard",
    alpha: float = 0.05,
) -> Flow:
    """Images in [0, 1]^(C,H,W) -> logit -> flattened -> ActNorm + affine couplings, with
    image-space masks: ``"checkerboard"`` (alternating parity), ``"halves"`` (top/bottom
    rows, alternating) or ``"fixed"`` (the same checkerboard every layer: the bad mask)."""
    D = math.prod(shape)
    C, H, W = shape

    def make(i: int) -> torch.Tensor:
        if mask == "checkerboard":
            return coupling.checkerboard_mask(shape, parity=i % 2).flatten()
        if mask == "fixed":
            return coupling.checkerboard_mask(shape, parity=0).flatten()
        if mask == "halves":
            top = (torch.arange(H) < H // 2).float()[:, None].expand(H, W)
            m = top if i % 2 == 0 else 1 - top
            return m.expand(C, H, W).flatten()
        raise ValueError(f"unknown mask {mask!r}; use 'checkerboard', 'halves' or 'fixed'.")

    stack = coupling_stack(
        D, num_layers, hidden, masks=[make(i) for i in range(num_layers)], actnorm=True
    )
    return Compose(Logit(alpha), Reshape(shape, (D,)), stack)


def maf(
    dim: int, num_layers: int = 4, hidden: tuple[int, ...] = (64, 64), *, iaf: bool = False
) -> Flow:
    """MAF (or IAF) layers with a reversal of the order between them."""
    Layer = ar.IAF if iaf else ar.MAF
    layers: list[Flow] = []
    for i in range(num_layers):
        layers.append(Layer(ar.MADEConditioner(dim, hidden)))
        if i < num_layers - 1:
            layers.append(Reverse())
    return Compose(*layers)


def maf_flat(shape: tuple[int, ...], num_layers: int = 4, hidden=(256,), *, alpha=0.05) -> Flow:
    """Images -> logit -> flattened -> ActNorm + MAF layers (a density for dequantized data)."""
    D = math.prod(shape)
    layers: list[Flow] = [Logit(alpha), Reshape(shape, (D,))]
    for i in range(num_layers):
        layers += [glow.ActNorm(D), ar.MAF(ar.MADEConditioner(D, hidden))]
        if i < num_layers - 1:
            layers.append(Reverse())
    return Compose(*layers)


def glow_step(channels: int, hidden: int, *, lu: bool = True, parity: int = 0) -> Flow:
    """One step of Glow: ActNorm, invertible 1x1 convolution, affine coupling (channel mask)."""
    return Compose(
        glow.ActNorm(channels),
        glow.InvConv1x1(channels, lu=lu),
        coupling.AffineCoupling(
            coupling.channel_mask((channels, 1, 1), parity), coupling.ConvNet(channels, hidden)
        ),
    )


def glow_multiscale(
    shape: tuple[int, ...],
    steps: int = 4,
    hidden: int = 64,
    *,
    levels: int = 2,
    lu: bool = True,
    alpha: float = 0.05,
) -> Flow:
    """Logit, then per scale: squeeze, ``steps`` Glow steps, and (except at the last scale)
    factor half the channels out to the base (RealNVP §3.6)."""

    def scale(shape_in: tuple[int, ...], level: int) -> Flow:
        squeeze = glow.Squeeze()
        s = squeeze.out_shape(shape_in)
        body = [squeeze] + [glow_step(s[0], hidden, lu=lu, parity=i % 2) for i in range(steps)]
        if level == levels - 1:
            return Compose(*body)
        return Compose(*body, glow.Split(scale((s[0] - s[0] // 2, *s[1:]), level + 1), s))

    return Compose(Logit(alpha), scale(tuple(shape), 0))
