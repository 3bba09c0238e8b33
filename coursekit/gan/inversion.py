"""GAN inversion: find z with G(z) ~ x, by an encoder, by optimisation, or both (Xia et al. 2022).

A GAN has no encoder, so to edit a real image x in latent space we first *invert* G:

- **optimisation** (Creswell & Bharath 2016; Abdal et al. 2019): minimise
  ||m * (G(z) - x)||^2 / |m| over z by Adam, from some start z0 (``m`` a mask of the pixels
  that count: all of them for reconstruction, the visible ones for inpainting);
- **an encoder** E trained on the generator's own samples, E(G(z)) ~ z (``LatentEncoder``;
  Zhu et al. 2016 "iGAN", Perarnau et al. 2016): one forward pass, less exact, a good z0;
- **hybrid**: optimise from z0 = E(x), the usual recipe.

The optimisation is unconstrained, so z *drifts off the prior*: N(0, I) in d dimensions puts
its mass near the shell ||z|| = sqrt(d), and the optimum of the reconstruction often lies far
from it, where G was never trained (the images then look right on the pixels that were fitted
and wrong elsewhere). ``invert`` logs ``norm_ratio`` = mean ||z|| / sqrt(d) (1 on the prior's
shell) at every step; ``prior_weight`` > 0 adds prior_weight * ||z||^2 / d, the Gaussian's
negative log-density, to keep it there.

**Editing** (Radford et al. 2016; Shen et al. 2020, "InterFaceGAN"): an attribute that varies
roughly linearly over the latent space has a direction n; ``attribute_direction`` finds it by
least squares from prior samples and their attribute values, and z + alpha n moves an
inverted image along it (alpha in units of the prior's standard deviation, since |n| = 1).
With ``keep`` it is made orthogonal to other attributes' directions, to hold them fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn


class LatentEncoder(nn.Module):
    """x (B, *shape) -> z (B, latent): an MLP, trained by ``loss(x, z)`` = MSE to the true z.

    Train it with ``train.fit(encoder, (G(z), z), ...)`` on the generator's own samples.
    """

    def __init__(self, in_dim: int, latent: int, hidden: int = 256, depth: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, latent))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))

    def loss(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        return {"loss": (self(x) - z).pow(2).mean()}


@dataclass
class Inversion:
    """What ``invert`` returns: the latents, their images, and the per-step log."""

    z: Tensor  # (B, latent)
    x: Tensor  # (B, *shape): G(z)
    loss: list[float] = field(default_factory=list)  # masked MSE, per step
    norm_ratio: list[float] = field(default_factory=list)  # mean ||z|| / sqrt(d), per step


def invert(
    G: nn.Module,
    x: Tensor,
    z0: Tensor,
    *,
    steps: int = 200,
    lr: float = 0.05,
    mask: Tensor | None = None,
    prior_weight: float = 0.0,
) -> Inversion:
    """Minimise the masked squared error ||m (G(z) - x)||^2 / |m| (+ prior_weight ||z||^2 / d)
    over z by Adam from z0; G stays fixed. ``mask``: like x (or broadcastable), 1 = pixel counts.
    """
    if z0.dim() != 2 or z0.shape[0] != x.shape[0]:
        raise ValueError(
            f"z0 must be (B, latent) with B = {x.shape[0]} (one per image), got {tuple(z0.shape)}."
        )
    m = torch.ones_like(x) if mask is None else mask.expand_as(x).to(x)
    d = z0.shape[1]
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr)
    frozen = [(p, p.requires_grad) for p in G.parameters()]
    G.requires_grad_(False)
    out = Inversion(z=z0, x=x)
    try:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            err = (m * (G(z) - x)).pow(2).flatten(1).sum(1) / m.flatten(1).sum(1)  # (B,)
            loss = err.mean() + prior_weight * z.pow(2).sum(1).mean() / d
            loss.backward()
            opt.step()
            out.loss.append(float(err.detach().mean()))
            out.norm_ratio.append(float(z.detach().norm(dim=1).mean() / math.sqrt(d)))
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    with torch.no_grad():
        out.z, out.x = z.detach(), G(z).detach()
    return out


class AttributeDirection(NamedTuple):
    """What ``attribute_direction`` returns."""

    n: Tensor  # (latent,) unit direction
    slope: float  # d attribute / d alpha along n: attribute units per prior standard deviation
    r2: float  # R^2 of the attribute's linear fit on z (near 1: linear, edits predictable)


def attribute_direction(
    z: Tensor, values: Tensor, keep: Tensor | None = None
) -> AttributeDirection:
    """The unit direction n along which ``values`` grows linearly in z (InterFaceGAN).

    ``z``: (N, latent) latents (prior samples); ``values``: (N,) an attribute of G(z), e.g. its
    ink. Least squares on centred data, values ~ z @ beta; n = beta / |beta|. ``keep``: (N, K)
    attributes to hold fixed (K < latent), e.g. a classifier's log-probabilities: n is then
    beta with its component in the span of their directions removed (Shen et al. 2020's
    conditional manipulation), so moving along n leaves their linear fits unchanged.
    """
    if z.dim() != 2 or values.shape != (z.shape[0],):
        raise ValueError(
            f"z must be (N, latent) and values (N,), got {tuple(z.shape)} and {tuple(values.shape)}."
        )
    if z.shape[0] <= z.shape[1]:
        raise ValueError(
            f"need more samples than latent dimensions to fit a direction: got {z.shape[0]} "
            f"samples for {z.shape[1]} dimensions; draw more prior samples."
        )
    zc = (z - z.mean(0)).double()
    vc = (values - values.mean()).double()
    beta = torch.linalg.lstsq(zc, vc.unsqueeze(1)).solution.squeeze(1)
    r2 = 1 - (vc - zc @ beta).pow(2).sum() / vc.pow(2).sum()
    n = beta
    if keep is not None:
        if keep.dim() != 2 or keep.shape[0] != z.shape[0] or keep.shape[1] >= z.shape[1]:
            raise ValueError(
                f"keep must be (N, K) with N = {z.shape[0]} and K < {z.shape[1]} (the latent "
                f"size), got {tuple(keep.shape)}."
            )
        kc = (keep - keep.mean(0)).double()
        q, _ = torch.linalg.qr(torch.linalg.lstsq(zc, kc).solution)  # (latent, K) orthonormal
        n = beta - q @ (q.T @ beta)
    n = n / n.norm()
    return AttributeDirection(n.to(z.dtype), float(beta @ n), float(r2))
