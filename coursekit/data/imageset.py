"""``ImageSet``: a labelled set of discrete images, as stored (uint8 levels, no rescaling).

``images`` uint8 ``(N, C, H, W)`` holds the grey levels ``0 .. levels - 1`` exactly as the
files store them; ``labels`` int64 ``(N,)``. ``ImageSet.float()`` gives float32 in ``[0, 1]``
(``images / (levels - 1)``); models that need ``[-1, 1]`` or dequantization noise do it
themselves, so the discrete data stay available for bits/dim.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass
class ImageSet:
    """A labelled set of discrete images.

    Attributes:
        images: uint8 ``(N, C, H, W)``, values in ``0 .. levels - 1``.
        labels: int64 ``(N,)``, values in ``0 .. len(classes) - 1``.
        levels: number of grey levels (17 for sklearn's digits, 256 for 8-bit images).
        classes: the class names, ``classes[label]``.
        name: a short description, e.g. ``"fashion-mnist/train"``.
    """

    images: Tensor
    labels: Tensor
    levels: int
    classes: list[str]
    name: str = ""

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError(
                "ImageSet.images must be a uint8 tensor of shape (N, C, H, W); got "
                f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}."
            )
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
            raise TypeError(
                f"ImageSet.labels must be an int64 tensor of shape ({x.shape[0]},); got "
                f"{type(y).__name__} {getattr(y, 'dtype', '')} {tuple(getattr(y, 'shape', ()))}."
            )
        if not 2 <= self.levels <= 256:
            raise ValueError(f"ImageSet.levels must be in 2..256, got {self.levels}.")
        if len(x) and int(x.max()) >= self.levels:
            raise ValueError(
                f"ImageSet.images has a value {int(x.max())} >= levels={self.levels}; "
                "pass the raw integer levels, not rescaled images."
            )
        if len(y) and self.classes and not 0 <= int(y.min()) <= int(y.max()) < len(self.classes):
            raise ValueError(
                f"ImageSet.labels must lie in 0..{len(self.classes) - 1} "
                f"(one per class name); got {int(y.min())}..{int(y.max())}."
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        """Where the images and labels live."""
        return self.images.device

    def __repr__(self) -> str:
        N, C, H, W = self.images.shape
        return (
            f"ImageSet({self.name!r}: {N} images of {C}x{H}x{W}, {self.levels} levels, "
            f"{len(self.classes)} classes, device={self.images.device})"
        )

    def float(self) -> Tensor:
        """The images as float32 ``(N, C, H, W)`` in ``[0, 1]``: ``images / (levels - 1)``."""
        return self.images.float() / (self.levels - 1)

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """``n`` examples drawn at random without replacement, reproducibly from ``seed``."""
        if not 0 <= n <= len(self):
            raise ValueError(f"Cannot take n={n} examples from {self!r}: 0 <= n <= {len(self)}.")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.images.device)
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])

    def to(self, device: torch.device | str) -> ImageSet:
        """The same set with both tensors on ``device``."""
        return dataclasses.replace(
            self, images=self.images.to(device), labels=self.labels.to(device)
        )

    def binarize(self) -> ImageSet:
        """Black and white images (``levels=2``): 1 where ``float() >= 0.5``, deterministically."""
        # x / (levels - 1) >= 1/2  <=>  2x >= levels - 1; int16 so that 2x cannot overflow
        white = 2 * self.images.to(torch.int16) >= self.levels - 1
        return dataclasses.replace(
            self, images=white.to(torch.uint8), levels=2, name=f"{self.name} (binarized)"
        )


def from_arrays(
    images: np.ndarray, labels: np.ndarray, levels: int, classes: list[str], name: str
) -> ImageSet:
    """An ``ImageSet`` from NumPy arrays: images (N, H, W) or (N, C, H, W), labels (N,)."""
    images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    if images.dim() == 3:
        images = images[:, None]  # (N, 1, H, W)
    labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return ImageSet(images, labels, levels, list(classes), name)
