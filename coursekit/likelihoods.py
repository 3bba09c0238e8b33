"""Decoder likelihoods p(x | z) for latent variable models.

A decoder network maps z to a flat vector of *parameters*; a likelihood says how those
parameters define a distribution over x. Keeping the two apart lets one network be trained
with a Bernoulli, a categorical or a Gaussian output without touching the VAE.

Convention: data x lies in [0, 1] with shape (B, *x_shape). Discrete data with ``levels``
grey levels takes the values k / (levels - 1), k = 0..levels-1 (what ``ImageSet.float()``
returns). Every ``log_prob`` returns nats per example, shape (B,), summed over all dims.

- ``Bernoulli``: binary images. A probability mass: bits/dim are comparable across models.
- ``Categorical(levels)``: one softmax over the grey levels per pixel. A mass.
- ``DiscretizedLogistic(levels)``: a logistic density integrated over each grey level's bin
  (PixelCNN++, Salimans et al. 2017, eq. 2). A mass with two parameters per pixel.
- ``Gaussian(std)``: a density, for continuous data. With a fixed std the ELBO's
  reconstruction term is a scaled squared error, which is why such decoders blur: the best
  mean under squared error is the average of all plausible images.

Masses and densities give different figures: ``discrete`` says which. For a mass,
``-log p / (D ln 2)`` is bits per dimension of the discrete data (``metrics.bits_per_dim``,
logged as ``"bpd"``), comparable across models. For a density it is a *continuous* figure in
bits per dimension of a density (logged as ``"bpd_continuous"``): it depends on the scale of
x and is not a code length. It becomes an upper bound on the discrete figure only after
adding -log2(bin width) per dimension (Theis et al. 2016), the width in the units the density
is over. A density over these x = k / (levels - 1), each level owning a bin of width
1 / (levels - 1) around it, takes log2(levels - 1): 4 bits/dim for 17 levels, log2 255 = 7.99
for 256. A density over y = (k + u) / levels in [0, 1) (the flows' dequantization,
``coursekit.flows.dequantization``, lectures 04 and 08) takes log2(levels): 4.087 for 17.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import utils


class Likelihood(nn.Module):
    """The interface: parameter shape, log-probability, mean and sample.

    ``discrete``: True for a probability mass over the grey levels (its ``log_prob`` is a
    log-probability, and bits/dim from it are the discrete figure), False for a density.
    """

    discrete: bool = True

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the parameters for one example of shape ``x_shape``."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x | params) in nats, (B,), summed over every dimension of x."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """E[x | params], shaped like x: what to show as a 'noise-free' reconstruction."""
        raise NotImplementedError

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | params), shaped like x, in the data's range."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    """p(x | z) = prod_i Bern(x_i; sigmoid(logit_i)) for binary x in {0, 1}."""

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(x_shape)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        # log Bern(x; sigmoid(l)) = -BCE(l, x); the logits form is stable for large |l|
        nll = F.binary_cross_entropy_with_logits(params, x, reduction="none")
        return -nll.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.sigmoid(params)
        return (utils.rand(p.shape, p, generator) < p).to(p.dtype)


class Categorical(Likelihood):
    """One categorical distribution over ``levels`` grey levels per pixel.

    Parameters are logits of shape (B, levels, *x_shape); x = k / (levels - 1).
    """

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.levels, *x_shape)

    def to_index(self, x: Tensor) -> Tensor:
        """Grey level index k of x = k / (levels - 1), int64 shaped like x."""
        return (x * (self.levels - 1)).round().long().clamp(0, self.levels - 1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        # cross_entropy takes logits (B, L, d1, ...) and targets (B, d1, ...): the class dim is 1
        nll = F.cross_entropy(params, self.to_index(x), reduction="none")
        return -nll.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        probs = params.softmax(dim=1)  # (B, L, *x_shape)
        values = torch.linspace(0, 1, self.levels, device=params.device, dtype=params.dtype)
        values = values.view(1, -1, *([1] * (params.dim() - 2)))  # (1, L, 1, ...)
        return (probs * values).sum(1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        probs = params.softmax(dim=1)  # (B, L, *x_shape)
        u = utils.rand(probs[:, :1].shape, probs, generator)  # (B, 1, *x_shape)
        # inverse CDF: the sampled level is the number of cumulative probabilities below u
        k = (probs.cumsum(dim=1) < u).sum(dim=1).clamp(max=self.levels - 1)  # (B, *x_shape)
        return k.to(params.dtype) / (self.levels - 1)


class DiscretizedLogistic(Likelihood):
    """A logistic density per pixel, integrated over the bin of each grey level.

    Parameters (B, 2, *x_shape): mean and log-scale. Level k covers
    [x_k - h, x_k + h] with h = 1 / (2 (levels - 1)); the first and last bins extend to
    -inf and +inf so the masses sum to one (Salimans et al. 2017, eq. 2).
    """

    def __init__(self, levels: int, min_log_scale: float = -7.0):
        super().__init__()
        self.levels = levels
        self.min_log_scale = min_log_scale

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (2, *x_shape)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_s = params[:, 0], params[:, 1].clamp(min=self.min_log_scale)
        return mu, log_s

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mu, log_s = self._split(params)
        h = 0.5 / (self.levels - 1)
        inv_s = torch.exp(-log_s)
        a = (x + h - mu) * inv_s  # upper bin edge, standardized
        b = (x - h - mu) * inv_s  # lower bin edge, standardized
        # sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)): exact and stable
        log_mid = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(-2 * h * inv_s))
        log_first = F.logsigmoid(a)  # bin (-inf, h]
        log_last = F.logsigmoid(-b)  # bin [1 - h, +inf)
        logp = torch.where(x < h, log_first, torch.where(x > 1 - h, log_last, log_mid))
        return logp.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return self._split(params)[0].clamp(0, 1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mu, log_s = self._split(params)
        u = utils.rand(mu.shape, mu, generator).clamp(1e-6, 1 - 1e-6)
        x = mu + torch.exp(log_s) * (torch.log(u) - torch.log1p(-u))  # logistic inverse CDF
        # rounding to the nearest level and clamping is exactly the binning of log_prob
        return (x.clamp(0, 1) * (self.levels - 1)).round() / (self.levels - 1)


class Gaussian(Likelihood):
    """N(x; mu, sigma^2) per dimension, a *density* for continuous x (``discrete = False``):
    its ``log_prob`` is a log-density, so bits/dim from it are the continuous figure.

    ``std=0.1`` fixes sigma (parameters: the mean, shape x_shape); ``std=None`` lets the
    decoder predict log sigma too (parameters (B, 2, *x_shape)), floored at ``min_std``.
    """

    discrete = False

    def __init__(self, std: float | None = 0.1, min_std: float = 1e-3):
        super().__init__()
        self.std = std
        self.min_std = min_std

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(x_shape) if self.std is not None else (2, *x_shape)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        if self.std is not None:
            return params, torch.full_like(params, math.log(self.std))
        log_std = params[:, 1].clamp(min=math.log(self.min_std))
        return params[:, 0], log_std

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mu, log_std = self._split(params)
        # log N(x; mu, s^2) = -((x - mu) / s)^2 / 2 - log s - log(2 pi) / 2
        logp = -0.5 * ((x - mu) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        return logp.flatten(1).sum(1)

    def mean(self, params: Tensor) -> Tensor:
        return self._split(params)[0]

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mu, log_std = self._split(params)
        u = utils.rand(mu.shape, mu, generator).clamp(1e-7, 1 - 1e-7)
        eps = math.sqrt(2) * torch.erfinv(2 * u - 1)  # N(0, 1) by the inverse CDF
        return (mu + torch.exp(log_std) * eps).clamp(0, 1)


class AutoregressiveCategorical(Likelihood):
    """A *powerful* decoder: p(x | z) = prod_i Cat(x_i; logits_i(z) + f_i(x_<i)).

    f is a one-hidden-layer masked MLP over the pixels in raster order (MADE, Germain et al.
    2015): pixel i's logits see only pixels < i. The decoder network supplies the
    z-dependent part, parameters (B, levels, *x_shape). Such a decoder can model much of x
    without z, which is what invites posterior collapse (Bowman et al. 2016; Chen et al.
    2017). Sampling runs D passes, one pixel at a time.
    """

    def __init__(self, levels: int, x_shape: tuple[int, ...], hidden: int = 256):
        super().__init__()
        self.levels = levels
        self.x_shape = tuple(x_shape)
        D = math.prod(self.x_shape)
        self.inp = nn.Linear(D, hidden)
        self.out = nn.Linear(hidden, D * levels)
        # MADE degrees: input i has degree i + 1, hidden units degrees in 1..D-1, output i
        # degree i + 1; hidden >= input, output > hidden (strict, no x_i -> logits_i path)
        in_deg = torch.arange(1, D + 1)
        hid_deg = torch.arange(hidden) % max(1, D - 1) + 1
        out_deg = in_deg.repeat_interleave(levels)  # output unit (i, level) has degree i + 1
        self.register_buffer("mask_in", (hid_deg[:, None] >= in_deg[None, :]).float())
        self.register_buffer("mask_out", (out_deg[:, None] > hid_deg[None, :]).float())
        self._categorical = Categorical(levels)

    def param_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.levels, *x_shape)

    def _logits(self, params: Tensor, x: Tensor) -> Tensor:
        B, D, L = len(x), math.prod(self.x_shape), self.levels
        h = torch.relu(F.linear(x.flatten(1), self.inp.weight * self.mask_in, self.inp.bias))
        f = F.linear(h, self.out.weight * self.mask_out, self.out.bias)  # (B, D * L)
        f = f.view(B, D, L).transpose(1, 2).reshape(B, L, *self.x_shape)  # (B, L, *x_shape)
        return params + f

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        # teacher forcing: all conditionals in one pass, each seeing the true x_<i
        return self._categorical.log_prob(self._logits(params, x), x)

    def mean(self, params: Tensor) -> Tensor:
        # E[x | z] has no closed form here; a sample is the honest picture
        return self.sample(params)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        B, D = len(params), math.prod(self.x_shape)
        x = torch.zeros(B, *self.x_shape, device=params.device, dtype=params.dtype)
        for i in range(D):  # pixel i depends on pixels < i only, so one pass per pixel
            logits = self._logits(params, x).flatten(2)[:, :, i]  # (B, L)
            xi = self._categorical.sample(logits, generator)  # (B,)
            x.view(B, D)[:, i] = xi
        return x
