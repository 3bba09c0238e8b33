"""GAN losses as plain functions of the critic's raw outputs (logits or scores).

Every loss takes the critic's outputs ``d_real = D(x)`` and ``d_fake = D(G(z))`` as logits
(a discriminator's probability is ``sigmoid(logit)``) and returns a scalar to *minimise*, the
signature ``train.Adversarial`` expects: ``d_loss(d_real, d_fake)``, ``g_loss(d_fake)``.

- ``d_gan``: the discriminator's cross-entropy, -E log D(x) - E log(1 - D(G(z))); at the optimal
  discriminator D* = p/(p + q) its negative is V(G, D*) = 2 JS(p, q) - log 4 (lecture 01).
- ``g_saturating``: the minimax generator, minimise E log(1 - D(G(z))): its gradient vanishes
  where the discriminator is sure (D(G(z)) -> 0), i.e. early in training.
- ``g_nonsaturating``: minimise -E log D(G(z)) (Goodfellow et al. 2014): same fixed point, a
  strong gradient where D(G(z)) is small.
- ``d_hinge`` / ``g_hinge``: the hinge loss of SAGAN / BigGAN.
- ``d_wasserstein`` / ``g_wasserstein``: the WGAN critic maximises E D(x) - E D(G(z)); with a
  1-Lipschitz critic that difference estimates the Wasserstein-1 distance.

``log sigmoid`` is computed as ``-softplus(-logit)``, which never takes log(0).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def d_gan(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] from logits."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_saturating(d_fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))], the minimax generator's loss (it saturates; for teaching)."""
    return -F.softplus(d_fake).mean()


def g_nonsaturating(d_fake: Tensor) -> Tensor:
    """-E[log D(G(z))], the generator's loss used in practice."""
    return F.softplus(-d_fake).mean()


def d_hinge(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def g_hinge(d_fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -d_fake.mean()


def d_wasserstein(d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
    """E[D(G(z))] - E[D(x)]; logs ``w`` = E[D(x)] - E[D(G(z))], the critic's W1 estimate."""
    w = d_real.mean() - d_fake.mean()
    return {"loss": -w, "w": w.detach()}


def g_wasserstein(d_fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -d_fake.mean()


def generator_grad_vs_d(d_of_fake: Tensor, loss: str) -> Tensor:
    """d loss / d logit of the generator's loss at D(G(z)) = ``d_of_fake`` (a probability).

    Saturating: d/dl log(1 - sigmoid(l)) = -D; non-saturating: d/dl -log sigmoid(l) = -(1 - D).
    Both are returned as magnitudes, for the plot of lecture 05.
    """
    if loss == "saturating":
        return d_of_fake.abs()
    if loss == "nonsaturating":
        return (1 - d_of_fake).abs()
    raise ValueError(f"loss must be 'saturating' or 'nonsaturating', got {loss!r}.")
