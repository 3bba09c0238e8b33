"""Random mini-batches drawn on the device, without a DataLoader.

The course's data sets are small (at most 60000 28x28 images = 47 MB as uint8), so the
whole set is moved to the device once and batches are gathered there by indexing: no
worker processes, no host-to-device copy per step. Images stay uint8 on the device
(4x less memory than float32) and ``transform`` turns each batch into floats there.

Sampling is epoch-wise without replacement: each epoch is a fresh random permutation
drawn from ``generator``, cut into batches of ``batch_size``; the last batch of an epoch
is shorter when ``batch_size`` does not divide ``N``, so every example is seen exactly
once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from coursekit.data.imageset import ImageSet


class Batches:
    """An endless iterator of ``(x_batch, y_batch)`` pairs; ``y_batch`` is ``None`` without labels.

    Args:
        x: a tensor ``(N, ...)`` or an ``ImageSet``. An ``ImageSet`` brings its labels
            (unless ``y`` is given) and, unless ``transform`` is given, is turned into
            float32 in ``[0, 1]`` batch by batch, exactly like ``ImageSet.float()``.
        y: labels ``(N, ...)`` or ``None``. Pass ``y=False`` to drop an ``ImageSet``'s labels.
        batch_size: examples per batch (the last batch of an epoch may be shorter).
        device: where the data live and batches are made; ``None`` keeps ``x``'s device.
        transform: applied to each ``x`` batch on the device, e.g. ``lambda u: u.float() / 255``.
        generator: a CPU ``torch.Generator`` for the permutations; ``None`` means a fresh one
            seeded with 0, so runs are repeatable either way.

    Example::

        batches = Batches(data.fashion_mnist("train"), batch_size=128, device=utils.device())
        x, y = next(batches)  # x: (128, 1, 28, 28) float32 in [0, 1], y: (128,) int64
    """

    def __init__(
        self,
        x: Tensor | ImageSet,
        y: Tensor | None | bool = None,
        *,
        batch_size: int,
        device: torch.device | str | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(x, ImageSet):
            levels = x.levels
            y = x.labels if y is None else y
            if transform is None:
                transform = lambda u: u.float() / (levels - 1)  # same as ImageSet.float()
            x = x.images
        if y is False:
            y = None
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}.")
        if len(x) == 0 or batch_size < 1:
            raise ValueError(f"Need examples and batch_size >= 1; got N={len(x)}, {batch_size=}.")
        device = torch.device(device) if device is not None else x.device
        self.x = x.to(device)  # moved once; batches are gathered on the device
        self.y = y.to(device) if y is not None else None
        self.batch_size = batch_size
        self.device = device
        self.transform = transform
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.epoch = 0  # completed epochs
        self._order = self._new_order()
        self._pos = 0

    def _new_order(self) -> Tensor:
        # drawn where the generator lives (CPU), then one small copy of N indices
        perm = torch.randperm(len(self.x), generator=self.generator, device=self.generator.device)
        return perm.to(self.device)

    def state_dict(self) -> dict:
        """Where the iterator stands: the generator, this epoch's order and the position in it.

        ``load_state_dict`` of this dict on a ``Batches`` over the same data continues with
        exactly the batches this one would have drawn next (``train.fit`` resumes with it).
        """
        return {
            "generator": self.generator.get_state(),
            "order": self._order.cpu(),
            "pos": self._pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``; the data must have the same number of examples."""
        order = torch.as_tensor(state["order"])
        if order.shape != (len(self.x),):
            raise ValueError(
                f"This state is for a data set of {order.numel()} examples, but these Batches "
                f"hold {len(self.x)}: resume with the data the state was saved with."
            )
        self.generator.set_state(state["generator"])
        self._order = order.to(self.device)
        self._pos, self.epoch = int(state["pos"]), int(state["epoch"])

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[Tensor, Tensor | None]:
        if self._pos >= len(self.x):
            self.epoch += 1
            self._order, self._pos = self._new_order(), 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        xb = self.x[idx]
        if self.transform is not None:
            xb = self.transform(xb)
        return xb, (self.y[idx] if self.y is not None else None)
