"""The student notebooks run in the smoke profile with no error but their stubs'.

(The solution notebooks are run by nbval: ``pytest solutions --nbval-lax``.)
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=[p.stem for p in STUDENT_NOTEBOOKS])
def test_student_notebook(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_PROFILE", "smoke")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    errors = [
        (i, out.get("ename"), out.get("evalue"))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    unexpected = [e for e in errors if e[1] != "NotImplementedError"]
    assert not unexpected, (
        f"{path.name}: cells raised errors other than a stub's NotImplementedError: {unexpected}"
    )
