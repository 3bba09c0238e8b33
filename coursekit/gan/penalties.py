"""Critic regularisers: the WGAN-GP gradient penalty, R1, weight clipping.

``gradient_penalty(critic, real, fake)`` (Gulrajani et al. 2017) penalises
(||grad_x D(x_hat)|| - 1)^2 at x_hat = eps x + (1 - eps) G(z), with one eps ~ U(0, 1) *per
sample* and the norm taken over *all non-batch dimensions* (for images: channels, height and
width together). A critic with batch norm makes each sample's score depend on the batch, so the
per-sample gradient is no longer the quantity penalised: use no normalisation, layer norm or
spectral normalisation in a penalised critic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def interpolate(real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """eps x + (1 - eps) G(z) with eps of shape (B,), one coefficient per sample."""
    if eps.shape != real.shape[:1]:
        raise ValueError(
            f"eps needs one coefficient per sample, shape ({real.shape[0]},); "
            f"got {tuple(eps.shape)}."
        )
    e = eps.view(-1, *([1] * (real.dim() - 1)))
    return e * real + (1 - e) * fake


def gradient_penalty(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    *,
    weight: float = 10.0,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """weight * E[(||grad D(x_hat)||_2 - 1)^2] at per-sample interpolates (see the module doc)."""
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}."
        )
    if eps is None:
        eps = torch.rand(real.shape[0], generator=generator).to(real)
    x_hat = interpolate(real.detach(), fake.detach(), eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)  # (B,): over every non-batch dimension
    return weight * ((norm - 1) ** 2).mean()


def wgan_gp(weight: float = 10.0) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """``gradient_penalty`` with its weight, in the form ``train.Adversarial`` takes."""

    def penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return gradient_penalty(critic, real, fake, weight=weight)

    return penalty


def r1_penalty(gamma: float = 1.0) -> Callable[[nn.Module, Tensor, Tensor], Tensor]:
    """R1 (Mescheder et al. 2018): gamma/2 * E ||grad D(x)||^2 at the real data only."""

    def penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        x = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        return 0.5 * gamma * grad.flatten(1).pow(2).sum(1).mean()

    return penalty


def clip_weights_after_step(optimizer: torch.optim.Optimizer, c: float = 0.01) -> None:
    """The original WGAN's weight clipping: after every step, clamp the optimised weights to
    [-c, c] (a crude Lipschitz bound). Registered as an optimizer step hook, so
    ``train.Adversarial`` needs no change."""

    def hook(opt, args, kwargs):
        with torch.no_grad():
            for group in opt.param_groups:
                for p in group["params"]:
                    p.clamp_(-c, c)

    optimizer.register_step_post_hook(hook)
