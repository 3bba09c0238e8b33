"""Denoising diffusion (Ho et al., 2020): the forward process, the posterior and the ε-loss.

Convention: ``x_0`` is data and large ``t`` is noise; ``t = 0, ..., T-1`` indexes the schedule.
The forward process has the closed form (Ho et al., eq. 4)

    x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε,    ε ~ N(0, I),

and the network is trained on the simplified objective E_{t, x_0, ε} ||ε − ε_θ(x_t, t)||² (eq. 14).

``Diffusion(net, schedule)`` wraps a network ``net(x_t, t, y) -> Tensor`` shaped like ``x_t``
(``t`` float (B,) = step / T in [0, 1), so
``coursekit.networks`` networks work with their default ``time_scale``; ``y`` int64 (B,) or None). What the network predicts is ``prediction``:
``"eps"`` (Ho et al.), ``"x0"`` or ``"v"`` = sqrt(ᾱ) ε − sqrt(1 − ᾱ) x_0 (Salimans & Ho, 2022);
``Diffusion.eps`` always converts to ε (through ``Diffusion.path``, a ``paths.VPPath``, where
every conversion lives), so every sampler in ``sampling.py`` works with all three.

Images in the data range ``data_range`` (default [0, 1]) are mapped to [-1, 1] inside the model,
and samples are mapped back; 2-D toys use ``data_range=None`` (no scaling, no clipping).
Class-conditional models (``num_classes``) are trained with label dropout ``p_uncond``: the
dropped labels become the null label ``num_classes``, which is also what ``y=None`` means.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, utils
from coursekit.diffusion import sampling
from coursekit.diffusion.schedules import NoiseSchedule
from coursekit.paths import VPPath

PREDICTIONS = ("eps", "x0", "v")


def expand_like(a: Tensor, x: Tensor) -> Tensor:
    """A per-example table value (B,) reshaped to (B, 1, ..., 1) to broadcast against x."""
    return a.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def q_sample(
    x0: Tensor,
    t: Tensor,
    schedule: NoiseSchedule,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw x_t ~ q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 − ᾱ_t) I) (eq. 4); ``t`` int64 (B,)."""
    return VPPath(schedule).sample(x0, t, eps, generator=generator).x_t


def q_posterior(
    x0: Tensor, x_t: Tensor, t: Tensor, schedule: NoiseSchedule
) -> tuple[Tensor, Tensor]:
    """Mean (B, ...) and variance (B, 1, ..., 1) of q(x_{t-1} | x_t, x_0) (eq. 6-7)."""
    mean = (
        expand_like(schedule.posterior_mean_coef_x0[t], x0) * x0
        + expand_like(schedule.posterior_mean_coef_xt[t], x0) * x_t
    )
    return mean, expand_like(schedule.posterior_variance[t], x0)


class Diffusion(models.GenerativeModel):
    """A DDPM around a network ``net(x_t, t, y)`` and a ``NoiseSchedule``.

    ``data_shape`` is the shape of one example, e.g. (1, 8, 8) or (2,). ``sample`` uses ancestral
    DDPM over all T steps unless ``sampler="ddim"`` (``steps`` network calls).
    """

    likelihood_hint = (
        "A diffusion model has no exact likelihood: bound it with the ELBO (Ho et al., eq. 5) "
        "or integrate the probability-flow ODE with a trace estimator (Song et al., 2021): "
        "model.ode_log_prob(x), an ODE estimate"
    )

    def __init__(
        self,
        net: nn.Module,
        schedule: NoiseSchedule,
        *,
        data_shape: tuple[int, ...],
        prediction: str = "eps",
        data_range: tuple[float, float] | None = (0.0, 1.0),
        num_classes: int | None = None,
        p_uncond: float = 0.0,
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
        if p_uncond > 0 and num_classes is None:
            raise ValueError("Label dropout (p_uncond > 0) needs num_classes for the null label.")
        self.net = net
        self.schedule = schedule
        self.data_shape = tuple(data_shape)
        self.prediction = prediction
        self.data_range = data_range
        self.num_classes = num_classes
        self.p_uncond = p_uncond

    # --- data space <-> model space ([-1, 1] for images) ---------------------------------------
    def to_model_space(self, x: Tensor) -> Tensor:
        if self.data_range is None:
            return x
        lo, hi = self.data_range
        return (x - lo) / (hi - lo) * 2 - 1

    def to_data_space(self, x: Tensor) -> Tensor:
        if self.data_range is None:
            return x
        lo, hi = self.data_range
        return ((x + 1) / 2 * (hi - lo) + lo).clamp(lo, hi)

    @property
    def clip(self) -> tuple[float, float] | None:
        """Where x0_hat is clipped while sampling: [-1, 1] for images, nowhere for toys."""
        return None if self.data_range is None else (-1.0, 1.0)

    @property
    def path(self) -> VPPath:
        """The probability path x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε of this schedule (t = 0 data)."""
        return VPPath(self.schedule)

    # --- the network, whatever it predicts, as ε ---------------------------------------------
    def net_output(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The raw network output; the net sees time as t / T in [0, 1), like flow matching."""
        return self.net(x_t, t.float() / self.schedule.num_steps, y)

    def eps(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The network's prediction converted to ε; x_t (B, ...) in model space, t int64 (B,)."""
        out = self.net_output(x_t, t, y)
        if self.prediction == "eps":
            return out
        if self.prediction == "x0":
            return self.path.x0_to_eps(x_t, t, out)
        return self.path.v_to_eps(x_t, t, out)

    # --- the objective -------------------------------------------------------------------------
    def loss(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        noise: Tensor | None = None,
        t: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The simplified loss ||target − net(x_t, t, y)||² averaged over all entries (eq. 14).

        ``x`` is data (B, ...) in ``data_range``; ``noise`` (like x) and ``t`` (B,) may be given
        for exact tests, otherwise they are drawn (t uniform in 0..T-1). The target is ε, x_0 or v
        according to ``prediction``; for ε it is exactly Ho et al.'s L_simple.
        """
        x0 = self.to_model_space(x)
        B = x0.shape[0]
        if t is None:
            t = utils.randint(0, self.schedule.num_steps, (B,), x0, generator)
        if noise is None:
            noise = utils.randn(x0.shape, x0, generator)
        if y is not None and self.p_uncond > 0:
            # label dropout: the same network learns p(x | y) and p(x) (Ho & Salimans, 2022)
            y = models.drop_labels(y, self.p_uncond, self.num_classes, generator)
        s = self.path.sample(x0, t, noise)
        out = self.net_output(s.x_t, t, y)
        target = {"eps": s.eps, "x0": s.x_data, "v": s.v}
        loss = F.mse_loss(out.float(), target[self.prediction].float())
        return {"loss": loss}

    # --- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        sampler: str = "ddpm",
        steps: int | None = None,
        eta: float = 0.0,
        guidance_scale: float | None = None,
        x_T: Tensor | None = None,
    ) -> Tensor:
        """``n`` samples in data space and ``data_range``, shape (n, *data_shape).

        ``sampler="ddpm"`` runs all T ancestral steps; ``"ddim"`` runs ``steps`` (default 50)
        DDIM steps with noise level ``eta``; ``"ode"`` integrates the probability-flow ODE with
        ``steps`` (default 25) Heun steps. With labels ``y`` (n,) and ``guidance_scale`` s the
        prediction is ε_uncond + s (ε_cond − ε_uncond) (s = 1: plain conditional).
        ``x_T`` fixes the initial noise (to compare samplers on the same start).
        """
        device = self.device
        if x_T is None:
            x_T = utils.randn((n, *self.data_shape), torch.empty(0, device=device), generator)
        if y is not None and guidance_scale is not None and guidance_scale != 1.0:
            eps_fn = sampling.guided(self.eps, y, guidance_scale)
        else:
            eps_fn = lambda x_t, t: self.eps(x_t, t, y)  # noqa: E731
        if sampler == "ddpm":
            x0 = sampling.ddpm_sample(
                eps_fn, self.schedule, x_T, generator=generator, clip=self.clip
            )
        elif sampler == "ddim":
            x0 = sampling.ddim_sample(
                eps_fn,
                self.schedule,
                x_T,
                num_steps=steps or 50,
                eta=eta,
                generator=generator,
                clip=self.clip,
            )
        elif sampler == "ode":
            x0 = sampling.probability_flow_sample(eps_fn, self.schedule, x_T, num_steps=steps or 25)
        else:
            raise ValueError(f"sampler must be 'ddpm', 'ddim' or 'ode', got {sampler!r}.")
        return self.to_data_space(x0)

    def ode_log_prob(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        steps: int = 100,
        trace: str = "hutchinson",
        num_probes: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(x) (B,) in nats of the probability-flow ODE's samples (``sampler="ode"``).

        An ODE estimate (``sampling.probability_flow_log_prob``), not an exact likelihood and
        not a bound; the affine map into model space adds D log(2 / (hi − lo)) for images.
        """
        models.check_data(self, x)
        log_p = sampling.probability_flow_log_prob(
            lambda x_t, t: self.eps(x_t, t, y), self.schedule, self.to_model_space(x),
            num_steps=steps, trace=trace, num_probes=num_probes, generator=generator,
        )  # fmt: skip
        if self.data_range is not None:
            lo, hi = self.data_range
            log_p = log_p + math.prod(self.data_shape) * math.log(2 / (hi - lo))
        return log_p

    def encode(self, x: Tensor, y: Tensor | None = None, *, steps: int = 25) -> Tensor:
        """The noise x_T from which ``sample(..., sampler="ode", steps=steps, x_T=...)`` gives x:
        the probability-flow ODE run from the data to the noise (DDIM inversion)."""
        models.check_data(self, x)
        return sampling.probability_flow_encode(
            lambda x_t, t: self.eps(x_t, t, y), self.schedule, self.to_model_space(x),
            num_steps=steps,
        )  # fmt: skip


@models.register_conformance("diffusion-unet")
def _tiny_image_diffusion() -> models.ConformanceCase:
    from coursekit import networks
    from coursekit.diffusion.schedules import cosine_schedule

    net = networks.UNet(
        in_ch=1, base=8, mults=(1, 2), num_classes=10, image_size=8, attention=False
    )
    model = Diffusion(net, cosine_schedule(10), data_shape=(1, 8, 8), num_classes=10, p_uncond=0.2)
    return models.ConformanceCase(
        model=model, x=torch.rand(4, 1, 8, 8), y=torch.tensor([0, 1, 2, 3]), data_range=(0.0, 1.0)
    )


@models.register_conformance("diffusion-toy")
def _tiny_toy_diffusion() -> models.ConformanceCase:
    from coursekit import networks

    net = networks.TimeConditionedMLP(in_dim=2, hidden=16, depth=2)
    # a mild 10-step schedule: without clipping, an untrained net at ᾱ ≈ 0 would explode x0_hat
    schedule = NoiseSchedule(torch.linspace(0.01, 0.2, 10), name="tiny")
    model = Diffusion(net, schedule, data_shape=(2,), data_range=None)
    return models.ConformanceCase(model=model, x=torch.randn(4, 2), data_range=None)
