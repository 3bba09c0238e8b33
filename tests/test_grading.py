"""The grader on its corpus: every row present, the right points, no false pass, no hang, hostile
notebooks contained, messages identical to the in-notebook checks', shards + merge = one run.

The corpus (coursekit/grading/corpus.py: right, partial, the exercise tests' wrong answers and
every hostile case, >= 30 notebooks per lecture) is generated and graded once per module, with
-j 2 and short limits so that the endless loops cost seconds.
"""

import ast
import contextlib
import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from coursekit.grading import corpus, grade, lectures, notebook, wire, worker

LIMITS = worker.Limits(call_seconds=5.0, cpu_seconds=20, memory_mb=768)
SEED = grade.DEFAULT_SEED


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("grading")
    # outside /tmp, which the sandbox replaces by its own: a file of the repository's build/
    sentinel = Path(__file__).resolve().parents[1] / "build" / f"grading-sentinel-{os.getpid()}.txt"
    sentinel.parent.mkdir(exist_ok=True)
    sentinel.write_text("the grader's file\n")
    folder = base / "submissions"
    expected = corpus.generate(folder, sentinel=sentinel)
    (folder / "expected.json").unlink()  # not a submission
    out = base / "grades"
    start = time.monotonic()
    rows = grade.grade_folder(folder, jobs=2, limits=LIMITS, seed=SEED, progress=False)
    seconds = time.monotonic() - start
    known = lectures.load()
    grade.write_outputs(rows, out, known, SEED)
    yield {
        "base": base,
        "folder": folder,
        "expected": expected,
        "rows": {r.file: r for r in rows},
        "out": out,
        "seconds": seconds,
        "sentinel": sentinel,
        "known": known,
    }
    sentinel.unlink()


def _points(row):
    return {r.function: r.points for r in row.results}


def test_the_corpus_has_at_least_30_notebooks_per_lecture(graded):
    per_lecture = {}
    for path in graded["expected"]:
        per_lecture[path[1:3]] = per_lecture.get(path[1:3], 0) + 1
    assert set(per_lecture) == set(graded["known"]) and "04" in per_lecture
    assert min(per_lecture.values()) >= 30, per_lecture


def test_every_submission_gets_a_row_with_the_expected_points(graded):
    rows, expected = graded["rows"], graded["expected"]
    assert sorted(rows) == sorted(expected)
    wrong = []
    for path, want in expected.items():
        row = rows[path]
        assert row.student == want["student"], path
        assert row.lecture == want["lecture"], (path, row.lecture, row.status)
        got = _points(row)
        if got != {k: float(v) for k, v in want["points"].items()}:
            wrong.append((path, got, want["points"]))
    assert not wrong, wrong


def test_no_false_passes_and_full_marks_for_correct_code(graded):
    passes = zero = 0
    for path, want in graded["expected"].items():
        for r in graded["rows"][path].results:
            if want["points"][r.function] == 0:
                zero += 1
                assert r.points == 0, (path, r.function, r.message)
            else:
                passes += 1
                assert r.points == r.max_points, (path, r.function, r.message)
    assert zero > 300 and passes > 300  # the corpus exercises both sides


def test_the_corpus_grades_fast_and_nothing_hangs(graded):
    # 2 endless loops per lecture (plus one that q_sample's loop breaks in diffusion_loss) at
    # 2 s each; everything else is milliseconds, but ~40 notebooks per lecture each start a
    # worker. 20 s per lecture is generous for a shared machine (a hang costs minutes).
    budget = 20 * len(graded["known"])
    assert graded["seconds"] < budget, (graded["seconds"], budget)


def _message(row, function):
    return next(r.message for r in row.results if r.function == function)


def test_hostile_cases_get_zero_with_the_reason(graded):
    rows = graded["rows"]
    reasons = {
        "infinite-loop": "did not finish `",
        "os-exit": "exited (status 0",
        "sys-exit": "your code raised SystemExit",
        "segfault": "segmentation fault",
        "memory-bomb": "MemoryError",
        "fork-bomb": "BlockingIOError",
        "gigabytes-of-output": "File too large",
        "write-outside": ("Read-only file system", "Permission denied"),  # not "No such file"
        "monkeypatch": ("is None", "got NoneType"),
        "read-stack": ("expected a torch.Tensor", "got "),
        "failing-import": "NameError: name 'this_package_does_not_exist'",
        "missing": "does not define",
        "renamed": "_v2`: keep the name",
    }
    for number, lecture in graded["known"].items():
        first = lecture.exercises[0].function
        for kind, words in reasons.items():
            row = rows[f"L{number}hostile-{kind}_{lecture.stem}.ipynb"]
            message = _message(row, first)
            words = (words,) if isinstance(words, str) else words
            assert any(w in message for w in words), (number, kind, message)
    assert graded["sentinel"].read_text() == "the grader's file\n"


def test_a_lying_tensor_subclass_arrives_as_a_plain_tensor(graded):
    row = graded["rows"]["L02hostile-lying-tensor_02_vae.ipynb"]
    assert "does not match the reference" in _message(row, "kl_diag_gaussian")


def test_file_level_problems_get_a_row_and_a_reason(graded):
    rows = graded["rows"]
    for number, lecture in graded["known"].items():
        empty = rows[f"L{number}hostile-empty_{lecture.stem}.ipynb"]
        assert empty.lecture == "?" and "empty" in empty.status
        broken = rows[f"L{number}hostile-notjson_{lecture.stem}.ipynb"]
        assert "not valid JSON" in broken.status
        syntax = rows[f"L{number}hostile-syntax_{lecture.stem}.ipynb"]
        assert any("syntax error" in n for n in syntax.notes)
        other = rows[f"L{number}hostile-otherlecture_{lecture.stem}.ipynb"]
        assert other.lecture != number  # the content wins over the metadata and the name
        assert any("content is lecture" in n for n in other.notes)


def test_messages_are_those_of_the_check_run_in_the_notebook(graded):
    """The sandbox is invisible in the feedback: each wrong answer gets exactly the message the
    check gives when it calls the same function in-process, with the same seed."""
    known, compared = graded["known"], 0
    for path, want in graded["expected"].items():
        if want["kind"] != "wrong answers":
            continue
        sub = notebook.read(graded["folder"] / path, graded["folder"], known=known)
        name = f"<submission {sub.relpath}>"
        worker.register_source(name, sub.source)
        namespace = {"__name__": "__submission__"}
        for stmt in ast.parse(sub.source).body:  # as the worker loads it: statement by statement
            with contextlib.suppress(Exception):
                exec(compile(ast.Module([stmt], []), name, "exec"), namespace)
        row = graded["rows"][path]
        for k, ex in enumerate(known[sub.lecture].exercises):
            if ex.function not in want["words"]:
                continue
            messages = []
            for rng_seed in (1, 2):  # an answer that draws random numbers is compared by points
                torch.manual_seed(rng_seed)
                with contextlib.redirect_stdout(io.StringIO()), grade._not_strict():
                    messages.append(str(ex.check(namespace[ex.function], seed=SEED + k)))
            if messages[0] == messages[1]:
                assert _message(row, ex.function) == messages[0], (path, ex.function)
                compared += 1
    assert compared > 100


def test_grading_again_gives_the_same_rows_and_hostile_files_change_no_other_row(graded, tmp_path):
    """A second run over a few of the files, good ones after hostile ones, alone: the same rows."""
    names = sorted(graded["rows"])
    picked = [
        n
        for n in names
        if n.startswith(("L02", "L06"))
        and any(k in n for k in ("ok", "monkeypatch", "fork-bomb", "segfault", "wrong03"))
    ]
    folder = tmp_path / "again"
    for n in picked:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graded["folder"] / n, folder / n)
    rows = grade.grade_folder(folder, jobs=1, limits=LIMITS, seed=SEED, progress=False)
    assert len(rows) == len(picked)
    for row in rows:
        assert row == graded["rows"][row.file], row.file


def test_shards_partition_the_class_and_merge_into_the_full_gradebook(graded, tmp_path):
    rows, known, out = list(graded["rows"].values()), graded["known"], graded["out"]
    shard_dirs = []
    for i in (1, 2, 3):
        part = [r for r in rows if grade.in_shard(r.file, (i, 3))]
        assert part and len(part) < len(rows)
        shard_dirs.append(tmp_path / f"shard{i}")
        grade.write_outputs(sorted(part, key=lambda r: r.file), shard_dirs[-1], known, SEED)
    assert sum(1 for r in rows for i in (1, 2, 3) if grade.in_shard(r.file, (i, 3))) == len(rows)
    merged = tmp_path / "merged"
    assert grade.main(["--merge", *map(str, shard_dirs), "-o", str(merged), "--quiet"]) == 0
    for name in ("gradebook.csv", "submissions.csv"):
        assert (merged / name).read_text() == (out / name).read_text()
    assert sorted(p.name for p in (merged / "feedback").iterdir()) == sorted(
        p.name for p in (out / "feedback").iterdir()
    )


def test_a_shard_run_grades_exactly_its_slice(graded, tmp_path):
    folder = tmp_path / "few"
    picked = [n for n in sorted(graded["rows"]) if n.startswith("L02") and "hostile" not in n][:8]
    for n in picked:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graded["folder"] / n, folder / n)
    rows = grade.grade_folder(folder, shard=(2, 2), limits=LIMITS, seed=SEED, progress=False)
    assert sorted(r.file for r in rows) == [n for n in picked if grade.in_shard(n, (2, 2))]
    for row in rows:
        assert row == graded["rows"][row.file]


def test_gradebook_has_one_row_per_student_and_lecture_with_points_from_the_source(graded):
    with open(graded["out"] / "gradebook.csv", newline="") as f:
        table = list(csv.DictReader(f))
    keys = [(r["student"], r["lecture"]) for r in table]
    assert len(keys) == len(set(keys))
    assert len(table) == len({(r.student, r.lecture) for r in graded["rows"].values()})
    full = next(r for r in table if r["student"] == "L02ok1")
    assert full["2.3 iwae_from_log_weights"] == "2"  # `### BEGIN SOLUTION points=2`
    assert full["total"] == full["max"] == "4"
    coder = next(r for r in table if r["student"] == "L03ok1")
    assert coder["3.4 arithmetic_encode"] == "3" and coder["max"] == "6"
    partial = next(r for r in table if r["student"] == "L02partial1")
    assert partial["total"] == "1" and partial["2.2 reparameterize"] == "0"
    summary = (graded["out"] / "summary.md").read_text()
    assert "Most common mistakes" in summary and "| 02 |" in summary


def test_feedback_per_file_with_each_exercise(graded):
    out = graded["out"] / "feedback"
    for path in graded["expected"]:
        text = (out / grade.feedback_name(path)).read_text()
        assert path in text
    text = (out / grade.feedback_name("L02wrong00_02_vae.ipynb")).read_text()
    assert "## Exercise 2.1 (`kl_diag_gaussian`)" in text and "it looks like you" in text


def test_a_student_with_two_files_for_a_lecture_counts_the_best(graded, tmp_path):
    folder = tmp_path / "two"
    (folder / "carol").mkdir(parents=True)
    shutil.copy(graded["folder"] / "L02partial1_02_vae.ipynb", folder / "carol" / "a_02.ipynb")
    shutil.copy(graded["folder"] / "L02ok1" / "02_vae.ipynb", folder / "carol" / "b_02.ipynb")
    out = tmp_path / "out"
    assert grade.main([str(folder), "-o", str(out), "--quiet", "--call-seconds", "5"]) == 0
    with open(out / "gradebook.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["student"], row["file"], row["total"]) == ("carol", "carol/b_02.ipynb", "4")
    assert len((out / "submissions.csv").read_text().strip().splitlines()) == 3


# --------------------------------------------------------------------------- pieces


def test_wire_rebuilds_plain_tensors_and_refuses_code():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    value = {"t": torch.arange(6.0).view(2, 3).as_subclass(Liar), "n": [1, None, (2.5, "x")]}
    back = wire.loads(wire.dumps(value))
    assert type(back["t"]) is torch.Tensor and torch.equal(back["t"], torch.arange(6.0).view(2, 3))
    assert back["n"] == [1, None, (2.5, "x")]
    module = wire.dumps(torch.nn.Linear(2, 2), trusted=True)
    with pytest.raises(wire.WireError, match="may not send modules"):
        wire.loads(module)  # a worker's message cannot name a class to build
    with pytest.raises(wire.WireError):
        wire.loads(b"CKW1" + b"\x00" * 30)
    unknown = wire.loads(wire.dumps(object()))
    assert isinstance(unknown, wire.Unsupported) and type(unknown).__name__ == "object"


def test_the_sandbox_stops_what_it_claims():
    target = Path(__file__).resolve().parents[1] / "build" / f"grading-target-{os.getpid()}.txt"
    target.parent.mkdir(exist_ok=True)
    source = f"""
import os, socket
def write():
    open({str(target)!r}, "w").write("x")
def connect():
    socket.create_connection(("127.0.0.1", 9))
def kill_parent():
    os.kill(os.getppid(), 9)
def big_reply():
    return bytearray(10)
def huge():
    import torch
    return torch.zeros(40 * 2**20 // 4)
"""
    with worker.Sandbox(LIMITS) as sandbox:
        session = sandbox.session()
        assert session.load(source) == []
        message = session.call("write", [], {})["exc"]["message"]
        assert "Read-only" in message or "Permission" in message, message
        assert session.call("connect", [], {})["exc"]["type"] in ("PermissionError", "OSError")
        reply = session.call("kill_parent", [], {})
        assert reply["exc"]["type"] == "PermissionError"  # another uid: the server survives
        with pytest.raises(worker.WorkerDied, match="refuses"):
            session.call("huge", [], {})  # 40 MB over the 32 MB reply cap
        session = sandbox.session()  # the server still forks new children
        session.load(source)
        assert isinstance(session.call("big_reply", [], {})["out"], wire.Unsupported)
        session.close()
    assert not target.exists()


def test_points_markers_and_lecture_metadata_from_build_notebooks(tmp_path):
    student = json.loads(Path(lectures.SOLUTIONS.parent / "notebooks" / "02_vae.ipynb").read_text())
    assert student["metadata"]["coursekit"]["lecture"] == "02"
    text = "def f(x):\n    ### BEGIN SOLUTION points=3\n    return x\n    ### END SOLUTION\n"
    assert lectures.exercises_in_source(text, Path("x.py")) == [("f", 3.0)]
    with pytest.raises(lectures.LectureSourceError, match="points=N"):
        lectures.exercises_in_source(text.replace("points=3", "points=three"), Path("x.py"))


def test_student_ids_from_folders_or_file_names():
    assert notebook.student_id("alice/02_vae.ipynb") == "alice"
    assert notebook.student_id("bob_02_vae.ipynb") == "bob"
    assert notebook.student_id("x/y.ipynb", r"^[^/]+/(?P<student>[^.]+)") == "y"
