"""Lecture 01: f-divergences, their variational bounds, and fitting by forward or reverse KL.

- ``f_divergences``: generators, closed forms between Gaussians, mixtures, quadrature and
  Monte-Carlo estimates (the conventions are stated there);
- ``bounds``: f-GAN and Donsker-Varadhan bounds on critic outputs, the optimal discriminator,
  and critic training (a critic-only ``train.Adversarial`` run by ``train.fit``);
- ``gaussian_fit``: one Gaussian fitted to a density by forward or reverse KL.
"""

from coursekit.divergences.bounds import (
    CriticTrace,
    donsker_varadhan_bound,
    fgan_bound,
    gan_value,
    optimal_discriminator_logit,
    train_critic,
)
from coursekit.divergences.f_divergences import (
    DIVERGENCES,
    LOG2,
    FDivergence,
    f_divergence_mc,
    f_divergence_quadrature,
    gan_f,
    gaussian_log_prob,
    get,
    grid_1d,
    hellinger_f,
    hellinger_gaussian,
    js_f,
    kl_f,
    kl_gaussian,
    kl_mc,
    mixture_log_prob,
    mixture_moments,
    mixture_sample,
    pearson_f,
    reverse_kl_f,
)
from coursekit.divergences.gaussian_fit import (
    GaussianFit,
    fit_gaussian,
)

__all__ = [
    "CriticTrace",
    "DIVERGENCES",
    "FDivergence",
    "GaussianFit",
    "LOG2",
    "donsker_varadhan_bound",
    "f_divergence_mc",
    "f_divergence_quadrature",
    "fgan_bound",
    "fit_gaussian",
    "gan_f",
    "gan_value",
    "gaussian_log_prob",
    "get",
    "grid_1d",
    "hellinger_f",
    "hellinger_gaussian",
    "js_f",
    "kl_f",
    "kl_gaussian",
    "kl_mc",
    "mixture_log_prob",
    "mixture_moments",
    "mixture_sample",
    "optimal_discriminator_logit",
    "pearson_f",
    "reverse_kl_f",
    "train_critic",
]
