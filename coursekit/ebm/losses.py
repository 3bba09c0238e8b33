"""The objectives that train an energy E(x) (p ∝ exp(-E)) without knowing Z.

- :func:`contrastive_divergence`: mean E(data) - mean E(samples) (its gradient is the
  likelihood's, E_data[grad E] - E_model[grad E]) plus alpha (E(data)^2 + E(samples)^2), the
  energy-magnitude regulariser of Du & Mordatch (2019). Samples are detached.
- :func:`score_matching` (Hyvärinen, 2005): E_x[1/2 |s(x)|^2 + tr(ds/dx)], exact trace, s = -grad E.
- :func:`sliced_score_matching` (Song et al., 2019): the trace by random projections v^T (ds/dx) v.
- :func:`denoising_score_matching` (Vincent, 2011): |s(x + sigma eps) + eps / sigma|^2 / 2, the
  lecture-06 epsilon loss in other units.
- :func:`nce_loss` (Gutmann & Hyvärinen, 2010): logistic classification of data vs noise with
  the logit log p_model(x) - log p_noise(x) - log nu, log p_model = -E(x) - log Z, log Z learnt.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from coursekit import utils

Energy = Callable[[Tensor], Tensor]


def contrastive_divergence(
    energy: Energy, x_data: Tensor, x_model: Tensor, *, alpha: float = 0.1
) -> dict[str, Tensor]:
    """``{"loss", "cd", "reg", "e_data", "e_model"}``; the samples are detached first."""
    e_data = energy(x_data)
    e_model = energy(x_model.detach())
    cd = e_data.mean() - e_model.mean()
    reg = (e_data**2).mean() + (e_model**2).mean()
    return {
        "loss": cd + alpha * reg,
        "cd": cd.detach(),
        "reg": reg.detach(),
        "e_data": e_data.mean().detach(),
        "e_model": e_model.mean().detach(),
    }


def score_of(energy: Energy, x: Tensor, *, create_graph: bool = True) -> Tensor:
    """s(x) = -grad_x E(x), differentiable in the energy's parameters (and in x)."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return -g


def score_matching(energy: Energy, x: Tensor) -> Tensor:
    """Hyvärinen's objective per example (B,): 1/2 |s(x)|^2 + tr(ds/dx), the trace exact.

    One backward pass per dimension, so it is for low-dimensional data (the 2-D toys).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        s = score_of(energy, x).flatten(1)  # (B, D)
        trace = x.new_zeros(x.shape[0])
        for i in range(s.shape[1]):
            (g,) = torch.autograd.grad(s[:, i].sum(), x, create_graph=True)
            trace = trace + g.flatten(1)[:, i]
    return 0.5 * (s**2).sum(1) + trace


def sliced_score_matching(
    energy: Energy, x: Tensor, *, n_projections: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """Sliced score matching per example (B,): v^T (ds/dx) v + 1/2 (v^T s)^2, v ~ N(0, I).

    Its expectation over v is Hyvärinen's objective; one extra backward pass per projection
    whatever the dimension, which is what lets it scale to images.
    """
    total = x.new_zeros(x.shape[0])
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        s = score_of(energy, x)
        for _ in range(n_projections):
            v = utils.randn(x.shape, x, generator)
            (jv,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)
            total = total + (jv * v).flatten(1).sum(1) + 0.5 * (s * v).flatten(1).sum(1) ** 2
    return total / n_projections


def denoising_score_matching(
    energy: Energy, x: Tensor, sigma: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """Denoising score matching per example (B,): 1/2 |s(x~) + eps / sigma|^2, x~ = x + sigma eps.

    The score of the noised data is learnt (it equals the data's as sigma -> 0); with
    s = -eps_hat / sigma this is lecture 06's |eps_hat - eps|^2 / (2 sigma^2).
    """
    eps = utils.randn(x.shape, x, generator)
    s = score_of(energy, x + sigma * eps)
    return 0.5 * ((s + eps / sigma) ** 2).flatten(1).sum(1)


def nce_loss(
    energy: Energy,
    log_z: Tensor,
    x_data: Tensor,
    x_noise: Tensor,
    noise_log_prob: Callable[[Tensor], Tensor],
) -> dict[str, Tensor]:
    """Noise-contrastive estimation: logistic loss of data (label 1) against noise (label 0).

    ``log_z`` is a learnt scalar; the model's log-density is -E(x) - log_z. The ratio
    nu = len(x_noise) / len(x_data) enters the logit as -log nu; with enough capacity the
    optimum is the data density, so exp(log_z) estimates the energy's Z.
    """
    log_nu = math.log(x_noise.shape[0] / x_data.shape[0])

    def logit(x: Tensor) -> Tensor:
        return -energy(x) - log_z - noise_log_prob(x) - log_nu

    l_data, l_noise = logit(x_data), logit(x_noise)
    loss = F.softplus(-l_data).sum() + F.softplus(l_noise).sum()
    loss = loss / x_data.shape[0]
    accuracy = 0.5 * ((l_data > 0).float().mean() + (l_noise < 0).float().mean())
    return {"loss": loss, "accuracy": accuracy.detach(), "log_z": log_z.detach().reshape(())}
