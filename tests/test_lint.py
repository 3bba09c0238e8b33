"""`make check`'s lint passes: a lint error caught here, not first by `make check` in CI."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORMATTED = ["coursekit", "tools", "tests", "benchmarks", "conftest.py"]  # and solutions/*.py

pytest.importorskip("ruff")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check_passes():
    run = _ruff("check", ".", "--output-format", "concise")
    assert run.returncode == 0, "ruff check found (fix with `ruff check --fix .`):\n" + run.stdout


def test_ruff_format_has_nothing_to_change():
    sources = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "solutions").glob("*.py"))]
    run = _ruff("format", "--check", *FORMATTED, *sources)
    assert run.returncode == 0, "`ruff format` would change:\n" + run.stdout
