"""A test corpus of submissions for the grader: right, partial, wrong and hostile notebooks.

    python -m coursekit.grading.corpus OUT [--sentinel FILE]

For each lecture with checks (every lecture in coursekit/grading/lectures.py) it writes, from
the student notebook ``notebooks/NN_topic.ipynb`` and the solution notebook:

- complete notebooks (one in a student folder, one named ``<student>_<lecture>.ipynb``), the
  untouched student notebook, partly done ones;
- the wrong answers the exercise tests already name (``tests/test_exercises_NN.py``: every
  wrong function given to a check with the words its message must contain), several per
  notebook, one per exercise;
- the hostile cases, each in one exercise of an otherwise correct notebook: an endless loop,
  ``os._exit``, ``sys.exit``, a segfault, a memory bomb, a fork bomb, gigabytes of output,
  writing outside its directory (``--sentinel``), monkey-patching torch / NumPy / coursekit,
  reading the stack and the garbage collector for expected values, an answer right only on the
  notebook's own check inputs, a tensor subclass whose ``__eq__`` and ``allclose`` lie, a
  missing and a renamed function, a failing import, a syntax error; and whole-file ones: not
  JSON, empty, another lecture's notebook (with metadata claiming this one).

``OUT/expected.json`` holds, per file, the student, the lecture and the points each exercise
must get, and the words the feedback must contain; ``tests/test_grading.py`` grades the corpus
and compares.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

from coursekit.grading import lectures as lectures_mod

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Wrong:
    function: str
    source: str  # the expression of the wrong callable
    words: tuple[str, ...]


# ------------------------------------------------------------------ functions in notebooks


def _function_cells(nb) -> dict[str, tuple[int, ast.FunctionDef]]:
    found = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                found[stmt.name] = (i, stmt)
    return found


def replace_function(nb, name: str, new_source: str | None) -> None:
    """Put ``new_source`` (a whole ``def``, or nothing) where ``def name`` stands in ``nb``."""
    i, stmt = _function_cells(nb)[name]
    lines = nb.cells[i].source.split("\n")
    first = min([stmt.lineno] + [d.lineno for d in stmt.decorator_list])
    replacement = [] if new_source is None else new_source.rstrip("\n").split("\n")
    lines[first - 1 : stmt.end_lineno] = replacement
    nb.cells[i].source = "\n".join(lines)


def function_source(nb, name: str) -> str:
    i, stmt = _function_cells(nb)[name]
    lines = nb.cells[i].source.split("\n")
    return "\n".join(lines[stmt.lineno - 1 : stmt.end_lineno]) + "\n"


def _signature(def_source: str) -> tuple[str, str, str]:
    """(parameter list as written, the call that forwards them, their names) of a ``def``."""
    fn = ast.parse(def_source).body[0]
    params = ast.unparse(fn.args)
    names = [a.arg for a in fn.args.args]
    n_default = len(fn.args.defaults)
    call = [n if k < len(names) - n_default else f"{n}={n}" for k, n in enumerate(names)]
    return params, ", ".join(call), ", ".join(names)


def _with_body(def_source: str, body: str) -> str:
    fn = ast.parse(def_source).body[0]
    header = def_source.split("\n")[: fn.body[0].lineno - 1]
    # keep the docstring line(s) out: the header is everything up to the first statement
    if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant):
        header = def_source.split("\n")[: fn.body[0].end_lineno]
    return (
        "\n".join(header) + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    )


# ------------------------------------------------------------------ wrong answers from tests


def wrong_answers(number: str) -> tuple[list[Wrong], str]:
    """The wrong answers of ``tests/test_exercises_NN.py`` and the helper code they need."""
    path = ROOT / "tests" / f"test_exercises_{number}.py"
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    lecture = lectures_mod.load()[number]
    exercise_names = set(lecture.by_function())
    check_to_fn: dict[str, str] = {}
    generator_fn: dict[str, str] = {}
    for ex in lecture.exercises:
        check = ex.check
        if hasattr(check, "func"):  # functools.partial(check_generator, name)
            generator_fn[check.args[0]] = ex.function
            check_to_fn[check.func.__name__] = "<generator>"
        else:
            check_to_fn[check.__name__] = ex.function
    from coursekit.grading.notebook import _is_plain

    helpers, assigned, top_defs = [], {}, set()
    # the tests' own references may share an exercise's name (test_exercises_06 defines
    # q_sample): in the notebook they become _ref_<name>, so a wrong answer that calls the
    # reference does not call itself
    shadowing = {
        stmt.name
        for stmt in tree.body
        if isinstance(stmt, ast.FunctionDef) and stmt.name in exercise_names
    }

    def renamed(source: str) -> str:
        for name in shadowing:
            source = re.sub(rf"(?<![.\w]){name}\b", f"_ref_{name}", source)
        return source

    for stmt in tree.body:
        segment = ast.get_source_segment(text, stmt)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if "pytest" not in segment:
                helpers.append(segment)
        elif isinstance(stmt, ast.FunctionDef) and not stmt.name.startswith("test"):
            if not stmt.decorator_list:
                helpers.append(renamed(segment))
                top_defs.add(stmt.name)
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                assigned[target.id] = stmt.value
            if _is_plain(stmt.value):
                helpers.append(segment)
    nested_count = [0]

    def callable_source(node: ast.AST, test: ast.FunctionDef) -> str:
        """The wrong answer's source; a function defined inside the test becomes a helper."""
        if isinstance(node, ast.Name) and node.id not in top_defs:
            local = [
                a
                for a in ast.walk(test)
                if isinstance(a, ast.Assign)
                and isinstance(a.value, ast.Lambda)
                and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)
                and a.lineno < node.lineno
            ]
            if local:  # bad = lambda ...: the last one before the check
                return renamed(
                    ast.get_source_segment(text, max(local, key=lambda a: a.lineno).value)
                )
            for inner in ast.walk(test):
                if (
                    isinstance(inner, ast.FunctionDef)
                    and inner.name == node.id
                    and inner is not test
                ):
                    nested_count[0] += 1
                    new_name = f"_t{nested_count[0]}_{node.id}"
                    code = textwrap.dedent(ast.get_source_segment(text, inner, padded=True))
                    helpers.append(renamed(code.replace(f"def {node.id}(", f"def {new_name}(", 1)))
                    return new_name
        return renamed(ast.get_source_segment(text, node))

    def target_of(call: ast.Call, name_arg: ast.AST | None) -> str | None:
        func = call.func
        attr = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        fn = check_to_fn.get(attr)
        if fn == "<generator>":
            if isinstance(name_arg, ast.Constant) and name_arg.value in generator_fn:
                return generator_fn[name_arg.value]
            return None
        return fn

    def usable(node: ast.AST) -> bool:
        return isinstance(node, ast.Lambda) or (
            isinstance(node, (ast.Name, ast.Attribute))
            and ast.get_source_segment(text, node) != "checks.stub"
        )

    found: list[Wrong] = []
    for stmt in ast.walk(tree):
        if not isinstance(stmt, ast.FunctionDef) or not stmt.name.startswith("test"):
            continue
        checks_called = [
            c
            for c in ast.walk(stmt)
            if isinstance(c, ast.Call)
            and isinstance(c.func, (ast.Attribute, ast.Name))
            and getattr(c.func, "attr", getattr(c.func, "id", "")).startswith("check_")
        ]
        if not checks_called:
            continue
        for dec in stmt.decorator_list:  # parametrized batteries
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in dec.args[0].value.split(",")]
            values = dec.args[1]
            values = assigned.get(values.id, values) if isinstance(values, ast.Name) else values
            if not isinstance(values, ast.List):
                continue
            fpos = next((k for k, n in enumerate(names) if n in ("wrong", "f")), None)
            wpos = next((k for k, n in enumerate(names) if n in ("words", "message")), None)
            npos = names.index("name") if "name" in names else None
            if fpos is None or wpos is None:
                continue
            for elt in values.elts:
                if not isinstance(elt, ast.Tuple) or not usable(elt.elts[fpos]):
                    continue
                words = elt.elts[wpos]
                name_arg = elt.elts[npos] if npos is not None else None
                fn = target_of(checks_called[0], name_arg)
                if fn and isinstance(words, ast.Constant):
                    found.append(Wrong(fn, callable_source(elt.elts[fpos], stmt), (words.value,)))
        if stmt.decorator_list:
            continue
        for call in ast.walk(stmt):  # _fails_with(check(wrong), "words", ...)
            if not (
                isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Call)
            ):
                continue
            inner = call.args[0]
            if inner not in checks_called or not inner.args:
                continue
            first = inner.args[0]
            name_arg = first if isinstance(first, ast.Constant) else None
            candidate = inner.args[1] if name_arg is not None and len(inner.args) > 1 else first
            words = [
                a.value
                for a in call.args[1:]
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            fn = target_of(inner, name_arg)
            if fn and words and usable(candidate) and not isinstance(candidate, ast.Attribute):
                found.append(Wrong(fn, callable_source(candidate, stmt), tuple(words)))
    unique, seen = [], set()
    for w in found:
        if (w.function, w.source) not in seen:
            seen.add((w.function, w.source))
            unique.append(w)
    return unique, "\n\n\n".join(helpers) + "\n"


# ------------------------------------------------------------------ hostile bodies

HOSTILE_BODIES = {
    "infinite_loop": "while True:\n    pass",
    "os_exit": "import os\nos._exit(0)",
    "sys_exit": "import sys\nsys.exit(0)",
    "segfault": "import ctypes\nctypes.string_at(0)",
    "memory_bomb": "hog = []\nwhile True:\n    hog.append(bytearray(100 * 2**20))",
    "fork_bomb": "import os\nwhile True:\n    os.fork()",
    "gigabytes_of_output": "while True:\n    print('x' * 2**20)",
    "write_outside": "with open(SENTINEL, 'w') as f:\n    f.write('overwritten by a submission')\nreturn _correct({call})",
    "monkeypatch": (
        "import numpy as np\nimport coursekit.check\n"
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "np.allclose = lambda *a, **k: True\n"
        "coursekit.check.Exercise.close = lambda *a, **k: None\n"
        "coursekit.check.Exercise.grad = lambda *a, **k: None\n"
        "return None"
    ),
    "read_stack": (
        "import gc, inspect\n"
        "for frame in inspect.stack():\n"
        "    for key in ('expected', 'ref', 'reference', 'out'):\n"
        "        if key in frame.frame.f_locals and frame.frame.f_locals[key] is not None:\n"
        "            return frame.frame.f_locals[key]\n"
        "for obj in gc.get_objects():\n"
        "    if type(obj).__name__ == 'Exercise':\n"
        "        return obj\n"
        "return None"
    ),
    "notebook_inputs_only": (
        "if _key(({names},)) in NOTEBOOK_KEYS:\n    return _correct({call})\nreturn _wrong_guess({call})"
    ),
    "lying_tensor": (
        "class Liar(torch.Tensor):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.isclose, torch.Tensor.__eq__):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "out = _correct({call})\n"
        "if isinstance(out, torch.Tensor):\n    return (out * 0 + 1.2345).as_subclass(Liar)\n"
        "return [torch.zeros(1).as_subclass(Liar)]"
    ),
    "failing_import": "return this_package_does_not_exist.answer({call})",
}

KEY_SOURCE = '''
def _key(value):
    """A fingerprint of the inputs (shapes and sums), to recognise the notebook's check inputs."""
    import numpy
    import torch
    if isinstance(value, torch.Tensor):
        return ("t", tuple(value.shape), round(float(value.detach().double().sum()), 6))
    if isinstance(value, numpy.ndarray):
        return ("a", value.shape, round(float(value.astype("float64").sum()), 6))
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return type(value).__name__
'''


def _notebook_keys(exercise: lectures_mod.Exercise, correct) -> list:
    """The fingerprints of every input the notebook's own check (seed 0) gives the function."""
    namespace: dict = {}
    exec(KEY_SOURCE, namespace)
    keys = []

    def recorder(*args, **kwargs):
        keys.append(namespace["_key"](tuple(list(args) + list(kwargs.values()))))
        return correct(*args, **kwargs)

    with contextlib.redirect_stdout(io.StringIO()):
        result = exercise.check(recorder, seed=0)
    assert result, f"the reference fails its own check: {result}"
    return keys


# ------------------------------------------------------------------ writing the corpus


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def generate(out: Path, *, sentinel: Path | None = None, numbers: list[str] | None = None) -> dict:
    """Write the corpus under ``out``; returns (and writes) ``expected.json``."""
    known = lectures_mod.load()
    sentinel = sentinel or out / "sentinel.txt"
    expected: dict = {}
    numbers = numbers or sorted(known)
    for number in numbers:
        lecture = known[number]
        stem = lecture.stem
        student_nb = _read(ROOT / "notebooks" / f"{stem}.ipynb")
        solution_nb = _read(ROOT / "solutions" / f"{stem}.ipynb")
        solution = {e.function: function_source(solution_nb, e.function) for e in lecture.exercises}
        full = {e.function: e.points for e in lecture.exercises}
        zero = {e.function: 0.0 for e in lecture.exercises}
        uses = {
            fn: {n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)}
            & set(full) - {fn}
            for fn, src in solution.items()
        }

        def complete(stem=stem, solution=solution):
            nb = _read(ROOT / "notebooks" / f"{stem}.ipynb")
            for fn, src in solution.items():
                replace_function(nb, fn, src)
            return nb

        def add(
            relpath: str,
            nb,
            points: dict,
            kind: str,
            words: dict | None = None,
            lecture_no=number,
            raw: bytes | None = None,
            uses=uses,
        ):
            path = out / relpath
            points = dict(points)
            for fn, needed in uses.items():  # a correct function calling a broken one fails too
                if fn in points and any(points.get(n) == 0.0 for n in needed):
                    points[fn] = 0.0
            if raw is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(raw)
            else:
                _write(nb, path)
            student = relpath.split("/")[0].split("_")[0].split(".")[0]
            expected[relpath] = {
                "student": student,
                "lecture": lecture_no,
                "points": points,
                "kind": kind,
                "words": words or {},
            }

        tag = f"L{number}"
        add(f"{tag}ok1/{stem}.ipynb", complete(), full, "complete")
        add(f"{tag}ok2_{stem}.ipynb", complete(), full, "complete")
        add(f"{tag}stub_{stem}.ipynb", student_nb, zero, "untouched student notebook")
        names = [e.function for e in lecture.exercises]
        for k in (1, len(names) - 1):
            nb = _read(ROOT / "notebooks" / f"{stem}.ipynb")
            for fn in names[:k]:
                replace_function(nb, fn, solution[fn])
            pts = {fn: (full[fn] if fn in names[:k] else 0.0) for fn in names}
            add(f"{tag}partial{k}_{stem}.ipynb", nb, pts, "partial")
        # wrong answers from the tests: notebook j gets the j-th wrong answer of every exercise
        wrongs, helpers = wrong_answers(number)
        per_fn: dict[str, list[Wrong]] = {}
        for w in wrongs:
            per_fn.setdefault(w.function, []).append(w)
        for j in range(max(len(v) for v in per_fn.values())):
            nb = complete()
            nb.cells.insert(len(nb.cells), nbformat.v4.new_code_cell(helpers))
            pts, words = dict(full), {}
            for fn, options in per_fn.items():
                if j < len(options):
                    params, call, _ = _signature(solution[fn])
                    body = f"return ({options[j].source})({call})"
                    replace_function(nb, fn, _with_body(solution[fn], body))
                    pts[fn], words[fn] = 0.0, list(options[j].words)
            # helpers come first so that the wrong answers can use them
            nb.cells.insert(3, nb.cells.pop())
            add(f"{tag}wrong{j:02d}_{stem}.ipynb", nb, pts, "wrong answers", words)
        # hostile cases, each in the first exercise of an otherwise correct notebook
        first = lecture.exercises[0]
        fn = first.function
        params, call, names_only = _signature(solution[fn])
        correct_ns: dict = {}
        exec(
            "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
            + solution[fn],
            correct_ns,
        )
        keys = _notebook_keys(first, correct_ns[fn])
        support = (
            KEY_SOURCE
            + f"\n\nNOTEBOOK_KEYS = {keys!r}\nSENTINEL = {str(sentinel)!r}\n\n\n"
            + solution[fn].replace(f"def {fn}(", "def _correct(", 1)
            + "\n\n"
            + f"def _wrong_guess({params}):\n    return [] if isinstance(_correct({call}), list) else _correct({call}) * 0 + 0.5\n"
        )
        for kind, body in HOSTILE_BODIES.items():
            nb = complete()
            nb.cells.insert(3, nbformat.v4.new_code_cell(support))
            if kind == "failing_import":
                nb.cells.insert(3, nbformat.v4.new_code_cell("import this_package_does_not_exist"))
            replace_function(
                nb,
                fn,
                _with_body(
                    solution[fn], body.replace("{call}", call).replace("{names}", names_only)
                ),
            )
            pts = dict(full, **{fn: 0.0})
            add(f"{tag}hostile-{kind.replace('_', '-')}_{stem}.ipynb", nb, pts, kind)
        nb = complete()
        replace_function(nb, fn, None)
        add(
            f"{tag}hostile-missing_{stem}.ipynb",
            nb,
            dict(full, **{fn: 0.0}),
            "missing function",
            {fn: ["does not define"]},
        )
        nb = complete()
        replace_function(nb, fn, solution[fn].replace(f"def {fn}(", f"def {fn}_v2(", 1))
        add(
            f"{tag}hostile-renamed_{stem}.ipynb",
            nb,
            dict(full, **{fn: 0.0}),
            "renamed function",
            {fn: [f"`{fn}_v2`"]},
        )
        nb = complete()
        i, _ = _function_cells(nb)[fn]
        in_cell = [f for f, (c, _) in _function_cells(nb).items() if c == i and f in full]
        nb.cells[i].source += "\n\ndef broken(:\n    pass\n"
        add(
            f"{tag}hostile-syntax_{stem}.ipynb",
            nb,
            dict(full, **dict.fromkeys(in_cell, 0.0)),
            "syntax error",
            {f: ["does not define"] for f in in_cell},
        )
        text = nbformat.writes(complete())
        add(
            f"{tag}hostile-notjson_{stem}.ipynb",
            None,
            {},
            "not JSON",
            lecture_no="?",
            raw=text[: len(text) // 2].encode(),
        )
        add(f"{tag}hostile-empty_{stem}.ipynb", None, {}, "empty file", lecture_no="?", raw=b"")
        other = next(n for n in sorted(known) if n != number)
        other_nb = _read(ROOT / "solutions" / f"{known[other].stem}.ipynb")
        other_nb.metadata["coursekit"] = {"lecture": number}  # claims to be this lecture
        add(
            f"{tag}hostile-otherlecture_{stem}.ipynb",
            other_nb,
            {e.function: e.points for e in known[other].exercises},
            "another lecture's notebook",
            lecture_no=other,
        )
    (out / "expected.json").write_text(
        json.dumps(expected, indent=1, sort_keys=True), encoding="utf-8"
    )
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--sentinel", type=Path, help="a file the 'write outside' case tries to overwrite"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    expected = generate(args.out, sentinel=args.sentinel)
    print(f"wrote {len(expected)} submissions to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
