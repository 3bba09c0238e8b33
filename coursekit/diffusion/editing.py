"""Image-to-image with an unconditional diffusion model: SDEdit and replacement inpainting.

Convention (Ho et al., 2020): ``x_0`` is data, large ``t`` is noise; the schedule's index ``t``
is Ho et al.'s step ``t + 1``, so the reverse loop visits indices T−1, ..., 0 and the step at
index 0 lands on data. Every function takes an ε-predictor ``eps_fn(x_t, t) -> ε`` over images
in model space (e.g. ``lambda x, t: model.eps(x, t)``; ``ddpm.Diffusion.to_model_space`` maps
[0, 1] images to [-1, 1]) and is built on the steps of ``sampling.py``.

- ``denoise``: the reverse chain from index ``t_start`` down to data, with DDPM steps (all of
  them) or ``steps`` DDIM steps.
- ``sdedit`` (Meng et al., 2022): noise an input to level ``t0`` with q(x_t0 | x_0), then
  denoise. ``t0`` counts noising steps (Ho et al.'s 1-based t): ``t0 = 0`` returns the input,
  ``t0 = T`` starts at index T−1, from almost pure noise, and forgets the input. In between,
  small ``t0`` stays faithful to the input and large ``t0`` makes it realistic.
- ``replace_known`` and ``inpaint``: after each reverse step, the pixels where ``mask`` is 1 are
  replaced by a fresh draw of q(x_{t−1} | x_known), and by ``x_known`` itself after the last
  step (Lugmayr et al., 2022, RePaint eq. 8, without its resampling). The unknown pixels only
  see the known ones through the network, one step at a time; they move toward, but do not
  reach, the conditional distribution (``tests/test_editing.py`` measures how far on Gaussian
  data, where everything is known in closed form).
"""

from __future__ import annotations

import torch
from torch import Tensor

from coursekit import utils
from coursekit.diffusion import ddpm
from coursekit.diffusion.sampling import EpsFn, ddim_step, ddim_timesteps, ddpm_step
from coursekit.diffusion.schedules import NoiseSchedule


def _time(t: int, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


def _check_level(t0: int, schedule: NoiseSchedule) -> None:
    if not 0 <= t0 <= schedule.num_steps:
        raise ValueError(f"t0 must be in 0..{schedule.num_steps} (noising steps), got {t0}.")


@torch.no_grad()
def denoise(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_t: Tensor,
    t_start: int,
    *,
    steps: int | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """Run the reverse chain from ``x_t`` at schedule index ``t_start`` down to x_0.

    ``steps=None``: every DDPM step t_start, ..., 0 (Ho et al., Alg. 2). ``steps=k``: k DDIM
    steps on evenly spaced indices from t_start to 0, noise level ``eta``.
    """
    if not 0 <= t_start < schedule.num_steps:
        raise ValueError(f"t_start must be an index in 0..{schedule.num_steps - 1}, got {t_start}.")
    x = x_t
    if steps is None:
        for t in range(t_start, -1, -1):
            x = ddpm_step(x, eps_fn(x, _time(t, x)), t, schedule, generator=generator, clip=clip)
        return x
    ts = ddim_timesteps(t_start + 1, min(steps, t_start + 1))  # t_start, ..., 0
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = eps_fn(x, _time(t, x))
        x = ddim_step(x, eps, t, t_prev, schedule, eta=eta, generator=generator, clip=clip)
    return x


@torch.no_grad()
def sdedit(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x: Tensor,
    t0: int,
    *,
    steps: int | None = None,
    eta: float = 0.0,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """SDEdit (Meng et al., 2022, Alg. 1): x_t0 ~ q(x_t0 | x), then the reverse chain to x_0.

    ``x`` (B, ...) in model space; ``t0`` noising steps in 0..T (index t0 − 1, see the module
    doc); ``steps`` as in ``denoise`` (DDIM steps over the shortened chain, or all DDPM steps).
    ``noise`` fixes the ε of the forward jump. ``t0 = 0`` returns ``x`` unchanged.
    """
    _check_level(t0, schedule)
    if t0 == 0:
        return x.clone()
    t_start = t0 - 1
    x_t = ddpm.q_sample(x, _time(t_start, x), schedule, eps=noise, generator=generator)
    return denoise(
        eps_fn, schedule, x_t, t_start, steps=steps, eta=eta, generator=generator, clip=clip
    )


def replace_known(
    x: Tensor,
    x_known: Tensor,
    mask: Tensor,
    t: int,
    alpha_bar: Tensor,
    eps: Tensor,
) -> Tensor:
    """After the reverse step at index ``t`` (which produced x_{t−1}), put the known pixels back.

    ``mask`` is 1 where ``x_known`` is known, 0 where the sampler fills in; all like ``x``.
    Known pixels become sqrt(ᾱ_{t−1}) x_known + sqrt(1 − ᾱ_{t−1}) ε (q(x_{t−1} | x_known), eq. 4
    one step lower than the step just taken), and at t = 0 (the step to data) x_known itself.
    """
    if t == 0:
        known = x_known
    else:
        a = alpha_bar[t - 1]
        known = a.sqrt() * x_known + (1 - a).sqrt() * eps
    return mask * known + (1 - mask) * x


@torch.no_grad()
def inpaint(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_known: Tensor,
    mask: Tensor,
    *,
    t0: int | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """Fill the pixels where ``mask`` is 0 with DDPM steps and ``replace_known`` after each one.

    ``x_known`` (B, ...) in model space (its unknown pixels are ignored), ``mask`` broadcastable
    to it, 1 = known. The chain starts from noise at index T−1 (``t0=None``), or, SDEdit-style,
    from ``x_known`` noised to ``t0`` steps. The known pixels of the result equal ``x_known``.
    """
    mask = mask.to(x_known.dtype).expand_as(x_known)
    t_start = schedule.num_steps - 1 if t0 is None else t0 - 1
    if t0 is not None:
        _check_level(t0, schedule)
        if t0 == 0:
            return x_known.clone()
    x_t = ddpm.q_sample(x_known, _time(t_start, x_known), schedule, generator=generator)
    if t0 is None:  # the unknown pixels start from N(0, I), the prior
        x_t = mask * x_t + (1 - mask) * utils.randn(x_known.shape, x_known, generator)
    x = x_t
    for t in range(t_start, -1, -1):
        x = ddpm_step(x, eps_fn(x, _time(t, x)), t, schedule, generator=generator, clip=clip)
        eps = utils.randn(x.shape, x, generator)
        x = replace_known(x, x_known, mask, t, schedule.alpha_bar, eps)
    return x
