"""Student feedback: every check prints one ``✓ name`` or ``✗ name: what is wrong`` line.

A lecture's checks (in ``coursekit/exercises/``) are written with these primitives::

    def check_kl(kl_fn, *, seed: int = 0) -> check.Result:
        with check.exercise("KL(q || N(0, I))") as ex:
            for case in ex.cases(check.sizes(seed, B=(5, 2, range(1, 13)), D=(3, 7, range(1, 9)))):
                g = case.generator(0)                     # the notebook's values at seed 0
                mu, logvar = torch.randn(case.B, case.D, generator=g), ...
                out = ex.call(kl_fn, mu, logvar, grad=True)   # copies in, in-place edits caught
                ex.tensor(out, shape=(case.B,))           # None, type, shape, dtype, NaN
                ex.close(out, reference, hints={          # plausible mistakes, named
                    "forgot the factor 1/2": 2 * reference,
                })
                ex.grad(out, ref.kl_std_normal)           # differentiable, same gradient
        return ex.result

What each primitive guards against:

- ``sizes(seed, **dims)`` and ``ex.cases(...)``: every check runs on at least two sets of
  sizes that differ in every dimension (batch, width, length, layers, steps), so an answer that
  writes a size as a number fails. ``seed=0`` gives the sizes the notebook shows first; any other
  seed draws other sizes (and, through ``case.generator``, other values) deterministically, so a
  grader can run a check on inputs the notebook never showed. A failure inside a case names the
  case ("with B=2, D=7: ..."); a failure that is not a named mistake, after an earlier case
  passed, adds that a size may be hard-coded.
- ``ex.call(fn, *args, grad=...)``: the student's function gets copies of its inputs (tensors
  cloned, modules and schedules deep-copied), so nothing it does can corrupt the next case or
  check; if it changed an input anyway, the check fails with "modified its input `x` in place".
  ``grad=True`` (or a tuple of argument positions) makes those tensors, and the parameters of
  module arguments, require gradients. ``ex.inputs()`` returns the copies the last ``call``
  handed to ``fn`` (positional, then keyword), for a check that needs the student's own inputs
  (say, to ask whether the output's graph reaches one of them).
- ``ex.grad(out, reference_fn)``: the output of the last ``call`` must carry a gradient that
  reaches its inputs and equals the gradient of ``reference_fn`` at the same inputs ("carries no
  gradient" for a detached loss, ``.item()``, NumPy or ``torch.no_grad()``).
- ``ex.close(actual, expected, hints={mistake: value})``: a hint whose value matches (at its
  own shape, so a wrong reduction or a transposed result is named too) turns the mismatch into
  "it looks like you <mistake>". Hints whose value is ``None`` do not apply in this case.

The first failed requirement ends the check with its message. Whatever the student's
code does (returns ``None``, a wrong shape, NaNs, raises), the student sees a message,
never a traceback from inside ``coursekit``. A stub's ``NotImplementedError`` reads as
"not implemented yet".

With ``COURSEKIT_STRICT=1`` (set by the tests that run the solution notebooks) a failed
check raises :class:`CheckError`, so a broken reference solution cannot go unnoticed.
"""

from __future__ import annotations

import copy
import inspect
import os
import random
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
    """Raised inside a check with the student-facing reason it failed.

    ``generic`` marks a failure that names no mistake (a mismatch, an error, a wrong shape):
    after an earlier case passed, such a failure hints at a hard-coded size.
    """

    def __init__(self, message: str, *, generic: bool = False):
        super().__init__(message)
        self.generic = generic


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


# --- sizes and cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One set of sizes (and options) a check runs on; ``case.B`` reads the size called B."""

    index: int
    seed: int
    dims: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        dims = self.__dict__.get("dims", {})
        if name in dims:
            return dims[name]
        raise AttributeError(name)

    @property
    def shown(self) -> bool:
        """True for the case the notebook shows: the first case at seed 0."""
        return self.seed == 0 and self.index == 0

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.dims.items())

    def generator(self, notebook_seed: int = 0) -> torch.Generator:
        """A generator for this case's values: seeded ``notebook_seed`` in the notebook's case
        (so its inputs are the ones shown), and a seed derived from (seed, case) otherwise."""
        if self.shown:
            return torch.Generator().manual_seed(notebook_seed)
        return torch.Generator().manual_seed(
            1_000_003 * (self.seed + 1) + 10_007 * self.index + notebook_seed
        )

    def rng(self, notebook_seed: int = 0) -> np.random.Generator:
        """The NumPy counterpart of :meth:`generator`."""
        if self.shown:
            return np.random.default_rng(notebook_seed)
        return np.random.default_rng(
            1_000_003 * (self.seed + 1) + 10_007 * self.index + notebook_seed
        )


def sizes(seed: int, **dims: Sequence[Any]) -> list[Case]:
    """The cases of a check: ``B=(5, 2, range(1, 13))`` means B = 5 in the first case and 2 in
    the second at ``seed=0``; any other seed draws distinct values of B from ``range(1, 13)``,
    avoiding the seed-0 values when there are enough others, deterministically from the seed.

    Every dimension gives the same number of seed-0 values (the number of cases, at least 2);
    the last entry is always the set of allowed values.
    """
    if not dims:
        raise ValueError("sizes() needs at least one dimension.")
    counts = {len(v) - 1 for v in dims.values()}
    if len(counts) != 1 or min(counts) < 2:
        raise ValueError("every dimension needs the same number (>= 2) of seed-0 values.")
    n = counts.pop()
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    if seed == 0:
        return [Case(i, 0, {k: v[i] for k, v in dims.items()}) for i in range(n)]
    rnd = random.Random(seed)
    drawn: dict[str, list[Any]] = {}
    for name, values in dims.items():
        allowed = list(values[-1])
        fresh = [a for a in allowed if a not in values[:-1]]
        pool = fresh if len(fresh) >= n else allowed
        if len(pool) < n:
            raise ValueError(f"dimension {name} needs at least {n} allowed values.")
        drawn[name] = rnd.sample(pool, n)
    return [Case(i, seed, {k: v[i] for k, v in drawn.items()}) for i in range(n)]


# --- copies and in-place detection ---------------------------------------------------------------


def _copy(obj: Any) -> Any:
    """A copy the student's code may do anything to: tensors cloned, modules deep-copied."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, torch.nn.Module):
        return copy.deepcopy(obj)
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, list):
        return [_copy(o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_copy(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return obj  # numbers, strings, functions: immutable or not ours to copy


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach(), b.detach()
    if a.is_floating_point():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return torch.equal(a, b)


def _changed(original: Any, passed: Any, name: str) -> str | None:
    """The name of the part of ``passed`` that no longer equals ``original``, or None."""
    if isinstance(original, torch.Tensor):
        ok = isinstance(passed, torch.Tensor) and _same_tensor(original, passed)
        return None if ok else name
    if isinstance(original, torch.nn.Module):
        before, after = original.state_dict(), passed.state_dict()
        for key, value in before.items():
            if key not in after or not _same_tensor(value, after[key]):
                return f"{name}.{key}"
        return None
    if isinstance(original, np.ndarray):
        same = (
            isinstance(passed, np.ndarray)
            and original.shape == passed.shape
            and np.array_equal(original, passed)
        )
        return None if same else name
    if isinstance(original, (list, tuple)):
        if len(original) != len(passed):
            return name
        for i, (o, p) in enumerate(zip(original, passed)):
            where = _changed(o, p, f"{name}[{i}]")
            if where:
                return where
        return None
    if isinstance(original, dict):
        for key, value in original.items():
            where = _changed(value, passed.get(key), f"{name}[{key!r}]")
            if where:
                return where
    return None


def _arg_names(fn: Callable, n: int, kwargs: Mapping[str, Any]) -> list[str]:
    """The student's own names for the first ``n`` positional arguments (for messages)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(n):
        p = params[i] if i < len(params) else None
        ok = p is not None and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        names.append(p.name if ok else f"argument {i + 1}")
    return names


_IN_PLACE_ERRORS = (
    "a leaf Variable that requires grad is being used in an in-place operation",
    "modified by an inplace operation",
)


class Exercise:
    """Context manager for one check; see the module docstring."""

    def __init__(self, name: str, *, success: str = ""):
        self.name = name
        self.success = success
        self.result: Result | None = None
        self.case: Case | None = None
        self._passed_cases: list[Case] = []
        self._last_call: tuple | None = None
        self._last_inputs: tuple[tuple, dict] | None = None

    def __enter__(self) -> Exercise:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.result = Result(self.name, True, self.success)
        elif issubclass(exc_type, CheckFailed):
            self.result = Result(self.name, False, self._in_case(exc))
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit, CheckError)):
            return False
        else:
            # The student's output broke the checking code itself (an odd type, say):
            # still a message, not a traceback from inside coursekit.
            failed = CheckFailed(
                f"the check could not use your output ({exc_type.__name__}: {exc})", generic=True
            )
            self.result = Result(self.name, False, self._in_case(failed))
        print(self.result)
        if strict() and not self.result.passed:
            raise CheckError(str(self.result))
        return True

    def _in_case(self, exc: CheckFailed) -> str:
        """The failure's message, prefixed by its case and, if generic, the hard-coding hint."""
        message = str(exc)
        if self.case is None:
            return message
        message = f"with {self.case.label}: {message}"
        if exc.generic and self._passed_cases:
            good = self._passed_cases[0]
            numbers = sorted(
                {v for v in good.dims.values() if isinstance(v, int) and not isinstance(v, bool)}
            )
            which = "one of these sizes" if len(numbers) > 1 else "that size"
            message += (
                f". It passed with {good.label}: is {which} ({', '.join(map(str, numbers))}) "
                "written into your code instead of read from the inputs' shapes?"
            )
        return message

    def cases(self, cases: Iterable[Case]) -> Iterator[Case]:
        """Iterate over ``cases``, remembering which one is running (for messages)."""
        for case in cases:
            self.case = case
            yield case
            self._passed_cases.append(case)
        self.case = None

    # --- requirements; each raises CheckFailed with a specific message -------------

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        grad: bool | Sequence[int] = False,
        **kwargs: Any,
    ) -> Any:
        """Run the student's ``fn`` on copies of ``args``; see the module docstring.

        An exception it raises becomes the check's message; an input it modified in place fails
        the check. ``grad``: True, or the positions of the arguments whose tensors (or module
        parameters) should require gradients, for a later :meth:`grad`.
        """
        names = _arg_names(fn, len(args), kwargs)
        passed = [_copy(a) for a in args]
        passed_kwargs = {k: _copy(v) for k, v in kwargs.items()}
        positions = range(len(args)) if grad is True else (grad or ())
        wrt: list[tuple[str, torch.Tensor]] = []
        for i in positions:
            a = passed[i]
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                wrt.append((names[i], a.requires_grad_()))
            elif isinstance(a, torch.nn.Module):
                for pname, p in a.named_parameters():
                    wrt.append((f"{names[i]}.{pname}", p.requires_grad_()))
        try:
            out = fn(*passed, **passed_kwargs)
        except NotImplementedError:
            raise CheckFailed(
                "not implemented yet: replace the `raise NotImplementedError` in the exercise cell "
                "with your code, run that cell, then this one"
            ) from None
        except Exception as e:  # noqa: BLE001 - any student error becomes a message
            if any(s in str(e) for s in _IN_PLACE_ERRORS):
                raise CheckFailed(
                    f"your code modified its input in place{_student_frame(e)}: autograd "
                    "forbids it; compute a new tensor (`x = x * 2`, not `x *= 2` or `x[i] = ...`)"
                ) from None
            raise CheckFailed(
                f"your code raised {type(e).__name__}: {e}{_student_frame(e)}", generic=True
            ) from None
        for name, original, copied in zip(names, args, passed):
            where = _changed(original, copied, name)
            if where:
                raise CheckFailed(
                    f"your code modified its input `{where}` in place (an in-place operation such "
                    "as `x *= 2`, `x.add_(...)` or `x[i] = ...`): the caller's tensors must not "
                    "change; compute new tensors instead"
                )
        for key, original in kwargs.items():
            where = _changed(original, passed_kwargs[key], key)
            if where:
                raise CheckFailed(
                    f"your code modified its input `{where}` in place: compute new tensors instead"
                )
        self._last_call = (args, kwargs, tuple(positions), wrt)
        self._last_inputs = (tuple(passed), dict(passed_kwargs))
        return out

    def inputs(self) -> tuple[tuple, dict]:
        """``(args, kwargs)``: the copies the last :meth:`call` handed to the student's function.

        They are the tensors its output's graph was built from (with ``requires_grad`` set where
        ``grad`` asked for it), so a check can take gradients with respect to any of them.
        """
        if self._last_inputs is None:
            raise RuntimeError("ex.inputs() needs an earlier ex.call(...).")
        return self._last_inputs

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
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            raise CheckFailed(
                f"{what} is a Python {type(out).__name__}, expected a torch.Tensor: did you call "
                "`.item()` or `float()`? Return the tensor (a loss must stay a tensor for backward())"
            )
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(f"{what} is a {type(out).__name__}, expected a torch.Tensor")
        if shape is not None and tuple(out.shape) != tuple(shape):
            raise CheckFailed(
                f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)}"
                f"{_shape_hint(tuple(out.shape), tuple(shape))}",
                generic=True,
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
        hints: Mapping[str, torch.Tensor | float | None] | None = None,
        what: str = "your result",
    ) -> None:
        """Require ``actual ≈ expected``; if it instead matches a hint's value, say which mistake.

        A hint is compared at its own shape, so a wrong reduction or axis can be named too;
        hints whose value is None are skipped (the mistake is invisible in this case).
        """
        actual_t = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
        expected_t = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
        if actual_t.shape == expected_t.shape and torch.allclose(
            actual_t, expected_t, rtol=rtol, atol=atol
        ):
            return
        for mistake, value in (hints or {}).items():
            if value is None:
                continue
            value_t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
            if value_t.shape == actual_t.shape and torch.allclose(
                actual_t, value_t, rtol=rtol, atol=atol
            ):
                raise CheckFailed(f"{what} is wrong: it looks like you {mistake}")
        if actual_t.shape != expected_t.shape:
            raise CheckFailed(
                f"{what} has shape {tuple(actual_t.shape)}, expected {tuple(expected_t.shape)}"
                f"{_shape_hint(tuple(actual_t.shape), tuple(expected_t.shape))}",
                generic=True,
            )
        err = (actual_t - expected_t).abs()
        i = int(err.argmax())
        raise CheckFailed(
            f"{what} does not match the reference: max |error| = {err.max().item():.3g} "
            f"(got {actual_t.flatten()[i].item():.5g} where {expected_t.flatten()[i].item():.5g} "
            "was expected)",
            generic=True,
        )

    def grad(
        self,
        out: torch.Tensor,
        reference: Callable[..., torch.Tensor],
        *,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        what: str = "your result",
    ) -> None:
        """Require ``out`` (from the last ``call(..., grad=...)``) to be differentiable in the
        inputs marked ``grad``, with the gradient ``reference`` has at the same inputs.

        Both gradients are taken of ``<w, out>`` for one fixed random ``w`` shaped like ``out``
        (``w = 1`` for a scalar), so a wrong reduction or a partly detached result shows.
        """
        if self._last_call is None or not self._last_call[3]:
            raise RuntimeError("ex.grad needs an earlier ex.call(..., grad=...) with tensors.")
        args, kwargs, positions, wrt = self._last_call
        names = ", ".join(f"`{n}`" for n, _ in wrt)
        if not (isinstance(out, torch.Tensor) and out.requires_grad):
            raise CheckFailed(
                f"{what} has the right value but carries no gradient: it was computed under "
                "`torch.no_grad()`, detached (`.detach()`, `.item()`, `torch.tensor(...)`) or "
                f"through NumPy, so backward() cannot reach {names}; use torch operations only"
            )
        w = torch.ones_like(out)
        if out.ndim > 0:
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out)
        grads = torch.autograd.grad(
            out, [t for _, t in wrt], w, allow_unused=True, retain_graph=True
        )
        # the reference's gradient at the same inputs
        ref_args = [_copy(a) for a in args]
        ref_kwargs = {k: _copy(v) for k, v in kwargs.items()}
        ref_wrt = []
        for i in positions:
            a = ref_args[i]
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                ref_wrt.append(a.requires_grad_())
            elif isinstance(a, torch.nn.Module):
                ref_wrt.extend(p.requires_grad_() for p in a.parameters())
        ref_out = reference(*ref_args, **ref_kwargs)
        ref_grads = torch.autograd.grad(ref_out, ref_wrt, w.to(ref_out), allow_unused=True)
        for (name, _), g, g_ref in zip(wrt, grads, ref_grads):
            if g is None and g_ref is None:  # neither reaches it (a detached input): agreed
                continue
            if g is None and g_ref is not None:
                raise CheckFailed(
                    f"no gradient reaches `{name}` from {what}: it is used through `.detach()`, "
                    "`.item()`, NumPy or a `torch.no_grad()` block; build the result from it with "
                    "torch operations"
                )
            g = torch.zeros_like(g_ref) if g is None else g
            g_ref = torch.zeros_like(g) if g_ref is None else g_ref
            scale = max(1.0, float(g_ref.abs().max()))
            if not torch.allclose(g.double(), g_ref.double(), rtol=rtol, atol=atol * scale):
                err = float((g.double() - g_ref.double()).abs().max())
                raise CheckFailed(
                    f"{what} has the right value but the wrong gradient with respect to `{name}` "
                    f"(max |error| = {err:.3g}): part of it is detached or replaced by a constant",
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
