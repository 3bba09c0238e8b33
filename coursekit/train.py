"""One training loop for every model in the course (after minGPT's ``trainer.py``).

The trainer knows nothing about the model: each step it calls ``model.loss(x, y)``,
minimizes the ``"loss"`` entry and logs every other entry. Algorithms that need their
own step (a GAN's two optimizers) pass ``step_fn``; ``fit`` then only loops, logs,
guards against NaNs and checkpoints::

    history = train.fit(model, data.toy_2d("moons", 4096), steps=utils.pick(smoke=30, cpu=3000, gpu=20000))
    history.plot()
    print(history.final("loss"))

What ``fit`` does each step (default path):

1. draws a batch ``(x, y)`` (``y`` is ``None`` for unlabelled data) on the device;
2. computes ``model.loss(x, y)`` (under a bf16 autocast on CUDA when ``amp=True``);
3. back-propagates ``"loss"``, clips the gradient norm to ``clip_grad`` (then also logs the
   pre-clipping norm as ``"grad_norm"``) and takes an optimizer step (AdamW by default);
4. updates the exponential moving average of the parameters (``ema=0.999``);
5. every ``log_every`` steps copies the logged terms to the host (the only GPU sync),
   stops with a :class:`FloatingPointError` if any was NaN or infinite, and shows the
   latest values in the progress bar;
6. every ``checkpoint_every`` steps and at the end, writes a checkpoint atomically.

Checkpoints hold the model, optimizer, EMA, step, history and the random state (the data
order and torch's global RNG), so resuming an interrupted run gives the same parameters
as an uninterrupted one, bit for bit on the same machine. ``fit`` resumes by itself when
the checkpoint file exists. Exact resumption needs data given as a tensor, a tuple or an
``ImageSet``; an iterator of batches restarts from wherever it is.

EMA: ``History.ema`` is an :class:`EMA` (``None`` without ``ema=``); ``history.ema.module``
is the averaged copy of the model (sample from it), ``history.ema.copy_to(model)`` loads
the averaged weights into the model.
"""

from __future__ import annotations

import copy
import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from coursekit import utils
from coursekit.data import Batches, ImageSet

Batch = tuple[Tensor, Tensor | None]
StepFn = Callable[[nn.Module, Batch, int], dict[str, Any]]


class EMA:
    """An exponential moving average of a model's parameters (Polyak averaging).

    After each optimizer step, ``ema <- decay * ema + (1 - decay) * param`` for every
    parameter; buffers (BatchNorm statistics, noise schedules) are copied, not averaged.
    The average starts at the model's initial parameters, so it needs about
    ``1 / (1 - decay)`` steps (1000 for 0.999) to forget them: use a smaller decay for
    short runs.

    ``module`` is the averaged copy of the model (in eval mode, without gradients).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), e.g. 0.999; got {decay}.")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for avg, p in zip(self.module.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1.0 - self.decay)  # avg + (1 - decay) (p - avg)
        for avg, b in zip(self.module.buffers(), model.buffers()):
            avg.copy_(b)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(self.module.state_dict())

    def state_dict(self) -> dict[str, Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.module.load_state_dict(state)


@dataclass
class History:
    """What ``fit`` returns: the logged terms at every step, and the EMA model if any.

    ``steps``: the step numbers (1-based: step k is the k-th update).
    ``logs``: term name -> one float per entry of ``steps`` (``"loss"``, ``"kl"``, ...).
    ``seconds``: wall-clock training time, summed over resumed sessions.
    ``ema``: the :class:`EMA` of the parameters when ``fit(..., ema=decay)``, else ``None``.
    """

    steps: list[int] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    ema: EMA | None = field(default=None, repr=False)

    def final(self, name: str = "loss", last: int = 50) -> float:
        """The mean of the last ``last`` logged values of ``name`` (less noisy than the last one)."""
        if name not in self.logs:
            raise KeyError(f"No term {name!r} was logged; the terms are {sorted(self.logs)}.")
        values = self.logs[name][-last:]
        if not values:
            raise ValueError("The history is empty: fit() has not completed any step.")
        return sum(values) / len(values)

    def plot(self, ax=None, smooth: int | None = None):
        """Plot every logged term against the step; log-scale y when all values are positive.

        Each term is drawn faintly as logged and solidly as a moving average over
        ``smooth`` steps (default: 1/50 of the run). Returns the matplotlib axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        window = smooth or max(1, len(self.steps) // 50)
        for name, values in self.logs.items():
            (line,) = ax.plot(self.steps, values, alpha=0.3 if window > 1 else 1.0, lw=0.8)
            if window > 1:
                ax.plot(
                    self.steps, _moving_average(values, window), color=line.get_color(), label=name
                )
            else:
                line.set_label(name)
        finite = [v for values in self.logs.values() for v in values if math.isfinite(v)]
        if finite and min(finite) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend(loc="upper right")
        return ax


def _moving_average(values: list[float], window: int) -> list[float]:
    # trailing mean over the last `window` values (fewer at the start)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def fit(
    model: nn.Module,
    data: Tensor | tuple[Tensor, Tensor | None] | ImageSet | Iterable[Batch],
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    clip_grad: float | None = None,
    ema: float | None = None,
    amp: bool = False,
    step_fn: StepFn | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    live_plot: bool = False,
    log_every: int | None = None,
    progress: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> History:
    """Train ``model`` for ``steps`` steps and return its :class:`History`.

    Args:
        model: has ``loss(x, y) -> dict[str, Tensor]``; ``"loss"`` (a scalar) is minimized,
            every other scalar entry is logged. Moved to ``device``.
        data: a Tensor ``(N, ...)`` (``y`` is then ``None``), a tuple ``(x, y)``, an
            ``ImageSet`` (float images in [0, 1] with their labels), or any iterable of
            ``(x, y)`` batches (used as given: ``batch_size`` and ``generator`` are ignored).
        steps: total number of optimizer steps (including those of a resumed checkpoint).
        lr, weight_decay: of the default AdamW optimizer.
        optimizer: your own optimizer over ``model.parameters()`` instead of AdamW.
        clip_grad: clip the global gradient norm to this value; logs ``"grad_norm"``.
        ema: decay of an exponential moving average of the parameters (``History.ema``).
        amp: bf16 autocast on CUDA (no effect on CPU).
        step_fn: ``step_fn(model, (x, y), step) -> dict`` doing a whole training step
            itself (its own optimizers); ``optimizer``, ``lr``, ``clip_grad``, ``amp`` are then
            unused. If it has ``state_dict``/``load_state_dict`` (e.g. a class holding its
            optimizers), they are checkpointed too.
        checkpoint: a ``.pt`` path: resume from it if it exists, save to it every
            ``checkpoint_every`` steps and at the end.
        live_plot: in Jupyter, redraw the loss curves while training (at most once a second).
        log_every: steps between copies of the logged values to the host, NaN checks and
            progress-bar updates. Default: 1 on CPU, 10 on GPU (each copy is a GPU sync).
        progress: show a tqdm progress bar.
        generator: a CPU ``torch.Generator`` for the data order (default: seeded with 0).
        device: default ``utils.device()``.

    Raises:
        FloatingPointError: a logged term became NaN or infinite (names the step and values).
        ValueError: the checkpoint was saved from a different model.
    """
    if steps < 0 or checkpoint_every < 1 or (log_every is not None and log_every < 1):
        raise ValueError(
            f"Need steps >= 0, checkpoint_every >= 1 and log_every >= 1 (or None); "
            f"got {steps=}, {checkpoint_every=}, {log_every=}."
        )
    dev = torch.device(device) if device is not None else utils.device()
    model.to(dev)
    batches = _batches(data, batch_size, dev, generator)
    if step_fn is None and optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    averaged = EMA(model, ema) if ema is not None else None
    history = History(ema=averaged)
    log_every = log_every or (10 if dev.type == "cuda" else 1)
    parts = _Parts(model, optimizer, averaged, step_fn, batches)

    start = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        start = _load_checkpoint(checkpoint, parts, history)
        print(f"Resumed from {checkpoint} at step {start}/{steps}.")
        if start >= steps:
            return history

    was_training = model.training
    model.train()
    pending: list[tuple[int, dict[str, Tensor]]] = []  # logged terms not yet copied to the host
    bar = tqdm(total=steps, initial=start, disable=not progress, dynamic_ncols=True)
    plotter = _LivePlot() if live_plot else None
    session_start, seconds_before = time.perf_counter(), history.seconds
    try:
        for step in range(start + 1, steps + 1):
            x, y = next(batches)
            if step_fn is None:
                terms = _default_step(model, x, y, optimizer, clip_grad, amp, dev)
            else:
                terms = step_fn(model, (x, y), step)
            if averaged is not None:
                averaged.update(model)
            pending.append((step, _detach_terms(terms, step, dev)))

            save_now = checkpoint is not None and (step % checkpoint_every == 0 or step == steps)
            if step % log_every == 0 or step == steps or save_now:
                _flush(pending, history)  # raises FloatingPointError before a bad checkpoint
                pending.clear()
                bar.update(step - bar.n)
                bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.logs.items()}, refresh=False)
                if plotter is not None:
                    plotter.update(history, final=step == steps)
            history.seconds = seconds_before + time.perf_counter() - session_start
            if save_now:
                _save_checkpoint(checkpoint, parts, step, history)
    finally:
        bar.close()
        model.train(was_training)
    return history


def _default_step(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    optimizer: torch.optim.Optimizer,
    clip_grad: float | None,
    amp: bool,
    dev: torch.device,
) -> dict[str, Tensor]:
    optimizer.zero_grad(set_to_none=True)
    with utils.autocast(dev, amp):
        terms = model.loss(x, y)
    if "loss" not in terms:
        raise KeyError(
            f"{type(model).__name__}.loss(x, y) returned keys {sorted(terms)}; "
            'it must return a dict with a "loss" entry to minimize.'
        )
    terms["loss"].backward()
    if clip_grad is not None:
        # the norm before clipping: how often clipping bites is worth watching
        terms = {**terms, "grad_norm": nn.utils.clip_grad_norm_(model.parameters(), clip_grad)}
    optimizer.step()
    return terms


def _detach_terms(terms: dict[str, Any], step: int, dev: torch.device) -> dict[str, Tensor]:
    out = {}
    for name, value in terms.items():
        value = torch.as_tensor(value).detach()
        if value.numel() != 1:
            raise ValueError(
                f"Step {step}: the logged term {name!r} has shape {tuple(value.shape)}; "
                "every entry of the loss dict must be a scalar (reduce it with .mean())."
            )
        out[name] = value.reshape(()).float().to(dev, non_blocking=True)
    return out


def _flush(pending: list[tuple[int, dict[str, Tensor]]], history: History) -> None:
    """Copy the pending terms to the host (one sync), check them, append them to the history."""
    if not pending:
        return
    names = list(pending[0][1])
    for step, terms in pending:
        if list(terms) != names:
            raise ValueError(
                f"Step {step} logged the terms {list(terms)} but earlier steps logged {names}; "
                "return the same keys at every step."
            )
    values = torch.stack([torch.stack(list(t.values())) for _, t in pending]).tolist()  # (S, K)
    for (step, _), row in zip(pending, values):
        if not all(math.isfinite(v) for v in row):
            described = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, row))
            raise FloatingPointError(
                f"Training diverged at step {step}: {described}. "
                "Try a lower learning rate (lr), gradient clipping (clip_grad=1.0), "
                "or check the loss for log(0), division by zero or exp overflow."
            )
        history.steps.append(step)
        for name, v in zip(names, row):
            history.logs.setdefault(name, []).append(v)


# ----------------------------------------------------------------------------- data


def _batches(
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


def _batches_state(batches: Iterator[Batch]) -> dict[str, Any] | None:
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


def _load_batches_state(batches: Iterator[Batch], state: dict[str, Any] | None) -> None:
    if state is None:
        return
    if hasattr(batches, "load_state_dict"):
        batches.load_state_dict(state)
    elif isinstance(batches, Batches):
        batches.generator.set_state(state["generator"])
        batches._order = state["order"].to(batches.device)
        batches._pos, batches.epoch = state["pos"], state["epoch"]


# ----------------------------------------------------------------------------- checkpoints


@dataclass
class _Parts:
    """Everything a checkpoint saves besides the step and the history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    ema: EMA | None
    step_fn: StepFn | None
    batches: Iterator[Batch]


def _save_checkpoint(path: str | os.PathLike, parts: _Parts, step: int, history: History) -> None:
    state = {
        "model_class": type(parts.model).__qualname__,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict() if parts.optimizer is not None else None,
        "step_fn": parts.step_fn.state_dict() if hasattr(parts.step_fn, "state_dict") else None,
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "step": step,
        "history": {"steps": history.steps, "logs": history.logs, "seconds": history.seconds},
        "batches": _batches_state(parts.batches),
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


def _load_checkpoint(path: str | os.PathLike, parts: _Parts, history: History) -> int:
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
    _load_batches_state(parts.batches, state["batches"])
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


# ----------------------------------------------------------------------------- live plot


class _LivePlot:
    """Redraws the loss curves in a Jupyter output in place; does nothing elsewhere."""

    def __init__(self, min_seconds: float = 1.0):
        self.min_seconds, self.last, self.handle = min_seconds, -math.inf, None
        self.enabled = _in_jupyter()

    def update(self, history: History, final: bool = False) -> None:
        if not self.enabled or (not final and time.perf_counter() - self.last < self.min_seconds):
            return
        from IPython.display import Image, display
        from matplotlib.figure import Figure

        # a Figure outside pyplot renders to PNG bytes on any backend and is never shown twice
        fig = Figure(figsize=(6, 3.5))
        history.plot(ax=fig.add_subplot())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        image = Image(data=buffer.getvalue(), format="png")
        if self.handle is None:  # updating a display handle keeps the progress bar above it
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)
        self.last = time.perf_counter()


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
