"""Checkpoints of a ``fit`` run: resume it bit for bit, never from a poisoned or damaged file.

What a checkpoint holds: the model, the optimizer, the EMA, a custom step's state, the step,
the history and the random state (the data order and torch's global RNG).

Three promises, each tested (``tests/test_checkpoints.py``):

1. **Never poisoned.** ``save`` refuses to write a state holding a NaN or an infinity (a
   gradient can be infinite while the logged loss is finite, and Adam then turns every
   parameter into NaN); the file on disk keeps the last good state.
2. **Never half-written.** The file is written to ``<path>.tmp-*`` next to it, flushed to disk
   and renamed over ``<path>`` (``os.replace`` is atomic on one file system); the good file it
   replaces becomes ``<path>.prev``. An interruption (Ctrl-C, SIGKILL, a Colab disconnect, a
   full disk) leaves the old checkpoint or the new one, and a stray temporary file that the
   next run removes.
3. **Verified on load.** The file is ``torch.save({"format", "sha256", "payload"})``, where
   ``payload`` holds the bytes of ``torch.save(state)`` and ``sha256`` their checksum. A file
   that is empty, truncated, not a checkpoint, or has a changed byte fails the check; ``fit``
   then resumes from ``<path>.prev`` with a warning, or stops with a
   :class:`~coursekit.errors.CheckpointError` that names the file and what to do. Files are
   read with ``weights_only=True`` (tensors and plain Python values only: loading a checkpoint
   cannot run code).
"""

from __future__ import annotations

import glob
import hashlib
import io
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from coursekit.errors import CheckpointError
from coursekit.train import batching
from coursekit.train.batching import Batch
from coursekit.train.ema import EMA
from coursekit.train.history import History

StepFn = Callable[[nn.Module, Batch, int], dict[str, Any]]

FORMAT = "coursekit-checkpoint/2"


@dataclass
class Parts:
    """Everything a checkpoint saves besides the step and the history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    ema: EMA | None
    step_fn: StepFn | None
    batches: Iterator[Batch]


class NonFiniteStateError(FloatingPointError):
    """The state to be saved holds a NaN or an infinity; ``where`` names the first such entry."""

    def __init__(self, where: str):
        super().__init__(f"{where} is not finite")
        self.where = where


# ----------------------------------------------------------------------------- saving


def save(path: str | os.PathLike, parts: Parts, step: int, history: History) -> None:
    """Write the run's state to ``path`` (verified, atomic, rotating the good file to ``.prev``).

    Raises :class:`NonFiniteStateError` (a ``FloatingPointError``), writing nothing, when a
    parameter, an optimizer statistic or an EMA value is NaN or infinite.
    """
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
    # the logged history was checked as it was logged (fit's guard); check everything else
    where = first_non_finite({k: v for k, v in state.items() if k != "history"})
    if where is not None:
        raise NonFiniteStateError(where)
    write(state, path)


def first_non_finite(obj: Any, name: str = "") -> str | None:
    """The dotted name of the first NaN or infinite float in nested dicts/lists, else None."""
    if isinstance(obj, Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(torch.isfinite(obj).all()) else name
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else name
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def write(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Serialize ``state`` with its checksum to ``path`` atomically; the good old file -> ``.prev``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapped = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(wrapped, f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path) and _intact(path):
            # a hard link (or a copy) moved into place: `path` exists at every instant
            prev_tmp = _temporary(path + ".prev")
            try:
                try:
                    os.link(path, prev_tmp + ".link")
                    os.replace(prev_tmp + ".link", prev_tmp)
                except OSError:  # a file system without hard links
                    shutil.copyfile(path, prev_tmp)
                os.replace(prev_tmp, path + ".prev")
            finally:
                for leftover in (prev_tmp, prev_tmp + ".link"):
                    if os.path.exists(leftover):
                        os.unlink(leftover)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _temporary(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{name}.tmp-")
    os.close(fd)
    return tmp


def temporary_files(path: str | os.PathLike) -> list[str]:
    """The temporary files that interrupted writes of ``path`` (or of its ``.prev``) left."""
    path = glob.escape(os.path.abspath(path))
    return sorted(glob.glob(path + ".tmp-*") + glob.glob(path + ".prev.tmp-*"))


# ----------------------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state saved in a checkpoint file, after verifying its checksum (on the CPU).

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a coursekit checkpoint,
            or its checksum does not match its contents; the message names the file.
    """
    path = os.fspath(path)
    wrapped = _read(path)
    if "format" not in wrapped and {"model", "step"} <= wrapped.keys():
        warnings.warn(
            f"The checkpoint {path!r} has no checksum (an older coursekit wrote it), so it "
            "cannot be verified; it gets one at the next save.",
            stacklevel=2,
        )
        return wrapped
    payload = _verified_payload(path, wrapped)
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # the checksum matched, so the writer saved something unreadable
        raise CheckpointError(
            f"The checkpoint {path!r} passed its checksum but its contents cannot be read "
            f"({_reason(err)}). Delete it to start this run from scratch."
        ) from None


def _read(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise CheckpointError(f"There is no checkpoint {path!r}.")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(
            f"The checkpoint {path!r} is damaged: it is empty (0 bytes), so the write that "
            "made it never finished."
        )
    try:
        wrapped = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"The checkpoint {path!r} is damaged: it is truncated or not a checkpoint at all "
            f"({size} bytes; {_reason(err)})."
        ) from None
    if not isinstance(wrapped, dict) or not (
        {"format", "sha256", "payload"} <= wrapped.keys() or {"model", "step"} <= wrapped.keys()
    ):
        raise CheckpointError(
            f"The file {path!r} is not a coursekit training checkpoint (a torch file of "
            f"another kind: {_few(sorted(map(str, wrapped)) if isinstance(wrapped, dict) else [type(wrapped).__name__])})."
        )
    return wrapped


def _verified_payload(path: str, wrapped: dict[str, Any]) -> bytes:
    if wrapped["format"] != FORMAT:
        raise CheckpointError(
            f"The checkpoint {path!r} has the format {wrapped['format']!r}, which this "
            f"coursekit ({FORMAT!r}) cannot read. Update coursekit, or delete the file to "
            "start this run from scratch."
        )
    payload = wrapped["payload"]
    if not isinstance(payload, Tensor) or payload.dtype != torch.uint8 or payload.dim() != 1:
        raise CheckpointError(f"The checkpoint {path!r} is damaged: its payload is not bytes.")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != wrapped["sha256"]:
        raise CheckpointError(
            f"The checkpoint {path!r} is damaged: its checksum (sha256) does not match its "
            "contents, so bytes changed after it was written (a disk, sync or copy error)."
        )
    return data


def _intact(path: str) -> bool:
    """Whether the file at ``path`` is a checkpoint whose checksum matches (no unpickling)."""
    try:
        wrapped = _read(path)
        if "format" in wrapped:
            _verified_payload(path, wrapped)
        return True
    except CheckpointError:
        return False


def _reason(err: BaseException) -> str:
    # the first line of torch's message, unless it is advice we must not pass on
    # (an unpickling error suggests weights_only=False, which would run the file's code)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not first or "weights_only" in str(err):
        return type(err).__name__
    return f"{type(err).__name__}: {first[:160]}"


def find(path: str | os.PathLike) -> tuple[dict[str, Any], str] | None:
    """The state to resume from and the file it came from, or None for a fresh run.

    Removes the temporary files of interrupted writes first. A damaged ``path`` falls back to
    ``<path>.prev`` with a warning; when that is missing or damaged too, raises
    :class:`CheckpointError` saying which files are bad and what to do.
    """
    path = os.fspath(path)
    leftovers = temporary_files(path)
    for leftover in leftovers:
        os.unlink(leftover)
    if leftovers:
        print(
            f"Removed {len(leftovers)} temporary file(s) left by an interrupted checkpoint "
            f"write: {_few([os.path.basename(f) for f in leftovers])}."
        )
    if not os.path.exists(path):
        return None
    try:
        return load_checkpoint(path), path
    except CheckpointError as err:
        problem = str(err)
    prev = path + ".prev"
    if not os.path.exists(prev):
        raise CheckpointError(
            f"{problem} There is no previous checkpoint {prev!r} to fall back to. Delete "
            f"{path!r} to start this run from scratch, or restore it from a backup."
        )
    try:
        state = load_checkpoint(prev)
    except CheckpointError as err:
        raise CheckpointError(
            f"{problem} Its previous copy is damaged too: {err} Delete both {path!r} and "
            f"{prev!r} to start this run from scratch, or restore them from a backup."
        ) from None
    warnings.warn(
        f"{problem} Resuming from the previous good checkpoint {prev!r} (step {state['step']}) "
        f"instead; {path!r} is replaced at the next save.",
        stacklevel=3,
    )
    return state, prev


def restore(state: dict[str, Any], source: str, parts: Parts, history: History) -> int:
    """Load a found ``state`` into the run's parts and history; return its step.

    The optimizer's learning rate and weight decay are those of this call, not the saved
    ones, so a run that diverged can be resumed with a lower ``lr``.
    """
    _check_same_model(source, state, parts.model)
    parts.model.load_state_dict(state["model"])
    if parts.optimizer is not None and state["optimizer"] is not None:
        load_optimizer(parts.optimizer, state["optimizer"])
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


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimizer's current lr and weight decay."""
    current = [{k: g[k] for k in ("lr", "weight_decay") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, settings in zip(optimizer.param_groups, current):
        group.update(settings)


def _check_same_model(path: str | os.PathLike, state: dict[str, Any], model: nn.Module) -> None:
    # tensors only: a module's extra state (e.g. Adversarial's optimizers) has no shape
    saved = {k: tuple(v.shape) for k, v in state["model"].items() if isinstance(v, Tensor)}
    current = {k: tuple(v.shape) for k, v in model.state_dict().items() if isinstance(v, Tensor)}
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
        raise CheckpointError(
            f"The checkpoint {os.fspath(path)!r} was saved from a different model: "
            + "; ".join(problems)
            + ". Delete it (and its .prev) or pass another checkpoint path to start this "
            "model from scratch."
        )


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")
