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

from coursekit import utils


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


# ----------------------------------------------------------------------------- input checks


def drop_labels(y: Tensor, p: float, null: int, generator: torch.Generator | None = None) -> Tensor:
    """Label dropout for classifier-free guidance (Ho & Salimans, 2022): each example's label
    becomes ``null`` with probability ``p``, so one network learns p(x | y) and p(x).

    ``y`` is (B,) class indices or (B, ...) per example (a caption's words: all of an
    example's entries are dropped together); one uniform draw per example from ``generator``.
    """
    drop = utils.rand((len(y),), y, generator) < p  # (B,)
    return torch.where(drop.view(-1, *([1] * (y.dim() - 1))), torch.full_like(y, null), y)


def check_data(model: nn.Module, x: Tensor, data_shape: tuple[int, ...] | None = None) -> None:
    """Raise a ``ValueError`` saying what is wrong unless x is (B, *data_shape) and finite."""
    name = type(model).__name__
    shape = tuple(data_shape if data_shape is not None else model.data_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a tensor of shape (B, {_dims(shape)}), got {type(x)}.")
    if tuple(x.shape[1:]) != shape or x.dim() != len(shape) + 1:
        raise ValueError(
            f"{name} expects x of shape (B, {_dims(shape)}), got {tuple(x.shape)}; "
            "reshape the batch (e.g. x.view(-1, *model.data_shape))."
        )
    if x.dtype.is_floating_point and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} got {bad} NaN or infinite value(s) in x; check the data or the step that "
            "produced it (a diverged sampler or a division by zero)."
        )


def levels_of(model: nn.Module, x: Tensor, levels: int) -> Tensor:
    """Discrete data -> integer levels k in 0..levels-1 (int64, same shape), checked.

    ``x`` holds either the levels themselves (an integer tensor, e.g. ``ImageSet.images``) or
    the floats ``k / (levels - 1)`` in [0, 1] (``ImageSet.float()``). Anything else (values
    between two levels, outside the range, NaN) raises a ``ValueError`` that says so, rather
    than being rounded onto a wrong level.
    """
    name = type(model).__name__
    hint = f"pass floats k / {levels - 1} (ImageSet.float()) or integers in 0..{levels - 1}"
    if x.dtype.is_floating_point:
        if not torch.isfinite(x).all():
            raise ValueError(f"{name}: x has NaN or infinite values; {hint}.")
        scaled = x.double() * (levels - 1)
        k = torch.round(scaled)
        off = (scaled - k).abs()
        if off.numel() and float(off.max()) > 1e-3:
            raise ValueError(
                f"{name} models {levels} discrete levels, but x has values between them "
                f"(e.g. {float(x.flatten()[off.flatten().argmax()]):.4g}); {hint}. Dequantized "
                "or continuous data need a density model."
            )
        k = k.long()
    elif x.dtype == torch.bool:
        k = x.long()
    else:
        k = x.long()
    if k.numel() and (int(k.min()) < 0 or int(k.max()) >= levels):
        raise ValueError(
            f"{name}: x has values outside the {levels} levels "
            f"(levels {int(k.min())}..{int(k.max())} found); {hint}."
        )
    return k


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


@dataclass
class ConformanceCase:
    """A tiny model and a batch of data it accepts, for the conformance test."""

    model: GenerativeModel
    x: Tensor
    y: Tensor | None = None
    data_range: tuple[float, float] | None = (0.0, 1.0)  # closed range samples must fall in
    exact_log_prob: bool = False
    # log_prob returns an estimate, not the exact value (an ODE solve, a stochastic trace):
    # the test checks its shape, finiteness and input checks, and the model's likelihood_kind
    estimated_log_prob: bool = False
    checks_input: bool = False  # loss and log_prob reject a wrong shape and NaN with a message


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
