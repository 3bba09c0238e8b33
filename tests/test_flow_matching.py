"""Oracle tests of coursekit.flow_matching: a Gaussian-to-Gaussian problem whose marginal
velocity is known in closed form (samples, transport map and ODE log-likelihood match the
closed form; the CFM loss exceeds its minimum by exactly the squared error to that field), the
OT coupler against brute force and POT's ot.emd (a coupler that pairs with the inverse
permutation, or samples with replacement, fails), reflow pairs and the straightness measure."""

import itertools
import math

import numpy as np
import ot
import pytest
import torch
from torch import nn

from coursekit import paths, solvers
from coursekit.diffusion import schedules
from coursekit.flow_matching import (
    FlowMatching,
    PairedObjective,
    cfm_loss,
    cfm_target,
    data_to_velocity,
    ot_pair,
    ot_permutation,
    path_time,
    reflow_pairs,
    straightness,
    transport_cost,
)

M = torch.tensor([1.5, -0.5])
S = torch.tensor([0.5, 2.0])


class GaussianVelocity(nn.Module):
    """The marginal velocity dx/ds carrying N(0, I) at s = 0 to N(m, diag s²) at s = 1 along
    ``path`` (independent coupling). With x_t = α x₁ + σ ε, x_t ~ N(α m, α² s² + σ²), and
    u = α' m + (α α' s² + σ σ') / (α² s² + σ²) (x − α m); times the path's dt/ds."""

    def __init__(self, path, m=M, s=S):
        super().__init__()
        self.path = path
        self.register_buffer("m", m)
        self.register_buffer("s", s)

    def forward(self, x, s_flow, y=None):
        t = path_time(self.path, s_flow.double())
        a, sig = (c.view(-1, 1).to(x.dtype) for c in self.path.coefficients(t))
        da, dsig = (c.view(-1, 1).to(x.dtype) for c in self.path.derivatives(t))
        var = a**2 * self.s**2 + sig**2
        u = da * self.m + (a * da * self.s**2 + sig * dsig) / var * (x - a * self.m)
        t_noise, t_data = (0.0, 1.0) if isinstance(self.path, paths.LinearPath) else (
            self.path.schedule.num_steps - 1, 0.0)  # fmt: skip
        return (t_data - t_noise) * u


def gaussian_model(path=None, data_range=None):
    path = path or paths.LinearPath()
    return FlowMatching(GaussianVelocity(path), data_shape=(2,), path=path, data_range=data_range)


def log_normal(x, m=M, s=S):
    return (-0.5 * ((x - m) / s) ** 2 - s.log() - 0.5 * math.log(2 * math.pi)).sum(1)


# ----------------------------------------------------------------------------- the closed form


@pytest.mark.parametrize("solver, steps", [("rk4", 20), ("heun", 100), ("euler", 2000)])
def test_the_analytic_field_transports_noise_onto_the_monotone_map(solver, steps):
    model = gaussian_model()
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    x1 = model.transport(x0, solver=solver, steps=steps)
    # in each dimension the flow of a Gaussian is the monotone map x1 = m + s x0
    tol = {"rk4": 1e-4, "heun": 1e-3, "euler": 1e-2}[solver]  # Euler: O(1/steps)
    assert torch.allclose(x1, M + S * x0, atol=tol)


def test_samples_have_the_target_mean_and_spread():
    x = gaussian_model().sample(
        20_000, generator=torch.Generator().manual_seed(1), solver="rk4", steps=10
    )
    assert torch.allclose(x.mean(0), M, atol=0.05)
    assert torch.allclose(x.std(0), S, rtol=0.03)


def test_swapping_the_time_direction_does_not_reach_the_data():
    model = gaussian_model()
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    backwards = solvers.rk4(model.velocity(), x0, solvers.uniform_grid(1.0, 0.0, 21))
    assert (backwards.mean(0) - M).abs().max() > 0.5


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_ode_log_prob_matches_the_closed_form(trace):
    model = gaussian_model()
    x = M + S * torch.randn(64, 2, generator=torch.Generator().manual_seed(2))
    if trace == "exact":
        lp = model.log_prob(x, steps=20)
        assert torch.allclose(lp, log_normal(x), atol=1e-4)
    else:  # unbiased: the mean over many probes converges to the exact value
        xs = x.repeat(200, 1)
        lp = model.log_prob(xs, trace="hutchinson", generator=torch.Generator().manual_seed(3))
        assert torch.allclose(lp.view(200, 64).mean(0), log_normal(x), atol=0.1)


def test_log_prob_in_data_space_includes_the_affine_jacobian():
    model = gaussian_model(data_range=(0.0, 1.0))
    x = torch.rand(16, 2, generator=torch.Generator().manual_seed(4))
    expected = log_normal(2 * x - 1) + 2 * math.log(2)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-4)


def _dopri5_log_prob(model, x):
    """The oracle: log p(x) by torchdiffeq's adaptive dopri5 on the augmented ODE, with the
    divergence as the trace of the full Jacobian (torch.autograd.functional), in float64."""
    from torchdiffeq import odeint

    D = math.prod(model.data_shape)
    f = model.velocity()

    def augmented(s, state):  # state (B, D + 1): z and the integral of the divergence
        z = state[:, :D].reshape(-1, *model.data_shape)
        s_b = s.expand(len(z))
        jac = torch.autograd.functional.jacobian(lambda z_: f(z_, s_b).sum(0), z)  # (*, B, *)
        div = torch.stack([jac.reshape(D, len(z), D)[:, b].trace() for b in range(len(z))])
        return torch.cat([f(z, s_b).flatten(1), div[:, None]], 1)

    z = model.to_model_space(x).flatten(1)
    state = torch.cat([z, z.new_zeros(len(z), 1)], 1)
    out = odeint(augmented, state, torch.tensor([1.0, 0.0], dtype=z.dtype), method="dopri5",
                 rtol=1e-8, atol=1e-8)[-1]  # fmt: skip
    base = -0.5 * (out[:, :D] ** 2).sum(1) - 0.5 * D * math.log(2 * math.pi)
    lo, hi = model.data_range
    return base + out[:, D] + D * math.log(2 / (hi - lo))


class SmoothImageVelocity(nn.Module):
    """A random nonlinear velocity on (B, 1, 2, 2) images with a full Jacobian, smooth in s (a
    sinusoidal time embedding would need hundreds of steps of any solver, the oracle's too)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(4, 16, generator=g, dtype=torch.float64))
        self.b1 = nn.Parameter(torch.randn(16, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(16, 4, generator=g, dtype=torch.float64) / 4)

    def forward(self, x, s, y=None):
        h = torch.tanh(x.flatten(1) @ self.w1 + s[:, None] * self.b1)  # (B, 16)
        return (h @ self.w2).view_as(x)


def test_ode_log_prob_of_a_network_matches_dopri5():
    # the whole chain of log_prob (model-space map, backward grid, trace, Jacobian of the map)
    # against an adaptive solver with the full Jacobian
    model = FlowMatching(SmoothImageVelocity(), data_shape=(1, 2, 2))
    x = torch.rand(5, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    oracle = _dopri5_log_prob(model, x)
    torch.testing.assert_close(model.log_prob(x, steps=20), oracle, atol=1e-5, rtol=0)  # RK4
    assert (oracle - model.log_prob(x, steps=1, method="euler")).abs().max() > 1e-3  # not vacuous
    # Hutchinson: unbiased (the mean over many probes), with a spread (the Jacobian is not diagonal)
    hutch = model.log_prob(x.repeat(400, 1, 1, 1), steps=20, trace="hutchinson",
                           generator=torch.Generator().manual_seed(2)).view(400, 5)  # fmt: skip
    assert hutch.std(0).min() > 1e-2
    assert ((hutch.mean(0) - oracle).abs() < 4 * hutch.std(0) / 20).all()


def test_the_vp_path_with_its_analytic_field_reaches_the_same_gaussian():
    path = paths.VPPath(schedules.linear_schedule(200))
    model = gaussian_model(path)
    x = model.sample(20_000, generator=torch.Generator().manual_seed(5), solver="heun", steps=200)
    assert torch.allclose(x.mean(0), M, atol=0.05)
    assert torch.allclose(x.std(0), S, rtol=0.03)


def test_cfm_exceeds_its_minimum_by_the_squared_error_to_the_marginal_field():
    """L_CFM(u + δ) − L_CFM(u) = E||δ||² (Lipman et al., thm. 2): the conditional targets
    average to the marginal field, so regressing on them finds it."""
    path = paths.LinearPath()
    u = GaussianVelocity(path)
    g = torch.Generator().manual_seed(6)
    n = 400_000
    x1 = M + S * torch.randn(n, 2, generator=g)
    eps, s = torch.randn(n, 2, generator=g), torch.rand(n, generator=g)
    delta = torch.tensor([0.3, -0.2])
    base = cfm_loss(u, path, x1, s=s, eps=eps)
    shifted = cfm_loss(lambda x, t, y: u(x, t) + delta, path, x1, s=s, eps=eps)
    assert abs((shifted - base).item() - delta.pow(2).mean().item()) < 3e-3
    assert base < shifted


def test_linear_target_is_data_minus_noise_and_vp_target_runs_towards_the_data():
    x1, eps = torch.randn(5, 3), torch.randn(5, 3)
    s = torch.rand(5)
    x_t, target = cfm_target(paths.LinearPath(), x1, s, eps)
    assert torch.allclose(x_t, (1 - s[:, None]) * eps + s[:, None] * x1)
    assert torch.allclose(target, x1 - eps)
    vp = paths.VPPath(schedules.cosine_schedule(100))
    x_t, target = cfm_target(vp, x1, s, eps)
    t = path_time(vp, s)
    assert torch.allclose(x_t, vp.sample(x1, t, eps).x_t)
    assert torch.allclose(target, -99 * vp.sample(x1, t, eps).velocity)


def test_ot_coupling_in_the_loss_pairs_the_batch_before_the_path():
    class Zero(nn.Module):
        def forward(self, x, s, y=None):
            return torch.zeros_like(x)

    net = Zero()
    model = FlowMatching(net, data_shape=(2,), data_range=None, coupling="ot")
    x1, noise, s = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    paired, _ = ot_pair(noise, x1)
    expected = cfm_loss(net, paths.LinearPath(), x1, s=s, eps=paired)
    assert torch.allclose(model.loss(x1, noise=noise, s=s)["loss"], expected)


def test_guidance_mixes_the_conditional_and_unconditional_velocity():
    class ByLabel(nn.Module):
        def forward(self, x, s, y=None):
            out = torch.zeros_like(x) if y is None else y.float()[:, None].expand_as(x) + 1
            return out + 0 * x

    model = FlowMatching(ByLabel(), data_shape=(2,), data_range=None, num_classes=3)
    x, s, y = torch.randn(4, 2), torch.full((4,), 0.3), torch.tensor([0, 1, 2, 1])
    v = model.velocity(y, guidance_scale=2.5)(x, s)
    assert torch.allclose(v, 2.5 * (y.float()[:, None] + 1).expand_as(x))


# ----------------------------------------------------------------------------- OT coupling


def _brute_force_cost(x0, x1):
    B = len(x0)
    return min(transport_cost(x0[list(p)], x1).item() for p in itertools.permutations(range(B)))


def _pairs_optimally(coupler) -> bool:
    """Does ``coupler(x0, x1) -> x0 reordered`` reach the brute-force optimum, using each
    noise sample exactly once, on several tiny batches?"""
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        x0, x1 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g) + 1
        paired = coupler(x0, x1)
        rows = [int((x0 == p).all(1).nonzero()[0]) for p in paired]
        if sorted(rows) != list(range(6)):
            return False
        if abs(transport_cost(paired, x1).item() - _brute_force_cost(x0, x1)) > 1e-6:
            return False
    return True


def test_ot_pairing_is_the_brute_force_optimum():
    assert _pairs_optimally(lambda x0, x1: ot_pair(x0, x1)[0])


def test_pairing_with_the_inverse_permutation_fails():
    def inverse(x0, x1):
        perm = ot_permutation(x0, x1)
        return x0[torch.argsort(perm)]

    assert not _pairs_optimally(inverse)


def test_sampling_the_plan_with_replacement_fails():
    def nearest(x0, x1):  # each data point takes its nearest noise: some noise used twice
        return x0[torch.cdist(x1, x0).argmin(1)]

    assert not _pairs_optimally(nearest)


@pytest.mark.parametrize("B, D", [(16, 2), (64, 5)])
def test_ot_pairing_matches_pot_emd(B, D):
    g = torch.Generator().manual_seed(B)
    x0, x1 = torch.randn(B, D, generator=g), 2 * torch.randn(B, D, generator=g) + 1
    perm = ot_permutation(x0, x1)
    cost = ot.dist(x1.double().numpy(), x0.double().numpy())  # squared Euclidean
    plan = ot.emd(np.full(B, 1 / B), np.full(B, 1 / B), cost)
    assert np.isclose((plan * cost).sum(), transport_cost(x0[perm].double(), x1.double()).item())
    assert np.array_equal(plan.argmax(1), perm.numpy())  # the same assignment
    independent = transport_cost(x0, x1).item()
    assert transport_cost(x0[perm], x1).item() < independent


def test_ot_pairing_refuses_batches_of_different_sizes():
    with pytest.raises(ValueError, match="as many noise samples"):
        ot_permutation(torch.randn(3, 2), torch.randn(4, 2))


# ----------------------------------------------------------------------------- reflow, straightness


def test_reflow_pairs_are_noise_and_its_ode_endpoint():
    model = gaussian_model()
    pairs = reflow_pairs(model, 4000, generator=torch.Generator().manual_seed(7), chunk=1500)
    assert pairs.shape == (4000, 2, 2)
    x0, x1 = pairs[:, 0], pairs[:, 1]
    assert x0.mean(0).abs().max() < 0.06 and (x0.std(0) - 1).abs().max() < 0.04  # the noise
    assert torch.allclose(x1, M + S * x0, atol=1e-4)  # carried by the ODE, not drawn afresh


def test_straightness_is_zero_on_a_line_and_liu_s_integral_on_a_curve():
    x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(8))
    ts = solvers.uniform_grid(0.0, 1.0, 11).float()
    line = solvers.Trajectory(xs=torch.stack([x0 + t * M for t in ts]), ts=ts)
    assert straightness(line).abs().max() < 1e-10
    # the Gaussian flow moves as x_t = t m + σ_t x0 with σ_t² = (1 − t)² + t² s²: curved
    traj = gaussian_model().transport(x0, steps=2000, record=True)
    t = torch.linspace(0, 1, 20_001, dtype=torch.float64)[:, None]
    sig = ((1 - t) ** 2 + t**2 * S.double() ** 2).sqrt()
    dsig = (-(1 - t) + t * S.double() ** 2) / sig  # (T, 2)
    per_dim = torch.trapezoid((dsig - (S.double() - 1)) ** 2, t[:, 0], dim=0)  # (2,)
    expected = (per_dim * x0.double() ** 2).mean(1)  # (B,): mean over dimensions
    assert torch.allclose(straightness(traj).double(), expected, rtol=0.02, atol=1e-4)
    with pytest.raises(ValueError, match="from 0 to 1"):
        straightness(solvers.Trajectory(xs=line.xs, ts=2 * ts))


def test_paired_objective_reflow_and_distillation_losses():
    class Net(nn.Module):
        def forward(self, x, s, y=None):
            return torch.sin(x) * (1 + s[:, None])

    model = FlowMatching(Net(), data_shape=(3,), data_range=None)
    x0, x1 = torch.randn(6, 3), torch.randn(6, 3)
    pairs = torch.stack([x0, x1], 1)
    distill = PairedObjective(model, time="zero").loss(pairs)["loss"]
    assert torch.allclose(distill, ((torch.sin(x0) - (x1 - x0)) ** 2).mean())
    torch.manual_seed(1)
    reflow = PairedObjective(model).loss(pairs)["loss"]
    torch.manual_seed(1)
    s = torch.rand(6)
    x_t = (1 - s[:, None]) * x0 + s[:, None] * x1
    assert torch.allclose(reflow, ((torch.sin(x_t) * (1 + s[:, None]) - (x1 - x0)) ** 2).mean())
    with pytest.raises(ValueError, match="noise at"):
        PairedObjective(model).loss(x0)


def test_data_prediction_gives_the_same_field_and_the_reweighted_loss():
    """A network predicting E[x1 | x_t] = x_t + (1 − s) u converts back to u (s < 1 − S_CAP),
    samples the same Gaussian, and its loss regresses x̂1 on x1."""
    path = paths.LinearPath()
    u = GaussianVelocity(path)

    class DataNet(nn.Module):
        def forward(self, x, s, y=None):
            return x + (1 - s[:, None]) * u(x, s)

    x, s = torch.randn(50, 2), torch.rand(50) * 0.98
    assert torch.allclose(data_to_velocity(path, x, s, DataNet()(x, s)), u(x, s), atol=1e-4)
    model = FlowMatching(DataNet(), data_shape=(2,), data_range=None, prediction="data")
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model.transport(x0, solver="euler", steps=100), M + S * x0, atol=0.15)
    x1, eps = torch.randn(6, 2), torch.randn(6, 2)
    expected = ((DataNet()((1 - s[:6, None]) * eps + s[:6, None] * x1, s[:6]) - x1) ** 2).mean()
    assert torch.allclose(model.loss(x1, noise=eps, s=s[:6])["loss"], expected)
    with pytest.raises(ValueError, match="prediction"):
        FlowMatching(DataNet(), data_shape=(2,), prediction="eps")
