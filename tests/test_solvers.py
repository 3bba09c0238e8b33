"""Solvers against oracles: torchdiffeq's dopri5, ODEs with closed-form solutions, measured
convergence orders, the Ornstein-Uhlenbeck process, Gaussian stationary laws of Langevin, and
the log-likelihood of a linear flow (a Gaussian pushed forward by expm(A t))."""

import math

import pytest
import torch
from torchdiffeq import odeint

from coursekit import solvers

ODES = [solvers.euler, solvers.heun, solvers.midpoint, solvers.rk4]
ORDER = {solvers.euler: 1, solvers.heun: 2, solvers.midpoint: 2, solvers.rk4: 4}


def forced_pendulum(x, t):
    """A nonlinear, time-dependent field on (B, 2): x1' = x2, x2' = −sin x1 − 0.1 x2 + 0.3 cos t."""
    x1, x2 = x[:, 0], x[:, 1]
    return torch.stack([x2, -torch.sin(x1) - 0.1 * x2 + 0.3 * torch.cos(t)], 1)


def warped_grid(t0, t1, n):
    """A non-uniform grid: steps grow quadratically from t0 (the map u -> u (1 + u) / 2)."""
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    return t0 + (t1 - t0) * u * (1 + u) / 2


def _x0():
    return torch.tensor([[1.0, 0.0], [-0.5, 1.5], [2.5, -0.3]], dtype=torch.float64)


# --- against torchdiffeq ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ODES)
@pytest.mark.parametrize("t0, t1", [(0.0, 3.0), (3.0, 0.0)])
def test_solvers_match_dopri5_on_a_nonlinear_ode_over_a_non_uniform_grid(method, t0, t1):
    ts = warped_grid(t0, t1, 301)
    # the oracle: adaptive Dormand-Prince at tight tolerance, its solution at every grid time
    oracle = odeint(lambda t, x: forced_pendulum(x, t.expand(len(x))), _x0(), ts,
                    method="dopri5", rtol=1e-9, atol=1e-9)  # fmt: skip
    traj = method(forced_pendulum, _x0(), ts, record=True)
    h = (ts[1:] - ts[:-1]).abs().max().item()  # the largest step, 0.015
    err = (traj.xs - oracle).abs().max().item()
    assert err < 3 * h ** ORDER[method], err  # global error O(h^p) with a modest constant
    assert err > 1e-14 or method is solvers.rk4  # the comparison is not vacuous
    torch.testing.assert_close(traj.ts, ts)
    torch.testing.assert_close(traj.x, method(forced_pendulum, _x0(), ts))


# --- closed forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ODES)
def test_rotation_is_solved_by_the_matrix_exponential(method):
    A = torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=torch.float64)  # dx/dt = A x
    ts = warped_grid(0.0, 1.5, 401)
    x = method(lambda x, t: x @ A.T, _x0(), ts)
    expected = _x0() @ torch.linalg.matrix_exp(1.5 * A).T
    tol = {1: 5e-2, 2: 1e-4, 4: 1e-9}[ORDER[method]]
    torch.testing.assert_close(x, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("method", ODES)
def test_the_time_argument_is_a_batch_tensor_at_the_grid_times(method):
    # dx/dt = cos(t): x(t) = x(0) + sin(t); wrong times (an off-by-one step) show up
    seen = []

    def f(x, t):
        seen.append(t)
        assert t.shape == (x.shape[0],) and t.device == x.device and t.dtype == x.dtype
        return torch.cos(t)[:, None].expand_as(x)

    ts = warped_grid(0.5, 2.0, 101)
    x = method(f, torch.zeros(4, 1, dtype=torch.float64), ts)
    tol = {1: 3e-2, 2: 1e-4, 4: 1e-9}[ORDER[method]]
    assert x.sub(math.sin(2.0) - math.sin(0.5)).abs().max() < tol
    assert seen[0][0].item() == 0.5
    assert max(t.max().item() for t in seen) <= 2.0 + 1e-12


@pytest.mark.parametrize("method", ODES)
def test_integrating_backwards_recovers_the_initial_condition(method):
    x1 = torch.full((2, 3), math.exp(-1.0), dtype=torch.float64)  # x(1) of dx/dt = −x, x(0) = 1
    traj = method(lambda x, t: -x, x1, solvers.uniform_grid(1.0, 0.0, 201), record=True)
    tol = {1: 5e-3, 2: 1e-5, 4: 1e-10}[ORDER[method]]
    torch.testing.assert_close(traj.x, torch.ones_like(x1), rtol=0, atol=tol)
    assert (traj.xs[1:] > traj.xs[:-1]).all()  # growing as t decreases
    assert traj.xs.shape == (201, 2, 3) and torch.equal(traj.xs[0], x1)


def logistic_error(method, n):
    """Max error at t = 2 for x' = x (1 − x), x(0) = 0.1, over a warped grid of n points."""
    x0 = torch.full((1, 1), 0.1, dtype=torch.float64)
    x = method(lambda x, t: x * (1 - x), x0, warped_grid(0.0, 2.0, n))
    exact = 1 / (1 + 9 * math.exp(-2.0))
    return (x - exact).abs().max().item()


@pytest.mark.parametrize("method", ODES)
def test_measured_convergence_order(method):
    ns = [9, 17, 33, 65, 129]  # 8 .. 128 steps
    hs = [warped_grid(0.0, 2.0, n).diff().max().item() for n in ns]
    errs = [logistic_error(method, n) for n in ns]
    # the slope of log error against log h is the order of the method
    slope = (
        torch.linalg.lstsq(
            torch.tensor([[math.log(h), 1.0] for h in hs], dtype=torch.float64),
            torch.tensor([[math.log(e)] for e in errs], dtype=torch.float64),
        )
        .solution[0, 0]
        .item()
    )
    assert abs(slope - ORDER[method]) < 0.15, (errs, slope)


def test_bad_grids_are_clear_errors():
    f = lambda x, t: -x  # noqa: E731
    x = torch.ones(2, 1)
    for ts, words in [
        ([0.0], "at least 2"),
        ([[0.0, 1.0]], "1-D"),
        ([0.0, 0.5, 0.5, 1.0], "strictly"),
        ([0.0, 1.0, 0.5], "strictly"),
        ([0.0, float("nan")], "finite"),
    ]:
        with pytest.raises(solvers.GridError, match=words):
            solvers.heun(f, x, ts)
    with pytest.raises(ValueError, match="at least 2"):
        solvers.uniform_grid(0.0, 1.0, 1)


def test_named_grids():
    torch.testing.assert_close(solvers.uniform_grid(1.0, 0.0, 5), torch.tensor(
        [1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))  # fmt: skip
    k = solvers.karras_grid(0.002, 80.0, 18)
    assert k[0].item() == pytest.approx(80.0) and k[-1].item() == pytest.approx(0.002)
    assert (k.diff() < 0).all()
    # uniform in sigma^(1/rho): Karras et al., eq. 5
    torch.testing.assert_close(k ** (1 / 7), torch.linspace(80 ** (1 / 7), 0.002 ** (1 / 7), 18,
                                                            dtype=torch.float64))  # fmt: skip
    g = solvers.log_snr_grid(80.0, 0.01, 10)
    assert g[0].item() == pytest.approx(80.0) and g[-1].item() == pytest.approx(0.01)
    ratios = g[1:] / g[:-1]  # geometric: equal steps in log SNR = −2 log sigma
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios))
    # rho -> infinity is the geometric grid
    torch.testing.assert_close(solvers.karras_grid(0.01, 80.0, 10, rho=1e5), g, rtol=1e-3, atol=0)


# --- SDEs ------------------------------------------------------------------------------------------


def test_euler_maruyama_on_ornstein_uhlenbeck_has_the_closed_form_moments():
    # dx = −θ (x − μ) dt + s dW: x(t) ~ N(μ + (x0 − μ) e^{−θt}, s² / 2θ (1 − e^{−2θt}))
    theta, mu, s, x0, T, n = 1.5, 0.7, 0.8, -1.0, 2.0, 40_000
    g = torch.Generator().manual_seed(0)
    x = solvers.euler_maruyama(lambda x, t: -theta * (x - mu), lambda x, t: s,
                               torch.full((n, 1), x0, dtype=torch.float64),
                               warped_grid(0.0, T, 401), generator=g)  # fmt: skip
    mean = mu + (x0 - mu) * math.exp(-theta * T)
    var = s**2 / (2 * theta) * (1 - math.exp(-2 * theta * T))
    assert x.mean().item() == pytest.approx(mean, abs=4 * math.sqrt(var / n) + 2e-3)
    assert x.var().item() == pytest.approx(var, rel=0.03)


def test_euler_maruyama_is_reproducible_and_reduces_to_euler_without_noise():
    ts = solvers.uniform_grid(0.0, 1.0, 21)
    x0 = torch.ones(5, 2)
    run = lambda seed: solvers.euler_maruyama(  # noqa: E731
        lambda x, t: -x, lambda x, t: 1.0, x0, ts, generator=torch.Generator().manual_seed(seed)
    )
    assert torch.equal(run(0), run(0)) and not torch.allclose(run(0), run(1))
    quiet = solvers.euler_maruyama(lambda x, t: -x, lambda x, t: 0.0, x0, ts)
    torch.testing.assert_close(quiet, solvers.euler(lambda x, t: -x, x0, ts))
    traj = solvers.euler_maruyama(lambda x, t: -x, lambda x, t: 1.0, x0, ts, record=True,
                                  generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(traj.x, run(0)) and traj.xs.shape == (21, 5, 2)


# --- Langevin --------------------------------------------------------------------------------------

M, S = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5])  # target N(M, diag S²)


@pytest.mark.parametrize("kind", ["score", "energy"])
def test_langevin_reaches_the_gaussian_under_no_grad(kind):
    eps, n = 0.02, 20_000
    given = {"score": lambda x: -(x - M) / S**2} if kind == "score" else {
        "energy": lambda x: (0.5 * (x - M) ** 2 / S**2).sum(1)}  # fmt: skip
    with torch.no_grad():  # as inside a model's sample(): the energy's gradient still works
        x = solvers.langevin(torch.zeros(n, 2), **given, step_size=eps, num_steps=600,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
    var = S**2 / (1 - eps / (2 * S**2))  # ULA's exact stationary variance for a Gaussian
    # 600 steps of 0.02 relax the slowest coordinate (s = 1.5) by e^{-5.3}: start forgotten
    torch.testing.assert_close(x.mean(0), M, rtol=0, atol=float(4 * (var / n).sqrt().max()) + 0.02)
    torch.testing.assert_close(x.var(0), var, rtol=0.03, atol=0)


def test_langevin_with_an_energy_is_the_chain_of_its_score():
    score = lambda x: -(x - M) / S**2  # noqa: E731
    energy = lambda x: (0.5 * (x - M) ** 2 / S**2).sum(1)  # noqa: E731
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    a = solvers.langevin(x0, score=score, step_size=0.1, num_steps=5, record=True,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    b = solvers.langevin(x0, energy=energy, step_size=0.1, num_steps=5,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(a.x, b)
    assert a.xs.shape == (6, 8, 2) and a.ts.tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="exactly one"):
        solvers.langevin(x0, step_size=0.1, num_steps=1)
    with pytest.raises(ValueError, match="exactly one"):
        solvers.langevin(x0, score=score, energy=energy, step_size=0.1, num_steps=1)
    with pytest.raises(ValueError, match="step_size"):
        solvers.langevin(x0, score=score, step_size=0.0, num_steps=1)


# --- likelihoods -----------------------------------------------------------------------------------

A = torch.tensor([[-0.5, 1.0], [-0.3, 0.2]], dtype=torch.float64)  # not symmetric, not stable
SIGMA = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
BASE = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), SIGMA)


def pushed_forward(A, T):
    """x(0) ~ N(0, Σ), dx/dt = A x: x(T) = expm(A T) x(0) ~ N(0, expm(AT) Σ expm(AT)^T)."""
    E = torch.linalg.matrix_exp(A * T)
    return torch.distributions.MultivariateNormal(torch.zeros(2, dtype=A.dtype), E @ SIGMA @ E.T)


def _points():
    return torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["euler", "heun", "midpoint", "rk4"])
def test_ode_log_prob_of_a_linear_flow_is_the_gaussian_pushforward(method):
    T, x = 1.2, _points()
    f = lambda x, t: x @ A.T  # noqa: E731
    # x is a point at time T; the base density N(0, Σ) is the law at time 0: a decreasing grid
    got = solvers.ode_log_prob(f, x, solvers.uniform_grid(T, 0.0, 201), base_log_prob=BASE.log_prob,
                               method=method)  # fmt: skip
    tol = {"euler": 3e-2, "heun": 1e-4, "midpoint": 1e-4, "rk4": 1e-9}[method]
    torch.testing.assert_close(got, pushed_forward(A, T).log_prob(x), rtol=0, atol=tol)
    # and the other direction: x at time 0, the pushed-forward law as the base at time T
    back = solvers.ode_log_prob(f, x, solvers.uniform_grid(0.0, T, 201),
                                base_log_prob=pushed_forward(A, T).log_prob, method=method)  # fmt: skip
    torch.testing.assert_close(back, BASE.log_prob(x), rtol=0, atol=tol)


def test_ode_log_prob_is_differentiable_in_the_field_when_gradients_are_on():
    A_param = A.clone().requires_grad_(True)
    x = _points()
    got = solvers.ode_log_prob(lambda x, t: x @ A_param.T, x, solvers.uniform_grid(1.0, 0.0, 51),
                               base_log_prob=BASE.log_prob)  # fmt: skip
    (grad,) = torch.autograd.grad(got.sum(), A_param)
    A_ref = A.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(pushed_forward(A_ref, 1.0).log_prob(x).sum(), A_ref)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        quiet = solvers.ode_log_prob(
            lambda x, t: x @ A_param.T,
            x,
            solvers.uniform_grid(1.0, 0.0, 51),
            base_log_prob=BASE.log_prob,
        )
    assert not quiet.requires_grad
    torch.testing.assert_close(quiet, got.detach())


def nonlinear_field(x, t):
    """A field on (B, 1, 3) with a Jacobian that depends on x and t (all entries non-zero)."""
    W = torch.tensor([[0.8, -0.5, 0.3], [0.4, 0.6, -0.7], [-0.2, 0.9, 0.5]], dtype=x.dtype)
    return torch.tanh(x @ W.T + t[:, None, None]) - 0.3 * x


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_an_unbiased_estimate_of_the_exact_trace(probe):
    n = 4000
    x = torch.tensor([[[0.3, -1.0, 0.5]]], dtype=torch.float64).expand(n, 1, 3)  # one point, n rows
    ts = solvers.uniform_grid(1.0, 0.0, 21)
    base = lambda z: -0.5 * z.pow(2).flatten(1).sum(1)  # noqa: E731
    with torch.no_grad():
        exact = solvers.ode_log_prob(nonlinear_field, x[:1], ts, base_log_prob=base)
        # each row draws its own probe: n independent single-probe estimates
        est = solvers.ode_log_prob(nonlinear_field, x, ts, base_log_prob=base, trace="hutchinson",
                                   probe=probe, generator=torch.Generator().manual_seed(0))  # fmt: skip
    se = est.std() / math.sqrt(n)
    assert est.std() > 1e-3  # a real estimator, not the exact trace in disguise
    assert abs(est.mean() - exact[0]) < 4 * se, (est.mean(), exact, se)
    # more probes, less variance; the same generator, the same estimate
    again = solvers.ode_log_prob(nonlinear_field, x[:200], ts, base_log_prob=base,
                                 trace="hutchinson", probe=probe, num_probes=8,
                                 generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert again.std() < 0.6 * est.std()
    repeat = solvers.ode_log_prob(nonlinear_field, x[:200], ts, base_log_prob=base,
                                  trace="hutchinson", probe=probe, num_probes=8,
                                  generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.equal(again, repeat)


def test_ode_log_prob_rejects_unknown_options():
    x, ts = _points(), solvers.uniform_grid(1.0, 0.0, 3)
    for kwargs, words in [({"method": "dopri5"}, "method"), ({"trace": "skilling"}, "trace"),
                          ({"trace": "hutchinson", "probe": "sphere"}, "probe"),
                          ({"trace": "hutchinson", "num_probes": 0}, "num_probes")]:  # fmt: skip
        with pytest.raises(ValueError, match=words):
            solvers.ode_log_prob(lambda x, t: -x, x, ts, base_log_prob=BASE.log_prob, **kwargs)
