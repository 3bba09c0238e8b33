"""The image datasets: 8x8 digits, MNIST, Fashion-MNIST, CIFAR-10, each an ``ImageSet``.

Every loader returns an ``ImageSet`` (``imageset.py``): ``images`` uint8 ``(N, C, H, W)``
holding the grey levels ``0 .. levels - 1`` exactly as stored, and ``labels`` int64 ``(N,)``.

MNIST-style files keep their official names (``train-images-idx3-ubyte.gz``, ...), gzipped
or not, and are read by ``idx.read_idx``. Where they are searched, and how they are
downloaded (sha256-checked, atomic, never a truncated file), is ``sources.py``.

Fashion-MNIST also ships as a small committed subset (``data/fashion_mnist_subset/``,
2000 train + 500 test images, 200 / 50 per class, made by ``tools/make_fashion_subset.py``).
It is used when the full set is not found and ``n`` fits in it, with a warning.
"""

from __future__ import annotations

import functools
import importlib.util
import tarfile
import warnings
from pathlib import Path

import numpy as np

from coursekit.data import sources
from coursekit.data.idx import read_idx
from coursekit.data.imageset import ImageSet, from_arrays

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_CLASSES = [str(d) for d in range(10)]
DIGITS_CLASSES = MNIST_CLASSES
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

# The committed Fashion-MNIST subset. Module-level so that tests can point it elsewhere.
_SUBSET_DIR = sources.REPO_DATA / "fashion_mnist_subset"
_SUBSET_SIZES = {"train": 2000, "test": 500}

# The official file names of the MNIST family (without ".gz").
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Download sources: mirrors tried in order, and the sha256 of each (compressed) file.
# The hashes are those published by TensorFlow Datasets (tensorflow_datasets/url_checksums/
# {mnist,fashion_mnist,cifar10}.txt) for the first mirror of each set.
_DOWNLOADS = {
    "mnist": {
        "mirrors": [
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ],
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # noqa: E501
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # noqa: E501
        },
    },
    "fashion-mnist": {
        "mirrors": [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ],
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # noqa: E501
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",  # noqa: E501
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",  # noqa: E501
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",  # noqa: E501
        },
    },
    "cifar10": {
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "sha256": {
            "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",  # noqa: E501
        },
    },
}  # fmt: skip


# ----------------------------------------------------------------------------- datasets


@functools.cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's ``digits.csv.gz`` (rows: 64 pixels, then the label), read without importing
    sklearn, which takes seconds; ``load_digits`` if the file ever moves."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")  # (1797, 65), integer values
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        from sklearn.datasets import load_digits

        pixels, labels = load_digits(return_X_y=True)
    return pixels.astype(np.uint8).reshape(-1, 8, 8), labels.astype(np.int64)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")


def _fetch(dataset: str, names: tuple[str, ...], download: bool, fixes: list[str]) -> list[Path]:
    spec = _DOWNLOADS[dataset]
    return sources.fetch(
        dataset, names, mirrors=spec["mirrors"], sha256=spec["sha256"], download_ok=download,
        fixes=fixes,
    )  # fmt: skip


def digits(split: str = "train") -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 17 grey levels 0..16).

    The split is fixed and needs no RNG: within each class, every 6th image (in the
    order sklearn stores them) is a test image. That gives 1501 train and 296 test
    images, 29 or 30 test images per class.
    """
    _check_split(split)
    images, labels = _sklearn_digits()  # (1797, 8, 8), (1797,)
    rank = np.zeros_like(labels)
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())  # position within its class
    keep = (rank % 6 == 5) if split == "test" else (rank % 6 != 5)
    return from_arrays(images[keep], labels[keep], 17, DIGITS_CLASSES, f"digits/{split}")


def _load_mnist_like(paths: list[Path], classes: list[str], name: str) -> ImageSet:
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{paths[0]} and {paths[1]} do not form an image set: images {images.dtype} "
            f"{images.shape} (want uint8 (N, H, W)), labels {labels.shape} (want (N,))."
        )
    return from_arrays(images, labels, 256, classes, name)


def fashion_mnist(
    split: str = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    subset: bool = False,
    download: bool = True,
) -> ImageSet:
    """Fashion-MNIST (Xiao et al., 2017): 28x28 grey images, 256 levels, 10 clothing classes.

    Args:
        split: "train" (60000 images) or "test" (10000).
        n: if given, ``n`` images drawn at random (``ImageSet.subset(n, seed)``).
        seed: which ``n`` images.
        subset: use the committed subset (2000 train / 500 test, balanced) even if the
            full set is available. It is also used, with a warning, when the full set is
            not found locally and ``n`` fits in it.
        download: fetch the official files (sha256-checked) when nothing local is found.
    """
    _check_split(split)
    names = _IDX_FILES[split]
    paths = None if subset else sources.find("fashion-mnist", names)
    subset_paths = [sources.locate(_SUBSET_DIR, name) for name in names]
    fits = n is not None and n <= _SUBSET_SIZES[split]
    if paths is None and all(subset_paths) and (subset or fits):
        if not subset:
            how = " or ".join(_fashion_fixes(split, download)[:2])
            warnings.warn(
                f"Full Fashion-MNIST not found; using the committed subset "
                f"({_SUBSET_SIZES[split]} {split} images in {_SUBSET_DIR}). For the full set, "
                f"{how}.",
                stacklevel=2,
            )
        name = f"fashion-mnist-subset/{split}"
        data = _load_mnist_like(subset_paths, FASHION_MNIST_CLASSES, name)
    else:
        if subset:
            raise sources.DataNotFoundError(
                f"The committed Fashion-MNIST subset is missing: {_SUBSET_DIR}/. Restore it "
                "with `git checkout -- data/fashion_mnist_subset`, or pass subset=False."
            )
        fixes = _fashion_fixes(split, download)
        fixes.append(
            f"use the committed subset: fashion_mnist(split, n) with n <= {_SUBSET_SIZES[split]}"
        )
        paths = paths or _fetch("fashion-mnist", names, download, fixes)
        data = _load_mnist_like(paths, FASHION_MNIST_CLASSES, f"fashion-mnist/{split}")
    return data if n is None else data.subset(n, seed)


def _fashion_fixes(split: str, download: bool) -> list[str]:
    """What to do when the full Fashion-MNIST is missing: only fixes not already in effect."""
    fixes = sources.standard_fixes(
        "fashion-mnist", "the official .gz files", call="fashion_mnist", download_ok=download
    )
    if not (sources.SYSTEM_DATA / "fashion-mnist").is_dir():  # the package is not installed
        fixes.insert(0, "install the Debian/Ubuntu package: sudo apt install dataset-fashion-mnist")
    return fixes


def mnist(
    split: str = "train", n: int | None = None, *, seed: int = 0, download: bool = True
) -> ImageSet:
    """MNIST (LeCun et al., 1998): 28x28 grey handwritten digits, 256 levels.

    ``split`` is "train" (60000) or "test" (10000); ``n`` and ``seed`` pick a random
    subset. Searched and downloaded as described in the module docstring.
    """
    _check_split(split)
    names = _IDX_FILES[split]
    fixes = sources.standard_fixes(
        "mnist", "the four official .gz files", call="mnist", download_ok=download
    )
    paths = _fetch("mnist", names, download, fixes)
    data = _load_mnist_like(paths, MNIST_CLASSES, f"mnist/{split}")
    return data if n is None else data.subset(n, seed)


def cifar10(
    split: str = "train", n: int | None = None, *, seed: int = 0, download: bool = True
) -> ImageSet:
    """CIFAR-10 (Krizhevsky, 2009): 32x32 colour images ``(N, 3, 32, 32)``, 256 levels.

    Reads the official binary archive ``cifar-10-binary.tar.gz`` (found as above, else
    downloaded, 170 MB, sha256-checked). "train" has 50000 images, "test" 10000.
    """
    _check_split(split)
    fixes = sources.standard_fixes(
        "cifar10", "cifar-10-binary.tar.gz", call="cifar10", download_ok=download, size=", 170 MB"
    )
    (archive,) = _fetch("cifar10", ("cifar-10-binary.tar.gz",), download, fixes)
    if split == "train":
        members = [f"data_batch_{i}.bin" for i in range(1, 6)]
    else:
        members = ["test_batch.bin"]
    records = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in members:
            raw = tar.extractfile(f"cifar-10-batches-bin/{member}").read()
            records.append(np.frombuffer(raw, np.uint8).reshape(-1, 1 + 3 * 32 * 32))
    records = np.concatenate(records)  # (N, 3073): one label byte, then R, G, B planes
    images = records[:, 1:].reshape(-1, 3, 32, 32)  # (N, 3, 32, 32)
    data = from_arrays(images, records[:, 0], 256, CIFAR10_CLASSES, f"cifar10/{split}")
    return data if n is None else data.subset(n, seed)
