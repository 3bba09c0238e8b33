"""Dequantization: a density over [0, 1]^D becomes a model of discrete data.

Data are levels k in {0, ..., L-1}^D (the digits: L = 17; the course's floats x = k / (L-1)
are accepted too). Dequantized data are y = (k + u) / L with u in [0, 1)^D, so the L bins
of width 1/L tile [0, 1) exactly. For a density p_Y on [0, 1]^D and any noise distribution
q(u | k) (Theis et al. 2016, §3.1; Ho et al. 2019, "Flow++", eq. 12):

    log P(k) = log int_[0,1)^D p_Y((k + u) / L) L^-D du
             >= E_q [ log p_Y((k + u) / L) - D log L - log q(u | k) ]                  (*)

In bits per dimension:  bpd(k) <= E_q[ -log2 p_Y(y) + log2 q(u | k) ] / D + log2 L.
The ``+ log2 L`` is the offset for the number of grey levels (log2 17 = 4.087 for the
digits, 8 for 256 levels): without it a density's figure is not comparable with the exact
discrete numbers of lecture 03. Uniform dequantization is q = 1 (log q = 0); variational
dequantization learns q(u | k) with a conditional flow and tightens (*). ``log_prob_bound``
with ``num_samples = S`` is the importance-weighted version, log (1/S) sum_s exp(bound_s),
which tends to log P(k) as S grows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, utils
from coursekit.flows.base import Flow, standard_normal_log_prob
from coursekit.metrics import units


class Logit(Flow):
    """y in (0, 1) -> logit(a + (1 - 2a) y) (RealNVP §4.1): from the unit cube to R^D.

    With a > 0 the image of R is slightly wider than [0, 1], so a flow behind it puts some
    mass outside the unit cube: the discrete model then sums to a little less than one (a
    valid, slightly pessimistic model). a = 0 is exact but unbounded at the edges.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        self.alpha = alpha

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * y
        z = torch.log(p) - torch.log1p(-p)
        logdet = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return z, logdet.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        p = torch.sigmoid(z)
        y = (p - self.alpha) / (1 - 2 * self.alpha)
        logdet = F.logsigmoid(z) + F.logsigmoid(-z) - math.log(1 - 2 * self.alpha)
        return y, logdet.flatten(1).sum(1)


class HistogramCDF(Flow):
    """y in [0, 1] -> z = Phi^-1(F(y)) per dimension, F the CDF of a histogram with ``bins``
    equal bins and learned probabilities: the density of y is bins * pi_b(y) exactly.

    With ``bins = L`` and uniform dequantization, bound (*) equals the exact discrete
    log-likelihood of independent categorical pixels: the known answer of the tests, and
    lecture 03's "independent pixels" baseline rebuilt as a flow.
    """

    def __init__(self, shape: tuple[int, ...], bins: int):
        super().__init__()
        self.bins = bins
        self.logits = nn.Parameter(torch.zeros(*shape, bins))

    def _normal(self):
        return torch.distributions.Normal(0.0, 1.0)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        log_pi = self.logits.log_softmax(-1)  # (*shape, bins)
        pi = log_pi.exp()
        b = (y * self.bins).floor().clamp(0, self.bins - 1).long()  # the bin of each y
        cdf_left = torch.cumsum(pi, -1) - pi  # (*shape, bins): mass below each bin
        pick = lambda t: torch.gather(t.expand(*y.shape, self.bins), -1, b[..., None])[..., 0]  # noqa: E731
        frac = y * self.bins - b
        u = (pick(cdf_left) + pick(pi) * frac).clamp(1e-6, 1 - 1e-6)
        z = self._normal().icdf(u)
        log_density = math.log(self.bins) + pick(log_pi)  # log dF/dy
        logdet = log_density - self._normal().log_prob(z)  # d Phi^-1(u) / du = 1 / N(z)
        return z, logdet.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        pi = self.logits.softmax(-1)
        u = self._normal().cdf(z)
        cdf = torch.cumsum(pi, -1)  # (*shape, bins)
        b = (u[..., None] > cdf).sum(-1).clamp(0, self.bins - 1)  # (B, *shape)
        pick = lambda t: torch.gather(t.expand(*z.shape, self.bins), -1, b[..., None])[..., 0]  # noqa: E731
        p_b = pick(pi)
        y = (b + (u - (pick(cdf) - p_b)) / p_b) / self.bins
        logdet = self._normal().log_prob(z) - math.log(self.bins) - p_b.log()
        return y, logdet.flatten(1).sum(1)


class UniformDequantizer(nn.Module):
    """q(u | k) = 1 on [0, 1)^D: u is plain uniform noise, log q = 0."""

    def forward(self, k: Tensor, noise: Tensor | None = None, generator=None):
        u = noise if noise is not None else utils.rand(tuple(k.shape), _float(k), generator)
        return u, u.new_zeros(k.shape[0])


class VariationalDequantizer(nn.Module):
    """q(u | k): u = sigmoid(h), h from eps ~ N(0, I) by affine couplings conditioned on k
    (Flow++ §3.1); log q(u | k) = log N(eps) - log|det du/deps|. Works on the flattened D."""

    def __init__(self, num_dims: int, levels: int, hidden: int = 64, num_layers: int = 4):
        super().__init__()
        self.levels = levels
        self.register_buffer(
            "masks", torch.stack([(torch.arange(num_dims) + i) % 2 == 0 for i in range(num_layers)])
        )
        self.nets = nn.ModuleList()
        for _ in range(num_layers):
            net = nn.Sequential(
                nn.Linear(2 * num_dims, hidden), nn.ReLU(), nn.Linear(hidden, 2 * num_dims)
            )
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
            self.nets.append(net)

    def forward(self, k: Tensor, noise: Tensor | None = None, generator=None):
        B = k.shape[0]
        c = 2 * k.flatten(1).float() / (self.levels - 1) - 1  # (B, D) context in [-1, 1]
        eps = noise if noise is not None else utils.randn(tuple(c.shape), c, generator)
        eps = eps.flatten(1)
        h, log_q = eps, standard_normal_log_prob(eps)
        for m, net in zip(self.masks.float(), self.nets):
            t, s = net(torch.cat([m * h, c], 1)).chunk(2, 1)  # (B, D) each
            s = 2 * torch.tanh(s / 2)
            h = m * h + (1 - m) * (h * s.exp() + t)
            log_q = log_q - ((1 - m) * s).sum(1)
        u = torch.sigmoid(h)
        log_q = log_q - (F.logsigmoid(h) + F.logsigmoid(-h)).sum(1)  # du/dh = u (1 - u)
        return u.view(B, *k.shape[1:]), log_q


def _float(k: Tensor) -> Tensor:
    return k if k.is_floating_point() else torch.zeros((), device=k.device)


class DequantizedFlow(models.GenerativeModel):
    """A flow density on y = (k + u) / L in [0, 1]^D, as a model of the L levels.

    ``flow`` maps y to z (start it with ``Logit()`` to leave the unit cube); ``dequantizer``
    is ``UniformDequantizer()`` (default) or a ``VariationalDequantizer``. ``loss`` is the
    negative bound (*) with one noise draw, logged as discrete ``"bpd"`` (an upper bound on
    the model's discrete bits/dim).
    """

    likelihood_hint = (
        "A dequantized flow gives a lower bound on log P(k): use log_prob_bound(x, num_samples) "
        "(importance-weighted with num_samples draws of the dequantization noise)."
    )

    def __init__(self, flow: Flow, data_shape: tuple[int, ...], levels: int, dequantizer=None):
        super().__init__()
        self.flow = flow
        self.data_shape = tuple(data_shape)
        self.levels = levels
        self.dequantizer = dequantizer if dequantizer is not None else UniformDequantizer()
        self.latent_shape = flow.out_shape(self.data_shape)

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    def log_density(self, y: Tensor) -> Tensor:
        """log p_Y(y) of the dequantized y in [0, 1]^D, (B,) nats."""
        z, logdet = self.flow(y)
        return standard_normal_log_prob(z) + logdet

    def bound(self, x: Tensor, *, noise: Tensor | None = None, generator=None) -> Tensor:
        """One draw of bound (*): log p_Y(y) - D log L - log q(u | k), (B,) nats."""
        models.check_data(self, x)
        k = models.levels_of(self, x, self.levels)
        u, log_q = self.dequantizer(k, noise, generator)
        y = (k + u) / self.levels
        return self.log_density(y) - self.num_dims * math.log(self.levels) - log_q

    @torch.no_grad()
    def log_prob_bound(
        self, x: Tensor, num_samples: int = 1, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """log (1/S) sum_s exp(bound_s), S = num_samples: a lower bound on log P(k), (B,)."""
        draws = torch.stack([self.bound(x, generator=generator) for _ in range(num_samples)])
        return torch.logsumexp(draws, 0) - math.log(num_samples)

    def loss(self, x: Tensor, y: Tensor | None = None, *, noise: Tensor | None = None):
        nll = -self.bound(x, noise=noise).mean()
        return {"loss": nll, "bpd": units.bits_per_dim(nll.detach(), self.num_dims)}

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None) -> Tensor:
        like = next(iter(self.parameters()), torch.zeros(()))
        z = utils.randn((n, *self.latent_shape), like, generator)
        y_cont = self.flow.inverse(z)[0]
        k = (y_cont * self.levels).floor().clamp(0, self.levels - 1)
        return k / (self.levels - 1)


@models.register_conformance("flow-dequantized")
def _tiny_dequantized() -> models.ConformanceCase:
    from coursekit.flows import builders

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (4, 1, 2, 2), generator=g).float() / 4
    model = DequantizedFlow(
        builders.realnvp_flat((1, 2, 2), num_layers=2, hidden=8),
        (1, 2, 2),
        levels=5,
        dequantizer=VariationalDequantizer(4, 5, hidden=8, num_layers=2),
    )
    return models.ConformanceCase(model=model, x=x, exact_log_prob=False, checks_input=True)
