"""Conditional flows: an invertible map of x whose parameters depend on a condition y.

For every fixed condition the flow is an ordinary flow, so the change of variables gives an
exact conditional density (Winkler et al. 2019, "Learning likelihoods with conditional
normalizing flows", eq. 3):

    log p(x | y) = log N(f(x; h(y)); 0, I) + log|det df(x; h(y))/dx|,

with ``h`` the *conditioning network*: ``y -> context (B, K)``. Only the couplings see the
context; the log-det is still the sum of the log-scales (their network may read the context
freely: it never sees the part it transforms). ``h`` can be a one-hot of a class label
(``OneHot``), a small network on a low-resolution image (SRFlow, Lugmayr et al. 2020), or
another flow's latent (C-Flow, Pumarola et al. 2020: ``PairedFlow``).

Same convention as ``coursekit.flows.base``: forward is x -> z with log|det dz/dx|, (B,)
nats; inverse is z -> x with log|det dx/dz|. The conditional layers work on vectors (B, D):
put ``Reshape`` in front for images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, networks, utils
from coursekit.flows.base import Flow, FlowModel, standard_normal_log_prob


class ConditionalFlow(Flow):
    """One invertible layer of x given a context (B, K): ``forward(x, context)``."""

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, context)")

    def inverse(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement inverse(z, context)")


class ConditionalAffineCoupling(ConditionalFlow):
    """RealNVP's affine coupling whose shift and scale read the context too:

        z = m*x + (1-m) * (x * exp(s) + t),   (t, s) = net([m*x, context]).

    ``net`` maps (B, D + K) to (B, 2D); the last layer starts at zero (identity at init)."""

    def __init__(self, mask: Tensor, net: nn.Module, *, scale_limit: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = net
        self.scale_limit = scale_limit

    def shift_and_log_scale(self, x_masked: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        t, raw = self.net(torch.cat([x_masked, context], 1)).chunk(2, dim=1)  # (B, D) each
        return t, self.scale_limit * torch.tanh(raw / self.scale_limit)

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        m = self.mask
        t, s = self.shift_and_log_scale(m * x, context)
        z = m * x + (1 - m) * (x * s.exp() + t)
        return z, ((1 - m) * s).sum(1)

    def inverse(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        m = self.mask
        t, s = self.shift_and_log_scale(m * z, context)
        x = m * z + (1 - m) * (z - t) * (-s).exp()
        return x, -((1 - m) * s).sum(1)


def coupling_net(dim: int, context_dim: int, hidden: int = 64) -> nn.Module:
    """(B, dim + context_dim) -> (B, 2 dim), two hidden layers, the output layer zero."""
    net = networks.MLP(dim + context_dim, 2 * dim, hidden, depth=2, act=nn.ReLU)
    nn.init.zeros_(net.net[-1].weight)
    nn.init.zeros_(net.net[-1].bias)
    return net


class ConditionalCompose(ConditionalFlow):
    """Layers in order; conditional ones get the context, plain ``Flow`` layers (``Logit``,
    ``Reshape``, ``ActNorm``, ``Reverse``) do not. The log-dets add up."""

    def __init__(self, *layers: Flow):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def _call(layer: Flow, fn, x: Tensor, context: Tensor):
        return fn(x, context) if isinstance(layer, ConditionalFlow) else fn(x)

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = self._call(layer, layer, x, context)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = self._call(layer, layer.inverse, z, context)
            logdet = logdet + ld
        return z, logdet

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            shape = layer.out_shape(shape)
        return tuple(shape)


def conditional_coupling_stack(
    dim: int,
    context_dim: int,
    num_layers: int,
    hidden: int = 64,
    *,
    actnorm: bool = False,
    image_shape: tuple[int, ...] | None = None,
) -> list[Flow]:
    """``num_layers`` conditional couplings on (B, dim) with alternating masks: alternating
    dimensions, or with ``image_shape`` (C, H, W) the image's checkerboard, flattened."""
    from coursekit.flows import coupling, glow

    layers: list[Flow] = []
    for i in range(num_layers):
        if actnorm:
            layers.append(glow.ActNorm(dim))
        shape = (dim,) if image_shape is None else tuple(image_shape)
        mask = coupling.checkerboard_mask(shape, parity=i % 2).flatten()
        layers.append(ConditionalAffineCoupling(mask, coupling_net(dim, context_dim, hidden)))
    return layers


class OneHot(nn.Module):
    """The conditioning input for class labels: int64 (B,) -> one-hot float (B, num_classes)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    def forward(self, y: Tensor) -> Tensor:
        if y.dtype not in (torch.int64, torch.int32) or y.dim() != 1:
            raise ValueError(
                f"class labels must be integer indices of shape (B,), got {y.dtype} of shape "
                f"{tuple(y.shape)}."
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1}, got {int(y.min())}..{int(y.max())}."
            )
        return F.one_hot(y.long(), self.num_classes).to(self._device_probe.dtype)


class ConditionalFlowModel(models.GenerativeModel):
    """A conditional flow with a standard normal base: an exact density p(x | y).

    ``condition`` maps y to the context (``OneHot(K)`` for classes, any network for images).
    With class labels (``num_classes`` set) ``log_prob(x)`` without y is the exact marginal
    ``log (1/K) sum_c p(x | c)`` (uniform classes) and ``class_log_posterior`` classifies by
    Bayes' rule; otherwise y is required. ``loss`` is -log p(x | y), logged in continuous
    bits/dim (``"bpd_continuous"``).
    """

    def __init__(
        self,
        flow: ConditionalCompose,
        data_shape: tuple[int, ...],
        condition: nn.Module,
        *,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.flow = flow
        self.condition = condition
        self.data_shape = tuple(data_shape)
        self.num_classes = num_classes
        self.latent_shape = flow.out_shape(self.data_shape)

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    def context(self, y: Tensor | None, batch_size: int) -> Tensor:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} needs the condition y: call it as model.loss(x, y), "
                "model.log_prob(x, y) or model.sample(n, y)."
            )
        if len(y) != batch_size:
            raise ValueError(f"y has {len(y)} entries for a batch of {batch_size}.")
        return self.condition(y)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y), (B,) nats; without y (class labels only) the marginal log p(x)."""
        models.check_data(self, x)
        if y is None and self.num_classes is not None:
            return torch.logsumexp(self.class_log_joint(x), 1)
        z, logdet = self.flow(x, self.context(y, len(x)))
        return standard_normal_log_prob(z) + logdet

    def class_log_joint(self, x: Tensor) -> Tensor:
        """log p(x, c) = log p(x | c) - log K for every class c, (B, K)."""
        if self.num_classes is None:
            raise ValueError(f"{type(self).__name__} was built without num_classes.")
        B, K = len(x), self.num_classes
        labels = torch.arange(K, device=x.device).repeat_interleave(B)  # (K B,)
        lp = self.log_prob(x.repeat(K, *([1] * (x.dim() - 1))), labels)  # (K B,)
        return lp.view(K, B).T - math.log(K)

    def class_log_posterior(self, x: Tensor) -> Tensor:
        """log p(c | x) by Bayes' rule with uniform classes, (B, K)."""
        joint = self.class_log_joint(x)
        return joint - torch.logsumexp(joint, 1, keepdim=True)

    def change_condition(self, x: Tensor, y_source: Tensor, y_target: Tensor) -> Tensor:
        """x' = f^-1(f(x; y_source); y_target): keep the code z, swap the condition (the
        attribute edit of StyleFlow, Abdal et al. 2021, eq. 5)."""
        z, _ = self.flow(x, self.context(y_source, len(x)))
        return self.flow.inverse(z, self.context(y_target, len(x)))[0]

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        if y is None:
            self.context(None, len(x))  # the message saying that y is needed
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll, "bpd_continuous": nll.detach() / (self.num_dims * math.log(2))}

    def sample_given(
        self, y: Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """One sample of x for each condition in y (differentiable; ``sample`` is not)."""
        context = self.context(y, len(y))
        z = temperature * utils.randn((len(y), *self.latent_shape), context, generator)
        return self.flow.inverse(z, context)[0]

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None, temperature: float = 1.0) -> Tensor:
        """n samples given y (n, ...); without y, the classes 0, 1, ..., K-1, 0, ... in turn."""
        if y is None and self.num_classes is not None:
            y = torch.arange(n, device=self.device) % self.num_classes
        if y is None:
            self.context(None, n)  # the message saying that y is needed
        y = y.to(self.device)
        if len(y) != n:
            raise ValueError(f"sample(n={n}, y) needs one condition per sample, got {len(y)}.")
        return self.sample_given(y, temperature=temperature, generator=generator)


class PairedFlow(models.GenerativeModel):
    """The C-Flow idea (Pumarola et al. 2020) on paired data x = [a, b] (channels split):

        log p(a, b) = log p_A(a) + log p_B(b | z_a),   z_a = f_A(a),

    an exact joint density: one flow encodes a, the other generates b conditioned on a's
    latent (``model_b.condition`` maps the flattened z_a to its context). ``translate(a)``
    encodes a with flow A and samples b from flow B. Both are trained together by ``loss``.
    """

    def __init__(self, model_a: FlowModel, model_b: ConditionalFlowModel):
        super().__init__()
        self.model_a, self.model_b = model_a, model_b
        self.channels_a = model_a.data_shape[0]
        if tuple(model_a.data_shape[1:]) != tuple(model_b.data_shape[1:]):
            raise ValueError(
                f"the two parts must share their spatial shape, got {model_a.data_shape} and "
                f"{model_b.data_shape}."
            )
        self.data_shape = (self.channels_a + model_b.data_shape[0], *model_a.data_shape[1:])

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, : self.channels_a], x[:, self.channels_a :]

    def encode_a(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """z_a = f_A(a) flattened (B, D_a), and log p_A(a) (B,)."""
        z, logdet = self.model_a.flow(a)
        return z.flatten(1), standard_normal_log_prob(z) + logdet

    def log_prob(self, x: Tensor) -> Tensor:
        models.check_data(self, x)
        a, b = self.split(x)
        z_a, log_pa = self.encode_a(a)
        return log_pa + self.model_b.log_prob(b, z_a)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        nll = -self.log_prob(x).mean()
        return {
            "loss": nll,
            "bpd_continuous": nll.detach() / (math.prod(self.data_shape) * math.log(2)),
        }

    @torch.no_grad()
    def translate(self, a: Tensor, *, temperature: float = 1.0, generator=None) -> Tensor:
        """b ~ p_B(b | f_A(a)) for each a: encode with one flow, generate with the other."""
        z_a, _ = self.encode_a(a)
        return self.model_b.sample_given(z_a, temperature=temperature, generator=generator)

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None) -> Tensor:
        a = self.model_a.sample(n, generator=generator)
        return torch.cat([a, self.translate(a, generator=generator)], 1)


# ----------------------------------------------------------------------------- conformance


def _tiny_class_flow(dim: int = 2, num_classes: int = 3) -> ConditionalFlowModel:
    flow = ConditionalCompose(*conditional_coupling_stack(dim, num_classes, 4, hidden=8))
    return ConditionalFlowModel(flow, (dim,), OneHot(num_classes), num_classes=num_classes)


@models.register_conformance("flow-conditional-class")
def _tiny_conditional() -> models.ConformanceCase:
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 1])
    return models.ConformanceCase(
        model=_tiny_class_flow(), x=x, y=y, data_range=None, exact_log_prob=True, checks_input=True
    )


@models.register_conformance("flow-paired")
def _tiny_paired() -> models.ConformanceCase:
    from coursekit.flows import builders
    from coursekit.flows.base import Compose, Reshape

    a_flow = Compose(Reshape((1, 2, 2), (4,)), builders.coupling_stack(4, 2, hidden=8))
    model_a = FlowModel(a_flow, (1, 2, 2))
    b_flow = ConditionalCompose(Reshape((1, 2, 2), (4,)), *conditional_coupling_stack(4, 4, 2, 8))
    model_b = ConditionalFlowModel(b_flow, (1, 2, 2), nn.Identity())
    x = torch.randn(4, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    return models.ConformanceCase(
        model=PairedFlow(model_a, model_b), x=x, data_range=None, exact_log_prob=True,
        checks_input=True,
    )  # fmt: skip
