"""Reading a submitted notebook: which student, which lecture, and the code of its functions.

Nothing here runs the student's code. The notebook is read as JSON; its code cells are parsed
with ``ast``; what the grader keeps is the module-level ``import`` statements, ``def`` and
``class`` statements, and assignments of plain constants (``PRECISION = 32``), so training
loops and plots in the notebook are never executed. A cell with a syntax error is left out
(its functions then count as missing) and named in the feedback.

The lecture is recognised from the notebook's content (which lecture's exercise functions it
defines, and its "# Lecture NN" title), checked against ``metadata.coursekit.lecture`` that
``tools/build_notebooks.py`` writes; the file name is never trusted.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from coursekit.grading import lectures as lectures_mod

MAX_NOTEBOOK_BYTES = 20 * 2**20
DEFAULT_ID_PATTERN = r"^(?P<student>[^/_.]+)"
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_PLAIN = (
    ast.Constant,
    ast.Name,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.Load,
    ast.Store,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


@dataclass
class Submission:
    path: Path
    relpath: str
    student: str
    lecture: str | None = None  # "02", or None when no lecture could be recognised
    source: str = ""  # the extracted code the worker loads
    functions: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # why nothing could be graded
    notes: list[str] = field(default_factory=list)  # remarks for the feedback


def student_id(relpath: str, pattern: str = DEFAULT_ID_PATTERN) -> str:
    """The student id from the path relative to the submissions folder: by default the first
    folder (``alice/02_vae.ipynb``) or the file name up to its first ``_`` or ``.``
    (``alice_02_vae.ipynb``). ``pattern`` is a regex with a group named ``student``."""
    match = re.search(pattern, relpath)
    if match and match.groupdict().get("student"):
        return match.group("student")
    return Path(relpath).stem


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _without_magics(source: str) -> str:
    """IPython's ``%magic`` and ``!shell`` lines become comments (they are not Python)."""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def _is_plain(node: ast.AST) -> bool:
    return all(isinstance(n, _PLAIN) for n in ast.walk(node))


def _kept(stmt: ast.stmt) -> bool:
    if isinstance(stmt, _KEEP):
        return True
    if isinstance(stmt, ast.Assign):
        return all(isinstance(t, (ast.Name, ast.Tuple)) for t in stmt.targets) and _is_plain(
            stmt.value
        )
    if isinstance(stmt, ast.AnnAssign):
        return (
            stmt.value is not None and isinstance(stmt.target, ast.Name) and _is_plain(stmt.value)
        )
    return False


def extract(cells: list[str]) -> tuple[str, set[str], list[str]]:
    """The kept statements of the code cells, the functions they define, and the cells that
    could not be parsed."""
    pieces, functions, notes = [], set(), []
    for k, raw in enumerate(cells, start=1):
        source = _without_magics(raw)
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            notes.append(
                f"code cell {k} has a syntax error (line {e.lineno}: {e.msg}); it was left out"
            )
            continue
        lines = source.split("\n")
        for stmt in tree.body:
            if not _kept(stmt):
                continue
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
            pieces.append("\n".join(lines[first - 1 : stmt.end_lineno]))
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.add(stmt.name)
    return "\n\n".join(pieces) + "\n", functions, notes


def recognise(
    functions: set[str], titles: list[str], metadata_lecture: str | None, known: dict
) -> tuple[str | None, list[str]]:
    """The lecture a notebook belongs to, from its content, checked against its metadata."""
    notes = []
    scores = {}
    for number, lecture in known.items():
        score = len(functions & set(lecture.by_function()))
        if any(int(t) == int(number) for t in titles):
            score += 0.5
        if score:
            scores[number] = score
    by_content = max(scores, key=lambda n: (scores[n], n)) if scores else None
    if metadata_lecture is not None and metadata_lecture not in known:
        notes.append(
            f"its metadata names lecture {metadata_lecture!r}, which the grader does not know"
        )
        metadata_lecture = None
    if by_content and metadata_lecture and by_content != metadata_lecture:
        notes.append(
            f"its metadata says lecture {metadata_lecture} but its content is lecture {by_content}: "
            f"graded as lecture {by_content}"
        )
    return by_content or metadata_lecture, notes


def read(
    path: Path, root: Path, *, id_pattern: str = DEFAULT_ID_PATTERN, known: dict | None = None
) -> Submission:
    """Everything the grader needs from one submitted file; never raises for a bad file."""
    known = lectures_mod.load() if known is None else known
    relpath = path.relative_to(root).as_posix()
    sub = Submission(path, relpath, student_id(relpath, id_pattern))
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            sub.problems.append(
                f"the file is {size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES // 2**20} MB limit"
            )
            return sub
        data = path.read_bytes()
    except OSError as e:
        sub.problems.append(f"the file could not be read ({e.strerror})")
        return sub
    if not data.strip():
        sub.problems.append("the file is empty: submit the notebook saved from Jupyter")
        return sub
    try:
        nb = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        where = f" (line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        sub.problems.append(f"the file is not a valid notebook: not valid JSON{where}")
        return sub
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        sub.problems.append("the file is JSON but not a Jupyter notebook (no list of cells)")
        return sub
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    code = [_cell_source(c) for c in cells if c.get("cell_type") == "code"]
    titles = []
    for c in cells:
        if c.get("cell_type") == "markdown":
            match = TITLE_LINE.search(_cell_source(c))
            if match:
                titles.append(match.group(1))
    metadata = nb.get("metadata")
    meta = metadata.get("coursekit") if isinstance(metadata, dict) else None
    meta_lecture = meta.get("lecture") if isinstance(meta, dict) else None
    meta_lecture = str(meta_lecture) if isinstance(meta_lecture, (str, int)) else None
    if meta_lecture is not None and meta_lecture.isdigit():
        meta_lecture = f"{int(meta_lecture):02d}"
    sub.source, sub.functions, sub.notes = extract(code)
    sub.lecture, notes = recognise(sub.functions, titles, meta_lecture, known)
    sub.notes += notes
    if sub.lecture is None:
        sub.problems.append(
            "the grader could not recognise the lecture: the notebook defines none of the "
            "exercise functions of any lecture it grades"
        )
    return sub


TITLE_LINE = re.compile(r"^#\s*Lecture\s+0*(\d+)\s*:", re.IGNORECASE | re.MULTILINE)
