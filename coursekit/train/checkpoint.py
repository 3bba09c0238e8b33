"""Checkpoints of a ``fit`` run: everything needed to resume it bit for bit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from coursekit.train import batching
from coursekit.train.batching import Batch
from coursekit.train.ema import EMA
from coursekit.train.history import History

StepFn = Callable[[nn.Module, Batch, int], dict[str, Any]]


@dataclass
class Parts:
    """Everything a checkpoint saves besides the step and the history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    ema: EMA | None
    step_fn: StepFn | None
    batches: Iterator[Batch]


def save(path: str | os.PathLike, parts: Parts, step: int, history: History) -> None:
    state = {
        "model_class": type(parts.model).__qualname__,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict() if parts.optimizer is not None else None,
        "step_fn": parts.step_fn.state_dict() if hasattr(parts.step_fn, "state_dict") else None,
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "step": step,
        "history": {"steps": history.steps, "logs": history.logs, "seconds": history.seconds},
        "batches": batching.batches_state(parts.batches),
        "torch_rng": torch.get_rng_state(),  # for models that draw noise from the global RNG
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    }
    _atomic_save(state, path)


def _atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``.

    ``os.replace`` is atomic on one file system, so an interruption (Ctrl-C, a Colab
    disconnect, a full disk) leaves either the old checkpoint or the new one, never half.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike, parts: Parts, history: History) -> int:
    # everything onto the CPU first: RNG states must stay there, load_state_dict copies the rest
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check_same_model(path, state, parts.model)
    parts.model.load_state_dict(state["model"])
    if parts.optimizer is not None and state["optimizer"] is not None:
        parts.optimizer.load_state_dict(state["optimizer"])
    if hasattr(parts.step_fn, "load_state_dict") and state["step_fn"] is not None:
        parts.step_fn.load_state_dict(state["step_fn"])
    if parts.ema is not None:
        if state["ema"] is not None:
            parts.ema.load_state_dict(state["ema"])
        else:  # the checkpoint was made without EMA: start the average here
            parts.ema.load_state_dict(state["model"])
    batching.load_batches_state(parts.batches, state["batches"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    history.steps[:] = state["history"]["steps"]
    history.logs.clear()
    history.logs.update(state["history"]["logs"])
    history.seconds = state["history"]["seconds"]
    return state["step"]


def _check_same_model(path: str | os.PathLike, state: dict[str, Any], model: nn.Module) -> None:
    saved = {k: tuple(v.shape) for k, v in state["model"].items()}
    current = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = []
    if state["model_class"] != type(model).__qualname__:
        problems.append(f"it holds a {state['model_class']}, not a {type(model).__qualname__}")
    missing, unexpected = sorted(current.keys() - saved), sorted(saved.keys() - current)
    if missing:
        problems.append(f"it lacks {_few(missing)}")
    if unexpected:
        problems.append(f"it has extra {_few(unexpected)}")
    mismatched = [
        f"{k} {saved[k]} vs {current[k]}" for k in saved if k in current and saved[k] != current[k]
    ]
    if mismatched:
        problems.append(f"shapes differ: {_few(mismatched)}")
    if problems:
        raise ValueError(
            f"The checkpoint {os.fspath(path)!r} was saved from a different model: "
            + "; ".join(problems)
            + ". Delete it or pass another checkpoint path to start this model from scratch."
        )


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")
