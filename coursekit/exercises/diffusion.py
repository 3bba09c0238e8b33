"""Checks for lecture 06 (diffusion models). Each prints one ✓ / ✗ line and returns a Result.

Convention, as in ``coursekit.diffusion``: x_0 is data, large t is noise (Ho et al., 2020);
``t`` indexes the tables of a ``NoiseSchedule`` (``betas``, ``alphas``, ``alpha_bar``,
``posterior_variance``), so ``alpha_bar[t]`` is ᾱ_t.

Every check runs on three cases that differ in the batch size, the data shape (images and 2-D
points), the number of diffusion steps T and the schedule (linear, cosine), and always includes
the ends of the chain: t = T − 1 (the first sampling step), t = 1 and t = 0 (the last), and
t_prev = 0 and −1 for DDIM. ``seed=0`` starts with the notebook's inputs; another seed draws
other sizes and values. Schedules and networks are deep-copied for every call, so a student
function that writes into them is named and cannot break the next check.
"""

from __future__ import annotations

import torch

from coursekit import check
from coursekit.diffusion import ddpm, sampling, schedules

_SCHEDULE = schedules.linear_schedule(1000)
_SHAPES = [(1, 3, 3), (2, 5, 4), (2,), (3, 2, 2), (1, 4, 4), (5,), (2, 3, 3), (3,)]


def _cases(seed: int, B: tuple[int, int, int], shape: tuple) -> list[check.Case]:
    """Three cases: the notebook's (linear, T = 1000), then other B, data shapes and T."""
    return check.sizes(
        seed,
        B=(*B, range(2, 10)),
        shape=(*shape, _SHAPES),
        T=(1000, 50, 200, [20, 50, 100, 200, 300, 500, 1000]),
    )


def _schedule(case: check.Case) -> schedules.NoiseSchedule:
    if case.shown:
        return _SCHEDULE
    kind = ("cosine", "linear")[(case.index + case.seed) % 2]
    return schedules.get_schedule(kind, case.T)


def _times(case: check.Case, shown: list[int], n: int) -> list[int]:
    """The notebook's times in its case; elsewhere 0, 1, T − 1 and ``n - 3`` times in between."""
    if case.shown:
        return shown
    T = case.T
    inner = torch.randint(2, T - 1, (n - 3,), generator=case.generator(99)).tolist()
    return [T - 1, *inner, 1, 0]


def _bcast(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return a.view(-1, *([1] * (x.ndim - 1)))


def _as_images(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
    """ᾱ reshaped as (B, 1, 1, 1) whatever x is: the hard-coded image broadcast (None for images)."""
    if x.ndim == 4:
        return None
    return a.view(-1, 1, 1, 1)


def _q_sample_reference(x0, t, alpha_bar, eps):
    a = _bcast(alpha_bar[t], x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def check_q_sample(q_sample_fn, *, seed: int = 0) -> check.Result:
    """``q_sample_fn(x0, t, alpha_bar, eps) -> x_t`` with x0, eps (B, ...), t int64 (B,)."""
    cases = _cases(seed, B=(4, 7, 3), shape=((1, 3, 3), (2, 5, 4), (2,)))
    with check.exercise("q_sample: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε") as ex:
        for case in ex.cases(cases):
            sch = _schedule(case)
            x0 = torch.randn(case.B, *case.shape, generator=case.generator(0))
            eps = torch.randn(case.B, *case.shape, generator=case.generator(1))
            if case.shown:
                t = torch.tensor([0, 50, 400, 900])
            else:  # both ends of the table, the rest at random
                t = torch.randint(0, case.T, (case.B,), generator=case.generator(2))
                t[0], t[-1] = 0, case.T - 1
            ab = sch.alpha_bar
            a, alpha = _bcast(ab[t], x0), _bcast(sch.alphas[t], x0)
            a_prev, a_wrap = _bcast(sch.alpha_bar_prev[t], x0), _bcast(ab[t - 1], x0)
            a4 = _as_images(ab[t], x0)
            out = ex.call(q_sample_fn, x0, t, ab, eps, grad=(0, 3))
            ex.close(
                ex.tensor(out),
                ddpm.q_sample(x0, t, sch, eps=eps),
                rtol=1e-4,
                atol=1e-5,
                hints={
                    "forgot the square roots (used ᾱ_t and 1 − ᾱ_t as the scales)": a * x0
                    + (1 - a) * eps,
                    "forgot the square root on the noise scale (used 1 − ᾱ_t, a variance, as a "
                    "standard deviation)": a.sqrt() * x0 + (1 - a) * eps,
                    "forgot the square root on the signal scale (used ᾱ_t for sqrt(ᾱ_t))": a * x0
                    + (1 - a).sqrt() * eps,
                    "swapped the two scales": (1 - a).sqrt() * x0 + a.sqrt() * eps,
                    "used α_t of one step instead of the product ᾱ_t": alpha.sqrt() * x0
                    + (1 - alpha).sqrt() * eps,
                    "scaled the noise by sqrt(ᾱ_t) too": a.sqrt() * (x0 + (1 - a).sqrt() * eps),
                    "used ᾱ_(t−1) (off by one: alpha_bar[t] already is ᾱ_t, t = 0 is the first "
                    "noising step)": a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps,
                    "used alpha_bar[t − 1] (off by one, and at t = 0 it wraps to the last entry)": a_wrap.sqrt()
                    * x0
                    + (1 - a_wrap).sqrt() * eps,
                    "subtracted the noise: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε": a.sqrt() * x0
                    - (1 - a).sqrt() * eps,
                    "reshaped ᾱ_t to (B, 1, 1, 1), which only fits images: use "
                    "alpha_bar[t].view(-1, *[1] * (x0.ndim - 1))": None
                    if a4 is None
                    else a4.sqrt() * x0 + (1 - a4).sqrt() * eps,
                },
            )
            ex.grad(out, _q_sample_reference, what="your x_t")
            if case.index > 0:
                continue
            # in distribution: the closed form against Ho et al.'s step-by-step chain (eq. 2)
            n, t_chain = 20_000, (300 if case.shown else int(0.3 * case.T))
            g = case.generator(2)
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
    """A deterministic stand-in for ε_θ(x_t, t): a fixed, smooth function of both, with two
    parameters so that the loss's gradient can be checked."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.7))
        self.b = torch.nn.Parameter(torch.tensor(-0.3))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return self.a * x_t + self.b * torch.tanh(x_t) * _bcast(torch.cos(0.37 * t.float()), x_t)


def _loss_reference(net, x0, t, eps, alpha_bar):
    return ((eps - net(_q_sample_reference(x0, t, alpha_bar, eps), t)) ** 2).mean()


def check_diffusion_loss(loss_fn, *, seed: int = 0) -> check.Result:
    """``loss_fn(eps_model, x0, t, eps, alpha_bar) -> scalar``: mean ||ε − ε_θ(x_t, t)||²."""
    cases = _cases(seed, B=(6, 3, 5), shape=((1, 4, 4), (2, 3, 5), (2,)))
    net = _FixedNet()
    with check.exercise("the simplified DDPM loss (Ho et al., eq. 14)") as ex:
        for case in ex.cases(cases):
            sch = _schedule(case)
            x0 = torch.randn(case.B, *case.shape, generator=case.generator(3))
            eps = torch.randn(case.B, *case.shape, generator=case.generator(4))
            if case.shown:
                t = torch.tensor([0, 1, 100, 500, 800, 999])
            else:
                t = torch.randint(0, case.T, (case.B,), generator=case.generator(5))
                t[0], t[-1] = 0, case.T - 1
            ab = sch.alpha_bar
            a = _bcast(ab[t], x0)
            with torch.no_grad():
                x_t = ddpm.q_sample(x0, t, sch, eps=eps)
                pred = net(x_t, t)
                err2 = (eps - pred) ** 2
                x_t_nosqrt = a * x0 + (1 - a) * eps
                a_prev = _bcast(sch.alpha_bar_prev[t], x0)
                x_t_prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
                hints = {
                    "regressed onto x_0 instead of ε": ((x0 - pred) ** 2).mean(),
                    "fed x_0 (not x_t) to the network": ((eps - net(x0, t)) ** 2).mean(),
                    "summed instead of averaging": err2.sum(),
                    "averaged per example but summed over the batch": err2.flatten(1).mean(1).sum(),
                    "forgot to square the error": (eps - pred).abs().mean(),
                    "squared the mean error instead of averaging the squared errors": (
                        (eps - pred).mean() ** 2
                    ),
                    "returned one loss per example: average over the batch too (a scalar)": err2.flatten(
                        1
                    ).mean(1),
                    "did not reduce: return the mean over every entry, a scalar": err2,
                    "built x_t without the square roots of ᾱ_t and 1 − ᾱ_t": (
                        (eps - net(x_t_nosqrt, t)) ** 2
                    ).mean(),
                    "built x_t with ᾱ_(t−1) (off by one: alpha_bar[t] is ᾱ_t)": (
                        (eps - net(x_t_prev, t)) ** 2
                    ).mean(),
                    "gave the network t + 1 (the paper's 1-based step) instead of the index t": (
                        (eps - net(x_t, t + 1)) ** 2
                    ).mean(),
                    "regressed the network onto x_t instead of ε": ((x_t - pred) ** 2).mean(),
                }
            out = ex.call(loss_fn, net, x0, t, eps, ab, grad=(0,))
            ex.close(
                ex.tensor(out, what="your loss"),
                err2.mean(),
                rtol=1e-4,
                atol=1e-6,
                what="your loss",
                hints=hints,
            )
            ex.grad(out, _loss_reference, what="your loss")
    return ex.result


def check_ddpm_step(step_fn, *, seed: int = 0) -> check.Result:
    """``step_fn(x_t, eps, t, schedule, z) -> x_{t-1}``, with σ_t² = schedule.posterior_variance[t]."""
    cases = _cases(seed, B=(3, 5, 2), shape=((2,), (1, 3, 2), (3, 2, 2)))
    with check.exercise("the ancestral DDPM step (Ho et al., Alg. 2)") as ex:
        for case in ex.cases(cases):
            sch = _schedule(case)
            x_t = torch.randn(case.B, *case.shape, generator=case.generator(5))
            eps = torch.randn(case.B, *case.shape, generator=case.generator(6))
            z = torch.randn(case.B, *case.shape, generator=case.generator(7))
            for t in _times(case, [700, 20, 0], 5):
                b, a, ab = sch.betas[t], sch.alphas[t], sch.alpha_bar[t]
                sigma = sch.posterior_variance[t].sqrt()
                ref = sampling.ddpm_step(x_t, eps, t, sch, noise=z)
                mean = (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()
                noise_term = sigma * z
                p = t - 1  # the tables one step off (wrapping at t = 0, as Python does)
                mean_p = (x_t - sch.betas[p] / (1 - sch.alpha_bar[p]).sqrt() * eps) / sch.alphas[
                    p
                ].sqrt()
                off_by_one = mean_p + sch.posterior_variance[p].sqrt() * z if p > 0 else mean_p
                what = f"your x_(t-1) at t = {t}"
                out = ex.call(step_fn, x_t, eps, t, sch, z)
                ex.close(
                    ex.tensor(out, shape=tuple(x_t.shape), what=what),
                    ref,
                    rtol=1e-4,
                    atol=1e-5,
                    what=what,
                    hints={
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
                        "multiplied by sqrt(α_t) instead of dividing": (
                            x_t - b / (1 - ab).sqrt() * eps
                        )
                        * a.sqrt()
                        + noise_term,
                        "added the noise term with the wrong sign": mean - noise_term
                        if t > 0
                        else None,
                        "added the ε term instead of subtracting it": (
                            x_t + b / (1 - ab).sqrt() * eps
                        )
                        / a.sqrt()
                        + noise_term,
                        "used σ_t² = β_t; this exercise uses β̃_t = schedule.posterior_variance[t]": mean
                        + b.sqrt() * z
                        if t > 0
                        else None,
                        "used the variance β̃_t as the noise scale: σ_t = sqrt(β̃_t)": mean
                        + sch.posterior_variance[t] * z
                        if t > 0
                        else None,
                        "added noise at the last step (t = 0 must return the mean)": ref
                        + b.sqrt() * z
                        if t == 0
                        else None,
                        "returned the mean without noise at t = 1: only the last step, t = 0, "
                        "adds no noise (off by one at the end of the chain)": mean
                        if t == 1
                        else None,
                        "added no noise: for t > 0 the step adds σ_t z": mean if t > 1 else None,
                        "read the tables at t − 1 (off by one: index t holds β_t, ᾱ_t of this "
                        "step)": off_by_one,
                    },
                )
    return ex.result


def check_ddim_step(step_fn, *, seed: int = 0) -> check.Result:
    """``step_fn(x_t, eps, t, t_prev, schedule) -> x_{t_prev}`` (η = 0; t_prev = −1 means ᾱ = 1)."""
    cases = _cases(seed, B=(3, 5, 2), shape=((2,), (1, 3, 2), (3, 2, 2)))
    with check.exercise("the deterministic DDIM step (Song et al., eq. 12, η = 0)") as ex:
        for case in ex.cases(cases):
            sch = _schedule(case)
            x_t = torch.randn(case.B, *case.shape, generator=case.generator(8))
            eps = torch.randn(case.B, *case.shape, generator=case.generator(9))
            if case.shown:
                pairs = [(900, 700), (300, 280), (20, -1)]
            else:  # the first step, a middle step, t_prev = 0 and the last step to t_prev = -1
                T = case.T
                mid = int(torch.randint(4, T - 1, (1,), generator=case.generator(10)))
                pairs = [(T - 1, T - 1 - max(1, T // 10)), (mid, mid // 2), (3, 0), (1, -1)]
            for t, t_prev in pairs:
                ab = sch.alpha_bar[t]
                ab_prev = sch.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
                x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
                ref = sampling.ddim_step(x_t, eps, t, t_prev, sch)
                p1 = sch.alpha_bar[t_prev + 1]
                what = f"your x_(t_prev) for t = {t}, t_prev = {t_prev}"
                out = ex.call(step_fn, x_t, eps, t, t_prev, sch)
                ex.close(
                    ex.tensor(out, shape=tuple(x_t.shape), what=what),
                    ref,
                    rtol=1e-4,
                    atol=1e-5,
                    what=what,
                    hints={
                        "scaled ε by sqrt(1 − ᾱ_t) instead of sqrt(1 − ᾱ_prev)": ab_prev.sqrt() * x0
                        + (1 - ab).sqrt() * eps,
                        "forgot the square roots": ab_prev * x0 + (1 - ab_prev) * eps,
                        "treated t_prev = 0 as the end of the chain: ᾱ = 1 only for t_prev = −1, "
                        "t_prev = 0 uses alpha_bar[0]": x0 if t_prev == 0 else None,
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
                        "used alpha_bar[t_prev + 1] (off by one)": p1.sqrt() * x0
                        + (1 - p1).sqrt() * eps
                        if t_prev + 1 != t
                        else None,
                        "forgot the square root of ᾱ_t when predicting x_0": ab_prev.sqrt()
                        * (x_t - (1 - ab).sqrt() * eps)
                        / ab
                        + (1 - ab_prev).sqrt() * eps,
                        "predicted x_0 with a + sqrt(1 − ᾱ_t) ε (the noise is subtracted)": ab_prev.sqrt()
                        * (x_t + (1 - ab).sqrt() * eps)
                        / ab.sqrt()
                        + (1 - ab_prev).sqrt() * eps,
                    },
                )
    return ex.result


def check_guidance(guidance_fn, *, seed: int = 0) -> check.Result:
    """``guidance_fn(eps_uncond, eps_cond, scale) -> eps``: ε_u + s (ε_c − ε_u)."""
    cases = check.sizes(seed, B=(4, 2, range(2, 10)), D=(3, 5, range(2, 8)))
    with check.exercise("classifier-free guidance: ε_u + s (ε_c − ε_u)") as ex:
        for case in ex.cases(cases):
            eps_u = torch.randn(case.B, case.D, generator=case.generator(10))
            eps_c = torch.randn(case.B, case.D, generator=case.generator(11))
            if case.shown:
                scales = (3.0, 0.0, 1.0)
            else:
                s = 1.5 + 6 * float(torch.rand((), generator=case.generator(12)))
                scales = (round(s, 2), 0.0, 1.0)
            for s in scales:
                what = f"your ε at scale s = {s}"
                out = ex.call(guidance_fn, eps_u, eps_c, s)
                ex.close(
                    ex.tensor(out, shape=tuple(eps_u.shape), what=what),
                    eps_u + s * (eps_c - eps_u),
                    what=what,
                    hints={
                        "used Ho & Salimans' w (ε_c + w (ε_c − ε_u)); here s = w + 1, s = 1 is "
                        "conditional": eps_c + s * (eps_c - eps_u),
                        "swapped the conditional and unconditional predictions": eps_c
                        + s * (eps_u - eps_c),
                        "added s · ε_c without subtracting ε_u": eps_u + s * eps_c,
                        "returned only the guidance direction s (ε_c − ε_u): add it to ε_u": s
                        * (eps_c - eps_u),
                        "divided by 1 + s: guidance extrapolates, it does not average": (
                            eps_u + s * eps_c
                        )
                        / (1 + s),
                        "subtracted the guidance direction: ε_u + s (ε_c − ε_u) moves towards ε_c": eps_u
                        - s * (eps_c - eps_u)
                        if s != 0.0
                        else None,
                    },
                )
    return ex.result


def _masks(case: check.Case, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Three known-pixel patterns (1 = known): the left half, a centre square, random pixels."""
    B, C, H, W = shape
    left = torch.zeros(shape)
    left[..., : W // 2] = 1.0
    square = torch.ones(shape)
    square[..., H // 4 : H - H // 4, W // 4 : W - W // 4] = 0.0
    scattered = (torch.rand(shape, generator=case.generator(20)) < 0.5).float()
    return {"left half known": left, "centre unknown": square, "random pixels known": scattered}


def check_replace_known(replace_fn, *, seed: int = 0) -> check.Result:
    """``replace_fn(x, x_known, mask, t, alpha_bar, eps) -> x``: after the reverse step at index t,
    the known pixels (mask = 1) become sqrt(ᾱ_{t−1}) x_known + sqrt(1 − ᾱ_{t−1}) ε, and x_known
    itself at t = 0; the others keep the sampler's x."""
    cases = check.sizes(
        seed,
        B=(3, 2, range(2, 7)),
        C=(1, 2, range(1, 4)),
        H=(6, 5, range(4, 9)),
        W=(8, 7, range(4, 10)),
        T=(1000, 50, [20, 50, 100, 200, 300, 500, 1000]),
    )
    with check.exercise("replacement inpainting: put the known pixels back at level t − 1") as ex:
        for case in ex.cases(cases):
            sch = _schedule(case)
            ab = sch.alpha_bar
            shape = (case.B, case.C, case.H, case.W)
            x = torch.randn(shape, generator=case.generator(21))
            x_known = torch.rand(shape, generator=case.generator(22)) * 2 - 1
            eps = torch.randn(shape, generator=case.generator(23))
            times = [999, 500, 1, 0] if case.shown else _times(case, [], 4)
            for pattern, mask in _masks(case, shape).items():
                for t in times:
                    a = ab[t - 1] if t > 0 else torch.tensor(1.0)
                    known = a.sqrt() * x_known + (1 - a).sqrt() * eps
                    keep = (1 - mask) * x
                    a_t = ab[t]
                    noised_t = a_t.sqrt() * x_known + (1 - a_t).sqrt() * eps
                    a_wrap = ab[t - 1]  # alpha_bar[-1] at t = 0
                    what = f"your x at t = {t} ({pattern})"
                    out = ex.call(replace_fn, x, x_known, mask, t, ab, eps)
                    ex.close(
                        ex.tensor(out, shape=shape, what=what),
                        mask * known + keep,
                        what=what,
                        hints={
                            "inverted the mask: it is 1 where the pixel is known": (1 - mask)
                            * known
                            + mask * x,
                            "noised the known pixels to level t (off by one: the step at t has "
                            "produced x_(t−1), use alpha_bar[t − 1])": mask * noised_t + keep
                            if t > 0
                            else None,
                            "noised the known pixels at t = 0 with alpha_bar[0]: after the last "
                            "step they are the clean image x_known": mask * noised_t + keep
                            if t == 0
                            else None,
                            "used alpha_bar[t − 1] at t = 0, which wraps to alpha_bar[−1] (pure "
                            "noise): after the last step the known pixels are x_known itself": mask
                            * (a_wrap.sqrt() * x_known + (1 - a_wrap).sqrt() * eps)
                            + keep
                            if t == 0
                            else None,
                            "put back the clean x_known: before the last step the known pixels "
                            "must be noised like the rest, sqrt(ᾱ) x_known + sqrt(1 − ᾱ) ε": mask
                            * x_known
                            + keep
                            if t > 0
                            else None,
                            "forgot the noise term sqrt(1 − ᾱ_(t−1)) ε": mask * (a.sqrt() * x_known)
                            + keep
                            if t > 0
                            else None,
                            "forgot the square roots (used ᾱ and 1 − ᾱ as the scales)": mask
                            * (a * x_known + (1 - a) * eps)
                            + keep
                            if t > 0
                            else None,
                            "forgot the square root on the noise scale": mask
                            * (a.sqrt() * x_known + (1 - a) * eps)
                            + keep
                            if t > 0
                            else None,
                            "dropped the unknown pixels: they keep the sampler's x, "
                            "(1 − mask) · x": mask * known,
                            "replaced every pixel by the noised x_known: only mask = 1 is known": known,
                        },
                    )
    return ex.result
