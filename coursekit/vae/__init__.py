"""Lecture 02: variational autoencoders (``model``): the ELBO, IWAE, the conditional VAE.

The decoder likelihoods p(x | z) are in ``coursekit.likelihoods``; the disentanglement
score (MIG) is in ``coursekit.metrics.disentanglement``.
"""

from coursekit.vae.model import (
    VAE,
    Autoencoder,
    ConditionalVAE,
    ElboTerms,
    active_units,
    kl_std_normal,
    log_normal_diag,
    reparameterize,
)

__all__ = [
    "Autoencoder",
    "ConditionalVAE",
    "ElboTerms",
    "VAE",
    "active_units",
    "kl_std_normal",
    "log_normal_diag",
    "reparameterize",
]
