"""Samplers for discrete-time diffusion, as plain functions over an ε-predictor.

Convention (Ho et al., 2020): ``x_0`` is data, large ``t`` is noise, ``t = 0, ..., T-1`` indexes
the schedule (see ``schedules.py``). Every sampler takes

    eps_fn(x_t: Tensor (B, ...), t: Tensor (B,) int64) -> Tensor (B, ...)

so a trained ``Diffusion``, an analytic score, or a guided mixture of two predictions all plug in
the same way, and a student can swap DDPM for DDIM without touching a model.

- ``ddpm_step``: ancestral sampling, x_{t-1} ~ q(x_{t-1} | x_t, x_0 = x0_hat) (Ho et al., Alg. 2).
- ``ddim_step``: DDIM (Song, Meng & Ermon, 2021, eq. 12); ``eta = 0`` is deterministic,
  ``eta = 1`` with consecutive steps is DDPM again.
- ``probability_flow_sample``: the probability-flow ODE (Song et al., 2021) in DDIM's variables,
  solved by ``coursekit.solvers`` (Euler = DDIM, or Heun) on ``ode_timesteps``, a grid uniform
  in log SNR that is accurate for the linear and the cosine schedule alike;
  ``probability_flow_encode`` runs it backwards (DDIM inversion, data to noise) and
  ``probability_flow_log_prob`` gives the density of its samples (an ODE estimate).

The conversions between ε, x̂₀, v and the score live on ``coursekit.paths.VPPath``.
- ``guided``: classifier-free guidance (Ho & Salimans, 2022),
  ε = ε_uncond + s (ε_cond − ε_uncond): s = 0 is unconditional, s = 1 conditional, s > 1 guided.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from coursekit import solvers, utils
from coursekit.diffusion.schedules import NoiseSchedule
from coursekit.paths import VPPath

EpsFn = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, Tensor, Tensor], None]


def _bcast(a: Tensor, x: Tensor) -> Tensor:
    """A scalar table entry as float32 on x's device, ready to multiply x."""
    return a.to(device=x.device, dtype=x.dtype)


@torch.no_grad()
def ddpm_step(
    x_t: Tensor,
    eps: Tensor,
    t: int,
    schedule: NoiseSchedule,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """One ancestral step x_t -> x_{t-1} with variance β̃_t (Ho et al., Alg. 2, eq. 6-7).

    Without ``clip`` this is exactly Ho et al.'s line 4,
    x_{t-1} = (x_t − β_t / sqrt(1 − ᾱ_t) ε) / sqrt(α_t) + sqrt(β̃_t) z;
    it is computed as the posterior mean given x0_hat so that x0_hat can be clipped to the data
    range ``clip`` first (a cheap, standard fix for the first, noisiest steps).
    ``noise`` (shaped like x_t) replaces z for exact tests. At t = 0 no noise is added.
    """
    x0 = VPPath(schedule).eps_to_x0(x_t, t, eps)  # x0_hat, inverting eq. 4 for this ε
    if clip is not None:
        x0 = x0.clamp(*clip)
    mean = (
        _bcast(schedule.posterior_mean_coef_x0[t], x_t) * x0
        + _bcast(schedule.posterior_mean_coef_xt[t], x_t) * x_t
    )
    if t == 0:
        return mean
    z = noise if noise is not None else utils.randn(x_t.shape, x_t, generator)
    return mean + _bcast(schedule.posterior_variance[t], x_t).sqrt() * z


def ddim_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """``num_steps`` evenly spaced times from T-1 down to 0 (both included), descending."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be in 1..{num_train_steps}, got {num_steps}.")
    if num_steps == 1:
        return [num_train_steps - 1]
    ts = torch.linspace(num_train_steps - 1, 0, num_steps).round().long()
    return ts.tolist()


@torch.no_grad()
def ddim_step(
    x_t: Tensor,
    eps: Tensor,
    t: int,
    t_prev: int,
    schedule: NoiseSchedule,
    *,
    eta: float = 0.0,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} (Song et al., 2021, eq. 12); ``t_prev = -1`` means x_0.

    x_prev = sqrt(ᾱ_prev) x0_hat + sqrt(1 − ᾱ_prev − σ²) ε + σ z, with
    σ = η sqrt((1 − ᾱ_prev) / (1 − ᾱ_t)) sqrt(1 − ᾱ_t / ᾱ_prev) (eq. 16).
    With ``eta = 0`` no noise is drawn: the step is a deterministic map.
    """
    a_t = _bcast(schedule.alpha_bar[t], x_t)
    a_prev = _bcast(schedule.alpha_bar[t_prev], x_t) if t_prev >= 0 else torch.ones_like(a_t)
    path = VPPath(schedule)
    x0 = path.eps_to_x0(x_t, t, eps)
    if clip is not None:
        x0 = x0.clamp(*clip)
        # keep x_t = sqrt(a) x0 + sqrt(1 - a) eps true for the clipped x0
        eps = path.x0_to_eps(x_t, t, x0)
    sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
    x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        z = noise if noise is not None else utils.randn(x_t.shape, x_t, generator)
        x_prev = x_prev + sigma * z
    return x_prev


def _time(t: int, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


@torch.no_grad()
def ddpm_sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: Tensor,
    *,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    on_step: StepCallback | None = None,
) -> Tensor:
    """Ancestral sampling from x_T through all T steps; returns x_0 (same shape as x_T).

    ``on_step(t, x_t, eps)`` is called before each step (for plotting trajectories).
    """
    x = x_T
    for t in reversed(range(schedule.num_steps)):
        eps = eps_fn(x, _time(t, x))
        if on_step is not None:
            on_step(t, x, eps)
        x = ddpm_step(x, eps, t, schedule, generator=generator, clip=clip)
    return x


@torch.no_grad()
def ddim_sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: Tensor,
    *,
    num_steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    on_step: StepCallback | None = None,
) -> Tensor:
    """DDIM sampling from x_T with ``num_steps`` network calls; returns x_0."""
    ts = ddim_timesteps(schedule.num_steps, num_steps)
    x = x_T
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = eps_fn(x, _time(t, x))
        if on_step is not None:
            on_step(t, x, eps)
        x = ddim_step(x, eps, t, t_prev, schedule, eta=eta, generator=generator, clip=clip)
    return x


def ode_timesteps(schedule: NoiseSchedule, num_steps: int, *, sigma_max: float = 80.0) -> list[int]:
    """The default grid of the probability-flow ODE: at most ``num_steps`` integer times, descending.

    The noise levels σ_t = sqrt((1 − ᾱ_t) / ᾱ_t) of DDIM's variables are spaced uniformly in
    log SNR (``solvers.log_snr_grid``) from min(σ_max, σ_{T-1}) down to σ_0, then snapped to
    the nearest times of the schedule (repeats dropped), so that every step evaluates the
    network at a noise level it was trained on. The cap σ_max = 80 is Karras et al.'s (2022):
    the cosine schedule reaches σ ≈ 2e4 at t = T-1, and a grid uniform in t spends its first
    steps on noise levels where nothing happens, then takes huge steps near the data.
    """
    if not 1 <= num_steps <= schedule.num_steps:
        raise ValueError(f"num_steps must be in 1..{schedule.num_steps}, got {num_steps}.")
    path = VPPath(schedule)
    sig = path.sigma_ode(torch.arange(schedule.num_steps)).double()  # (T,) increasing
    top = min(sigma_max, float(sig[-1]))
    if num_steps == 1 or top <= float(sig[0]):
        return [int(path.t_from_sigma_ode(torch.tensor([top])))]
    grid = solvers.log_snr_grid(top, float(sig[0]), num_steps)  # (num_steps,) descending
    ts = path.t_from_sigma_ode(grid).tolist()
    return list(dict.fromkeys(ts))  # drop repeats, keep the order


@torch.no_grad()
def probability_flow_sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: Tensor,
    *,
    num_steps: int = 25,
    method: str = "heun",
    timesteps: list[int] | None = None,
) -> Tensor:
    """Integrate the probability-flow ODE from x_T to x_0; returns x_0 (same shape as x_T).

    In the variables x̄ = x_t / sqrt(ᾱ_t) and σ = sqrt((1 − ᾱ_t) / ᾱ_t) the ODE is
    dx̄/dσ = ε(x_t, t) (Song, Meng & Ermon, 2021, eq. 14): the solver's time is σ, decreasing
    towards the data. It visits the noise levels of ``timesteps`` (descending integer times;
    default ``ode_timesteps(schedule, num_steps)``) with ``solvers.euler`` (which is DDIM
    exactly) or ``solvers.heun`` (2nd order, Karras et al., 2022, Alg. 1: 2K − 1 network calls
    for K times). The last step, to σ = 0 where ε is undefined, is an Euler step: it lands on
    x̂₀. x_T is taken as the state at ``timesteps[0]``.
    """
    _check_method(method)
    path, sigmas = _ode_sigmas(schedule, num_steps, timesteps)
    slope = _slope(eps_fn, path)
    x_bar = x_T * math.sqrt(1 + sigmas[0] ** 2)
    if len(sigmas) > 1:
        solve = solvers.heun if method == "heun" else solvers.euler
        x_bar = solve(slope, x_bar, sigmas)
    return solvers.euler(slope, x_bar, [sigmas[-1], 0.0])  # at σ = 0, x̄ = x_0


@torch.no_grad()
def probability_flow_encode(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_0: Tensor,
    *,
    num_steps: int = 25,
    method: str = "heun",
    timesteps: list[int] | None = None,
) -> Tensor:
    """The probability-flow ODE run forwards, data to noise (DDIM inversion); returns x_T.

    The inverse of ``probability_flow_sample`` up to the solver's error: the same noise levels
    in reverse, from σ = 0 (the data) up to ``timesteps[0]``, so ``probability_flow_sample(...,
    probability_flow_encode(..., x_0))`` is close to ``x_0`` and the code x_T is a
    deterministic function of the image (Song et al., 2021, sec. 4.3).
    """
    _check_method(method)
    path, sigmas = _ode_sigmas(schedule, num_steps, timesteps)
    grid = [0.0, *reversed(sigmas)]  # increasing: data to noise
    solve = solvers.heun if method == "heun" else solvers.euler
    x_bar = solve(_slope(eps_fn, path), x_0, grid)
    return x_bar / math.sqrt(1 + sigmas[0] ** 2)


def probability_flow_log_prob(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_0: Tensor,
    *,
    num_steps: int = 100,
    method: str = "heun",
    trace: str = "hutchinson",
    num_probes: int = 1,
    timesteps: list[int] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p(x_0) (B,) in nats under the probability-flow ODE: an ODE estimate, in model space.

    The density of the samples of ``probability_flow_sample``: x_T ~ N(0, I) is
    x̄ = x_T sqrt(1 + σ_max²) at the top noise level, so x̄ there is N(0, (1 + σ_max²) I), and
    the instantaneous change of variables (``solvers.ode_log_prob``) carries that density down
    the same noise levels in reverse to σ = 0, where x̄ = x_0. Heun's steps on the levels of
    ``ode_timesteps`` are accurate for samples with 25 levels but coarse for the divergence
    integral: for Gaussian data with the exact ε the error was 0.1 nats per dimension at 25
    levels, 0.024 at 50 and 0.0014 at 200 (tests/test_diffusion.py), hence the default of 100.
    ``trace="hutchinson"`` costs one backward pass per probe and network call; ``"exact"`` one
    per dimension. The model was trained by denoising, never on this number.
    """
    _check_method(method)
    path, sigmas = _ode_sigmas(schedule, num_steps, timesteps)
    var = 1 + sigmas[0] ** 2  # the top level's variance of x̄

    def base_log_prob(x_bar: Tensor) -> Tensor:
        d = x_bar[0].numel()
        sq = x_bar.flatten(1).pow(2).sum(1)
        return -0.5 * (sq / var + d * math.log(2 * math.pi * var))

    return solvers.ode_log_prob(
        _slope(eps_fn, path), x_0, [0.0, *reversed(sigmas)], base_log_prob=base_log_prob,
        method=method, trace=trace, num_probes=num_probes, generator=generator,
    )  # fmt: skip


def _check_method(method: str) -> None:
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}.")


def _ode_sigmas(
    schedule: NoiseSchedule, num_steps: int, timesteps: list[int] | None
) -> tuple[VPPath, list[float]]:
    """The path and the σ of the grid's noise levels, descending (first: the top level)."""
    path = VPPath(schedule)
    ts = ode_timesteps(schedule, num_steps) if timesteps is None else list(timesteps)
    return path, path.sigma_ode(torch.tensor(ts)).double().tolist()  # (K,) descending


def _slope(eps_fn: EpsFn, path: VPPath) -> Callable[[Tensor, Tensor], Tensor]:
    """dx̄/dσ = ε(x_t, t) at the grid's σ: the network sees x_t = x̄ / sqrt(1 + σ²)."""

    def slope(x_bar: Tensor, sigma: Tensor) -> Tensor:
        scale = (1 + sigma**2).sqrt().view(-1, *([1] * (x_bar.ndim - 1)))  # (B, 1, ..., 1)
        return eps_fn(x_bar / scale.to(x_bar.dtype), path.t_from_sigma_ode(sigma))

    return slope


def guided(
    eps_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    y: Tensor,
    scale: float,
) -> EpsFn:
    """Classifier-free guidance: ε = ε(x, t, None) + scale · (ε(x, t, y) − ε(x, t, None)).

    ``eps_fn(x, t, None)`` must be the unconditional prediction (the model trained with label
    dropout). scale = 0 gives the unconditional model, 1 the conditional one, > 1 pushes
    samples towards what makes ``y`` more likely (Ho & Salimans, 2022, eq. 6 with w = scale − 1).
    """

    def eps_guided(x_t: Tensor, t: Tensor) -> Tensor:
        eps_uncond = eps_fn(x_t, t, None)
        eps_cond = eps_fn(x_t, t, y)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return eps_guided
