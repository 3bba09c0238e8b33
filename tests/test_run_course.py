"""tools/run_course.py: executes lectures and writes build/results.json with the agreed keys."""

import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
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
