"""How long should the weight average be on a short run? EMA decay against FCD, flow matching.

Lecture 10 trains every family for 10 s, which is 800 to 1700 steps on a 2-core laptop. A
bias-corrected EMA (``train.EMA``) averages about the last 1 / (1 - decay) steps, so at 0.999
it averages the whole run, early weights included. This trains lecture 08's flow-matching
model on the digits (an MLP of width 256 predicting the data, lr 2e-3, batch 128) for the
same number of steps with each decay and prints the FCD over its real-vs-real floor at 1, 10
and 100 Euler steps (750 samples, the same noise for every run). Lecture 10's text quotes
the numbers of its default run.

Run: ``python benchmarks/bench_ema_window.py [--steps 800] [--decays 0.999 0.99]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from coursekit import data, evaluation, networks, train, utils
from coursekit import flow_matching as fm

SHAPE = (1, 8, 8)


def fcd_ratios(steps: int, decay: float, seed: int) -> tuple[dict[int, float], float]:
    """Train one model; its FCD / floor at 1, 10 and 100 Euler steps, and the training time."""
    train_set, test_set = data.digits("train"), data.digits("test")
    torch.manual_seed(seed)
    net = networks.ImageMLP(SHAPE, hidden=256, depth=3)
    model = fm.FlowMatching(net, data_shape=SHAPE, prediction="data")
    batches = data.Batches(
        train_set.float(), None, batch_size=128, generator=torch.Generator().manual_seed(5)
    )
    start = time.perf_counter()
    history = train.fit(model, batches, steps=steps, lr=2e-3, ema=decay, progress=False)
    seconds = time.perf_counter() - start
    history.ema.copy_to(model)
    model.eval()
    x0 = torch.randn(750, *SHAPE, generator=torch.Generator().manual_seed(6))
    ratios = {}
    for k in (1, 10, 100):
        row = evaluation.evaluate(
            model, train_set, test_set, n=750, fcd_real=train_set, per_sample={"x0": x0},
            sample_kwargs=dict(steps=k), generator=torch.Generator().manual_seed(7),
            progress=False,
        )  # fmt: skip
        ratios[k] = row.fcd_ratio
    return ratios, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--decays", type=float, nargs="+", default=[0.999, 0.99])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    utils.profile()  # sets the thread count
    print(f"flow matching on the digits, {args.steps} steps, seed {args.seed}")
    for decay in args.decays:
        ratios, seconds = fcd_ratios(args.steps, decay, args.seed)
        shown = ", ".join(f"{k} steps {v:.2f}x" for k, v in ratios.items())
        print(f"EMA {decay}: FCD / floor {shown}  ({seconds:.0f} s of training)")


if __name__ == "__main__":
    main()
