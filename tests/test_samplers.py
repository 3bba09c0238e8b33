"""Samplers against closed forms: ODEs with known solutions, SDE/Langevin stationary laws."""

import math

import pytest
import torch

from coursekit import samplers


def decay(x, t):
    return -x  # dx/dt = -x, x(t) = x(0) e^{-t}


def _error(method, steps: int) -> float:
    x0 = torch.ones(3, 2, dtype=torch.float64)
    traj = method(decay, x0, t0=0.0, t1=1.0, steps=steps)
    return (traj.x - math.exp(-1.0)).abs().max().item()


@pytest.mark.parametrize("method, order", [(samplers.euler, 1), (samplers.heun, 2)])
def test_convergence_order_on_exponential_decay(method, order):
    errors = [_error(method, steps) for steps in (10, 20, 40, 80)]
    # halving dt divides the global error by 2^order
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    for p in observed:
        assert abs(p - order) < 0.1, (errors, observed)
    assert errors[-1] < (1e-2 if order == 1 else 1e-4)


@pytest.mark.parametrize("method", [samplers.euler, samplers.heun])
def test_time_argument_is_a_batch_tensor_with_the_right_values(method):
    # dx/dt = cos(t) has x(t) = x(0) + sin(t): wrong times (e.g. off by one step) show up
    seen = []

    def f(x, t):
        seen.append(t)
        assert t.shape == (x.shape[0],) and t.device == x.device and t.dtype == x.dtype
        return torch.cos(t)[:, None].expand_as(x)

    x0 = torch.zeros(4, 1, dtype=torch.float64)
    traj = method(f, x0, t0=0.5, t1=2.0, steps=100)
    expected = math.sin(2.0) - math.sin(0.5)
    # Euler is the left Riemann sum (error ~ dt/2 |cos 2 - cos 0.5| = 0.01), Heun the
    # trapezoidal rule (error ~ dt^2/12 |sin 2 - sin 0.5| = 3e-5)
    tol = 2e-2 if method is samplers.euler else 1e-4
    assert torch.allclose(traj.x, torch.full_like(x0, expected), atol=tol)
    assert seen[0][0].item() == 0.5
    assert max(t.max().item() for t in seen) <= 2.0 + 1e-12


@pytest.mark.parametrize("method", [samplers.euler, samplers.heun])
def test_integrating_backwards_recovers_the_initial_condition(method):
    # start at x(1) = e^{-1} and integrate dx/dt = -x down to t = 0: x(0) = 1
    x1 = torch.full((2, 3), math.exp(-1.0), dtype=torch.float64)
    traj = method(decay, x1, t0=1.0, t1=0.0, steps=200, save_every=50)
    tol = 5e-3 if method is samplers.euler else 1e-5
    assert torch.allclose(traj.x, torch.ones_like(x1), atol=tol)
    assert torch.allclose(traj.ts, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=traj.ts.dtype))
    assert (traj.xs[1:] > traj.xs[:-1]).all()  # growing as t decreases


def test_save_every_shapes_and_endpoints():
    x0 = torch.randn(5, 2, 3)
    traj = samplers.euler(decay, x0, t0=0.0, t1=1.0, steps=10, save_every=3)
    # steps 0, 3, 6, 9 and the last one, 10
    assert traj.xs.shape == (5, 5, 2, 3)
    assert torch.allclose(traj.ts, torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0]))
    assert torch.equal(traj.xs[0], x0) and torch.equal(traj.xs[-1], traj.x)
    plain = samplers.euler(decay, x0, steps=10)
    assert plain.xs is None and plain.ts.tolist() == [1.0]
    assert torch.equal(plain.x, traj.x)
    with pytest.raises(ValueError, match="steps"):
        samplers.euler(decay, x0, steps=0)


def test_euler_maruyama_reaches_the_ornstein_uhlenbeck_stationary_law():
    # dx = -theta (x - mu) dt + sigma dW. The Euler-Maruyama chain is the AR(1)
    # x' = (1 - a) x + a mu + sigma sqrt(dt) z with a = theta dt, so its stationary law is
    # N(mu, sigma^2 dt / (1 - (1 - a)^2)) = N(mu, sigma^2 / (theta (2 - a))), 5% above the
    # continuous sigma^2 / (2 theta) at dt = 0.1: the test tells the two apart.
    theta, mu, sigma, n = 1.0, 1.0, 0.8, 100_000
    t1, steps = 12.0, 120
    dt = t1 / steps
    x0 = torch.full((n, 1), 3.0)
    gen = torch.Generator().manual_seed(0)
    traj = samplers.euler_maruyama(
        lambda x, t: -theta * (x - mu), lambda x, t: sigma, x0, t1=t1, steps=steps, generator=gen
    )
    var_discrete = sigma**2 / (theta * (2 - theta * dt))
    var_continuous = sigma**2 / (2 * theta)
    mean, var = traj.x.mean().item(), traj.x.var().item()
    se_mean = math.sqrt(var_discrete / n)
    se_var = var_discrete * math.sqrt(2 / n)
    assert abs(mean - mu) < 4 * se_mean
    assert abs(var - var_discrete) < 4 * se_var
    assert abs(var - var_continuous) > 8 * se_var


def test_euler_maruyama_tensor_diffusion_and_zero_noise_limit():
    # g = 0 reduces to Euler exactly; a per-example (B, 1) g broadcasts
    x0 = torch.randn(4, 3)
    gen = torch.Generator().manual_seed(1)
    no_noise = samplers.euler_maruyama(
        decay, lambda x, t: torch.zeros(x.shape[0], 1), x0, steps=20, generator=gen
    )
    assert torch.allclose(no_noise.x, samplers.euler(decay, x0, steps=20).x)
    scales = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    mixed = samplers.euler_maruyama(decay, lambda x, t: scales, x0, steps=20, generator=gen)
    assert torch.allclose(mixed.x[0], no_noise.x[0]) and not torch.allclose(
        mixed.x[1], no_noise.x[1]
    )


def test_langevin_reaches_the_ula_stationary_law_of_a_2d_gaussian():
    # For score(x) = -P (x - m), P = Sigma^{-1}, ULA is x' = (I - eps P) x + eps P m + sqrt(2 eps) z
    # whose stationary covariance solves C = (I - eps P) C (I - eps P) + 2 eps I, i.e.
    # C = (P - eps P^2 / 2)^{-1}: the O(eps) bias of the unadjusted chain, checked exactly.
    m = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    P = torch.linalg.inv(cov)
    eps, n = 0.1, 40_000
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    traj = samplers.langevin(lambda x: -(x - m) @ P, x0, step_size=eps, steps=200, generator=gen)
    expected = torch.linalg.inv(P - eps * P @ P / 2)
    centred = traj.x - traj.x.mean(0)
    sample_cov = centred.T @ centred / (n - 1)
    assert torch.allclose(traj.x.mean(0), m, atol=4 * math.sqrt(1.0 / n))
    # standard error of a covariance entry is about sqrt((C_ii C_jj + C_ij^2) / n) < 0.01 here
    assert torch.allclose(sample_cov, expected, atol=0.025), (sample_cov, expected)
    # and the bias is real: the exact Sigma is off by 0.07-0.09 on the diagonal (> 6 std errors)
    assert (sample_cov - cov).abs().max() > 0.03


def test_langevin_1d_variance_and_save_every():
    eps, s2, n = 0.2, 2.0, 50_000
    gen = torch.Generator().manual_seed(3)
    traj = samplers.langevin(
        lambda x: -x / s2, torch.zeros(n), step_size=eps, steps=200, generator=gen, save_every=100
    )
    var = traj.x.var().item()
    expected = s2 / (1 - eps / (2 * s2))
    assert abs(var - expected) < 4 * expected * math.sqrt(2 / n)
    assert traj.xs.shape == (3, n) and traj.ts.tolist() == [0.0, 100.0, 200.0]
    with pytest.raises(ValueError, match="step_size"):
        samplers.langevin(lambda x: -x, torch.zeros(2), step_size=0.0, steps=1)


@pytest.mark.parametrize("which", ["em", "langevin"])
def test_noise_comes_only_from_the_generator(which):
    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        x0 = torch.zeros(8, 2)
        if which == "em":
            return samplers.euler_maruyama(decay, lambda x, t: 1.0, x0, steps=10, generator=gen).x
        return samplers.langevin(lambda x: -x, x0, step_size=0.1, steps=10, generator=gen).x

    torch.manual_seed(0)
    a = run(7)
    torch.manual_seed(1)  # the global RNG must not matter
    b = run(7)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(8))
