"""PixelCNN (van den Oord et al. 2016a) and the gated PixelCNN (van den Oord et al. 2016b).

A convolution becomes autoregressive in raster order by masking its kernel: the centre
row keeps only the taps left of the centre, the rows below the centre are zeroed.

- type A (first layer only) also zeroes the centre tap: output (r, c) must not see x[r, c];
- type B (every later layer) keeps it: feature (r, c) already depends only on x_<(r, c).

Stacking masked 3x3 convolutions grows the receptive field as a *triangle*, leaving a
blind spot up and to the right of each pixel (the gradient picture of the lecture). The
gated PixelCNN removes it with two stacks (2016b, fig. 2):

- a *vertical* stack whose features at row r see every pixel of rows <= r within reach
  (a (k//2+1) x k convolution), passed to the horizontal stack shifted down one row;
- a *horizontal* stack that sees the pixels left of (r, c) in row r (a 1 x (k//2+1)
  convolution; the first layer also shifted right by one, the type-A rule);
- gated activations tanh(a) * sigmoid(b) in place of ReLU (2016b, eq. 2).

Grey levels or colours: with C > 1 channels (RGB), the chain rule also orders channels at
the same pixel (R, then G given R, then B given R and G); the masks then also split the
feature maps into C groups. Here C = 1, so one softmax over the levels per pixel.

Data convention of ``base.Autoregressive``: x in [0, 1] = k / (levels - 1), (B, 1, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models
from coursekit.autoregressive.base import Autoregressive


def pixelcnn_mask(kernel_size: int, mask_type: str) -> Tensor:
    """The (k, k) 0/1 mask of a PixelCNN convolution of type ``"A"`` or ``"B"``."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    k, c = kernel_size, kernel_size // 2
    mask = torch.ones(k, k)
    mask[c, c + (mask_type == "B") :] = 0  # centre row: type B keeps the centre tap itself
    mask[c + 1 :, :] = 0  # rows below the centre: the future in raster order
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose kernel is multiplied by a PixelCNN mask (a buffer)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str,
        mask_fn=pixelcnn_mask,
    ):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer(
            "mask", mask_fn(kernel_size, mask_type).reshape(1, 1, kernel_size, kernel_size)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(Autoregressive):
    """A type-A 7x7 masked convolution, then residual blocks of type-B 3x3 ones, then a
    1x1 convolution to ``levels`` logits per pixel. Has a blind spot (see the module doc).
    """

    def __init__(
        self,
        shape=(1, 8, 8),
        levels: int = 17,
        channels: int = 64,
        num_layers: int = 5,
        first_kernel: int = 7,
        mask_fn=pixelcnn_mask,
    ):
        super().__init__(shape, levels)
        if shape[0] != 1:
            raise ValueError(
                "this PixelCNN models one grey channel; see the module doc for colour."
            )
        self.first = MaskedConv2d(1, channels, first_kernel, "A", mask_fn)
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, 3, "B", mask_fn) for _ in range(num_layers)
        )
        self.out = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, levels, 1)
        )

    def logits(self, k: Tensor) -> Tensor:
        x = 2 * self.from_levels(k) - 1  # (B, 1, H, W) in [-1, 1]
        h = self.first(x)  # (B, F, H, W)
        for block in self.blocks:
            h = h + block(F.relu(h))  # residual: the identity path keeps type-B causality
        return self.out(h).unsqueeze(2)  # (B, K, 1, H, W)


class GatedLayer(nn.Module):
    """One layer of the gated PixelCNN: a vertical and a horizontal stack (2016b, fig. 2)."""

    def __init__(self, channels: int, kernel_size: int, first: bool):
        super().__init__()
        k, self.first = kernel_size, first
        self.k = k
        self.v_conv = nn.Conv2d(channels, 2 * channels, (k // 2 + 1, k))  # rows r-k//2 .. r
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, k // 2 + 1))  # cols c-k//2 .. c
        self.h_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        k = self.k
        # vertical stack: pad k//2 rows on top, none below -> row r sees rows <= r
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # (B, 2F, H, W)
        # shift down one row before handing to the horizontal stack: row r then sees rows < r
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # (B, 2F, H, W)
        # horizontal stack: pad on the left only; the first layer also shifts right by one
        h_in = F.pad(h, (1, 0))[..., :-1] if self.first else h  # type A: exclude (r, c)
        h_pre = self.h_conv(F.pad(h_in, (k // 2, 0))) + self.v_to_h(v_down)  # (B, 2F, H, W)
        v_new = gate(v_pre)
        h_new = self.h_out(gate(h_pre))
        return v_new, (h_new if self.first else h + h_new)  # residual on the horizontal stack


def gate(a: Tensor) -> Tensor:
    """tanh(a_1) * sigmoid(a_2) over the two halves of the channels (2016b, eq. 2)."""
    a1, a2 = a.chunk(2, dim=1)
    return torch.tanh(a1) * torch.sigmoid(a2)


class GatedPixelCNN(Autoregressive):
    """The gated PixelCNN: no blind spot; ``levels`` logits per pixel."""

    def __init__(
        self,
        shape=(1, 8, 8),
        levels: int = 17,
        channels: int = 64,
        num_layers: int = 5,
        kernel_size: int = 3,
    ):
        super().__init__(shape, levels)
        if shape[0] != 1:
            raise ValueError("this GatedPixelCNN models one grey channel; see the module doc.")
        self.embed = nn.Conv2d(1, channels, 1)
        self.layers = nn.ModuleList(
            GatedLayer(channels, kernel_size, first=(i == 0)) for i in range(num_layers)
        )
        self.out = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, levels, 1)
        )

    def logits(self, k: Tensor) -> Tensor:
        x = self.embed(2 * self.from_levels(k) - 1)  # (B, F, H, W)
        # the vertical stack may see the current row (it reaches h only shifted down);
        # the horizontal stack's first layer shifts right, so x[r, c] never reaches (r, c)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.out(h).unsqueeze(2)  # (B, K, 1, H, W)


@models.register_conformance("ar-pixelcnn")
def _tiny_pixelcnn() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (4, 1, 5, 5), generator=g).float() / 4
    model = PixelCNN((1, 5, 5), 5, channels=8, num_layers=1, first_kernel=3)
    return models.ConformanceCase(model=model, x=x, exact_log_prob=True, checks_input=True)


@models.register_conformance("ar-gated-pixelcnn")
def _tiny_gated_pixelcnn() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (4, 1, 5, 5), generator=g).float() / 4
    model = GatedPixelCNN((1, 5, 5), 5, channels=8, num_layers=2)
    return models.ConformanceCase(model=model, x=x, exact_log_prob=True, checks_input=True)
