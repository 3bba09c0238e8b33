"""SDEdit and replacement inpainting on Gaussian data, where the exact ε-predictor is closed form.

Data N(μ, Σ) in two dimensions with correlation 0.8; noised, x_t ~ N(sqrt(ᾱ) μ, ᾱ Σ + (1 − ᾱ) I)
and E[ε | x_t] = sqrt(1 − ᾱ) (ᾱ Σ + (1 − ᾱ) I)^(-1) (x_t − sqrt(ᾱ) μ). With this predictor the
samplers are exact up to their discretization, so what the editing loops do is measured, not the
quality of a network. Convention pinned: ``t0`` counts noising steps, t0 = 0 is the input.
"""

import pytest
import torch

from coursekit.diffusion import editing, sampling, schedules

MU = torch.tensor([0.5, -0.3], dtype=torch.float64)
SIGMA = 0.25 * torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
N = 4000


@pytest.fixture(scope="module")
def linear():
    return schedules.linear_schedule(1000)


def gaussian_eps(schedule):
    def eps_fn(x_t, t):
        a = schedule.alpha_bar[t[0]].double()
        cov = a * SIGMA + (1 - a) * torch.eye(2, dtype=torch.float64)
        r = x_t.double() - a.sqrt() * MU  # (B, 2)
        return ((1 - a).sqrt() * torch.linalg.solve(cov, r.T).T).to(x_t.dtype)

    return eps_fn


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, dtype=torch.float64, generator=g)
    return (MU + z @ torch.linalg.cholesky(SIGMA).T).float()


def assert_is_data(x):
    """Mean within 4 standard errors, covariance entries within 0.03 (SE of a variance ≈ 0.006)."""
    se = (SIGMA.diagonal() / len(x)).sqrt()
    assert ((x.double().mean(0) - MU).abs() < 4 * se).all(), x.mean(0)
    assert torch.allclose(torch.cov(x.double().T), SIGMA, atol=0.03), torch.cov(x.double().T)


def corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


# --- SDEdit --------------------------------------------------------------------------------------


def test_sdedit_at_t0_zero_returns_the_input(linear):
    x = data(50, 0)
    out = editing.sdedit(gaussian_eps(linear), linear, x, 0)
    assert torch.equal(out, x) and out is not x


def test_sdedit_at_t0_T_forgets_the_input_and_samples_the_data(linear):
    x = torch.full((N, 2), 3.0) + torch.randn(N, 2, generator=torch.Generator().manual_seed(1))
    out = editing.sdedit(gaussian_eps(linear), linear, x, linear.num_steps,
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert_is_data(out)  # the input's mean 3 is gone
    assert abs(corr(x[:, 0], out[:, 0])) < 0.05


def test_sdedit_keeps_the_data_distribution_and_trades_faithfulness_for_t0(linear):
    x = data(N, 3)
    eps_fn, g = gaussian_eps(linear), torch.Generator().manual_seed(4)
    corrs = []
    for t0 in (50, 250, 1000):
        out = editing.sdedit(eps_fn, linear, x, t0, generator=g)
        assert_is_data(out)  # an exact model maps data to data at every noise level
        corrs.append(corr(x[:, 0], out[:, 0]))
    # faithfulness (correlation with the input) falls with t0, down to none at t0 = T
    assert corrs[0] > 0.9 and corrs[0] > corrs[1] > corrs[2] and abs(corrs[2]) < 0.05, corrs


def test_sdedit_with_ddim_steps_is_deterministic_given_the_noise(linear):
    x, noise = data(100, 5), torch.randn(100, 2, generator=torch.Generator().manual_seed(6))
    a = editing.sdedit(gaussian_eps(linear), linear, x, 400, steps=20, noise=noise)
    b = editing.sdedit(gaussian_eps(linear), linear, x, 400, steps=20, noise=noise)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="t0 must be in 0..1000"):
        editing.sdedit(gaussian_eps(linear), linear, x, 1001)


def test_denoise_from_the_last_index_is_the_plain_sampler(linear):
    eps_fn = gaussian_eps(linear)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(7))
    ddim = sampling.ddim_sample(eps_fn, linear, x_T, num_steps=25)
    assert torch.allclose(editing.denoise(eps_fn, linear, x_T, 999, steps=25), ddim)
    ddpm = sampling.ddpm_sample(eps_fn, linear, x_T, generator=torch.Generator().manual_seed(8))
    mine = editing.denoise(eps_fn, linear, x_T, 999, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(mine, ddpm)


# --- replacement inpainting ------------------------------------------------------------------------


def test_replace_known_noises_the_known_pixels_one_level_down_and_is_clean_at_t0(linear):
    x, x_known = torch.randn(N, 2), torch.full((N, 2), 0.7)
    mask = torch.tensor([1.0, 0.0]).expand(N, 2)
    eps = torch.randn(N, 2, generator=torch.Generator().manual_seed(9))
    out = editing.replace_known(x, x_known, mask, 0, linear.alpha_bar, eps)
    assert torch.equal(out[:, 0], x_known[:, 0]) and torch.equal(out[:, 1], x[:, 1])
    t = 600
    out = editing.replace_known(x, x_known, mask, t, linear.alpha_bar, eps)
    a = linear.alpha_bar[t - 1].item()
    assert torch.equal(out[:, 1], x[:, 1])
    assert out[:, 0].mean().item() == pytest.approx(a**0.5 * 0.7, abs=4 / N**0.5)
    assert out[:, 0].var().item() == pytest.approx(1 - a, rel=0.1)


def test_inpainting_keeps_known_pixels_exactly(linear):
    x_known = data(200, 10)
    mask = torch.tensor([1.0, 0.0])
    out = editing.inpaint(gaussian_eps(linear), linear, x_known, mask,
                          generator=torch.Generator().manual_seed(11))  # fmt: skip
    assert torch.equal(out[:, 0], x_known[:, 0])
    full = editing.inpaint(gaussian_eps(linear), linear, x_known, torch.ones(2))
    assert torch.equal(full, x_known)


def test_inpainting_with_nothing_known_samples_the_data(linear):
    out = editing.inpaint(gaussian_eps(linear), linear, torch.zeros(N, 2), torch.zeros(2),
                          generator=torch.Generator().manual_seed(12))  # fmt: skip
    assert_is_data(out)


def test_inpainting_moves_only_part_way_to_the_conditional_distribution(linear):
    """Known x_1 = 1.5: the exact conditional of x_2 is N(0.5, 0.09); the marginal N(−0.3, 0.25).

    Measured (linear schedule, T = 1000): the inpainted x_2 has mean about −0.10, 62 % of the way
    from the marginal mean to the conditional one, and variance about 0.12. Replacing the known
    pixels by independent draws of q(x_t | x_known) tells the unknown ones little at high noise,
    and at low noise they can no longer move: the reason RePaint resamples (Lugmayr et al., 2022).
    """
    x_known = torch.zeros(N, 2)
    x_known[:, 0] = 1.5
    out = editing.inpaint(gaussian_eps(linear), linear, x_known, torch.tensor([1.0, 0.0]),
                          generator=torch.Generator().manual_seed(13))  # fmt: skip
    cond_mean = MU[1] + SIGMA[1, 0] / SIGMA[0, 0] * (1.5 - MU[0])  # 0.5
    cond_var = SIGMA[1, 1] - SIGMA[1, 0] ** 2 / SIGMA[0, 0]  # 0.09
    fraction = ((out[:, 1].double().mean() - MU[1]) / (cond_mean - MU[1])).item()
    assert 0.5 < fraction < 0.75, fraction  # towards the conditional, clearly not all the way
    var = out[:, 1].double().var().item()
    assert cond_var + 0.01 < var < SIGMA[1, 1] - 0.08, var  # 0.12: between the two
