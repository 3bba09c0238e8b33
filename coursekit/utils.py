"""Devices, seeds, precision and run profiles.

Profiles let one notebook run at three sizes without edits:

- ``smoke``: continuous integration, a whole notebook in seconds;
- ``cpu``: a 2-core laptop, at most ~5 minutes a notebook, results already meaningful;
- ``gpu``: Colab T4 or better, full quality.

The profile is ``COURSEKIT_PROFILE`` when set, else ``gpu`` when CUDA is available,
else ``cpu``. Notebooks take every size from it::

    STEPS = utils.pick(smoke=30, cpu=3000, gpu=20000)

Two more settings are read once, when a notebook first asks for the profile or the device:
``COURSEKIT_DEVICE`` (``cpu``, ``cuda``, ``cuda:N`` or ``mps``; checked against this
machine) and ``COURSEKIT_THREADS`` (the CPU threads torch uses; default half the cores).
A bad value of any of them raises ``errors.SettingError`` naming the variable.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from typing import TypeVar

import numpy as np
import torch

from coursekit import errors

PROFILES = ("smoke", "cpu", "gpu")

T = TypeVar("T")


def _available_devices() -> list[str]:
    """The devices usable here, in the order ``device()`` prefers them."""
    found = (
        [f"cuda:{k}" for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def _requested_device(requested: str) -> torch.device:
    """``COURSEKIT_DEVICE`` checked against what this machine has (a ``SettingError`` if not)."""
    name = requested.strip().lower()
    available = _available_devices()
    usable = {*available, *(["cuda"] if available[0].startswith("cuda") else [])}
    if name in usable:
        return torch.device(name)
    if re.fullmatch(r"cuda(:\d+)?|mps", name):
        why = f"there is no {name} on this machine"
    else:
        why = "it is not a device name coursekit knows (cpu, cuda, cuda:N, mps)"
    raise errors.SettingError(
        f"COURSEKIT_DEVICE={requested!r} cannot be used: {why}. Available here: "
        f"{', '.join(available)}. Set COURSEKIT_DEVICE to one of these, or unset it to use "
        f"the best one ({available[0]})."
    )


def device() -> torch.device:
    """The best available device: cuda, then mps, then cpu; ``COURSEKIT_DEVICE`` overrides.

    ``COURSEKIT_DEVICE`` is ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (any case); a device this
    machine lacks, or another name, raises a ``SettingError`` that lists what is available.
    Also applies the CPU thread count (``threads()``) the first time.
    """
    _apply_threads()
    requested = os.environ.get("COURSEKIT_DEVICE", "")
    if requested.strip():
        return _requested_device(requested)
    return torch.device(_available_devices()[0].split(":")[0])


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads() -> int:
    """The CPU threads torch should use: ``COURSEKIT_THREADS`` if set, else torch's own count
    if ``OMP_NUM_THREADS`` is set, else half the cores (at least 1).

    Half, because on a 2-core machine two threads made training about 4 times slower as soon
    as one other process ran (a browser, a second notebook), while one thread cost nothing
    when the machine was idle; the README has the numbers (benchmarks/bench_threads.py).
    """
    requested = os.environ.get("COURSEKIT_THREADS", "").strip()
    if requested:
        if not requested.isdigit() or int(requested) < 1:
            raise errors.SettingError(
                f"COURSEKIT_THREADS={requested!r} is not a number of threads: use a whole "
                f"number from 1 up (this machine has {cores()} cores), or unset it to use "
                f"half the cores ({max(1, cores() // 2)})."
            )
        return int(requested)
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    return max(1, cores() // 2)


_threads_applied: int | None = None


def _apply_threads() -> None:
    """``torch.set_num_threads(threads())``, once per value (a later change by hand stays)."""
    global _threads_applied
    n = threads()
    if n != _threads_applied:
        torch.set_num_threads(n)
        _threads_applied = n


def profile() -> str:
    """The run profile: ``COURSEKIT_PROFILE``, else ``gpu`` with CUDA, else ``cpu``.

    Also applies the CPU thread count (``threads()``) the first time.
    """
    _apply_threads()
    requested = os.environ.get("COURSEKIT_PROFILE")
    if requested:
        if requested not in PROFILES:
            raise errors.SettingError(
                f"COURSEKIT_PROFILE={requested!r} is not a profile; use one of {', '.join(PROFILES)}."
            )
        return requested
    return "gpu" if torch.cuda.is_available() else "cpu"


def pick(*, smoke: T, cpu: T, gpu: T) -> T:
    """The value for the current profile, e.g. ``pick(smoke=30, cpu=3000, gpu=20000)``."""
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[profile()]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a fresh CPU ``torch.Generator`` with that seed.

    Library code never draws from the global RNGs; pass the returned generator on.
    Seeding them anyway makes notebook cells that do (``torch.randn`` in a demo) repeatable.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(dev: torch.device | str, enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled`` (nanoGPT's idiom); a no-op context elsewhere.

    Log-densities, KLs and schedule maths should run outside it, in float32.
    """
    dev = torch.device(dev)
    if enabled and dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(dev: torch.device | str | None = None) -> str:
    """A human-readable name of the device, e.g. ``'cuda (NVIDIA H100 80GB HBM3)'`` or ``'cpu (2 threads)'``."""
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    if dev.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return dev.type


# ----------------------------------------------------------------------------- random draws
#
# One family of generator-aware helpers. Each draws where the generator lives (a CPU
# generator also serves CUDA tensors) and then moves the result to ``like``'s device, so a
# seed gives the same numbers on every device; without a generator, the draw uses torch's
# global RNG on ``like``'s device. ``like`` is a tensor (its device, and its dtype for the
# float draws) or a device.


def _where(like: torch.Tensor | torch.device | str) -> tuple[torch.device, torch.dtype]:
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if like.dtype.is_floating_point else torch.get_default_dtype()
        return like.device, dtype
    return torch.device(like), torch.get_default_dtype()


def randn(
    shape: tuple[int, ...],
    like: torch.Tensor | torch.device | str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``like``'s device (and float dtype)."""
    dev, dtype = _where(like)
    if generator is None:
        return torch.randn(shape, device=dev, dtype=dtype)
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return eps.to(dev)


def rand(
    shape: tuple[int, ...],
    like: torch.Tensor | torch.device | str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform noise in [0, 1) of ``shape`` on ``like``'s device (and float dtype)."""
    dev, dtype = _where(like)
    if generator is None:
        return torch.rand(shape, device=dev, dtype=dtype)
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)
    return u.to(dev)


def randint(
    low: int,
    high: int,
    shape: tuple[int, ...],
    like: torch.Tensor | torch.device | str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integers uniform in ``low .. high - 1``, int64 of ``shape`` on ``like``'s device."""
    dev, _ = _where(like)
    if generator is None:
        return torch.randint(low, high, shape, device=dev)
    k = torch.randint(low, high, shape, generator=generator, device=generator.device)
    return k.to(dev)


def multinomial(
    probs: torch.Tensor,
    num_samples: int = 1,
    *,
    replacement: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``torch.multinomial`` on ``probs`` (K,) or (B, K) (non-negative, any positive sum),
    drawn where ``generator`` lives and returned on ``probs``'s device: int64, (num_samples,)
    or (B, num_samples)."""
    if generator is None or generator.device == probs.device:
        return torch.multinomial(probs, num_samples, replacement, generator=generator)
    k = torch.multinomial(probs.to(generator.device), num_samples, replacement, generator=generator)
    return k.to(probs.device)
