"""Lecture 07's VQ-GAN comparison over seeds: does the patch discriminator lower the FCD of the
test reconstructions at an equal code budget? Each variant trains the lecture's tokenizer (EMA
codebook with restarts, feature loss from the digits classifier) with the same seeds; the
ratio disc / no-disc of the FCDs is printed per seed with its mean and standard error.

    PYTHONPATH=$PWD python benchmarks/bench_vqgan_seeds.py [steps] [seeds] [variant ...]

Measured at e26a510 (2026-12-04, 300 steps, seeds 0-3; ratio with / without the critic):
ns (the lecture's old recipe) 0.965, 0.960, 1.628, 0.809, mean 1.09 +- 0.18 (s.e.);
hinge, fixed weight 1.75 +- 0.40; hinge + adaptive weight, w_adv 0.1: 0.807, 0.883, 0.863,
0.796, mean 0.837 +- 0.021; w_adv 0.5: 0.88 +- 0.07. The lecture took hinge + adaptive
0.1 and tests it on fresh seeds 10-12. Seeds 0-20 at fb17a8d (`300 21 none hinge_adapt`):
0.807, 0.883, 0.863, 0.796, 0.740, 1.063, 0.770, 0.711, 1.630, 0.636, 0.715, 1.022, 1.226,
0.892, 1.459, 0.811, 1.166, 0.819, 0.743, 0.863, 0.730: mean 0.921 +- 0.056, median 0.819,
15 of 21 below 1 (sign test p = 0.078).
"""

import copy
import math
import sys
import time

import torch
import torch.nn.functional as F

from coursekit import data, metrics, train, vq

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SEEDS = range(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
K, DIM, HIDDEN = 64, 8, 32
images_train, images_test = data.digits("train"), data.digits("test")
x_train, x_test = images_train.float(), images_test.float()
feature_net = copy.deepcopy(metrics.classifier("digits").conv[:2])

VARIANTS = {
    "none": None,
    "ns": dict(gan_loss="non_saturating", adaptive=False, w_adv=0.05),
    "hinge": dict(gan_loss="hinge", adaptive=False, w_adv=0.05),
    "hinge_adapt": dict(gan_loss="hinge", adaptive=True, w_adv=0.1),
    "hinge_adapt05": dict(gan_loss="hinge", adaptive=True, w_adv=0.5),
    "ns_adapt": dict(gan_loss="non_saturating", adaptive=True, w_adv=0.1),
}
chosen = sys.argv[3:] or ["none", "ns", "hinge_adapt"]


def run(variant, seed):
    torch.manual_seed(seed)
    model = vq.VQAutoencoder(vq.VectorQuantizer(K, DIM, ema=0.99, restart=True), (1, 8, 8),
                             hidden=HIDDEN)  # fmt: skip
    cfg = VARIANTS[variant]
    disc = None if cfg is None else vq.PatchDiscriminator(1, HIDDEN)
    kw = {} if cfg is None else cfg
    step = vq.VQGANStep(model, features=feature_net, discriminator=disc, w_feat=0.1,
                        adv_start=STEPS // 3, **kw)  # fmt: skip
    t = time.perf_counter()
    h = train.fit(model, x_train, steps=STEPS, batch_size=128, step_fn=step, progress=False,
                  generator=torch.Generator().manual_seed(seed))  # fmt: skip
    secs = time.perf_counter() - t
    model.eval()
    with torch.no_grad():
        recon = model.reconstruct(x_test)
    s = metrics.fcd(recon, x_train)
    aw = h.logs.get("adaptive_weight")
    extra = f" lambda(last) {aw[-1]:.3g}" if aw else ""
    print(f"{variant:14s} seed {seed}: FCD {s.value:.3f} (floor {s.floor:.3f}) "
          f"MSE {F.mse_loss(recon, x_test).item():.5f} {secs:.1f}s{extra}", flush=True)  # fmt: skip
    return s.value


fcd = {v: [run(v, s) for s in SEEDS] for v in chosen}
for v in chosen[1:]:
    r = [a / b for a, b in zip(fcd[v], fcd[chosen[0]])]
    m = sum(r) / len(r)
    se = (
        (sum((x - m) ** 2 for x in r) / (len(r) - 1)) ** 0.5 / math.sqrt(len(r))
        if len(r) > 1
        else float("nan")
    )
    print(
        f"{v} / {chosen[0]}: "
        + ", ".join(f"{x:.3f}" for x in r)
        + f"; mean {m:.3f} +- {se:.3f} (s.e.)"
    )
