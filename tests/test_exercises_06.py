"""Lecture 06 checks: each passes the reference solution (at several seeds) and names the
classic mistakes, a size or a schedule length written as a number, an off-by-one at the ends of
the chain, a loss without gradients and an input modified in place."""

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
            "returned one loss per example",
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
        (lambda u, c, s: u - s * (c - u), "subtracted the guidance direction"),
        (lambda u, c, s: u - 1.01 * s * (c - u), "does not match the reference"),
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


# --- the battery: more wrong answers, sizes, the ends of the chain, gradients, in-place -----------

SEEDS = [0, 1, 2, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_check_passes_the_reference_at_other_seeds(seed):
    assert ex06.check_q_sample(q_sample, seed=seed)
    assert ex06.check_diffusion_loss(diffusion_loss, seed=seed)
    assert ex06.check_ddpm_step(ddpm_step, seed=seed)
    assert ex06.check_ddim_step(ddim_step, seed=seed)
    assert ex06.check_guidance(guidance, seed=seed)


def _q_in_place(x0, t, ab, eps):
    a = bcast(ab[t], x0)
    x0.mul_(a.sqrt())  # scales the caller's data
    return x0 + (1 - a).sqrt() * eps


def _q_schedule_in_place(x0, t, ab, eps):
    ab.sqrt_()  # turns the shared table into sqrt(ᾱ)
    a = bcast(ab[t], x0)
    return a * x0 + (1 - a**2).sqrt() * eps


def _q_no_grad(x0, t, ab, eps):
    with torch.no_grad():
        return q_sample(x0, t, ab, eps)


Q_WRONG = [
    (
        lambda x0, t, ab, eps: bcast(ab[t], x0) * x0 + (1 - bcast(ab[t], x0)).sqrt() * eps,
        "forgot the square root on the signal scale",
    ),
    (lambda x0, t, ab, eps: q_sample(x0, t, ab, -eps), "subtracted the noise"),
    (lambda x0, t, ab, eps: q_sample(x0, t - 1, ab, eps), "alpha_bar[t − 1] (off by one"),
    (
        lambda x0, t, ab, eps: q_sample(x0, t, torch.cat([ab.new_ones(1), ab[:-1]]), eps),
        "used ᾱ_(t−1) (off by one",
    ),
    (
        lambda x0, t, ab, eps: 1.01 * q_sample(x0, t, ab, eps),
        "does not match the reference",
    ),
    # images only: (B, 1, 1, 1) is a hard-coded shape that broadcasts wrongly on 2-D points
    (
        lambda x0, t, ab, eps: (
            ab[t].view(-1, 1, 1, 1).sqrt() * x0 + (1 - ab[t].view(-1, 1, 1, 1)).sqrt() * eps
        ),
        "which only fits images",
    ),
    # a schedule length written as a number: ᾱ recomputed from the linear betas for T = 1000
    (
        lambda x0, t, ab, eps: q_sample(
            x0, t, torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0), eps
        ),
        "It passed with B=4",
    ),
    (_q_no_grad, "carries no gradient"),
    (lambda x0, t, ab, eps: q_sample(x0.detach(), t, ab, eps), "no gradient reaches `x0`"),
    (_q_in_place, "modified its input in place"),
    (_q_schedule_in_place, "modified its input `ab` in place"),
]


@pytest.mark.parametrize("wrong, words", Q_WRONG)
def test_q_sample_battery(wrong, words):
    expect_fail(ex06.check_q_sample(wrong), words)


def test_q_sample_in_place_on_the_schedule_does_not_break_the_next_check():
    assert not ex06.check_q_sample(_q_schedule_in_place)
    assert ex06.check_q_sample(q_sample)
    assert ex06.check_diffusion_loss(diffusion_loss)


def _x_t(x0, t, ab, eps):
    return q_sample(x0, t, ab, eps)


def _loss_no_grad(m, x0, t, eps, ab):
    with torch.no_grad():
        return diffusion_loss(m, x0, t, eps, ab)


def _loss_in_place(m, x0, t, eps, ab):
    eps -= m(_x_t(x0, t, ab, eps), t)  # overwrites the caller's noise
    return (eps**2).mean()


def _loss_param_in_place(m, x0, t, eps, ab):
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.0)
            p.add_(0.01)
    return diffusion_loss(m, x0, t, eps, ab)


LOSS_WRONG = [
    (
        lambda m, x0, t, eps, ab: (
            ((eps - m(_x_t(x0, t, ab, eps), t)) ** 2).flatten(1).mean(1).sum()
        ),
        "averaged per example but summed over the batch",
    ),
    (
        lambda m, x0, t, eps, ab: (eps - m(_x_t(x0, t, ab, eps), t)).mean() ** 2,
        "squared the mean error",
    ),
    (lambda m, x0, t, eps, ab: (eps - m(_x_t(x0, t, ab, eps), t)) ** 2, "did not reduce"),
    (
        lambda m, x0, t, eps, ab: (
            (eps - m(bcast(ab[t], x0) * x0 + bcast(1 - ab[t], x0) * eps, t)) ** 2
        ).mean(),
        "without the square roots",
    ),
    (lambda m, x0, t, eps, ab: ((eps - m(_x_t(x0, t, ab, eps), t + 1)) ** 2).mean(), "t + 1"),
    (
        lambda m, x0, t, eps, ab: ((_x_t(x0, t, ab, eps) - m(_x_t(x0, t, ab, eps), t)) ** 2).mean(),
        "onto x_t",
    ),
    (
        lambda m, x0, t, eps, ab: (
            (eps - m(_x_t(x0, t, torch.cat([ab.new_ones(1), ab[:-1]]), eps), t)) ** 2
        ).mean(),
        "ᾱ_(t−1)",
    ),
    # the notebook's batch written into the mean
    (
        lambda m, x0, t, eps, ab: ((eps - m(_x_t(x0, t, ab, eps), t)) ** 2).sum() / (6 * 16),
        "It passed with B=6",
    ),
    (_loss_no_grad, "carries no gradient"),
    (
        lambda m, x0, t, eps, ab: torch.tensor(diffusion_loss(m, x0, t, eps, ab).item()),
        "carries no gradient",
    ),
    (lambda m, x0, t, eps, ab: diffusion_loss(m, x0, t, eps, ab).item(), "`.item()`"),
    (_loss_in_place, "modified its input `eps` in place"),
    (_loss_param_in_place, "modified its input `m.a` in place"),
]


@pytest.mark.parametrize("wrong, words", LOSS_WRONG)
def test_loss_battery(wrong, words):
    expect_fail(ex06.check_diffusion_loss(wrong), words)


def test_loss_with_a_frozen_network_is_a_wrong_gradient():
    def frozen(m, x0, t, eps, ab):
        x_t = _x_t(x0, t, ab, eps)
        return ((eps - m(x_t, t).detach()) ** 2).mean() + 0 * x_t.sum()

    expect_fail(ex06.check_diffusion_loss(frozen), "carries no gradient")


def _ddpm_mean(x_t, eps, t, s):
    return (x_t - s.betas[t] / (1 - s.alpha_bar[t]).sqrt() * eps) / s.alphas[t].sqrt()


def _ab(s, t):
    return s.alpha_bar[t] if t >= 0 else torch.tensor(1.0)


def _ddpm_noise_until_one(x_t, eps, t, s, z):
    out = ddpm_step(x_t, eps, t, s, z)
    if t == 1:  # off by one at the end of the chain: t = 1 still needs noise
        return _ddpm_mean(x_t, eps, 1, s)
    return out


def _ddpm_in_place(x_t, eps, t, s, z):
    x_t -= s.betas[t] / (1 - s.alpha_bar[t]).sqrt() * eps
    x_t /= s.alphas[t].sqrt()
    return x_t if t == 0 else x_t + s.posterior_variance[t].sqrt() * z


def _ddpm_schedule_in_place(x_t, eps, t, s, z):
    s.posterior_variance.clamp_(min=1e-20)
    return ddpm_step(x_t, eps, t, s, z)


DDPM_WRONG = [
    (
        _step_with(sigma_fn=lambda s, t: s.posterior_variance[t]),
        "used the variance β̃_t as the noise scale",
    ),
    (
        lambda x_t, eps, t, s, z: (
            (x_t + s.betas[t] / (1 - s.alpha_bar[t]).sqrt() * eps) / s.alphas[t].sqrt()
            + (s.posterior_variance[t].sqrt() * z if t > 0 else 0)
        ),
        "added the ε term instead of subtracting it",
    ),
    (
        lambda x_t, eps, t, s, z: (
            (x_t - s.betas[t] / (1 - s.alpha_bar[t]).sqrt() * eps) * s.alphas[t].sqrt()
            + (s.posterior_variance[t].sqrt() * z if t > 0 else 0)
        ),
        "multiplied by sqrt(α_t)",
    ),
    (
        lambda x_t, eps, t, s, z: _ddpm_mean(x_t, eps, t, s),
        "added no noise",
    ),
    # boundary: only t = 0 is noise-free, t = 1 is not
    (_ddpm_noise_until_one, "off by one at the end of the chain"),
    (
        lambda x_t, eps, t, s, z: (
            ddpm_step(x_t, eps, t - 1, s, z) if t > 0 else _ddpm_mean(x_t, eps, -1, s)
        ),
        "read the tables at t − 1",
    ),
    # the number of steps written as a number: the notebook's schedule rebuilt for T = 1000
    (lambda x_t, eps, t, s, z: ddpm_step(x_t, eps, t, ex06._SCHEDULE, z), "It passed with B=3"),
    (_ddpm_in_place, "modified its input `x_t` in place"),
    (_ddpm_schedule_in_place, "modified its input `s.posterior_variance` in place"),
]


@pytest.mark.parametrize("wrong, words", DDPM_WRONG)
def test_ddpm_step_battery(wrong, words):
    expect_fail(ex06.check_ddpm_step(wrong), words)


def test_ddpm_step_reaches_both_ends_of_the_chain():
    seen = []

    def spy(x_t, eps, t, s, z):
        seen.append((s.num_steps, t))
        return ddpm_step(x_t, eps, t, s, z)

    assert ex06.check_ddpm_step(spy)
    for T in {T for T, _ in seen}:
        ts = {t for T2, t in seen if T2 == T}
        assert {0} <= ts
        if T != 1000:
            assert {0, 1, T - 1} <= ts


DDIM_WRONG = [
    # boundary: t_prev = 0 is a real table entry, only t_prev = -1 means ᾱ = 1
    (
        lambda x_t, eps, t, t_prev, s: ddim_step(x_t, eps, t, t_prev if t_prev > 0 else -1, s),
        "treated t_prev = 0 as the end of the chain",
    ),
    (
        lambda x_t, eps, t, t_prev, s: (
            ddim_step(x_t, eps, t, t_prev + 1, s)
            if t_prev + 1 != t
            else ddim_step(x_t, eps, t, t_prev, s)
        ),
        "alpha_bar[t_prev + 1]",
    ),
    (
        lambda x_t, eps, t, t_prev, s: (
            (s.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)).sqrt()
            * (x_t - (1 - s.alpha_bar[t]).sqrt() * eps)
            / s.alpha_bar[t]
            + (1 - (s.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0))).sqrt() * eps
        ),
        "forgot the square root of ᾱ_t",
    ),
    (
        lambda x_t, eps, t, t_prev, s: (
            _ab(s, t_prev).sqrt()
            * (x_t + (1 - s.alpha_bar[t]).sqrt() * eps)
            / s.alpha_bar[t].sqrt()
            + (1 - _ab(s, t_prev)).sqrt() * eps
        ),
        "the noise is subtracted",
    ),
    (
        lambda x_t, eps, t, t_prev, s: ddim_step(x_t, eps, t, t_prev, ex06._SCHEDULE),
        "It passed with B=3",
    ),
    (
        lambda x_t, eps, t, t_prev, s: ddim_step(
            x_t.mul_(1.0).add_(0.0).sub_(-0.001), eps, t, t_prev, s
        ),
        "modified its input `x_t` in place",
    ),
]


@pytest.mark.parametrize("wrong, words", DDIM_WRONG)
def test_ddim_step_battery(wrong, words):
    expect_fail(ex06.check_ddim_step(wrong), words)


def _guidance_in_place(u, c, s):
    u += s * (c - u)
    return u


GUIDANCE_WRONG = [
    (lambda u, c, s: s * (c - u), "returned only the guidance direction"),
    (lambda u, c, s: (u + s * c) / (1 + s), "divided by 1 + s"),
    (lambda u, c, s: u + s * (c - u) if s in (0.0, 1.0, 3.0) else c, "It passed with B=4, D=3"),
    (lambda u, c, s: (u + s * (c - u))[:4, :3], "written into your code"),
    (_guidance_in_place, "modified its input `u` in place"),
]


@pytest.mark.parametrize("wrong, words", GUIDANCE_WRONG)
def test_guidance_battery(wrong, words):
    expect_fail(ex06.check_guidance(wrong), words)


# --- replacement inpainting (the masked replacement step) ------------------------------------------


def replace_known(x, x_known, mask, t, alpha_bar, eps):
    if t == 0:
        known = x_known
    else:
        a = alpha_bar[t - 1]
        known = a.sqrt() * x_known + (1 - a).sqrt() * eps
    return mask * known + (1 - mask) * x


def _noised(x_known, ab, eps, a):
    return a.sqrt() * x_known + (1 - a).sqrt() * eps


def _replace_in_place(x, x_known, mask, t, ab, eps):
    known = x_known if t == 0 else _noised(x_known, ab, eps, ab[t - 1])
    keep = mask.bool()
    x[keep] = known[keep]  # writes into the caller's x
    return x


def _replace_hard_coded(x, x_known, mask, t, ab, eps):
    out = replace_known(x, x_known, mask, t, ab, eps)
    return out[:3, :1, :6, :8]  # the notebook's sizes written as numbers


REPLACE_WRONG = [
    (
        lambda x, k, m, t, ab, e: replace_known(x, k, 1 - m, t, ab, e),
        "inverted the mask",
    ),
    (  # off by one everywhere: ᾱ_t for the known pixels, also at t = 0
        lambda x, k, m, t, ab, e: m * _noised(k, ab, e, ab[t]) + (1 - m) * x,
        "noised the known pixels to level t (off by one",
    ),
    (  # right for t > 0, but noises the last step too
        lambda x, k, m, t, ab, e: (
            m * _noised(k, ab, e, ab[0]) + (1 - m) * x
            if t == 0
            else replace_known(x, k, m, t, ab, e)
        ),
        "at t = 0 with alpha_bar[0]",
    ),
    (  # alpha_bar[t - 1] without the t = 0 case: wraps to the last entry
        lambda x, k, m, t, ab, e: m * _noised(k, ab, e, ab[t - 1]) + (1 - m) * x,
        "wraps to alpha_bar[−1]",
    ),
    (lambda x, k, m, t, ab, e: m * k + (1 - m) * x, "put back the clean x_known"),
    (
        lambda x, k, m, t, ab, e: replace_known(x, k, m, t, ab, torch.zeros_like(e)),
        "forgot the noise term",
    ),
    (
        lambda x, k, m, t, ab, e: (
            m * (ab[t - 1] * k + (1 - ab[t - 1]) * e) + (1 - m) * x
            if t > 0
            else replace_known(x, k, m, t, ab, e)
        ),
        "forgot the square roots",
    ),
    (
        lambda x, k, m, t, ab, e: (
            m * (ab[t - 1].sqrt() * k + (1 - ab[t - 1]) * e) + (1 - m) * x
            if t > 0
            else replace_known(x, k, m, t, ab, e)
        ),
        "forgot the square root on the noise scale",
    ),
    (
        lambda x, k, m, t, ab, e: m * replace_known(x, k, m, t, ab, e),
        "dropped the unknown pixels",
    ),
    (
        lambda x, k, m, t, ab, e: replace_known(x, k, torch.ones_like(m), t, ab, e),
        "replaced every pixel",
    ),
    (  # the notebook's schedule (T = 1000) written into the code
        lambda x, k, m, t, ab, e: replace_known(x, k, m, t, ex06._SCHEDULE.alpha_bar, e),
        "It passed with B=3",
    ),
    (_replace_hard_coded, "It passed with B=3"),
    (_replace_in_place, "modified its input `x` in place"),
]


def test_replace_known_reference_passes_at_several_seeds():
    for seed in SEEDS:
        assert ex06.check_replace_known(replace_known, seed=seed)


@pytest.mark.parametrize("wrong, words", REPLACE_WRONG)
def test_replace_known_battery(wrong, words):
    expect_fail(ex06.check_replace_known(wrong), words)


def test_replace_known_stub_and_the_ends_of_the_chain():
    def stub(*args):
        raise NotImplementedError("Exercise 6.6")

    expect_fail(ex06.check_replace_known(stub), "not implemented yet")
    seen = []

    def spy(x, k, m, t, ab, e):
        seen.append((len(ab), t, tuple(x.shape)))
        return replace_known(x, k, m, t, ab, e)

    assert ex06.check_replace_known(spy)
    for T in {T for T, _, _ in seen}:
        assert {0, 1, T - 1} <= {t for T2, t, _ in seen if T2 == T}
    shapes = {s for _, _, s in seen}
    assert len(shapes) >= 2
    assert all(len({s[i] for s in shapes}) == len(shapes) for i in range(4))  # every dim differs
