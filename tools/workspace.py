"""Your own copies of the student notebooks, in ``workspace/``: the one place to write answers.

``notebooks/`` holds the generated student notebooks, which ``make notebooks`` rewrites
whenever a lecture changes. ``workspace/`` is yours: no build step overwrites anything in it
(git ignores it). This script:

- copies each student notebook ``notebooks/NN_topic.ipynb`` to ``workspace/NN_topic.ipynb``
  if it is not there yet; a notebook already in ``workspace/`` is never overwritten, so a
  new lecture arrives without touching the others;
- with ``--fresh NN``, gives you a clean copy of lecture NN: your copy is first moved to
  ``workspace/NN_topic.backup-<time>.ipynb`` (nothing is ever deleted).

Usage::

    python tools/workspace.py                 # make lab runs this, then opens workspace/
    python tools/workspace.py --fresh 2       # make workspace FRESH=02
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import lectures  # noqa: E402

from coursekit import errors  # noqa: E402


def backup(path: Path) -> Path:
    """Move ``path`` to ``<stem>.backup-<time>.ipynb`` beside it (a new name, never an old one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, k = path.with_name(f"{path.stem}.backup-{stamp}.ipynb"), 1
    while target.exists():
        target, k = path.with_name(f"{path.stem}.backup-{stamp}-{k}.ipynb"), k + 1
    path.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--fresh",
        action="append",
        default=[],
        help="lecture number or topic to copy afresh (your copy is kept as a backup)",
    )
    parser.add_argument("--notebooks", default=str(ROOT / "notebooks"), help=argparse.SUPPRESS)
    parser.add_argument("--workspace", default=str(ROOT / "workspace"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    notebooks, workspace = Path(args.notebooks), Path(args.workspace)
    names = lectures.names_in(notebooks, ".ipynb")
    if not names:
        raise lectures.UnknownLectureError(f"{notebooks} has no notebook: run `make notebooks`")
    fresh = lectures.resolve(args.fresh, names) if args.fresh else []
    workspace.mkdir(parents=True, exist_ok=True)
    for name in names:
        mine = workspace / f"{name}.ipynb"
        if name in fresh and mine.exists():
            print(f"kept your {mine.relative_to(workspace.parent)} as {backup(mine).name}")
        if mine.exists():
            continue
        tmp = mine.with_suffix(".ipynb.tmp")
        shutil.copyfile(notebooks / f"{name}.ipynb", tmp)
        tmp.replace(mine)  # a whole notebook or none, even if interrupted
        print(f"copied {name}.ipynb to {mine.relative_to(workspace.parent)}")
    print(f"your notebooks: {workspace}/ (yours to edit; no build step overwrites anything there)")
    return 0


if __name__ == "__main__":
    errors.run_cli(main)
