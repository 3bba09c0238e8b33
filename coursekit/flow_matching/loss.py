"""The conditional flow-matching loss over any affine path (Lipman et al., 2023, eq. 9;
Liu et al., 2023, eq. 1).

Draw a data point x₁, noise x₀ = ε and a time; the path puts x_t between them and says its
velocity u_t(x_t | x₀, x₁) = α'_t x₁ + σ'_t x₀ (x₁ − x₀ on the linear path). Regressing a
network on these *conditional* velocities,

    L_CFM(θ) = E_{s, x₀, x₁} || v_θ(x_t, s) − u_t(x_t | x₀, x₁) ||²,

has the same gradient as regressing on the *marginal* field u_t(x) = E[u_t(x_t | x₀, x₁) | x_t
= x] (their Theorem 2): the two losses differ by a constant independent of θ, so the minimiser
is the marginal velocity, whose ODE carries the noise to the data.

**Time.** The network and the ODE see the flow time s ∈ [0, 1] with **s = 0 noise and s = 1
data** (Lipman et al.'s convention) whatever the path. A path's own time t runs from its noise
end to its data end (``path_times``): t = s on ``LinearPath``; t = (T − 1)(1 − s) on a
diffusion ``VPPath``, whose t = 0 is data. The regression target is the velocity in s,
dx/ds = (dt/ds) · dx/dt, so one network and one sampler serve both paths.

**What the network predicts.** ``prediction="velocity"`` regresses v_θ on dx/ds (the loss
above). ``prediction="data"`` lets the network predict x̂₁ and regresses it on x₁, the CFM loss
reweighted by σ_t² / (dσ/ds)² ((1 − t)² on the linear path): the same minimiser, and a small
MLP without a skip connection need not copy its input into the noise part of the velocity
(lecture 06's x₀-prediction). Its velocity follows from the path's conversions,
``data_to_velocity``, with s capped at ``1 − S_CAP`` where σ vanishes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from coursekit import utils
from coursekit.paths import AffinePath, LinearPath, VPPath


def path_times(path: AffinePath) -> tuple[float, float]:
    """(t at the noise end, t at the data end) of a path: (0, 1) linear, (T − 1, 0) VP."""
    if isinstance(path, LinearPath):
        return 0.0, 1.0
    if isinstance(path, VPPath):
        return float(path.schedule.num_steps - 1), 0.0
    raise TypeError(
        f"flow matching knows the ends of LinearPath and VPPath, not {type(path).__name__}; "
        "add its (t_noise, t_data) to path_times."
    )


def path_time(path: AffinePath, s: Tensor) -> Tensor:
    """The path's own time t for flow times s (0 noise, 1 data)."""
    t_noise, t_data = path_times(path)
    return t_noise + s * (t_data - t_noise)


def cfm_target(path: AffinePath, x_data: Tensor, s: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """(x_t, the velocity dx/ds) of the path between noise ``eps`` and ``x_data`` at times s."""
    t_noise, t_data = path_times(path)
    sample = path.sample(x_data, path_time(path, s), eps)
    return sample.x_t, (t_data - t_noise) * sample.velocity


S_CAP = 1e-2  # x̂₁ -> velocity divides by σ_t, zero at the data end of the linear path
PREDICTIONS = ("velocity", "data")


def data_to_velocity(path: AffinePath, x_t: Tensor, s: Tensor, x_hat: Tensor) -> Tensor:
    """dx/ds from a prediction x̂₁ of the data: ((x̂₁ − x_t) / (1 − s) on the linear path)."""
    t_noise, t_data = path_times(path)
    t = path_time(path, s.clamp(max=1 - S_CAP))
    eps = path.x0_to_eps(x_t, t, x_hat)  # divides by σ_t, kept away from 0 by the cap
    d_alpha, d_sigma = (d.to(x_t).view(-1, *[1] * (x_t.ndim - 1)) for d in path.derivatives(t))
    return (t_data - t_noise) * (d_alpha * x_hat + d_sigma * eps)  # u = α' x̂ + σ' ε


def cfm_loss(
    net,
    path: AffinePath,
    x_data: Tensor,
    *,
    y: Tensor | None = None,
    s: Tensor | None = None,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
    prediction: str = "velocity",
) -> Tensor:
    """Mean over every entry of (v_θ(x_t, s, y) − dx_t/ds)² for ``net(x, s, y)``; with
    ``prediction="data"``, of (x̂₁(x_t, s, y) − x₁)².

    ``x_data`` (B, ...) is x₁, ``eps`` (like it, drawn if None) is x₀, ``s`` (B,) uniform in
    [0, 1) if None. The mean, not the sum, so the loss does not grow with the image size.
    """
    B = x_data.shape[0]
    if s is None:
        s = utils.rand((B,), x_data, generator)
    if eps is None:
        eps = utils.randn(x_data.shape, x_data, generator)
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
    x_t, target = cfm_target(path, x_data, s, eps)
    if prediction == "data":
        target = x_data
    return F.mse_loss(net(x_t, s, y).float(), target.float())
