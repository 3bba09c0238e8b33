"""Why does lecture 06's conditional model (guidance s = 1) score below the real-vs-real floor?

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_guidance_floor.py`` (about a minute on one
CPU thread). It trains the lecture's cpu-profile conditional model (an MLP on the 8x8 digits,
x0-prediction, label dropout 0.2, 4000 steps), draws 750 class-balanced samples with DDIM-50
at s = 1 (and s = 0 for contrast), and tests three explanations of FCD < floor:

1. **The floor is noisy** (a small real set: 1501 training digits, halves of 750): the floor
   and the samples' FCD over many random splits, and the floor with other real images (the
   296 held-out test digits in place of a training half).
2. **Class balance**: the samples ask for exactly 75 of each class, a random half of the real
   set does not. The classifier's histogram of the samples against the real one, and the floor
   again with a class-stratified second half (same class counts as the samples).
3. **Memorisation**: the FCD compares with the *training* images. Distances from each sample
   to its nearest training image, against the same for held-out test digits; and FCD against
   the held-out test digits instead of the training set.

The numbers are printed; nothing here is measured by the tests. Lecture 06 quotes them in
section 6.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from coursekit import data, metrics, networks, train, utils
from coursekit.diffusion import ddpm, schedules
from coursekit.metrics import classifiers

N_EVAL = 750  # as the lecture: FCD on 750 samples against halves of the 1501 training digits


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def conditional_model(train_set, steps: int) -> ddpm.Diffusion:
    """The lecture's `cond_model`: same network, schedule, target, label dropout and training."""
    utils.seed_everything(0)
    model = ddpm.Diffusion(networks.ImageMLP((1, 8, 8), hidden=256, depth=3, num_classes=10), schedules.cosine_schedule(1000),
                           data_shape=(1, 8, 8), prediction="x0", num_classes=10,
                           p_uncond=0.2)  # fmt: skip
    batches = data.Batches(train_set.float(), train_set.labels, batch_size=128,
                           generator=seeded(5))  # fmt: skip
    history = train.fit(model, batches, steps=steps, lr=2e-3, ema=0.999, progress=False)
    history.ema.copy_to(model)
    return model.eval()


def fd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between two sets of classifier features (N, 64)."""
    return classifiers.frechet_distance(
        *classifiers.feature_statistics(a), *classifiers.feature_statistics(b)
    )


def stratified(labels: torch.Tensor, pool: torch.Tensor, per_class: int, g) -> torch.Tensor:
    """Indices from ``pool`` with exactly ``per_class`` of each label (random within a class)."""
    out = []
    for c in range(10):
        members = pool[labels[pool] == c]
        out.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(out)


def nn_distance(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (pixels in [0, 1]) from each image of x to its nearest image in ref."""
    return torch.cdist(x.flatten(1).double(), ref.flatten(1).double()).min(dim=1).values  # (N,)


def summary(values) -> str:
    v = np.asarray(values)
    return f"{v.mean():.2f} ± {v.std():.2f} (min {v.min():.2f}, max {v.max():.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="training steps (lecture: 4000)")
    parser.add_argument("--splits", type=int, default=50, help="random real splits per estimate")
    args = parser.parse_args()
    train_set, test_set = data.digits("train"), data.digits("test")
    start = time.perf_counter()
    model = conditional_model(train_set, args.steps)
    x_T = torch.randn(N_EVAL, 1, 8, 8, generator=seeded(6))
    y_eval = torch.arange(N_EVAL) % 10  # the lecture's labels: 75 of each class
    samples = {
        s: model.sample(N_EVAL, y_eval, x_T=x_T, sampler="ddim", steps=50, guidance_scale=s)
        for s in (1.0, 0.0)
    }
    print(f"trained and sampled in {time.perf_counter() - start:.0f} s")
    feats_train = classifiers.classifier_features(train_set.float())  # (1501, 64)
    feats_test = classifiers.classifier_features(test_set.float())  # (296, 64)
    feats = {s: classifiers.classifier_features(x) for s, x in samples.items()}
    print(f"as in the lecture, s = 1: {metrics.fcd(samples[1.0], train_set)}")

    # 1. the floor's spread over random splits, and with other real images
    g, n, N = seeded(0), N_EVAL, len(train_set)
    value, floor = {1.0: [], 0.0: []}, []
    for _ in range(args.splits):
        perm = torch.randperm(N, generator=g)
        a, b = feats_train[perm[:n]], feats_train[perm[n : 2 * n]]
        floor.append(fd(b, a))
        for s in value:
            value[s].append(fd(feats[s], a))
    print(f"\n1. {args.splits} random splits, n = {n}:")
    print(f"   floor FD(B, A)          {summary(floor)}")
    print(f"   s = 1 FD(samples, A)    {summary(value[1.0])}")
    print(f"   s = 0 FD(samples, A)    {summary(value[0.0])}")
    print(f"   splits where s = 1 beats the floor: {np.mean(np.less(value[1.0], floor)):.2f}")
    m = len(test_set)  # 296: floor with the held-out digits as the second half, at n = 296
    floor_test, floor_train, value_m = [], [], []
    for _ in range(args.splits):
        perm = torch.randperm(N, generator=g)
        a, b = feats_train[perm[:m]], feats_train[perm[m : 2 * m]]
        floor_train.append(fd(b, a))
        floor_test.append(fd(feats_test, a))
        value_m.append(fd(feats[1.0][:m], a))
    print(f"   at n = {m}: floor with a training half {summary(floor_train)}")
    print(f"   at n = {m}: floor with the test digits {summary(floor_test)}")
    print(f"   at n = {m}: s = 1 samples             {summary(value_m)}")

    # 2. class balance
    net = classifiers.classifier("digits")
    with torch.no_grad():
        predicted = net(samples[1.0].clamp(0, 1)).argmax(1)
    print("\n2. class counts (the classifier's labels for the samples):")
    print(f"   s = 1 samples (n = {n}): {torch.bincount(predicted, minlength=10).tolist()}")
    print(
        f"   training digits (n = {N}): {torch.bincount(train_set.labels, minlength=10).tolist()}"
    )
    half = torch.bincount(
        train_set.labels[torch.randperm(N, generator=seeded(1))[:n]], minlength=10
    )
    print(f"   one random training half: {half.tolist()}")
    k = 500  # smaller halves, so a stratified B (50 per class) always exists beside a random A
    floor_random, floor_balanced, value_k = [], [], []
    for _ in range(args.splits):
        perm = torch.randperm(N, generator=g)
        a, rest = perm[:k], perm[k:]
        floor_random.append(fd(feats_train[rest[:k]], feats_train[a]))
        floor_balanced.append(fd(feats_train[stratified(train_set.labels, rest, k // 10, g)],
                                 feats_train[a]))  # fmt: skip
        value_k.append(fd(feats[1.0][:k], feats_train[a]))  # the first 500: 50 per class
    print(f"   at n = {k}: floor, random B          {summary(floor_random)}")
    print(f"   at n = {k}: floor, class-balanced B  {summary(floor_balanced)}")
    print(f"   at n = {k}: s = 1 samples            {summary(value_k)}")

    # 3. memorisation: nearest training image, for samples and for held-out digits
    x_train = train_set.float()
    d_test = nn_distance(test_set.float(), x_train)
    print("\n3. distance to the nearest training image (pixels in [0, 1], 64 of them):")
    print(f"   held-out test digits: median {d_test.median():.3f}, 5% {d_test.quantile(0.05):.3f}")
    for s, x in samples.items():
        d = nn_distance(x, x_train)
        print(f"   s = {s:g} samples:       median {d.median():.3f}, 5% {d.quantile(0.05):.3f}, "
              f"closer than every test digit's nearest: {(d < d_test.min()).float().mean():.3f}")  # fmt: skip
    floor_heldout, value_heldout = [], []
    for _ in range(args.splits):  # the held-out digits as the reference A, at n = 296
        b = feats_train[torch.randperm(N, generator=g)[:m]]
        floor_heldout.append(fd(b, feats_test))
        value_heldout.append(fd(feats[1.0][torch.randperm(n, generator=g)[:m]], feats_test))
    print(f"   FD against the test digits, n = {m}: training digits {summary(floor_heldout)}")
    print(f"   FD against the test digits, n = {m}: s = 1 samples   {summary(value_heldout)}")


if __name__ == "__main__":
    main()
