"""ODE, SDE and Langevin solvers over plain callables and explicit time grids.

A solver knows nothing about the model: it takes the right-hand side as a function and the
times to visit as a grid, so swapping Euler for Heun, or a uniform grid for a diffusion grid,
touches no model code::

    x1 = solvers.heun(velocity, noise, solvers.uniform_grid(0.0, 1.0, 51))   # flow matching
    log_p = solvers.ode_log_prob(velocity, x1, solvers.uniform_grid(1.0, 0.0, 51),
                                 base_log_prob=standard_normal_log_prob)

Conventions:

- ``f(x, t)`` receives ``t`` as a Tensor of shape ``(B,)`` (one time per example, all equal)
  on ``x.device`` with ``x``'s floating dtype, ``B = x.shape[0]``.
- ``ts`` is any strictly monotone grid of at least two times: the solver starts at ``ts[0]``
  and steps to ``ts[1], ts[2], ...``. A decreasing grid integrates backwards in time (the step
  ``h = ts[i+1] - ts[i]`` is negative). Non-uniform grids are the point: diffusion samplers
  need small steps near the data and large ones near the noise.
- ``record=True`` returns a :class:`Trajectory` with the state at every grid time; otherwise
  the final state alone.
- The ODE solvers run in the caller's grad mode: wrap a sampling call in ``torch.no_grad()``,
  or leave gradients on to backpropagate through the solve. ``langevin`` always runs without
  a graph (its samples are not differentiated) but computes ``-grad E`` with autograd inside.
- Noise comes only from ``generator`` (drawn where it lives, moved to ``x.device``);
  ``generator=None`` draws from torch's global RNG on ``x.device``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from coursekit import utils
from coursekit.errors import CourseError

Field = Callable[[Tensor, Tensor], Tensor]  # f(x, t) with t of shape (B,)


class GridError(CourseError, ValueError):
    """A time grid that a solver cannot step along."""


@dataclass
class Trajectory:
    """The states a solver visited: ``xs`` (K, *x.shape) at the times ``ts`` (K,).

    ``xs[0]`` is the initial state, ``xs[-1]`` (also ``.x``) the final one. For ``langevin``
    the ``ts`` are the iteration numbers 0..num_steps.
    """

    xs: Tensor
    ts: Tensor

    @property
    def x(self) -> Tensor:
        """The final state."""
        return self.xs[-1]


# ----------------------------------------------------------------------------- time grids


def uniform_grid(t0: float, t1: float, n: int) -> Tensor:
    """``n`` equally spaced times from ``t0`` to ``t1`` (both included; float64, (n,)).

    ``t0 > t1`` gives a decreasing grid (integrating backwards). ``n`` points are ``n - 1`` steps.
    """
    if n < 2:
        raise GridError(f"A grid needs at least 2 points (1 step), got n = {n}.")
    return torch.linspace(t0, t1, n, dtype=torch.float64)


def karras_grid(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022, eq. 5) noise levels, ``sigma_max`` down to ``sigma_min`` (float64, (n,)).

    sigma_i = (sigma_max^(1/rho) + i / (n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho:
    uniform in sigma^(1/rho), so the steps shrink towards the data. rho = 7 is their choice;
    rho -> infinity tends to ``log_snr_grid`` (geometric in sigma).
    """
    if n < 2:
        raise GridError(f"A grid needs at least 2 points (1 step), got n = {n}.")
    if not 0 < sigma_min < sigma_max:
        raise GridError(f"Need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def log_snr_grid(sigma_max: float, sigma_min: float, n: int) -> Tensor:
    """``n`` noise levels from ``sigma_max`` down to ``sigma_min``, uniform in log SNR (float64).

    For a VP schedule in DDIM's variables, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) and
    SNR_t = alpha_bar_t / (1 - alpha_bar_t) = 1 / sigma_t^2, so equal steps in log SNR are a
    geometric grid in sigma. Unlike a grid uniform in the schedule's t, it spends as many steps
    on each decade of noise whatever the schedule (linear or cosine), which is what makes one
    default accurate for both (``tests/test_diffusion.py`` measures it on Gaussian data).
    """
    if n < 2:
        raise GridError(f"A grid needs at least 2 points (1 step), got n = {n}.")
    if not 0 < sigma_min < sigma_max:
        raise GridError(f"Need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}.")
    log_sigma = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    return log_sigma.exp()


def check_grid(ts: Tensor | Sequence[float]) -> list[float]:
    """The grid as a list of floats, after checking it is 1-D, finite and strictly monotone."""
    grid = torch.as_tensor(ts, dtype=torch.float64).detach().cpu()
    if grid.ndim != 1 or len(grid) < 2:
        raise GridError(
            f"ts must be a 1-D grid of at least 2 times (one step), got shape {tuple(grid.shape)}; "
            "build one with solvers.uniform_grid(t0, t1, n)."
        )
    if not torch.isfinite(grid).all():
        raise GridError("ts contains inf or NaN; every grid time must be finite.")
    steps = grid[1:] - grid[:-1]
    if not ((steps > 0).all() or (steps < 0).all()):
        raise GridError(
            "ts must be strictly increasing or strictly decreasing (no repeated times, no "
            f"change of direction), got {grid.tolist()[:8]}{' ...' if len(grid) > 8 else ''}."
        )
    return grid.tolist()


def _time(t: float, x: Tensor) -> Tensor:
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    return torch.full((x.shape[0],), t, device=x.device, dtype=dtype)  # (B,)


def _result(xs: list[Tensor] | None, x: Tensor, ts: list[float]) -> Tensor | Trajectory:
    if xs is None:
        return x
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    return Trajectory(xs=torch.stack(xs), ts=torch.tensor(ts, dtype=dtype, device=x.device))


# ----------------------------------------------------------------------------- ODE solvers


def euler(f: Field, x: Tensor, ts, *, record: bool = False) -> Tensor | Trajectory:
    """Solve dx/dt = f(x, t) along ``ts`` with Euler's method: x_{i+1} = x_i + h f(x_i, t_i).

    Global error O(h), one evaluation of ``f`` per step. x: (B, ...) the state at ``ts[0]``;
    returns the state at ``ts[-1]`` (or the :class:`Trajectory` with ``record=True``).
    """
    ts = check_grid(ts)
    xs = [x] if record else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        x = x + h * f(x, _time(t, x))
        if record:
            xs.append(x)
    return _result(xs, x, ts)


def heun(f: Field, x: Tensor, ts, *, record: bool = False) -> Tensor | Trajectory:
    """Solve dx/dt = f(x, t) along ``ts`` with Heun's method (explicit trapezoidal rule).

    An Euler predictor x' = x_i + h f(x_i, t_i), then the corrector
    x_{i+1} = x_i + h/2 (f(x_i, t_i) + f(x', t_{i+1})); global error O(h^2), two evaluations
    of ``f`` per step (compare it with Euler at twice the steps).
    """
    ts = check_grid(ts)
    xs = [x] if record else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        d = f(x, _time(t, x))
        d_next = f(x + h * d, _time(t_next, x))
        x = x + 0.5 * h * (d + d_next)
        if record:
            xs.append(x)
    return _result(xs, x, ts)


def midpoint(f: Field, x: Tensor, ts, *, record: bool = False) -> Tensor | Trajectory:
    """Solve dx/dt = f(x, t) along ``ts`` with the explicit midpoint method.

    x_{i+1} = x_i + h f(x_i + h/2 f(x_i, t_i), t_i + h/2); global error O(h^2), two
    evaluations per step.
    """
    ts = check_grid(ts)
    xs = [x] if record else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        x_half = x + 0.5 * h * f(x, _time(t, x))
        x = x + h * f(x_half, _time(t + 0.5 * h, x))
        if record:
            xs.append(x)
    return _result(xs, x, ts)


def rk4(f: Field, x: Tensor, ts, *, record: bool = False) -> Tensor | Trajectory:
    """Solve dx/dt = f(x, t) along ``ts`` with the classical 4th-order Runge-Kutta method.

    k1 = f(x, t), k2 = f(x + h/2 k1, t + h/2), k3 = f(x + h/2 k2, t + h/2), k4 = f(x + h k3, t + h),
    x_{i+1} = x_i + h/6 (k1 + 2 k2 + 2 k3 + k4); global error O(h^4), four evaluations per step.
    """
    ts = check_grid(ts)
    xs = [x] if record else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        k1 = f(x, _time(t, x))
        k2 = f(x + 0.5 * h * k1, _time(t + 0.5 * h, x))
        k3 = f(x + 0.5 * h * k2, _time(t + 0.5 * h, x))
        k4 = f(x + h * k3, _time(t_next, x))
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if record:
            xs.append(x)
    return _result(xs, x, ts)


ODE_SOLVERS = {"euler": euler, "heun": heun, "midpoint": midpoint, "rk4": rk4}


# ----------------------------------------------------------------------------- SDE and MCMC


@torch.no_grad()
def euler_maruyama(
    drift: Field,
    diffusion: Callable[[Tensor, Tensor], Tensor | float],
    x: Tensor,
    ts,
    *,
    generator: torch.Generator | None = None,
    record: bool = False,
) -> Tensor | Trajectory:
    """Solve the Itô SDE dx = f(x, t) dt + g(x, t) dW along ``ts`` (Euler-Maruyama).

    x_{i+1} = x_i + f(x_i, t_i) h + g(x_i, t_i) sqrt(|h|) z_i, z_i ~ N(0, I) from ``generator``.
    ``diffusion`` (g) returns a float or a Tensor broadcastable to ``x`` (e.g. (B, 1)). Strong
    order 1/2, weak order 1. A reverse-time SDE (Anderson, 1982; Song et al., 2021, eq. 6) is
    integrated by passing its reverse drift f - g^2 score and a decreasing grid.
    """
    ts = check_grid(ts)
    xs = [x] if record else None
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        t_b = _time(t, x)
        z = utils.randn(x.shape, x, generator)
        x = x + drift(x, t_b) * h + diffusion(x, t_b) * math.sqrt(abs(h)) * z
        if record:
            xs.append(x)
    return _result(xs, x, ts)


def _minus_grad_energy(energy: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    # the score of p ∝ exp(-E) is -grad E; autograd needs a graph even under an outer no_grad
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return -grad


@torch.no_grad()
def langevin(
    x: Tensor,
    *,
    score: Callable[[Tensor], Tensor] | None = None,
    energy: Callable[[Tensor], Tensor] | None = None,
    step_size: float,
    num_steps: int,
    generator: torch.Generator | None = None,
    record: bool = False,
) -> Tensor | Trajectory:
    """Unadjusted Langevin algorithm (ULA) towards p, given its ``score`` or its ``energy``.

    x_{k+1} = x_k + eps s(x_k) + sqrt(2 eps) z_k, z_k ~ N(0, I), with eps = ``step_size`` and
    s = grad log p (Roberts & Tweedie, 1996; Song & Ermon, 2019 write the same update with
    eps/2 in place of eps). Pass exactly one of ``score(x) -> (B, ...)`` or
    ``energy(x) -> (B,)`` with p ∝ exp(-E) (an EBM): its score -grad E is taken by autograd,
    which works under an outer ``torch.no_grad()``. No Metropolis correction, so the chain's
    law is biased by O(eps): for N(m, s^2) it is N(m, s^2 / (1 - eps / (2 s^2))).
    """
    if (score is None) == (energy is None):
        raise ValueError("Pass exactly one of score= or energy= to langevin.")
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}.")
    if num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}.")
    grad_log_p = score if score is not None else lambda x_: _minus_grad_energy(energy, x_)
    noise_scale = math.sqrt(2.0 * step_size)
    xs = [x] if record else None
    for _ in range(num_steps):
        z = utils.randn(x.shape, x, generator)
        x = x + step_size * grad_log_p(x) + noise_scale * z
        if record:
            xs.append(x)
    return _result(xs, x, [float(k) for k in range(num_steps + 1)])


def mala(
    x: Tensor,
    *,
    energy: Callable[[Tensor], Tensor],
    step_size: float,
    num_steps: int,
    generator: torch.Generator | None = None,
    record: bool = False,
) -> tuple[Tensor | Trajectory, float]:
    """Metropolis-adjusted Langevin (MALA) towards p ∝ exp(-E): ``(samples, acceptance rate)``.

    Proposes the :func:`langevin` step x' = x - eps grad E(x) + sqrt(2 eps) z, then accepts it
    with probability min(1, p(x') q(x | x') / (p(x) q(x' | x))), q(x' | x) = N(x'; x - eps grad
    E(x), 2 eps I). The correction removes ULA's O(eps) bias: p is exactly stationary, at the
    price of rejected moves (the acceptance rate falls as eps grows). ``energy(x) -> (B,)``;
    each example is its own chain, accepted or rejected on its own.
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}.")
    if num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}.")

    def energy_and_grad(x_: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x_ = x_.detach().requires_grad_(True)
            e = energy(x_)
            (g,) = torch.autograd.grad(e.sum(), x_)
        return e.detach(), g

    def log_q(to: Tensor, frm: Tensor, grad_frm: Tensor) -> Tensor:  # up to a constant, (B,)
        diff = to - (frm - step_size * grad_frm)
        return -(diff**2).flatten(1).sum(1) / (4.0 * step_size)

    noise_scale = math.sqrt(2.0 * step_size)
    xs = [x] if record else None
    e, g = energy_and_grad(x)
    accepted = 0.0
    with torch.no_grad():
        for _ in range(num_steps):
            z = utils.randn(x.shape, x, generator)
            prop = x - step_size * g + noise_scale * z
            e_p, g_p = energy_and_grad(prop)
            log_alpha = (-e_p + e) + log_q(x, prop, g_p) - log_q(prop, x, g)
            u = utils.rand((x.shape[0],), x, generator)
            accept = torch.log(u) < log_alpha  # (B,)
            mask = accept.view(-1, *([1] * (x.dim() - 1)))
            x = torch.where(mask, prop, x)
            e = torch.where(accept, e_p, e)
            g = torch.where(mask, g_p, g)
            accepted += float(accept.float().mean())
            if record:
                xs.append(x)
    return _result(xs, x, [float(k) for k in range(num_steps + 1)]), accepted / num_steps


# ----------------------------------------------------------------------------- likelihoods


def _divergence(
    f: Field, x: Tensor, t: Tensor, probes: Tensor | None, keep_graph: bool
) -> tuple[Tensor, Tensor]:
    """f(x, t) and its divergence tr(df/dx) (B,): exact (``probes=None``) or Hutchinson."""
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        fx = f(x_in, t)
        flat = fx.flatten(1)  # (B, D)

        def vjp(v: Tensor) -> Tensor:  # v^T df/dx, (B, D); zero where f ignores x
            if not flat.requires_grad:
                return torch.zeros_like(flat)
            (g,) = torch.autograd.grad(
                (flat * v).sum(),
                x_in,
                create_graph=keep_graph,
                retain_graph=True,
                allow_unused=True,
            )
            return torch.zeros_like(flat) if g is None else g.flatten(1)

        if probes is None:
            # one backward pass per dimension: row i of the Jacobian, keep its diagonal entry
            eye = torch.eye(flat.shape[1], dtype=flat.dtype, device=flat.device)  # (D, D)
            div = sum(vjp(e.expand_as(flat))[:, i] for i, e in enumerate(eye))
        else:
            # E_v[v^T (df/dx) v] = tr(df/dx) for E[v v^T] = I (Hutchinson, 1989)
            div = sum((vjp(v) * v).sum(1) for v in probes) / len(probes)  # v: (B, D)
    if not keep_graph:
        fx, div = fx.detach(), div.detach()
    return fx, div


def ode_log_prob(
    f: Field,
    x: Tensor,
    ts,
    *,
    base_log_prob: Callable[[Tensor], Tensor],
    method: str = "rk4",
    trace: str = "exact",
    probe: str = "rademacher",
    num_probes: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p(x) (B,) in nats for the density carried by dx/dt = f(x, t) (continuous flows).

    ``x`` is a point at time ``ts[0]`` (e.g. data); ``base_log_prob`` is the log-density at
    time ``ts[-1]`` (e.g. the Gaussian noise), evaluated at the end of the solve. Along a
    solution, d log p_t(x_t)/dt = -tr(df/dx) (the instantaneous change of variables; Chen et
    al., 2018, thm. 1), so

        log p_{ts[0]}(x) = base_log_prob(x(ts[-1])) + ∫_{ts[0]}^{ts[-1]} tr(df/dx)(x_t, t) dt,

    a signed integral: the formula holds for increasing and decreasing grids alike. For flow
    matching (Lipman et al.: t = 0 noise, t = 1 data) pass a grid from 1 down to 0; for a
    diffusion's probability-flow ODE, one from the data's end to the noise's.

    The augmented state (x, ∫ tr) is stepped by ``method`` (``"euler"``, ``"heun"``,
    ``"midpoint"``, ``"rk4"``). ``trace="exact"`` takes D backward passes per evaluation (small
    D); ``"hutchinson"`` estimates it with ``num_probes`` ``probe`` vectors (``"rademacher"`` or
    ``"gaussian"``, drawn once per solve from ``generator``, as in FFJORD): one pass each,
    unbiased. With gradients enabled the result is differentiable in f's parameters (training a
    continuous flow); under ``torch.no_grad()`` it is computed without a graph.
    """
    if method not in ODE_SOLVERS:
        raise ValueError(f"method must be one of {sorted(ODE_SOLVERS)}, got {method!r}.")
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}.")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}.")
    keep_graph = torch.is_grad_enabled()
    B, shape = x.shape[0], x.shape[1:]
    D = math.prod(shape)
    probes = None
    if trace == "hutchinson":
        if num_probes < 1:
            raise ValueError(f"num_probes must be a positive integer, got {num_probes}.")
        if probe == "gaussian":
            probes = utils.randn((num_probes, B, D), x, generator)
        else:  # ±1 with probability 1/2: the lowest-variance choice (Hutchinson, 1989)
            probes = (2 * utils.randint(0, 2, (num_probes, B, D), x, generator) - 1).to(x.dtype)

    def augmented(state: Tensor, t: Tensor) -> Tensor:
        x_t = state[:, :D].reshape(B, *shape)  # (B, ...)
        fx, div = _divergence(f, x_t, t, probes, keep_graph)
        return torch.cat([fx.flatten(1), div[:, None].to(state.dtype)], 1)  # (B, D + 1)

    state = torch.cat([x.flatten(1), x.new_zeros(B, 1)], 1)  # (B, D + 1): x and ∫ tr = 0
    state = ODE_SOLVERS[method](augmented, state, ts)
    x_end, integral = state[:, :D].reshape(B, *shape), state[:, D]
    return base_log_prob(x_end) + integral
