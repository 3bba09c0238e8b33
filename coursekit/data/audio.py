"""Generated audio-like signals for WaveNet: sums of tones with noise, mu-law quantized.

``tones(n, length=2048, sample_rate=4000, seed=0) -> AudioSet`` draws n clips. Each clip
is a sum of 1-3 sinusoids whose frequencies are notes of a pentatonic scale (so a model
can learn the pitches), with random amplitudes, phases and a slow attack/decay envelope,
plus a little Gaussian noise. Clips lie in [-1, 1] and are mu-law companded and quantized
to 256 levels (ITU-T G.711; WaveNet, van den Oord et al. 2016, §2.2):

    f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu),   mu = 255,   code = round((f(x) + 1) / 2 * 255)

``AudioSet.codes`` is uint8 (n, 1, length), ``.float()`` is codes / 255 in [0, 1] (the data
convention of ``coursekit.autoregressive``), ``.waveform()`` decodes back to [-1, 1].
Randomness comes only from a private generator seeded with ``seed``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

# A pentatonic scale over two octaves from A3 (220 Hz): 220 * 2^(semitones / 12)
_SEMITONES = (0, 2, 4, 7, 9, 12, 14, 16, 19, 21)


def mu_law_encode(x: Tensor, levels: int = 256) -> Tensor:
    """[-1, 1] floats -> uint8-valued int64 codes 0..levels-1 (mu = levels - 1)."""
    mu = levels - 1
    f = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1)) / math.log1p(mu)
    return torch.round((f + 1) / 2 * mu).long()


def mu_law_decode(codes: Tensor, levels: int = 256) -> Tensor:
    """codes 0..levels-1 -> [-1, 1] floats, the inverse of ``mu_law_encode`` up to rounding."""
    mu = levels - 1
    f = 2 * codes.double() / mu - 1
    return (torch.sign(f) * ((1 + mu) ** f.abs() - 1) / mu).float()


@dataclasses.dataclass
class AudioSet:
    codes: Tensor  # uint8 (N, 1, T), mu-law levels
    sample_rate: int
    levels: int = 256

    def __len__(self) -> int:
        return self.codes.shape[0]

    def float(self) -> Tensor:
        """codes / (levels - 1): float32 in [0, 1], (N, 1, T)."""
        return self.codes.float() / (self.levels - 1)

    def waveform(self) -> Tensor:
        """The decoded signal in [-1, 1], float32 (N, 1, T)."""
        return mu_law_decode(self.codes.long(), self.levels)


def tones(
    n: int, length: int = 2048, sample_rate: int = 4000, noise: float = 0.02, seed: int = 0
) -> AudioSet:
    """n clips of 1-3 pentatonic tones with an envelope and noise; see the module doc."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64) / sample_rate  # (T,) seconds
    semis = torch.tensor(_SEMITONES, dtype=torch.float64)
    num = torch.randint(1, 4, (n,), generator=g)  # 1..3 tones per clip
    x = torch.zeros(n, length, dtype=torch.float64)
    for j in range(3):
        freq = 220.0 * 2 ** (semis[torch.randint(len(_SEMITONES), (n,), generator=g)] / 12)
        amp = (0.2 + 0.3 * torch.rand(n, generator=g, dtype=torch.float64)) * (j < num)
        phase = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        x += amp[:, None] * torch.sin(2 * math.pi * freq[:, None] * t + phase[:, None])
    # a slow attack (10 ms) and an exponential decay, so clips are not pure stationary sines
    decay = 0.5 + 1.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)  # per second
    env = (1 - torch.exp(-t / 0.01)) * torch.exp(-decay * t)  # (n, T)
    x = x * env + noise * torch.randn(n, length, generator=g, dtype=torch.float64)
    x = x / x.abs().amax(1, keepdim=True).clamp(min=1.0)  # keep inside [-1, 1]
    codes = mu_law_encode(x.float()).to(torch.uint8)
    return AudioSet(codes=codes[:, None], sample_rate=sample_rate)
