"""VAR: next-scale prediction over a multi-scale residual tokenizer (Tian et al. 2024).

The tokens of :class:`~coursekit.vq.quantizers.MultiScaleVQ` are n token maps, 1x1, 2x2, ...,
H x H, concatenated coarse to fine. :class:`ScalePrior` predicts each whole map at once from
the coarser ones: the sequence holds, for scale k, s_k^2 positions whose input is the latent
accumulated from scales < k (``MultiScaleVQ.partial_sums``) downsampled to s_k x s_k and
projected to the model width (the first scale's single position is the class token). A
**block-causal** mask (:func:`block_causal_mask`) lets a position attend to every position of
its own and of coarser scales, never to finer ones, so

    p(r_1, ..., r_n | y) = prod_k p(r_k | r_<k, y),   the tokens of r_k independent given r_<k,

and sampling takes n network passes (3 for scales 1, 2, 4) instead of one per token. The class
enters as the first position's token and is dropped with probability ``p_uncond`` in
training, for classifier-free guidance on the logits as in ``TokenPrior``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models
from coursekit.autoregressive.tokens import draw_token
from coursekit.autoregressive.transformer import Block
from coursekit.metrics import units
from coursekit.vq.quantizers import MultiScaleVQ


def block_causal_mask(sizes) -> Tensor:
    """(T, T) bool for blocks of the given sizes: query t may attend key s iff block(s) <= block(t)."""
    block = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(list(sizes)))
    return block[:, None] >= block[None, :]


class _ScaleNet(nn.Module):
    """The Transformer: inputs (B, T, d) -> logits (B, T, K), block-causal attention."""

    def __init__(self, sizes, vocab_size, d_model, n_head, n_layer, dropout):
        super().__init__()
        mask = block_causal_mask(sizes)
        self.register_buffer("mask", mask, persistent=False)
        self.pos = nn.Parameter(torch.randn(len(mask), d_model) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, dropout, self._mask) for _ in range(n_layer)
        )
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def _mask(self, S: int, device=None) -> Tensor:
        return self.mask[:S, :S]

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.pos[: h.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))


class ScalePrior(models.GenerativeModel):
    """p(codes | y) over a :class:`MultiScaleVQ`'s token maps, one pass per scale.

    Args:
        quantizer: the trained (frozen) multi-scale quantiser whose codes are modelled; its
            codebook builds each scale's input.
        num_classes, p_uncond: as in ``TokenPrior``.
        d_model, n_head, n_layer, dropout: the Transformer's sizes.
    """

    def __init__(
        self,
        quantizer: MultiScaleVQ,
        *,
        num_classes: int | None = None,
        p_uncond: float = 0.1,
        d_model: int = 64,
        n_head: int = 4,
        n_layer: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not isinstance(quantizer, MultiScaleVQ):
            raise TypeError(
                "ScalePrior models the token maps of a MultiScaleVQ; for a single code grid "
                f"use autoregressive.TokenPrior. Got {type(quantizer).__name__}."
            )
        self.quantizer = quantizer.eval()
        for p in quantizer.parameters():
            p.requires_grad_(False)
        self.scales = quantizer.scales
        self.sizes = [s * s for s in self.scales]
        self.vocab_size = quantizer.num_codes
        self.data_shape = quantizer.token_shape
        self.num_classes, self.p_uncond = int(num_classes or 0), p_uncond
        self.null_class = self.num_classes
        self.class_emb = nn.Embedding(self.num_classes + 1, d_model)
        self.proj = nn.Linear(quantizer.dim, d_model)  # scale k's input: the coarser sum
        self.level = nn.Parameter(torch.randn(len(self.scales), d_model) * 0.02)
        self.net = _ScaleNet(self.sizes, self.vocab_size, d_model, n_head, n_layer, dropout)

    def _classes(self, y: Tensor | None, n: int) -> Tensor:
        if y is None:
            return torch.full((n,), self.null_class, device=self.device)
        if self.num_classes == 0:
            raise ValueError("this ScalePrior was built without classes: pass y=None.")
        y = torch.as_tensor(y, device=self.device).long()
        if y.shape != (n,) or (n and (int(y.min()) < 0 or int(y.max()) > self.null_class)):
            raise ValueError(f"y must hold one class in 0..{self.num_classes - 1} per grid.")
        return y

    def _inputs(self, sums: list[Tensor], y: Tensor) -> Tensor:
        """The first ``len(sums)`` scales' inputs (B, sum of their s^2, d)."""
        parts = [self.class_emb(y)[:, None] + self.level[0]]
        for k, total in enumerate(sums[1:], start=1):
            small = F.adaptive_avg_pool2d(total, self.scales[k]).flatten(2).transpose(1, 2)
            parts.append(self.proj(small) + self.level[k])  # (B, s_k^2, d)
        return torch.cat(parts, dim=1)

    def check_tokens(self, s: Tensor) -> Tensor:
        if not isinstance(s, Tensor) or s.dtype.is_floating_point or s.dtype == torch.bool:
            raise TypeError(
                "ScalePrior models token indices: pass an integer tensor (the codes of a "
                f"MultiScaleVQ tokenizer's encode), got {getattr(s, 'dtype', type(s).__name__)}."
            )
        if tuple(s.shape[1:]) != self.data_shape:
            raise ValueError(
                f"ScalePrior expects codes of shape (B, {self.data_shape[0]}), got "
                f"{tuple(s.shape)}."
            )
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= self.vocab_size):
            raise ValueError(f"codes must lie in 0..{self.vocab_size - 1}.")
        return s.long()

    def logits(self, s: Tensor, y: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, K) of every scale's tokens given the coarser scales."""
        s = self.check_tokens(s)
        with torch.no_grad():
            sums = self.quantizer.partial_sums(s)
        return self.net(self._inputs(sums, self._classes(y, len(s))))

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(codes | y) in nats, (B,)."""
        logits = self.logits(x, y)
        target = self.check_tokens(x)
        return -F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None, *, generator=None) -> dict[str, Tensor]:
        if y is not None and self.training and self.p_uncond > 0:
            y = torch.as_tensor(y, device=self.device)
            y = models.drop_labels(y, self.p_uncond, self.null_class, generator)
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll, "bits_per_token": units.bits_per_dim(nll.detach(), sum(self.sizes))}

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
        """n code sequences (n, T), one network pass per scale (two with guidance, batched)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        was = self.training
        self.eval()
        classes = self._classes(y, n)
        guided = y is not None and guidance != 1.0
        if guided:
            classes = torch.cat([classes, self._classes(None, n)])
        H = self.scales[-1]
        total = torch.zeros(len(classes), self.quantizer.dim, H, H, device=self.device)
        sums, codes = [total], []
        for k, size in enumerate(self.sizes):
            logits = self.net(self._inputs(sums, classes))[:, -size:]  # (n or 2n, s^2, K)
            c = draw_token(logits, guided=guided, guidance=guidance, temperature=temperature,
                           top_k=top_k, generator=generator)  # (n, s^2)  # fmt: skip
            codes.append(c)
            if k + 1 < len(self.sizes):
                c2 = c.repeat(2, 1) if guided else c
                s = self.scales[k]
                total = total + self.quantizer.lookup_scale(k, c2.view(-1, s, s))
                sums.append(total)
        self.train(was)
        return torch.cat(codes, dim=1)


@models.register_conformance("var-scale-prior")
def _tiny_scale_prior() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = ScalePrior(MultiScaleVQ(5, 2, (1, 2)), num_classes=3, d_model=16, n_head=2, n_layer=1)
    x = torch.randint(0, 5, (4, 5), generator=g)
    return models.ConformanceCase(
        model=model,
        x=x,
        y=torch.tensor([0, 1, 2, 1]),
        data_range=(0, 4),
        exact_log_prob=True,
        checks_input=True,
    )
