"""Run the course: execute each lecture's solution notebook and collect its numbers.

For every ``solutions/NN_topic.ipynb`` (or the ones named with ``--nb``) this executes the
notebook at the machine's profile (``--profile`` or ``COURSEKIT_PROFILE`` overrides),
writes the executed notebook with its figures to ``build/NN_topic.ipynb``, and collects
what the notebook recorded with ``coursekit.report.record`` into ``build/results.json``:
a JSON list of objects with the keys lecture, name, value, target, met, profile, device,
seconds (wall time of the lecture) and commit. Records of lectures not run this time are
kept from earlier runs. A table is printed at the end; the exit status is 1 if a lecture
failed to execute (a missed target is reported, not an error).

Usage::

    python tools/run_course.py                # every lecture
    python tools/run_course.py --nb 02        # one lecture (also --nb 2, --nb vae)
    python tools/run_course.py --nb 01 --nb 03 --profile smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import lectures  # noqa: E402

from coursekit import errors, utils  # noqa: E402

KEYS = ("lecture", "name", "value", "target", "met", "profile", "device", "seconds", "commit")


def commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_lecture(path: Path, build: Path, timeout: int) -> tuple[list[dict], float, str | None]:
    """Execute one notebook; return its records, its wall time and an error message or None."""
    lecture = path.stem
    records_file = build / "records" / f"{lecture}.jsonl"
    records_file.parent.mkdir(parents=True, exist_ok=True)
    records_file.unlink(missing_ok=True)
    os.environ["COURSEKIT_LECTURE"] = lecture
    os.environ["COURSEKIT_RESULTS"] = str(records_file)
    # the kernel imports coursekit from this checkout, whose commit the records name, not from
    # wherever an editable install (or an inherited PYTHONPATH) points: a second worktree of
    # the course would otherwise run its notebook against another checkout's code
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *inherited])
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(build)}}
    )
    error = None
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        error = f"{e.ename}: {e.evalue}"
    except Exception as e:  # noqa: BLE001 - a dead kernel or a time-out: report and go on
        error = f"{type(e).__name__}: {e}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, build / path.name)
    records = []
    if records_file.exists():
        for line in records_file.read_text(encoding="utf-8").splitlines():
            records.append({**json.loads(line), "seconds": round(seconds, 1)})
    return records, seconds, error


def print_table(rows: list[dict], times: dict[str, float], errors: dict[str, str]) -> None:
    header = f"{'lecture':<20} {'time':>7}  {'number':<40} {'value':>11}  {'target':<10} met"
    print("\n" + header + "\n" + "-" * len(header))
    for lecture, seconds in times.items():
        mine = [r for r in rows if r["lecture"] == lecture]
        if errors.get(lecture):
            print(f"{lecture:<20} {seconds:>6.0f}s  FAILED: {errors[lecture]}")
        if not mine and not errors.get(lecture):
            print(f"{lecture:<20} {seconds:>6.0f}s  (recorded no numbers)")
        for i, r in enumerate(mine):
            met = {True: "yes", False: "NO", None: "-"}[r["met"]]
            label = f"{lecture:<20} {seconds:>6.0f}s" if i == 0 else " " * 28
            print(f"{label}  {r['name']:<40} {r['value']:>11.4g}  {r['target'] or '-':<10} {met}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--nb", action="append", default=[], help="lecture number or topic (repeatable)"
    )
    parser.add_argument("--profile", choices=utils.PROFILES, help="overrides COURSEKIT_PROFILE")
    parser.add_argument(
        "--build", default=str(ROOT / "build"), help="output folder (default: build/)"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--solutions", default=str(ROOT / "solutions"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["COURSEKIT_PROFILE"] = args.profile
    profile = utils.profile()
    solutions = Path(args.solutions)
    names = lectures.resolve(args.nb, lectures.names_in(solutions, ".py", ".ipynb"))
    if not names:
        raise lectures.UnknownLectureError(f"{solutions} holds no lecture (NN_topic.py)")
    notebooks = [solutions / f"{name}.ipynb" for name in names]
    missing = [p for p in notebooks if not p.exists()]
    if missing:
        raise lectures.UnknownLectureError(
            f"{', '.join(str(p) for p in missing)} not built yet: run `make notebooks` "
            "(it never overwrites a notebook you edited)"
        )
    build = Path(args.build)
    build.mkdir(parents=True, exist_ok=True)
    results_path = build / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.exists() else []
    run_names = {p.stem for p in notebooks}
    rows = [r for r in previous if r.get("lecture") not in run_names]
    sha = commit()
    times, errors = {}, {}
    print(f"profile: {profile}   device: {utils.describe_device()}   commit: {sha}")
    for path in notebooks:
        print(f"running {path.stem} ...", flush=True)
        records, seconds, error = run_lecture(path, build, args.timeout)
        times[path.stem], errors[path.stem] = seconds, error
        for r in records:
            r["commit"] = sha
            rows.append({k: r[k] for k in KEYS})
        status = f"FAILED ({error})" if error else "done"
        print(
            f"  {status} in {seconds:.0f}s, {len(records)} numbers recorded; executed notebook: {build / path.name}"
        )
    tmp = results_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    tmp.replace(results_path)
    print_table(rows, times, errors)
    print(f"results: {results_path}")
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    errors.run_cli(main)
