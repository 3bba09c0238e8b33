"""tools/run_course.py: executes lectures and writes build/results.json with the agreed keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import lectures  # noqa: E402
import run_course  # noqa: E402

RECORDS = """from coursekit import report
report.record("bpd", 1.8, target="<= 1.90")
report.record("fcd", 12.5, target="<= 10")
report.record("images_per_s", 300.0)"""


def notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_results_json_has_the_agreed_keys_and_failures_are_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSEKIT_PROFILE", "smoke")
    solutions, build = tmp_path / "solutions", tmp_path / "build"
    solutions.mkdir()
    notebook(solutions / "01_good.ipynb", RECORDS)
    notebook(solutions / "02_broken.ipynb", "raise RuntimeError('boom')")
    build.mkdir()
    (build / "results.json").write_text(json.dumps([{"lecture": "09_other", "name": "x"}]))

    status = run_course.main(["--solutions", str(solutions), "--build", str(build)])

    assert status == 1, "a lecture that fails to execute makes the run fail"
    rows = json.loads((build / "results.json").read_text())
    assert rows[0] == {"lecture": "09_other", "name": "x"}, "records of lectures not run are kept"
    good = [r for r in rows if r["lecture"] == "01_good"]
    assert [list(r) for r in good] == [list(run_course.KEYS)] * 3
    assert [(r["name"], r["value"], r["target"], r["met"]) for r in good] == [
        ("bpd", 1.8, "<= 1.90", True),
        ("fcd", 12.5, "<= 10", False),
        ("images_per_s", 300.0, None, None),
    ]
    assert all(r["profile"] == "smoke" and r["seconds"] > 0 and r["commit"] for r in good)
    assert (build / "01_good.ipynb").exists() and (build / "02_broken.ipynb").exists()
    out = capsys.readouterr().out
    assert "FAILED" in out and "RuntimeError: boom" in out
    assert "bpd" in out and "<= 1.90" in out and "NO" in out


def _lectures(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    for name in ("01_divergences", "02_vae", "06_diffusion", "16_vae_tokens"):
        (solutions / f"{name}.py").write_text("# %%\n")
    for name in ("01_divergences", "02_vae", "06_diffusion"):
        notebook(solutions / f"{name}.ipynb", "print('ran')")
    return solutions


@pytest.mark.parametrize(
    "wanted, expected",
    [
        (["2"], ["02_vae"]),
        (["02"], ["02_vae"]),
        (["002"], ["02_vae"]),
        (["vae"], ["02_vae"]),
        (["VAE"], ["02_vae"]),
        (["02_vae"], ["02_vae"]),
        (["diff"], ["06_diffusion"]),
        (["6", "1"], ["01_divergences", "06_diffusion"]),
        (["1,2"], ["01_divergences", "02_vae"]),
        (["16"], ["16_vae_tokens"]),
        ([], ["01_divergences", "02_vae", "06_diffusion", "16_vae_tokens"]),
        ([" "], ["01_divergences", "02_vae", "06_diffusion", "16_vae_tokens"]),
    ],
)
def test_lectures_by_number_without_leading_zero_or_by_topic(tmp_path, wanted, expected):
    names = lectures.names_in(_lectures(tmp_path), ".py", ".ipynb")
    assert lectures.resolve(wanted, names) == expected


@pytest.mark.parametrize(
    "token, what", [("0", "is not"), ("99", "is not"), ("gan", "is not"), ("d", "matches several")]
)
def test_unknown_lecture_lists_the_lectures_that_exist(tmp_path, token, what):
    names = lectures.names_in(_lectures(tmp_path), ".py", ".ipynb")
    with pytest.raises(lectures.UnknownLectureError) as err:
        lectures.resolve(["2", token], names)
    message = str(err.value)
    assert message.startswith(f"{token!r} {what}")
    assert "The lectures: 01_divergences, 02_vae, 06_diffusion, 16_vae_tokens." in message


@pytest.mark.parametrize(
    "nb, words",
    [
        ("0", "'0' is not a lecture. The lectures: 01_divergences, 02_vae"),
        ("99", "'99' is not a lecture"),
        ("16", "16_vae_tokens.ipynb not built yet: run `make notebooks`"),
    ],
)
def test_run_course_with_a_bad_nb_says_so_in_one_line_and_runs_nothing(tmp_path, nb, words):
    solutions, build = _lectures(tmp_path), tmp_path / "build"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "run_course.py"),
            "--nb",
            nb,
            "--solutions",
            str(solutions),
            "--build",
            str(build),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COURSEKIT_PROFILE": "smoke"},
    )
    assert out.returncode == 2
    assert out.stderr.startswith("UnknownLectureError: ") and words in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1
    assert not build.exists(), "nothing ran"


def test_the_kernel_imports_coursekit_from_this_checkout(tmp_path, monkeypatch):
    # a decoy coursekit first on the inherited PYTHONPATH (as a second worktree's, or an
    # editable install elsewhere, would be): the lecture must still run against ROOT's code
    decoy = tmp_path / "decoy" / "coursekit"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("WHERE = 'decoy'\n")
    monkeypatch.setenv("PYTHONPATH", str(decoy.parent))
    monkeypatch.setenv("COURSEKIT_PROFILE", "smoke")
    solutions, build = tmp_path / "solutions", tmp_path / "build"
    solutions.mkdir()
    notebook(
        solutions / "01_where.ipynb",
        "import coursekit, pathlib\npathlib.Path('where.txt').write_text(coursekit.__file__)",
    )
    assert run_course.main(["--solutions", str(solutions), "--build", str(build)]) == 0
    where = Path((build / "where.txt").read_text())
    assert where.resolve() == (ROOT / "coursekit" / "__init__.py").resolve(), where
