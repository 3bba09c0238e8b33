"""Checks for Lecture 01 (divergences): each prints one ✓ / ✗ line and returns a ``check.Result``.

The references are in ``coursekit.divergences``; the wrong answers named in the hints are the
mistakes students actually make (a swapped ratio, a missing square or factor, a lost term).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from coursekit import check
from coursekit import divergences as dv

# The lecture's pair of Gaussians: P = N(1, 0.5^2), Q = N(0, 1).
MU_P, STD_P, MU_Q, STD_Q = 1.0, 0.5, 0.0, 1.0

NAMES = {
    "kl": "KL generator",
    "reverse_kl": "reverse-KL generator",
    "pearson": "Pearson chi^2 generator",
    "hellinger": "squared-Hellinger generator",
    "js": "Jensen-Shannon generator",
    "gan": "GAN generator",
}


def _u() -> Tensor:
    """Density ratios spanning the range that matters, 1 included. (N,) float64."""
    return torch.cat(
        [torch.logspace(-3, 3, 61, dtype=torch.float64), torch.ones(1, dtype=torch.float64)]
    )


def _generator_mistakes(name: str, u: Tensor) -> dict[str, Tensor]:
    """Plausible wrong generators, keyed by the sentence that completes 'it looks like you ...'."""
    xlogx = torch.xlogy(u, u)
    mistakes = {
        "kl": {
            "wrote the reverse-KL generator -log u; KL(P || Q) = E_Q[(p/q) log(p/q)] needs u log u": -torch.log(
                u
            ),
            "dropped the factor u: E_Q[log(p/q)] is -KL(Q || P); use u log u": torch.log(u),
            "flipped the sign: -u log u is concave": -xlogx,
        },
        "reverse_kl": {
            "wrote the KL generator u log u; KL(Q || P) = E_Q[-log(p/q)] needs -log u": xlogx,
            "flipped the sign: log u is concave, the reverse-KL generator is -log u": torch.log(u),
        },
        "pearson": {
            "forgot the square: (u - 1) gives D_f = E_Q[p/q] - 1 = 0 for every pair": u - 1,
            "wrote (u - 1)^2 / 2 (a factor 1/2 too many)": 0.5 * (u - 1) ** 2,
        },
        "hellinger": {
            "forgot the square: sqrt(u) - 1 is concave; use (sqrt(u) - 1)^2": torch.sqrt(u) - 1,
            "used the convention with a factor 1/2; this course uses (sqrt(u) - 1)^2, no 1/2": 0.5
            * (torch.sqrt(u) - 1) ** 2,
            "wrote the Pearson generator (u - 1)^2; Hellinger has square roots: (sqrt(u) - 1)^2": (
                u - 1
            )
            ** 2,
        },
        "js": {
            "left out the term -(u + 1) log((u + 1)/2): u log u / 2 is half the KL generator": 0.5
            * xlogx,
            "forgot the factor 1/2: that generator gives 2 JS (f-GAN's Table 1 form)": 2
            * dv.js_f(u),
            "wrote the GAN generator (log(u + 1) instead of log((u + 1)/2)); JS needs f(1) = 0": dv.gan_f(
                u
            ),
        },
        "gan": {
            "wrote log((u + 1)/2) instead of log(u + 1): that generator gives 2 JS, not 2 JS - log 4": 2
            * dv.js_f(u),
            "wrote the JS generator; the GAN generator is u log u - (u + 1) log(u + 1), no 1/2": dv.js_f(
                u
            ),
        },
    }
    return mistakes[name]


def _matches(a: Tensor, b: Tensor, rtol: float = 1e-5, atol: float = 1e-7) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


def check_generator(name: str, f: Callable[[Tensor], Tensor]) -> check.Result:
    """Check the student's generator ``f`` for the divergence ``name`` (a key of ``dv.DIVERGENCES``).

    Passes when f equals the reference up to a term ``c (u - 1)``, which leaves D_f unchanged.
    Then checks f(1), convexity and the Monte-Carlo estimate of D_f(P || Q) between Gaussians.
    """
    if name not in NAMES:
        raise KeyError(f"unknown generator {name!r}; choose one of {', '.join(NAMES)}.")
    d = dv.get(name)
    with check.exercise(NAMES[name]) as ex:
        u = _u()
        out = ex.tensor(
            ex.call(f, u.clone()), shape=u.shape, what=f"f(u) for u of shape {tuple(u.shape)}"
        )
        out = out.to(torch.float64)
        ref = d.f(u)
        # D_f is unchanged by f(u) -> f(u) + c (u - 1): find the c that best explains the difference.
        c = float(((out - ref) * (u - 1)).sum() / ((u - 1) ** 2).sum())
        if not _matches(out, ref + c * (u - 1)):
            for mistake, value in _generator_mistakes(name, u).items():
                ex.require(not _matches(out, value), f"it looks like you {mistake}")
            f1 = float(out[-1])
            ex.require(
                abs(f1 - d.f_at_1) < 1e-6,
                f"f(1) = {f1:.4g}, but it must be {d.f_at_1:.4g}"
                + (" so that D_f(P || P) = 0" if d.f_at_1 == 0 else " (= -log 4)"),
            )
            slopes = torch.diff(out[:-1]) / torch.diff(u[:-1])
            ex.require(
                bool((torch.diff(slopes) >= -1e-8 * slopes.abs().max()).all()),
                "f is not convex (its slope decreases somewhere): check signs and squares",
            )
            ex.close(out, ref, what="f(u)")
        # The Monte-Carlo estimate of D_f(P || Q) from samples of Q, against the exact value.
        gen = torch.Generator().manual_seed(0)
        x_q = MU_Q + STD_Q * torch.randn(100_000, generator=gen, dtype=torch.float64)
        log_p = dv.gaussian_log_prob(x_q, MU_P, STD_P)
        log_q = dv.gaussian_log_prob(x_q, MU_Q, STD_Q)
        mc = float(ex.call(lambda: dv.f_divergence_mc(f, log_p, log_q)))
        grid = dv.grid_1d(-20.0, 20.0, 40001)
        exact = float(
            dv.f_divergence_quadrature(
                d.f,
                lambda x: dv.gaussian_log_prob(x, MU_P, STD_P),
                lambda x: dv.gaussian_log_prob(x, MU_Q, STD_Q),
                grid,
            )
        )
        ex.require(
            abs(mc - exact) <= 0.02 * abs(exact) + 0.005,
            f"the Monte-Carlo D_f(P || Q) = {mc:.4f} is far from the exact {exact:.4f}",
        )
        shift = (
            f" (yours adds {c:.3g} (u - 1), which leaves D_f unchanged)" if abs(c) > 1e-6 else ""
        )
        ex.success = (
            f"f(1) = {d.f_at_1:.3g}, convex; D_f(N(1, 0.5^2) || N(0, 1)): Monte Carlo {mc:.4f},"
            f" exact {exact:.4f}{shift}"
        )
    return ex.result


def check_kl_gaussian(kl_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> check.Result:
    """Check ``kl_fn(mu_p, std_p, mu_q, std_q)`` = KL(N(mu_p, std_p^2) || N(mu_q, std_q^2)), elementwise."""
    mu_p = torch.tensor([0.0, 1.0, -2.0, 0.5])
    std_p = torch.tensor([1.0, 0.3, 2.0, 0.8])
    mu_q = torch.tensor([0.5, -1.0, 0.0, 0.5])
    std_q = torch.tensor([2.0, 1.0, 0.7, 0.8])
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_p, std_p), torch.distributions.Normal(mu_q, std_q)
    )
    with check.exercise("KL between Gaussians") as ex:
        out = ex.call(kl_fn, mu_p.clone(), std_p.clone(), mu_q.clone(), std_q.clone())
        ex.tensor(out, shape=(4,))
        log_ratio = torch.log(std_q / std_p)
        ex.close(
            out,
            ref,
            hints={
                "swapped P and Q: that is KL(Q || P)": dv.kl_gaussian(mu_q, std_q, mu_p, std_p),
                "forgot the factor 1/2 on the quadratic terms": log_ratio + 2 * (ref - log_ratio),
                "flipped the log term: it is log(std_q / std_p)": ref - 2 * log_ratio,
                "used the variances where the standard deviations go in the log term": ref
                + log_ratio,
            },
        )
    return ex.result


def check_fgan_bound(bound_fn: Callable[[Tensor, Tensor, Callable], Tensor]) -> check.Result:
    """Check ``bound_fn(t_p, t_q, f_star)`` = E_P[T] - E_Q[f*(T)] (scalar)."""
    gen = torch.Generator().manual_seed(1)
    t_p, t_q = torch.randn(64, generator=gen), torch.randn(48, generator=gen)
    f_star = dv.get("kl").f_star
    ref = t_p.mean() - f_star(t_q).mean()
    with check.exercise("f-GAN variational bound") as ex:
        out = ex.call(bound_fn, t_p.clone(), t_q.clone(), f_star)
        ex.tensor(out, shape=())
        ex.close(
            out,
            ref,
            hints={
                "swapped the samples: T is averaged under P and f*(T) under Q": t_q.mean()
                - f_star(t_p).mean(),
                "added E_Q[f*(T)] instead of subtracting it": t_p.mean() + f_star(t_q).mean(),
                "forgot the conjugate: E_Q[f*(T)], not E_Q[T]": t_p.mean() - t_q.mean(),
            },
        )
    return ex.result


def check_donsker_varadhan(dv_fn: Callable[[Tensor, Tensor], Tensor]) -> check.Result:
    """Check ``dv_fn(t_p, t_q)`` = E_P[T] - log E_Q[exp T] (scalar)."""
    gen = torch.Generator().manual_seed(2)
    t_p, t_q = torch.randn(64, generator=gen), 2 * torch.randn(48, generator=gen)
    ref = dv.donsker_varadhan_bound(t_p, t_q)
    with check.exercise("Donsker-Varadhan bound") as ex:
        out = ex.call(dv_fn, t_p.clone(), t_q.clone())
        ex.tensor(out, shape=())
        ex.close(
            out,
            ref,
            hints={
                "took E_Q[T] instead of log E_Q[exp T] (the log of the mean of the exponentials)": t_p.mean()
                - t_q.mean(),
                "forgot to subtract log(n): logsumexp sums, a mean divides by n": ref
                - math.log(t_q.shape[0]),
                "wrote the NWJ / f-GAN KL bound E_P[T] - E_Q[exp(T - 1)]": t_p.mean()
                - torch.exp(t_q - 1).mean(),
                "swapped the samples of P and Q": dv.donsker_varadhan_bound(t_q, t_p),
            },
        )
    return ex.result


def check_optimal_discriminator(d_fn: Callable[[Tensor, Tensor], Tensor]) -> check.Result:
    """Check ``d_fn(log_p_data, log_p_model)`` = D*(x) = p_d / (p_d + p_m), elementwise, in (0, 1)."""
    gen = torch.Generator().manual_seed(3)
    log_p_data = -3 * torch.rand(10, generator=gen) - 0.5
    log_p_model = -3 * torch.rand(10, generator=gen) - 0.5
    ref = torch.sigmoid(log_p_data - log_p_model)
    with check.exercise("optimal discriminator D*") as ex:
        out = ex.call(d_fn, log_p_data.clone(), log_p_model.clone())
        ex.tensor(out, shape=(10,))
        ex.close(
            out,
            ref,
            hints={
                "swapped data and model: that is p_m / (p_d + p_m) = 1 - D*": 1 - ref,
                "returned the ratio p_d / p_m; D* = p_d / (p_d + p_m)": torch.exp(
                    log_p_data - log_p_model
                ),
                "returned the logit log p_d - log p_m; apply a sigmoid": log_p_data - log_p_model,
            },
        )
    return ex.result


def check_all(fns: Mapping[str, Callable[[Tensor], Tensor]]) -> list[check.Result]:
    """Run ``check_generator`` on every generator in ``fns`` (name -> f)."""
    return [check_generator(name, f) for name, f in fns.items()]
