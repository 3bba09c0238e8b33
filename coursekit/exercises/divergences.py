"""Checks for Lecture 01 (divergences): each prints one ✓ / ✗ line and returns a ``check.Result``.

The references are in ``coursekit.divergences``; the wrong answers named in the hints are the
mistakes students actually make (a swapped ratio, a missing square or factor, a lost term).

Every check runs on two cases that differ in every size a student could write as a number (the
shape of the ratios u, the numbers of samples N from P and M from Q); ``seed=0`` starts with
the notebook's inputs, another seed draws other sizes and values (and, for the generators,
another pair of Gaussians). Generators, KLs and bounds are checked for their gradient too: the
optimal critic of the f-GAN is f'(p/q), and the bounds are trained by gradient ascent.
"""

from __future__ import annotations

import functools
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

_U_SHAPES = [(62,), (5, 7), (40,), (3, 4, 3), (8, 6), (25,), (2, 9, 2), (11, 3), (90,)]


def _u(case: check.Case) -> Tensor:
    """Positive density ratios spanning 1e-3..1e3, sorted, with u = 1 as the last entry, in the
    case's shape. float64."""
    if case.shown:
        return torch.cat(
            [torch.logspace(-3, 3, 61, dtype=torch.float64), torch.ones(1, dtype=torch.float64)]
        )
    n = math.prod(case.shape)
    log_u = 6 * torch.rand(n - 3, generator=case.generator(0), dtype=torch.float64) - 3
    ends = torch.tensor([-3.0, 3.0], dtype=torch.float64)
    u = torch.cat([torch.sort(torch.cat([log_u, ends])).values.exp(), torch.ones(1).double()])
    return u.view(case.shape)


def _jeffreys(u: Tensor) -> Tensor:
    return (u - 1) * torch.log(u)


def _generator_mistakes(name: str, u: Tensor) -> dict[str, Tensor]:
    """Plausible wrong generators, keyed by the sentence that completes 'it looks like you ...'."""
    xlogx = torch.xlogy(u, u)
    log2 = math.log(2)
    mistakes = {
        "kl": {
            "wrote the reverse-KL generator -log u; KL(P || Q) = E_Q[(p/q) log(p/q)] needs u log u": -torch.log(
                u
            ),
            "dropped the factor u: E_Q[log(p/q)] is -KL(Q || P); use u log u": torch.log(u),
            "flipped the sign: -u log u is concave": -xlogx,
            "used log base 2: the course measures divergences in nats, use torch.log": xlogx / log2,
            "wrote (u - 1) log u, Jeffreys' divergence (KL + reverse KL)": _jeffreys(u),
        },
        "reverse_kl": {
            "wrote the KL generator u log u; KL(Q || P) = E_Q[-log(p/q)] needs -log u": xlogx,
            "flipped the sign: log u is concave, the reverse-KL generator is -log u": torch.log(u),
            "multiplied by u: -u log u is concave; E_Q[-log(p/q)] needs just -log u": -xlogx,
            "used log base 2: the course measures divergences in nats, use torch.log": -torch.log(u)
            / log2,
            "wrote (u - 1) log u, Jeffreys' divergence (KL + reverse KL)": _jeffreys(u),
        },
        "pearson": {
            "forgot the square: (u - 1) gives D_f = E_Q[p/q] - 1 = 0 for every pair": u - 1,
            "wrote (u - 1)^2 / 2 (a factor 1/2 too many)": 0.5 * (u - 1) ** 2,
            "wrote Neyman's chi^2 (u - 1)^2 / u, which is chi^2(Q || P)": (u - 1) ** 2 / u,
            "wrote the Hellinger generator (sqrt(u) - 1)^2; Pearson is (u - 1)^2": (
                torch.sqrt(u) - 1
            )
            ** 2,
            "wrote |u - 1| (total variation, times 2); Pearson squares: (u - 1)^2": (u - 1).abs(),
        },
        "hellinger": {
            "forgot the square: sqrt(u) - 1 is concave; use (sqrt(u) - 1)^2": torch.sqrt(u) - 1,
            "used the convention with a factor 1/2; this course uses (sqrt(u) - 1)^2, no 1/2": 0.5
            * (torch.sqrt(u) - 1) ** 2,
            "wrote the Pearson generator (u - 1)^2; Hellinger has square roots: (sqrt(u) - 1)^2": (
                u - 1
            )
            ** 2,
            "wrote (sqrt(u) + 1)^2: with the minus sign, (sqrt(u) - 1)^2, f(1) = 0": (
                torch.sqrt(u) + 1
            )
            ** 2,
            "wrote |u - 1| (total variation, times 2); Hellinger is (sqrt(u) - 1)^2": (u - 1).abs(),
        },
        "js": {
            "left out the term -(u + 1) log((u + 1)/2): u log u / 2 is half the KL generator": 0.5
            * xlogx,
            "forgot the factor 1/2: that generator gives 2 JS (f-GAN's Table 1 form)": 2
            * dv.js_f(u),
            "wrote the GAN generator (log(u + 1) instead of log((u + 1)/2)); JS needs f(1) = 0": dv.gan_f(
                u
            ),
            "wrote log(u + 1) instead of log((u + 1)/2): that is half the GAN generator": 0.5
            * dv.gan_f(u),
            "added (u + 1) log((u + 1)/2); it is subtracted": 0.5
            * (xlogx + (u + 1) * torch.log((u + 1) / 2)),
            "used log base 2: the course measures divergences in nats, use torch.log": dv.js_f(u)
            / log2,
        },
        "gan": {
            "wrote log((u + 1)/2) instead of log(u + 1): that generator gives 2 JS, not 2 JS - log 4": 2
            * dv.js_f(u),
            "wrote the JS generator; the GAN generator is u log u - (u + 1) log(u + 1), no 1/2": dv.js_f(
                u
            ),
            "halved it: the 1/2 belongs to JS, the GAN generator is u log u - (u + 1) log(u + 1)": 0.5
            * dv.gan_f(u),
            "added (u + 1) log(u + 1); it is subtracted": xlogx + (u + 1) * torch.log(u + 1),
            "dropped the term u log u: -(u + 1) log(u + 1) is concave": -(u + 1) * torch.log(u + 1),
        },
    }
    return mistakes[name]


def _shift(out: Tensor, value: Tensor, u: Tensor) -> float:
    """The c for which out ≈ value + c (u - 1) fits best (least squares)."""
    return float(((out - value) * (u - 1)).sum() / ((u - 1) ** 2).sum())


def _matches(a: Tensor, b: Tensor, rtol: float = 1e-5, atol: float = 1e-7) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


def _matches_up_to_shift(out: Tensor, value: Tensor, u: Tensor) -> bool:
    """out = value + c (u - 1) for some c: the same divergence as value."""
    return _matches(out, value + _shift(out, value, u) * (u - 1))


def _gaussians(case: check.Case) -> tuple[float, float]:
    """(mu_p, std_p) of P; Q = N(0, 1). The lecture's pair in the notebook's case."""
    if case.shown:
        return MU_P, STD_P
    g = case.generator(1)
    return 0.5 + float(torch.rand((), generator=g)), 0.5 + 0.3 * float(torch.rand((), generator=g))


@functools.lru_cache(maxsize=16)
def _log_densities_at_q(mu_p: float, std_p: float, seed: int) -> tuple[Tensor, Tensor]:
    """log p and log q at 100 000 samples of Q (float64), for the Monte-Carlo D_f."""
    gen = torch.Generator().manual_seed(seed)
    x_q = MU_Q + STD_Q * torch.randn(100_000, generator=gen, dtype=torch.float64)
    return dv.gaussian_log_prob(x_q, mu_p, std_p), dv.gaussian_log_prob(x_q, MU_Q, STD_Q)


@functools.lru_cache(maxsize=64)
def _exact(name: str, mu_p: float, std_p: float) -> float:
    """D_f(N(mu_p, std_p^2) || N(0, 1)) by quadrature."""
    return float(
        dv.f_divergence_quadrature(
            dv.get(name).f,
            lambda x: dv.gaussian_log_prob(x, mu_p, std_p),
            lambda x: dv.gaussian_log_prob(x, MU_Q, STD_Q),
            dv.grid_1d(-20.0, 20.0, 40001),
        )
    )


def check_generator(name: str, f: Callable[[Tensor], Tensor], *, seed: int = 0) -> check.Result:
    """Check the student's generator ``f`` for the divergence ``name`` (a key of ``dv.DIVERGENCES``).

    Passes when f equals the reference up to a term ``c (u - 1)``, which leaves D_f unchanged,
    and so does its derivative (f' + c: the f-GAN's optimal critic is f'(p/q)). Then checks f(1),
    convexity and the Monte-Carlo estimate of D_f(P || Q) between Gaussians.
    """
    if name not in NAMES:
        raise KeyError(f"unknown generator {name!r}; choose one of {', '.join(NAMES)}.")
    d = dv.get(name)
    cases = check.sizes(seed, shape=((62,), (5, 7), _U_SHAPES))
    with check.exercise(NAMES[name]) as ex:
        for case in ex.cases(cases):
            u = _u(case)
            what = f"f(u) for u of shape {tuple(u.shape)}"
            out = ex.tensor(ex.call(f, u, grad=True), shape=u.shape, what=what)
            flat, uf = out.detach().to(torch.float64).flatten(), u.flatten()
            ref = d.f(uf)
            # D_f is unchanged by f(u) -> f(u) + c (u - 1): find the c that best explains it.
            c = _shift(flat, ref, uf)
            if not _matches(flat, ref + c * (uf - 1)):
                for mistake, value in _generator_mistakes(name, uf).items():
                    ex.require(
                        not _matches_up_to_shift(flat, value, uf), f"it looks like you {mistake}"
                    )
                f1 = float(flat[-1])
                ex.require(
                    abs(f1 - d.f_at_1) < 1e-6,
                    f"f(1) = {f1:.4g}, but it must be {d.f_at_1:.4g}"
                    + (" so that D_f(P || P) = 0" if d.f_at_1 == 0 else " (= -log 4)"),
                )
                slopes = torch.diff(flat[:-1]) / torch.diff(uf[:-1])
                ex.require(
                    bool((torch.diff(slopes) >= -1e-8 * slopes.abs().max()).all()),
                    "f is not convex (its slope decreases somewhere): check signs and squares",
                )
                ex.close(flat, ref, what="f(u)")
            ex.grad(out, lambda u, c=c: d.f(u) + c * (u - 1), what="your f(u)")
        # The Monte-Carlo estimate of D_f(P || Q) from samples of Q, against the exact value.
        mu_p, std_p = _gaussians(cases[0])
        log_p, log_q = _log_densities_at_q(mu_p, std_p, 0 if cases[0].shown else seed + 1)
        mc = float(ex.call(dv.f_divergence_mc, f, log_p, log_q).detach())
        exact = _exact(name, mu_p, std_p)
        pair = f"D_f(N({mu_p:.3g}, {std_p:.3g}^2) || N(0, 1))"
        ex.require(
            abs(mc - exact) <= 0.02 * abs(exact) + 0.005,
            f"the Monte-Carlo {pair} = {mc:.4f} is far from the exact {exact:.4f}",
        )
        shift = (
            f" (yours adds {c:.3g} (u - 1), which leaves D_f unchanged)" if abs(c) > 1e-6 else ""
        )
        ex.success = (
            f"f(1) = {d.f_at_1:.3g}, convex; {pair}: Monte Carlo {mc:.4f}, exact {exact:.4f}{shift}"
        )
    return ex.result


_SHAPES = [(4,), (3, 5), (7,), (2, 3), (6,), (2, 2, 2), (9,), (4, 2)]


def check_kl_gaussian(
    kl_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """Check ``kl_fn(mu_p, std_p, mu_q, std_q)`` = KL(N(mu_p, std_p^2) || N(mu_q, std_q^2)), elementwise."""
    cases = check.sizes(seed, shape=((4,), (3, 5), _SHAPES))
    with check.exercise("KL between Gaussians") as ex:
        for case in ex.cases(cases):
            if case.shown:
                mu_p = torch.tensor([0.0, 1.0, -2.0, 0.5])
                std_p = torch.tensor([1.0, 0.3, 2.0, 0.8])
                mu_q = torch.tensor([0.5, -1.0, 0.0, 0.5])
                std_q = torch.tensor([2.0, 1.0, 0.7, 0.8])
            else:
                g = case.generator(0)
                mu_p, mu_q = (
                    torch.randn(case.shape, generator=g),
                    torch.randn(case.shape, generator=g),
                )
                std_p = torch.exp(0.5 * torch.randn(case.shape, generator=g))
                std_q = torch.exp(0.5 * torch.randn(case.shape, generator=g))
            ref = torch.distributions.kl_divergence(
                torch.distributions.Normal(mu_p, std_p), torch.distributions.Normal(mu_q, std_q)
            )
            log_ratio = torch.log(std_q / std_p)
            d2 = (mu_p - mu_q) ** 2
            out = ex.call(kl_fn, mu_p, std_p, mu_q, std_q, grad=True)
            ex.close(
                ex.tensor(out, what="your KL"),
                ref,
                what="your KL",
                hints={
                    "swapped P and Q: that is KL(Q || P)": dv.kl_gaussian(mu_q, std_q, mu_p, std_p),
                    "forgot the factor 1/2 on the quadratic terms": log_ratio
                    + 2 * (ref - log_ratio),
                    "flipped the log term: it is log(std_q / std_p)": ref - 2 * log_ratio,
                    "used the variances where the standard deviations go in the log term": ref
                    + log_ratio,
                    "forgot the -1/2": ref + 0.5,
                    "divided by std_p^2; the quadratic terms are over the variance of Q, std_q^2": log_ratio
                    + (std_p**2 + d2) / (2 * std_p**2)
                    - 0.5,
                    "used std_p where its square std_p^2 belongs": log_ratio
                    + (std_p + d2) / (2 * std_q**2)
                    - 0.5,
                    "forgot to square the difference of the means": log_ratio
                    + (std_p**2 + (mu_p - mu_q)) / (2 * std_q**2)
                    - 0.5,
                    "summed over the elements: return one KL per pair, elementwise": ref.sum(),
                },
            )
            ex.grad(out, dv.kl_gaussian, what="your KL")
    return ex.result


def _samples(case: check.Case, shown_seed: int, scale_q: float) -> tuple[Tensor, Tensor]:
    """T evaluated on N samples of P and M samples of Q (N != M, so a swap shows)."""
    gen = case.generator(shown_seed)
    M = case.M if case.M != case.N else case.M + 1
    return torch.randn(case.N, generator=gen), scale_q * torch.randn(M, generator=gen)


def _sample_cases(seed: int) -> list[check.Case]:
    return check.sizes(seed, N=(64, 17, range(5, 120)), M=(48, 90, range(5, 120)))


def check_fgan_bound(
    bound_fn: Callable[[Tensor, Tensor, Callable], Tensor], *, seed: int = 0
) -> check.Result:
    """Check ``bound_fn(t_p, t_q, f_star)`` = E_P[T] - E_Q[f*(T)] (scalar)."""
    with check.exercise("f-GAN variational bound") as ex:
        for case in ex.cases(_sample_cases(seed)):
            t_p, t_q = _samples(case, 1, 1.0)
            # the notebook's conjugate (KL's); other cases also use Pearson's, t^2/4 + t
            f_star = dv.get("kl" if case.index % 2 == 0 else "pearson").f_star
            ref = t_p.mean() - f_star(t_q).mean()
            out = ex.call(bound_fn, t_p, t_q, f_star, grad=(0, 1))
            ex.close(
                ex.tensor(out, what="your bound"),
                ref,
                what="your bound",
                hints={
                    "swapped the samples: T is averaged under P and f*(T) under Q": t_q.mean()
                    - f_star(t_p).mean(),
                    "added E_Q[f*(T)] instead of subtracting it": t_p.mean() + f_star(t_q).mean(),
                    "forgot the conjugate: E_Q[f*(T)], not E_Q[T]": t_p.mean() - t_q.mean(),
                    "summed over the samples instead of averaging": t_p.sum() - f_star(t_q).sum(),
                    "applied f* after averaging: E_Q[f*(T)] is the mean of f*(T), not f*(E_Q[T])": t_p.mean()
                    - f_star(t_q.mean()),
                    "evaluated f*(T) on P's samples: the conjugate term is an expectation under Q": t_p.mean()
                    - f_star(t_p).mean(),
                    "divided the sum over Q's samples by the number of P's samples": t_p.mean()
                    - f_star(t_q).sum() / t_p.shape[0],
                },
            )
            ex.grad(out, lambda a, b, fs: a.mean() - fs(b).mean(), what="your bound")
    return ex.result


def check_donsker_varadhan(
    dv_fn: Callable[[Tensor, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """Check ``dv_fn(t_p, t_q)`` = E_P[T] - log E_Q[exp T] (scalar)."""
    with check.exercise("Donsker-Varadhan bound") as ex:
        for case in ex.cases(_sample_cases(seed)):
            t_p, t_q = _samples(case, 2, 2.0)
            ref = dv.donsker_varadhan_bound(t_p, t_q)
            lse = torch.logsumexp(t_q, 0)
            out = ex.call(dv_fn, t_p, t_q, grad=True)
            ex.close(
                ex.tensor(out, what="your bound"),
                ref,
                what="your bound",
                hints={
                    "took E_Q[T] instead of log E_Q[exp T] (the log of the mean of the exponentials)": t_p.mean()
                    - t_q.mean(),
                    "forgot to subtract log(n): logsumexp sums, a mean divides by n": t_p.mean()
                    - lse,
                    "wrote the NWJ / f-GAN KL bound E_P[T] - E_Q[exp(T - 1)]": t_p.mean()
                    - torch.exp(t_q - 1).mean(),
                    "swapped the samples of P and Q": dv.donsker_varadhan_bound(t_q, t_p),
                    "divided the logsumexp by n instead of subtracting log n": t_p.mean()
                    - lse / t_q.shape[0],
                    "subtracted log N of P's samples: the mean is over Q's M samples": t_p.mean()
                    - (lse - math.log(t_p.shape[0])),
                    "forgot the log: log E_Q[exp T], not E_Q[exp T]": t_p.mean() - t_q.exp().mean(),
                    "summed E_P[T] over the samples instead of averaging": t_p.sum()
                    - (lse - math.log(t_q.shape[0])),
                },
            )
            ex.grad(out, dv.donsker_varadhan_bound, what="your bound")
    return ex.result


def check_optimal_discriminator(
    d_fn: Callable[[Tensor, Tensor], Tensor], *, seed: int = 0
) -> check.Result:
    """Check ``d_fn(log_p_data, log_p_model)`` = D*(x) = p_d / (p_d + p_m), elementwise, in (0, 1)."""
    cases = check.sizes(
        seed, shape=((10,), (3, 4), [(10,), (3, 4), (7,), (2, 5), (16,), (2, 2, 3)])
    )
    with check.exercise("optimal discriminator D*") as ex:
        for case in ex.cases(cases):
            gen = case.generator(3)
            log_p_data = -3 * torch.rand(case.shape, generator=gen) - 0.5
            log_p_model = -3 * torch.rand(case.shape, generator=gen) - 0.5
            ref = torch.sigmoid(log_p_data - log_p_model)
            out = ex.call(d_fn, log_p_data, log_p_model)
            ex.close(
                ex.tensor(out, what="your D*"),
                ref,
                what="your D*",
                hints={
                    "swapped data and model: that is p_m / (p_d + p_m) = 1 - D*": 1 - ref,
                    "returned the ratio p_d / p_m; D* = p_d / (p_d + p_m)": torch.exp(
                        log_p_data - log_p_model
                    ),
                    "returned the logit log p_d - log p_m; apply a sigmoid": log_p_data
                    - log_p_model,
                    "returned log D*; apply exp, or use torch.sigmoid(log_p_data - log_p_model)": torch.nn.functional.logsigmoid(
                        log_p_data - log_p_model
                    ),
                    "forgot to exponentiate: the inputs are log-densities, p = exp(log p)": log_p_data
                    / (log_p_data + log_p_model),
                    "summed over the points: D* is one probability per point": ref.sum(),
                },
            )
    return ex.result


def check_all(
    fns: Mapping[str, Callable[[Tensor], Tensor]], *, seed: int = 0
) -> list[check.Result]:
    """Run ``check_generator`` on every generator in ``fns`` (name -> f)."""
    return [check_generator(name, f, seed=seed) for name, f in fns.items()]
