"""Checks for Lecture 02 (VAE): each prints one ✓ / ✗ line and returns a ``check.Result``.

The references are in ``coursekit.vae``; the wrong answers named in the hints are the
mistakes students make (a lost 1/2, a sum over the batch, log-variance read as log-std,
an IWAE without its 1/k or computed with a naive exp).

Every check runs on two sets of sizes that differ in the batch size B, the latent width D and
the number of importance samples k (``seed=0``: the notebook's sizes first; another seed draws
other sizes and values), on copies of its inputs, and checks the gradient of each loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from coursekit import check
from coursekit import vae as ref


def _mu_logvar(case: check.Case) -> tuple[Tensor, Tensor]:
    """B diagonal Gaussians in D dims, away from the special case sigma = 1."""
    gen = case.generator(0)
    mu = torch.randn(case.B, case.D, generator=gen)
    logvar = torch.randn(case.B, case.D, generator=gen).clamp(-2, 2) + 0.5
    return mu, logvar


def _latent_cases(seed: int) -> list[check.Case]:
    return check.sizes(seed, B=(5, 2, range(2, 12)), D=(3, 7, range(2, 10)))


def check_kl_diag_gaussian(
    kl_fn: Callable[[Tensor, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """``kl_fn(mu, logvar) -> (B,)``: KL(N(mu, diag(exp(logvar))) || N(0, I)) per example."""
    with check.exercise("KL(q(z|x) || N(0, I))", success="matches torch.distributions") as ex:
        for case in ex.cases(_latent_cases(seed)):
            mu, logvar = _mu_logvar(case)
            expected = torch.distributions.kl_divergence(
                torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                torch.distributions.Normal(0.0, 1.0),
            ).sum(-1)  # (B,), the oracle
            var = logvar.exp()
            terms = 0.5 * (mu**2 + var - logvar - 1)  # (B, D)
            out = ex.call(kl_fn, mu, logvar, grad=True)
            ex.close(
                ex.tensor(out, what="your KL"),
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
                    "flipped the sign of the whole KL (it is >= 0)": -expected,
                    "averaged over the latent dimensions instead of summing": expected / case.D,
                    "summed over the batch instead of over the latent dimensions (axes "
                    "swapped: sum over the last dimension, dim=-1)": terms.sum(0),
                    "summed over the batch too: return one KL per example, shape (B,)": expected.sum(),
                    "averaged over the batch: return one KL per example, shape (B,)": expected.mean(),
                    "forgot to sum over the latent dimensions (sum over dim=-1)": terms,
                    "forgot to square mu": 0.5 * (mu + var - logvar - 1).sum(-1),
                },
            )
            ex.grad(out, ref.kl_std_normal, what="your KL")
    return ex.result


def check_reparameterize(
    sample_fn: Callable[[Tensor, Tensor, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """``sample_fn(mu, logvar, eps) -> z``: z = mu + sigma * eps, differentiable in mu and logvar."""
    with check.exercise(
        "reparameterized sample", success="z = mu + sigma * eps, gradients flow"
    ) as ex:
        for case in ex.cases(_latent_cases(seed)):
            mu, logvar = _mu_logvar(case)
            eps = torch.randn(case.B, case.D, generator=case.generator(1))
            expected = ref.reparameterize(mu, logvar, eps)
            sigma = torch.exp(0.5 * logvar)
            z = ex.call(sample_fn, mu, logvar, eps, grad=(0, 1))
            ex.close(
                ex.tensor(z, what="your z"),
                expected,
                what="your z",
                hints={
                    "used the variance exp(logvar) as the scale; sigma = exp(logvar / 2)": mu
                    + logvar.exp() * eps,
                    "used logvar itself as the scale; sigma = exp(logvar / 2)": mu + logvar * eps,
                    "used exp(2 logvar) as the scale: logvar is the log of the variance": mu
                    + torch.exp(2 * logvar) * eps,
                    "forgot to add the mean mu": sigma * eps,
                    "subtracted sigma * eps: with the given eps, z = mu + sigma * eps": mu
                    - sigma * eps,
                    "scaled the mean too: (mu + eps) * sigma; only eps is scaled": (mu + eps)
                    * sigma,
                    "swapped mu and sigma: z = sigma + mu * eps": sigma + mu * eps,
                    "used 1 / sigma = exp(-logvar / 2) as the scale": mu + eps / sigma,
                },
            )
            ex.grad(z, ref.reparameterize, what="your z")
    return ex.result


def _log_weights(case: check.Case) -> Tensor:
    """(k, B) log importance weights around -300 nats: a naive exp underflows to 0."""
    return -300.0 + 3.0 * torch.randn(case.k, case.B, generator=case.generator(2))


def _iwae_reference(log_w: Tensor) -> Tensor:
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def check_iwae_bound(iwae_fn: Callable[[Tensor], Tensor], *, seed: int = 0) -> check.Result:
    """``iwae_fn(log_w) -> (B,)`` with log_w (k, B): log (1/k) sum_i exp(log_w_i), stably."""
    cases = check.sizes(seed, k=(64, 10, range(2, 100)), B=(4, 7, range(2, 12)))
    with check.exercise("IWAE bound from log-weights", success="stable log-mean-exp over k") as ex:
        for case in ex.cases(cases):
            log_w = _log_weights(case)
            k = case.k
            lse = torch.logsumexp(log_w.double(), 0)
            expected = lse - math.log(k)
            out = ex.call(iwae_fn, log_w, grad=True)
            if isinstance(out, Tensor) and out.is_floating_point() and torch.isinf(out).any():
                raise check.CheckFailed(
                    "your bound is -inf: exp(-300) underflows to 0 in float32. Subtract the max "
                    "log-weight before exponentiating, or use torch.logsumexp"
                )
            ex.close(
                ex.tensor(out, what="your bound"),
                expected,
                rtol=1e-5,
                atol=1e-3,
                what="your bound",
                hints={
                    "forgot the 1/k: subtract log k from the logsumexp": lse,
                    "averaged the log-weights: that is the ELBO (k samples of it), not IWAE_k": log_w.mean(
                        0
                    ),
                    "took the max over the samples instead of the log-mean-exp": log_w.max(
                        0
                    ).values,
                    "divided the logsumexp by k instead of subtracting log k": lse / k,
                    "reduced over the batch (dim=1) instead of the k samples (dim=0): log_w is "
                    "(k, B)": torch.logsumexp(log_w.double(), 1) - math.log(case.B),
                    "subtracted log B (the batch size) instead of log k": lse - math.log(case.B),
                    "added log k instead of subtracting it": lse + math.log(k),
                    "averaged over the batch as well: return one bound per example, shape (B,)": expected.mean(),
                },
            )
            ex.grad(out, _iwae_reference, what="your bound", atol=1e-4)
    return ex.result
