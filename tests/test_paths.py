"""Probability paths: the time conventions pinned (VP: t = 0 data, Ho et al.; linear: t = 0 noise,
t = 1 data, Lipman et al.), the conversions round-tripped, velocities against finite differences,
and scores against the autograd score of the exact Gaussian marginal."""

import pytest
import torch

from coursekit import paths
from coursekit.diffusion import ddpm, schedules

G = torch.Generator().manual_seed(0)
X = torch.randn(5, 1, 2, 3, dtype=torch.float64, generator=G)  # data
EPS = torch.randn(5, 1, 2, 3, dtype=torch.float64, generator=G)  # noise


def vp(name="linear", T=1000):
    return paths.VPPath(schedules.get_schedule(name, T))


def cases():
    """(path, t) pairs away from the singular ends: integer and continuous VP times, linear t."""
    return [
        (vp("linear"), torch.tensor([0, 3, 100, 500, 990])),
        (vp("cosine"), torch.tensor([1, 50, 400, 700, 950])),
        (vp("cosine"), torch.tensor([0.5, 12.25, 400.0, 701.9, 950.5], dtype=torch.float64)),
        (paths.LinearPath(), torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95], dtype=torch.float64)),
        (paths.LinearPath(sigma_min=0.01), torch.tensor([0.1, 0.3, 0.5, 0.7, 1.0])),
    ]


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_vp_path_follows_ho_et_al_t0_is_data(name):
    path = vp(name)
    alpha, sigma = path.coefficients(torch.tensor([0, 999]))
    assert alpha[0] > 0.999 and sigma[0] < 0.02  # t = 0: (almost) the data
    assert alpha[1] < 0.01 and sigma[1] > 0.999  # t = T - 1: (almost) pure noise
    s = path.sample(X, torch.zeros(5, dtype=torch.long), EPS)
    torch.testing.assert_close(s.x_t, X, rtol=0, atol=0.05)


def test_linear_path_follows_lipman_et_al_t0_is_noise_t1_is_data():
    path = paths.LinearPath()
    assert torch.equal(path.sample(X, torch.zeros(5, dtype=torch.float64), EPS).x_t, EPS)
    assert torch.equal(path.sample(X, torch.ones(5, dtype=torch.float64), EPS).x_t, X)
    half = path.sample(X, torch.full((5,), 0.5, dtype=torch.float64), EPS)
    torch.testing.assert_close(half.x_t, 0.5 * X + 0.5 * EPS)
    # the velocity of the linear path is x1 − x0: data minus noise, at every t
    t = torch.rand(5, dtype=torch.float64, generator=G)
    torch.testing.assert_close(path.sample(X, t, EPS).velocity, X - EPS)


def test_vp_x_t_is_q_sample_and_the_closed_form():
    sch = schedules.cosine_schedule(1000)
    t = torch.tensor([0, 10, 250, 500, 999])
    s = paths.VPPath(sch).sample(X, t, EPS)
    ab = schedules.cosine_betas(1000).neg().add(1).cumprod(0)[t].view(-1, 1, 1, 1)  # float64
    torch.testing.assert_close(s.x_t, ab.sqrt() * X + (1 - ab).sqrt() * EPS, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.x_t, ddpm.q_sample(X, t, sch, eps=EPS))
    assert torch.equal(s.eps, EPS) and torch.equal(s.x_data, X)


@pytest.mark.parametrize("path, t", cases())
def test_conversions_round_trip(path, t):
    s = path.sample(X, t, EPS)
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # noqa: E731
    close(path.eps_to_x0(s.x_t, t, EPS), X)
    if path.coefficients(t)[1].min() > 0.05:  # σ_min = 0.01 at t = 1 amplifies rounding 100×
        close(path.x0_to_eps(s.x_t, t, X), EPS)
    close(path.score_to_eps(path.eps_to_score(EPS, t), t), EPS)
    close(path.v_to_eps(s.x_t, t, s.v), EPS)
    close(path.v_target(X, t, EPS), s.v)
    close(path.velocity_from_eps(s.x_t, t, EPS), s.velocity)
    close(path.eps_from_velocity(s.x_t, t, s.velocity), EPS)
    close(path.velocity_to_x0(s.x_t, t, s.velocity), X)


@pytest.mark.parametrize("path, t", [c for c in cases() if c[1].is_floating_point()])
def test_velocity_is_the_time_derivative_of_x_t(path, t):
    # oracle: autograd of the coefficients in t (the derivatives are written by hand); the
    # VP path is differentiable in a float t, its log SNR linear on each table segment
    t = t.float().requires_grad_(True)
    alpha, sigma = path.coefficients(t)
    (d_alpha,) = torch.autograd.grad(alpha.sum(), t, retain_graph=True)
    (d_sigma,) = torch.autograd.grad(sigma.sum(), t)
    got_alpha, got_sigma = path.derivatives(t.detach())
    torch.testing.assert_close(got_alpha, d_alpha, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got_sigma, d_sigma, rtol=1e-4, atol=1e-7)
    expected = d_alpha.double().view(-1, 1, 1, 1) * X + d_sigma.double().view(-1, 1, 1, 1) * EPS
    torch.testing.assert_close(path.sample(X, t.detach(), EPS).velocity, expected)


def test_linear_velocity_is_a_finite_difference_of_x_t():
    path, h = paths.LinearPath(sigma_min=0.01), 0.05
    t = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    x, eps = X[:3], EPS[:3]
    fd = (path.sample(x, t + h, eps).x_t - path.sample(x, t - h, eps).x_t) / (2 * h)
    torch.testing.assert_close(path.sample(x, t, eps).velocity, fd)  # exact: x_t is linear in t


@pytest.mark.parametrize("path, t", cases())
def test_eps_to_score_is_the_score_of_the_gaussian_marginal(path, t):
    # data N(mu, s²): x_t ~ N(α mu, α² s² + σ²); E[ε | x_t] = σ (x_t − α mu) / (α² s² + σ²)
    mu, s = 0.7, 0.4
    alpha, sigma = (c.double().view(-1, 1, 1, 1) for c in path.coefficients(t))
    x_t = (alpha * mu + (alpha**2 * s**2 + sigma**2).sqrt() * EPS).requires_grad_(True)
    marginal = torch.distributions.Normal(alpha * mu, (alpha**2 * s**2 + sigma**2).sqrt())
    (score,) = torch.autograd.grad(marginal.log_prob(x_t).sum(), x_t)
    eps_opt = sigma * (x_t.detach() - alpha * mu) / (alpha**2 * s**2 + sigma**2)
    torch.testing.assert_close(path.eps_to_score(eps_opt, t), score, rtol=1e-5, atol=1e-6)


def test_continuous_vp_time_agrees_with_the_table_at_the_integers():
    path = vp("cosine")
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    a_int, s_int = path.coefficients(t)
    a_float, s_float = path.coefficients(t.double())
    # equal to the float32 tables' precision (1 − ᾱ near t = 0 keeps ~3 digits in float32)
    torch.testing.assert_close(a_float.double(), a_int.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s_float.double(), s_int.double(), rtol=2e-3, atol=1e-6)
    # at an integer the derivative is the right-hand one, whatever the dtype of t
    for got, expected in zip(path.derivatives(t), path.derivatives(t.double())):
        torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-7)
    # between two entries, the noise grows monotonically
    a_mid, _ = path.coefficients(torch.tensor([17.25, 17.5, 17.75]))
    assert a_int[2] > a_mid[0] > a_mid[1] > a_mid[2] > path.coefficients(torch.tensor(18))[0]
    with pytest.raises(ValueError, match="0, 999"):
        path.coefficients(torch.tensor([1000.5]))


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_the_ode_noise_level_and_its_inverse(name):
    path = vp(name, 200)
    t = torch.arange(200)
    sig = path.sigma_ode(t)
    ab = path.schedule.alpha_bar
    torch.testing.assert_close(sig, ((1 - ab) / ab).sqrt())
    assert torch.equal(path.t_from_sigma_ode(sig), t)
    # a level between two entries maps to the nearer one (in log)
    between = (sig[40].log() * 0.9 + sig[41].log() * 0.1).exp()
    assert path.t_from_sigma_ode(between.expand(3)).tolist() == [40, 40, 40]
