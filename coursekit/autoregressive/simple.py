"""The simplest autoregressive models: a full table, FVSBN and NADE.

- ``Histogram``: one probability per joint configuration, K^D - 1 free parameters. Exact
  and hopeless beyond a handful of dimensions; the chain rule with full conditional tables
  has exactly the same count, sum_i K^(i-1) (K - 1) = K^D - 1.
- ``FVSBN`` (fully visible sigmoid belief net; Frey 1998, Gan et al. 2015): one logistic
  (softmax) regression per dimension on the values of the previous dimensions,
  logits_i = b_i + sum_{j<i} W_ij x_j. O(D^2 K) parameters.
- ``NADE`` (Larochelle & Murray 2011, eq. 3-4): one hidden layer whose weights are shared
  by all conditionals, h_i = sigmoid(c + W[:, <i] x_<i), logits_i = b_i + V_i h_i. The
  pre-activations of all D conditionals come from one cumulative sum: O(D H) work.

Data convention of ``base.Autoregressive``: x in [0, 1] = k / (levels - 1).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models, utils
from coursekit.autoregressive.base import Autoregressive
from coursekit.metrics import units


class Histogram(models.GenerativeModel):
    """A categorical over all ``levels ** D`` configurations: p(x) = softmax(table)[index(x)].

    Only for tiny problems (the table is materialized). x is (B, D) integer levels, or
    floats k / (levels - 1).
    """

    def __init__(self, num_dims: int, levels: int):
        super().__init__()
        if levels**num_dims > 2**20:
            raise ValueError(
                f"a full table over {levels}^{num_dims} configurations is too large; "
                "that is the point of the chain rule with shared parameters."
            )
        self.num_dims, self.levels = num_dims, levels
        self.data_shape = (num_dims,)
        self.table = nn.Parameter(torch.zeros(levels**num_dims))  # logits, one per configuration
        # x -> row index: read the levels as the digits of a base-K number
        self.register_buffer("place", levels ** torch.arange(num_dims - 1, -1, -1))

    @property
    def num_free_parameters(self) -> int:
        return self.levels**self.num_dims - 1  # the softmax removes one degree of freedom

    def index(self, x: Tensor) -> Tensor:
        """The table row of each configuration (B,); x is checked (shape, levels, NaN) first."""
        models.check_data(self, x)
        k = models.levels_of(self, x, self.levels)  # (B, D)
        return (k * self.place).sum(-1)  # (B,)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.log_softmax(self.table, 0)[self.index(x)]

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bpd": units.bits_per_dim(nll.detach(), self.num_dims)}

    def support(self) -> Tensor:
        """Every configuration, (levels ** D, D) int64, in table order."""
        grid = itertools.product(range(self.levels), repeat=self.num_dims)
        return torch.tensor(list(grid), device=self.table.device)

    @torch.no_grad()
    def sample(self, n: int, y=None, *, generator: torch.Generator | None = None) -> Tensor:
        probs = torch.softmax(self.table, 0)
        idx = utils.multinomial(probs, n, replacement=True, generator=generator)  # (n,)
        k = self.support()[idx]  # (n, D)
        return k.float() / (self.levels - 1)


def order_mask(order: Tensor) -> Tensor:
    """(D, D) float: mask[i, j] = 1 when dimension j comes strictly before i in ``order``."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    return (rank[None, :] < rank[:, None]).float()


class FVSBN(Autoregressive):
    """A softmax regression per dimension on the previous values (binary: a logistic one)."""

    def __init__(self, shape: tuple[int, ...], levels: int = 2, order: Tensor | None = None):
        super().__init__(shape, levels, order)
        D = self.num_dims
        self.weight = nn.Parameter(torch.zeros(levels, D, D))  # W[k, i, j]: x_j -> logit k of x_i
        self.bias = nn.Parameter(torch.zeros(levels, D))
        self.register_buffer("mask", order_mask(self.order))  # (D, D), strictly "before"

    def logits(self, k: Tensor) -> Tensor:
        B = k.shape[0]
        x = 2 * self.from_levels(k).flatten(1) - 1  # (B, D) in [-1, 1]
        logits = torch.einsum("bj,kij->bki", x, self.weight * self.mask) + self.bias  # (B, K, D)
        return logits.view(B, self.levels, *self.data_shape)


class NADE(Autoregressive):
    """One sigmoid hidden layer shared across the D conditionals (Larochelle & Murray 2011)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        levels: int = 2,
        hidden: int = 64,
        order: Tensor | None = None,
    ):
        super().__init__(shape, levels, order)
        D = self.num_dims
        self.W = nn.Parameter(torch.randn(D, hidden) / math.sqrt(D))  # shared input weights
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(D, levels, hidden) / math.sqrt(hidden))  # per output
        self.b = nn.Parameter(torch.zeros(D, levels))

    def logits(self, k: Tensor) -> Tensor:
        B = k.shape[0]
        x = 2 * self.from_levels(k).flatten(1)[:, self.order] - 1  # (B, D), in chain-rule order
        contrib = x[:, :, None] * self.W[self.order]  # (B, D, H): what x_t adds to every a_s, s > t
        # a_t = c + sum_{s<t} W_s x_s: an exclusive cumulative sum (shifted by one step)
        a = self.c + F.pad(contrib.cumsum(1), (0, 0, 1, 0))[:, :-1]  # (B, D, H)
        h = torch.sigmoid(a)
        logits_t = torch.einsum("bth,tkh->bkt", h, self.V[self.order]) + self.b[self.order].T
        logits = torch.empty_like(logits_t)  # (B, K, D), back from chain-rule order to raster
        logits[:, :, self.order] = logits_t
        return logits.view(B, self.levels, *self.data_shape)


def _levels_batch(shape: tuple[int, ...], levels: int) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, levels, (4, *shape), generator=g).float() / (levels - 1)


@models.register_conformance("ar-histogram")
def _tiny_histogram() -> models.ConformanceCase:
    return models.ConformanceCase(
        model=Histogram(3, 3), x=_levels_batch((3,), 3), exact_log_prob=True, checks_input=True
    )


@models.register_conformance("ar-fvsbn")
def _tiny_fvsbn() -> models.ConformanceCase:
    return models.ConformanceCase(
        model=FVSBN((1, 4, 4), 3),
        x=_levels_batch((1, 4, 4), 3),
        exact_log_prob=True,
        checks_input=True,
    )


@models.register_conformance("ar-nade")
def _tiny_nade() -> models.ConformanceCase:
    return models.ConformanceCase(
        model=NADE((1, 4, 4), 2, hidden=8),
        x=_levels_batch((1, 4, 4), 2),
        exact_log_prob=True,
        checks_input=True,
    )
