"""Publish a release of the course, so that every *Open in Colab* badge and set-up cell works.

A notebook's badge opens ``<REPOSITORY>/blob/v<version>/notebooks/NN_topic.ipynb`` and its
set-up cell clones tag ``v<version>`` of ``REPOSITORY``, both taken from
``coursekit/__init__.py``. This script refuses (exit status 1, saying what disagrees and what
to do) unless:

- ``REPOSITORY`` is a GitHub address ``https://github.com/<owner>/<name>`` and
  ``__version__`` a version such as ``0.1.0``;
- every generated notebook is fresh, and its badge and set-up cell name that address and tag;
- the working tree has no uncommitted change, and tag ``v<version>``, if it exists already,
  marks the current commit (a published tag never moves: raise the version instead);
- with ``--publish``: a git remote's address is ``REPOSITORY``.

Then ``--publish`` creates the tag at the current commit (when missing), pushes it to that
remote, and checks that the remote's tag marks the current commit.

Usage::

    python tools/release.py --check                   # check only; changes nothing
    python tools/release.py --publish                 # make release
    python tools/release.py --set-repository URL      # make release REPOSITORY=URL
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import build_notebooks  # noqa: E402

from coursekit import errors  # noqa: E402

INIT = ROOT / "coursekit" / "__init__.py"
GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
VERSION = re.compile(r"^\d+\.\d+\.\d+((a|b|rc)\d+)?$")


class ReleaseError(errors.CourseError):
    """A release that would publish badges or set-up cells that do not work."""


def _setting(name: str) -> str:
    """The value of ``name = "..."`` in coursekit/__init__.py, read as text (not imported)."""
    found = re.findall(rf'^{name} = "([^"]*)"$', INIT.read_text(encoding="utf-8"), re.M)
    if len(found) != 1:
        raise ReleaseError(f'{INIT.relative_to(ROOT)} must set {name} = "..." exactly once')
    return found[0]


def git(*args: str, check: bool = True) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise ReleaseError(f"`git {' '.join(args)}` failed: {out.stderr.strip()}")
    return out.stdout.strip() if out.returncode == 0 else ""


def _github_path(url: str) -> str | None:
    """``owner/name`` of a GitHub remote address in any of its spellings."""
    match = re.match(
        r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)(.+?)(?:\.git)?/?$", url
    )
    return match.group(1).lower() if match else None


def remote_for(repository: str) -> str | None:
    """The git remote whose configured address is ``repository`` (``.git`` and ssh forms too)."""
    for remote in git("remote").split():
        url = git("config", "--get", f"remote.{remote}.url", check=False)
        if url == repository or _github_path(url) == _github_path(repository):
            return remote
    return None


def problems(repository: str, version: str) -> list[str]:
    """Everything that disagrees, each as a sentence saying what to do."""
    found = []
    tag = f"v{version}"
    if not GITHUB.match(repository) or repository.endswith(".git"):
        found.append(
            f"REPOSITORY = {repository!r} in coursekit/__init__.py is not a GitHub address "
            "https://github.com/<owner>/<name> (no .git, no trailing /): set it with "
            "`make release REPOSITORY=https://github.com/<owner>/<name>`"
        )
    if not VERSION.match(version):
        found.append(f"__version__ = {version!r} is not a version such as 0.1.0")
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        fresh = build_notebooks.main(["--check"]) == 0
    if not fresh:
        found.append(
            "the generated notebooks do not match their sources and coursekit/__init__.py:\n    "
            + report.getvalue().strip().replace("\n", "\n    ")
            + "\n  run `make notebooks` and commit the notebooks"
        )
    wrong = []
    for path in sorted(
        [*ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"), *ROOT.glob("solutions/[0-9][0-9]_*.ipynb")]
    ):
        cells = [
            "".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        ]
        badge = f"github/{repository.removeprefix('https://github.com/')}/blob/{tag}/notebooks/{path.stem}.ipynb"
        setup = f'REPOSITORY, TAG = "{repository}", "{tag}"'
        if len(cells) < 3 or badge not in cells[1] or setup not in cells[2]:
            wrong.append(str(path.relative_to(ROOT)))
    if wrong:
        found.append(
            f"the badge or set-up cell of {', '.join(wrong)} does not name {repository} and "
            f"{tag}: run `make notebooks` and commit the notebooks"
        )
    dirty = git("status", "--porcelain", "--untracked-files=no")
    if dirty:
        found.append(
            "uncommitted changes (a release is a commit):\n    "
            + dirty.replace("\n", "\n    ")
            + "\n  commit them, then run `make release` again"
        )
    tagged = git("rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    head = git("rev-parse", "HEAD")
    if tagged and tagged != head:
        found.append(
            f"tag {tag} already marks commit {tagged[:9]}, not the current commit {head[:9]}; "
            "a published tag never moves: raise __version__ in coursekit/__init__.py, run "
            "`make notebooks`, commit, and run `make release` again"
        )
    return found


def set_repository(url: str) -> int:
    url = url.rstrip("/").removesuffix(".git")
    if not GITHUB.match(url):
        raise ReleaseError(f"{url!r} is not a GitHub address https://github.com/<owner>/<name>")
    text = INIT.read_text(encoding="utf-8")
    new, count = re.subn(r'^REPOSITORY = "[^"]*"$', f'REPOSITORY = "{url}"', text, flags=re.M)
    if count != 1:
        raise ReleaseError(f'{INIT.relative_to(ROOT)} must set REPOSITORY = "..." exactly once')
    INIT.write_text(new, encoding="utf-8")
    # a fresh interpreter, so the notebooks are built from the new address
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_notebooks.py")], check=True)
    print(
        f"REPOSITORY is now {url}. Commit coursekit/__init__.py and the notebooks, make sure a "
        f"git remote has that address (`git remote add origin {url}`), then run `make release`."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="check only; change nothing")
    action.add_argument("--publish", action="store_true", help="check, tag, push the tag")
    action.add_argument("--set-repository", metavar="URL", help="set coursekit.REPOSITORY")
    args = parser.parse_args(argv)
    if args.set_repository:
        return set_repository(args.set_repository)
    repository, version = _setting("REPOSITORY"), _setting("__version__")
    tag = f"v{version}"
    found = problems(repository, version)
    remote = remote_for(repository) if args.publish else None
    if args.publish and remote is None:
        found.append(
            f"no git remote has the address {repository}, where the badges and set-up cells "
            f"point: `git remote add origin {repository}`, or set REPOSITORY with "
            "`make release REPOSITORY=https://github.com/<owner>/<name>`"
        )
    if found:
        print(f"release {tag} refused:", file=sys.stderr)
        for problem in found:
            print(f"- {problem}", file=sys.stderr)
        return 1
    if not args.publish:
        print(f"release {tag} is consistent: {repository}, its badges and set-up cells agree")
        return 0
    head = git("rev-parse", "HEAD")
    if not git("rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False):
        git("tag", "-a", tag, "-m", f"coursekit {version}")
        print(f"tagged {tag} at {head[:9]}")
    git("push", "--quiet", remote, f"refs/tags/{tag}")
    refs = dict(
        reversed(line.split("\t")) for line in git("ls-remote", "--tags", remote).splitlines()
    )
    marks = refs.get(f"refs/tags/{tag}^{{}}", refs.get(f"refs/tags/{tag}"))  # ^{}: the commit
    if marks != head:
        raise ReleaseError(f"the tag {tag} on {remote} marks {marks}, not {head[:9]}")
    print(
        f"published {tag} ({head[:9]}) to {remote} = {repository}; every notebook's badge "
        "and set-up cell now work. Push your branch too if the default branch should match."
    )
    return 0


if __name__ == "__main__":
    errors.run_cli(main)
