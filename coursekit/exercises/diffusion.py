"""Checks for lecture 06 (diffusion models). Each prints one ✓ / ✗ line and returns a Result.

Convention, as in ``coursekit.diffusion``: x_0 is data, large t is noise (Ho et al., 2020);
``t`` indexes the tables of a ``NoiseSchedule`` (``betas``, ``alphas``, ``alpha_bar``,
``posterior_variance``), so ``alpha_bar[t]`` is ᾱ_t.
"""

from __future__ import annotations

import torch

from coursekit import check
from coursekit.diffusion import ddpm, sampling, schedules

_SCHEDULE = schedules.linear_schedule(1000)


def _known(hints: dict) -> dict:
    """The hints that apply here (a mistake can be invisible at some t: its value is None)."""
    return {k: v for k, v in hints.items() if v is not None}


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def check_q_sample(q_sample_fn) -> check.Result:
    """``q_sample_fn(x0, t, alpha_bar, eps) -> x_t`` with x0, eps (B, C, H, W), t int64 (B,)."""
    sch = _SCHEDULE
    x0, eps = _randn(4, 1, 3, 3, seed=0), _randn(4, 1, 3, 3, seed=1)
    t = torch.tensor([0, 50, 400, 900])
    a = sch.alpha_bar[t].view(-1, 1, 1, 1)
    with check.exercise("q_sample: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε") as ex:
        out = ex.tensor(ex.call(q_sample_fn, x0, t, sch.alpha_bar, eps), shape=tuple(x0.shape))
        alpha = sch.alphas[t].view(-1, 1, 1, 1)
        ex.close(
            out,
            ddpm.q_sample(x0, t, sch, eps=eps),
            rtol=1e-4,
            atol=1e-5,
            hints={
                "forgot the square roots (used ᾱ_t and 1 − ᾱ_t as the scales)": a * x0
                + (1 - a) * eps,
                "forgot the square root on the noise scale (used 1 − ᾱ_t, a variance, as a "
                "standard deviation)": a.sqrt() * x0 + (1 - a) * eps,
                "swapped the two scales": (1 - a).sqrt() * x0 + a.sqrt() * eps,
                "used α_t of one step instead of the product ᾱ_t": alpha.sqrt() * x0
                + (1 - alpha).sqrt() * eps,
                "scaled the noise by sqrt(ᾱ_t) too": a.sqrt() * (x0 + (1 - a).sqrt() * eps),
            },
        )
        # in distribution: the closed form against Ho et al.'s step-by-step chain (eq. 2)
        n, t_chain = 20_000, 300
        g = torch.Generator().manual_seed(2)
        x_chain = torch.full((n, 1, 1, 1), 0.8)
        for s in range(t_chain + 1):
            x_chain = (1 - sch.betas[s]).sqrt() * x_chain + sch.betas[s].sqrt() * torch.randn(
                x_chain.shape, generator=g
            )
        x_closed = ex.call(
            q_sample_fn,
            torch.full((n, 1, 1, 1), 0.8),
            torch.full((n,), t_chain),
            sch.alpha_bar,
            torch.randn(n, 1, 1, 1, generator=g),
        )
        ex.tensor(x_closed, shape=(n, 1, 1, 1))
        se = 4 / n**0.5
        ex.require(
            abs(x_closed.mean() - x_chain.mean()).item() < 2 * se
            and abs(x_closed.std() / x_chain.std() - 1).item() < 0.03,
            "your x_t does not have the distribution of the step-by-step chain "
            f"(mean {x_closed.mean():.3f} vs {x_chain.mean():.3f}, "
            f"std {x_closed.std():.3f} vs {x_chain.std():.3f})",
        )
    return ex.result


class _FixedNet(torch.nn.Module):
    """A deterministic stand-in for ε_θ(x_t, t): a fixed, smooth function of both."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return 0.7 * x_t - 0.3 * torch.tanh(x_t) * (t.float() / 1000).view(-1, 1, 1, 1)


def check_diffusion_loss(loss_fn) -> check.Result:
    """``loss_fn(eps_model, x0, t, eps, alpha_bar) -> scalar``: mean ||ε − ε_θ(x_t, t)||²."""
    sch, net = _SCHEDULE, _FixedNet()
    x0, eps = _randn(6, 1, 4, 4, seed=3), _randn(6, 1, 4, 4, seed=4)
    t = torch.tensor([0, 1, 100, 500, 800, 999])
    x_t = ddpm.q_sample(x0, t, sch, eps=eps)
    pred = net(x_t, t)
    with check.exercise("the simplified DDPM loss (Ho et al., eq. 14)") as ex:
        out = ex.tensor(ex.call(loss_fn, net, x0, t, eps, sch.alpha_bar), shape=())
        ex.close(
            out,
            ((eps - pred) ** 2).mean(),
            rtol=1e-4,
            atol=1e-6,
            hints={
                "regressed onto x_0 instead of ε": ((x0 - pred) ** 2).mean(),
                "fed x_0 (not x_t) to the network": ((eps - net(x0, t)) ** 2).mean(),
                "summed instead of averaging": ((eps - pred) ** 2).sum(),
                "averaged per image but summed over the batch": ((eps - pred) ** 2)
                .flatten(1)
                .mean(1)
                .sum(),
                "forgot to square the error": (eps - pred).abs().mean(),
            },
        )
    return ex.result


def check_ddpm_step(step_fn) -> check.Result:
    """``step_fn(x_t, eps, t, schedule, z) -> x_{t-1}``, with σ_t² = schedule.posterior_variance[t]."""
    sch = _SCHEDULE
    x_t, eps, z = _randn(3, 2, seed=5), _randn(3, 2, seed=6), _randn(3, 2, seed=7)
    with check.exercise("the ancestral DDPM step (Ho et al., Alg. 2)") as ex:
        for t in (700, 20, 0):
            b, a, ab = sch.betas[t], sch.alphas[t], sch.alpha_bar[t]
            sigma = sch.posterior_variance[t].sqrt()
            ref = sampling.ddpm_step(x_t, eps, t, sch, noise=z)
            noise_term = sigma * z
            out = ex.tensor(
                ex.call(step_fn, x_t, eps, t, sch, z), shape=(3, 2), what=f"your x_(t-1) at t = {t}"
            )
            ex.close(
                out,
                ref,
                rtol=1e-4,
                atol=1e-5,
                what=f"your x_(t-1) at t = {t}",
                hints=_known(
                    {
                        "used 1 − ᾱ_t where sqrt(1 − ᾱ_t) belongs": (x_t - b / (1 - ab) * eps)
                        / a.sqrt()
                        + noise_term,
                        "used sqrt(1 − α_t) (one step) instead of sqrt(1 − ᾱ_t)": (
                            x_t - b / (1 - a).sqrt() * eps
                        )
                        / a.sqrt()
                        + noise_term,
                        "forgot to divide by sqrt(α_t)": x_t
                        - b / (1 - ab).sqrt() * eps
                        + noise_term,
                        "added the noise term with the wrong sign": (
                            x_t - b / (1 - ab).sqrt() * eps
                        )
                        / a.sqrt()
                        - noise_term
                        if t > 0
                        else None,
                        "used σ_t² = β_t; this exercise uses β̃_t = schedule.posterior_variance[t]": (
                            x_t - b / (1 - ab).sqrt() * eps
                        )
                        / a.sqrt()
                        + b.sqrt() * z
                        if t > 0
                        else None,
                        "added noise at the last step (t = 0 must return the mean)": ref
                        + b.sqrt() * z
                        if t == 0
                        else None,
                    }
                ),
            )
    return ex.result


def check_ddim_step(step_fn) -> check.Result:
    """``step_fn(x_t, eps, t, t_prev, schedule) -> x_{t_prev}`` (η = 0; t_prev = −1 means ᾱ = 1)."""
    sch = _SCHEDULE
    x_t, eps = _randn(3, 2, seed=8), _randn(3, 2, seed=9)
    with check.exercise("the deterministic DDIM step (Song et al., eq. 12, η = 0)") as ex:
        for t, t_prev in ((900, 700), (300, 280), (20, -1)):
            ab = sch.alpha_bar[t]
            ab_prev = sch.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
            x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
            ref = sampling.ddim_step(x_t, eps, t, t_prev, sch)
            what = f"your x_(t_prev) for t = {t}, t_prev = {t_prev}"
            out = ex.tensor(ex.call(step_fn, x_t, eps, t, t_prev, sch), shape=(3, 2), what=what)
            ex.close(
                out,
                ref,
                rtol=1e-4,
                atol=1e-5,
                what=what,
                hints=_known(
                    {
                        "scaled ε by sqrt(1 − ᾱ_t) instead of sqrt(1 − ᾱ_prev)": ab_prev.sqrt() * x0
                        + (1 - ab).sqrt() * eps,
                        "forgot the square roots": ab_prev * x0 + (1 - ab_prev) * eps,
                        "returned the predicted x_0 instead of x_(t_prev)": x0
                        if t_prev >= 0
                        else None,
                        "used ᾱ_(t-1) of the next training step instead of ᾱ at t_prev": sch.alpha_bar_prev[
                            t
                        ].sqrt()
                        * x0
                        + (1 - sch.alpha_bar_prev[t]).sqrt() * eps
                        if t_prev != t - 1
                        else None,
                        "used alpha_bar[-1] (the noisiest entry) for t_prev = -1, where ᾱ = 1": sch.alpha_bar[
                            -1
                        ].sqrt()
                        * x0
                        + (1 - sch.alpha_bar[-1]).sqrt() * eps
                        if t_prev == -1
                        else None,
                    }
                ),
            )
    return ex.result


def check_guidance(guidance_fn) -> check.Result:
    """``guidance_fn(eps_uncond, eps_cond, scale) -> eps``: ε_u + s (ε_c − ε_u)."""
    eps_u, eps_c = _randn(4, 3, seed=10), _randn(4, 3, seed=11)
    with check.exercise("classifier-free guidance: ε_u + s (ε_c − ε_u)") as ex:
        for s in (3.0, 0.0, 1.0):
            out = ex.tensor(
                ex.call(guidance_fn, eps_u, eps_c, s), shape=(4, 3), what=f"your ε at scale s = {s}"
            )
            ex.close(
                out,
                eps_u + s * (eps_c - eps_u),
                what=f"your ε at scale s = {s}",
                hints={
                    "used Ho & Salimans' w (ε_c + w (ε_c − ε_u)); here s = w + 1, s = 1 is conditional": eps_c
                    + s * (eps_c - eps_u),
                    "swapped the conditional and unconditional predictions": eps_c
                    + s * (eps_u - eps_c),
                    "added s · ε_c without subtracting ε_u": eps_u + s * eps_c,
                },
            )
    return ex.result
