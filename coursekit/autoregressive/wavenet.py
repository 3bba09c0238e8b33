"""WaveNet (van den Oord et al. 2016c): dilated causal 1-D convolutions over audio samples.

A *causal* convolution pads on the left only, so output t sees inputs <= t. Shifting the
input right by one sample makes output t see x_<t: the logits of p(x_t | x_<t).
Dilations 1, 2, 4, ..., 2^(L-1) with kernel 2 double the receptive field per layer:

    receptive field = 1 + sum_l (kernel - 1) * dilation_l     (samples before t)

which grows exponentially with depth, against linearly without dilation. Each layer is a
gated residual block (2016c, eq. 2 and fig. 4): z = tanh(W_f * x) * sigmoid(W_g * x),
a 1x1 convolution back to the residual stream, and a 1x1 "skip" to the output head.

Audio is mu-law companded and quantized to 256 levels (``coursekit.data.audio``), so the
output is a softmax over 256 classes per sample.

Data convention of ``base.Autoregressive``: x in [0, 1] = k / (levels - 1), (B, 1, T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import models
from coursekit.autoregressive.base import Autoregressive, sample_categorical


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only: output t sees inputs t - (k-1)d .. t."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f, g = self.conv(x).chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(g)  # the gated activation unit, eq. 2
        return x + self.res(z), self.skip(z)


class WaveNet(Autoregressive):
    """Dilated causal convolutions, ``levels`` logits per time step.

    Args:
        length: the number of samples T of one example (shape (1, T)).
        dilations: one per layer; the default (1, 2, ..., 128) twice.
    """

    def __init__(
        self,
        length: int,
        levels: int = 256,
        channels: int = 32,
        skip_channels: int = 64,
        kernel_size: int = 2,
        dilations: tuple[int, ...] | None = None,
    ):
        super().__init__((1, length), levels)
        self.dilations = tuple(dilations or [2**i for i in range(8)] * 2)
        self.kernel_size = kernel_size
        self.embed = nn.Embedding(levels, channels)
        self.start = nn.Parameter(torch.zeros(channels, 1))  # the "sample" before x_0
        self.blocks = nn.ModuleList(
            ResidualBlock(channels, skip_channels, kernel_size, d) for d in self.dilations
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(skip_channels, skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(skip_channels, levels, 1),
        )

    @property
    def receptive_field(self) -> int:
        """How many past samples output t can see: 1 + sum (kernel - 1) * dilation."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def logits(self, k: Tensor) -> Tensor:
        B, _, T = k.shape
        x = self.embed(k[:, 0]).transpose(1, 2)  # (B, C, T)
        # shift right by one sample: position t now holds x_{t-1}, so output t sees x_<t
        x = torch.cat([self.start.expand(B, -1, 1), x[:, :, :-1]], dim=2)  # (B, C, T)
        skips = 0
        for block in self.blocks:
            x, s = block(x)
            skips = skips + s
        return self.head(skips).unsqueeze(2)  # (B, K, 1, T)

    @torch.no_grad()
    def sample(
        self, n, y=None, *, generator=None, temperature: float = 1.0, length: int | None = None
    ) -> Tensor:
        """Sample T steps; each step runs the network on the last ``receptive_field`` samples
        only (what output t can see), not on the whole past. Returns (n, 1, T) in [0, 1]."""
        was_training = self.training
        self.eval()
        T = length or self.data_shape[1]
        R = self.receptive_field
        k = torch.zeros(n, 1, T, dtype=torch.long, device=self.start.device)
        for t in range(T):
            lo = max(0, t - R)
            # a window of x_{lo..t}: its last output sees x_{lo..t-1}, all that matters
            logits = self.logits(k[:, :, lo : t + 1])[:, :, 0, -1]  # (n, K)
            k[:, 0, t] = sample_categorical(logits / temperature, generator)
        self.train(was_training)
        return self.from_levels(k)


@models.register_conformance("ar-wavenet")
def _tiny_wavenet() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 16, (4, 1, 12), generator=g).float() / 15
    model = WaveNet(12, levels=16, channels=8, skip_channels=8, dilations=(1, 2))
    return models.ConformanceCase(model=model, x=x, exact_log_prob=True, checks_input=True)
