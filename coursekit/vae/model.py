"""Variational autoencoders: the ELBO (Kingma & Welling 2014) and the IWAE bound (Burda et al.).

The networks are passed in; the objective wraps them::

    vae = VAE(encoder, decoder, likelihoods.Categorical(17), latent_dim=8, x_shape=(1, 8, 8))

- ``encoder``: x (B, *x_shape) -> (B, 2 * latent_dim), the mean and log-variance of q(z | x).
- ``decoder``: z (B, latent_dim) -> anything with B * prod(param_shape) numbers, the
  parameters of p(x | z) as the likelihood defines them (``likelihoods``).

Conventions: data x in [0, 1]; prior p(z) = N(0, I); q(z | x) = N(mu, diag(exp(logvar))).
Every ELBO, KL and log-likelihood is in nats per example, shape (B,); bits/dim is
-value / (D ln 2) with D = prod(x_shape) (``metrics.bits_per_dim``). ``loss`` logs it as
``"bpd"`` when the likelihood is a mass (``likelihood.discrete``) and as ``"bpd_continuous"``
when it is a density, whose figure is not a discrete bits/dim (see ``coursekit.likelihoods``).

    log p(x)  = ELBO(x) + KL(q(z|x) || p(z|x))                         (Kingma & Welling, eq. 1)
    ELBO(x)   = E_q[log p(x|z)] - KL(q(z|x) || p(z))                   (Kingma & Welling, eq. 3)
    IWAE_k(x) = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x)  (Burda et al., eq. 8)

ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1} <= log p(x), and IWAE_k -> log p(x) as k grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, utils
from coursekit.likelihoods import Likelihood
from coursekit.metrics import units


def kl_std_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in nats, (B,), summed over the last dim.

    Closed form (Kingma & Welling 2014, appendix B): 1/2 sum_j (mu_j^2 + s_j^2 - log s_j^2 - 1).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps, sigma = exp(logvar / 2): q-sample with gradients to mu, sigma."""
    return mu + torch.exp(0.5 * logvar) * eps


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) in nats, summed over the last dim."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


@dataclass
class ElboTerms:
    """The per-example pieces of the ELBO, each (B,) in nats."""

    recon: Tensor  # log p(x | z) at one z ~ q(z | x)
    kl: Tensor  # KL(q(z | x) || p(z)), closed form
    kl_per_dim: Tensor  # (B, latent_dim): the same KL, per latent dimension

    @property
    def elbo(self) -> Tensor:
        return self.recon - self.kl


class VAE(models.GenerativeModel):
    """A VAE with a diagonal Gaussian encoder, a N(0, I) prior and a pluggable likelihood.

    Training knobs, all on the KL term of the loss (the ELBO that is *reported* never changes):
    ``beta`` multiplies it (beta-VAE, Higgins et al. 2017); ``kl_warmup`` ramps its weight
    linearly from 0 to beta over that many training calls of ``loss`` (Bowman et al. 2016);
    ``free_bits`` (nats per latent dimension) stops pushing the batch-averaged KL of a
    dimension below that floor (Kingma et al. 2016, eq. 15).
    """

    likelihood_hint = (
        "Estimate log p(x) by importance sampling with model.log_likelihood(x, k=1000) "
        "(the IWAE estimate, Burda et al. 2016), or bound it with model.elbo(x).elbo."
    )

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        *,
        latent_dim: int,
        x_shape: tuple[int, ...],
        beta: float = 1.0,
        kl_warmup: int = 0,
        free_bits: float = 0.0,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.data_shape = tuple(x_shape)
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def dims(self) -> int:
        """D, the number of data dimensions (the denominator of bits/dim)."""
        return math.prod(self.data_shape)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The mean and log-variance of q(z | x), each (B, latent_dim)."""
        h = self.encoder(x)
        mu, logvar = h.view(len(x), 2, self.latent_dim).unbind(1)  # (B, D_z) each
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The parameters of p(x | z), (B, *param_shape)."""
        params = self.decoder(z)
        return params.view(len(z), *self.likelihood.param_shape(self.data_shape))

    def elbo(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ElboTerms:
        """The ELBO's two terms with one reparameterized sample (``eps``: (B, latent_dim))."""
        models.check_data(self, x)
        mu, logvar = self.encode(x, y)
        if eps is None:
            eps = utils.randn(mu.shape, mu, generator)
        z = reparameterize(mu, logvar, eps)
        recon = self.likelihood.log_prob(self.decode(z, y), x)
        kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)  # (B, D_z)
        return ElboTerms(recon=recon, kl=kl_per_dim.sum(1), kl_per_dim=kl_per_dim)

    def kl_weight(self) -> Tensor:
        """The current weight of the KL term: beta, ramped up during ``kl_warmup`` updates."""
        if self.kl_warmup <= 0:
            return torch.tensor(self.beta, device=self.num_updates.device)
        # a tensor, not a Python float: reading num_updates would sync the GPU every step
        return self.beta * (self.num_updates / self.kl_warmup).clamp(max=1.0)

    def loss(
        self, x: Tensor, y: Tensor | None = None, *, eps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """'loss': -(recon - weight * KL), batch mean; logs elbo, recon, kl (nats) and -ELBO in
        bits/dim, as "bpd" for a discrete likelihood, "bpd_continuous" for a density."""
        terms = self.elbo(x, y, eps=eps)
        kl_term = terms.kl.mean()
        if self.free_bits > 0:
            # free bits: each latent dimension's batch-averaged KL is only pushed down to the floor
            kl_term = terms.kl_per_dim.mean(0).clamp(min=self.free_bits).sum()
        weight = self.kl_weight()
        if self.training:
            self.num_updates += 1
        elbo = terms.elbo.mean()
        bpd_key = "bpd" if self.likelihood.discrete else "bpd_continuous"
        return {
            "loss": -terms.recon.mean() + weight * kl_term,
            "elbo": elbo.detach(),
            "recon": -terms.recon.mean().detach(),  # logged as a cost: -E_q log p(x|z)
            "kl": terms.kl.mean().detach(),
            bpd_key: units.bits_per_dim(-elbo.detach(), self.dims),
        }

    def log_weights(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        k: int,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
        chunk: int = 16384,
    ) -> Tensor:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z | x): (k, B).

        ``eps`` (k, B, latent_dim) fixes the noise; ``chunk`` bounds the decoder batch size.
        """
        models.check_data(self, x)
        B = len(x)
        mu, logvar = self.encode(x, y)  # (B, D_z)
        if eps is None:
            eps = utils.randn((k, B, self.latent_dim), mu, generator)
        rows = max(1, chunk // B)  # samples per decoder call
        out = []
        for s in range(0, k, rows):
            e = eps[s : s + rows]  # (k_c, B, D_z)
            kc = len(e)
            z = reparameterize(mu, logvar, e)  # (k_c, B, D_z)
            z_flat = z.reshape(kc * B, self.latent_dim)
            x_rep = x.unsqueeze(0).expand(kc, *x.shape).reshape(kc * B, *x.shape[1:])
            y_rep = None if y is None else y.unsqueeze(0).expand(kc, B).reshape(kc * B)
            log_px_z = self.likelihood.log_prob(self.decode(z_flat, y_rep), x_rep).view(kc, B)
            log_pz = log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))  # (k_c, B)
            log_qz = log_normal_diag(z, mu, logvar)  # (k_c, B)
            out.append(log_px_z + log_pz - log_qz)
        return torch.cat(out, 0)  # (k, B)

    def iwae_bound(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        k: int,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """IWAE_k = log (1/k) sum_i w_i (Burda et al. 2016, eq. 8), one draw, (B,) nats."""
        log_w = self.log_weights(x, y, k=k, eps=eps, generator=generator)  # (k, B)
        return torch.logsumexp(log_w, 0) - math.log(k)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        k: int = 1000,
        generator: torch.Generator | None = None,
        batch_size: int = 256,
    ) -> Tensor:
        """The importance-sampled estimate of log p(x) with k samples: IWAE_k, (B,) nats."""
        parts = []
        for s in range(0, len(x), batch_size):
            ys = None if y is None else y[s : s + batch_size]
            parts.append(self.iwae_bound(x[s : s + batch_size], ys, k=k, generator=generator))
        return torch.cat(parts)

    def _prior_sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return utils.randn((n, self.latent_dim), self.device, generator)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        mean: bool = False,
    ) -> Tensor:
        """x ~ p(x | z), z ~ N(0, I): (n, *x_shape) in [0, 1]; ``mean=True`` gives E[x | z]."""
        z = self._prior_sample(n, generator)
        return self.decode_to_x(z, y, generator=generator, mean=mean)

    @torch.no_grad()
    def decode_to_x(
        self,
        z: Tensor,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        mean: bool = True,
    ) -> Tensor:
        """Images for given latents (B, latent_dim): E[x | z] or a sample of p(x | z)."""
        params = self.decode(z, y)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params, generator)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E[x | z = mu(x)]: the decoder's mean at the encoder's mean."""
        mu, _ = self.encode(x, y)
        return self.decode_to_x(mu, y, mean=True)


class ConditionalVAE(VAE):
    """A VAE conditioned on a class label y (Sohn et al. 2015): q(z | x, y) and p(x | z, y).

    The one-hot label is concatenated to the *flattened* x for the encoder (whose input size
    is therefore prod(x_shape) + num_classes) and to z for the decoder (latent_dim + num_classes).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        *,
        num_classes: int,
        **kwargs,
    ):
        super().__init__(encoder, decoder, likelihood, **kwargs)
        self.num_classes = num_classes

    def _one_hot(self, y: Tensor | None, like: Tensor) -> Tensor:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs the labels y: call it as model.loss(x, y)."
            )
        return F.one_hot(y.long(), self.num_classes).to(like.dtype)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(torch.cat([x.flatten(1), self._one_hot(y, x)], 1))  # (B, D + K) in
        mu, logvar = h.view(len(x), 2, self.latent_dim).unbind(1)
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        params = self.decoder(torch.cat([z, self._one_hot(y, z)], 1))  # (B, D_z + K) in
        return params.view(len(z), *self.likelihood.param_shape(self.data_shape))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        mean: bool = False,
    ) -> Tensor:
        """n images of classes ``y`` (n,); without y, the classes 0, 1, ..., K-1, 0, ... in turn."""
        z = self._prior_sample(n, generator)
        if y is None:
            y = torch.arange(n, device=z.device) % self.num_classes
        return self.decode_to_x(z, y.to(z.device), generator=generator, mean=mean)


class Autoencoder(nn.Module):
    """A deterministic autoencoder trained on the same likelihood: -log p(x | z = f(x)).

    Not a generative model: nothing says which z to decode at test time. The encoder
    outputs (B, latent_dim).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        *,
        latent_dim: int,
        x_shape: tuple[int, ...],
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.data_shape = tuple(x_shape)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.encoder(x).view(len(x), self.latent_dim)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z).view(len(z), *self.likelihood.param_shape(self.data_shape))

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        recon = -self.likelihood.log_prob(self.decode(self.encode(x)), x).mean()
        return {"loss": recon, "recon": recon.detach()}

    @torch.no_grad()
    def decode_to_x(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.likelihood.mean(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decode_to_x(self.encode(x))


@torch.no_grad()
def active_units(
    model: VAE, x: Tensor, y: Tensor | None = None, threshold: float = 1e-2
) -> tuple[int, Tensor]:
    """Latent dimensions the model uses (Burda et al. 2016, sec. 5.2).

    A_u = Cov_x(E_q[z_u | x]): a dimension whose posterior mean does not move with x carries
    no information about x. Returns (the number with A_u > threshold, A_u of shape (latent_dim,)).
    """
    mu, _ = model.encode(x, y)  # (N, D_z)
    activity = mu.var(0)
    return int((activity > threshold).sum()), activity


# ----------------------------------------------------------------------------- conformance


def _tiny_nets(in_dim: int, latent_dim: int, out_dim: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        nn.Flatten(), nn.Linear(in_dim, 16), nn.SiLU(), nn.Linear(16, 2 * latent_dim)
    )
    decoder = nn.Sequential(nn.Linear(latent_dim, 16), nn.SiLU(), nn.Linear(16, out_dim))
    return encoder, decoder


@models.register_conformance("vae-mlp")
def _tiny_vae() -> models.ConformanceCase:
    from coursekit.likelihoods import DiscretizedLogistic

    gen = torch.Generator().manual_seed(0)
    encoder, decoder = _tiny_nets(64, 2, 2 * 64)
    model = VAE(encoder, decoder, DiscretizedLogistic(17), latent_dim=2, x_shape=(1, 8, 8))
    x = torch.randint(0, 17, (4, 1, 8, 8), generator=gen).float() / 16
    return models.ConformanceCase(
        model=model, x=x, y=None, data_range=(0.0, 1.0), checks_input=True
    )


@models.register_conformance("cvae-mlp")
def _tiny_cvae() -> models.ConformanceCase:
    from coursekit.likelihoods import Bernoulli

    gen = torch.Generator().manual_seed(0)
    encoder, decoder = _tiny_nets(64 + 3, 2, 64)
    encoder[1] = nn.Linear(64 + 3, 16)
    decoder[0] = nn.Linear(2 + 3, 16)
    model = ConditionalVAE(
        encoder, decoder, Bernoulli(), num_classes=3, latent_dim=2, x_shape=(1, 8, 8)
    )
    x = (torch.rand(4, 1, 8, 8, generator=gen) > 0.5).float()
    y = torch.tensor([0, 1, 2, 1])
    return models.ConformanceCase(model=model, x=x, y=y, data_range=(0.0, 1.0), checks_input=True)
