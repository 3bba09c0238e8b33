"""Checks for lecture 08 (flow matching). Each prints one ✓ / ✗ line and returns a Result.

Convention, as in ``coursekit.flow_matching`` (Lipman et al., 2023): x₀ is the noise, x₁ the
data, **t = 0 is noise and t = 1 is data**; the linear path is x_t = (1 − t) x₀ + t x₁ with the
velocity x₁ − x₀, and Euler sampling runs t = 0, h, ..., 1 − h with h = 1 / num_steps.

Every check runs on cases that differ in the batch size, the data shape or dimension and (for
Euler) the number of steps, one of them a single step, so that both ends of the loop (the
first step at t = 0, the last at t = 1 − h) are tested; ``seed=0`` starts with the notebook's
inputs, another seed draws other sizes and values. The messages name the usual mistakes: the
time direction swapped, the target's sign (x₀ − x₁), a sum instead of a mean, a step skipped
or added, the velocity read at the end of a step.
"""

from __future__ import annotations

import torch

from coursekit import check, solvers

_SHAPES = [(2,), (1, 3, 3), (3, 2, 2), (5,), (2, 4, 3), (3,), (1, 4, 4), (4,)]


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (x.ndim - 1)))


def _cases(seed: int, B: tuple[int, int, int]) -> list[check.Case]:
    return check.sizes(seed, B=(*B, range(2, 10)), shape=((2,), (1, 3, 3), (3, 2, 2), _SHAPES))


def _draws(case: check.Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x₀ (noise), x₁ (data, away from 0 so no mix-up cancels) and t with both ends."""
    x0 = torch.randn(case.B, *case.shape, generator=case.generator(0))
    x1 = 2 + torch.randn(case.B, *case.shape, generator=case.generator(1))
    t = torch.rand(case.B, generator=case.generator(2))
    if case.shown:
        t = torch.linspace(0.0, 1.0, case.B)
    else:
        t[0], t[-1] = 0.0, 1.0
    return x0, x1, t


# ----------------------------------------------------------------------------- 1. the path


def reference_path_sample(x0, x1, t):
    """x_t = (1 − t) x₀ + t x₁, t (B,) broadcast over the other dimensions."""
    t = _bcast(t, x0)
    return (1 - t) * x0 + t * x1


def check_path_sample(path_fn, *, seed: int = 0) -> check.Result:
    """``path_fn(x0, x1, t) -> x_t`` on the linear path, x0 noise, x1 data, t (B,)."""
    with check.exercise("x_t on the linear path (t = 0 noise, t = 1 data)") as ex:
        for case in ex.cases(_cases(seed, B=(5, 3, 6))):
            x0, x1, t = _draws(case)
            tb = _bcast(t, x0)
            out = ex.call(path_fn, x0, x1, t, grad=(0, 1))
            ex.close(
                ex.tensor(out, shape=tuple(x0.shape), what="your x_t"),
                reference_path_sample(x0, x1, t),
                what="your x_t",
                hints={
                    "swapped the time direction: at t = 0 the path is at the noise x0, at t = 1 "
                    "at the data x1 (Lipman et al.'s convention, the reverse of lecture 06's)": (
                        tb * x0 + (1 - tb) * x1
                    ),
                    "forgot the noise: x_t = (1 − t) x0 + t x1": tb * x1,
                    "kept all of the noise: x0 is scaled by (1 − t)": x0 + tb * x1,
                    "used square roots of t and 1 − t (a variance-preserving path, not the linear "
                    "one)": (1 - tb).sqrt() * x0 + tb.sqrt() * x1,
                    "subtracted: x_t = (1 − t) x0 + t x1": (1 - tb) * x0 - tb * x1,
                },
            )
            ex.grad(out, reference_path_sample, what="your x_t")
    return ex.result


# ----------------------------------------------------------------------------- 2. the CFM loss


class _FixedNet(torch.nn.Module):
    """A deterministic stand-in for v_θ(x_t, t), nonlinear in both, with two parameters."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.6))
        self.b = torch.nn.Parameter(torch.tensor(-0.4))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.shape != (x_t.shape[0],):
            raise ValueError(
                f"the network takes t of shape (B,) = ({x_t.shape[0]},), got {tuple(t.shape)}"
            )
        return self.a * x_t + self.b * torch.tanh(x_t) * _bcast(torch.cos(3 * t) + 2 * t, x_t)


def reference_cfm_loss(net, x0, x1, t):
    """mean over every entry of (v_θ(x_t, t) − (x₁ − x₀))²."""
    return ((net(reference_path_sample(x0, x1, t), t) - (x1 - x0)) ** 2).mean()


def check_cfm_loss(loss_fn, *, seed: int = 0) -> check.Result:
    """``loss_fn(net, x0, x1, t) -> scalar``: the conditional flow-matching loss."""
    net = _FixedNet()
    with check.exercise("the conditional flow-matching loss") as ex:
        for case in ex.cases(_cases(seed, B=(6, 4, 3))):
            x0, x1, t = _draws(case)
            with torch.no_grad():
                x_t = reference_path_sample(x0, x1, t)
                pred = net(x_t, t)
                err = pred - (x1 - x0)
                swapped = reference_path_sample(x1, x0, t)
                hints = {
                    "regressed onto x0 − x1: the velocity points from the noise to the data, "
                    "x1 − x0": ((pred - (x0 - x1)) ** 2).mean(),
                    "swapped the time direction in the path (t = 0 must be the noise x0)": (
                        (net(swapped, t) - (x1 - x0)) ** 2
                    ).mean(),
                    "swapped the time direction (path and network time both)": (
                        (net(swapped, 1 - t) - (x1 - x0)) ** 2
                    ).mean(),
                    "gave the network 1 − t instead of t": (
                        (net(x_t, 1 - t) - (x1 - x0)) ** 2
                    ).mean(),
                    "summed instead of averaging (say so if you mean it; the lecture's loss is "
                    "the mean over every entry)": (err**2).sum(),
                    "averaged per example but summed over the batch": (err**2)
                    .flatten(1)
                    .mean(1)
                    .sum(),
                    "summed over the dimensions and averaged over the batch (a per-example sum): "
                    "the lecture's loss is the mean over every entry": (err**2)
                    .flatten(1)
                    .sum(1)
                    .mean(),
                    "returned one loss per example: average over the batch too (a scalar)": (err**2)
                    .flatten(1)
                    .mean(1),
                    "did not reduce: return the mean over every entry, a scalar": err**2,
                    "forgot to square the error": err.abs().mean(),
                    "regressed onto the data x1 instead of the velocity x1 − x0": (
                        (pred - x1) ** 2
                    ).mean(),
                    "fed the data x1 (not x_t) to the network": (
                        (net(x1, t) - (x1 - x0)) ** 2
                    ).mean(),
                    "fed the noise x0 (not x_t) to the network": (
                        (net(x0, t) - (x1 - x0)) ** 2
                    ).mean(),
                }
            out = ex.call(loss_fn, net, x0, x1, t, grad=(0,))
            ex.close(
                ex.tensor(out, what="your loss"), (err**2).mean(), what="your loss", hints=hints
            )
            ex.grad(out, reference_cfm_loss, what="your loss")
    return ex.result


# ----------------------------------------------------------------------------- 3. Euler sampling


def _field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A velocity that changes with t and x, so that every step and its time matter."""
    if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(
            f"velocity(x, t) takes t as a tensor of shape (B,) = ({x.shape[0]},), got {shape}: "
            "use torch.full((x.shape[0],), t)"
        )
    tb = t.view(-1, 1)
    return torch.sin(2 * x + 1) * (1 + 2 * tb) + 3 * tb**2 - 0.5 * x


def reference_euler_sample(velocity, x0, num_steps):
    """x_{i+1} = x_i + h v(x_i, t_i), t_i = i h, h = 1 / num_steps, from t = 0 to t = 1."""
    return solvers.euler(velocity, x0, solvers.uniform_grid(0.0, 1.0, num_steps + 1))


def _loop(x, times, h, sign=1.0):
    for t in times:
        x = x + sign * h * _field(x, torch.full((x.shape[0],), float(t)))
    return x


def check_euler_sample(euler_fn, *, seed: int = 0) -> check.Result:
    """``euler_fn(velocity, x0, num_steps) -> x1``: Euler from t = 0 (noise) to t = 1."""
    cases = check.sizes(
        seed, B=(4, 7, 3, range(2, 10)), D=(2, 5, 3, range(2, 8)), N=(10, 1, 4, range(1, 13))
    )
    with check.exercise("Euler sampling from t = 0 (noise) to t = 1 (data)") as ex:
        for case in ex.cases(cases):
            x0 = torch.randn(case.B, case.D, generator=case.generator(0))
            N, h = case.N, 1.0 / case.N
            with torch.no_grad():
                expected = reference_euler_sample(_field, x0, N)
                grid = [i * h for i in range(N)]
                hints = {
                    "integrated backwards (from t = 1 to 0): with t = 0 the noise, sampling "
                    "runs forwards in time": _loop(x0, [1 - i * h for i in range(N)], h, -1.0),
                    "ran the time from 1 down to 0 with positive steps: t_i = i h, from 0": _loop(
                        x0, [1 - i * h for i in range(N)], h
                    ),
                    "read the velocity at the end of each step (t_{i+1}); Euler uses its start "
                    "t_i = i h": _loop(x0, [(i + 1) * h for i in range(N)], h),
                    "skipped the first step (t = 0): the loop runs i = 0, ..., num_steps − 1": _loop(
                        x0, grid[1:], h
                    ),
                    "skipped the last step (t = 1 − h): the loop runs i = 0, ..., num_steps − 1": _loop(
                        x0, grid[:-1], h
                    ),
                    "took one step too many (num_steps + 1)": _loop(
                        x0, [i * h for i in range(N + 1)], h
                    ),
                    "made num_steps − 1 steps of 1 / (num_steps − 1) (num_steps grid points are "
                    "num_steps − 1 steps; use num_steps + 1 points)": None
                    if N == 1
                    else _loop(x0, [i / (N - 1) for i in range(N - 1)], 1 / (N - 1)),
                    "forgot the step size h = 1 / num_steps": _loop(x0, grid, 1.0),
                    "subtracted the velocity": _loop(x0, grid, h, -1.0),
                }
            out = ex.call(euler_fn, _field, x0, N)
            ex.close(
                ex.tensor(out, shape=(case.B, case.D), what="your sample"),
                expected,
                rtol=1e-4,
                atol=1e-5,
                what="your sample",
                hints=hints,
            )
    return ex.result
