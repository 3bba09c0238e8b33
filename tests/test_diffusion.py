"""Diffusion against closed forms: q(x_t | x_0), the Gaussian posterior, samplers on Gaussian data.

Convention pinned here: x_0 is data, large t is noise (Ho et al.); guidance
ε = ε_uncond + s (ε_cond − ε_uncond) with s = 0 unconditional and s = 1 conditional.
"""

import math

import pytest
import torch

from coursekit import networks, paths
from coursekit.diffusion import ddpm, latent, sampling, schedules, score


@pytest.fixture(scope="module")
def linear():
    return schedules.linear_schedule(1000)


def gaussian_eps(mu: float, s: float, schedule):
    """The exact ε-predictor for data N(mu, s²): E[ε | x_t] (Tweedie / Gaussian conditioning)."""

    def eps_fn(x_t, t):
        a = ddpm.expand_like(schedule.alpha_bar[t], x_t).double()
        return ((1 - a).sqrt() * (x_t.double() - a.sqrt() * mu) / (a * s**2 + 1 - a)).to(x_t.dtype)

    return eps_fn


# --- schedules -----------------------------------------------------------------------------------


def test_linear_schedule_endpoints_match_ho_et_al(linear):
    assert linear.num_steps == 1000
    assert linear.betas[0].item() == pytest.approx(1e-4)
    assert linear.betas[-1].item() == pytest.approx(0.02)
    # x_0 is data (ᾱ ≈ 1 at the first step), large t is noise (ᾱ ≈ 0)
    assert linear.alpha_bar[0].item() == pytest.approx(1 - 1e-4)
    assert linear.alpha_bar[-1].item() < 1e-4


def test_cosine_schedule_matches_its_closed_form():
    T, s = 1000, 0.008
    c = schedules.cosine_schedule(T)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    f = lambda u: torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    closed = f(t) / f(torch.zeros(1, dtype=torch.float64))
    # equal until β hits its clip near t = T
    torch.testing.assert_close(c.alpha_bar[:900].double(), closed[:900], rtol=1e-5, atol=1e-7)
    assert c.alpha_bar[-1].item() < 1e-3


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("T", [10, 1000])
def test_schedules_are_monotone_with_the_right_tables(name, T):
    sch = schedules.get_schedule(name, T)
    ab = sch.alpha_bar.double()
    assert ((sch.betas > 0) & (sch.betas < 1)).all()
    assert (ab[1:] < ab[:-1]).all()
    assert (sch.log_snr()[1:] < sch.log_snr()[:-1]).all()
    assert sch.alpha_bar_prev[0].item() == 1.0
    torch.testing.assert_close(sch.alpha_bar_prev[1:], sch.alpha_bar[:-1])
    torch.testing.assert_close(ab, torch.cumprod(1 - sch.betas.double(), 0), rtol=1e-5, atol=1e-8)
    assert sch.posterior_variance[0].item() == 0.0


def test_schedule_tables_are_buffers():
    sch = schedules.linear_schedule(10)
    assert "alpha_bar" in sch.state_dict()
    assert sch.to(torch.float64).alpha_bar.dtype == torch.float64


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="linear"):
        schedules.get_schedule("quadratic")


# --- the forward process -------------------------------------------------------------------------


def test_q_sample_is_the_closed_form_with_fixed_noise(linear):
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 250, 500, 999])
    a = linear.alpha_bar.double()[t][:, None]
    expected = a.sqrt() * x0.double() + (1 - a).sqrt() * eps.double()
    torch.testing.assert_close(ddpm.q_sample(x0, t, linear, eps=eps).double(), expected)


def test_q_sample_matches_the_step_by_step_chain_in_distribution():
    sch = schedules.linear_schedule(100)
    n, t = 40_000, 60
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((n,), 1.5)
    x = x0.clone()
    for s in range(t + 1):  # x_s = sqrt(1 - β_s) x_{s-1} + sqrt(β_s) z  (Ho et al., eq. 2)
        x = (1 - sch.betas[s]).sqrt() * x + sch.betas[s].sqrt() * torch.randn(n, generator=g)
    closed = ddpm.q_sample(x0, torch.full((n,), t), sch, generator=g)
    a = sch.alpha_bar[t].item()
    for sample in (x, closed):
        assert sample.mean().item() == pytest.approx(math.sqrt(a) * 1.5, abs=4 / math.sqrt(n))
        assert sample.var().item() == pytest.approx(1 - a, rel=0.03)
    assert abs(x.mean() - closed.mean()).item() < 5 / math.sqrt(n)


def test_posterior_mean_and_variance_match_bayes_rule(linear):
    # oracle: x_{t-1} ~ N(sqrt(ᾱ_{t-1}) x0, 1 - ᾱ_{t-1}) is the prior, x_t | x_{t-1} ~
    # N(sqrt(α_t) x_{t-1}, β_t) the likelihood; conjugate Gaussian update, in float64
    t = torch.tensor([1, 5, 100, 500, 999])
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    x_t = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    betas = schedules.linear_betas(1000)  # float64, independent of the float32 tables
    alpha_bar = torch.cumprod(1 - betas, 0)
    b, ab_prev = betas[t][:, None], alpha_bar[t - 1][:, None]
    prior_var = 1 - ab_prev
    var = 1 / (1 / prior_var + (1 - b) / b)
    mean = var * (ab_prev.sqrt() * x0.double() / prior_var + (1 - b).sqrt() * x_t.double() / b)
    got_mean, got_var = ddpm.q_posterior(x0, x_t, t, linear)
    torch.testing.assert_close(got_mean.double(), mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_var.double(), var, rtol=1e-4, atol=1e-9)


# --- parameterizations and the loss --------------------------------------------------------------


def test_eps_x0_v_conversions_are_consistent(linear):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    t = torch.tensor([0, 1, 10, 300, 700, 999])
    x_t = ddpm.q_sample(x0, t, linear, eps=eps)
    path = paths.VPPath(linear)  # the conversions live on the path (tests/test_paths.py)
    torch.testing.assert_close(path.eps_to_x0(x_t, t, eps), x0, rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(path.x0_to_eps(x_t, t, x0), eps, rtol=1e-3, atol=2e-3)
    v = path.v_target(x0, t, eps)
    # v = sqrt(ᾱ) ε − sqrt(1 − ᾱ) x_0 (Salimans & Ho), in float64 from the float64 betas
    ab = torch.cumprod(1 - schedules.linear_betas(1000), 0)[t][:, None]
    torch.testing.assert_close(
        v.double(), ab.sqrt() * eps - (1 - ab).sqrt() * x0, rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(path.v_to_eps(x_t, t, v), eps, rtol=1e-4, atol=1e-5)


class Oracle(torch.nn.Module):
    """A 'network' that returns a fixed function of its inputs and records what it was given."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, []
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        self.calls.append((t, y))
        return self.fn(x, t, y) + 0 * self.dummy


def test_loss_is_the_simplified_objective_with_injected_noise_and_time(linear):
    model = ddpm.Diffusion(Oracle(lambda x, t, y: 0.5 * x), linear, data_shape=(1, 2, 2))
    x = torch.rand(3, 1, 2, 2)
    noise, t = torch.randn(3, 1, 2, 2), torch.tensor([0, 500, 999])
    x_t = ddpm.q_sample(2 * x - 1, t, linear, eps=noise)  # data in [0, 1] -> [-1, 1]
    expected = ((noise - 0.5 * x_t) ** 2).mean()
    got = model.loss(x, noise=noise, t=t)["loss"]
    torch.testing.assert_close(got, expected)
    # the network sees time as t / T in [0, 1)
    torch.testing.assert_close(model.net.calls[-1][0], t.float() / 1000)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_other_parameterizations_give_the_same_eps(prediction, linear):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    t = torch.tensor([3, 30, 300, 900])
    x_t = ddpm.q_sample(x0, t, linear, eps=eps)
    target = x0 if prediction == "x0" else paths.VPPath(linear).v_target(x0, t, eps)
    # a perfect network for this one (x0, eps): its eps() must be eps, its loss zero
    net = Oracle(lambda x, tt, y: target)
    model = ddpm.Diffusion(net, linear, data_shape=(3,), prediction=prediction, data_range=None)
    torch.testing.assert_close(model.eps(x_t, t), eps, rtol=1e-3, atol=2e-3)
    assert model.loss(x0, noise=eps, t=t)["loss"].item() < 1e-10


def test_label_dropout_replaces_labels_by_the_null_label(linear):
    net = Oracle(lambda x, t, y: torch.zeros_like(x))
    y = torch.arange(10)
    always = ddpm.Diffusion(
        net, linear, data_shape=(2,), data_range=None, num_classes=10, p_uncond=1.0
    )
    always.loss(torch.randn(10, 2), y)
    assert (net.calls[-1][1] == 10).all()
    never = ddpm.Diffusion(net, linear, data_shape=(2,), data_range=None, num_classes=10)
    never.loss(torch.randn(10, 2), y)
    assert torch.equal(net.calls[-1][1], y)
    with pytest.raises(ValueError, match="num_classes"):
        ddpm.Diffusion(net, linear, data_shape=(2,), p_uncond=0.1)


# --- samplers ------------------------------------------------------------------------------------


def test_ddpm_step_is_ho_et_al_algorithm_2(linear):
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(4, 3, generator=g) for _ in range(3))
    for t in (1, 10, 500, 999):
        b, a, ab = linear.betas[t], linear.alphas[t], linear.alpha_bar[t]
        expected = (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()
        expected = expected + linear.posterior_variance[t].sqrt() * z
        got = sampling.ddpm_step(x_t, eps, t, linear, noise=z)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # the last step adds no noise and returns x0_hat
    x0_hat = paths.VPPath(linear).eps_to_x0(x_t, 0, eps)
    torch.testing.assert_close(sampling.ddpm_step(x_t, eps, 0, linear, noise=z), x0_hat)


def test_ddim_with_eta_one_on_consecutive_steps_is_ddpm(linear):
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(4, 3, generator=g) for _ in range(3))
    for t in (1, 100, 999):
        ddim = sampling.ddim_step(x_t, eps, t, t - 1, linear, eta=1.0, noise=z)
        torch.testing.assert_close(
            ddim, sampling.ddpm_step(x_t, eps, t, linear, noise=z), rtol=1e-4, atol=1e-4
        )


def test_ddim_with_zero_noise_is_deterministic(linear):
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    eps_fn = gaussian_eps(1.0, 0.5, linear)
    a = sampling.ddim_sample(
        eps_fn, linear, x_T, num_steps=20, generator=torch.Generator().manual_seed(1)
    )
    b = sampling.ddim_sample(
        eps_fn, linear, x_T, num_steps=20, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(a, b)
    c = sampling.ddim_sample(
        eps_fn, linear, x_T, num_steps=20, eta=1.0, generator=torch.Generator().manual_seed(1)
    )
    assert not torch.allclose(a, c)


def test_ddim_timesteps_cover_the_schedule():
    ts = sampling.ddim_timesteps(1000, 50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert sampling.ddim_timesteps(1000, 1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        sampling.ddim_timesteps(10, 11)


@pytest.mark.parametrize("which", ["ddpm", "ddim"])
def test_samplers_turn_noise_into_the_right_gaussian(which, linear):
    # data N(mu, s²) and the exact ε-predictor: the samples must have mean mu and std s
    mu, s, n = 1.0, 0.5, 20_000
    eps_fn = gaussian_eps(mu, s, linear)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 1, generator=g)
    if which == "ddpm":
        x = sampling.ddpm_sample(eps_fn, linear, x_T, generator=g)
    else:
        x = sampling.ddim_sample(eps_fn, linear, x_T, num_steps=100)
    assert x.mean().item() == pytest.approx(mu, abs=4 * s / math.sqrt(n) + 0.01)
    assert x.std().item() == pytest.approx(s, rel=0.03)


def _std_error(name, **kwargs):
    """Mean and relative std error of probability-flow samples for data N(mu, s²), exact ε."""
    sch = schedules.get_schedule(name, 1000)
    mu, s, n = -0.5, 0.4, 20_000
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    x = sampling.probability_flow_sample(gaussian_eps(mu, s, sch), sch, x_T, **kwargs)
    return x.mean().item() - mu, x.std().item() / s - 1


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_the_default_25_step_heun_ode_is_accurate_for_both_schedules(name):
    # data N(mu, s²) per dimension: the optimal ε-predictor is closed form, so any error in the
    # samples' law is the solver's and its grid's (the sampling error of the std is 0.5%)
    mean_err, std_err = _std_error(name)  # num_steps=25, method="heun", ode_timesteps grid
    assert abs(mean_err) < 0.01 and abs(std_err) < 0.04, (mean_err, std_err)


def test_the_old_uniform_grid_fails_the_same_test_on_the_cosine_schedule():
    # DDIM's grid, uniform in t, starts at σ ≈ 2e4 on the cosine schedule and takes huge steps
    # near the data: measured, its 25-step Heun std is off by far more than the 4% allowed above
    _, std_err = _std_error("cosine", timesteps=sampling.ddim_timesteps(1000, 25))
    assert abs(std_err) > 0.12, std_err


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ode_timesteps_are_log_snr_uniform_from_sigma_80_to_the_data(name):
    sch = schedules.get_schedule(name, 1000)
    ts = sampling.ode_timesteps(sch, 25)
    assert 20 <= len(ts) <= 25 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))
    sig = paths.VPPath(sch).sigma_ode(torch.tensor(ts)).double()
    assert sig[0].item() == pytest.approx(80.0, rel=0.03)  # Karras et al.'s σ_max
    steps = sig[1:-1].log().diff()  # equal steps in log σ (= log SNR / −2), up to snapping
    assert (steps.std() / steps.mean().abs()).item() < 0.1
    assert sampling.ode_timesteps(sch, 1) == ts[:1]
    with pytest.raises(ValueError, match="num_steps"):
        sampling.ode_timesteps(sch, 0)


def test_probability_flow_euler_is_ddim_and_heun_is_more_accurate(linear):
    eps_fn = gaussian_eps(1.0, 0.5, linear)
    x_T = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    grid = sampling.ddim_timesteps(1000, 10)
    euler = sampling.probability_flow_sample(eps_fn, linear, x_T, method="euler", timesteps=grid)
    ddim = sampling.ddim_sample(eps_fn, linear, x_T, num_steps=10)
    torch.testing.assert_close(euler, ddim, rtol=1e-4, atol=1e-4)
    # against a fine solve of the same ODE (same start, σ ≈ 80), Heun beats Euler at 25 times
    fine = sampling.probability_flow_sample(eps_fn, linear, x_T, num_steps=500)
    heun = sampling.probability_flow_sample(eps_fn, linear, x_T)
    euler = sampling.probability_flow_sample(eps_fn, linear, x_T, method="euler")
    assert (heun - fine).abs().mean() < 0.35 * (euler - fine).abs().mean()  # measured 0.22
    with pytest.raises(ValueError, match="method"):
        sampling.probability_flow_sample(eps_fn, linear, x_T, method="rk4")


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_probability_flow_log_prob_of_the_exact_predictor_is_the_data_density(name):
    # data N(mu, s² I) in 3-D: with its exact ε the ODE's density is the data's (closed form);
    # the residual is the solver's and the prior's (N(0, 1 + σ_max²) for N(mu, s² + σ_max²))
    sch = schedules.get_schedule(name, 1000)
    mu, s = 0.3, 0.5
    x = mu + s * torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    truth = torch.distributions.Normal(mu, s).log_prob(x).sum(1)
    eps_fn = gaussian_eps(mu, s, sch)
    exact = sampling.probability_flow_log_prob(eps_fn, sch, x, num_steps=200, trace="exact")
    err = exact - truth
    assert abs(err.mean()) < 0.015 and err.abs().max() < 0.05, (err.mean(), err.abs().max())
    # the documented coarseness of 25 levels (0.1 nats per dimension), an error of the solver
    coarse = sampling.probability_flow_log_prob(eps_fn, sch, x, num_steps=25, trace="exact")
    assert 0.2 < (coarse - truth).mean() < 0.45
    # a density of another Gaussian is far off: the test can tell the two apart
    wrong = sampling.probability_flow_log_prob(gaussian_eps(0.0, 1.0, sch), sch, x, trace="exact")
    assert (wrong - truth).abs().mean() > 0.5
    # Hutchinson's estimate is unbiased: its mean over points matches, single points scatter
    hutch = sampling.probability_flow_log_prob(
        eps_fn, sch, x, num_steps=200, num_probes=4, generator=torch.Generator().manual_seed(2)
    )
    assert abs((hutch - truth).mean()) < 0.05 and (hutch - truth).std() > 1e-3


def test_probability_flow_encode_inverts_the_sampler_and_maps_data_to_the_prior(linear):
    mu, s = -0.5, 0.4
    eps_fn = gaussian_eps(mu, s, linear)
    x = mu + s * torch.randn(4000, 2, generator=torch.Generator().manual_seed(3))
    x_T = sampling.probability_flow_encode(eps_fn, linear, x, num_steps=100)
    # data to noise: the codes of N(mu, s²) data are N(0, 1)
    assert abs(x_T.mean().item()) < 0.05 and abs(x_T.std().item() - 1) < 0.05
    back = sampling.probability_flow_sample(eps_fn, linear, x_T, num_steps=100)
    assert (back - x).abs().max() < 0.02, (back - x).abs().max()
    with pytest.raises(ValueError, match="method"):
        sampling.probability_flow_encode(eps_fn, linear, x, method="rk4")


def test_diffusion_ode_log_prob_adds_the_data_range_jacobian_and_encode_round_trips():
    sch = schedules.cosine_schedule(1000)
    mu, s = 0.1, 0.3  # in model space [-1, 1]
    exact = gaussian_eps(mu, s, sch)
    net = Oracle(lambda x, t, y: exact(x, (t * sch.num_steps).round().long()))  # t / T -> t
    model = ddpm.Diffusion(net, sch, data_shape=(1, 2, 2))
    z = mu + s * torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(4))
    x = (z + 1) / 2  # data space [0, 1]: p_x = p_z · 2^D
    truth = torch.distributions.Normal(mu, s).log_prob(z).flatten(1).sum(1) + 4 * math.log(2)
    log_p = model.ode_log_prob(x, steps=200, trace="exact")
    assert (log_p - truth).abs().max() < 0.06, (log_p - truth).abs().max()
    x_T = model.encode(x, steps=50)
    back = model.sample(64, sampler="ode", steps=50, x_T=x_T)
    assert (back - x).abs().max() < 0.01
    with pytest.raises(ValueError, match="shape"):
        model.ode_log_prob(torch.rand(3, 4))
    with pytest.raises(NotImplementedError, match="ode_log_prob"):
        model.log_prob(x)


def test_guidance_scale_zero_and_one_give_the_unconditional_and_conditional_predictions():
    def eps_fn(x, t, y):
        return x * 0 + (0.0 if y is None else 1.0 + y[:, None].float())

    x, t, y = torch.randn(3, 2), torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2])
    torch.testing.assert_close(sampling.guided(eps_fn, y, 0.0)(x, t), eps_fn(x, t, None))
    torch.testing.assert_close(sampling.guided(eps_fn, y, 1.0)(x, t), eps_fn(x, t, y))
    # s = 3 moves three times as far from the unconditional prediction as s = 1
    torch.testing.assert_close(sampling.guided(eps_fn, y, 3.0)(x, t), 3 * eps_fn(x, t, y))


def test_model_sampling_uses_guidance_and_stays_in_range():
    net = Oracle(lambda x, t, y: torch.zeros_like(x) if y is None else torch.ones_like(x))
    model = ddpm.Diffusion(net, schedules.cosine_schedule(20), data_shape=(1, 2, 2), num_classes=3)
    y = torch.tensor([0, 1])
    out = model.sample(
        2,
        y,
        guidance_scale=2.0,
        sampler="ddim",
        steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (2, 1, 2, 2) and out.min() >= 0 and out.max() <= 1
    assert any(call_y is None for _, call_y in net.calls)  # the unconditional branch ran
    ode = model.sample(2, y, sampler="ode", steps=3)
    assert ode.shape == (2, 1, 2, 2) and ode.min() >= 0 and ode.max() <= 1
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="euler")


# --- scores --------------------------------------------------------------------------------------


def test_eps_is_minus_sigma_times_the_score(linear):
    # oracle: p_t = N(sqrt(ᾱ) mu, ᾱ s² + 1 − ᾱ); its score by autograd of torch.distributions
    mu, s = 1.0, 0.5
    t = torch.tensor([0, 100, 500, 999])
    a = linear.alpha_bar[t].double()
    x_t = torch.randn(4, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x_t.requires_grad_(True)
    p_t = torch.distributions.Normal(a.sqrt() * mu, (a * s**2 + 1 - a).sqrt())
    (grad,) = torch.autograd.grad(p_t.log_prob(x_t[:, 0]).sum(), x_t)
    eps = gaussian_eps(mu, s, linear)(x_t.detach(), t)
    got = paths.VPPath(linear).eps_to_score(eps, t)
    torch.testing.assert_close(got, grad, rtol=1e-5, atol=1e-5)


def test_annealed_langevin_with_the_exact_score_reaches_the_gaussian():
    mu, s, n = -1.0, 0.3, 8000
    sigmas = score.geometric_sigmas(3.0, 0.01, 10)

    def exact_score(x, i):  # data N(mu, s²) noised by σ_i: N(mu, s² + σ_i²)
        return -(x - mu) / (s**2 + sigmas[i] ** 2)

    g = torch.Generator().manual_seed(0)
    x = annealed = score.annealed_langevin(
        exact_score,
        sigmas,
        3 * torch.randn(n, 1, generator=g),
        steps_per_level=100,
        step_scale=1e-4,
        generator=g,
    )
    assert x.mean().item() == pytest.approx(mu, abs=0.02)
    assert annealed.std().item() == pytest.approx(s, rel=0.05)


def test_dsm_loss_is_zero_only_for_the_right_sign():
    z = torch.randn(5, 2)
    assert score.dsm_loss(-z, z).abs().max() == 0  # σ s = −z: the score points back to the data
    assert (score.dsm_loss(z, z) > 0).all()


# --- latent diffusion and conformance ------------------------------------------------------------


def test_latent_scaling_standardizes_the_latents():
    case = latent._tiny_latent_diffusion()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    z = case.model.fit_scaling(x).encode(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "build",
    [
        ddpm._tiny_image_diffusion,
        ddpm._tiny_toy_diffusion,
        score._tiny_score_model,
        latent._tiny_latent_diffusion,
    ],
)
def test_conformance(build):
    case = build()
    model = case.model
    out = model.loss(case.x, case.y)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert any(p.grad is not None for p in model.parameters())
    x = model.sample(
        3, None if case.y is None else case.y[:3], generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (3, *case.x.shape[1:]) and torch.isfinite(x).all()
    if case.data_range is not None:
        assert x.min() >= case.data_range[0] and x.max() <= case.data_range[1]
    with pytest.raises(NotImplementedError, match="ELBO|probability-flow"):
        model.log_prob(case.x)


def test_the_unet_and_mlp_from_coursekit_nn_fit_the_diffusion():
    net = networks.UNet(in_ch=1, base=8, mults=(1, 2), image_size=8, attention=False)
    model = ddpm.Diffusion(net, schedules.cosine_schedule(10), data_shape=(1, 8, 8))
    assert model.eps(torch.randn(2, 1, 8, 8), torch.tensor([0, 9])).shape == (2, 1, 8, 8)
