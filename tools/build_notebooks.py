"""Generate the notebooks of every lecture from its one source, ``solutions/NN_topic.py``.

For each source (jupytext percent format) this writes:

- ``solutions/NN_topic.ipynb``: the full notebook (instructor cells kept, student-only cells dropped);
- ``notebooks/NN_topic.ipynb``: the student notebook. Every region between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``raise NotImplementedError("Exercise NN.k: ...")``; cells tagged ``instructor`` are
  dropped; cells tagged ``student`` (hints) are kept.

Both get the Colab badge and the Colab set-up cell after the first (title) cell, generated
from ``coursekit.__version__`` and ``coursekit.REPOSITORY``; empty outputs; a kernelspec;
cell ids derived from the position, so building twice gives byte-identical files.

Usage::

    python tools/build_notebooks.py            # rebuild every lecture
    python tools/build_notebooks.py 02         # rebuild lecture 02 only
    python tools/build_notebooks.py --check    # exit 1 if any notebook is stale (make check)

A generated notebook that someone edited (it no longer matches the hash it was written
with) is never overwritten: it is moved to ``workspace/rescued/`` first, with a message.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import coursekit  # noqa: E402

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
INSTRUCTOR, STUDENT = "instructor", "student"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
SOURCE_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.py$")


class BuildError(Exception):
    """A problem in a lecture source, reported as ``path:line: message``."""


@dataclass
class Region:
    begin: int  # 1-based line numbers in the source file
    end: int
    indent: str


def find_regions(text: str, path: Path) -> list[Region]:
    """The solution regions of a source, checking the markers are balanced and not nested."""
    regions, open_at, indent = [], None, ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("# %%") and open_at is not None:
            raise BuildError(
                f"{path}:{open_at}: `{BEGIN}` is not closed before the next cell starts"
            )
        if stripped == BEGIN:
            if open_at is not None:
                raise BuildError(
                    f"{path}:{lineno}: nested `{BEGIN}` (the region opened at line {open_at} is still open)"
                )
            open_at, indent = lineno, line[: len(line) - len(line.lstrip())]
        elif stripped == END:
            if open_at is None:
                raise BuildError(f"{path}:{lineno}: `{END}` without a matching `{BEGIN}`")
            regions.append(Region(open_at, lineno, indent))
            open_at = None
        elif BEGIN in line or END in line:
            raise BuildError(f"{path}:{lineno}: a solution marker must stand alone on its line")
    if open_at is not None:
        raise BuildError(f"{path}:{open_at}: `{BEGIN}` is never closed")
    return regions


def _enclosing_function(lines: list[str]) -> str | None:
    for line in reversed(lines):
        match = re.match(r"\s*def\s+(\w+)\s*\(", line)
        if match:
            return match.group(1)
    return None


def strip_solutions(
    source: str, lecture: str, counter: list[int], path: Path, first_line: int
) -> str:
    """Replace each solution region of one cell's code by a ``NotImplementedError`` stub."""
    out: list[str] = []
    inside = False
    for offset, line in enumerate(source.split("\n")):
        if line.strip() == BEGIN:
            if not line[: len(line) - len(line.lstrip())]:
                raise BuildError(
                    f"{path}:{first_line + offset}: put solution regions inside a function body, so the "
                    "student notebook still runs (the stub raises only when the function is called)"
                )
            counter[0] += 1
            fn = _enclosing_function(out)
            name = f"Exercise {int(lecture)}.{counter[0]}" + (f" ({fn})" if fn else "")
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("{name}: write your solution here")')
            inside = True
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


# The set-up cell. On Colab: clone the release tag (quietly: no detached-HEAD advice), or,
# if the repository has no such tag, its default branch with a note saying so; install it
# next to Colab's torch; print one line naming the version and commit. Elsewhere: nothing.
SETUP = string.Template("""# Set-up. On Google Colab this installs coursekit $version from the course repository (its tag
# $tag; if that tag is missing, the default branch, with a note); Colab's own torch is pinned so
# pip never replaces it. Anywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess
    import tempfile

    import torch

    REPOSITORY, TAG = "$repo", "$tag"
    REPO_DIR = "/content/dgm-course"
    if not os.path.isdir(os.path.join(REPO_DIR, ".git")):
        clone = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth", "1"]
        tagged = [*clone, "--branch", TAG, REPOSITORY, REPO_DIR]
        got = subprocess.run(tagged, capture_output=True, text=True)
        if got.returncode != 0 and "not found" in got.stderr:
            print(
                f"Note: {REPOSITORY} has no tag {TAG}, the release this notebook was made for. "
                "Using its default branch instead, which may not match this notebook exactly."
            )
            got = subprocess.run([*clone, REPOSITORY, REPO_DIR], capture_output=True, text=True)
        if got.returncode != 0:
            raise RuntimeError(
                f"Could not download the course code from {REPOSITORY}:\\n{got.stderr.strip()}\\n"
                "Check that the runtime is connected to the internet, then run this cell again."
            )
    keep_torch = os.path.join(tempfile.gettempdir(), "keep-torch.txt")
    with open(keep_torch, "w") as f:
        f.write(f"torch=={torch.__version__}\\n")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--root-user-action=ignore", "-c", keep_torch, "-e", REPO_DIR], check=True)
    sys.path.insert(0, REPO_DIR)
    import coursekit

    git_log = ["git", "-C", REPO_DIR, "log", "-1", "--format=%h, %cs"]
    commit = subprocess.run(git_log, capture_output=True, text=True).stdout.strip()
    print(f"coursekit {coursekit.__version__} from {REPOSITORY} (commit {commit})")""")


def colab_cells(stem: str) -> list[nbformat.NotebookNode]:
    """The badge and the set-up cell, from the one place the repository and version live."""
    repo = coursekit.REPOSITORY.rstrip("/")
    tag = f"v{coursekit.__version__}"
    github_path = repo.removeprefix("https://github.com/")
    badge_url = (
        f"https://colab.research.google.com/github/{github_path}/blob/{tag}/notebooks/{stem}.ipynb"
    )
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({badge_url})"
        f" (coursekit {coursekit.__version__}; on Colab choose *Runtime → Change runtime type → GPU*)"
    )
    setup = SETUP.substitute(version=coursekit.__version__, tag=tag, repo=repo)
    return [nbformat.v4.new_markdown_cell(badge), nbformat.v4.new_code_cell(setup)]


def build(path: Path, student: bool) -> str:
    """The notebook JSON (as text) for one source, full or student version."""
    text = path.read_text(encoding="utf-8")
    find_regions(text, path)  # validates the markers before anything else
    lecture = path.stem.split("_")[0]
    nb = jupytext.reads(text, fmt="py:percent")
    cells, counter = [], [0]
    line_of_cell = _cell_start_lines(text)
    if len(line_of_cell) != len(nb.cells):  # cannot happen with plain `# %%` sources
        raise BuildError(f"{path}:1: could not match jupytext's cells to `# %%` markers")
    for i, cell in enumerate(nb.cells):
        tags = set(cell.metadata.get("tags", []))
        if (student and INSTRUCTOR in tags) or (not student and STUDENT in tags):
            continue
        source = cell.source
        if cell.cell_type != "code" and (BEGIN in source or END in source):
            raise BuildError(
                f"{path}:{line_of_cell[i]}: solution markers are only allowed in code cells"
            )
        if student and cell.cell_type == "code":
            source = strip_solutions(source, lecture, counter, path, line_of_cell[i] + 1)
        kept_tags = sorted(tags - {INSTRUCTOR, STUDENT})
        metadata = {"tags": kept_tags} if kept_tags else {}
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(source, metadata=metadata)
        else:
            new = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        cells.append(new)
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        raise BuildError(
            f"{path}:1: the first cell must be markdown starting with '# Lecture NN: Title'"
        )
    cells[1:1] = colab_cells(path.stem)
    for k, cell in enumerate(cells):
        cell.id = f"{'s' if student else 'f'}{lecture}-{k:03d}"
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        "coursekit": {"generated_sha256": ""},
    }
    nbformat.validate(out)
    text = nbformat.writes(out) + "\n"
    return text.replace(_EMPTY_HASH, f'"generated_sha256": "{fingerprint(text)}"', 1)


# ----------------------------------------------------------------------------- edited notebooks
#
# A generated notebook carries the hash of its own text (with the hash blanked). A file whose
# text no longer has that hash was changed after the build (a student answering in it, Jupyter
# saving it): the build moves it to workspace/rescued/ and says so before writing the new one,
# so no build step ever overwrites a person's work.

_HASH = re.compile(r'"generated_sha256": "[0-9a-f]*"')
_EMPTY_HASH = '"generated_sha256": ""'
RESCUED = ROOT / "workspace" / "rescued"


def fingerprint(text: str) -> str:
    """sha256 of a notebook's text with its own ``generated_sha256`` blanked."""
    return hashlib.sha256(_HASH.sub(_EMPTY_HASH, text, count=1).encode("utf-8")).hexdigest()


def edited(path: Path) -> bool:
    """Whether ``path`` differs from what this build last wrote there (False if absent)."""
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    stored = _HASH.search(text)
    if stored is None:  # built before notebooks carried their hash: compare with git's copy
        return text != _committed(path)
    return stored.group(0) != f'"generated_sha256": "{fingerprint(text)}"'


def _committed(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "show", f"HEAD:{path.relative_to(ROOT).as_posix()}"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    return out.stdout.decode("utf-8", errors="replace")


def rescue(path: Path) -> Path:
    """Move an edited notebook to ``workspace/rescued/<folder>/<name>.edited-<time>.ipynb``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = RESCUED / path.parent.relative_to(ROOT)
    folder.mkdir(parents=True, exist_ok=True)
    target, k = folder / f"{path.stem}.edited-{stamp}.ipynb", 1
    while target.exists():
        target, k = folder / f"{path.stem}.edited-{stamp}-{k}.ipynb", k + 1
    path.replace(target)
    return target


def _cell_start_lines(text: str) -> list[int]:
    """1-based line of each cell's start, in jupytext's cell order (for error messages)."""
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if line.startswith("# %%")]
    if not text.lstrip().startswith("# %%"):
        starts.insert(0, 1)  # jupytext makes a first cell of what comes before the first marker
    return starts


def targets(source: Path) -> dict[Path, str]:
    return {
        ROOT / "solutions" / f"{source.stem}.ipynb": build(source, student=False),
        ROOT / "notebooks" / f"{source.stem}.ipynb": build(source, student=True),
    }


def sources(selected: list[str]) -> list[Path]:
    found = sorted(p for p in (ROOT / "solutions").glob("*.py") if SOURCE_NAME.match(p.name))
    if selected:
        found = [p for p in found if any(p.name.startswith(s) for s in selected)]
        if not found:
            raise SystemExit(f"no lecture source in solutions/ matches {selected}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "lectures", nargs="*", help="lecture numbers or name prefixes (default: all)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only report stale notebooks; exit 1 if any"
    )
    args = parser.parse_args(argv)
    stale, changed, written, rescued = [], [], [], []
    try:
        for source in sources(args.lectures):
            for path, text in targets(source).items():
                if path.exists() and path.read_text(encoding="utf-8") == text:
                    continue
                if args.check:
                    (changed if edited(path) else stale).append(path)
                    continue
                if edited(path):
                    rescued.append((path, rescue(path)))
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".ipynb.tmp")
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(path)
                written.append(path)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        expected = {p.relative_to(ROOT) for s in sources([]) for p in targets(s)}
        orphans = [
            p.relative_to(ROOT)
            for d in ("solutions", "notebooks")
            for p in (ROOT / d).glob("*.ipynb")
            if p.relative_to(ROOT) not in expected
        ]
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make notebooks`)")
        for path in changed:
            print(
                f"edited by hand: {path.relative_to(ROOT)} (generated files are not for answers; "
                f"`make notebooks` moves it to {RESCUED.relative_to(ROOT)}/ and regenerates it; "
                "work in workspace/, made by `make workspace`)"
            )
        for path in orphans:
            print(f"orphan: {path} has no source in solutions/ (delete it or restore its source)")
        return 1 if stale or changed or orphans else 0
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    for path, kept in rescued:
        print(
            f"\n*** {path.relative_to(ROOT)} had been edited by hand. Nothing is lost: the edited "
            f"file is now {kept.relative_to(ROOT)}, and {path.relative_to(ROOT)} is regenerated. "
            "Work in workspace/ (`make workspace` copies the student notebooks there once; no "
            "build step overwrites anything there). ***",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
