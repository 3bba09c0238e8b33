"""Devices, seeds, precision and run profiles.

Profiles let one notebook run at three sizes without edits:

- ``smoke``: continuous integration, a whole notebook in seconds;
- ``cpu``: a 2-core laptop, at most ~5 minutes a notebook, results already meaningful;
- ``gpu``: Colab T4 or better, full quality.

The profile is ``COURSEKIT_PROFILE`` when set, else ``gpu`` when CUDA is available,
else ``cpu``. Notebooks take every size from it::

    STEPS = utils.pick(smoke=30, cpu=3000, gpu=20000)
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")

T = TypeVar("T")


def device() -> torch.device:
    """The best available device: cuda, then mps, then cpu; ``COURSEKIT_DEVICE`` overrides."""
    requested = os.environ.get("COURSEKIT_DEVICE")
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"COURSEKIT_DEVICE={requested!r} but CUDA is not available here. "
                "Unset COURSEKIT_DEVICE or set it to 'cpu'."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def profile() -> str:
    """The run profile: ``COURSEKIT_PROFILE``, else ``gpu`` with CUDA, else ``cpu``."""
    requested = os.environ.get("COURSEKIT_PROFILE")
    if requested:
        if requested not in PROFILES:
            raise ValueError(
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


def randn(
    shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``like``'s device and dtype.

    With a ``generator`` the noise is drawn on the generator's device (a CPU generator works
    for CUDA tensors) and then moved, so a seed gives the same noise on every device.
    """
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return eps.to(like.device)
