"""A causal Transformer over the dimensions of x (a GPT over pixels; Radford et al. 2018,
Chen et al. 2020 "Image GPT").

The sequence is the chain-rule order: token t is the value of dimension order[t - 1]
(token 0 is a start token), and the output at position t gives the logits of dimension
order[t]. Self-attention is made causal by a mask (Vaswani et al. 2017, §3.2.3): position
t may attend to positions s <= t only, so output t depends on x_order[:t] exactly.

Sampling needs D sequential steps. Without a cache, step t re-runs the network on the
whole prefix (O(t) tokens per step). With a key/value cache, step t feeds one token and
attends to the keys and values stored by the earlier steps (O(1) tokens per step).

Data convention of ``base.Autoregressive``: x in [0, 1] = k / (levels - 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from coursekit import models
from coursekit.autoregressive.base import Autoregressive, sample_categorical


def causal_mask(T: int, device: torch.device | str | None = None) -> Tensor:
    """(T, T) bool: mask[t, s] is True where query t may attend to key s, i.e. s <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float, mask_fn: Callable):
        super().__init__()
        assert d_model % n_head == 0, "d_model must be divisible by n_head"
        self.n_head, self.mask_fn = n_head, mask_fn
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        """x: (B, T, d). With ``cache`` (a dict), x holds only the new positions and the keys
        and values of earlier positions are read from, and appended to, the cache."""
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(B, T, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        # (B, nh, T, hd) each
        if cache is not None and "k" in cache:
            k = torch.cat([cache["k"], k], dim=2)  # (B, nh, T_past + T, hd)
            v = torch.cat([cache["v"], v], dim=2)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # (B, nh, T, S)
        allowed = self.mask_fn(S, device=x.device)[S - T :]  # the rows of the new queries
        att = att.masked_fill(~allowed, float("-inf"))
        att = self.dropout(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, d)  # (B, T, d), heads side by side
        return self.proj(y)


class Block(nn.Module):
    """Pre-norm Transformer block (GPT-2): x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_head: int, dropout: float, mask_fn: Callable):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout, mask_fn)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class CausalTransformer(Autoregressive):
    """A small GPT over the D dimensions, ``levels`` logits per dimension.

    Args:
        mask_fn: builds the attention mask, ``mask_fn(T, device) -> (T, T) bool``; the
            exercise of lecture 03 swaps in the student's.
        num_start_tokens: how many distinct start tokens the embedding holds (ids
            ``levels .. levels + num_start_tokens - 1``); a class-conditional prior
            (``tokens.TokenPrior``) uses one per class, plus a null one.
    """

    def __init__(
        self,
        shape=(1, 8, 8),
        levels: int = 17,
        d_model: int = 64,
        n_head: int = 4,
        n_layer: int = 2,
        dropout: float = 0.0,
        order: Tensor | None = None,
        mask_fn: Callable = causal_mask,
        num_start_tokens: int = 1,
    ):
        super().__init__(shape, levels, order)
        D = self.num_dims
        # ids 0..levels-1 are values; id `levels` (and above) a start token
        self.tok = nn.Embedding(levels + num_start_tokens, d_model)
        self.pos = nn.Parameter(torch.randn(D, d_model) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, dropout, mask_fn) for _ in range(n_layer)
        )
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, levels)

    def forward_tokens(self, tokens: Tensor, start: int = 0, caches: list | None = None) -> Tensor:
        """tokens (B, T) at positions start..start+T-1 -> logits (B, T, levels)."""
        T = tokens.shape[1]
        h = self.drop(self.tok(tokens) + self.pos[start : start + T])  # (B, T, d)
        for i, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[i])
        return self.head(self.ln(h))

    def forward(self, tokens: Tensor, start: int = 0, caches: list | None = None) -> Tensor:
        """``forward_tokens`` as the module's call, so that a forward hook on the network (the
        network-evaluation count of ``evaluation.evaluate``) sees every pass."""
        return self.forward_tokens(tokens, start, caches)

    def tokens(self, k: Tensor) -> Tensor:
        """(B, *shape) levels -> (B, D) input tokens: start, then x_order[0..D-2]."""
        x = k.flatten(1)[:, self.order]  # (B, D) in chain-rule order
        start = torch.full_like(x[:, :1], self.levels)
        return torch.cat([start, x[:, :-1]], dim=1)  # shifted right by one: teacher forcing

    def logits(self, k: Tensor) -> Tensor:
        B = k.shape[0]
        logits_t = self.forward_tokens(self.tokens(k)).transpose(1, 2)  # (B, K, D), chain order
        logits = torch.empty_like(logits_t)
        logits[:, :, self.order] = logits_t  # back to raster positions
        return logits.view(B, self.levels, *self.data_shape)

    @torch.no_grad()
    def sample(
        self, n, y=None, *, generator=None, temperature: float = 1.0, use_cache: bool = True
    ) -> Tensor:
        """D sequential steps; ``use_cache=False`` re-runs the whole prefix at every step."""
        was_training = self.training
        self.eval()
        dev = self.device
        D = self.num_dims
        tokens = torch.full((n, 1), self.levels, dtype=torch.long, device=dev)  # (n, 1) start
        caches = [{} for _ in self.blocks] if use_cache else None
        for t in range(D):
            if use_cache:  # feed only the newest token; earlier keys/values are cached
                logits = self.forward_tokens(tokens[:, t:], start=t, caches=caches)[:, -1]
            else:  # recompute every position of the prefix
                logits = self.forward_tokens(tokens)[:, -1]
            nxt = sample_categorical(logits / temperature, generator)  # (n,)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        self.train(was_training)
        x = torch.empty(n, D, dtype=torch.long, device=dev)
        x[:, self.order] = tokens[:, 1:]  # chain order -> raster positions
        return self.from_levels(x.view(n, *self.data_shape))


@models.register_conformance("ar-transformer")
def _tiny_transformer() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (4, 1, 3, 3), generator=g).float() / 4
    model = CausalTransformer((1, 3, 3), 5, d_model=16, n_head=2, n_layer=1)
    return models.ConformanceCase(model=model, x=x, exact_log_prob=True, checks_input=True)
