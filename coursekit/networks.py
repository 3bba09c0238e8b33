"""Networks shared by the lectures: MLP, time and label embeddings, residual blocks, small UNet.

Only architectures live here. Objectives (VAE, diffusion, flow matching, ...) take a network
as an argument and wrap it, so the same ``UNet`` serves DDPM and flow matching.

Conventions
-----------
- Images are ``(B, C, H, W)``; toy data are ``(B, D)``.
- Time ``t`` is a ``(B,)`` tensor (a scalar is broadcast). The sinusoidal embedding multiplies
  it by ``time_scale`` first: the default ``1000`` suits continuous ``t in [0, 1]`` (flow
  matching, continuous-time diffusion), since the highest frequency then turns ~1000 radians
  over the unit interval, like the integer steps of Ho et al. (2020). For integer steps
  ``0..T-1`` pass ``time_scale=1`` (or feed ``t / T`` with the default).
- Labels ``y`` are int64 ``(B,)`` in ``0..num_classes-1``. The extra index ``num_classes`` is
  the "no label" token of classifier-free guidance (Ho & Salimans, 2022); ``y=None`` means
  "no label" for the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from coursekit import utils

# ---------------------------------------------------------------------------------------------
# Plain MLP


class MLP(nn.Module):
    """``depth`` hidden layers of width ``hidden``, each followed by ``act``; a linear output.

    x: (B, in_dim) -> (B, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 128,
        depth: int = 3,
        act: type[nn.Module] = nn.SiLU,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"MLP depth must be >= 1 hidden layer, got {depth}.")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden] * depth
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), act()]
        layers.append(nn.Linear(hidden, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------
# Embeddings of time and labels


def _as_batch_time(t: Tensor | float, batch_size: int, device: torch.device) -> Tensor:
    """Any scalar or (B,) time -> float32 (B,) on ``device``."""
    t = torch.as_tensor(t, device=device)
    if t.dim() == 0:
        t = t.expand(batch_size)
    if t.shape != (batch_size,):
        raise ValueError(f"t must be a scalar or have shape ({batch_size},), got {tuple(t.shape)}.")
    return t.float()


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer positional encoding applied to time (Vaswani et al. 2017, Sec. 3.5).

    t: (B,) float (continuous, in [0, 1]) or integer steps -> (B, dim).
    ``t`` is multiplied by ``time_scale`` first: keep 1000 for t in [0, 1], use 1 for steps.
    Frequencies are geometric from 1 down to 1 / max_period.
    """

    def __init__(self, dim: int, max_period: float = 10000.0, time_scale: float = 1000.0):
        super().__init__()
        if dim % 2 != 0:
            raise ValueError(f"SinusoidalTimeEmbedding needs an even dim, got {dim}.")
        self.dim = dim
        self.time_scale = time_scale
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)  # (dim/2,)

    def forward(self, t: Tensor) -> Tensor:
        t = t.float() * self.time_scale
        angles = t[:, None] * self.freqs[None, :]  # (B, dim/2)
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, dim)


class TimeMLPEmbedding(nn.Module):
    """Sinusoidal features followed by a 2-layer MLP, as in DDPM's UNet. t: (B,) -> (B, out_dim)."""

    def __init__(self, sin_dim: int, out_dim: int, time_scale: float = 1000.0):
        super().__init__()
        self.sinusoidal = SinusoidalTimeEmbedding(sin_dim, time_scale=time_scale)
        self.mlp = nn.Sequential(
            nn.Linear(sin_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.sinusoidal(t))


class LabelEmbedding(nn.Module):
    """A learned vector per class, plus (``null_label=True``) one for "no label".

    y: int64 (B,) in 0..num_classes (num_classes = null), or None (all null) -> (B, dim).
    Classifier-free guidance trains with some labels replaced by the null index
    (``drop_labels``) so that one network learns both p(x | y) and p(x).
    """

    def __init__(self, num_classes: int, dim: int, null_label: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.null_label = null_label
        self.embedding = nn.Embedding(num_classes + int(null_label), dim)

    @property
    def null_index(self) -> int:
        return self.num_classes

    def forward(self, y: Tensor | None, batch_size: int | None = None) -> Tensor:
        if y is None:
            if not self.null_label:
                raise ValueError("y=None needs LabelEmbedding(..., null_label=True).")
            if batch_size is None:
                raise ValueError("With y=None, pass batch_size so the null labels can be made.")
            y = torch.full((batch_size,), self.null_index, device=self.embedding.weight.device)
        if y.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}.")
        top = self.num_classes + int(self.null_label) - 1
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > top):
            raise ValueError(f"labels must lie in 0..{top}, got {int(y.min())}..{int(y.max())}.")
        return self.embedding(y)

    def drop_labels(
        self, y: Tensor, p: float, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Replace each label by the null index with probability ``p`` (label dropout)."""
        drop = utils.rand(y.shape, y, generator) < p  # (B,)
        return torch.where(drop, torch.full_like(y, self.null_index), y)


# ---------------------------------------------------------------------------------------------
# Convolutional blocks


def _groups(groups: int, channels: int) -> int:
    """The largest group count <= ``groups`` that divides ``channels`` (GroupNorm needs one)."""
    return math.gcd(groups, channels)


class ResBlock(nn.Module):
    """Residual block of DDPM (Ho et al. 2020, App. B): two GroupNorm-SiLU-Conv, embedding added.

    x: (B, in_ch, H, W), emb: (B, emb_dim) -> (B, out_ch, H, W).
    """

    def __init__(
        self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0, groups: int = 8
    ):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(groups, out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # a 1x1 conv only where the channel count changes; otherwise the identity
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        # the embedding shifts every channel by the same amount at every pixel
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # (B, out_ch, 1, 1) broadcast
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H*W pixels, with a residual connection.

    x: (B, C, H, W) -> (B, C, H, W). Cost grows as (H*W)^2: use it at the lowest resolution.
    """

    def __init__(self, channels: int, num_heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % num_heads != 0:
            num_heads = 1
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(_groups(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        nh = self.num_heads
        qkv = self.qkv(self.norm(x))  # (B, 3C, H, W)
        qkv = qkv.reshape(B, 3, nh, C // nh, H * W)  # (B, 3, nh, C/nh, HW)
        qkv = qkv.permute(1, 0, 2, 4, 3)  # (3, B, nh, HW, C/nh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        h = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, C/nh)
        h = h.permute(0, 1, 3, 2).reshape(B, C, H, W)  # (B, C, H, W)
        return x + self.proj(h)


class Downsample(nn.Module):
    """Strided 3x3 conv: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ---------------------------------------------------------------------------------------------
# UNet


class UNet(nn.Module):
    """A small UNet for 8x8 and 28x28 images, conditioned on time and (optionally) a label.

    forward(x: (B, in_ch, H, W), t: (B,), y: (B,) int64 or None) -> (B, out_ch, H, W).

    One level per entry of ``mults`` (channels ``base * mult``), halving the resolution between
    levels: ``mults=(1, 2)`` gives 8 -> 4 or 28 -> 14, ``mults=(1, 2, 2)`` gives 28 -> 14 -> 7.
    ``mults=None`` picks (1, 2) up to 16 pixels and (1, 2, 2) above. Each level has
    ``num_res_blocks`` ResBlocks; the bottleneck is ResBlock, self-attention (``attention``),
    ResBlock. With ``num_classes`` set, the label embedding is added to the time embedding and
    ``y=None`` uses the null label (classifier-free guidance). ``time_scale``: see module doc.
    """

    def __init__(
        self,
        in_ch: int = 1,
        out_ch: int | None = None,
        base: int = 32,
        mults: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        image_size: int = 28,
        num_res_blocks: int = 1,
        attention: bool = True,
        dropout: float = 0.0,
        groups: int = 8,
        time_scale: float = 1000.0,
    ):
        super().__init__()
        if mults is None:
            mults = (1, 2) if image_size <= 16 else (1, 2, 2)
        factor = 2 ** (len(mults) - 1)
        if image_size % factor != 0:
            raise ValueError(
                f"image_size={image_size} cannot be halved {len(mults) - 1} times "
                f"(mults={mults}); use fewer levels, e.g. mults=(1, 2)."
            )
        self.in_ch, self.out_ch = in_ch, out_ch or in_ch
        self.image_size, self.num_classes = image_size, num_classes
        emb_dim = 4 * base

        self.time_embed = TimeMLPEmbedding(base, emb_dim, time_scale=time_scale)
        self.label_embed = LabelEmbedding(num_classes, emb_dim) if num_classes else None
        block = lambda i, o: ResBlock(i, o, emb_dim, dropout=dropout, groups=groups)

        self.conv_in = nn.Conv2d(in_ch, base, 3, padding=1)
        chs = [base * m for m in mults]

        # down path: each level's output is kept as a skip connection
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = base
        for i, c in enumerate(chs):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(ch, c))
                ch = c
            self.down.append(blocks)
            last = i == len(chs) - 1
            self.downsample.append(nn.Identity() if last else Downsample(ch))

        self.mid1 = block(ch, ch)
        self.mid_attn = SelfAttention2d(ch, groups=groups) if attention else nn.Identity()
        self.mid2 = block(ch, ch)

        # up path: mirror of the down path; the first block of a level eats the concatenated skip
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, c in reversed(list(enumerate(chs))):
            blocks = nn.ModuleList()
            for j in range(num_res_blocks):
                blocks.append(block(ch + c if j == 0 else ch, c))
                ch = c
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if i == 0 else Upsample(ch))

        self.norm_out = nn.GroupNorm(_groups(groups, ch), ch)
        self.conv_out = nn.Conv2d(ch, self.out_ch, 3, padding=1)

    def embed(self, t: Tensor, y: Tensor | None, batch_size: int, device: torch.device) -> Tensor:
        """Time (+ label) embedding: (B, 4 * base)."""
        emb = self.time_embed(_as_batch_time(t, batch_size, device))
        if self.label_embed is not None:
            emb = emb + self.label_embed(y, batch_size=batch_size)
        elif y is not None:
            raise ValueError("This UNet was built without num_classes; pass y=None.")
        return emb

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        B, C, H, W = x.shape
        emb = self.embed(t, y, B, x.device)  # (B, 4 * base)

        h = self.conv_in(x)  # (B, base, H, W)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)  # (B, base * mult, H_level, W_level)
            h = down(h)  # halves H, W except after the last level

        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # (B, C_low, H_low, W_low)

        for blocks, up in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)  # (B, C_h + C_skip, H_level, W_level)
            for blk in blocks:
                h = blk(h, emb)
            h = up(h)  # doubles H, W except at the top level

        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_ch, H, W)


# ---------------------------------------------------------------------------------------------
# Time-conditioned MLP for 2-D toy data


class TimeConditionedMLP(nn.Module):
    """An MLP for vector data whose every hidden layer sees the time (+ label) embedding.

    forward(x: (B, in_dim), t: (B,), y: (B,) int64 or None) -> (B, out_dim), out_dim = in_dim
    by default (a score, noise or velocity of the same shape as x). Adding the embedding to
    every layer, not just the input, lets the output change sharply with t.
    """

    def __init__(
        self,
        in_dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        num_classes: int | None = None,
        out_dim: int | None = None,
        emb_dim: int = 64,
        time_scale: float = 1000.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.time_embed = TimeMLPEmbedding(emb_dim, emb_dim, time_scale=time_scale)
        self.label_embed = LabelEmbedding(num_classes, emb_dim) if num_classes else None
        self.inp = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.emb_projs = nn.ModuleList(nn.Linear(emb_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, out_dim or in_dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        B = x.shape[0]
        emb = self.time_embed(_as_batch_time(t, B, x.device))  # (B, emb_dim)
        if self.label_embed is not None:
            emb = emb + self.label_embed(y, batch_size=B)
        elif y is not None:
            raise ValueError("This TimeConditionedMLP was built without num_classes; pass y=None.")
        h = F.silu(self.inp(x))  # (B, hidden)
        for layer, proj in zip(self.layers, self.emb_projs):
            h = F.silu(layer(h) + proj(emb))  # (B, hidden)
        return self.out(h)


class ImageMLP(nn.Module):
    """``TimeConditionedMLP`` on flattened images: forward(x (B, C, H, W), t (B,), y) -> (B, C, H, W).

    The small velocity / noise network of the cpu profiles (lectures 06 and 08): an MLP has no
    spatial prior, which is fine for 8×8 digits. Its parameters live in ``self.mlp``.
    """

    def __init__(self, shape: tuple[int, ...], hidden: int, depth: int, num_classes=None):
        super().__init__()
        self.shape = tuple(shape)
        self.mlp = TimeConditionedMLP(math.prod(shape), hidden, depth, num_classes=num_classes)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return self.mlp(x.flatten(1), t, y).view(-1, *self.shape)  # (B, C, H, W)
