"""Where data files come from: found on this machine, or downloaded with verification.

Where files are searched (first folder holding every file wins; ``<dataset>`` is e.g.
``mnist``, ``fashion-mnist`` or ``cifar10``):

1. ``$COURSEKIT_DATA/<dataset>/``
2. ``data/<dataset>/`` in the repository (next to the ``coursekit`` package)
3. ``/usr/share/datasets/<dataset>/`` (Debian: ``sudo apt install dataset-fashion-mnist``)
4. the download cache ``$COURSEKIT_CACHE/<dataset>/``, default ``~/.cache/coursekit/<dataset>/``

Each file may be gzipped (``name.gz``) or not. A download goes to a temporary file
``.<name>.<pid>.<random>.part`` beside its destination, is checked against its published
sha256, and only then renamed into place (an atomic rename), so the destination is never a
truncated file. A transfer that stops early (fewer bytes than the server's Content-Length,
or a connection error mid-transfer) is an ``IncompleteDownloadError``, told apart from a
``ChecksumMismatchError`` (all bytes arrived but they are not the published file). Temporary
files that a killed run left behind (their process is gone) are removed on the next run.

Every error here is a ``coursekit.errors.CourseError``: its message lists the places searched,
what each download attempt did, and only fixes that are not already in effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from coursekit import errors

# Where to look. Module-level so that tests can point them elsewhere.
REPO_DATA = Path(__file__).resolve().parents[2] / "data"
SYSTEM_DATA = Path("/usr/share/datasets")


class DataNotFoundError(errors.CourseError, FileNotFoundError):
    """The data files are nowhere on this machine (and could not be downloaded)."""


class DownloadError(errors.CourseError, OSError):
    """A download failed; the message says how."""


class IncompleteDownloadError(DownloadError, ConnectionError):
    """The transfer stopped before the whole file arrived (run again to retry)."""


class ChecksumMismatchError(DownloadError, ValueError):
    """The whole file arrived but its sha256 is not the published one."""


# ----------------------------------------------------------------------------- finding files


def cache_dir(dataset: str) -> Path:
    """``$COURSEKIT_CACHE/<dataset>``, default ``~/.cache/coursekit/<dataset>``."""
    root = os.environ.get("COURSEKIT_CACHE")
    return Path(root) / dataset if root else Path.home() / ".cache" / "coursekit" / dataset


def search_dirs(dataset: str) -> list[Path]:
    """The folders searched for ``dataset``, in order (see the module docstring)."""
    dirs = []
    if os.environ.get("COURSEKIT_DATA"):
        dirs.append(Path(os.environ["COURSEKIT_DATA"]) / dataset)
    dirs += [REPO_DATA / dataset, SYSTEM_DATA / dataset, cache_dir(dataset)]
    return dirs


def locate(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name``, whichever exists."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def find(dataset: str, names: tuple[str, ...]) -> list[Path] | None:
    """The paths of all ``names`` in the first searched folder that holds every one."""
    for folder in search_dirs(dataset):
        paths = [locate(folder, name) for name in names]
        if all(paths):
            return paths
    return None


# ----------------------------------------------------------------------------- downloading


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or we cannot tell: leave its file alone
    return True


def remove_stale_parts(folder: Path) -> list[Path]:
    """Delete the ``.*.part`` files of downloads whose process has ended; returns them."""
    removed = []
    for part in folder.glob(".*.part") if folder.is_dir() else ():
        fields = part.name.rsplit(".", 3)  # ['.<name>', '<pid>', '<random>', 'part']
        pid = int(fields[1]) if len(fields) == 4 and fields[1].isdigit() else None
        if pid is None or pid == os.getpid() or not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
                removed.append(part)
    return removed


def download(url: str, dest: Path, sha256: str, *, timeout: float = 60) -> None:
    """Fetch ``url`` to ``dest`` atomically, keeping it only if all of it arrived and its
    sha256 matches; otherwise raise ``IncompleteDownloadError`` or ``ChecksumMismatchError``
    (or ``DownloadError`` when no connection could be made) and leave nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest.parent)
    # a temporary file in the same folder, so that os.replace is an atomic rename
    fd, tmp = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".part"
    )
    try:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except OSError as e:  # URLError, timeouts, refused connections
            raise DownloadError(f"could not connect: {e}") from e
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as f, response:
            length = response.headers.get("Content-Length") if response.headers else None
            expected = int(length) if length and length.isdigit() else None
            try:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                    received += len(chunk)
            except OSError as e:  # ConnectionResetError, timeouts, http.client.IncompleteRead
                of = f" of {expected}" if expected is not None else ""
                raise IncompleteDownloadError(
                    f"incomplete transfer: the connection failed after {received}{of} bytes "
                    f"({type(e).__name__}: {e}). Nothing was kept; run again to retry."
                ) from e
        if expected is not None and received < expected:
            raise IncompleteDownloadError(
                f"incomplete transfer: received {received} of {expected} bytes. Nothing was "
                "kept; run again to retry."
            )
        if digest.hexdigest() != sha256:
            raise ChecksumMismatchError(
                f"sha256 mismatch: expected {sha256}, got {digest.hexdigest()} for all "
                f"{received} bytes. The download was discarded; the mirror serves a different "
                "file (try another mirror, or report it)."
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def fetch(
    dataset: str,
    names: tuple[str, ...],
    *,
    mirrors: list[str],
    sha256: dict[str, str],
    download_ok: bool,
    fixes: list[str],
) -> list[Path]:
    """Local paths of the files ``names`` (each gzipped or not), downloading if allowed.

    Downloads go to ``cache_dir(dataset)`` from the first mirror that works; when none
    does, a ``DataNotFoundError`` lists every place searched, every attempt, and ``fixes``.
    """
    paths = find(dataset, names)
    if paths is not None:
        return paths
    if not download_ok:
        raise DataNotFoundError(missing_message(dataset, names, fixes))
    cache, attempts = cache_dir(dataset), []
    remove_stale_parts(cache)
    for name in names:
        filename = name if name.endswith(".gz") else f"{name}.gz"
        if (cache / filename).is_file():
            continue
        for mirror in mirrors:
            print(f"coursekit: downloading {mirror}{filename} -> {cache}/")
            try:
                download(mirror + filename, cache / filename, sha256[filename])
                break
            except Exception as e:  # noqa: BLE001 - any failure: try the next mirror, report all
                attempts.append(f"{mirror}{filename}: {e}")
        else:
            raise DataNotFoundError(missing_message(dataset, names, fixes, attempts))
    return [locate(cache, name) for name in names]


# ----------------------------------------------------------------------------- messages


def missing_message(
    dataset: str, names: tuple[str, ...], fixes: list[str], attempts: list[str] = ()
) -> str:
    """Where we looked, what each download attempt did, and what to do."""
    places = "\n".join(f"  - {d}/" for d in search_dirs(dataset))
    lines = [
        f"{dataset}: could not find {', '.join(n + '[.gz]' for n in names)} in any of:",
        places,
    ]
    if attempts:
        lines += ["Downloading failed:", *(f"  - {a}" for a in attempts)]
    lines += ["To fix, do one of:", *(f"  - {fix}" for fix in fixes)]
    return "\n".join(lines)


def standard_fixes(
    dataset: str, what: str, *, call: str, download_ok: bool, size: str = ""
) -> list[str]:
    """The fixes that apply *now*: none suggests a setting that is already on.

    ``what`` names the files (``"the four official .gz files"``), ``call`` the loader
    (``"mnist"``), ``size`` the download size for the message (``", 170 MB"``).
    """
    env = os.environ.get("COURSEKIT_DATA")
    if env:
        folder = f"{Path(env) / dataset}/ (COURSEKIT_DATA is set to {env})"
        fixes = [f"put {what} in {folder}"]
    else:
        fixes = [f"put {what} in a folder DIR/{dataset}/ and set COURSEKIT_DATA=DIR"]
    if download_ok:
        fixes.append(
            "check the internet connection (the attempts above say what failed) and run again"
        )
    else:
        fixes.append(f"allow downloading: {call}(..., download=True) (needs internet{size})")
    return fixes
