"""3-D GANs at 16^3 (or 8^3): procedural voxel shapes, a voxel GAN, and Platonic GAN's 2-D supervision.

- ``shapes_3d``: spheres, boxes and tori with random size, position and (tori) thickness, as
  occupancy grids (N, 1, S, S, S) in {0, 1}; axis order (depth, height, width).
- ``VoxelGenerator`` / ``VoxelCritic``: the 3D-GAN of Wu et al. (2016) scaled down: 3-D
  transposed convolutions with batch norm in G, 3-D strided convolutions in the critic.
- ``render(vox, angle)``: a differentiable image of a grid, the grid turned by ``angle``
  (radians) about its vertical axis (trilinear resampling, ``grid_sample``), then an
  absorption-only projection along depth, 1 - exp(-sum of occupancy) (the "visual hull"
  image former of Platonic GAN).
- ``PlatonicGenerator``: Platonic GAN (Henzler et al. 2019): a 3-D generator that the critic
  never sees in 3-D; its grid is rendered from a random view and a *2-D* critic compares the
  image with renderings of real shapes. The input is (z, angle), the angle in the last column,
  so ``train.Adversarial`` trains it unchanged (``platonic_noise``).
- ``nearest_iou``: each sample's best intersection-over-union with a reference set (0.5
  threshold), a simple realism score for voxel grids.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHAPE_KINDS = ("sphere", "box", "torus")


def shapes_3d(n: int, size: int = 16, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n occupancy grids (n, 1, size, size, size) in {0, 1} and their kinds (n,) (SHAPE_KINDS)."""
    g = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, len(SHAPE_KINDS), (n,), generator=g)
    c = (torch.arange(size) + 0.5) / size * 2 - 1  # voxel centres in [-1, 1]
    zz, yy, xx = torch.meshgrid(c, c, c, indexing="ij")  # (S, S, S) each
    p = torch.stack([zz, yy, xx])[None]  # (1, 3, S, S, S)
    centre = (torch.rand(n, 3, generator=g) - 0.5) * 0.4  # offsets in [-0.2, 0.2]
    r = 0.35 + 0.3 * torch.rand(n, 3, generator=g)  # half-sizes in [0.35, 0.65]
    q = p - centre[:, :, None, None, None]  # (n, 3, S, S, S)
    rr = r[:, :, None, None, None]
    sphere = q.pow(2).sum(1) <= rr[:, 0].pow(2)
    box = (q.abs() <= rr).all(1)
    # torus in the horizontal (depth, width) plane: ring radius r0, tube radius r1
    r0, r1 = rr[:, 0] * 0.9, rr[:, 1] * 0.35 + 0.05
    ring = (q[:, 0].pow(2) + q[:, 2].pow(2)).sqrt() - r0
    torus = ring.pow(2) + q[:, 1].pow(2) <= r1.pow(2)
    k = kind[:, None, None, None]
    vox = torch.where(k == 0, sphere, torch.where(k == 1, box, torus))
    return vox[:, None].float(), kind


def rotate_y(vox: Tensor, angle: Tensor) -> Tensor:
    """Grids (B, C, D, H, W) turned by angle (B,) radians about the vertical (H) axis."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    # affine_grid's coordinates are (x=W, y=H, z=D); the rotation mixes x and z
    theta = torch.stack(
        [
            torch.stack([cos, zero, sin, zero], 1),
            torch.stack([zero, one, zero, zero], 1),
            torch.stack([-sin, zero, cos, zero], 1),
        ],
        1,
    )  # (B, 3, 4)
    grid = F.affine_grid(theta, list(vox.shape), align_corners=False)
    return F.grid_sample(vox, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def project(vox: Tensor) -> Tensor:
    """Absorption-only image along depth: (B, C, D, H, W) -> (B, C, H, W), 1 - exp(-sum_D vox)."""
    return 1 - torch.exp(-vox.sum(2))


def render(vox: Tensor, angle: Tensor | float = 0.0) -> Tensor:
    """The image (B, C, H, W) of grids (B, C, D, H, W) seen after turning them by ``angle``."""
    angle = torch.as_tensor(angle, dtype=vox.dtype, device=vox.device).expand(vox.shape[0])
    return project(rotate_y(vox, angle))


def random_views(vox: Tensor, views: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """``views`` renderings of each grid at angles ~ U(0, 2 pi): (B * views, C, H, W)."""
    rep = vox.repeat_interleave(views, 0)
    angle = torch.rand(rep.shape[0], generator=generator).to(vox) * 2 * math.pi
    return render(rep, angle)


class VoxelGenerator(nn.Module):
    """z (B, latent) -> occupancy (B, 1, S, S, S) in [0, 1]: (S/4)^3 -> (S/2)^3 -> S^3 (S = size)."""

    def __init__(self, latent: int = 32, width: int = 16, size: int = 16):
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be a multiple of 4 (two doublings), got {size}.")
        self.width, self.s = width, size // 4
        cells = 2 * width * self.s**3
        self.fc = nn.Sequential(nn.Linear(latent, cells), nn.BatchNorm1d(cells), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose3d(2 * width, width, 4, 2, 1), nn.BatchNorm3d(width), nn.ReLU(),
            nn.ConvTranspose3d(width, 1, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        s = self.s
        return self.net(self.fc(z).view(-1, 2 * self.width, s, s, s))  # (B, 1, 4s, 4s, 4s)


class VoxelCritic(nn.Module):
    """(B, 1, S, S, S) -> (B, 1) logits: two stride-2 3-D convolutions, LeakyReLU (S = size)."""

    def __init__(self, width: int = 16, size: int = 16):
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be a multiple of 4 (two halvings), got {size}.")
        self.net = nn.Sequential(
            nn.Conv3d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv3d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 3, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PlatonicGenerator(nn.Module):
    """(B, latent + 1) = (z, angle) -> the image of the generated grid seen from that angle."""

    def __init__(self, voxels: nn.Module):
        super().__init__()
        self.voxels = voxels

    def forward(self, z_angle: Tensor) -> Tensor:
        return render(self.voxels(z_angle[:, :-1]), z_angle[:, -1])  # (B, 1, S, S)


def platonic_noise(latent: int) -> Callable[[int, torch.Generator | None], Tensor]:
    """``noise(n, rng)`` for ``train.Adversarial``: z ~ N(0, I) and an angle ~ U(0, 2 pi)."""

    def noise(n: int, rng: torch.Generator | None) -> Tensor:
        z = torch.randn(n, latent, generator=rng)
        angle = torch.rand(n, 1, generator=rng) * 2 * math.pi
        return torch.cat([z, angle], 1)

    return noise


@torch.no_grad()
def nearest_iou(samples: Tensor, reference: Tensor, threshold: float = 0.5) -> Tensor:
    """(N,) the best IoU of each sample's occupied set (> threshold) with a reference grid."""
    a = (samples.flatten(1) > threshold).float()  # (N, V)
    b = (reference.flatten(1) > threshold).float()  # (M, V)
    inter = a @ b.t()  # (N, M)
    union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
    return (inter / union.clamp_min(1)).max(1).values
