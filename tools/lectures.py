"""Which lectures exist, and which one a person meant by ``NB=2``, ``NB=02`` or ``NB=vae``.

A lecture is named ``NN_topic`` (``02_vae``). A number means that lecture whatever its
leading zeros (``2``, ``02``); a word means the lecture whose name or topic is, or starts
with, that word (``vae``, ``02_vae``, ``diff``). Anything else raises ``UnknownLectureError``
listing the lectures that exist, so ``NB=99`` or ``NB=0`` never runs all of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coursekit import errors  # noqa: E402

NAME = re.compile(r"^(\d\d)_([a-z0-9_]+)$")


class UnknownLectureError(errors.CourseError, ValueError):
    """A lecture number or name that matches no lecture (or more than one)."""


def names_in(folder: Path, *suffixes: str) -> list[str]:
    """The lecture names ``NN_topic`` of the files in ``folder`` with one of ``suffixes``."""
    return sorted({p.stem for s in suffixes for p in folder.glob(f"*{s}") if NAME.match(p.stem)})


def resolve(wanted: list[str], lectures: list[str]) -> list[str]:
    """The lectures named by ``wanted`` (numbers or names, also comma-separated), in course
    order; all of ``lectures`` when ``wanted`` is empty."""
    tokens = [t for item in wanted for t in item.replace(",", " ").split()]
    if not tokens:
        return list(lectures)
    chosen: set[str] = set()
    for token in tokens:
        chosen.add(_one(token, lectures))
    return [name for name in lectures if name in chosen]


def _one(token: str, lectures: list[str]) -> str:
    key = token.strip().lower()
    if key.isdigit():
        found = [n for n in lectures if int(n[:2]) == int(key)]
    else:
        found = [n for n in lectures if key in (n, n[3:])]
        if not found:
            found = [n for n in lectures if n.startswith(key) or n[3:].startswith(key)]
    if len(found) == 1:
        return found[0]
    listing = ", ".join(lectures) if lectures else "none (solutions/ has no NN_topic.py)"
    what = "matches several lectures" if found else "is not a lecture"
    raise UnknownLectureError(
        f"{token!r} {what}. The lectures: {listing}. Name one by its number (2 or 02) or "
        "its topic (vae), e.g. `make course NB=02`."
    )
