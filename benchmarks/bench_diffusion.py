"""Diffusion training throughput and sampling cost, for the networks of lecture 06.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_diffusion.py [--net mlp|unet] [--device cuda]``.
Prints training images/s (bf16 autocast and channels-last on CUDA, as the gpu profile uses)
and milliseconds per sample for DDPM-1000 and DDIM-50. Nothing here is measured by the tests.
"""

from __future__ import annotations

import argparse
import time

import torch

from coursekit import networks, utils
from coursekit.diffusion import ddpm, schedules


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=("mlp", "unet"), default="mlp")
    parser.add_argument("--size", type=int, default=None, help="image size (8 or 28)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    dev = torch.device(args.device) if args.device else utils.device()
    size = args.size or (8 if args.net == "mlp" else 28)
    shape = (1, size, size)
    if args.net == "mlp":
        net = networks.ImageMLP(shape, hidden=256, depth=3)
    else:
        net = networks.UNet(in_ch=1, base=64, mults=None, image_size=size)
    net = net.to(dev, memory_format=torch.channels_last) if args.net == "unet" else net.to(dev)
    model = ddpm.Diffusion(net, schedules.cosine_schedule(1000), data_shape=shape).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, *shape, device=dev)

    def step() -> None:
        with utils.autocast(dev):
            loss = model.loss(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up
        step()
    sync(dev)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(dev)
    train_s = time.perf_counter() - start
    print(
        f"{args.net} {size}x{size} on {utils.describe_device(dev)}: "
        f"{args.steps * args.batch / train_s:.0f} training images/s (batch {args.batch})"
    )

    model.eval()
    for sampler, steps in (("ddim", 50), ("ddpm", 1000)):
        sync(dev)
        start = time.perf_counter()
        model.sample(args.samples, sampler=sampler, steps=steps)
        sync(dev)
        ms = (time.perf_counter() - start) / args.samples * 1e3
        print(f"  {sampler.upper()}-{steps}: {ms:.3f} ms per sample (batch of {args.samples})")


if __name__ == "__main__":
    main()
