"""Write the small committed Fashion-MNIST subset used when the full set is absent.

    python tools/make_fashion_subset.py [--source /usr/share/datasets/fashion-mnist]

Takes 200 images per class from the official training set (2000) and 50 per class from
the test set (500), chosen by a seeded NumPy generator, keeps them in their original
order, and writes them under data/fashion_mnist_subset/ with the official IDX file
names (gzip with mtime 0, so the output is byte-for-byte reproducible).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from coursekit.data.idx import read_idx, write_idx
from coursekit.data.images import _IDX_FILES, _SUBSET_SIZES

PER_CLASS = {split: size // 10 for split, size in _SUBSET_SIZES.items()}  # 200 train, 50 test
SEED = 0


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each class, drawn without replacement, in increasing order."""
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parents[1] / "data" / "fashion_mnist_subset"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for split, (images_name, labels_name) in _IDX_FILES.items():
        images = read_idx(args.source / f"{images_name}.gz")  # (N, 28, 28) uint8
        labels = read_idx(args.source / f"{labels_name}.gz")  # (N,) uint8
        keep = balanced_indices(labels, PER_CLASS[split], rng)
        write_idx(args.out / f"{images_name}.gz", images[keep])
        write_idx(args.out / f"{labels_name}.gz", labels[keep])
        print(f"{split}: {len(keep)} images, per class {np.bincount(labels[keep]).tolist()}")
    for path in sorted(args.out.glob("*.gz")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{digest}  {path.name}  ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
