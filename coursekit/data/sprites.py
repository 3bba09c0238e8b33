"""A procedurally drawn shapes dataset with known factors of variation, like dSprites.

Each image is one white shape on black, drawn from five independent factors:

- ``shape``: 0 square, 1 ellipse, 2 triangle (uniform);
- ``scale``: uniform in [0.5, 1];
- ``rotation``: uniform in [0, pi/3) radians, a range in which no two angles give the same
  picture for any of the three shapes (a square repeats every pi/2, a triangle every 2 pi/3);
- ``x``, ``y``: the centre, uniform in [0.3, 0.7] of the canvas (x to the right, y down).

Every shape fits in a circle of radius ``RADIUS * scale`` <= 0.3 around its centre, so none
is ever cut by the border.

``shapes(n, size=32, seed=0)`` is a pure function of its arguments (a private generator;
the global RNG is untouched). Images are binary (``levels=2``), labels are the shape, and
``factors`` holds all five factors as float32 ``(N, 5)``, columns in ``FACTOR_NAMES`` order.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from coursekit.data.imageset import ImageSet

SHAPE_NAMES = ["square", "ellipse", "triangle"]
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
MAX_ROTATION = math.pi / 3
RADIUS = 0.3  # of the canvas, at scale 1: the circumradius of the shape


@dataclasses.dataclass(repr=False)
class ShapesSet(ImageSet):
    """An ``ImageSet`` that also knows the factors each image was drawn from.

    ``factors``: float32 ``(N, 5)`` in ``FACTOR_NAMES`` order (shape as 0., 1., 2.).
    """

    factors: Tensor | None = None
    factor_names: tuple[str, ...] = FACTOR_NAMES

    def subset(self, n: int, seed: int = 0) -> ShapesSet:
        """``n`` examples at random without replacement (factors kept in step)."""
        if not 0 <= n <= len(self):
            raise ValueError(f"Cannot take n={n} examples from {self!r}: 0 <= n <= {len(self)}.")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return dataclasses.replace(
            self, images=self.images[idx], labels=self.labels[idx], factors=self.factors[idx]
        )

    def to(self, device: torch.device | str) -> ShapesSet:
        return dataclasses.replace(
            self,
            images=self.images.to(device),
            labels=self.labels.to(device),
            factors=self.factors.to(device),
        )


def render_shapes(factors: Tensor, size: int = 32) -> Tensor:
    """Draw the shapes given by ``factors`` (N, 5): a uint8 image batch (N, 1, size, size) of 0/1.

    A pixel is white when its centre lies inside the shape: the centre is moved into the
    shape's own frame (translate, rotate by -rotation, divide by the radius) and tested there.
    """
    shape, scale, rotation, cx, cy = factors.unbind(1)  # (N,) each
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # (size,)
    px = centres.view(1, 1, size) - cx.view(-1, 1, 1)  # (N, 1, size): x grows to the right
    py = centres.view(1, size, 1) - cy.view(-1, 1, 1)  # (N, size, 1): y grows downwards
    radius = (RADIUS * scale).view(-1, 1, 1)
    cos, sin = torch.cos(rotation).view(-1, 1, 1), torch.sin(rotation).view(-1, 1, 1)
    u = (cos * px + sin * py) / radius  # (N, size, size) in the shape's frame
    v = (-sin * px + cos * py) / radius
    square = torch.maximum(u.abs(), v.abs()) <= 0.7  # corners at 0.99: inside the circle
    ellipse = u**2 + (v / 0.5) ** 2 <= 1.0  # twice as wide as tall, so rotation shows
    # equilateral triangle of circumradius 1: inside all three edges, inradius 1/2
    edge_normals = [-math.pi / 2, math.pi / 6, 5 * math.pi / 6]
    triangle = torch.stack([u * math.cos(a) + v * math.sin(a) <= 0.5 for a in edge_normals]).all(0)
    kind = shape.long().view(-1, 1, 1)
    inside = torch.where(kind == 0, square, torch.where(kind == 1, ellipse, triangle))
    return inside.to(torch.uint8).unsqueeze(1)  # (N, 1, size, size)


def shapes(n: int = 10_000, *, size: int = 32, seed: int = 0) -> ShapesSet:
    """``n`` binary images of shapes with independent random factors (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 4, generator=gen)
    factors = torch.stack(
        [
            torch.randint(0, len(SHAPE_NAMES), (n,), generator=gen).float(),
            0.5 + 0.5 * u[:, 0],  # scale
            MAX_ROTATION * u[:, 1],  # rotation
            0.3 + 0.4 * u[:, 2],  # x
            0.3 + 0.4 * u[:, 3],  # y
        ],
        dim=1,
    )  # (n, 5)
    return ShapesSet(
        images=render_shapes(factors, size),
        labels=factors[:, 0].long(),
        levels=2,
        classes=list(SHAPE_NAMES),
        name=f"shapes/{size}x{size}/seed{seed}",
        factors=factors,
    )
