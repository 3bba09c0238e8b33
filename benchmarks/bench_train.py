"""Steps per second of ``train.fit`` against a bare PyTorch loop, for a small MLP.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_train.py [--steps 2000] [--device cpu]``.
The difference between the two numbers is the trainer's overhead per step (batching,
logging, the NaN check, EMA); the model's own cost is the same in both.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from coursekit import data, train, utils


class Regressor(nn.Module):
    """An MLP 2 -> 256 -> 256 -> 2 regressing a fixed random rotation of its input."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, 2)
        )
        self.register_buffer("target", torch.tensor([[0.6, -0.8], [0.8, 0.6]]))

    def loss(self, x, y=None):
        return {"loss": ((self.net(x) - x @ self.target) ** 2).mean()}


def bare_loop(
    model: nn.Module, x: torch.Tensor, steps: int, batch_size: int, dev: torch.device
) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = data.Batches(
        x, batch_size=batch_size, device=dev, generator=torch.Generator().manual_seed(0)
    )
    start = time.perf_counter()
    for _ in range(steps):
        xb, _ = next(batches)
        opt.zero_grad(set_to_none=True)
        model.loss(xb)["loss"].backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    dev = torch.device(args.device) if args.device else utils.device()
    x = data.toy_2d("moons", 8192)
    print(f"device: {utils.describe_device(dev)}, batch {args.batch_size}, {args.steps} steps")

    train.fit(Regressor(), x, steps=50, progress=False, device=dev)  # warm-up (imports, allocator)
    torch.manual_seed(0)
    bare = bare_loop(Regressor().to(dev), x, args.steps, args.batch_size, dev)
    print(f"bare loop:                      {bare:8.0f} steps/s")
    for label, kwargs in [
        ("fit()", {}),
        ("fit(ema=0.999, clip_grad=1)", {"ema": 0.999, "clip_grad": 1.0}),
        ("fit(log_every=50)", {"log_every": 50}),
    ]:
        torch.manual_seed(0)
        hist = train.fit(
            Regressor(),
            x,
            steps=args.steps,
            batch_size=args.batch_size,
            progress=False,
            device=dev,
            **kwargs,
        )
        rate = args.steps / hist.seconds
        print(f"{label:31s} {rate:8.0f} steps/s ({100 * (bare / rate - 1):+.0f}% time vs bare)")


if __name__ == "__main__":
    main()
