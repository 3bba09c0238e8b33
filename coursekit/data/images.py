"""Image datasets as uint8 tensors: 8x8 digits, MNIST, Fashion-MNIST, CIFAR-10.

Every loader returns an ``ImageSet``: ``images`` uint8 ``(N, C, H, W)`` holding the grey
levels ``0 .. levels - 1`` exactly as stored (no rescaling, no dequantization), and
``labels`` int64 ``(N,)``. ``ImageSet.float()`` gives float32 in ``[0, 1]``
(``images / (levels - 1)``); models that need ``[-1, 1]`` or dequantization noise do
it themselves, so the discrete data stay available for bits/dim.

Where the files come from (first hit wins; ``<dataset>`` is ``mnist``, ``fashion-mnist``
or ``cifar10``):

1. ``$COURSEKIT_DATA/<dataset>/``
2. ``data/<dataset>/`` in the repository (next to the ``coursekit`` package)
3. ``/usr/share/datasets/<dataset>/`` (Debian: ``sudo apt install dataset-fashion-mnist``)
4. the download cache ``$COURSEKIT_CACHE/<dataset>/``, default ``~/.cache/coursekit/<dataset>/``

MNIST-style files keep their official names (``train-images-idx3-ubyte.gz``, ...),
gzipped or not. When nothing is found and ``download=True``, the official files are
downloaded into the cache, checked against their published sha256, and only then moved
into place, so an interrupted download never leaves a truncated file behind.

Fashion-MNIST also ships as a small committed subset (``data/fashion_mnist_subset/``,
2000 train + 500 test images, 200 / 50 per class, made by ``tools/make_fashion_subset.py``).
It is used when the full set is not found and ``n`` fits in it, with a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import os
import tarfile
import tempfile
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

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

# Where to look. Module-level so that tests can point them elsewhere.
_REPO_DATA = Path(__file__).resolve().parents[2] / "data"
_SYSTEM_DATA = Path("/usr/share/datasets")
_SUBSET_DIR = _REPO_DATA / "fashion_mnist_subset"
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


# ----------------------------------------------------------------------------- ImageSet


@dataclasses.dataclass
class ImageSet:
    """A labelled set of discrete images.

    Attributes:
        images: uint8 ``(N, C, H, W)``, values in ``0 .. levels - 1``.
        labels: int64 ``(N,)``, values in ``0 .. len(classes) - 1``.
        levels: number of grey levels (17 for sklearn's digits, 256 for 8-bit images).
        classes: the class names, ``classes[label]``.
        name: a short description, e.g. ``"fashion-mnist/train"``.
    """

    images: Tensor
    labels: Tensor
    levels: int
    classes: list[str]
    name: str = ""

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            raise TypeError(
                "ImageSet.images must be a uint8 tensor of shape (N, C, H, W); got "
                f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}."
            )
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
            raise TypeError(
                f"ImageSet.labels must be an int64 tensor of shape ({x.shape[0]},); got "
                f"{type(y).__name__} {getattr(y, 'dtype', '')} {tuple(getattr(y, 'shape', ()))}."
            )
        if not 2 <= self.levels <= 256:
            raise ValueError(f"ImageSet.levels must be in 2..256, got {self.levels}.")
        if len(x) and int(x.max()) >= self.levels:
            raise ValueError(
                f"ImageSet.images has a value {int(x.max())} >= levels={self.levels}; "
                "pass the raw integer levels, not rescaled images."
            )
        if len(y) and self.classes and not 0 <= int(y.min()) <= int(y.max()) < len(self.classes):
            raise ValueError(
                f"ImageSet.labels must lie in 0..{len(self.classes) - 1} "
                f"(one per class name); got {int(y.min())}..{int(y.max())}."
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        N, C, H, W = self.images.shape
        return (
            f"ImageSet({self.name!r}: {N} images of {C}x{H}x{W}, {self.levels} levels, "
            f"{len(self.classes)} classes, device={self.images.device})"
        )

    def float(self) -> Tensor:
        """The images as float32 ``(N, C, H, W)`` in ``[0, 1]``: ``images / (levels - 1)``."""
        return self.images.float() / (self.levels - 1)

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """``n`` examples drawn at random without replacement, reproducibly from ``seed``."""
        if not 0 <= n <= len(self):
            raise ValueError(f"Cannot take n={n} examples from {self!r}: 0 <= n <= {len(self)}.")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.images.device)
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])

    def to(self, device: torch.device | str) -> ImageSet:
        """The same set with both tensors on ``device``."""
        return dataclasses.replace(
            self, images=self.images.to(device), labels=self.labels.to(device)
        )

    def binarize(self) -> ImageSet:
        """Black and white images (``levels=2``): 1 where ``float() >= 0.5``, deterministically."""
        # x / (levels - 1) >= 1/2  <=>  2x >= levels - 1; int16 so that 2x cannot overflow
        white = 2 * self.images.to(torch.int16) >= self.levels - 1
        return dataclasses.replace(
            self, images=white.to(torch.uint8), levels=2, name=f"{self.name} (binarized)"
        )


def _image_set(
    images: np.ndarray, labels: np.ndarray, levels: int, classes: list[str], name: str
) -> ImageSet:
    images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
    if images.dim() == 3:
        images = images[:, None]  # (N, 1, H, W)
    labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return ImageSet(images, labels, levels, list(classes), name)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")


# ----------------------------------------------------------------------------- IDX files

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped (detected by content) or raw.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then
    ``d`` big-endian int32 sizes; the data follow in C order. Returns a native-endian
    array of that shape. Raises ``ValueError`` naming the file when the magic number is
    wrong, or the file is truncated or longer than its header says.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(
                f"{path}: corrupt or truncated gzip file ({e}). Delete it and fetch it again."
            ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type code 08/09/0b/0c/0d/0e> <number of dimensions>)."
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {header}).")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: the header announces shape {shape} ({expected} bytes of data) but the "
            f"file holds {len(raw) - header}: it is truncated or corrupt. Delete it and refetch it."
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped (reproducibly, mtime 0) if ``path`` ends in .gz."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    array = np.asarray(array)
    if array.dtype not in codes:
        raise ValueError(f"IDX cannot store {array.dtype}; use one of {sorted(map(str, codes))}.")
    dims = np.asarray(array.shape, ">u4").tobytes()
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + dims
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    path.write_bytes(payload)


# ----------------------------------------------------------------------------- finding files


def _cache_dir(dataset: str) -> Path:
    root = os.environ.get("COURSEKIT_CACHE")
    return Path(root) / dataset if root else Path.home() / ".cache" / "coursekit" / dataset


def _search_dirs(dataset: str) -> list[Path]:
    """The folders searched for ``dataset``, in order (see the module docstring)."""
    dirs = []
    if os.environ.get("COURSEKIT_DATA"):
        dirs.append(Path(os.environ["COURSEKIT_DATA"]) / dataset)
    dirs += [_REPO_DATA / dataset, _SYSTEM_DATA / dataset, _cache_dir(dataset)]
    return dirs


def _locate(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name``, whichever exists."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _find(dataset: str, names: tuple[str, ...]) -> list[Path] | None:
    """The paths of all ``names`` in the first searched folder that holds every one."""
    for folder in _search_dirs(dataset):
        paths = [_locate(folder, name) for name in names]
        if all(paths):
            return paths
    return None


def _download(url: str, dest: Path, sha256: str) -> None:
    """Fetch ``url`` to ``dest`` atomically, keeping it only if its sha256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # a temporary file in the same folder, so that os.replace is an atomic rename
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"sha256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}. "
                "The download was discarded."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _missing_message(dataset: str, names: tuple[str, ...], fixes: list[str], errors=()) -> str:
    places = "\n".join(f"  - {d}/" for d in _search_dirs(dataset))
    lines = [
        f"{dataset}: could not find {', '.join(n + '[.gz]' for n in names)} in any of:",
        places,
    ]
    if errors:
        lines += ["Downloading failed:", *(f"  - {e}" for e in errors)]
    lines += ["To fix, do one of:", *(f"  - {fix}" for fix in fixes)]
    return "\n".join(lines)


def _fetch(dataset: str, names: tuple[str, ...], download: bool, fixes: list[str]) -> list[Path]:
    """Local paths of the files ``names`` (each gzipped or not), downloading if allowed."""
    paths = _find(dataset, names)
    if paths is not None:
        return paths
    if not download:
        raise FileNotFoundError(_missing_message(dataset, names, fixes))
    cache, spec, errors = _cache_dir(dataset), _DOWNLOADS[dataset], []
    for name in names:
        filename = name if name.endswith(".gz") else f"{name}.gz"
        if (cache / filename).is_file():
            continue
        for mirror in spec["mirrors"]:
            print(f"coursekit: downloading {mirror}{filename} -> {cache}/")
            try:
                _download(mirror + filename, cache / filename, spec["sha256"][filename])
                break
            except Exception as e:  # noqa: BLE001 - any failure: try the next mirror, report all
                errors.append(f"{mirror}{filename}: {e}")
        else:
            raise FileNotFoundError(_missing_message(dataset, names, fixes, errors))
    return [_locate(cache, name) for name in names]


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
    return _image_set(images[keep], labels[keep], 17, DIGITS_CLASSES, f"digits/{split}")


def _load_mnist_like(paths: list[Path], classes: list[str], name: str) -> ImageSet:
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{paths[0]} and {paths[1]} do not form an image set: images {images.dtype} "
            f"{images.shape} (want uint8 (N, H, W)), labels {labels.shape} (want (N,))."
        )
    return _image_set(images, labels, 256, classes, name)


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
    paths = None if subset else _find("fashion-mnist", names)
    subset_paths = [_locate(_SUBSET_DIR, name) for name in names]
    fits = n is not None and n <= _SUBSET_SIZES[split]
    if paths is None and all(subset_paths) and (subset or fits):
        if not subset:
            warnings.warn(
                f"Full Fashion-MNIST not found; using the committed subset "
                f"({_SUBSET_SIZES[split]} {split} images in {_SUBSET_DIR}). Install the full "
                "set with `sudo apt install dataset-fashion-mnist` or set COURSEKIT_DATA.",
                stacklevel=2,
            )
        name = f"fashion-mnist-subset/{split}"
        data = _load_mnist_like(subset_paths, FASHION_MNIST_CLASSES, name)
    else:
        if subset:
            raise FileNotFoundError(
                f"The committed Fashion-MNIST subset is missing: {_SUBSET_DIR}/"
            )
        fixes = [
            "install the Debian/Ubuntu package: sudo apt install dataset-fashion-mnist",
            "put the official .gz files in a folder DIR/fashion-mnist/ and set COURSEKIT_DATA=DIR",
            "allow downloading: fashion_mnist(..., download=True) (needs internet)",
            f"use the committed subset: fashion_mnist(split, n) with n <= {_SUBSET_SIZES[split]}",
        ]
        paths = paths or _fetch("fashion-mnist", names, download, fixes)
        data = _load_mnist_like(paths, FASHION_MNIST_CLASSES, f"fashion-mnist/{split}")
    return data if n is None else data.subset(n, seed)


def mnist(
    split: str = "train", n: int | None = None, *, seed: int = 0, download: bool = True
) -> ImageSet:
    """MNIST (LeCun et al., 1998): 28x28 grey handwritten digits, 256 levels.

    ``split`` is "train" (60000) or "test" (10000); ``n`` and ``seed`` pick a random
    subset. Searched and downloaded as described in the module docstring.
    """
    _check_split(split)
    names = _IDX_FILES[split]
    fixes = [
        "put the four official .gz files in a folder DIR/mnist/ and set COURSEKIT_DATA=DIR",
        "allow downloading: mnist(..., download=True) (needs internet)",
    ]
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
    fixes = [
        "allow downloading: cifar10(..., download=True) (needs internet, 170 MB)",
        "put cifar-10-binary.tar.gz in DIR/cifar10/ and set COURSEKIT_DATA=DIR",
    ]
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
    data = _image_set(images, records[:, 0], 256, CIFAR10_CLASSES, f"cifar10/{split}")
    return data if n is None else data.subset(n, seed)
