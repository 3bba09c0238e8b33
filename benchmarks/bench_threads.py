"""How many CPU threads should training use? 1 against 2 threads, on an idle and a busy machine.

Each measurement is a fresh process training lecture 02's VAE (the main model of the cpu
profile: MLPs of width 256, 16 latents, discretized logistic decoder, 8x8 digits, batch
128) for 150 steps after 5 warm-up steps. "Busy" means one other process spinning on a
core the whole time, as a browser tab or a second notebook would. This is what chose the
default of ``COURSEKIT_THREADS`` (half the cores); the README has the numbers.

Run: ``python benchmarks/bench_threads.py [--steps 150] [--repeats 2] [--threads 1 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def train_once(steps: int) -> float:
    """Seconds for ``steps`` training steps in this process (threads set by the caller)."""
    import math

    import torch

    from coursekit import data, likelihoods, networks, train, vae

    x = data.digits("train").float()
    lik = likelihoods.DiscretizedLogistic(17)
    shape = tuple(x.shape[1:])
    model = vae.VAE(
        torch.nn.Sequential(torch.nn.Flatten(), networks.MLP(64, 2 * 16, 256, depth=2)),
        networks.MLP(16, math.prod(lik.param_shape(shape)), 256, depth=2),
        lik,
        latent_dim=16,
        x_shape=shape,
    )
    gen = torch.Generator().manual_seed(0)
    train.fit(model, x, steps=5, progress=False, generator=gen, device="cpu")  # warm-up
    start = time.perf_counter()
    train.fit(model, x, steps=steps, progress=False, generator=gen, device="cpu")
    return time.perf_counter() - start


def measure(threads: int, steps: int, busy: bool) -> float:
    env = {**os.environ, "COURSEKIT_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(threads), "--steps", str(steps)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        import torch

        torch.set_num_threads(args.child)
        print(f"{train_once(args.steps):.3f}")
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.steps} training steps of lecture 02's VAE, {cores} cores, seconds per run")
    print(f"{'threads':>7}  {'machine':<6}  {'median':>7}  runs")
    for busy in (False, True):
        for threads in args.threads:
            runs = [measure(threads, args.steps, busy) for _ in range(args.repeats)]
            label = "busy" if busy else "idle"
            listed = " ".join(f"{r:.1f}" for r in runs)
            print(
                f"{threads:>7}  {label:<6}  {statistics.median(runs):>7.1f}  {listed}", flush=True
            )


if __name__ == "__main__":
    main()
