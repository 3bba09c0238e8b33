"""Checks for Lecture 09 (energy-based models): each prints one ✓ / ✗ line.

The convention is the lecture's: p(x) ∝ exp(-E(x)), the energy ``energy(x) -> (B,)``; a
Langevin step of size eps is x - eps grad E(x) + sqrt(2 eps) z; the contrastive-divergence
loss is mean E(data) - mean E(samples) + alpha (mean E(data)^2 + mean E(samples)^2), with the
samples detached. The messages name the usual mistakes: the gradient's sign (climbing the
energy), the noise scale sqrt(eps) or a noise scale not tied to the step, the CD sign, the
regulariser forgotten, and a gradient that flows through the model samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from coursekit import check
from coursekit.check import CheckFailed


class _Energy(nn.Module):
    """A small random MLP energy (B, D) -> (B,)."""

    def __init__(self, d: int, generator: torch.Generator):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 16), nn.SiLU(), nn.Linear(16, 1))
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.7)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1) + 0.5 * (x**2).sum(1)


def _grad_energy(energy: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(x).sum(), x)
    return g


# ----------------------------------------------------------------------------- 1. Langevin step


def reference_langevin_step(x: Tensor, energy, step_size: float, noise: Tensor) -> Tensor:
    """x - eps grad E(x) + sqrt(2 eps) noise."""
    return x - step_size * _grad_energy(energy, x) + math.sqrt(2 * step_size) * noise


def check_langevin_step(step_fn, *, seed: int = 0) -> check.Result:
    """``step_fn(x, energy, step_size, noise) -> x_next`` (B, D), noise ~ N(0, I) given."""
    cases = check.sizes(seed, B=(6, 3, range(2, 12)), D=(2, 5, range(2, 8)), k=(0, 1, range(0, 4)))
    steps = (0.01, 0.09, 0.25, 0.04)
    with check.exercise("Langevin step", success="drift down the energy, noise sqrt(2 eps)") as ex:
        for case in ex.cases(cases):
            g = case.generator(0)
            x = torch.randn(case.B, case.D, generator=g)
            z = torch.randn(case.B, case.D, generator=g)
            energy = _Energy(case.D, case.generator(1))
            eps = steps[case.k]
            grad = _grad_energy(energy, x)
            drift = x - eps * grad
            expected = drift + math.sqrt(2 * eps) * z
            out = ex.tensor(
                ex.call(step_fn, x, energy, eps, z), shape=(case.B, case.D), what="your next state"
            )
            out = out.detach()
            r = out - drift
            c = float((r * z).sum() / (z * z).sum())
            if (
                torch.allclose(r, c * z, atol=1e-4)
                and abs(c - math.sqrt(2 * eps)) > 1e-3
                and abs(c) > 1e-3
            ):  # c = 0 is the forgotten noise, named below
                if abs(c - math.sqrt(eps)) < 1e-3:
                    raise CheckFailed(
                        "your noise is sqrt(step_size) * noise: for step eps the Langevin noise "
                        "is sqrt(2 eps) (with sqrt(eps) the chain samples exp(-2E), too cold)"
                    )
                raise CheckFailed(
                    f"your noise scale is {c:.4g} with step_size = {eps}: tie it to the step, "
                    f"sqrt(2 * step_size) = {math.sqrt(2 * eps):.4g}; a noise not tied to the step "
                    "samples a different temperature"
                )
            ex.close(
                out,
                expected,
                what="your next state",
                hints={
                    "moved up the energy: the drift is -step_size * grad E(x) (the score is -grad E)": x
                    + eps * grad
                    + math.sqrt(2 * eps) * z,
                    "forgot the noise: without it the step is gradient descent, which finds a mode "
                    "instead of sampling": drift,
                    "scaled the gradient by step_size / 2 with noise sqrt(step_size) (Song & Ermon's "
                    "convention): here the step is eps, the drift eps grad, the noise sqrt(2 eps)": x
                    - 0.5 * eps * grad
                    + math.sqrt(eps) * z,
                    "scaled the drift by sqrt(2 step_size) instead of step_size": x
                    - math.sqrt(2 * eps) * grad
                    + math.sqrt(2 * eps) * z,
                    "used the energy's value instead of its gradient in the drift": x
                    - eps * energy(x).detach()[:, None]
                    + math.sqrt(2 * eps) * z,
                },
            )
    return ex.result


# ----------------------------------------------------------------------------- 2. CD loss


def reference_cd_loss(energy, x_data: Tensor, x_model: Tensor, alpha: float) -> Tensor:
    """mean E(data) - mean E(samples) + alpha (mean E(data)^2 + mean E(samples)^2)."""
    e_d, e_m = energy(x_data), energy(x_model.detach())
    return e_d.mean() - e_m.mean() + alpha * ((e_d**2).mean() + (e_m**2).mean())


def check_cd_loss(cd_fn, *, seed: int = 0) -> check.Result:
    """``cd_fn(energy, x_data, x_model, alpha) -> scalar``, gradients to the energy only."""
    cases = check.sizes(seed, B=(8, 3, range(2, 12)), M=(6, 5, range(2, 12)), D=(2, 4, range(2, 7)))
    with check.exercise(
        "contrastive-divergence loss", success="data pushed down, samples up, samples detached"
    ) as ex:
        for case in ex.cases(cases):
            g = case.generator(0)
            xd = torch.randn(case.B, case.D, generator=g)
            xm = 2.0 * torch.randn(case.M, case.D, generator=g)
            energy = _Energy(case.D, case.generator(1))
            alpha = 0.1 + 0.2 * case.index
            with torch.no_grad():
                e_d, e_m = energy(xd), energy(xm)
            cd = e_d.mean() - e_m.mean()
            reg = (e_d**2).mean() + (e_m**2).mean()
            expected = cd + alpha * reg
            out = ex.call(cd_fn, energy, xd, xm, alpha, grad=(0, 2))
            out = ex.tensor(out, shape=(), what="your loss")
            ex.close(
                out,
                expected,
                what="your loss",
                hints={
                    "flipped the sign: minimise E(data) - E(samples), so data energies go down": -cd
                    + alpha * reg,
                    "flipped the sign of the CD term and forgot the regulariser": -cd,
                    "forgot the regulariser alpha (E(data)^2 + E(samples)^2)": cd,
                    "regularised only the data energies: alpha (E(data)^2 + E(samples)^2)": cd
                    + alpha * (e_d**2).mean(),
                    "squared the means instead of averaging the squares in the regulariser": cd
                    + alpha * (e_d.mean() ** 2 + e_m.mean() ** 2),
                    "summed over the batch instead of averaging": e_d.sum()
                    - e_m.sum()
                    + alpha * ((e_d**2).sum() + (e_m**2).sum()),
                },
            )
            x_model_in = ex.inputs()[0][2]  # the copy of x_model handed to cd_fn
            gx = None
            if out.requires_grad:  # a detached loss is named by ex.grad below
                (gx,) = torch.autograd.grad(out, x_model_in, retain_graph=True, allow_unused=True)
            if gx is not None and float(gx.abs().max()) > 0:
                raise CheckFailed(
                    "the loss has a gradient with respect to the model samples x_model: detach "
                    "them (energy(x_model.detach())) so the gradient reaches the energy's "
                    "parameters only, not the chain that produced the samples"
                )
            ex.grad(out, reference_cd_loss, what="your loss")
    return ex.result


# ----------------------------------------------------------------------------- 3. classifier energy


def reference_classifier_energy(logits: Tensor) -> Tensor:
    """E(x) = -logsumexp_y f(x)[y], from the logits (B, K) -> (B,)."""
    return -torch.logsumexp(logits, dim=1)


def check_classifier_energy(energy_fn, *, seed: int = 0) -> check.Result:
    """``energy_fn(logits) -> (B,)``: the energy -logsumexp over the classes of (B, K) logits."""
    cases = check.sizes(seed, B=(6, 9, range(2, 12)), K=(10, 13, range(3, 16)))
    with check.exercise(
        "classifier energy", success="E(x) = -logsumexp_y f(x)[y], stable for large logits"
    ) as ex:
        for case in ex.cases(cases):
            g = case.generator(0)
            logits = 3.0 * torch.randn(case.B, case.K, generator=g)
            if case.index == 1:  # a confident classifier: naive exp overflows in float32
                logits = logits + 95.0
            expected = reference_classifier_energy(logits)
            out = ex.tensor(ex.call(energy_fn, logits, grad=True), what="your energy")
            ex.close(
                out,
                expected,
                rtol=1e-5,
                what="your energy",
                hints={
                    "forgot the minus sign: E = -logsumexp f, so confident inputs have LOW "
                    "energy": -expected,
                    "took the largest logit instead of logsumexp (that is the zero-temperature "
                    "limit; the energy sums over every class)": -logits.max(1).values,
                    "summed the logits instead of log-sum-exp'ing them": -logits.sum(1),
                    "averaged the logits instead of log-sum-exp'ing them": -logits.mean(1),
                    "used log_softmax: it is f - logsumexp f, which cancels the energy "
                    "(p(y|x) does not know p(x))": -torch.log_softmax(logits, 1).max(1).values,
                    "took logsumexp over the batch (dim 0) instead of the classes (dim 1)": (
                        -torch.logsumexp(logits, dim=0)
                    ),
                    "added log K (a logsumexp minus a log mean exp): E = -logsumexp f, no "
                    "constant": expected + math.log(case.K),
                },
            )
            ex.grad(out, reference_classifier_energy, what="your energy")
    return ex.result
