"""tools/release.py on throw-away git repositories: it publishes only what agrees."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = "https://github.com/some-school/dgm"
LECTURE = "# %% [markdown]\n# # Lecture 99: Demo\n\n# %%\nprint('hello')\n"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def sh(repo: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo.parent),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd}: {out.stdout}{out.stderr}")
    return out


def release(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return sh(repo, sys.executable, "tools/release.py", *args, check=False)


@pytest.fixture
def repo(tmp_path):
    """A course with one lecture, built and committed, REPOSITORY = ADDRESS, whose remote
    `origin` has that address (redirected by git to a local bare repository)."""
    repo = tmp_path / "course"
    for rel in (
        "coursekit/__init__.py",
        "coursekit/errors.py",
        "tools/build_notebooks.py",
        "tools/release.py",
        "LICENSE",
    ):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    (repo / "solutions").mkdir()
    (repo / "solutions" / "99_demo.py").write_text(LECTURE)
    init = repo / "coursekit" / "__init__.py"
    init.write_text(init.read_text().replace('REPOSITORY = "', 'REPOSITORY = "https://x/', 1))
    sh(repo, "git", "init", "-q", "-b", "main")
    assert release(repo, "--set-repository", ADDRESS + ".git").returncode == 0
    assert f'REPOSITORY = "{ADDRESS}"' in init.read_text()
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "course")
    sh(tmp_path, "git", "init", "-q", "--bare", "remote.git")
    sh(repo, "git", "remote", "add", "origin", ADDRESS)
    sh(repo, "git", "config", f"url.{(tmp_path / 'remote.git').as_uri()}.insteadOf", ADDRESS)
    return repo


def remote_tags(repo: Path) -> str:
    """The tags of the bare repository that stands for GitHub."""
    return sh(repo, "git", "ls-remote", "--tags", str(repo.parent / "remote.git")).stdout


def test_publish_tags_the_commit_and_pushes_the_tag(repo):
    head = sh(repo, "git", "rev-parse", "HEAD").stdout.strip()
    notebook = (repo / "notebooks" / "99_demo.ipynb").read_text()
    assert "github/some-school/dgm/blob/v" in notebook and f'\\"{ADDRESS}\\", \\"v' in notebook
    assert release(repo, "--check").returncode == 0 and remote_tags(repo) == ""
    run = release(repo, "--publish")
    assert run.returncode == 0, run.stderr
    version = sh(
        repo, sys.executable, "-c", "import coursekit; print(coursekit.__version__)"
    ).stdout.strip()
    assert f"{head}\trefs/tags/v{version}^{{}}" in remote_tags(repo)
    assert f"published v{version}" in run.stdout
    assert release(repo, "--publish").returncode == 0, "publishing again is harmless"


def _bump_version_only(repo):
    init = repo / "coursekit" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9', 1))
    sh(repo, "git", "commit", "-qam", "version bumped, notebooks not rebuilt")


def _uncommitted(repo):
    (repo / "solutions" / "99_demo.py").write_text(LECTURE + "print('more')\n")
    sh(repo, sys.executable, "tools/build_notebooks.py")


def _tag_elsewhere(repo):
    sh(
        repo,
        "git",
        "tag",
        "-a",
        sh(
            repo, sys.executable, "-c", "import coursekit; print('v' + coursekit.__version__)"
        ).stdout.strip(),
        "-m",
        "old",
    )
    (repo / "LICENSE").write_text("changed\n")
    sh(repo, "git", "commit", "-qam", "after the tag")


def _bad_address(repo):
    init = repo / "coursekit" / "__init__.py"
    init.write_text(init.read_text().replace(ADDRESS, "github.com/some-school/dgm"))
    sh(repo, sys.executable, "tools/build_notebooks.py")
    sh(repo, "git", "commit", "-qam", "address without https")


def _no_remote_for_it(repo):
    sh(repo, "git", "remote", "set-url", "origin", "https://github.com/someone-else/dgm")


def _edited_notebook(repo):
    nb = repo / "notebooks" / "99_demo.ipynb"
    nb.write_text(nb.read_text().replace("blob/v", "blob/main-v"))
    sh(repo, "git", "commit", "-qam", "badge edited by hand")


@pytest.mark.parametrize(
    "spoil, words",
    [
        (_bump_version_only, "do not match their sources"),
        (_uncommitted, "uncommitted changes"),
        (_tag_elsewhere, "a published tag never moves"),
        (_bad_address, "is not a GitHub address"),
        (_no_remote_for_it, f"no git remote has the address {ADDRESS}"),
        (_edited_notebook, "badge or set-up cell of notebooks/99_demo.ipynb does not name"),
    ],
)
def test_publish_is_refused_when_anything_disagrees(repo, spoil, words):
    spoil(repo)
    tags_before = sh(repo, "git", "tag").stdout
    run = release(repo, "--publish")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "refused" in run.stderr and words in run.stderr
    assert sh(repo, "git", "tag").stdout == tags_before, "no tag made"
    assert remote_tags(repo) == "", "nothing pushed"
