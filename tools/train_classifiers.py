"""Train the evaluation classifiers of ``coursekit.metrics`` and write ``data/classifiers/``.

    python tools/train_classifiers.py                 # both, ~2 minutes of CPU time
    python tools/train_classifiers.py --only digits   # one of them

Writes, for each NAME in (digits, fashion): ``NAME.pt`` (a state_dict of
``metrics.Classifier``), ``NAME.json`` (its architecture, test accuracy and training set-up)
and the table in ``README.md``. Training is seeded and runs on the CPU with a fixed number of
threads, so a rerun on the same machine gives the same weights; other CPUs or library
versions may differ in the last bits and thus by a test image or two.

Data: ``coursekit.data.digits`` (its fixed split: 1501 train / 296 test images) and
``coursekit.data.fashion_mnist`` (the official 60000 / 10000 split), both as floats in [0, 1].
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from coursekit import data, metrics

OUT_DIR = Path(__file__).resolve().parent.parent / "data" / "classifiers"

# architecture and schedule per data set; widths keep each file well under 1 MB
CONFIGS = {
    "digits": dict(
        architecture=dict(image_size=8, widths=[32, 64], feature_dim=64, num_classes=10),
        epochs=40,
        batch_size=64,
        lr=2e-3,
    ),
    "fashion": dict(
        architecture=dict(image_size=28, widths=[16, 32, 64], feature_dim=128, num_classes=10),
        epochs=5,
        batch_size=128,
        lr=2e-3,
    ),
}


def load(name: str, split: str) -> data.ImageSet:
    return data.digits(split) if name == "digits" else data.fashion_mnist(split)


@torch.no_grad()
def accuracy(net: metrics.Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    preds = torch.cat([net(b).argmax(dim=1) for b in x.split(1000)])
    return float((preds == y).float().mean())


def train(name: str, seed: int) -> dict:
    cfg = CONFIGS[name]
    train_set, test_set = load(name, "train"), load(name, "test")
    x, y = train_set.float(), train_set.labels  # (N, 1, S, S) in [0, 1], (N,)
    x_test, y_test = test_set.float(), test_set.labels

    torch.manual_seed(seed)  # the initial weights
    g = torch.Generator().manual_seed(seed)  # the batch order
    net = metrics.Classifier(**cfg["architecture"])
    steps_per_epoch = len(x) // cfg["batch_size"]
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps_per_epoch
    )
    start = time.time()
    for epoch in range(cfg["epochs"]):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * cfg["batch_size"] : (i + 1) * cfg["batch_size"]]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        print(
            f"{name} epoch {epoch + 1}/{cfg['epochs']}: loss {loss.item():.3f}, "
            f"test accuracy {accuracy(net, x_test, y_test):.4f} ({time.time() - start:.0f} s)"
        )
    seconds = time.time() - start

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), OUT_DIR / f"{name}.pt")
    info = dict(
        name=name,
        architecture=cfg["architecture"],
        test_accuracy=round(accuracy(net, x_test, y_test), 6),
        train_accuracy=round(accuracy(net, x, y), 6),
        num_test=len(x_test),
        num_train=len(x),
        input="float images in [0, 1], shape (N, 1, S, S)",
        features="penultimate linear layer, before its ReLU",
        training=dict(
            seed=seed,
            epochs=cfg["epochs"],
            batch_size=cfg["batch_size"],
            optimizer="Adam + OneCycleLR",
            max_lr=cfg["lr"],
            threads=torch.get_num_threads(),
            seconds=round(seconds, 1),
            torch=torch.__version__,
        ),
    )
    (OUT_DIR / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


README = """# Evaluation classifiers

Small CNNs (`coursekit.metrics.Classifier`) that `coursekit.metrics` uses for the Frechet
classifier distance (`fcd`), precision/recall/density/coverage on their features
(`classifier_features`) and the accuracy of class-conditional samples
(`classifier_accuracy`). Input: float images in [0, 1], shape (N, 1, 8, 8) for `digits`,
(N, 1, 28, 28) for `fashion`. Features: the penultimate linear layer, before its ReLU.

| name | data | architecture | feature dim | test accuracy | train accuracy | size |
|------|------|--------------|-------------|---------------|----------------|------|
{rows}

Each `NAME.pt` is a `state_dict`; `NAME.json` holds the architecture (the keyword arguments
of `Classifier`), the accuracies and the training set-up (seed, epochs, optimizer, threads,
seconds, torch version).

## Regenerate

From the repository root:

    python tools/train_classifiers.py                # both, about 2 minutes of CPU time
    python tools/train_classifiers.py --only digits  # one

One thread by default (`--threads N` to change; the JSON records it): digits take about
10 s, Fashion-MNIST about 20 s of CPU per epoch, 5 epochs (the `seconds` in the JSON are
wall time and grow on a loaded machine). Training is seeded, so a rerun on the same machine
with the same thread count reproduces the weights bit for bit; another CPU or torch version
may differ in the last bits, and hence by an image or two in test accuracy.
`tests/test_metrics.py` checks that the committed digits classifier still reaches its
recorded test accuracy.

Data: `coursekit.data.digits` (sklearn's 8x8 digits with the course's fixed split,
every 6th image of each class is a test image) and `coursekit.data.fashion_mnist`
(official split; Fashion-MNIST is MIT-licensed, Xiao et al. 2017).
"""


def write_readme() -> None:
    rows = []
    for name in CONFIGS:
        path = OUT_DIR / f"{name}.json"
        if not path.exists():
            continue
        info = json.loads(path.read_text())
        arch = info["architecture"]
        size_kb = (OUT_DIR / f"{name}.pt").stat().st_size / 1024
        desc = f"conv widths {arch['widths']}, fc {arch['feature_dim']}"
        dataset = "8x8 digits" if name == "digits" else "Fashion-MNIST"
        rows.append(
            f"| `{name}` | {dataset} ({info['num_train']} / {info['num_test']}) | {desc} | "
            f"{arch['feature_dim']} | {info['test_accuracy']:.4f} | {info['train_accuracy']:.4f} | "
            f"{size_kb:.0f} KB |"
        )
    (OUT_DIR / "README.md").write_text(README.format(rows="\n".join(rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CONFIGS), help="train one classifier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (fixed for repeatability)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in [args.only] if args.only else list(CONFIGS):
        info = train(name, args.seed)
        print(
            f"{name}: test accuracy {info['test_accuracy']:.4f} in {info['training']['seconds']} s"
        )
    write_readme()


if __name__ == "__main__":
    main()
