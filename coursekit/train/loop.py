"""One training loop for every model in the course (after minGPT's ``trainer.py``).

The trainer knows nothing about the model: each step it calls ``model.loss(x, y)``,
minimizes the ``"loss"`` entry and logs every other entry. Algorithms that need their
own step (a GAN's two optimizers: ``train.Adversarial``) bring it; ``fit`` then only
loops, logs, guards against NaNs and checkpoints::

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
6. every ``checkpoint_every`` steps and at the end, writes a checkpoint atomically, unless
   a parameter or optimizer statistic is NaN or infinite (then it stops, keeping the last
   good checkpoint).

Checkpoints hold the model, optimizer, EMA, step, history and the random state (the data
order and torch's global RNG), so resuming an interrupted run gives the same parameters
as an uninterrupted one, bit for bit on the same machine. ``fit`` resumes by itself when
the checkpoint file exists, from ``<checkpoint>.prev`` if that file is damaged (see
``train/checkpoint.py``). Exact resumption needs data given as a tensor, a tuple or an
``ImageSet``; an iterator of batches restarts from wherever it is. The learning rate of
the resumed call replaces the saved one, so a diverged run can resume with a lower ``lr``.

A model with a ``train_step((x, y), step) -> dict`` method (``train.Adversarial``, a GAN's
two players) trains itself: ``fit`` calls it instead of the default step, and still loops,
logs, guards and checkpoints (its ``state_dict`` holds its optimizers and counters).

EMA: ``History.ema`` is an :class:`EMA` (``None`` without ``ema=``); ``history.ema.module``
is the averaged copy of the model (sample from it), ``history.ema.copy_to(model)`` loads
the averaged weights into the model.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from coursekit import utils
from coursekit.data import ImageSet
from coursekit.train import batching
from coursekit.train import checkpoint as checkpoints
from coursekit.train.batching import Batch
from coursekit.train.checkpoint import StepFn
from coursekit.train.ema import EMA
from coursekit.train.history import History
from coursekit.train.live_plot import LivePlot


def fit(
    model: nn.Module,
    data: Tensor | tuple[Tensor, Tensor | None] | ImageSet | Iterable[Batch],
    *,
    steps: int,
    seconds: float | None = None,
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
            every other scalar entry is logged. Or it has ``train_step((x, y), step) -> dict``
            (``train.Adversarial``) and updates itself. Moved to ``device``.
        data: a Tensor ``(N, ...)`` (``y`` is then ``None``), a tuple ``(x, y)``, an
            ``ImageSet`` (float images in [0, 1] with their labels), or any iterable of
            ``(x, y)`` batches (used as given: ``batch_size`` and ``generator`` are ignored).
        steps: total number of optimizer steps (including those of a resumed checkpoint).
        seconds: a wall-clock training budget: stop after the first step at which this call
            has trained for ``seconds`` (``steps`` is then the most it may take). The steps
            done are ``history.steps[-1]``; a checkpoint, if any, is written at that step.
            Equal budgets are how lecture 10 compares families fairly.
        lr, weight_decay: of the default AdamW optimizer (`default_optimizer`: fused where
            this torch and device support it).
        optimizer: your own optimizer over ``model.parameters()`` instead of AdamW.
        clip_grad: clip the global gradient norm to this value; logs ``"grad_norm"``.
        ema: decay of an exponential moving average of the parameters (``History.ema``).
        amp: bf16 autocast on CUDA (no effect on CPU).
        step_fn: ``step_fn(model, (x, y), step) -> dict`` doing a whole training step
            itself (its own optimizers; for two players use ``train.Adversarial`` instead, it
            has AMP, clipping and a generator-only EMA); ``optimizer``, ``lr``, ``clip_grad``,
            ``amp`` are then unused. If it has ``state_dict``/``load_state_dict`` (e.g. a class holding its
            optimizers), they are checkpointed too.
        checkpoint: a ``.pt`` path: resume from it if it exists, save to it every
            ``checkpoint_every`` steps and at the end (the previous one becomes ``.prev``).
        live_plot: in Jupyter, redraw the loss curves while training (at most once a second).
        log_every: steps between copies of the logged values to the host, NaN checks and
            progress-bar updates. Default: 1 on CPU, 10 on GPU (each copy is a GPU sync).
        progress: show a tqdm progress bar.
        generator: a CPU ``torch.Generator`` for the data order (default: seeded with 0).
        device: default ``utils.device()``.

    Raises:
        FloatingPointError: a logged term, a parameter or an optimizer statistic became NaN or
            infinite (names the step and the term; the last good checkpoint is kept).
        CheckpointError: the checkpoint (and its ``.prev``) is damaged, or was saved from a
            different model (a ``ValueError``); the message says what to do.
    """
    if steps < 0 or checkpoint_every < 1 or (log_every is not None and log_every < 1):
        raise ValueError(
            f"Need steps >= 0, checkpoint_every >= 1 and log_every >= 1 (or None); "
            f"got {steps=}, {checkpoint_every=}, {log_every=}."
        )
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds is a training budget > 0 (or None), got {seconds!r}.")
    trains_itself = hasattr(model, "train_step")
    if trains_itself:
        _check_self_training(model, optimizer, clip_grad, ema, amp, step_fn)
    dev = torch.device(device) if device is not None else utils.device()
    model.to(dev)
    batches = batching.batches_from(data, batch_size, dev, generator)
    if step_fn is None and optimizer is None and not trains_itself:
        optimizer = default_optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    averaged = EMA(model, ema) if ema is not None else None
    history = History(ema=getattr(model, "ema", None) if trains_itself else averaged)
    log_every = log_every or (10 if dev.type == "cuda" else 1)
    parts = checkpoints.Parts(model, optimizer, averaged, step_fn, batches)

    start, good = 0, None  # good: (file, step) of the last good checkpoint on disk
    if checkpoint is not None:
        found = checkpoints.find(checkpoint)  # also removes leftovers of interrupted writes
        if found is not None:
            state, source = found
            start = checkpoints.restore(state, source, parts, history)
            good = (source, start)
            print(f"Resumed from {source} at step {start}/{steps}.")
            if start >= steps:
                return history

    was_training = model.training
    model.train()
    pending: list[tuple[int, dict[str, Tensor]]] = []  # logged terms not yet copied to the host
    bar = tqdm(total=steps, initial=start, disable=not progress, dynamic_ncols=True)
    plotter = LivePlot() if live_plot else None
    session_start, seconds_before = time.perf_counter(), history.seconds
    describe = getattr(model, "describe_term", None)
    try:
        for step in range(start + 1, steps + 1):
            x, y = next(batches)
            if trains_itself:
                terms = model.train_step((x, y), step)
            elif step_fn is None:
                terms = _default_step(model, x, y, optimizer, clip_grad, amp, dev)
            else:
                terms = step_fn(model, (x, y), step)
            if averaged is not None:
                averaged.update(model)
            pending.append((step, _detach_terms(terms, step, dev)))
            # the budget is checked after a whole step (so the run ends on a complete update)
            out_of_time = seconds is not None and time.perf_counter() - session_start >= seconds
            last = step == steps or out_of_time
            save_now = checkpoint is not None and (step % checkpoint_every == 0 or last)
            if step % log_every == 0 or last or save_now:
                # raises FloatingPointError before a bad checkpoint is written
                _flush(pending, history, describe, _kept(checkpoint, good))
                pending.clear()
                bar.update(step - bar.n)
                bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.logs.items()}, refresh=False)
                if plotter is not None:
                    plotter.update(history, final=last)
            history.seconds = seconds_before + time.perf_counter() - session_start
            if save_now:
                try:
                    checkpoints.save(checkpoint, parts, step, history)
                except checkpoints.NonFiniteStateError as err:
                    raise FloatingPointError(
                        f"Training diverged by step {step}: {err.where} is NaN or infinite "
                        "although every logged term was finite (an infinite gradient, e.g. "
                        "from sqrt or log at 0, turns Adam's parameters into NaN). "
                        "Nothing was saved." + _kept(checkpoint, good) + _ADVICE
                    ) from None
                good = (os.fspath(checkpoint), step)
            if out_of_time:
                break
    finally:
        bar.close()
        model.train(was_training)
    return history


_ADVICE = (
    " Try a lower learning rate (lr), gradient clipping (clip_grad=1.0), "
    "or check the loss for log(0), sqrt(0), division by zero or exp overflow."
)


def default_optimizer(params, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW, fused into one kernel where this torch and device support it.

    The fused step updates every parameter in one pass instead of one small operation per
    tensor: on a CPU it cut a training step of lecture 08's digits MLP from 5.8 to 5.0 ms
    (the optimizer's own step from 0.95 to 0.25 ms). torch before 2.4 has no fused CPU AdamW
    (and some devices have none); it then refuses at construction and the plain one is used.
    The two differ only in floating-point rounding.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _kept(checkpoint: str | os.PathLike | None, good: tuple[str, int] | None) -> str:
    """What a diverged run left on disk, and how to resume from it."""
    if checkpoint is None:
        return ""
    if good is None:
        return " No checkpoint was written before this (a rerun starts from scratch)."
    source, step = good
    return (
        f" The last good checkpoint was kept: {source} (step {step}). Rerun fit with "
        f"checkpoint={os.fspath(checkpoint)!r} to resume from it; the lr of the rerun "
        "replaces the saved one."
    )


def _check_self_training(model, optimizer, clip_grad, ema, amp, step_fn) -> None:
    # a model with train_step (train.Adversarial) owns its optimizers, clipping, EMA, AMP
    given = {
        "optimizer": optimizer is not None,
        "clip_grad": clip_grad is not None,
        "ema": ema is not None,
        "amp": amp,
        "step_fn": step_fn is not None,
    }
    if any(given.values()):
        names = ", ".join(k for k, v in given.items() if v)
        raise ValueError(
            f"{type(model).__name__} does its own training step, so fit() does not take "
            f"{names}; give them to {type(model).__name__} itself (e.g. its g_opt/d_opt, "
            "clip_grad, ema_decay and amp arguments)."
        )


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


def _flush(
    pending: list[tuple[int, dict[str, Tensor]]],
    history: History,
    describe: Callable[[str], str] | None = None,
    kept: str = "",
) -> None:
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
            if describe is not None:  # e.g. "d_gp: the critic's gradient penalty"
                bad = [describe(n) for n, v in zip(names, row) if not math.isfinite(v)]
                described += " (not finite: " + "; ".join(bad) + ")"
            raise FloatingPointError(
                f"Training diverged at step {step}: {described}." + kept + _ADVICE
            )
        history.steps.append(step)
        for name, v in zip(names, row):
            history.logs.setdefault(name, []).append(v)
