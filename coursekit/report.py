"""Recording a lecture's key numbers with their targets.

The last cells of every lecture call::

    report.record("test_bpd", bpd, target="<= 2.10")

which prints the number, its target and whether it was met. When the notebook runs
under ``make course`` (``tools/run_course.py``), the record is also appended as one
JSON line to the file named by ``COURSEKIT_RESULTS``; the runner adds the lecture's
wall time and the commit and collects everything into ``build/results.json``.

A target is a comparison and a number: ``"<= 2.10"``, ``">= 0.95"``, ``"< 3"``,
``"> 0"``. ``target=None`` records a number that has no target (``met`` is then null).
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
from dataclasses import asdict, dataclass

from coursekit import utils

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass
class Record:
    lecture: str
    name: str
    value: float
    target: str | None
    met: bool | None
    profile: str
    device: str


def parse_target(target: str) -> tuple[str, float]:
    """``"<= 2.10"`` -> ``("<=", 2.1)``; a clear ``ValueError`` for anything else."""
    match = _TARGET.match(target)
    if match is None:
        raise ValueError(
            f"target {target!r} is not a comparison and a number; write it like '<= 2.10' or '>= 0.95'"
        )
    return match.group(1), float(match.group(2))


def met(value: float, target: str | None) -> bool | None:
    """Whether ``value`` meets ``target`` (None when there is no target; NaN never meets one)."""
    if target is None:
        return None
    op, bound = parse_target(target)
    return bool(not math.isnan(value) and _OPS[op](value, bound))


def record(name: str, value: float, target: str | None = None) -> Record:
    """Print ``name = value`` with its target, and append it to ``$COURSEKIT_RESULTS`` if set."""
    value = float(value.item() if hasattr(value, "item") else value)
    rec = Record(
        lecture=os.environ.get("COURSEKIT_LECTURE", "interactive"),
        name=name,
        value=value,
        target=target,
        met=met(value, target),
        profile=utils.profile(),
        device=utils.describe_device(),
    )
    verdict = "" if rec.met is None else ("  ✓ met" if rec.met else "  ✗ NOT met")
    shown = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    print(
        f"{name} = {shown}"
        + (f"   (target {target}{verdict})" if target else "")
        + f"   [{rec.profile} profile]"
    )
    path = os.environ.get("COURSEKIT_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(rec)) + "\n")
    return rec
