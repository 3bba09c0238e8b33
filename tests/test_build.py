"""The one-source notebook build: stubs, tags, marker errors, determinism, no leaks."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

SOURCE = '''# %% [markdown]
# # Lecture 99: Demo
# Goals.

# %%
def square(x):
    """Exercise: square it."""
    ### BEGIN SOLUTION
    secret_answer = x * x
    return secret_answer
    ### END SOLUTION

# %% tags=["instructor"]
print("grading notes")

# %% tags=["student"]
# Hint: multiply x by itself.
'''


def write(tmp_path, text, name="99_demo.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def code_of(nb_text):
    return ["".join(c["source"]) for c in json.loads(nb_text)["cells"] if c["cell_type"] == "code"]


def test_student_version_has_stub_and_hint_but_no_solution_or_instructor_cell(tmp_path):
    student = build_notebooks.build(write(tmp_path, SOURCE), student=True)
    code = "\n".join(code_of(student))
    assert 'raise NotImplementedError("Exercise 99.1 (square): write your solution here")' in code
    assert "secret_answer" not in code
    assert "grading notes" not in code
    assert "Hint: multiply x by itself." in code


def test_full_version_keeps_solution_and_instructor_cell_but_not_student_hint(tmp_path):
    full = build_notebooks.build(write(tmp_path, SOURCE), student=False)
    code = "\n".join(code_of(full))
    assert "secret_answer = x * x" in code
    assert "grading notes" in code
    assert "Hint: multiply" not in code


def test_build_is_deterministic_and_outputs_are_empty(tmp_path):
    path = write(tmp_path, SOURCE)
    first, second = (
        build_notebooks.build(path, student=True),
        build_notebooks.build(path, student=True),
    )
    assert first == second
    nb = json.loads(first)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert all(c.get("outputs", []) == [] for c in nb["cells"])
    assert [c["id"] for c in nb["cells"]] == [f"s99-{k:03d}" for k in range(len(nb["cells"]))]


def test_badge_and_colab_setup_come_after_the_title(tmp_path):
    import coursekit

    nb = json.loads(build_notebooks.build(write(tmp_path, SOURCE), student=False))
    badge, setup = "".join(nb["cells"][1]["source"]), "".join(nb["cells"][2]["source"])
    assert f"blob/v{coursekit.__version__}/notebooks/99_demo.ipynb" in badge
    assert coursekit.REPOSITORY.removeprefix("https://github.com/") in badge
    assert 'if "google.colab" in sys.modules:' in setup and "%pip" not in setup
    assert "torch==" in setup  # torch pinned to Colab's own version while installing
    exec(compile(setup, "setup", "exec"), {})  # outside Colab it does nothing and does not fail


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("    ### BEGIN SOLUTION\n    return x\n", 8, "never closed"),
        ("    return x\n    ### END SOLUTION\n", 9, "without a matching"),
        (
            "    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n",
            9,
            "nested",
        ),
    ],
)
def test_unbalanced_or_nested_markers_name_file_and_line(tmp_path, body, line, words):
    text = "# %% [markdown]\n# # Lecture 99: Demo\n\n# %%\nimport torch\n\ndef f(x):\n" + body
    path = write(tmp_path, text)
    with pytest.raises(build_notebooks.BuildError, match=rf"99_demo.py:{line}: .*{words}"):
        build_notebooks.build(path, student=True)


def test_top_level_solution_region_is_refused(tmp_path):
    text = "# %% [markdown]\n# # Lecture 99: Demo\n\n# %%\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    with pytest.raises(
        build_notebooks.BuildError, match=r"99_demo.py:5: put solution regions inside a function"
    ):
        build_notebooks.build(write(tmp_path, text), student=True)


def test_every_lecture_notebook_is_up_to_date():
    assert build_notebooks.main(["--check"]) == 0, "run `make notebooks`"


def _solution_only_lines(source: Path) -> set[str]:
    """Lines that occur inside solution regions and nowhere else in the source."""
    inside, outside, in_region = set(), set(), False
    for line in source.read_text().splitlines():
        s = line.strip()
        if s == build_notebooks.BEGIN:
            in_region = True
        elif s == build_notebooks.END:
            in_region = False
        elif s and not s.startswith("#"):
            (inside if in_region else outside).add(s)
    return inside - outside


SOURCES = build_notebooks.sources([])


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_no_solution_line_reaches_the_student_notebook(source):
    student = ROOT / "notebooks" / f"{source.stem}.ipynb"
    student_lines = {l.strip() for cell in code_of(student.read_text()) for l in cell.splitlines()}
    leaked = _solution_only_lines(source) & student_lines
    assert not leaked, f"solution lines in {student.name}: {sorted(leaked)}"
    n_regions = len(build_notebooks.find_regions(source.read_text(), source))
    stubs = sum(
        len(re.findall(r"raise NotImplementedError\(\"Exercise", c))
        for c in code_of(student.read_text())
    )
    assert stubs == n_regions


def _demo_repo(tmp_path, monkeypatch):
    """build_notebooks pointed at a throw-away repository holding lecture 99 only."""
    (tmp_path / "solutions").mkdir()
    write(tmp_path / "solutions", SOURCE)
    monkeypatch.setattr(build_notebooks, "ROOT", tmp_path)
    monkeypatch.setattr(build_notebooks, "RESCUED", tmp_path / "workspace" / "rescued")
    assert build_notebooks.main([]) == 0
    return tmp_path / "notebooks" / "99_demo.ipynb", tmp_path / "solutions" / "99_demo.ipynb"


def test_a_generated_notebook_carries_the_hash_of_its_own_text(tmp_path, monkeypatch):
    student, full = _demo_repo(tmp_path, monkeypatch)
    for path in (student, full):
        text = path.read_text()
        stored = json.loads(text)["metadata"]["coursekit"]["generated_sha256"]
        assert stored == build_notebooks.fingerprint(text) and len(stored) == 64
        assert not build_notebooks.edited(path)
        path.write_text(text.replace("Goals.", "Goals!"))  # one character
        assert build_notebooks.edited(path)
        path.write_text(text.replace(stored, "0" * 64))  # the hash alone
        assert build_notebooks.edited(path)
    assert not build_notebooks.edited(tmp_path / "notebooks" / "absent.ipynb")
    legacy = tmp_path / "notebooks" / "98_old.ipynb"
    legacy.write_text('{"cells": []}')  # no hash, and not the committed copy: treated as edited
    assert build_notebooks.edited(legacy)


def test_build_moves_an_edited_notebook_aside_and_check_only_reports_it(
    tmp_path, monkeypatch, capsys
):
    student, full = _demo_repo(tmp_path, monkeypatch)
    pristine = student.read_bytes()
    answers = []
    for k in range(2):  # twice within a second: two different names, nothing overwritten
        student.write_text(student.read_text().replace("write your solution here", f"try {k}"))
        answers.append(student.read_bytes())
        assert build_notebooks.main(["--check"]) == 1
        assert student.read_bytes() == answers[-1], "--check never writes"
        assert "edited by hand: notebooks/99_demo.ipynb" in capsys.readouterr().out
        assert build_notebooks.main([]) == 0
        assert student.read_bytes() == pristine
        assert "had been edited by hand. Nothing is lost" in capsys.readouterr().err
    kept = sorted((tmp_path / "workspace" / "rescued" / "notebooks").glob("99_demo.edited-*.ipynb"))
    assert sorted(p.read_bytes() for p in kept) == sorted(answers)
    assert build_notebooks.main(["--check"]) == 0


def test_setup_cell_clones_quietly_and_falls_back_to_the_default_branch(tmp_path):
    import coursekit

    nb = json.loads(build_notebooks.build(write(tmp_path, SOURCE), student=True))
    setup = "".join(nb["cells"][2]["source"])
    assert '"advice.detachedHead=false"' in setup and '"--quiet"' in setup
    assert f'"{coursekit.REPOSITORY}", "v{coursekit.__version__}"' in setup
    assert "has no tag {TAG}" in setup and "default branch" in setup
    compile(setup, "setup", "exec")
