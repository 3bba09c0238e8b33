"""The Colab set-up cell, run as Colab would run it, with the tag present and missing.

The simulation: a stand-in ``google.colab`` module; the repository address redirected (git's
``url.<local>.insteadOf``, in a temporary HOME) to a local bare clone of the working tree;
a fresh virtual environment that sees the course's own torch (as Colab has its own) but in
which coursekit is not installed; pip without the network (``PIP_NO_INDEX``, no dependencies,
no build isolation). The only change to the cell's code is its folder, ``/content/dgm-course``,
moved into the test's temporary folder. After the cell, the first code cell of lecture 01
(its imports) and a small computation run, with coursekit imported from the clone.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import coursekit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

TAG = f"v{coursekit.__version__}"
REPO_DIR = '"/content/dgm-course"'
SMOKE = """
import coursekit
from coursekit import data
x = data.toy_2d("moons", 64, seed=0)
print("smoke:", coursekit.__file__, tuple(x.shape))
"""

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def published(tmp_path: Path, tagged: bool) -> Path:
    """A bare repository holding the working tree's package as one commit (tagged or not)."""
    src = tmp_path / "src"
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
    for rel in listed:
        if rel.startswith("coursekit/") or rel in ("pyproject.toml", "README.md", "LICENSE"):
            if (ROOT / rel).is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, src / rel)
    ident = ["-c", "user.name=test", "-c", "user.email=test@example.org"]
    git("init", "-q", "-b", "main", cwd=src)
    git("add", "-A", cwd=src)
    git(*ident, "commit", "-q", "-m", "release", cwd=src)
    if tagged:
        git(*ident, "tag", "-a", TAG, "-m", TAG, cwd=src)
    git("clone", "-q", "--bare", str(src), str(tmp_path / "published.git"))
    return tmp_path / "published.git"


def colab(tmp_path: Path, remote: Path) -> subprocess.CompletedProcess:
    """Run the set-up cell and the smoke cells in a fresh Python as Colab would."""
    home, fake, env_dir = tmp_path / "home", tmp_path / "fake", tmp_path / "venv"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f'[url "{remote.as_uri()}"]\n\tinsteadOf = {coursekit.REPOSITORY}\n'
    )
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab."""\n')
    # a Python with the course's torch (and pip, setuptools) but no coursekit: the venv's
    # site-packages added as a plain path, so its .pth files (the editable coursekit) are not run
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "course_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    nb = json.loads(build_notebooks.build(ROOT / "solutions" / "01_divergences.py", student=True))
    setup = "".join(nb["cells"][2]["source"])
    first = "".join(nb["cells"][3]["source"])
    assert setup.count(REPO_DIR) == 1
    setup = setup.replace(REPO_DIR, repr(str(tmp_path / "content" / "dgm-course")))
    script = tmp_path / "kernel.py"
    script.write_text(
        "import google.colab  # Colab's kernel has it loaded\n"
        f"exec(compile({setup!r}, 'set-up cell', 'exec'))\n"
        f"exec(compile({first!r}, 'first cell', 'exec'))\n"
        f"exec(compile({SMOKE!r}, 'smoke cell', 'exec'))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": str(fake),
        "PYTHONNOUSERSITE": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "MPLBACKEND": "Agg",
        "COURSEKIT_PROFILE": "smoke",
        "OMP_NUM_THREADS": "1",
        # no network: pip installs the clone alone, with the build tools already here
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
    }
    return subprocess.run(
        [str(python), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _commit(remote: Path) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(remote), "log", "-1", "--format=%h"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize("tagged", [True, False], ids=["tag present", "tag missing"])
def test_setup_cell_installs_coursekit_on_colab(tmp_path, tagged):
    remote = published(tmp_path, tagged)
    run = colab(tmp_path, remote)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    clone = tmp_path / "content" / "dgm-course"
    assert (
        f"coursekit {coursekit.__version__} from {coursekit.REPOSITORY} (commit {_commit(remote)}, "
        in run.stdout
    )
    assert "profile: smoke" in lines
    assert f"smoke: {clone / 'coursekit' / '__init__.py'} (64, 2)" in lines
    note = f"Note: {coursekit.REPOSITORY} has no tag {TAG}"
    if tagged:
        assert run.stderr == "", "nothing that looks like an error when all is well"
        assert not any(note in line for line in lines)
    else:
        assert note in run.stdout and "default branch" in run.stdout
        assert "fatal" not in run.stderr.lower()


def test_setup_cell_says_what_to_do_when_the_repository_cannot_be_reached(tmp_path):
    run = colab(tmp_path, tmp_path / "nowhere.git")
    assert run.returncode != 0
    assert (
        f"RuntimeError: Could not download the course code from {coursekit.REPOSITORY}"
        in run.stderr
    )
    assert "connected to the internet" in run.stderr and "no tag" not in run.stdout
