"""Checks for Lecture 02 (VAE): each prints one ✓ / ✗ line and returns a ``check.Result``.

The references are in ``coursekit.vae``; the wrong answers named in the hints are the
mistakes students make (a lost 1/2, a sum over the batch, log-variance read as log-std,
an IWAE without its 1/k or computed with a naive exp).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from coursekit import check
from coursekit import vae as ref


def _mu_logvar() -> tuple[Tensor, Tensor]:
    """A batch of B=5 diagonal Gaussians in 3 dims, away from the special case sigma = 1."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=gen)
    logvar = torch.randn(5, 3, generator=gen).clamp(-2, 2) + 0.5
    return mu, logvar


def check_kl_diag_gaussian(kl_fn: Callable[[Tensor, Tensor], Tensor]) -> check.Result:
    """``kl_fn(mu, logvar) -> (B,)``: KL(N(mu, diag(exp(logvar))) || N(0, I)) per example."""
    mu, logvar = _mu_logvar()
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
        torch.distributions.Normal(0.0, 1.0),
    ).sum(-1)  # (B,), the oracle
    var = logvar.exp()
    with check.exercise("KL(q(z|x) || N(0, I))", success="matches torch.distributions") as ex:
        out = ex.call(kl_fn, mu.clone(), logvar.clone())
        ex.tensor(out, shape=(5,), what="your KL")
        ex.close(
            out,
            expected,
            what="your KL",
            hints={
                "forgot the factor 1/2 in front of the sum": 2 * expected,
                "read logvar as log(sigma): the variance is exp(logvar), not exp(2 logvar)": 0.5
                * (mu**2 + torch.exp(2 * logvar) - 2 * logvar - 1).sum(-1),
                "used the standard deviation exp(logvar / 2) where the variance belongs": 0.5
                * (mu**2 + torch.exp(0.5 * logvar) - logvar - 1).sum(-1),
                "dropped the -1 inside the sum (it makes KL(N(0, I) || N(0, I)) = 0)": 0.5
                * (mu**2 + var - logvar).sum(-1),
                "flipped the sign of the log-variance term": 0.5
                * (mu**2 + var + logvar - 1).sum(-1),
                "averaged over the latent dimensions instead of summing": expected / 3,
            },
        )
    return ex.result


def check_reparameterize(sample_fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> check.Result:
    """``sample_fn(mu, logvar, eps) -> z``: z = mu + sigma * eps, differentiable in mu and logvar."""
    mu, logvar = _mu_logvar()
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    expected = ref.reparameterize(mu, logvar, eps)
    with check.exercise(
        "reparameterized sample", success="z = mu + sigma * eps, gradients flow"
    ) as ex:
        mu_in, logvar_in = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        z = ex.call(sample_fn, mu_in, logvar_in, eps.clone())
        ex.tensor(z, shape=(5, 3), what="your z")
        ex.close(
            z.detach(),
            expected,
            what="your z",
            hints={
                "used the variance exp(logvar) as the scale; sigma = exp(logvar / 2)": mu
                + logvar.exp() * eps,
                "used logvar itself as the scale; sigma = exp(logvar / 2)": mu + logvar * eps,
                "used exp(2 logvar) as the scale: logvar is the log of the variance": mu
                + torch.exp(2 * logvar) * eps,
                "forgot to add the mean mu": torch.exp(0.5 * logvar) * eps,
            },
        )
        ex.require(
            z.requires_grad,
            "your z is right but carries no gradient: do not detach it or build it under "
            "torch.no_grad(), the point of the trick is that d z / d mu and d z / d sigma exist",
        )
        z.sum().backward()
        ex.require(
            mu_in.grad is not None and logvar_in.grad is not None,
            "no gradient reached mu or logvar: build z from them with differentiable operations",
        )
        ex.close(
            logvar_in.grad,
            0.5 * torch.exp(0.5 * logvar) * eps,
            what="d z / d logvar",
        )
    return ex.result


def _log_weights() -> Tensor:
    """(k=64, B=4) log importance weights around -300 nats: a naive exp underflows to 0."""
    gen = torch.Generator().manual_seed(2)
    return -300.0 + 3.0 * torch.randn(64, 4, generator=gen)


def check_iwae_bound(iwae_fn: Callable[[Tensor], Tensor]) -> check.Result:
    """``iwae_fn(log_w) -> (B,)`` with log_w (k, B): log (1/k) sum_i exp(log_w_i), stably."""
    log_w = _log_weights()
    k = log_w.shape[0]
    expected = torch.logsumexp(log_w.double(), 0) - math.log(k)
    with check.exercise("IWAE bound from log-weights", success="stable log-mean-exp over k") as ex:
        out = ex.call(iwae_fn, log_w.clone())
        if isinstance(out, Tensor) and out.is_floating_point() and torch.isinf(out).any():
            raise check.CheckFailed(
                "your bound is -inf: exp(-300) underflows to 0 in float32. Subtract the max "
                "log-weight before exponentiating, or use torch.logsumexp"
            )
        ex.tensor(out, shape=(4,), what="your bound")
        ex.close(
            out,
            expected,
            rtol=1e-5,
            atol=1e-3,
            what="your bound",
            hints={
                "forgot the 1/k: subtract log k from the logsumexp": expected + math.log(k),
                "averaged the log-weights: that is the ELBO (k samples of it), not IWAE_k": log_w.mean(
                    0
                ),
                "took the max over the samples instead of the log-mean-exp": log_w.max(0).values,
                "divided the logsumexp by k instead of subtracting log k": torch.logsumexp(
                    log_w.double(), 0
                )
                / k,
            },
        )
    return ex.result
