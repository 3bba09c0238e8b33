"""Benchmark: grading 100 submissions of Lecture 02 with the pre-forked sandbox.

    python benchmarks/bench_grade.py [--n 100] [--jobs 1 2]

Builds a class of ``n`` notebooks from the grading corpus (complete, partly done and wrong
ones, as a real class hands in), grades it with each ``--jobs``, and prints submissions per
minute, the worker overhead per submission (fork a sandboxed child from the warm server, load
the notebook's code, shut it down) next to what a fresh interpreter importing torch costs, and
the time a class of 300 would take.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coursekit.grading import corpus, grade, notebook, worker  # noqa: E402


def build_class(folder: Path, n: int) -> list[Path]:
    pool = folder / "pool"
    expected = corpus.generate(pool, numbers=["02"])
    kinds = ("complete", "partial", "wrong answers")
    sources = sorted(p for p, e in expected.items() if e["kind"] in kinds)
    paths = []
    for k in range(n):
        target = folder / "class" / f"student{k:03d}" / "02_vae.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pool / sources[k % len(sources)], target)
        paths.append(target)
    return paths


def worker_overhead(sample: Path, repeats: int = 30) -> tuple[float, float]:
    """(seconds per sandboxed child, seconds for the server to start)."""
    sub = notebook.read(sample, sample.parent)
    start = time.perf_counter()
    with worker.Sandbox() as sandbox:
        started = time.perf_counter() - start
        t0 = time.perf_counter()
        for _ in range(repeats):
            session = sandbox.session()
            session.load(sub.source)
            session.close()
        per_child = (time.perf_counter() - t0) / repeats
    return per_child, started


def fresh_interpreter() -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import torch, numpy, coursekit.exercises.vae"],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of submissions")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="-j values to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = build_class(folder, args.n)
        per_child, server = worker_overhead(paths[0])
        fresh = fresh_interpreter()
        print(f"{args.n} submissions of lecture 02 (complete, partial and wrong answers)")
        print(
            f"worker overhead per submission: {per_child * 1000:.0f} ms (fork from the warm "
            f"server + load + stop); the server starts once in {server:.1f} s; a fresh "
            f"interpreter importing torch would cost {fresh:.1f} s per submission"
        )
        for jobs in args.jobs:
            t0 = time.perf_counter()
            rows = grade.grade_folder(folder / "class", jobs=jobs, progress=False)
            seconds = time.perf_counter() - t0
            assert len(rows) == args.n
            rate = args.n / seconds * 60
            print(
                f"-j {jobs}: {seconds:.1f} s, {rate:.0f} submissions/minute "
                f"({seconds / args.n * 1000:.0f} ms each); a class of 300: "
                f"{300 / rate:.1f} minutes"
            )


if __name__ == "__main__":
    main()
