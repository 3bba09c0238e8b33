"""One interface for every generative model in the course.

Every family offers the same verbs, so one trainer, one evaluator and one comparison
table serve them all:

- ``loss(x, y=None) -> dict[str, Tensor]``: key ``"loss"`` (a scalar) is minimized; the
  other keys (``"recon"``, ``"kl"``, ``"bpd"``, ...) are logged.
- ``sample(n, y=None, *, generator=None) -> Tensor``: ``n`` samples with the same shape
  and range as the data, computed without gradients.
- ``log_prob(x) -> Tensor (B,)``: the exact log-likelihood in nats, where the family has
  one. Otherwise :class:`NotImplementedError` naming the model and the bound to use
  instead (set ``likelihood_hint``).

Two attributes every model has, so that trainers, samplers and evaluators need not guess:

- ``device``: where the model's parameters and buffers live (the one way to ask);
- ``data_shape``: the shape of one example, e.g. ``(1, 8, 8)`` or ``(2,)``; each model
  sets it in its constructor (``sample(n)`` returns ``(n, *data_shape)``).

Each model registers a tiny instance with :func:`register_conformance`; one test
(``tests/test_models.py``) holds every registered model to this interface.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module without either)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")


class GenerativeModel(nn.Module):
    """Base class: subclasses implement ``loss`` and ``sample``, and ``log_prob`` where exact.

    Subclasses set ``self.data_shape`` (the shape of one example) in ``__init__``.
    """

    likelihood_hint: str = "This family has no tractable likelihood."
    data_shape: tuple[int, ...]

    @property
    def device(self) -> torch.device:
        """Where the parameters and buffers live; new tensors of the model are made here."""
        return device_of(self)

    def loss(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement loss(x, y)")

    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} must implement sample(n, y, generator=...)"
        )

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no exact log-likelihood. {self.likelihood_hint}"
        )


@dataclass
class ConformanceCase:
    """A tiny model and a batch of data it accepts, for the conformance test."""

    model: GenerativeModel
    x: Tensor
    y: Tensor | None = None
    data_range: tuple[float, float] | None = (0.0, 1.0)  # closed range samples must fall in
    exact_log_prob: bool = False


_CASES: dict[str, Callable[[], ConformanceCase]] = {}


def register_conformance(name: str):
    """Decorator registering a function that builds a :class:`ConformanceCase`."""

    def decorator(build: Callable[[], ConformanceCase]) -> Callable[[], ConformanceCase]:
        if name in _CASES and _CASES[name].__qualname__ != build.__qualname__:
            raise ValueError(f"a conformance case called {name!r} is already registered")
        _CASES[name] = build
        return build

    return decorator


def conformance_cases() -> dict[str, Callable[[], ConformanceCase]]:
    """Every registered case, after importing all of ``coursekit`` so that each module registers."""
    import coursekit

    for info in pkgutil.walk_packages(coursekit.__path__, prefix="coursekit."):
        importlib.import_module(info.name)
    return dict(_CASES)
