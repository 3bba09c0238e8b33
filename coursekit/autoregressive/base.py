"""The chain rule as a model: p(x) = prod_i p(x_i | x_<i), one categorical per dimension.

Every model of lecture 03 is an ``Autoregressive``: a network maps the data to one vector
of logits per dimension such that the logits of dimension ``order[t]`` depend only on the
dimensions ``order[:t]`` (the *autoregressive property*, tested by gradients). The class
then supplies the three verbs of the course:

- ``log_prob(x)``: the exact log-likelihood in nats, (B,), from one parallel pass
  (teacher forcing: every conditional sees the true prefix);
- ``loss(x)``: the mean negative log-likelihood, logged in bits per dimension;
- ``sample(n)``: ancestral sampling, one dimension at a time (D network passes).

Convention: data ``x`` lies in [0, 1] with shape (B, *shape) and takes the values
k / (levels - 1), k = 0..levels-1 (what ``ImageSet.float()`` returns). Integer tensors
(e.g. ``ImageSet.images``, uint8) are accepted as the levels k themselves. Internally the
networks see the integer levels ``k`` (B, *shape), int64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from coursekit import models, utils
from coursekit.metrics import units


class Autoregressive(models.GenerativeModel):
    """Base class: subclasses implement ``logits(k) -> (B, levels, *shape)``.

    Args:
        shape: the shape of one example, e.g. (1, 8, 8) or (1, T).
        levels: the number of values each dimension takes.
        order: a permutation of range(D), D = prod(shape): the order of the chain rule
            over the flattened dimensions. Defaults to raster order.
    """

    def __init__(self, shape: tuple[int, ...], levels: int, order: Tensor | None = None):
        super().__init__()
        self.data_shape = tuple(shape)
        self.levels = int(levels)
        D = math.prod(self.data_shape)
        order = torch.arange(D) if order is None else torch.as_tensor(order).long()
        if sorted(order.tolist()) != list(range(D)):
            raise ValueError(f"order must be a permutation of range({D}), got {order.tolist()}.")
        self.register_buffer("order", order, persistent=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """The former name of ``data_shape`` (still read by the lecture-03 checks)."""
        return self.data_shape

    @property
    def num_dims(self) -> int:
        return math.prod(self.data_shape)

    # -- conversions between data range and integer levels ---------------------------------

    def to_levels(self, x: Tensor) -> Tensor:
        """Data x (floats k / (levels - 1) or integer levels) -> integer levels k, int64, same
        shape; a wrong shape, values between or outside the levels, or NaN raise a ValueError."""
        models.check_data(self, x)
        return models.levels_of(self, x, self.levels)

    def from_levels(self, k: Tensor) -> Tensor:
        """Integer levels k -> data range [0, 1], float32."""
        return k.float() / (self.levels - 1)

    # -- the model ---------------------------------------------------------------------------

    def logits(self, k: Tensor) -> Tensor:
        """(B, *shape) int64 levels -> (B, levels, *shape) logits of p(x_i | x_<i)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) in nats, (B,): the sum of the D conditional log-probabilities."""
        k = self.to_levels(x)
        logp = -F.cross_entropy(self.logits(k), k, reduction="none")  # (B, *shape)
        return logp.flatten(1).sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "bpd": units.bits_per_dim(nll.detach(), self.num_dims)}

    @torch.no_grad()
    def conditional(self, k: Tensor, t: int, temperature: float = 1.0) -> Tensor:
        """Logits of dimension ``order[t]`` given the prefix of k, (B, levels).

        Only k[order[:t]] matters (the autoregressive property); the rest may hold anything.
        """
        logits = self.logits(k).flatten(2)  # (B, levels, D)
        return logits[:, :, self.order[t]] / temperature

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Ancestral sampling: D sequential network passes; returns (n, *shape) in [0, 1]."""
        was_training = self.training
        self.eval()  # no dropout while sampling
        k = torch.zeros(n, self.num_dims, dtype=torch.long, device=self.device)  # (n, D)
        for t in range(self.num_dims):
            logits = self.conditional(k.view(n, *self.data_shape), t, temperature)  # (n, levels)
            k[:, self.order[t]] = sample_categorical(logits, generator)
        self.train(was_training)
        return self.from_levels(k.view(n, *self.data_shape))


def sample_categorical(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of ``logits`` (B, K) -> (B,) int64, from ``generator`` when given."""
    probs = torch.softmax(logits.float(), dim=-1)
    return utils.multinomial(probs, 1, generator=generator).squeeze(1)
