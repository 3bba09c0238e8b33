"""``FlowMatching``: a velocity network v_θ(x, s, y) on the course's model interface.

Convention (Lipman et al., 2023): flow time **s = 0 is noise, s = 1 is data**; the ODE
dx/ds = v_θ(x, s) is integrated from x₀ ~ N(0, I) at s = 0 to a sample at s = 1 by any solver
of ``coursekit.solvers`` on a uniform grid of ``steps`` steps. The probability path is
``LinearPath()`` (rectified flow) unless told otherwise; a diffusion ``VPPath`` works too (see
``loss.path_times``).

Images in ``data_range`` (default [0, 1]) are mapped to [-1, 1] inside the model and samples
are mapped back (and clipped); 2-D toys use ``data_range=None``. ``coupling="ot"`` pairs each
training batch by minibatch optimal transport (``coupling.ot_pair``). Class-conditional models
(``num_classes``) train with label dropout ``p_uncond`` (the dropped labels become the null
label, which ``y=None`` also means), and sample with classifier-free guidance on the velocity,
v = v(x, s, ∅) + w (v(x, s, y) − v(x, s, ∅)).

``log_prob`` is an **ODE estimate** (``likelihood_kind``): the instantaneous change of
variables integrated by ``solvers.ode_log_prob`` from the data (s = 1) back to the Gaussian
(s = 0), with the exact trace (small dimensions) or Hutchinson's estimator (images). It is the
density of the model's continuous distribution, in nats; for discrete images pass dequantized
data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from coursekit import models, networks, solvers, utils
from coursekit.diffusion.sampling import guided
from coursekit.flow_matching.coupling import ot_pair
from coursekit.flow_matching.loss import PREDICTIONS, cfm_loss, data_to_velocity
from coursekit.flows.base import standard_normal_log_prob
from coursekit.paths import AffinePath, LinearPath

COUPLINGS = ("independent", "ot")


class FlowMatching(models.GenerativeModel):
    """Flow matching / rectified flow around a velocity network ``net(x, s, y)``."""

    likelihood_kind = "ODE estimate"

    def __init__(
        self,
        net: nn.Module,
        *,
        data_shape: tuple[int, ...],
        path: AffinePath | None = None,
        data_range: tuple[float, float] | None = (0.0, 1.0),
        coupling: str = "independent",
        num_classes: int | None = None,
        p_uncond: float = 0.0,
        prediction: str = "velocity",
    ):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
        if p_uncond > 0 and num_classes is None:
            raise ValueError("Label dropout (p_uncond > 0) needs num_classes for the null label.")
        self.net = net
        self.data_shape = tuple(data_shape)
        self.path = path if path is not None else LinearPath()
        self.data_range = data_range
        self.coupling = coupling
        self.num_classes = num_classes
        self.p_uncond = p_uncond
        self.prediction = prediction

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

    # --- the objective -------------------------------------------------------------------------
    def loss(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        noise: Tensor | None = None,
        s: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The conditional flow-matching loss on data ``x`` (B, *data_shape) in ``data_range``.

        ``noise`` (x₀, like x) and ``s`` (B,) may be given for exact tests; with
        ``coupling="ot"`` the noise is re-paired to the batch by minibatch OT first. Labels are
        used only by a class-conditional model (``num_classes``).
        """
        models.check_data(self, x)
        if self.num_classes is None:
            y = None  # an unconditional model ignores labels (fit passes an ImageSet's)
        x1 = self.to_model_space(x)
        if noise is None:
            noise = utils.randn(x1.shape, x1, generator)
        if self.coupling == "ot":
            noise, x1 = ot_pair(noise, x1)
        if y is not None and self.p_uncond > 0:
            # label dropout: one network learns v(x | y) and v(x) (Ho & Salimans, 2022)
            y = models.drop_labels(y, self.p_uncond, self.num_classes, generator)
        loss = cfm_loss(
            self.net, self.path, x1, y=y, s=s, eps=noise, generator=generator,
            prediction=self.prediction,
        )  # fmt: skip
        return {"loss": loss}

    # --- the velocity field and its ODE --------------------------------------------------------
    def net_velocity(self, x: Tensor, s: Tensor, y: Tensor | None = None) -> Tensor:
        """dx/ds at (x, s): the network's output, converted if it predicts the data."""
        out = self.net(x, s, y)
        if self.prediction == "data":
            return data_to_velocity(self.path, x, s, out)
        return out

    def velocity(self, y: Tensor | None = None, guidance_scale: float | None = None):
        """The field f(x, s) the solvers integrate; guided when a scale other than 1 is given."""
        if y is not None and guidance_scale is not None and guidance_scale != 1.0:
            return guided(self.net_velocity, y, guidance_scale)
        return lambda x, s: self.net_velocity(x, s, y)

    def transport(
        self,
        x0: Tensor,
        y: Tensor | None = None,
        *,
        solver: str = "euler",
        steps: int = 100,
        guidance_scale: float | None = None,
        record: bool = False,
    ) -> Tensor | solvers.Trajectory:
        """Integrate from noise ``x0`` (model space) at s = 0 to s = 1; no clipping."""
        if solver not in solvers.ODE_SOLVERS:
            raise ValueError(
                f"solver must be one of {sorted(solvers.ODE_SOLVERS)}, got {solver!r}."
            )
        grid = solvers.uniform_grid(0.0, 1.0, steps + 1)
        f = self.velocity(y, guidance_scale)
        return solvers.ODE_SOLVERS[solver](f, x0, grid, record=record)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        solver: str = "euler",
        steps: int = 100,
        guidance_scale: float | None = None,
        x0: Tensor | None = None,
    ) -> Tensor:
        """``n`` samples in data space, (n, *data_shape): ``steps`` steps of ``solver`` from
        x₀ ~ N(0, I) (or the given ``x0``); ``steps * k`` network calls for a k-stage solver
        (twice that with guidance)."""
        if x0 is None:
            x0 = utils.randn((n, *self.data_shape), torch.empty(0, device=self.device), generator)
        return self.to_data_space(
            self.transport(x0, y, solver=solver, steps=steps, guidance_scale=guidance_scale)
        )

    def log_prob(
        self,
        x: Tensor,
        y: Tensor | None = None,
        *,
        trace: str = "exact",
        steps: int = 20,
        method: str = "rk4",
        num_probes: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(x) (B,) in nats, an ODE estimate: integrate from s = 1 (x) back to s = 0.

        ``trace="exact"`` takes one backward pass per dimension; ``"hutchinson"`` is unbiased
        with ``num_probes`` Rademacher probes. The affine map into model space adds
        D log(2 / (hi − lo)) for images.
        """
        models.check_data(self, x)
        z = self.to_model_space(x)
        log_p = solvers.ode_log_prob(
            self.velocity(y), z, solvers.uniform_grid(1.0, 0.0, steps + 1),
            base_log_prob=standard_normal_log_prob, method=method, trace=trace,
            num_probes=num_probes, generator=generator,
        )  # fmt: skip
        if self.data_range is not None:
            lo, hi = self.data_range
            log_p = log_p + math.prod(self.data_shape) * math.log(2 / (hi - lo))
        return log_p


class PairedObjective(nn.Module):
    """Train a ``FlowMatching`` model on fixed (noise, data) pairs: reflow and distillation.

    ``loss(pairs, y)`` takes ``pairs`` (B, 2, *data_shape) in model space: ``pairs[:, 0]`` the
    noise x₀, ``pairs[:, 1]`` the point the ODE carried it to (``reflow.reflow_pairs``).
    ``time="uniform"`` is rectified flow's reflow (the CFM loss on these pairs, Liu et al.
    2023, eq. 6); ``time="zero"`` distils to one step, ||v(x₀, 0) − (x₁ − x₀)||², so that one
    Euler step x₀ + v(x₀, 0) lands on x₁ (their §2.3, with the squared error as the distance).
    A model that predicts the data regresses x̂₁ on x₁ instead (at s = 0 the same thing).
    """

    def __init__(self, model: FlowMatching, time: str = "uniform"):
        super().__init__()
        if time not in ("uniform", "zero"):
            raise ValueError(f"time must be 'uniform' or 'zero', got {time!r}.")
        self.model = model
        self.time = time

    def loss(self, pairs: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        if pairs.ndim < 2 or pairs.shape[1] != 2:
            raise ValueError(
                f"pairs must be (B, 2, *data_shape) with noise at [:, 0] and data at [:, 1], got "
                f"{tuple(pairs.shape)}; build them with torch.stack([x0, x1], 1)."
            )
        x0, x1 = pairs[:, 0], pairs[:, 1]
        s = torch.zeros(x1.shape[0], device=x1.device) if self.time == "zero" else None
        m = self.model
        return {"loss": cfm_loss(m.net, m.path, x1, y=y, s=s, eps=x0, prediction=m.prediction)}


@models.register_conformance("flow-matching-toy")
def _tiny_toy_flow() -> models.ConformanceCase:
    net = networks.TimeConditionedMLP(in_dim=2, hidden=16, depth=2)
    model = FlowMatching(net, data_shape=(2,), data_range=None)
    return models.ConformanceCase(
        model=model, x=torch.randn(4, 2), data_range=None, estimated_log_prob=True,
        checks_input=True,
    )  # fmt: skip


@models.register_conformance("flow-matching-image-ot-cfg")
def _tiny_image_flow() -> models.ConformanceCase:
    net = networks.ImageMLP((1, 4, 4), hidden=16, depth=1, num_classes=3)
    model = FlowMatching(net, data_shape=(1, 4, 4), coupling="ot", num_classes=3, p_uncond=0.2)
    return models.ConformanceCase(
        model=model, x=torch.rand(4, 1, 4, 4), y=torch.tensor([0, 1, 2, 0]),
        data_range=(0.0, 1.0), estimated_log_prob=True, checks_input=True,
    )  # fmt: skip


@models.register_conformance("latent-flow-matching")
def _tiny_latent_flow() -> models.ConformanceCase:
    """Latent flow matching (Dao et al. 2023): lecture 06's latent wrapper around a FlowMatching."""
    from coursekit import likelihoods, vae
    from coursekit.diffusion.latent import LatentDiffusion

    encoder = nn.Sequential(nn.Flatten(), networks.MLP(16, 3, hidden=16, depth=1))
    decoder = networks.MLP(3, 16, hidden=16, depth=1)
    ae = vae.Autoencoder(encoder, decoder, likelihoods.Bernoulli(), latent_dim=3, x_shape=(1, 4, 4))
    inner = FlowMatching(
        networks.TimeConditionedMLP(in_dim=3, hidden=16, depth=1), data_shape=(3,), data_range=None
    )
    return models.ConformanceCase(model=LatentDiffusion(ae, inner), x=torch.rand(4, 1, 4, 4))
