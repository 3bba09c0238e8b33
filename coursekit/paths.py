"""Affine probability paths x_t = α_t · x_data + σ_t · ε, and the conversions between what a
network may predict: the noise ε, the data x̂₀, the velocity dx_t/dt, the score, and v.

Diffusion and flow matching are two choices of (α_t, σ_t) and of a time convention:

- ``VPPath(schedule)``: the variance-preserving path of a diffusion ``NoiseSchedule``,
  α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t). **Convention of Ho et al. (2020): t = 0 is (almost)
  data, large t is noise**; t indexes the schedule (an int64 tensor 0..T-1), and a float t in
  [0, T-1] interpolates it linearly in log SNR (a continuous path, with a velocity).
- ``LinearPath()``: the conditional optimal-transport path of flow matching and rectified flow,
  x_t = (1 − t) · x₀ + t · x₁ with x₀ the noise and x₁ the data. **Convention of Lipman et al.
  (2023): t = 0 is noise, t = 1 is data**; α_t = t, σ_t = 1 − (1 − σ_min) t.

Every conversion lives on ``AffinePath`` and holds for any (α_t, σ_t), so a sampler written for
one parameterization serves all: given x_t,

    x̂₀ = (x_t − σ ε) / α,     ε = (x_t − α x̂₀) / σ,     score ∇ log p_t(x_t) = −ε / σ,
    velocity u = α' x̂₀ + σ' ε (the conditional flow's dx_t/dt; x₁ − x₀ on the linear path),
    v = α ε − σ x̂₀ (Salimans & Ho, 2022: the "v-prediction", a velocity in the angle of (α, σ)).

The score identity is Tweedie's formula: E[ε | x_t] = −σ_t ∇ log p_t(x_t). Tensors broadcast
per example: ``t`` is a scalar or (B,), the coefficients are reshaped to (B, 1, ..., 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from coursekit import utils


@dataclass
class PathSample:
    """A draw from the path: ``x_t`` = α_t ``x_data`` + σ_t ``eps`` at times ``t``.

    ``velocity`` is dx_t/dt along this draw, α'_t x_data + σ'_t eps: the regression target of
    flow matching (x_data − eps on the linear path). ``v`` is Salimans & Ho's target
    α_t eps − σ_t x_data.
    """

    x_t: Tensor
    t: Tensor
    eps: Tensor
    x_data: Tensor
    velocity: Tensor
    v: Tensor


def _per_example(a: Tensor, x: Tensor) -> Tensor:
    """Coefficients () or (B,) as x's dtype, shaped (B, 1, ..., 1) to broadcast against x."""
    a = a.to(device=x.device, dtype=x.dtype)
    return a if a.ndim == 0 else a.view(-1, *([1] * (x.ndim - 1)))


class AffinePath:
    """x_t = α_t x_data + σ_t ε, ε ~ N(0, I); subclasses define the coefficients.

    ``coefficients(t) -> (α_t, σ_t)`` and ``derivatives(t) -> (α'_t, σ'_t)``, each a tensor
    shaped like ``t``. Everything else (sampling, every conversion) is written once, here.
    """

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _ab(self, t, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.coefficients(torch.as_tensor(t))
        return _per_example(alpha, x), _per_example(sigma, x)

    def _dab(self, t, x: Tensor) -> tuple[Tensor, Tensor]:
        d_alpha, d_sigma = self.derivatives(torch.as_tensor(t))
        return _per_example(d_alpha, x), _per_example(d_sigma, x)

    # --- drawing x_t ------------------------------------------------------------------------
    def sample(
        self,
        x_data: Tensor,
        t: Tensor,
        eps: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """x_t for data ``x_data`` (B, ...) at times ``t`` (B,); ``eps`` drawn if not given."""
        if eps is None:
            eps = utils.randn(x_data.shape, x_data, generator)
        alpha, sigma = self._ab(t, x_data)
        d_alpha, d_sigma = self._dab(t, x_data)
        return PathSample(
            x_t=alpha * x_data + sigma * eps,
            t=torch.as_tensor(t),
            eps=eps,
            x_data=x_data,
            velocity=d_alpha * x_data + d_sigma * eps,
            v=alpha * eps - sigma * x_data,
        )

    # --- noise <-> data <-> score -------------------------------------------------------------
    def eps_to_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x̂₀ = (x_t − σ_t ε) / α_t: invert x_t = α x₀ + σ ε for a given ε."""
        alpha, sigma = self._ab(t, x_t)
        return (x_t - sigma * eps) / alpha

    def x0_to_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """ε = (x_t − α_t x̂₀) / σ_t."""
        alpha, sigma = self._ab(t, x_t)
        return (x_t - alpha * x0) / sigma

    def eps_to_score(self, eps: Tensor, t: Tensor) -> Tensor:
        """∇ log p_t(x_t) = −ε / σ_t (Tweedie: the optimal ε is −σ_t times the score)."""
        _, sigma = self._ab(t, eps)
        return -eps / sigma

    def score_to_eps(self, score: Tensor, t: Tensor) -> Tensor:
        """ε = −σ_t ∇ log p_t(x_t)."""
        _, sigma = self._ab(t, score)
        return -sigma * score

    # --- v-prediction (Salimans & Ho, 2022) -----------------------------------------------------
    def v_target(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """v = α_t ε − σ_t x₀."""
        alpha, sigma = self._ab(t, x0)
        return alpha * eps - sigma * x0

    def v_to_eps(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """ε = (σ_t x_t + α_t v) / (α_t² + σ_t²): solve x_t = α x₀ + σ ε, v = α ε − σ x₀.

        On a VP path α² + σ² = 1 and this is the rotation ε = σ x_t + α v.
        """
        alpha, sigma = self._ab(t, x_t)
        return (sigma * x_t + alpha * v) / (alpha**2 + sigma**2)

    # --- velocity dx_t/dt (flow matching) -------------------------------------------------------
    def velocity_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """u = α'_t x̂₀ + σ'_t ε with x̂₀ = ``eps_to_x0``: the ODE dx/dt = u carries p_t."""
        d_alpha, d_sigma = self._dab(t, x_t)
        return d_alpha * self.eps_to_x0(x_t, t, eps) + d_sigma * eps

    def eps_from_velocity(self, x_t: Tensor, t: Tensor, u: Tensor) -> Tensor:
        """ε from u = (α'/α) x_t + (σ' − α' σ / α) ε (``velocity_from_eps`` solved for ε)."""
        alpha, sigma = self._ab(t, x_t)
        d_alpha, d_sigma = self._dab(t, x_t)
        return (alpha * u - d_alpha * x_t) / (alpha * d_sigma - d_alpha * sigma)

    def velocity_to_x0(self, x_t: Tensor, t: Tensor, u: Tensor) -> Tensor:
        """x̂₀ from the velocity, through ε (e.g. x̂₁ = x_t + (1 − t) u on the linear path)."""
        return self.eps_to_x0(x_t, t, self.eps_from_velocity(x_t, t, u))


class VPPath(AffinePath):
    """The variance-preserving path of a diffusion ``NoiseSchedule`` (Ho et al., 2020).

    **t = 0 is data, large t is noise.** α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t), so
    α² + σ² = 1 and x_t is ``ddpm.q_sample``. An int64 ``t`` (0..T-1) reads the schedule's
    table; a float ``t`` in [0, T-1] interpolates log SNR linearly between table entries, which
    makes the path continuous in t with a velocity (piecewise constant dλ/dt, right-sided at
    the integers). The schedule is referenced, not copied: ``schedule.to(device)`` moves it.
    """

    def __init__(self, schedule):
        self.schedule = schedule

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        ab = self._alpha_bar(t)
        return ab.sqrt(), (1 - ab).sqrt()

    def v_to_eps(self, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """ε = σ_t x_t + α_t v: with α² + σ² = 1, rotating (x_t, v) back by the angle of ᾱ_t."""
        alpha, sigma = self._ab(t, x_t)
        return sigma * x_t + alpha * v

    def _alpha_bar(self, t: Tensor) -> Tensor:
        table = self.schedule.alpha_bar
        if not t.is_floating_point():
            return table[t.to(table.device)]
        lam, _ = self._log_snr(t.to(table.device))
        return torch.sigmoid(lam)  # ᾱ = SNR / (1 + SNR)

    def _log_snr(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """λ(t) interpolated linearly in the table, and dλ/dt on t's segment (float32)."""
        lam_table = self.schedule.log_snr()  # (T,)
        T = len(lam_table)
        if not t.is_floating_point():  # table entries; the segment to the right (left at T-1)
            i = t.clamp(max=T - 2)
            return lam_table[t], lam_table[i + 1] - lam_table[i]
        if ((t < 0) | (t > T - 1)).any():
            raise ValueError(f"A continuous time t must lie in [0, {T - 1}] for this schedule.")
        i = t.floor().long().clamp(max=T - 2)  # the segment [i, i + 1]
        slope = lam_table[i + 1] - lam_table[i]
        return lam_table[i] + (t.to(slope.dtype) - i) * slope, slope

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lam, d_lam = self._log_snr(t.to(self.schedule.alpha_bar.device))
        ab = torch.sigmoid(lam)
        # α = sigmoid(λ)^(1/2): dα/dλ = α (1 − ᾱ) / 2; σ = sigmoid(−λ)^(1/2): dσ/dλ = −σ ᾱ / 2
        return 0.5 * ab.sqrt() * (1 - ab) * d_lam, -0.5 * (1 - ab).sqrt() * ab * d_lam

    def sigma_ode(self, t: Tensor) -> Tensor:
        """σ_t / α_t = sqrt((1 − ᾱ_t) / ᾱ_t) = SNR^(-1/2): the noise level of DDIM's variables
        x̄ = x_t / α_t, in which the probability-flow ODE reads dx̄/dσ = ε (Song et al., 2021)."""
        ab = self._alpha_bar(torch.as_tensor(t))
        return ((1 - ab) / ab).sqrt()

    def t_from_sigma_ode(self, sigma: Tensor) -> Tensor:
        """The integer time (int64, like ``sigma``) whose ``sigma_ode`` is nearest in log."""
        table = self.sigma_ode(torch.arange(self.schedule.num_steps)).log()  # (T,) increasing
        log_s = sigma.to(device=table.device, dtype=table.dtype).log()
        hi = torch.searchsorted(table, log_s.contiguous()).clamp(1, len(table) - 1)
        nearer_lo = (log_s - table[hi - 1]).abs() <= (table[hi] - log_s).abs()
        return torch.where(nearer_lo, hi - 1, hi)


class LinearPath(AffinePath):
    """The linear (conditional optimal-transport) path of flow matching and rectified flow.

    **t = 0 is noise, t = 1 is data** (Lipman et al., 2023; Liu et al., 2023):
    x_t = t x₁ + (1 − (1 − σ_min) t) x₀ with x₁ = ``x_data`` and x₀ = ``eps``; with
    σ_min = 0 (the default, rectified flow) x_t = (1 − t) x₀ + t x₁ and the velocity is
    x₁ − x₀. Float t in [0, 1]; at t = 0 x̂₁ is undefined (α = 0), at t = 1 ε is (σ = σ_min).
    """

    def __init__(self, sigma_min: float = 0.0):
        self.sigma_min = sigma_min

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = t if t.is_floating_point() else t.float()
        return t, 1 - (1 - self.sigma_min) * t

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = t if t.is_floating_point() else t.float()
        return torch.ones_like(t), torch.full_like(t, -(1 - self.sigma_min))
