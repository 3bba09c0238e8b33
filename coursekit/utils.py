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


# ----------------------------------------------------------------------------- compilation


def maybe_compile(module: torch.nn.Module, *example_args, **compile_kwargs) -> torch.nn.Module:
    """``torch.compile(module)``, or ``module`` itself when compiling is unavailable or fails.

    With ``example_args`` the compiled module is called once on them now, so that a failure
    (no compiler, an unsupported operation) falls back here, printing one line, and not in the
    middle of training. Compiling is an optimization, never required: the result computes the
    same function either way. ``compile_kwargs`` go to ``torch.compile`` (e.g. ``mode=``).
    """
    if not hasattr(torch, "compile"):
        print(f"torch.compile is not available in torch {torch.__version__}; running eagerly.")
        return module
    try:
        compiled = torch.compile(module, **compile_kwargs)
        if example_args:
            compiled(*example_args)
    except Exception as e:  # noqa: BLE001 - any failure means: run the eager module
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"torch.compile failed, running eagerly: {type(e).__name__}: {message}")
        return module
    return compiled
