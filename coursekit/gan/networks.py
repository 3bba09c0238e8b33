"""Small GAN networks: MLP players for toys and flat images, a DCGAN generator and critic.

DCGAN (Radford et al. 2016): strided (transposed) convolutions instead of pooling, batch norm
in the generator, LeakyReLU in the discriminator. ``DCCritic(norm="batch")`` is the original
discriminator; ``norm="none"`` or ``"layer"`` is the one to use with a gradient penalty.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class MLPGenerator(nn.Module):
    """z (B, latent) -> x (B, *data_shape); ``out="sigmoid"`` for images in [0, 1]."""

    def __init__(
        self,
        latent: int,
        data_shape: tuple[int, ...],
        hidden: int = 128,
        depth: int = 3,
        out: str = "none",
    ):
        super().__init__()
        if out not in ("none", "sigmoid"):
            raise ValueError(f"out must be 'none' or 'sigmoid', got {out!r}.")
        self.data_shape, self.out = tuple(data_shape), out
        dims = [latent] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, math.prod(self.data_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z).view(-1, *self.data_shape)
        return torch.sigmoid(x) if self.out == "sigmoid" else x


class MLPCritic(nn.Module):
    """x (B, *shape) -> one logit or score per sample (B, 1); ``pack`` > 1 is PacGAN.

    PacGAN (Lin et al. 2018): the critic judges ``pack`` samples at once, (B, D) -> (B/pack,
    pack*D); a generator that repeats itself is visible in a pack, which fights mode collapse.
    """

    def __init__(self, in_dim: int, hidden: int = 128, depth: int = 3, pack: int = 1):
        super().__init__()
        self.pack = pack
        dims = [in_dim * pack] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        if x.shape[0] % self.pack:
            raise ValueError(
                f"a packed critic needs a batch divisible by pack={self.pack}, "
                f"got {x.shape[0]}; choose the batch size accordingly."
            )
        return self.net(x.reshape(x.shape[0] // self.pack, -1))


class DCGenerator(nn.Module):
    """DCGAN generator for (C, 8, 8) or (C, 28, 28)... images: z -> (ch, s, s) -> up x2 twice.

    ``size`` must be divisible by 4; output in [0, 1] (sigmoid).
    """

    def __init__(self, latent: int, channels: int = 1, size: int = 8, width: int = 64):
        super().__init__()
        if size % 4:
            raise ValueError(
                f"DCGenerator doubles the size twice; size must be divisible by 4, got {size}."
            )
        self.s, self.width = size // 4, width
        self.data_shape = (channels, size, size)
        self.fc = nn.Sequential(
            nn.Linear(latent, 2 * width * self.s * self.s),
            nn.BatchNorm1d(2 * width * self.s * self.s),
            nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.width, self.s, self.s))


class DCCritic(nn.Module):
    """DCGAN critic: two stride-2 convolutions with LeakyReLU(0.2), then a linear score.

    norm: "batch" (the DCGAN discriminator), "layer" or "none" (for a gradient penalty).
    """

    def __init__(self, channels: int = 1, size: int = 8, width: int = 64, norm: str = "none"):
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}.")

        def normed(c: int) -> nn.Module:
            return {"batch": nn.BatchNorm2d(c), "layer": nn.GroupNorm(1, c), "none": nn.Identity()}[
                norm
            ]

        s = size // 4
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), normed(2 * width), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * s * s, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
