"""Expected errors read as one line: in a notebook, and from the tools' command lines."""

import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from coursekit import errors


def _run_cells(tmp_path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    return [[o for o in cell.outputs if o.output_type == "error"] for cell in nb.cells]


def test_a_course_error_in_a_notebook_shows_its_message_without_a_traceback(tmp_path):
    bad_device, full, bare, other = _run_cells(
        tmp_path,
        "import os\nos.environ['COURSEKIT_DEVICE'] = 'tpu'\nfrom coursekit import utils\nutils.device()",
        "%tb",
        "from coursekit import errors\nraise errors.CourseError('do this')",
        "import os\nos.environ['COURSEKIT_DEVICE'] = 'cpu'\nutils.randn((2,), 'cpux')",
    )
    (error,) = bad_device
    assert error.ename == "SettingError"
    assert error.traceback[0].startswith("SettingError: COURSEKIT_DEVICE='tpu' cannot be used")
    assert "%tb" in error.traceback[1] and len(error.traceback) == 2
    assert not any("utils.py" in line for line in error.traceback)
    assert any("utils.py" in line for line in full[0].traceback), "%tb shows the full traceback"
    assert bare[0].traceback[0] == "CourseError: do this"
    # any other exception keeps IPython's full traceback
    assert other[0].ename == "RuntimeError" and len(other[0].traceback) > 2


def test_no_handler_outside_ipython():
    code = "import sys, coursekit; print(coursekit.errors.install_notebook_handler(), 'IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_run_cli_prints_the_message_and_exits_2(capsys):
    def main(argv):
        raise errors.SettingError("NB=99 is not a lecture")

    with pytest.raises(SystemExit) as exit_:
        errors.run_cli(main, [])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "SettingError: NB=99 is not a lecture\n"
    with pytest.raises(SystemExit) as exit_:
        errors.run_cli(lambda argv: 0, [])
    assert exit_.value.code == 0
    with pytest.raises(KeyError):  # a bug is not hidden
        errors.run_cli(lambda argv: {}["x"], [])
