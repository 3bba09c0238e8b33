"""Latent diffusion (Rombach et al., 2022): a diffusion model over an autoencoder's latents.

The autoencoder is trained first and frozen; the diffusion model then learns p(z) for
z = encode(x), standardized per dimension (the paper's "scale factor", sec. 4.3 and App. G)
so that the schedule's unit-variance assumption holds. A sample is decode(z) for z from the
diffusion model. The network sees fewer numbers per example, so each of the many sampling steps
is cheaper; the price is the autoencoder's reconstruction error, a floor on sample quality.

``autoencoder`` needs ``encode(x) -> Tensor (B, d)`` (or a ``(mean, logvar)`` pair, as a VAE
returns; the mean is used) and ``decode_to_x(z) -> Tensor`` in the data range:
``coursekit.vae.Autoencoder`` and ``coursekit.vae.VAE`` both fit. The inner ``Diffusion`` must
have ``data_shape=(d,)`` and ``data_range=None``. Any inner model with the same interface
(``loss(z, y)``, ``sample(n, y, generator=..., **kwargs)``, ``data_range``) works the same
way: lecture 08 wraps a ``flow_matching.FlowMatching`` for latent flow matching.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from coursekit import models
from coursekit.diffusion.ddpm import Diffusion


class LatentDiffusion(models.GenerativeModel):
    """``Diffusion`` over standardized latents of a frozen ``autoencoder``."""

    likelihood_hint = Diffusion.likelihood_hint

    def __init__(self, autoencoder: nn.Module, diffusion: Diffusion):
        super().__init__()
        if diffusion.data_range is not None:
            raise ValueError(
                "The latent Diffusion must have data_range=None (latents are not images)."
            )
        self.autoencoder = autoencoder.requires_grad_(False)
        self.diffusion = diffusion
        self.data_shape = tuple(autoencoder.data_shape)
        d = diffusion.data_shape[0]
        self.register_buffer("z_mean", torch.zeros(d))
        self.register_buffer("z_std", torch.ones(d))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Standardized latents (B, d) of data x."""
        z = self.autoencoder.encode(x)
        if isinstance(z, tuple):  # a VAE returns (mean, logvar): keep the mean
            z = z[0]
        return (z - self.z_mean) / self.z_std

    @torch.no_grad()
    def fit_scaling(self, x: Tensor) -> LatentDiffusion:
        """Set the per-dimension mean and std of the latents from data x (call before training)."""
        self.z_mean.zero_()
        self.z_std.fill_(1.0)
        z = self.encode(x)
        self.z_mean.copy_(z.mean(0))
        self.z_std.copy_(z.std(0).clamp(min=1e-6))
        return self

    def loss(self, x: Tensor, y: Tensor | None = None, **kwargs) -> dict[str, Tensor]:
        """The diffusion loss on the latents of x (the autoencoder stays frozen)."""
        return self.diffusion.loss(self.encode(x), y, **kwargs)

    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, *, generator: torch.Generator | None = None, **kwargs
    ) -> Tensor:
        """Latents from the diffusion model (``kwargs`` go to ``Diffusion.sample``), decoded."""
        z = self.diffusion.sample(n, y, generator=generator, **kwargs)
        return self.autoencoder.decode_to_x(z * self.z_std + self.z_mean)

    def train(self, mode: bool = True) -> LatentDiffusion:
        super().train(mode)
        self.autoencoder.eval()  # frozen: no dropout / batch-norm updates
        return self


@models.register_conformance("latent-diffusion")
def _tiny_latent_diffusion() -> models.ConformanceCase:
    from coursekit import likelihoods, networks, vae
    from coursekit.diffusion.schedules import cosine_schedule

    encoder = nn.Sequential(nn.Flatten(), networks.MLP(64, 3, hidden=16, depth=1))
    decoder = networks.MLP(3, 64, hidden=16, depth=1)
    ae = vae.Autoencoder(encoder, decoder, likelihoods.Bernoulli(), latent_dim=3, x_shape=(1, 8, 8))
    diff = Diffusion(
        networks.TimeConditionedMLP(in_dim=3, hidden=16, depth=1),
        cosine_schedule(10),
        data_shape=(3,),
        data_range=None,
    )
    return models.ConformanceCase(model=LatentDiffusion(ae, diff), x=torch.rand(4, 1, 8, 8))
