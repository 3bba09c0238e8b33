"""Errors a student or instructor can fix themselves.

A ``CourseError`` is an expected problem with the set-up or the input (missing data, a bad
environment variable, a bad checkpoint, an unknown lecture), not a bug in ``coursekit``. Its
message says what was wrong and what to do. Subclasses also derive from the built-in
exception that fits (``FileNotFoundError``, ``ValueError``), so ``except ValueError`` still
catches them.

Such a message should be the first thing a student reads, so it is shown without the
traceback through ``coursekit`` above it:

- in a notebook (IPython), importing ``coursekit`` installs a handler that prints
  ``ClassName: message`` for a ``CourseError`` (``%tb`` still shows the full traceback);
  every other exception keeps its usual traceback;
- the scripts in ``tools/`` run their ``main`` through ``run_cli``, which prints the
  message and exits with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class CourseError(Exception):
    """An expected, fixable problem; the message says what to do."""


class SettingError(CourseError, ValueError):
    """A bad value of a setting, such as an environment variable (``COURSEKIT_DEVICE``)."""


def short_message(error: BaseException) -> str:
    """``ClassName: message``, the whole report of an expected error."""
    return f"{type(error).__name__}: {error}"


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a tool's ``main(argv)`` and exit with its status; a ``CourseError`` prints
    ``ClassName: message`` on stderr, without a traceback, and exits with status 2."""
    try:
        status = main(argv)
    except CourseError as e:
        print(short_message(e), file=sys.stderr)
        status = 2
    sys.exit(status)


def _ipython_handler(shell, etype, value, tb, tb_offset=None) -> list[str]:
    # IPython calls this instead of showing the traceback, and shows nothing itself
    stb = [
        short_message(value),
        "(an expected problem, not a bug: the line above says what to do; "
        "`%tb` shows the full traceback)",
    ]
    shell._showtraceback(etype, value, stb)  # the notebook's error output, with ename/evalue
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb
    if sys.version_info >= (3, 12):
        sys.last_exc = value
    return stb


def install_notebook_handler() -> bool:
    """Show ``CourseError`` as its message alone in the running IPython, if there is one.

    Returns whether a handler was installed. Called when ``coursekit`` is imported.
    """
    if "IPython" not in sys.modules:  # never import IPython into a plain script
        return False
    shell = sys.modules["IPython"].get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((CourseError,), _ipython_handler)
    return True


install_notebook_handler()
