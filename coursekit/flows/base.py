"""Normalizing flows: an invertible map with a tractable log-determinant.

Convention (the one of Papamakarios et al. 2021, "Normalizing flows for probabilistic
modeling and inference", and of ``zuko``): a layer's **forward is the density direction**,
data ``x`` to latent ``z``,

    forward(x) -> (z, log|det dz/dx|)        inverse(z) -> (x, log|det dx/dz|)

each log-det one number per example, shape (B,), in nats. The change of variables (their
eq. 2) then reads

    log p_x(x) = log p_z(f(x)) + log|det df/dx|,

and the inverse's log-det is minus the forward's at the matching point. A composition sums
its layers' log-dets. ``FlowModel`` puts a standard normal base under a flow and offers the
course's interface (``loss``, ``sample``, exact ``log_prob``) on continuous data.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from coursekit import models, utils


class Flow(nn.Module):
    """One invertible layer. Subclasses implement ``forward`` and ``inverse``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement inverse(z)")

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one z for one x of ``shape`` (a squeeze or a split changes it)."""
        return tuple(shape)


class Compose(Flow):
    """Layers applied in order; the log-dets add up (the chain rule of determinants)."""

    def __init__(self, *layers: Flow):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            shape = layer.out_shape(shape)
        return tuple(shape)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over all but the batch dimension, (B,) nats."""
    z = z.flatten(1)
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


class ElementwiseAffine(Flow):
    """z = x * exp(log_scale) + shift, one learned pair per dimension (the simplest flow)."""

    def __init__(self, shape: tuple[int, ...] | int):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.shift = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = x * self.log_scale.exp() + self.shift
        return z, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        x = (z - self.shift) * (-self.log_scale).exp()
        return x, -self.log_scale.sum().expand(z.shape[0])


class Reverse(Flow):
    """Reverse the order of the features (dim 1): a permutation, log-det 0. Between two
    couplings or autoregressive layers it lets every dimension be transformed in turn."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.flip(1), z.new_zeros(z.shape[0])


class Reshape(Flow):
    """(B, *in_shape) <-> (B, *out_shape): a relabelling of the dimensions, log-det 0."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__()
        self.in_shape, self.to_shape = tuple(in_shape), tuple(out_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.to_shape), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z.reshape(z.shape[0], *self.in_shape), z.new_zeros(z.shape[0])

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.to_shape


class FlowModel(models.GenerativeModel):
    """A flow ``x -> z`` with a standard normal base: an exact density on continuous data.

    ``log_prob(x) = log N(f(x); 0, I) + log|det df/dx|`` in nats; ``loss`` is its mean negative,
    logged in bits per dimension as ``"bpd_continuous"`` (a density's figure, not comparable
    with discrete models: see ``coursekit.flows.dequantization`` for that).
    """

    def __init__(self, flow: Flow, data_shape: tuple[int, ...]):
        super().__init__()
        self.flow = flow
        self.data_shape = tuple(data_shape)
        self.latent_shape = flow.out_shape(self.data_shape)

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    def log_prob(self, x: Tensor) -> Tensor:
        models.check_data(self, x)
        z, logdet = self.flow(x)
        return standard_normal_log_prob(z) + logdet

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        nll = -self.log_prob(x).mean()
        bpd = nll.detach() / (self.num_dims * math.log(2))
        return {"loss": nll, "bpd_continuous": bpd}

    def sample_with_log_prob(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n samples x and their log p(x) (differentiable: reverse-KL fits use it)."""
        z = utils.randn((n, *self.latent_shape), self._like(), generator)
        x, logdet_inv = self.flow.inverse(z)
        return x, standard_normal_log_prob(z) - logdet_inv

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None) -> Tensor:
        z = utils.randn((n, *self.latent_shape), self._like(), generator)
        return self.flow.inverse(z)[0]

    def _like(self) -> Tensor:
        for t in self.parameters():
            return t
        return torch.zeros((), device=self.device)


@models.register_conformance("flow-affine-2d")
def _tiny_flow() -> models.ConformanceCase:
    from coursekit.flows import builders

    model = builders.realnvp(2, num_layers=2, hidden=8)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    return models.ConformanceCase(
        model=model, x=x, data_range=None, exact_log_prob=True, checks_input=True
    )


@models.register_conformance("flow-spline-2d")
def _tiny_spline_flow() -> models.ConformanceCase:
    from coursekit.flows import builders

    model = builders.spline_flow(2, num_layers=2, hidden=8, bins=4)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    return models.ConformanceCase(
        model=model, x=x, data_range=None, exact_log_prob=True, checks_input=True
    )
