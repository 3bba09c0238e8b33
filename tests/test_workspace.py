"""No `make` target overwrites or deletes a notebook a person edited.

On a throw-away copy of the repository: answers typed into the student's own copy
(workspace/02_vae.ipynb), into a generated student notebook (notebooks/02_vae.ipynb, where
`make lab` used to open them) and into a generated full notebook survive every target that
writes files: workspace (also with a new lecture and FRESH=), notebooks, test (up to its
freshness check, which stops it), check, course (one lecture, smoke profile) and clean.
"""

import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not (VENV / "bin" / "python").exists(),
    reason="needs make and the course's .venv",
)


def copy_of_repository(dest: Path) -> Path:
    """The working tree's tracked and new files (what a fresh clone plus your edits has)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink() and not rel.startswith("workspace/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def make(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "COURSEKIT_PROFILE": "smoke",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    return subprocess.run(
        ["make", "-s", "-o", f"{VENV}/.installed", f"VENV={VENV}", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def answer(path: Path, words: str) -> bytes:
    """Do what a student in Jupyter does: answer the first exercise, run it, save."""
    nb = nbformat.read(path, as_version=4)
    cell = next(
        c for c in nb.cells if "raise NotImplementedError" in c.source or "### " in c.source
    )
    cell.source += f"\n# {words}"
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{words}\n")]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.2"}
    nbformat.write(nb, path)
    return path.read_bytes()


def test_every_make_target_keeps_the_edits(tmp_path):
    repo = copy_of_repository(tmp_path / "repo")
    run = make(repo, "workspace")
    assert run.returncode == 0, run.stderr
    students = sorted(p.name for p in (repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in (repo / "workspace").glob("*.ipynb")) == students
    mine = answer(repo / "workspace" / "02_vae.ipynb", "my answer in my workspace")
    generated = answer(repo / "notebooks" / "02_vae.ipynb", "my answer in notebooks/")
    full = answer(repo / "solutions" / "01_divergences.ipynb", "instructor's note")
    edited = {generated, full}

    def all_files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in repo.rglob("*.ipynb")}

    # `make test` and `make check` stop at the freshness check and name the edited files
    for target in ("test", "check"):
        before = all_files()
        run = make(repo, target)
        assert run.returncode != 0 and all_files() == before, target
        out = run.stdout + run.stderr
        assert "edited by hand: notebooks/02_vae.ipynb" in out
        assert "edited by hand: solutions/01_divergences.ipynb" in out
        assert target == "check" or "never overwritten" in out, "make test recommends a safe fix"

    # `make notebooks` moves the edited generated notebooks aside before regenerating them
    run = make(repo, "notebooks")
    assert run.returncode == 0, run.stderr
    rescued = {p.read_bytes(): p for p in (repo / "workspace" / "rescued").rglob("*.ipynb")}
    assert set(rescued) == edited
    assert "02_vae.edited-" in rescued[generated].name and "had been edited by hand" in run.stderr
    assert make(repo, "check").returncode == 0, "the generated notebooks are pristine again"

    # a new lecture reaches the workspace without touching the others; FRESH= keeps a backup
    (repo / "workspace" / "06_diffusion.ipynb").unlink()
    run = make(repo, "workspace")
    assert "copied 06_diffusion.ipynb" in run.stdout and "02_vae" not in run.stdout
    assert (repo / "workspace" / "02_vae.ipynb").read_bytes() == mine
    run = make(repo, "workspace", "FRESH=2")
    assert run.returncode == 0, run.stderr
    (backup,) = (repo / "workspace").glob("02_vae.backup-*.ipynb")
    assert backup.read_bytes() == mine
    fresh = repo / "workspace" / "02_vae.ipynb"
    assert fresh.read_bytes() == (repo / "notebooks" / "02_vae.ipynb").read_bytes()
    mine = answer(fresh, "my second try")

    # make course (one lecture, smoke profile; it regenerates the notebooks first) and clean
    kept = {p: p.read_bytes() for p in (repo / "workspace").rglob("*.ipynb")}
    run = make(repo, "course", "NB=1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "01_divergences" in run.stdout and (repo / "build" / "results.json").exists()
    run = make(repo, "course", "NB=0")
    assert (
        run.returncode != 0 and "'0' is not a lecture. The lectures: 01_divergences" in run.stderr
    )
    assert make(repo, "clean").returncode == 0
    assert {p: p.read_bytes() for p in (repo / "workspace").rglob("*.ipynb")} == kept
    assert set(kept.values()) >= {mine, backup.read_bytes(), *edited}
