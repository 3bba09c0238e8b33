"""Test-wide settings and the per-notebook timing summary.

- Everything runs in the smoke profile on the CPU unless the caller says otherwise.
- The solution notebooks (run by nbval) see ``COURSEKIT_STRICT=1``, so a failed exercise
  check in a reference solution fails the run; Python tests run without it, because they
  call checks on wrong answers on purpose.
"""

import os
from collections import defaultdict
from pathlib import Path

import pytest

os.environ.setdefault("COURSEKIT_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["COURSEKIT_STRICT"] = "1"

_notebook_seconds: dict[str, float] = defaultdict(float)


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


def pytest_runtest_logreport(report):
    """Add up the time of each notebook's cells (nbval) or of each notebook test."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb") or "test_student_notebook" in report.nodeid:
        key = path if path.endswith(".ipynb") else report.nodeid.split("[")[-1].rstrip("]")
        _notebook_seconds[key] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("time per notebook (smoke profile)")
    for name, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:7.1f}s  {Path(name).as_posix()}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f}s  in all")
