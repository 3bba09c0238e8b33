"""Noise schedules of discrete-time diffusion: beta_t, alpha_bar_t and the signal-to-noise ratio.

Convention (Ho et al., 2020): ``x_0`` is data and large ``t`` is noise. Time is an integer index
``t = 0, ..., T-1``; index ``t`` is step ``t + 1`` of the paper, so

    q(x_t | x_0) = N(sqrt(alpha_bar[t]) x_0, (1 - alpha_bar[t]) I),
    alpha_bar[t] = prod_{s <= t} (1 - beta[s])                       (Ho et al., eq. 4)

and ``alpha_bar[0]`` is just below 1 (almost data) while ``alpha_bar[T-1]`` is near 0 (noise).
All tables are float64 when built, stored as float32 buffers, so ``.to(device)`` and
``state_dict`` carry them; schedule maths never runs under autocast.

- linear: beta from 1e-4 to 0.02 over 1000 steps (Ho et al., sec. 4), rescaled by 1000 / T for
  other T so that the total amount of noise stays comparable (Nichol & Dhariwal, 2021).
- cosine: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2) (Nichol & Dhariwal, 2021, eq. 17).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class NoiseSchedule(nn.Module):
    """The tables of a discrete schedule, computed once from ``betas`` (T,).

    Buffers, all of shape (T,): ``betas``, ``alphas`` = 1 - beta, ``alpha_bar`` (cumulative
    product), ``alpha_bar_prev`` (alpha_bar shifted right, with alpha_bar_prev[0] = 1), and the
    coefficients of the Gaussian posterior q(x_{t-1} | x_t, x_0) (Ho et al., eq. 6-7):
    ``posterior_variance`` (beta tilde), ``posterior_mean_coef_x0``, ``posterior_mean_coef_xt``.
    """

    def __init__(self, betas: Tensor, name: str = "custom"):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with every entry in (0, 1).")
        self.name = name
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        # beta tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t (eq. 7); 0 at t = 0
        posterior_variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas
        # mu tilde_t = c_x0 * x_0 + c_xt * x_t (eq. 7)
        coef_x0 = alpha_bar_prev.sqrt() * betas / (1.0 - alpha_bar)
        coef_xt = alphas.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        tables = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "posterior_variance": posterior_variance,
            "posterior_mean_coef_x0": coef_x0,
            "posterior_mean_coef_xt": coef_xt,
        }
        for key, value in tables.items():
            self.register_buffer(key, value.float())

    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return self.betas.shape[0]

    def snr(self, t: Tensor | None = None) -> Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at integer times ``t`` (all if None)."""
        a = self.alpha_bar if t is None else self.alpha_bar[t]
        return a / (1.0 - a)

    def log_snr(self, t: Tensor | None = None) -> Tensor:
        """log SNR; decreasing in t, which is what makes a schedule a schedule."""
        return self.snr(t).log()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_steps={self.num_steps}"


def linear_betas(
    num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02, max_beta: float = 0.999
) -> Tensor:
    """Ho et al.'s linear betas (float64, (T,)), rescaled by 1000 / T and clipped at max_beta."""
    scale = 1000.0 / num_steps
    betas = torch.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=torch.float64)
    return betas.clamp(max=max_beta)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Betas of the cosine schedule (float64, (T,)), clipped at ``max_beta`` near t = T."""
    steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


def linear_schedule(num_steps: int = 1000) -> NoiseSchedule:
    """The linear schedule of Ho et al. with ``num_steps`` steps."""
    return NoiseSchedule(linear_betas(num_steps), name="linear")


def cosine_schedule(num_steps: int = 1000) -> NoiseSchedule:
    """The cosine schedule of Nichol & Dhariwal with ``num_steps`` steps."""
    return NoiseSchedule(cosine_betas(num_steps), name="cosine")


def get_schedule(name: str, num_steps: int = 1000) -> NoiseSchedule:
    """A schedule by name: ``"linear"`` or ``"cosine"``."""
    makers = {"linear": linear_schedule, "cosine": cosine_schedule}
    if name not in makers:
        raise ValueError(f"Unknown schedule {name!r}; use one of {sorted(makers)}.")
    return makers[name](num_steps)
