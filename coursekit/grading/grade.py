"""``coursekit-grade`` (and ``make grade``): grade a folder of submitted notebooks.

    coursekit-grade SUBMISSIONS [-o GRADES] [-j N] [--shard i/n] [--seed S]
    coursekit-grade --merge GRADES_1 GRADES_2 ... -o GRADES

Writes into GRADES (default ``build/grades``):

- ``gradebook.csv``: one row per student and lecture, one column per exercise (``2.1
  kl_diag_gaussian``), ``total`` and ``max``; the best file counts when a student handed in
  several for the same lecture;
- ``submissions.csv``: the same, one row per submitted file (what ``--merge`` reads);
- ``feedback/<file>.md``: each exercise's points and the check's message, per file;
- ``summary.md``: the mean per exercise and the most common mistakes (also printed);
- ``rows.json``: every row with its messages, what ``--merge`` reads with ``submissions.csv``.

Each file's code runs in the sandbox of :mod:`coursekit.grading.worker`; the checks of
``coursekit.exercises`` run here, in the grader, with ``--seed`` choosing inputs the notebook
never showed. The same files with the same seed give the same rows.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import io
import os
import re
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coursekit.grading import lectures as lectures_mod
from coursekit.grading import notebook, worker

DEFAULT_SEED = 20261


@dataclass
class ExerciseResult:
    number: str
    function: str
    points: float
    max_points: float
    message: str


@dataclass
class Row:
    """The grade of one submitted file."""

    student: str
    lecture: str  # "02", or "?" when none was recognised
    file: str
    results: list[ExerciseResult] = field(default_factory=list)
    status: str = "graded"
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)


def _shown(points: float) -> str:
    return f"{points:g}"


class GraderFault(RuntimeError):
    """The grader itself failed on a submission (not the student's fault)."""


def grade_file(sub: notebook.Submission, sandbox: worker.Sandbox, *, seed: int, known: dict) -> Row:
    """Grade one parsed submission: every exercise of its lecture, each in the sandbox."""
    row = Row(sub.student, sub.lecture or "?", sub.relpath, notes=list(sub.notes))
    if sub.problems:
        row.status = "; ".join(sub.problems)
        if sub.lecture:
            row.results = [
                ExerciseResult(e.number, e.function, 0.0, e.points, row.status)
                for e in known[sub.lecture].exercises
            ]
        return row
    lecture = known[sub.lecture]
    source_name = f"<submission {sub.relpath}>"
    worker.register_source(source_name, sub.source)
    state: dict = {"session": None, "load_failed": None}

    def session() -> worker.Session:
        if state["load_failed"]:
            raise worker.WorkerDied(state["load_failed"])
        current = state["session"]
        if current is None or current.dead:
            try:
                current = sandbox.session()
            except worker.WorkerDied as e:  # before any student code ran: the grader's fault
                raise GraderFault(f"the sandbox did not start: {e}") from None
            try:
                problems = current.load(sub.source)
            except worker.WorkerDied as e:
                state["load_failed"] = f"{e} (while loading your notebook's code)"
                raise worker.WorkerDied(state["load_failed"]) from None
            if state["session"] is None:  # report load problems once
                for p in problems:
                    if p["type"] == "NameError":  # a constant computed from a skipped cell
                        continue
                    row.notes.append(
                        f"loading your code: line {p['line']} raised {p['type']}: {p['message']}"
                    )
            state["session"] = current
        return current

    try:
        for k, ex in enumerate(lecture.exercises):
            if ex.function not in sub.functions:
                similar = _similar(ex.function, sub.functions)
                message = f"your notebook does not define `{ex.function}`{similar}"
                row.results.append(ExerciseResult(ex.number, ex.function, 0.0, ex.points, message))
                continue
            proxy = worker.RemoteFunction(
                session, ex.function, source_name, worker.signature_of(sub.source, ex.function)
            )
            with contextlib.redirect_stdout(io.StringIO()), _not_strict():
                result = ex.check(proxy, seed=seed + k)
            if proxy.fault is not None:
                raise GraderFault(f"{ex.number}: {proxy.died}") from proxy.fault
            passed = bool(result.passed) and proxy.died is None
            message = str(result) if proxy.died is None else f"✗ {result.name}: {proxy.died}"
            points = ex.points if passed else 0.0
            row.results.append(ExerciseResult(ex.number, ex.function, points, ex.points, message))
    finally:
        if state["session"] is not None:
            state["session"].close()
    return row


@contextlib.contextmanager
def _not_strict():
    """A failed check is a grade here, never an exception (COURSEKIT_STRICT is for notebooks)."""
    saved = os.environ.pop("COURSEKIT_STRICT", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["COURSEKIT_STRICT"] = saved


def _similar(name: str, functions: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(functions), n=1, cutoff=0.6)
    return f" (it defines `{close[0]}`: keep the name the notebook gave)" if close else ""


# ------------------------------------------------------------------------------ running


def find_submissions(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*.ipynb") if p.is_file() and ".ipynb_checkpoints" not in p.parts
    )


def in_shard(relpath: str, shard: tuple[int, int]) -> bool:
    """Deterministic, and stable when files are added: a hash of the path, not its rank."""
    i, n = shard
    return zlib.crc32(relpath.encode()) % n == i - 1


_SANDBOX: worker.Sandbox | None = None
_OPTIONS: dict = {}


def _init(limits: worker.Limits, uids: object, options: dict) -> None:
    global _SANDBOX, _OPTIONS
    if uids is not None:  # a process of the pool: one core each
        import torch

        torch.set_num_threads(1)
    uid = uids.get() if uids is not None else 61000
    _SANDBOX = worker.Sandbox(limits, uid=uid)
    _OPTIONS = options


def _grade_path(path: str) -> Row:
    global _SANDBOX
    opts = _OPTIONS
    known = lectures_mod.load(Path(opts["solutions"]))
    sub = notebook.read(Path(path), Path(opts["root"]), id_pattern=opts["id_pattern"], known=known)
    for _attempt in range(2):
        try:
            return grade_file(sub, _SANDBOX, seed=opts["seed"], known=known)
        except GraderFault as e:
            fault = e
            _SANDBOX.close()
            _SANDBOX = worker.Sandbox(_SANDBOX.limits, uid=_SANDBOX.uid)
    row = Row(sub.student, sub.lecture or "?", sub.relpath)
    row.status = f"grader error, not graded: {fault}"
    return row


def grade_folder(
    root: Path,
    *,
    jobs: int = 1,
    shard: tuple[int, int] = (1, 1),
    seed: int = DEFAULT_SEED,
    limits: worker.Limits | None = None,
    id_pattern: str = notebook.DEFAULT_ID_PATTERN,
    solutions: Path = lectures_mod.SOLUTIONS,
    progress: bool = True,
) -> list[Row]:
    """Grade every ``.ipynb`` under ``root`` in this shard; rows in a deterministic order."""
    root = root.resolve()
    limits = limits or worker.Limits()
    paths = [p for p in find_submissions(root) if in_shard(p.relative_to(root).as_posix(), shard)]
    options = {
        "root": str(root),
        "seed": seed,
        "id_pattern": id_pattern,
        "solutions": str(solutions),
    }
    lectures_mod.load(solutions)  # fail early on a bad lecture source
    bar = _progress(len(paths), progress)
    rows: list[Row] = []
    if jobs <= 1:
        _init(limits, None, options)
        try:
            for p in paths:
                rows.append(_grade_path(str(p)))
                bar.update()
        finally:
            _SANDBOX.close()
    else:
        import concurrent.futures
        import multiprocessing

        # spawn, not fork: a fork of a process that has run torch's thread pools can hang
        ctx = multiprocessing.get_context("spawn")
        uids = ctx.Queue()
        for k in range(jobs):
            uids.put(61000 + k)
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_init, initargs=(limits, uids, options)
        ) as pool:
            for row in pool.map(_grade_path, [str(p) for p in paths]):
                rows.append(row)
                bar.update()
    bar.close()
    return sorted(rows, key=lambda r: (r.student, r.lecture, r.file))


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="grading", unit="notebook", disable=not enabled, file=sys.stderr)


# ------------------------------------------------------------------------------ outputs


def columns(known: dict) -> list[str]:
    return [e.column for n in sorted(known) for e in known[n].exercises]


def _csv_row(row: Row, known: dict) -> dict:
    out = {"student": row.student, "lecture": row.lecture, "file": row.file}
    for r in row.results:
        out[f"{r.number} {r.function}"] = _shown(r.points)
    out["total"] = _shown(row.total)
    out["max"] = _shown(known[row.lecture].max_points) if row.lecture in known else "0"
    out["status"] = row.status
    return out


def best_per_student(records: list[dict]) -> list[dict]:
    """One record per (student, lecture): the highest total, then the first file name."""
    best: dict = {}
    for rec in records:
        key = (rec["student"], rec["lecture"])
        if key not in best or (-float(rec["total"]), rec["file"]) < (
            -float(best[key]["total"]),
            best[key]["file"],
        ):
            best[key] = rec
    return [best[k] for k in sorted(best)]


def write_tables(records: list[dict], out: Path, known: dict) -> None:
    fields = ["student", "lecture", "file", *columns(known), "total", "max", "status"]
    records = sorted(records, key=lambda r: (r["student"], r["lecture"], r["file"]))
    for name, rows in (("submissions.csv", records), ("gradebook.csv", best_per_student(records))):
        with open(out / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)


def feedback_name(relpath: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", relpath.removesuffix(".ipynb")) + ".md"


def feedback(row: Row, known: dict, seed: int) -> str:
    lecture = known.get(row.lecture)
    title = f"Lecture {row.lecture}" if lecture else "Unrecognised notebook"
    lines = [f"# {title}: feedback for {row.student}", "", f"File: `{row.file}`", ""]
    max_points = lecture.max_points if lecture else 0
    lines += [f"**Total: {_shown(row.total)} / {_shown(max_points)} points**", ""]
    if row.status != "graded":
        lines += [f"Not graded: {row.status}", ""]
    if row.results:
        lines += ["| Exercise | Function | Points |", "|---|---|---|"]
        lines += [
            f"| {r.number} | `{r.function}` | {_shown(r.points)} / {_shown(r.max_points)} |"
            for r in row.results
        ]
        lines.append("")
        for r in row.results:
            lines += [f"## Exercise {r.number} (`{r.function}`)", "", r.message, ""]
    if row.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in row.notes] + [""]
    lines += [
        "The grader ran your functions in a sandbox on other inputs than the notebook's own "
        f"checks (other sizes and values; grader seed {seed}), and compared them with the "
        "reference in its own process.",
        "",
    ]
    return "\n".join(lines)


def _mistake(message: str) -> str:
    """A message without its case prefix, so the same mistake counts once across sizes."""
    text = message.split(": ", 1)[1] if message.startswith("✗ ") and ": " in message else message
    text = re.sub(r"^with [^:]*: ", "", text)
    return text.split(". It passed with")[0][:160]


def summary(records: list[dict], rows: list[Row] | None, known: dict) -> str:
    lines = ["# Grading summary", ""]
    by_lecture = collections.defaultdict(list)
    for rec in best_per_student(records):
        by_lecture[rec["lecture"]].append(rec)
    lines += ["| Lecture | Students | Mean total | Max |", "|---|---|---|---|"]
    for n in sorted(by_lecture):
        recs = by_lecture[n]
        mean = sum(float(r["total"]) for r in recs) / len(recs)
        top = _shown(known[n].max_points) if n in known else "-"
        lines.append(f"| {n} | {len(recs)} | {mean:.2f} | {top} |")
    lines.append("")
    for n in sorted(k for k in by_lecture if k in known):
        recs = by_lecture[n]
        lines += [f"## Lecture {n}", "", "| Exercise | Mean | Max |", "|---|---|---|"]
        for e in known[n].exercises:
            vals = [float(r.get(e.column) or 0) for r in recs]
            lines.append(f"| {e.column} | {sum(vals) / len(vals):.2f} | {_shown(e.points)} |")
        lines.append("")
        if rows:
            counts = collections.Counter(
                (r.number, _mistake(r.message))
                for row in rows
                if row.lecture == n
                for r in row.results
                if r.points < r.max_points
            )
            if counts:
                lines += ["Most common mistakes:", ""]
                lines += [f"- {num}: {text} ({c}x)" for (num, text), c in counts.most_common(5)]
                lines.append("")
    return "\n".join(lines)


def write_outputs(rows: list[Row], out: Path, known: dict, seed: int) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    for row in rows:
        (out / "feedback" / feedback_name(row.file)).write_text(
            feedback(row, known, seed), encoding="utf-8"
        )
    records = [_csv_row(r, known) for r in rows]
    write_tables(records, out, known)
    text = summary(records, rows, known)
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "rows.json").write_text(
        __import__("json").dumps([asdict(r) for r in rows], ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    return text


def merge(shards: list[Path], out: Path, known: dict) -> str:
    """Combine the outputs of ``--shard`` runs: the gradebook of the whole class."""
    records, rows = [], []
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    import json

    for shard in shards:
        with open(shard / "submissions.csv", newline="", encoding="utf-8") as f:
            records += list(csv.DictReader(f))
        for data in json.loads((shard / "rows.json").read_text(encoding="utf-8")):
            data["results"] = [ExerciseResult(**r) for r in data["results"]]
            rows.append(Row(**data))
        for fb in (shard / "feedback").glob("*.md"):
            (out / "feedback" / fb.name).write_bytes(fb.read_bytes())
    rows.sort(key=lambda r: (r.student, r.lecture, r.file))
    write_tables(records, out, known)
    (out / "rows.json").write_text(
        json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=1), encoding="utf-8"
    )
    text = summary(records, rows, known)
    (out / "summary.md").write_text(text, encoding="utf-8")
    return text


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"--shard takes i/n with 1 <= i <= n, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursekit-grade", description=__doc__.split("\n")[0])
    parser.add_argument(
        "submissions",
        nargs="*",
        type=Path,
        help="folder of .ipynb files (or, with --merge, shard output folders)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("build/grades"),
        help="output folder (default build/grades)",
    )
    parser.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel")
    parser.add_argument(
        "--shard", type=_shard, default=(1, 1), help="grade only slice i of n (i/n)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="merge the shard folders given as arguments into --out"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="chooses the grader's inputs"
    )
    parser.add_argument(
        "--id-pattern",
        default=notebook.DEFAULT_ID_PATTERN,
        help="regex with a group `student`, matched against the path under SUBMISSIONS",
    )
    parser.add_argument(
        "--solutions",
        type=Path,
        default=lectures_mod.SOLUTIONS,
        help="folder of the lecture sources (points and exercises)",
    )
    parser.add_argument(
        "--call-seconds",
        type=float,
        default=worker.Limits.call_seconds,
        help="wall time of one call of a student's function",
    )
    parser.add_argument(
        "--cpu-seconds",
        type=int,
        default=worker.Limits.cpu_seconds,
        help="CPU time of one submission",
    )
    parser.add_argument(
        "--memory-mb", type=int, default=worker.Limits.memory_mb, help="memory of one submission"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    args = parser.parse_args(argv)
    os.environ.pop("COURSEKIT_STRICT", None)  # a failed check is a grade here, not an error
    try:
        known = lectures_mod.load(args.solutions)
    except lectures_mod.LectureSourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.merge:
        text = merge(args.submissions, args.out, known)
    else:
        if len(args.submissions) != 1 or not args.submissions[0].is_dir():
            parser.error("give one folder of submissions (SUBMISSIONS=path/to/folder)")
        limits = worker.Limits(
            cpu_seconds=args.cpu_seconds, call_seconds=args.call_seconds, memory_mb=args.memory_mb
        )
        rows = grade_folder(
            args.submissions[0],
            jobs=args.jobs,
            shard=args.shard,
            seed=args.seed,
            limits=limits,
            id_pattern=args.id_pattern,
            solutions=args.solutions,
            progress=not args.quiet,
        )
        text = write_outputs(rows, args.out, known, args.seed)
    if not args.quiet:
        print(text)
    print(f"wrote {args.out / 'gradebook.csv'} and {args.out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
