"""Lecture 06 checks: each passes the reference solution and names at least two classic mistakes."""

import pytest
import torch

from coursekit.exercises import diffusion as ex06


def bcast(a, x):
    return a.view(-1, *([1] * (x.ndim - 1)))


# --- reference solutions, written the way the notebook writes them ---------------------------


def q_sample(x0, t, alpha_bar, eps):
    a = bcast(alpha_bar[t], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def diffusion_loss(eps_model, x0, t, eps, alpha_bar):
    x_t = q_sample(x0, t, alpha_bar, eps)
    return ((eps - eps_model(x_t, t)) ** 2).mean()


def ddpm_step(x_t, eps, t, schedule, z):
    beta, alpha, alpha_bar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bar[t]
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()
    if t == 0:
        return mean
    return mean + schedule.posterior_variance[t].sqrt() * z


def ddim_step(x_t, eps, t, t_prev, schedule):
    a_t = schedule.alpha_bar[t]
    a_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def guidance(eps_uncond, eps_cond, scale):
    return eps_uncond + scale * (eps_cond - eps_uncond)


def expect_fail(result, words):
    assert not result, "the check passed a wrong answer"
    assert words in result.message, result.message


# --- q_sample ------------------------------------------------------------------------------------


def test_q_sample_reference_passes():
    assert ex06.check_q_sample(q_sample)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (
            lambda x0, t, ab, eps: bcast(ab[t], x0) * x0 + (1 - bcast(ab[t], x0)) * eps,
            "forgot the square roots",
        ),
        (
            lambda x0, t, ab, eps: (
                (1 - bcast(ab[t], x0)).sqrt() * x0 + bcast(ab[t], x0).sqrt() * eps
            ),
            "swapped the two scales",
        ),
        (
            lambda x0, t, ab, eps: bcast(ab[t], x0).sqrt() * x0 + (1 - bcast(ab[t], x0)) * eps,
            "forgot the square root on the noise scale",
        ),
        (lambda x0, t, ab, eps: ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps, "your code raised"),
        (lambda x0, t, ab, eps: None, "forget the `return`"),
    ],
)
def test_q_sample_wrong_answers_fail(wrong, words):
    expect_fail(ex06.check_q_sample(wrong), words)


def test_q_sample_that_ignores_the_given_noise_fails_the_closed_form():
    def fresh_noise(x0, t, ab, eps):
        return q_sample(x0, t, ab, torch.randn_like(eps))

    expect_fail(ex06.check_q_sample(fresh_noise), "does not match the reference")


# --- the loss ------------------------------------------------------------------------------------


def test_loss_reference_passes():
    assert ex06.check_diffusion_loss(diffusion_loss)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (
            lambda m, x0, t, eps, ab: ((x0 - m(q_sample(x0, t, ab, eps), t)) ** 2).mean(),
            "regressed onto x_0",
        ),
        (lambda m, x0, t, eps, ab: ((eps - m(x0, t)) ** 2).mean(), "fed x_0 (not x_t)"),
        (
            lambda m, x0, t, eps, ab: ((eps - m(q_sample(x0, t, ab, eps), t)) ** 2).sum(),
            "summed instead of averaging",
        ),
        (
            lambda m, x0, t, eps, ab: (
                ((eps - m(q_sample(x0, t, ab, eps), t)) ** 2).flatten(1).mean(1)
            ),
            "shape (6,), expected ()",
        ),
    ],
)
def test_loss_wrong_answers_fail(wrong, words):
    expect_fail(ex06.check_diffusion_loss(wrong), words)


# --- the DDPM step -------------------------------------------------------------------------------


def test_ddpm_step_reference_passes():
    assert ex06.check_ddpm_step(ddpm_step)


def _step_with(coef_fn=None, sigma_fn=None, noise_at_zero=False, divide=True):
    def step(x_t, eps, t, s, z):
        coef = coef_fn(s, t) if coef_fn else s.betas[t] / (1 - s.alpha_bar[t]).sqrt()
        mean = x_t - coef * eps
        mean = mean / s.alphas[t].sqrt() if divide else mean
        if t == 0 and not noise_at_zero:
            return mean
        sigma = sigma_fn(s, t) if sigma_fn else s.posterior_variance[t].sqrt()
        return mean + sigma * z

    return step


@pytest.mark.parametrize(
    "wrong, words",
    [
        (
            _step_with(coef_fn=lambda s, t: s.betas[t] / (1 - s.alpha_bar[t])),
            "used 1 − ᾱ_t where sqrt(1 − ᾱ_t) belongs",
        ),
        (
            _step_with(coef_fn=lambda s, t: s.betas[t] / (1 - s.alphas[t]).sqrt()),
            "used sqrt(1 − α_t) (one step)",
        ),
        (_step_with(divide=False), "forgot to divide by sqrt(α_t)"),
        (_step_with(sigma_fn=lambda s, t: s.betas[t].sqrt()), "used σ_t² = β_t"),
        (
            _step_with(sigma_fn=lambda s, t: s.betas[t].sqrt(), noise_at_zero=True),
            "used σ_t² = β_t",
        ),
        (_step_with(sigma_fn=lambda s, t: -s.posterior_variance[t].sqrt()), "wrong sign"),
    ],
)
def test_ddpm_step_wrong_answers_fail(wrong, words):
    expect_fail(ex06.check_ddpm_step(wrong), words)


def test_ddpm_step_noise_at_t0_is_caught():
    def noisy_at_zero(x_t, eps, t, s, z):
        out = ddpm_step(x_t, eps, t, s, z)
        return out + s.betas[t].sqrt() * z if t == 0 else out

    expect_fail(ex06.check_ddpm_step(noisy_at_zero), "added noise at the last step")


# --- the DDIM step -------------------------------------------------------------------------------


def test_ddim_step_reference_passes():
    assert ex06.check_ddim_step(ddim_step)


def test_ddim_step_wrong_answers_fail():
    def wrong_sigma(x_t, eps, t, t_prev, s):
        a_t = s.alpha_bar[t]
        a_prev = s.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        return a_prev.sqrt() * x0 + (1 - a_t).sqrt() * eps

    def returns_x0(x_t, eps, t, t_prev, s):
        a_t = s.alpha_bar[t]
        return (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()

    def next_train_step(x_t, eps, t, t_prev, s):
        return ddim_step(x_t, eps, t, t - 1, s)

    def crashes_at_minus_one(x_t, eps, t, t_prev, s):
        if t_prev < 0:
            raise IndexError("index -1 is the last entry, not ᾱ = 1")
        return ddim_step(x_t, eps, t, t_prev, s)

    def last_entry_for_minus_one(x_t, eps, t, t_prev, s):  # alpha_bar[-1] ≈ 0, not 1
        a_t, a_prev = s.alpha_bar[t], s.alpha_bar[t_prev]
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    expect_fail(ex06.check_ddim_step(wrong_sigma), "scaled ε by sqrt(1 − ᾱ_t)")
    expect_fail(ex06.check_ddim_step(returns_x0), "returned the predicted x_0")
    expect_fail(ex06.check_ddim_step(next_train_step), "ᾱ_(t-1) of the next training step")
    expect_fail(ex06.check_ddim_step(crashes_at_minus_one), "your code raised IndexError")
    expect_fail(ex06.check_ddim_step(last_entry_for_minus_one), "alpha_bar[-1]")


# --- guidance ------------------------------------------------------------------------------------


def test_guidance_reference_passes():
    assert ex06.check_guidance(guidance)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda u, c, s: c + s * (c - u), "Ho & Salimans' w"),
        (lambda u, c, s: c + s * (u - c), "swapped the conditional and unconditional"),
        (lambda u, c, s: u + s * c, "without subtracting ε_u"),
        (lambda u, c, s: (1 - s) * c + s * u, "swapped the conditional and unconditional"),
        (lambda u, c, s: u - s * (c - u), "does not match the reference"),
    ],
)
def test_guidance_wrong_answers_fail(wrong, words):
    expect_fail(ex06.check_guidance(wrong), words)


def test_stubs_read_as_not_implemented():
    def stub(*args):
        raise NotImplementedError("Exercise 6.1")

    for check_fn in (
        ex06.check_q_sample,
        ex06.check_diffusion_loss,
        ex06.check_ddpm_step,
        ex06.check_ddim_step,
        ex06.check_guidance,
    ):
        expect_fail(check_fn(stub), "not implemented yet")
