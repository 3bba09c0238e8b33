"""An autoregressive prior over the token grid of a VQ tokenizer, with class conditioning and
classifier-free guidance (VQ-VAE's prior, van den Oord et al. 2017 §3.3; VQGAN's transformer,
Esser et al. 2021 §3.2; guidance, Ho & Salimans 2022, eq. 6 applied to logits).

Data are **token indices**, not pixels: ``s`` is int64 ``(B, *grid_shape)`` with values in
``0 .. vocab_size - 1`` (the codes a tokenizer's encoder picked), read in raster order as a
sequence of ``T = prod(grid_shape)`` tokens. The model is the chain rule

    p(s | y) = prod_t p(s_t | s_<t, y)

computed by the causal Transformer of ``transformer.py``. The class enters as the start
token: sequence position 0 holds token ``vocab_size + y`` for class ``y`` and the *null*
token ``vocab_size + num_classes`` without a class, so one network holds both p(s | y) and
p(s). Training drops the class with probability ``p_uncond`` (label dropout), and sampling
mixes the two on the logits,

    l_guided = l_uncond + w (l_cond - l_uncond),      w = ``guidance``

(w = 0: unconditional; w = 1: conditional; w > 1: sharper, more class-like samples), then
divides by ``temperature`` and keeps the ``top_k`` largest logits.

``log_prob(s, y)`` is exact, in nats, (B,): the sum of the T conditional log-probabilities.
Bits per token (``loss``'s ``"bits_per_token"``) is ``metrics.units.bits_per_dim`` over T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from coursekit import models, utils
from coursekit.autoregressive.transformer import CausalTransformer
from coursekit.metrics import units


def draw_token(
    logits: Tensor,
    *,
    guided: bool = False,
    guidance: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per position of ``logits`` (B, ..., K) -> (B, ...) int64.

    ``guided``: the batch holds the conditional rows, then as many unconditional ones; they are
    mixed as uncond + guidance (cond - uncond) (classifier-free guidance), so B halves. Then
    the logits are divided by ``temperature`` and all but the ``top_k`` largest dropped.
    Shared by the token priors (``TokenPrior``, ``vq.ScalePrior``, ``vq.CaptionPrior``).
    """
    if guided:
        half = len(logits) // 2
        cond, uncond = logits[:half], logits[half:]
        logits = uncond + guidance * (cond - uncond)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    flat = utils.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(probs.shape[:-1])


class TokenPrior(models.GenerativeModel):
    """p(s | y) over a grid of token indices, by a causal Transformer with a class start token.

    Args:
        vocab_size: K, the number of codes of the tokenizer.
        grid_shape: the shape of one token grid, e.g. (4, 4) for a 4x4 latent grid.
        num_classes: classes of ``y``; ``None`` (or 0) for an unconditional prior.
        p_uncond: the probability of dropping the class in training (label dropout), which
            teaches the unconditional model that guidance needs.
        d_model, n_head, n_layer, dropout: the Transformer's sizes.
    """

    def __init__(
        self,
        vocab_size: int,
        grid_shape: tuple[int, ...],
        *,
        num_classes: int | None = None,
        p_uncond: float = 0.1,
        d_model: int = 128,
        n_head: int = 4,
        n_layer: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}.")
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond is a probability, got {p_uncond}.")
        self.vocab_size = int(vocab_size)
        self.data_shape = tuple(grid_shape)
        self.num_classes = int(num_classes or 0)
        self.p_uncond = p_uncond
        # start tokens: one per class, then the null (unconditional) one
        self.net = CausalTransformer(
            self.data_shape,
            self.vocab_size,
            d_model=d_model,
            n_head=n_head,
            n_layer=n_layer,
            dropout=dropout,
            num_start_tokens=self.num_classes + 1,
        )

    @property
    def num_tokens(self) -> int:
        """T, the tokens per grid."""
        return math.prod(self.data_shape)

    @property
    def null_class(self) -> int:
        """The class index that means "no class" (``num_classes``)."""
        return self.num_classes

    # -- input checks ----------------------------------------------------------------------

    def check_tokens(self, s: Tensor) -> Tensor:
        """Token grids (B, *grid_shape), integers in 0..K-1 -> (B, T) int64; else a clear error."""
        name = type(self).__name__
        if not isinstance(s, Tensor) or s.dtype.is_floating_point or s.dtype == torch.bool:
            raise TypeError(
                f"{name} models token indices: pass an integer tensor (e.g. the codes of "
                f"tokenizer.encode(x)), got {getattr(s, 'dtype', type(s).__name__)}."
            )
        if tuple(s.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{name} expects token grids of shape (B, {', '.join(map(str, self.data_shape))}),"
                f" got {tuple(s.shape)}."
            )
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= self.vocab_size):
            raise ValueError(
                f"{name} has a vocabulary of {self.vocab_size} codes but the tokens range over "
                f"{int(s.min())}..{int(s.max())}; pass indices in 0..{self.vocab_size - 1}."
            )
        return s.long().flatten(1)  # (B, T), raster order

    def class_tokens(self, y: Tensor | None, n: int) -> Tensor:
        """The start token of each sequence, (n,) int64: K + y, or K + null without y."""
        if y is None:
            return torch.full((n,), self.vocab_size + self.null_class, device=self.device)
        if self.num_classes == 0:
            raise ValueError(
                f"{type(self).__name__} was built without classes (num_classes=None); "
                "pass y=None, or build it with num_classes=..."
            )
        y = torch.as_tensor(y, device=self.device)
        if y.dtype.is_floating_point or y.shape != (n,):
            raise ValueError(
                f"y must hold one integer class per sequence, shape ({n},); got "
                f"{y.dtype} {tuple(y.shape)}."
            )
        if n and (int(y.min()) < 0 or int(y.max()) > self.null_class):
            raise ValueError(
                f"classes must lie in 0..{self.num_classes - 1} ({self.null_class} = no class), "
                f"got {int(y.min())}..{int(y.max())}."
            )
        return y.long() + self.vocab_size

    # -- the model ---------------------------------------------------------------------------

    def logits(self, s: Tensor, y: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, K): row t is p(s_t | s_<t, y) for every t at once."""
        seq = self.check_tokens(s)  # (B, T)
        start = self.class_tokens(y, len(seq))[:, None]  # (B, 1)
        inputs = torch.cat([start, seq[:, :-1]], dim=1)  # (B, T): shifted right by one
        return self.net(inputs)  # a module call: evaluate's hook counts it

    def guided_logits(self, s: Tensor, y: Tensor | None, guidance: float = 1.0) -> Tensor:
        """l_uncond + w (l_cond - l_uncond), (B, T, K); ``y=None`` or w = 1 is one pass."""
        if y is None or guidance == 1.0:
            return self.logits(s, y)
        uncond = self.logits(s, None)
        if guidance == 0.0:
            return uncond
        return uncond + guidance * (self.logits(s, y) - uncond)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(s | y) in nats, (B,); without ``y`` the unconditional log p(s)."""
        logits = self.logits(x, y)  # (B, T, K)
        target = self.check_tokens(x)  # (B, T)
        logp = -F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, T)
        return logp.sum(1)

    def loss(
        self, x: Tensor, y: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Mean NLL in nats; in training each class is dropped with probability ``p_uncond``."""
        if y is not None and self.training and self.p_uncond > 0:
            y = torch.as_tensor(y, device=self.device)
            y = models.drop_labels(y, self.p_uncond, self.null_class, generator)
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll, "bits_per_token": units.bits_per_dim(nll.detach(), self.num_tokens)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        guidance: float = 1.0,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Tensor:
        """n token grids (n, *grid_shape) int64, one token at a time with a key/value cache.

        ``guidance`` w mixes the conditional and unconditional logits (needs ``y``); then
        the logits are divided by ``temperature`` and all but the ``top_k`` largest dropped.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if top_k is not None and not 1 <= top_k <= self.vocab_size:
            raise ValueError(f"top_k must lie in 1..{self.vocab_size}, got {top_k}.")
        was_training = self.training
        self.eval()
        start = self.class_tokens(y, n)  # (n,)
        guided = y is not None and guidance != 1.0
        if guided:  # one batch of 2n: the conditional rows, then the unconditional ones
            start = torch.cat([start, self.class_tokens(None, n)])
        tokens = start[:, None]  # (n or 2n, 1)
        caches = [{} for _ in self.net.blocks]
        out = []
        for t in range(self.num_tokens):
            logits = self.net(tokens[:, -1:], start=t, caches=caches)[:, -1]  # (n or 2n, K)
            nxt = draw_token(logits, guided=guided, guidance=guidance, temperature=temperature,
                             top_k=top_k, generator=generator)[:, None]  # (n, 1)  # fmt: skip
            out.append(nxt)
            tokens = torch.cat([tokens, nxt.repeat(2, 1) if guided else nxt], dim=1)
        self.train(was_training)
        return torch.cat(out, dim=1).view(n, *self.data_shape)


@models.register_conformance("ar-token-prior")
def _tiny_token_prior() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    model = TokenPrior(5, (2, 3), num_classes=3, d_model=16, n_head=2, n_layer=1)
    x = torch.randint(0, 5, (4, 2, 3), generator=g)
    return models.ConformanceCase(
        model=model,
        x=x,
        y=torch.tensor([0, 1, 2, 1]),
        data_range=(0, 4),
        exact_log_prob=True,
        checks_input=True,
    )
