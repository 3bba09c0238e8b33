"""Where ``fit``'s batches come from, and how their position in the data order is saved."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from coursekit.data import Batches, ImageSet

Batch = tuple[Tensor, Tensor | None]


def batches_from(
    data: Any, batch_size: int, dev: torch.device, generator: torch.Generator | None
) -> Iterator[Batch]:
    if isinstance(data, ImageSet):
        return Batches(data, batch_size=batch_size, device=dev, generator=generator)
    if isinstance(data, Tensor):
        return Batches(data, batch_size=batch_size, device=dev, generator=generator)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        return Batches(data[0], data[1], batch_size=batch_size, device=dev, generator=generator)
    if isinstance(data, Iterable):
        return _moved(data, dev)
    raise TypeError(
        f"fit() cannot draw batches from a {type(data).__name__}; pass a Tensor, "
        "a tuple (x, y), an ImageSet or an iterable of (x, y) batches."
    )


def _moved(batches: Iterable, dev: torch.device) -> Iterator[Batch]:
    """The user's batches on ``dev``; a re-iterable (a DataLoader) restarts at each epoch."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
            yield (
                x.to(dev, non_blocking=True),
                (y.to(dev, non_blocking=True) if y is not None else None),
            )
        if empty or iter(batches) is batches:
            raise RuntimeError(
                "The data iterator ran out of batches before `steps` were done; pass an "
                "endless iterator, a re-iterable such as a DataLoader, or fewer steps."
            )


def batches_state(batches: Iterator[Batch]) -> dict[str, Any] | None:
    # the position in the data order, so a resumed run sees the same batches
    if hasattr(batches, "state_dict"):
        return batches.state_dict()
    if isinstance(batches, Batches):
        return {
            "generator": batches.generator.get_state(),
            "order": batches._order.cpu(),
            "pos": batches._pos,
            "epoch": batches.epoch,
        }
    return None


def load_batches_state(batches: Iterator[Batch], state: dict[str, Any] | None) -> None:
    if state is None:
        return
    if hasattr(batches, "load_state_dict"):
        batches.load_state_dict(state)
    elif isinstance(batches, Batches):
        batches.generator.set_state(state["generator"])
        batches._order = state["order"].to(batches.device)
        batches._pos, batches.epoch = state["pos"], state["epoch"]
