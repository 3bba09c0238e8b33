"""Student feedback: every check prints one ``✓ name`` or ``✗ name: what is wrong`` line.

A lecture's checks (in ``coursekit/exercises/``) are written with these primitives::

    def check_kl(kl_fn) -> check.Result:
        with check.exercise("KL(q || N(0, I))") as ex:
            out = ex.call(kl_fn, mu, logvar)          # the student's code runs here
            ex.tensor(out, shape=(4,))                # None, type, shape, dtype, NaN
            ex.close(out, reference, hints={          # plausible mistakes, named
                "forgot the factor 1/2": 2 * reference,
            })
        return ex.result

The first failed requirement ends the check with its message. Whatever the student's
code does (returns ``None``, a wrong shape, NaNs, raises), the student sees a message,
never a traceback from inside ``coursekit``. A stub's ``NotImplementedError`` reads as
"not implemented yet".

With ``COURSEKIT_STRICT=1`` (set by the tests that run the solution notebooks) a failed
check raises :class:`CheckError`, so a broken reference solution cannot go unnoticed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


@dataclass
class Result:
    """The outcome of one check; truthy when it passed."""

    name: str
    passed: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's last value: the check already printed its line."""

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.name}" + (f": {self.message}" if self.message else "")
        return f"✗ {self.name}: {self.message}"


class CheckFailed(Exception):
    """Raised inside a check with the student-facing reason it failed."""


class CheckError(AssertionError):
    """A failed check in strict mode (``COURSEKIT_STRICT=1``)."""


def strict() -> bool:
    return os.environ.get("COURSEKIT_STRICT", "") not in ("", "0")


def _student_frame(exc: BaseException) -> str:
    """'line N: `code`' of the innermost frame outside coursekit, if any."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_PACKAGE_DIR)
    ]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f" (line {frame.lineno}{code})"


class Exercise:
    """Context manager for one check; see the module docstring."""

    def __init__(self, name: str, *, success: str = ""):
        self.name = name
        self.success = success
        self.result: Result | None = None

    def __enter__(self) -> Exercise:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.result = Result(self.name, True, self.success)
        elif issubclass(exc_type, CheckFailed):
            self.result = Result(self.name, False, str(exc))
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit, CheckError)):
            return False
        else:
            # The student's output broke the checking code itself (an odd type, say):
            # still a message, not a traceback from inside coursekit.
            self.result = Result(
                self.name,
                False,
                f"the check could not use your output ({exc_type.__name__}: {exc})",
            )
        print(self.result)
        if strict() and not self.result.passed:
            raise CheckError(str(self.result))
        return True

    # --- requirements; each raises CheckFailed with a specific message -------------

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the student's ``fn``; an exception it raises becomes the check's message."""
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            raise CheckFailed(
                "not implemented yet: replace the `raise NotImplementedError` in the exercise cell "
                "with your code, run that cell, then this one"
            ) from None
        except Exception as e:  # noqa: BLE001 - any student error becomes a message
            raise CheckFailed(
                f"your code raised {type(e).__name__}: {e}{_student_frame(e)}"
            ) from None

    def tensor(
        self,
        out: Any,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = None,
        finite: bool = True,
        what: str = "your function's output",
    ) -> torch.Tensor:
        """Require a tensor of the given shape and dtype, with no NaN or inf."""
        if out is None:
            raise CheckFailed(f"{what} is None: did you forget the `return` statement?")
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(f"{what} is a {type(out).__name__}, expected a torch.Tensor")
        if shape is not None and tuple(out.shape) != tuple(shape):
            raise CheckFailed(
                f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}{_shape_hint(tuple(out.shape), tuple(shape))}"
            )
        if dtype is not None and out.dtype != dtype:
            raise CheckFailed(f"{what} has dtype {out.dtype}, expected {dtype}")
        if finite and out.is_floating_point() and not torch.isfinite(out).all():
            bad = "NaN" if torch.isnan(out).any() else "inf"
            raise CheckFailed(
                f"{what} contains {bad} values: look for log(0), a division by zero or exp overflow"
            )
        return out

    def close(
        self,
        actual: torch.Tensor | float,
        expected: torch.Tensor | float,
        *,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        hints: Mapping[str, torch.Tensor | float] | None = None,
        what: str = "your result",
    ) -> None:
        """Require ``actual ≈ expected``; if it instead matches a hint's value, say which mistake."""
        actual_t = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
        expected_t = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
        if actual_t.shape != expected_t.shape:
            raise CheckFailed(
                f"{what} has shape {tuple(actual_t.shape)}, expected {tuple(expected_t.shape)}"
                f"{_shape_hint(tuple(actual_t.shape), tuple(expected_t.shape))}"
            )
        if torch.allclose(actual_t, expected_t, rtol=rtol, atol=atol):
            return
        for mistake, value in (hints or {}).items():
            value_t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
            if value_t.shape == actual_t.shape and torch.allclose(
                actual_t, value_t, rtol=rtol, atol=atol
            ):
                raise CheckFailed(f"{what} is wrong: it looks like you {mistake}")
        err = (actual_t - expected_t).abs()
        i = int(err.argmax())
        raise CheckFailed(
            f"{what} does not match the reference: max |error| = {err.max().item():.3g} "
            f"(got {actual_t.flatten()[i].item():.5g} where {expected_t.flatten()[i].item():.5g} was expected)"
        )

    def require(self, condition: bool, message: str) -> None:
        """Fail with ``message`` unless ``condition``."""
        if not condition:
            raise CheckFailed(message)


def exercise(name: str, *, success: str = "") -> Exercise:
    """Start a check called ``name``; ``success`` is shown after the ✓ when it passes."""
    return Exercise(name, success=success)


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """A guess at the mistake behind a shape mismatch."""
    if got == () and len(expected) == 1:
        return ": it should hold one value per example; did you sum or average over the batch?"
    if len(got) == len(expected) + 1 and got[: len(expected)] == expected:
        return ": did you forget to sum over the last dimension?"
    if len(got) == len(expected) and sorted(got) == sorted(expected):
        return ": are two dimensions swapped?"
    return ""
