"""Numerical solvers for ODEs, SDEs and Langevin dynamics, written over plain callables.

A sampler knows nothing about the model: it takes the right-hand side as a function,
so swapping Euler for Heun (or a learned velocity for a closed-form one) touches no
model code::

    traj = samplers.heun(lambda x, t: velocity_net(x, t), noise, t0=0.0, t1=1.0, steps=50)
    images = traj.x

Conventions:

- ``f(x, t)`` receives ``t`` as a Tensor of shape ``(B,)`` (one time per example, all
  equal) on ``x.device`` with ``x``'s floating dtype, ``B = x.shape[0]``.
- ``t0 > t1`` is allowed and integrates backwards in time: the step ``dt = (t1 - t0) / steps``
  is then negative. For SDEs the Brownian increment is ``sqrt(|dt|) z`` either way, so a
  reverse-time SDE (Anderson, 1982; Song et al., 2021, eq. 6) is integrated by passing its
  reverse drift ``f - g^2 score`` and running from ``t0 = T`` to ``t1 = 0``.
- Noise comes only from ``generator``. It is drawn on the generator's device and moved
  to ``x.device``, so the usual CPU generator also works for a CUDA ``x`` (at the cost of
  one host-to-device copy per step); pass a CUDA generator to draw on the GPU directly.
  ``generator=None`` draws from torch's global RNG on ``x.device``.
- Everything runs under ``torch.no_grad()``.

Every sampler returns a :class:`Trajectory`; ``save_every=k`` also keeps the states at
steps ``0, k, 2k, ...`` and the last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from coursekit import utils

Drift = Callable[[Tensor, Tensor], Tensor]  # f(x, t) with t of shape (B,)


@dataclass
class Trajectory:
    """The result of a sampler.

    ``x``: the final state, same shape as the initial one.
    ``ts``: (T,) the times of the saved states (for ``langevin``: the iteration numbers);
    just the final time when nothing was saved.
    ``xs``: (T, *x.shape) the saved states, ``xs[0]`` the initial state and ``xs[-1]`` the
    final one; ``None`` when ``save_every`` is ``None``.
    """

    x: Tensor
    ts: Tensor
    xs: Tensor | None = None


class _Recorder:
    """Keeps the states at steps 0, k, 2k, ... and the last step (``save_every=k``)."""

    def __init__(self, x: Tensor, t: float, steps: int, save_every: int | None):
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}.")
        if save_every is not None and save_every < 1:
            raise ValueError(f"save_every must be a positive integer or None, got {save_every}.")
        self.steps, self.save_every = steps, save_every
        self.ts: list[float] = [t]
        self.xs: list[Tensor] = [x.clone()] if save_every is not None else []

    def __call__(self, i: int, x: Tensor, t: float) -> None:
        # i counts completed steps, 1..steps
        if self.save_every is not None and (i % self.save_every == 0 or i == self.steps):
            self.ts.append(t)
            self.xs.append(x.clone())

    def result(self, x: Tensor, t_final: float) -> Trajectory:
        if self.save_every is None:
            return Trajectory(x=x, ts=torch.tensor([t_final], device=x.device), xs=None)
        ts = torch.tensor(self.ts, device=x.device)
        return Trajectory(x=x, ts=ts, xs=torch.stack(self.xs))  # xs: (T, *x.shape)


def _time(t: float, x: Tensor) -> Tensor:
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    return torch.full((x.shape[0],), t, device=x.device, dtype=dtype)  # (B,)


def _grid(t0: float, t1: float, steps: int) -> list[float]:
    # t0 + i * dt computed as a fraction of the span, so the last time is exactly t1
    return [t0 + (t1 - t0) * i / steps for i in range(steps + 1)]


@torch.no_grad()
def euler(
    f: Drift,
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    save_every: int | None = None,
) -> Trajectory:
    """Solve dx/dt = f(x, t) from ``t0`` to ``t1`` with the explicit Euler method.

    x_{i+1} = x_i + dt f(x_i, t_i); global error O(dt), one evaluation of ``f`` per step.

    x: (B, ...) the state at ``t0``. Returns the :class:`Trajectory` (``x`` at ``t1``).
    """
    rec = _Recorder(x, t0, steps, save_every)
    ts = _grid(t0, t1, steps)
    for i in range(steps):
        dt = ts[i + 1] - ts[i]
        x = x + dt * f(x, _time(ts[i], x))
        rec(i + 1, x, ts[i + 1])
    return rec.result(x, t1)


@torch.no_grad()
def heun(
    f: Drift,
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    save_every: int | None = None,
) -> Trajectory:
    """Solve dx/dt = f(x, t) with Heun's method (explicit trapezoidal rule, 2nd order).

    An Euler predictor x' = x_i + dt f(x_i, t_i), then the trapezoidal corrector
    x_{i+1} = x_i + dt/2 (f(x_i, t_i) + f(x', t_{i+1})); global error O(dt^2), two
    evaluations of ``f`` per step (so compare it with Euler at twice the steps).

    x: (B, ...) the state at ``t0``. Returns the :class:`Trajectory` (``x`` at ``t1``).
    """
    rec = _Recorder(x, t0, steps, save_every)
    ts = _grid(t0, t1, steps)
    for i in range(steps):
        dt = ts[i + 1] - ts[i]
        d = f(x, _time(ts[i], x))
        x_pred = x + dt * d
        d_next = f(x_pred, _time(ts[i + 1], x))
        x = x + 0.5 * dt * (d + d_next)
        rec(i + 1, x, ts[i + 1])
    return rec.result(x, t1)


@torch.no_grad()
def euler_maruyama(
    f: Drift,
    g: Callable[[Tensor, Tensor], Tensor | float],
    x: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> Trajectory:
    """Solve the Itô SDE dx = f(x, t) dt + g(x, t) dW with the Euler-Maruyama method.

    x_{i+1} = x_i + f(x_i, t_i) dt + g(x_i, t_i) sqrt(|dt|) z_i, z_i ~ N(0, I) from
    ``generator``. ``g`` returns a float or a Tensor broadcastable to ``x`` (e.g. (B, 1)
    for a per-example scalar diffusion coefficient). Strong order 1/2, weak order 1.

    x: (B, ...) the state at ``t0``. Returns the :class:`Trajectory` (``x`` at ``t1``).
    """
    rec = _Recorder(x, t0, steps, save_every)
    ts = _grid(t0, t1, steps)
    for i in range(steps):
        dt = ts[i + 1] - ts[i]
        t = _time(ts[i], x)
        z = utils.randn(x.shape, x, generator)
        x = x + f(x, t) * dt + g(x, t) * math.sqrt(abs(dt)) * z
        rec(i + 1, x, ts[i + 1])
    return rec.result(x, t1)


@torch.no_grad()
def langevin(
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
    save_every: int | None = None,
) -> Trajectory:
    """Unadjusted Langevin algorithm (ULA) towards the density whose score is ``score``.

    x_{k+1} = x_k + eps * score(x_k) + sqrt(2 eps) z_k, z_k ~ N(0, I), with
    ``eps = step_size`` (the convention of Roberts & Tweedie, 1996; Song & Ermon, 2019
    write the same update with eps/2 in place of eps). No Metropolis correction, so the
    chain's stationary law is biased by O(eps): for a Gaussian N(m, s^2) it is
    N(m, s^2 / (1 - eps / (2 s^2))).

    x: (B, ...) the initial state; ``score(x)`` returns grad_x log p(x), same shape.
    Returns the :class:`Trajectory`; its ``ts`` are iteration numbers 0..steps.
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}.")
    rec = _Recorder(x, 0.0, steps, save_every)
    noise_scale = math.sqrt(2.0 * step_size)
    for k in range(steps):
        z = utils.randn(x.shape, x, generator)
        x = x + step_size * score(x) + noise_scale * z
        rec(k + 1, x, float(k + 1))
    return rec.result(x, float(steps))
