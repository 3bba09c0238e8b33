"""f-divergences: generators, closed forms, Monte-Carlo estimates and variational bounds.

An f-divergence (Csiszar 1967; Ali & Silvey 1966) compares two densities ``p`` and ``q``
through a convex generator ``f`` with ``f(1) = 0``::

    D_f(P || Q) = E_{x ~ Q}[ f(p(x) / q(x)) ]                                  (1)

Conventions (stated here, pinned by tests/test_divergences.py):

- ``u = p / q`` is the density ratio; every generator is applied elementwise to ``u > 0``;
- units are nats (natural logarithms);
- ``"js"`` is the Jensen-Shannon divergence itself, ``JS = KL(P||M)/2 + KL(Q||M)/2`` with
  ``M = (P + Q)/2``, so ``0 <= JS <= log 2``;
- ``"hellinger"`` is the squared Hellinger distance without the factor 1/2,
  ``H^2 = int (sqrt(p) - sqrt(q))^2 dx``, so ``0 <= H^2 <= 2``;
- ``"gan"`` is the divergence minimised by the original GAN, ``2 JS - log 4``. Its generator
  has ``f(1) = -log 4``, not 0: it is a divergence shifted by a constant.

Every generator has a convex conjugate ``f*(t) = sup_u { u t - f(u) }``, which gives the
variational lower bound used by f-GAN (Nguyen, Wainwright & Jordan 2010; Nowozin, Cseke &
Tomioka 2016, eq. 4 and Table 2)::

    D_f(P || Q) >= E_P[ T(x) ] - E_Q[ f*(T(x)) ]    for every critic T,         (2)

with equality at ``T*(x) = f'(p(x)/q(x))``. A network output ``v`` in R is mapped into the
domain of ``f*`` by an output activation ``T = g(v)`` (Nowozin et al., Table 2).
For the KL divergence the Donsker-Varadhan bound ``E_P[T] - log E_Q[e^T]`` (Donsker &
Varadhan 1983; Belghazi et al. 2018, MINE) is tighter than (2) for the same critic.

The critic network is passed in; these functions only wrap it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

LOG2 = math.log(2.0)


# ----------------------------------------------------------------------------------------------
# generators f(u), u = p/q > 0 (Nowozin et al. 2016, Table 1)


def kl_f(u: Tensor) -> Tensor:
    """KL(P || Q): ``f(u) = u log u``."""
    return torch.xlogy(u, u)  # xlogy makes 0 log 0 = 0 exactly


def reverse_kl_f(u: Tensor) -> Tensor:
    """KL(Q || P): ``f(u) = -log u``."""
    return -torch.log(u)


def pearson_f(u: Tensor) -> Tensor:
    """Pearson chi^2: ``f(u) = (u - 1)^2``."""
    return (u - 1) ** 2


def hellinger_f(u: Tensor) -> Tensor:
    """Squared Hellinger distance: ``f(u) = (sqrt(u) - 1)^2``."""
    return (torch.sqrt(u) - 1) ** 2


def js_f(u: Tensor) -> Tensor:
    """Jensen-Shannon: ``f(u) = (u log u - (u + 1) log((u + 1) / 2)) / 2``."""
    return 0.5 * (torch.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2))


def gan_f(u: Tensor) -> Tensor:
    """The GAN divergence 2 JS - log 4: ``f(u) = u log u - (u + 1) log(u + 1)``."""
    return torch.xlogy(u, u) - (u + 1) * torch.log(u + 1)


@dataclass(frozen=True)
class FDivergence:
    """One member of the f-divergence family with what the variational bound (2) needs.

    ``f``: the generator; ``f_prime``: its derivative (the optimal critic is ``f'(p/q)``);
    ``f_star``: the convex conjugate; ``g``: the output activation R -> dom f*;
    ``f_star_g``: ``f*(g(v))`` written in a numerically stable way;
    ``f_at_1``: ``f(1)``, the value of ``D_f`` when P = Q (0 except for ``"gan"``).
    """

    name: str
    f: Callable[[Tensor], Tensor]
    f_prime: Callable[[Tensor], Tensor]
    f_star: Callable[[Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    f_star_g: Callable[[Tensor], Tensor]
    f_at_1: float = 0.0
    aliases: tuple[str, ...] = field(default=())


# Conjugates and activations: Nowozin et al. (2016) Table 2, with JS rescaled to our convention
# (f_js = f_table / 2, hence f*_js(t) = f*_table(2t) / 2) and Hellinger without the factor 1/2.
DIVERGENCES: dict[str, FDivergence] = {
    d.name: d
    for d in [
        FDivergence(
            name="kl",
            f=kl_f,
            f_prime=lambda u: 1 + torch.log(u),
            f_star=lambda t: torch.exp(t - 1),
            g=lambda v: v,
            f_star_g=lambda v: torch.exp(v - 1),
        ),
        FDivergence(
            name="reverse_kl",
            f=reverse_kl_f,
            f_prime=lambda u: -1 / u,
            f_star=lambda t: -1 - torch.log(-t),
            g=lambda v: -torch.exp(-v),
            f_star_g=lambda v: v - 1,
        ),
        FDivergence(
            name="pearson",
            f=pearson_f,
            f_prime=lambda u: 2 * (u - 1),
            f_star=lambda t: t**2 / 4 + t,
            g=lambda v: v,
            f_star_g=lambda v: v**2 / 4 + v,
        ),
        FDivergence(
            name="hellinger",
            f=hellinger_f,
            f_prime=lambda u: 1 - 1 / torch.sqrt(u),
            f_star=lambda t: t / (1 - t),
            g=lambda v: 1 - torch.exp(-v),
            f_star_g=lambda v: torch.expm1(v),
        ),
        FDivergence(
            name="js",
            f=js_f,
            f_prime=lambda u: 0.5 * torch.log(2 * u / (u + 1)),
            f_star=lambda t: -0.5 * torch.log(2 - torch.exp(2 * t)),
            g=lambda v: 0.5 * (LOG2 + F.logsigmoid(v)),
            f_star_g=lambda v: -0.5 * (LOG2 + F.logsigmoid(-v)),
        ),
        FDivergence(
            name="gan",
            f=gan_f,
            f_prime=lambda u: torch.log(u / (u + 1)),
            f_star=lambda t: -torch.log(1 - torch.exp(t)),
            g=F.logsigmoid,  # T = log D(x) with D = sigmoid(v)
            f_star_g=lambda v: -F.logsigmoid(-v),  # -log(1 - D(x))
            f_at_1=-2 * LOG2,
        ),
    ]
}


def get(name: str) -> FDivergence:
    """The f-divergence called ``name`` (one of ``DIVERGENCES``)."""
    if name not in DIVERGENCES:
        raise KeyError(f"unknown f-divergence {name!r}; choose one of {', '.join(DIVERGENCES)}.")
    return DIVERGENCES[name]


# ----------------------------------------------------------------------------------------------
# closed forms and oracles between 1-D Gaussians


def kl_gaussian(mu_p: Tensor, std_p: Tensor, mu_q: Tensor, std_q: Tensor) -> Tensor:
    """KL(N(mu_p, std_p^2) || N(mu_q, std_q^2)) in nats, elementwise (sum it for diagonal ones).

    ``log(s_q / s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2``.
    """
    mu_p, std_p, mu_q, std_q = map(torch.as_tensor, (mu_p, std_p, mu_q, std_q))
    var_ratio = (std_p / std_q) ** 2
    return 0.5 * (var_ratio + ((mu_p - mu_q) / std_q) ** 2 - 1 - torch.log(var_ratio))


def hellinger_gaussian(mu_p: Tensor, std_p: Tensor, mu_q: Tensor, std_q: Tensor) -> Tensor:
    """Squared Hellinger distance ``int (sqrt p - sqrt q)^2 = 2 (1 - BC)`` between 1-D Gaussians.

    BC, the Bhattacharyya coefficient, is
    ``sqrt(2 s_p s_q / (s_p^2 + s_q^2)) exp(-(mu_p - mu_q)^2 / (4 (s_p^2 + s_q^2)))``.
    """
    mu_p, std_p, mu_q, std_q = map(torch.as_tensor, (mu_p, std_p, mu_q, std_q))
    var_sum = std_p**2 + std_q**2
    bc = torch.sqrt(2 * std_p * std_q / var_sum) * torch.exp(-((mu_p - mu_q) ** 2) / (4 * var_sum))
    return 2 * (1 - bc)


def gaussian_log_prob(x: Tensor, mu: Tensor | float, std: Tensor | float) -> Tensor:
    """log N(x; mu, std^2), elementwise."""
    mu, std = torch.as_tensor(mu, dtype=x.dtype), torch.as_tensor(std, dtype=x.dtype)
    return -0.5 * ((x - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


def mixture_log_prob(x: Tensor, weights: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """log of a 1-D Gaussian mixture ``sum_k w_k N(x; mu_k, s_k^2)``; x (N,) -> (N,)."""
    weights, means, stds = (torch.as_tensor(a, dtype=x.dtype) for a in (weights, means, stds))
    log_components = gaussian_log_prob(x[:, None], means, stds)  # (N, K)
    return torch.logsumexp(torch.log(weights) + log_components, dim=-1)  # (N,)


def mixture_sample(
    n: int,
    weights: Tensor,
    means: Tensor,
    stds: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """n samples (n,) of a 1-D Gaussian mixture: pick a component, then add its noise."""
    weights, means, stds = (torch.as_tensor(a, dtype=torch.float32) for a in (weights, means, stds))
    k = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
    eps = torch.randn(n, generator=generator)
    return means[k] + stds[k] * eps


def mixture_moments(weights: Tensor, means: Tensor, stds: Tensor) -> tuple[float, float]:
    """Mean and standard deviation of a 1-D Gaussian mixture.

    They are the parameters of the Gaussian minimising the forward KL(mixture || Gaussian):
    minimising ``-E_p[log q]`` over Gaussians q matches the first two moments.
    """
    weights, means, stds = (torch.as_tensor(a, dtype=torch.float64) for a in (weights, means, stds))
    weights = weights / weights.sum()
    mean = (weights * means).sum()
    second = (weights * (stds**2 + means**2)).sum()  # E[x^2], law of total variance
    return float(mean), float(torch.sqrt(second - mean**2))


def grid_1d(lo: float, hi: float, n: int = 20001) -> Tensor:
    """An evenly spaced float64 grid (n,) for quadrature."""
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def f_divergence_quadrature(
    f: Callable[[Tensor], Tensor],
    log_p: Callable[[Tensor], Tensor],
    log_q: Callable[[Tensor], Tensor],
    grid: Tensor,
) -> Tensor:
    """``int q(x) f(p(x)/q(x)) dx`` by the trapezoidal rule on a 1-D float64 grid (the oracle).

    The grid must cover the mass of both densities; points where q underflows are dropped
    (their contribution is below float64 resolution when the grid is wide enough).
    """
    lp, lq = log_p(grid), log_q(grid)
    u = torch.exp(lp - lq)
    integrand = torch.exp(lq) * f(u)
    keep = torch.isfinite(integrand)
    integrand = torch.where(keep, integrand, torch.zeros_like(integrand))
    return torch.trapezoid(integrand, grid)


# ----------------------------------------------------------------------------------------------
# Monte-Carlo estimates


def f_divergence_mc(
    f: Callable[[Tensor], Tensor], log_p_at_q: Tensor, log_q_at_q: Tensor
) -> Tensor:
    """Monte-Carlo estimate of (1) from the log-densities at samples ``x_i ~ Q``: mean f(p/q).

    log_p_at_q, log_q_at_q: (N,) -> scalar.
    """
    return f(torch.exp(log_p_at_q - log_q_at_q)).mean()


def kl_mc(log_p_at_p: Tensor, log_q_at_p: Tensor) -> Tensor:
    """Monte-Carlo estimate of KL(P || Q) = E_P[log p - log q] from samples ``x_i ~ P``.

    Sampling from P (not Q) avoids the huge weights p/q in the tails of Q.
    """
    return (log_p_at_p - log_q_at_p).mean()
