"""coursekit.divergences against oracles: closed forms, torch.distributions, scipy quadrature,
brute-force conjugates, and the tightness of the variational bounds at the optimal critic."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from coursekit import divergences as dv

# P = N(1, 0.5^2), Q = N(0, 1): the pair used in the lecture.
MU_P, STD_P, MU_Q, STD_Q = 1.0, 0.5, 0.0, 1.0
GRID = dv.grid_1d(-20.0, 20.0, 40001)


def log_p(x):
    return dv.gaussian_log_prob(x, MU_P, STD_P)


def log_q(x):
    return dv.gaussian_log_prob(x, MU_Q, STD_Q)


def scipy_integral(fn) -> float:
    """int fn(x) dx over R by adaptive quadrature (an oracle independent of our grid)."""
    value, _ = integrate.quad(fn, -np.inf, np.inf, epsabs=1e-12, epsrel=1e-10, limit=200)
    return value


P_PDF = stats.norm(MU_P, STD_P).pdf
Q_PDF = stats.norm(MU_Q, STD_Q).pdf


def js_scipy() -> float:
    """JS from its definition KL(P||M)/2 + KL(Q||M)/2, M = (P + Q)/2."""

    def integrand(x):
        p, q = P_PDF(x), Q_PDF(x)
        m = (p + q) / 2
        return 0.5 * (p * np.log(p / m) if p > 0 else 0.0) + 0.5 * (
            q * np.log(q / m) if q > 0 else 0.0
        )

    return scipy_integral(integrand)


# Independent values of each divergence between P and Q.
ORACLES = {
    "kl": lambda: float(dv.kl_gaussian(MU_P, STD_P, MU_Q, STD_Q)),
    "reverse_kl": lambda: float(dv.kl_gaussian(MU_Q, STD_Q, MU_P, STD_P)),
    # int p^2/q - 1 in closed form (valid since 2 s_q^2 > s_p^2).
    "pearson": lambda: (
        STD_Q**2
        / (STD_P * math.sqrt(2 * STD_Q**2 - STD_P**2))
        * math.exp((MU_P - MU_Q) ** 2 / (2 * STD_Q**2 - STD_P**2))
        - 1.0
    ),
    "hellinger": lambda: float(dv.hellinger_gaussian(MU_P, STD_P, MU_Q, STD_Q)),
    "js": js_scipy,
    "gan": lambda: 2 * js_scipy() - math.log(4),
}


def test_every_divergence_has_an_oracle():
    assert set(ORACLES) == set(dv.DIVERGENCES)


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_generator_is_zero_at_one_and_convex(name):
    d = dv.get(name)
    assert float(d.f(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(d.f_at_1, abs=1e-12)
    u = torch.logspace(-3, 3, 2001, dtype=torch.float64)
    slopes = torch.diff(d.f(u)) / torch.diff(u)
    assert (torch.diff(slopes) >= -1e-9).all(), "slopes of a convex function never decrease"


def test_gan_generator_is_offset_at_one():
    assert dv.get("gan").f_at_1 == pytest.approx(-math.log(4))


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_quadrature_matches_oracle(name):
    value = float(dv.f_divergence_quadrature(dv.get(name).f, log_p, log_q, GRID))
    assert value == pytest.approx(ORACLES[name](), rel=1e-6, abs=1e-8)


def test_kl_gaussian_matches_torch_distributions():
    mu_p, std_p = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 0.3, 2.0])
    mu_q, std_q = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([2.0, 1.0, 0.7])
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_p, std_p), torch.distributions.Normal(mu_q, std_q)
    )
    torch.testing.assert_close(dv.kl_gaussian(mu_p, std_p, mu_q, std_q), expected)


def test_gaussian_log_prob_matches_torch_distributions():
    x = torch.linspace(-3, 3, 7)
    expected = torch.distributions.Normal(0.5, 2.0).log_prob(x)
    torch.testing.assert_close(dv.gaussian_log_prob(x, 0.5, 2.0), expected)


def test_monte_carlo_estimates_agree_with_closed_form():
    gen = torch.Generator().manual_seed(0)
    x_q = MU_Q + STD_Q * torch.randn(200_000, generator=gen, dtype=torch.float64)
    x_p = MU_P + STD_P * torch.randn(200_000, generator=gen, dtype=torch.float64)
    kl = float(dv.kl_gaussian(MU_P, STD_P, MU_Q, STD_Q))
    assert float(dv.kl_mc(log_p(x_p), log_q(x_p))) == pytest.approx(kl, rel=0.01)
    assert float(dv.f_divergence_mc(dv.kl_f, log_p(x_q), log_q(x_q))) == pytest.approx(kl, rel=0.02)
    h2 = float(dv.hellinger_gaussian(MU_P, STD_P, MU_Q, STD_Q))
    assert float(dv.f_divergence_mc(dv.hellinger_f, log_p(x_q), log_q(x_q))) == pytest.approx(
        h2, rel=0.01
    )


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_conjugate_is_the_supremum(name):
    """f*(t) = sup_u (u t - f(u)), by brute force over a dense grid of u, at t = f'(u0)."""
    d = dv.get(name)
    u = torch.logspace(-4, 4, 400_001, dtype=torch.float64)
    u0 = torch.tensor([0.2, 0.7, 1.0, 1.5, 4.0], dtype=torch.float64)
    t = d.f_prime(u0)
    brute = (u[None, :] * t[:, None] - d.f(u)[None, :]).max(dim=1).values
    torch.testing.assert_close(d.f_star(t), brute, rtol=1e-6, atol=1e-7)
    # Fenchel-Young equality at the maximiser u0.
    torch.testing.assert_close(d.f_star(t), u0 * t - d.f(u0))


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_stable_composition_matches_f_star_of_g(name):
    d = dv.get(name)
    v = torch.linspace(-4, 4, 81, dtype=torch.float64)
    torch.testing.assert_close(d.f_star_g(v), d.f_star(d.g(v)))


# Raw critic output v* with g(v*) = f'(u): the optimal critic of each bound.
OPTIMAL_V = {
    "kl": lambda u: 1 + torch.log(u),
    "reverse_kl": torch.log,
    "pearson": lambda u: 2 * (u - 1),
    "hellinger": lambda u: 0.5 * torch.log(u),
    "js": torch.log,
    "gan": torch.log,
}


@pytest.mark.parametrize("name", list(dv.DIVERGENCES))
def test_fgan_bound_is_tight_at_the_optimal_critic_by_quadrature(name):
    d = dv.get(name)
    lp, lq = log_p(GRID), log_q(GRID)
    v = OPTIMAL_V[name](torch.exp(lp - lq))
    torch.testing.assert_close(d.g(v), d.f_prime(torch.exp(lp - lq)))
    bound = torch.trapezoid(lp.exp() * d.g(v) - lq.exp() * d.f_star_g(v), GRID)
    assert float(bound) == pytest.approx(ORACLES[name](), rel=1e-6, abs=1e-8)


# Reverse KL is left out: its optimal critic -q/p has infinite variance under P = N(1, 0.5^2)
# (int q^2/p diverges), so no sample size makes the Monte-Carlo bound reliable.
@pytest.mark.parametrize("name", [n for n in dv.DIVERGENCES if n != "reverse_kl"])
def test_fgan_bound_monte_carlo_at_the_optimal_critic(name):
    d = dv.get(name)
    gen = torch.Generator().manual_seed(1)
    x_p = MU_P + STD_P * torch.randn(400_000, generator=gen, dtype=torch.float64)
    x_q = MU_Q + STD_Q * torch.randn(400_000, generator=gen, dtype=torch.float64)
    v_p, v_q = (OPTIMAL_V[name](torch.exp(log_p(x) - log_q(x))) for x in (x_p, x_q))
    truth = ORACLES[name]()
    assert float(dv.fgan_bound(d, v_p, v_q)) == pytest.approx(truth, abs=0.01)
    # Any other critic gives less (here: the optimal one, shifted).
    assert float(dv.fgan_bound(d, v_p + 0.3, v_q + 0.3)) < truth


def test_donsker_varadhan_is_tight_and_shift_invariant():
    gen = torch.Generator().manual_seed(2)
    x_p = MU_P + STD_P * torch.randn(200_000, generator=gen, dtype=torch.float64)
    x_q = MU_Q + STD_Q * torch.randn(200_000, generator=gen, dtype=torch.float64)
    t_p, t_q = log_p(x_p) - log_q(x_p), log_p(x_q) - log_q(x_q)
    kl = ORACLES["kl"]()
    assert float(dv.donsker_varadhan_bound(t_p, t_q)) == pytest.approx(kl, abs=0.01)
    torch.testing.assert_close(
        dv.donsker_varadhan_bound(t_p + 5.0, t_q + 5.0), dv.donsker_varadhan_bound(t_p, t_q)
    )
    assert float(dv.donsker_varadhan_bound(0.5 * t_p, 0.5 * t_q)) < kl


def test_gan_value_at_optimal_discriminator_is_2js_minus_log4():
    # Exactly, by quadrature: V(G, D*) = int p_d log D* + p_m log(1 - D*).
    lp, lq = log_p(GRID), log_q(GRID)
    logit = dv.optimal_discriminator_logit(lp, lq)
    v_grid = torch.trapezoid(
        lp.exp() * torch.nn.functional.logsigmoid(logit)
        + lq.exp() * torch.nn.functional.logsigmoid(-logit),
        GRID,
    )
    expected = 2 * js_scipy() - math.log(4)
    assert float(v_grid) == pytest.approx(expected, abs=1e-7)
    # By Monte Carlo, through gan_value.
    gen = torch.Generator().manual_seed(3)
    x_d = MU_P + STD_P * torch.randn(200_000, generator=gen, dtype=torch.float64)
    x_m = MU_Q + STD_Q * torch.randn(200_000, generator=gen, dtype=torch.float64)
    v_mc = dv.gan_value(
        dv.optimal_discriminator_logit(log_p(x_d), log_q(x_d)),
        dv.optimal_discriminator_logit(log_p(x_m), log_q(x_m)),
    )
    assert float(v_mc) == pytest.approx(expected, abs=0.01)


WEIGHTS, MEANS, STDS = torch.tensor([0.3, 0.7]), torch.tensor([-2.0, 1.5]), torch.tensor([0.5, 1.2])


def test_mixture_log_prob_matches_torch_distributions_and_normalises():
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(WEIGHTS), torch.distributions.Normal(MEANS, STDS)
    )
    x = torch.linspace(-5, 5, 11)
    torch.testing.assert_close(dv.mixture_log_prob(x, WEIGHTS, MEANS, STDS), mixture.log_prob(x))
    mass = torch.trapezoid(dv.mixture_log_prob(GRID, WEIGHTS, MEANS, STDS).exp(), GRID)
    assert float(mass) == pytest.approx(1.0, abs=1e-9)


def test_mixture_moments_match_samples_and_the_forward_kl_fit():
    mean, std = dv.mixture_moments(WEIGHTS, MEANS, STDS)
    x = dv.mixture_sample(400_000, WEIGHTS, MEANS, STDS, generator=torch.Generator().manual_seed(4))
    assert x.shape == (400_000,)
    assert float(x.mean()) == pytest.approx(mean, abs=0.01)
    assert float(x.std()) == pytest.approx(std, abs=0.01)
    # The forward-KL optimum is moment matching.
    fit = dv.fit_gaussian(
        lambda g: dv.mixture_log_prob(g, WEIGHTS, MEANS, STDS),
        dv.grid_1d(-15, 15, 3001),
        direction="forward",
        steps=600,
    )
    assert fit.mu == pytest.approx(mean, abs=1e-3)
    assert fit.std == pytest.approx(std, abs=1e-3)


def test_reverse_kl_fit_seeks_one_mode():
    w, m, s = torch.tensor([0.5, 0.5]), torch.tensor([-4.0, 4.0]), torch.tensor([1.0, 1.0])
    fit = dv.fit_gaussian(
        lambda g: dv.mixture_log_prob(g, w, m, s),
        dv.grid_1d(-15, 15, 3001),
        direction="reverse",
        mu0=3.0,
        steps=400,
    )
    assert fit.mu == pytest.approx(4.0, abs=0.02)
    assert fit.std == pytest.approx(1.0, abs=0.02)
    # On one of two equal, separated modes, KL(q || p) -> log 2.
    assert fit.kl == pytest.approx(math.log(2), abs=0.01)
    with pytest.raises(ValueError, match="forward"):
        dv.fit_gaussian(lambda g: g, dv.grid_1d(-1, 1, 11), direction="backward")


def test_train_critic_learns_the_kl():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))
    trace = dv.train_critic(
        critic,
        lambda a, b: dv.fgan_bound(dv.get("kl"), a, b),
        lambda n, g: MU_P + STD_P * torch.randn(n, 1, generator=g),
        lambda n, g: MU_Q + STD_Q * torch.randn(n, 1, generator=g),
        steps=300,
        lr=3e-3,
        eval_every=100,
        eval_size=20_000,
        generator=torch.Generator().manual_seed(5),
    )
    assert trace.steps == [0, 100, 200, 300]
    kl = ORACLES["kl"]()
    assert trace.estimates[0] < 0.5 * kl  # an untrained critic is far below
    assert trace.estimates[-1] == pytest.approx(kl, rel=0.1)


def test_unknown_divergence_names_the_choices():
    with pytest.raises(KeyError, match="reverse_kl"):
        dv.get("kullback")
