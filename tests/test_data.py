"""Tests of coursekit.data: toy sets, ImageSet, IDX files, finding/downloading, Batches.

No test touches the network: downloads are served from file:// URLs in a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit import data, errors
from coursekit.data import images as images_mod
from coursekit.data import sources

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)


# ----------------------------------------------------------------------------- toy sets


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toy_shape_range_determinism(name):
    state = torch.get_rng_state()
    x = data.toy_2d(name, 5000, seed=3)
    assert torch.equal(torch.get_rng_state(), state), "toy_2d must not touch the global RNG"
    assert x.shape == (5000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # "roughly [-4, 4]": nearly all the mass inside, and not squashed into a tiny blob
    assert (x.abs() <= 4.5).all(dim=1).float().mean() > 0.995
    assert 0.7 < x.std(dim=0).min() and x.std(dim=0).max() < 2.6
    assert torch.equal(x, data.toy_2d(name, 5000, seed=3))
    assert not torch.equal(x, data.toy_2d(name, 5000, seed=4))


def test_toy_unknown_name_lists_names():
    with pytest.raises(ValueError, match="checkerboard.*rings"):
        data.toy_2d("circles", 10)


def test_toy_checkerboard_only_dark_squares():
    # oracle: a 4x4 board of 2x2 squares; the 8 dark ones have an even sum of indices
    x = data.toy_2d("checkerboard", 4000)
    assert x.min() >= -4 and x.max() <= 4
    i, j = torch.floor(x[:, 0] / 2) + 2, torch.floor(x[:, 1] / 2) + 2  # square indices 0..3
    assert ((i + j) % 2 == 0).all()
    counts = torch.bincount((4 * i + j).long(), minlength=16).reshape(4, 4)
    dark = (torch.arange(4)[:, None] + torch.arange(4)) % 2 == 0  # (4, 4)
    assert (counts[dark] > 400).all()  # all 8 dark squares filled (500 expected each)


def test_toy_rings_and_gaussians_modes():
    r = data.toy_2d("rings", 4000).norm(dim=1)
    dist = (r[:, None] - torch.tensor([0.75, 1.5, 2.25, 3.0])).abs()  # (n, 4)
    assert dist.min(dim=1).values.max() < 0.5  # noise std 0.08: every point near a ring
    counts = torch.bincount(dist.argmin(dim=1), minlength=4)
    assert (counts > 800).all()  # the four rings equally likely (1000 expected each)

    x = data.toy_2d("8gaussians", 4000)
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 4 / math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    d = torch.cdist(x, centers)  # (n, 8)
    assert (torch.bincount(d.argmin(1), minlength=8) > 400).all()
    # each coordinate's offset from its mode is N(0, (0.5/sqrt 2)^2): std 0.354
    offsets = x - centers[d.argmin(1)]
    assert torch.allclose(offsets.std(0), torch.full((2,), 0.5 / math.sqrt(2)), atol=0.03)


# ----------------------------------------------------------------------------- ImageSet


def _tiny_set(n=10, levels=4) -> data.ImageSet:
    imgs = (torch.arange(n * 4) % levels).to(torch.uint8).reshape(n, 1, 2, 2)
    # one class per example, so labels identify examples
    return data.ImageSet(imgs, torch.arange(n), levels, [f"c{i}" for i in range(n)], "tiny")


def test_imageset_validation_errors():
    good = _tiny_set()
    with pytest.raises(TypeError, match="uint8"):
        data.ImageSet(good.images.float(), good.labels, 4, good.classes)
    with pytest.raises(TypeError, match="uint8"):
        data.ImageSet(good.images[:, 0], good.labels, 4, good.classes)  # (N, H, W)
    with pytest.raises(TypeError, match="int64"):
        data.ImageSet(good.images, good.labels.int(), 4, good.classes)
    with pytest.raises(TypeError, match=r"shape \(10,\)"):
        data.ImageSet(good.images, good.labels[:5], 4, good.classes)
    with pytest.raises(ValueError, match="levels=3"):
        data.ImageSet(good.images, good.labels, 3, good.classes)
    with pytest.raises(ValueError, match="labels must lie"):
        data.ImageSet(good.images, good.labels, 4, good.classes[:5])


def test_imageset_float_subset_to_binarize():
    s = _tiny_set(levels=4)
    f = s.float()
    assert f.dtype == torch.float32 and f.shape == s.images.shape
    assert torch.equal(f * 3, s.images.float())  # images / (levels - 1)
    assert f.min() == 0 and f.max() == 1
    assert len(s) == 10 and "tiny" in repr(s) and "tensor" not in repr(s)

    a, b, c = s.subset(6, seed=1), s.subset(6, seed=1), s.subset(6, seed=2)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    assert len(a) == 6 and len(set(a.labels.tolist())) == 6  # without replacement
    assert torch.equal(a.images, s.images[a.labels])  # images follow their labels
    with pytest.raises(ValueError, match="n=11"):
        s.subset(11)
    assert s.to("cpu").images.device.type == "cpu"

    bw = s.binarize()
    assert bw.levels == 2 and torch.equal(bw.images, (s.float() >= 0.5).to(torch.uint8))


def test_digits():
    train, test = data.digits("train"), data.digits("test")
    assert (len(train), len(test)) == (1501, 296)
    for s in (train, test):
        assert s.images.shape[1:] == (1, 8, 8) and s.images.dtype == torch.uint8
        assert s.levels == 17 and int(s.images.max()) == 16 and s.classes[3] == "3"
    assert torch.bincount(test.labels, minlength=10).min() >= 29  # stratified: 29-30 per class
    assert torch.equal(data.digits("test").images, test.images)  # fixed split
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.digits("valid")


def test_digits_match_sklearn_loader():
    # oracle: sklearn's own loader (digits() reads its csv directly to skip the slow import)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels, labels = images_mod._sklearn_digits()
    assert np.array_equal(pixels, bunch.images) and np.array_equal(labels, bunch.target)
    both = torch.cat([data.digits("train").labels, data.digits("test").labels])
    assert torch.equal(torch.bincount(both), torch.from_numpy(np.bincount(bunch.target)))


# ----------------------------------------------------------------------------- IDX files


def test_read_idx_against_handwritten_bytes(tmp_path):
    # oracle: the IDX spec, written out by hand: magic 00 00 0C 02, dims 2 and 3 (big-endian)
    raw = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    raw += b"".join(v.to_bytes(4, "big", signed=True) for v in [1, -2, 3, 4, 5, -600000])
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    for name in ("a.idx", "a.idx.gz"):
        arr = data.read_idx(tmp_path / name)
        assert arr.dtype == np.int32 and arr.shape == (2, 3)
        assert arr.tolist() == [[1, -2, 3], [4, 5, -600000]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, dtype, suffix):
    arr = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
    data.write_idx(tmp_path / f"x{suffix}", arr)
    back = data.read_idx(tmp_path / f"x{suffix}")
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_read_idx_rejects_corrupt_files(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data.write_idx(tmp_path / "ok", arr)
    raw = (tmp_path / "ok").read_bytes()
    cases = {
        "bad_magic": (b"\x01\x02" + raw[2:], "not an IDX file"),
        "bad_type": (raw[:2] + b"\x07" + raw[3:], "not an IDX file"),
        "empty": (b"", "not an IDX file"),
        "short_header": (raw[:9], "truncated IDX header"),
        "truncated": (raw[:-5], "truncated or corrupt"),
        "too_long": (raw + b"\x00", "truncated or corrupt"),
        "truncated_gz": (gzip.compress(raw)[:-10], "corrupt or truncated gzip"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message) as err:
            data.read_idx(tmp_path / name)
        assert name in str(err.value), "the message must name the file"


# ----------------------------------------------------------------------------- finding files


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Every searched folder moved into tmp_path; returns them in search order."""
    dirs = {k: tmp_path / k for k in ("env", "repo", "system", "cache")}
    monkeypatch.setenv("COURSEKIT_DATA", str(dirs["env"]))
    monkeypatch.setenv("COURSEKIT_CACHE", str(dirs["cache"]))
    monkeypatch.setattr(sources, "REPO_DATA", dirs["repo"])
    monkeypatch.setattr(sources, "SYSTEM_DATA", dirs["system"])
    return dirs


def _write_fake_mnist(folder: Path, value: int, n: int = 5, gz: bool = True) -> None:
    """A fake train and test split of n images, every pixel equal to ``value``."""
    folder.mkdir(parents=True, exist_ok=True)
    for images_name, labels_name in images_mod._IDX_FILES.values():
        suffix = ".gz" if gz else ""
        data.write_idx(folder / (images_name + suffix), np.full((n, 28, 28), value, np.uint8))
        data.write_idx(folder / (labels_name + suffix), np.arange(n, dtype=np.uint8) % 10)


def test_search_order(places):
    # one fake set per place, told apart by their pixel value; remove them from the front
    for value, key in enumerate(["env", "repo", "system", "cache"], start=1):
        _write_fake_mnist(places[key] / "fashion-mnist", value, gz=key != "repo")
    assert sources.search_dirs("mnist") == [places[k] / "mnist" for k in places]
    for value, key in enumerate(["env", "repo", "system", "cache"], start=1):
        s = data.fashion_mnist("test", download=False)
        assert int(s.images[0, 0, 0, 0]) == value, f"expected the set in {key}/"
        assert s.images.shape == (5, 1, 28, 28) and s.levels == 256
        assert s.classes[9] == "Ankle boot"
        for f in (places[key] / "fashion-mnist").iterdir():
            f.unlink()


def test_missing_everywhere_lists_places_and_fixes(places, monkeypatch):
    monkeypatch.setattr(images_mod, "_SUBSET_DIR", places["repo"] / "no_subset")
    with pytest.raises(FileNotFoundError) as err:
        data.fashion_mnist("train", download=False)
    message = str(err.value)
    for key in places:
        assert str(places[key] / "fashion-mnist") in message
    assert "sudo apt install dataset-fashion-mnist" in message
    assert "COURSEKIT_DATA" in message and "download=True" in message
    with pytest.raises(FileNotFoundError, match=str(places["env"] / "mnist")):
        data.mnist("test", download=False)
    with pytest.raises(FileNotFoundError, match="cifar-10-binary.tar.gz"):
        data.cifar10("test", download=False)


def test_uses_committed_subset_only_as_announced_fallback(places):
    with pytest.warns(UserWarning, match="committed subset"):
        s = data.fashion_mnist("train", n=100, download=False)
    assert len(s) == 100 and s.name.startswith("fashion-mnist-subset")
    # too big for the subset and nothing else: a clear error, not a silent subset
    with pytest.raises(FileNotFoundError, match="n <= 500"):
        data.fashion_mnist("test", n=501, download=False)
    # once the full set is present, it wins over the subset
    _write_fake_mnist(places["env"] / "fashion-mnist", value=7)
    assert data.fashion_mnist("test", n=3, download=False).name == "fashion-mnist/test"


def test_committed_subset_contents():
    total = sum(f.stat().st_size for f in images_mod._SUBSET_DIR.glob("*.gz"))
    assert total < 2e6
    assert (images_mod._SUBSET_DIR / "LICENSE").read_text().count("Zalando SE") == 1
    for split, size in images_mod._SUBSET_SIZES.items():
        s = data.fashion_mnist(split, subset=True)
        assert s.images.shape == (size, 1, 28, 28) and s.images.dtype == torch.uint8
        assert torch.bincount(s.labels, minlength=10).tolist() == [size // 10] * 10
        assert 0.2 < s.float().mean() < 0.4  # Fashion-MNIST's mean intensity is 0.286


@needs_debian
def test_debian_full_set_and_subset_provenance(monkeypatch):
    monkeypatch.delenv("COURSEKIT_DATA", raising=False)
    full = data.fashion_mnist("test", download=False)
    assert full.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(full.labels).tolist() == [1000] * 10
    # every subset image is a test image with the same label
    rows = {(bytes(img.numpy()), int(y)) for img, y in zip(full.images, full.labels)}
    sub = data.fashion_mnist("test", subset=True)
    assert all((bytes(img.numpy()), int(y)) in rows for img, y in zip(sub.images, sub.labels))


# ----------------------------------------------------------------------------- downloads


def _serve(tmp_path: Path, dataset: str, files: dict[str, bytes], monkeypatch, bad_hash=False):
    """Serve ``files`` from a file:// mirror, after a mirror that does not exist."""
    src = tmp_path / "mirror"
    src.mkdir()
    sha = {}
    for name, content in files.items():
        (src / name).write_bytes(content)
        sha[name] = hashlib.sha256(content + (b"x" if bad_hash else b"")).hexdigest()
    spec = {"mirrors": [(tmp_path / "nowhere").as_uri() + "/", src.as_uri() + "/"], "sha256": sha}
    monkeypatch.setitem(images_mod._DOWNLOADS, dataset, spec)


def _fake_mnist_files(tmp_path: Path) -> dict[str, bytes]:
    _write_fake_mnist(tmp_path / "fake", value=9, n=4)
    return {f.name: f.read_bytes() for f in (tmp_path / "fake").iterdir()}


def test_download_verified_into_cache(places, tmp_path, monkeypatch, capsys):
    _serve(tmp_path, "mnist", _fake_mnist_files(tmp_path), monkeypatch)
    s = data.mnist("test")
    assert s.images.shape == (4, 1, 28, 28) and int(s.images.max()) == 9
    cached = sorted(f.name for f in (places["cache"] / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert "downloading" in capsys.readouterr().out
    data.mnist("test")  # second call: found in the cache, nothing downloaded
    assert "downloading" not in capsys.readouterr().out


def test_download_with_wrong_hash_leaves_nothing(places, tmp_path, monkeypatch):
    _serve(tmp_path, "mnist", _fake_mnist_files(tmp_path), monkeypatch, bad_hash=True)
    with pytest.raises(FileNotFoundError, match="sha256 mismatch") as err:
        data.mnist("train")
    assert "nowhere" in str(err.value)  # every mirror's failure is reported
    assert list((places["cache"] / "mnist").iterdir()) == []  # no partial or temp file


class _FakeResponse(io.BytesIO):
    """What urlopen returns: a body, headers, and optionally a failure after some bytes."""

    def __init__(self, body: bytes, *, length: int | None = None, fail_after: int | None = None):
        super().__init__(body)
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection lost")
        limit = size if self.fail_after is None else min(4, self.fail_after - self.tell())
        return super().read(limit)


def _fake_urlopen(monkeypatch, response):
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        if isinstance(response, Exception):
            raise response
        return response

    monkeypatch.setattr(sources.urllib.request, "urlopen", urlopen)
    return calls


BODY = b"abcdefgh"
SHA = hashlib.sha256(BODY).hexdigest()


def test_download_keeps_a_complete_verified_file(tmp_path, monkeypatch):
    _fake_urlopen(monkeypatch, _FakeResponse(BODY, length=len(BODY)))
    dest = tmp_path / "cache" / "file.gz"
    sources.download("https://example.invalid/file.gz", dest, SHA)
    assert dest.read_bytes() == BODY and [f.name for f in dest.parent.iterdir()] == ["file.gz"]


def test_connection_lost_mid_transfer_is_an_incomplete_transfer(tmp_path, monkeypatch):
    _fake_urlopen(monkeypatch, _FakeResponse(BODY, length=len(BODY), fail_after=4))
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(data.IncompleteDownloadError, match="after 4 of 8 bytes") as err:
        sources.download("https://example.invalid/file.gz", dest, SHA)
    assert "sha256" not in str(err.value) and "run again" in str(err.value)
    assert isinstance(err.value, errors.CourseError) and isinstance(err.value, ConnectionError)
    assert list(dest.parent.iterdir()) == []


def test_fewer_bytes_than_content_length_is_an_incomplete_transfer(tmp_path, monkeypatch):
    # the server closes early without an error: the body ends after 5 of 8 announced bytes
    _fake_urlopen(monkeypatch, _FakeResponse(BODY[:5], length=len(BODY)))
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(data.IncompleteDownloadError, match="received 5 of 8 bytes"):
        sources.download("https://example.invalid/file.gz", dest, SHA)
    assert list(dest.parent.iterdir()) == []


def test_a_whole_but_different_file_is_a_checksum_mismatch(tmp_path, monkeypatch):
    _fake_urlopen(monkeypatch, _FakeResponse(b"ABCDEFGH", length=8))
    with pytest.raises(data.ChecksumMismatchError, match="sha256 mismatch") as err:
        sources.download("https://example.invalid/f.gz", tmp_path / "f.gz", SHA)
    assert isinstance(err.value, ValueError) and isinstance(err.value, errors.CourseError)


def test_no_connection_is_a_download_error(tmp_path, monkeypatch):
    _fake_urlopen(monkeypatch, OSError("Name or service not known"))
    with pytest.raises(data.DownloadError, match="could not connect"):
        sources.download("https://example.invalid/f.gz", tmp_path / "f.gz", SHA)


def test_temporary_files_of_killed_downloads_are_removed_on_the_next_run(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    # a run killed mid-download leaves its .part file (its process is gone) ...
    dead = cache / ".file.gz.999999999.abc123.part"
    dead.write_bytes(b"half")
    # ... while a download in progress in a live process keeps its own
    alive = cache / f".other.gz.{os.getppid()}.xyz.part"
    alive.write_bytes(b"busy")
    _fake_urlopen(monkeypatch, _FakeResponse(BODY, length=len(BODY)))
    sources.download("https://example.invalid/file.gz", cache / "file.gz", SHA)
    assert sorted(f.name for f in cache.iterdir()) == sorted(["file.gz", alive.name])


def test_a_killed_download_is_cleaned_up_by_the_next_fetch(places, tmp_path, monkeypatch):
    cache = places["cache"] / "mnist"
    cache.mkdir(parents=True)
    (cache / ".t10k-images-idx3-ubyte.gz.999999999.k1ll3d.part").write_bytes(b"half")
    _serve(tmp_path, "mnist", _fake_mnist_files(tmp_path), monkeypatch)
    data.mnist("test")
    assert not list(cache.glob("*.part"))


def test_fixes_never_suggest_what_is_already_on(places, tmp_path, monkeypatch):
    monkeypatch.setattr(images_mod, "_SUBSET_DIR", places["repo"] / "no_subset")
    # COURSEKIT_DATA is set (by the fixture): say where to put the files, not "set it"
    with pytest.raises(data.DataNotFoundError) as err:
        data.mnist("test", download=False)
    message = str(err.value)
    assert "set COURSEKIT_DATA=DIR" not in message
    assert f"{places['env'] / 'mnist'}/ (COURSEKIT_DATA is set to {places['env']})" in message
    assert "download=True" in message  # downloading was off: suggest it
    # downloading was on and failed: do not suggest turning it on
    _fake_urlopen(monkeypatch, OSError("Name or service not known"))
    with pytest.raises(data.DataNotFoundError) as err:
        data.fashion_mnist("train")
    message = str(err.value)
    assert "download=True" not in message and "could not connect" in message
    assert "check the internet connection" in message
    assert "sudo apt install" in message  # the system folder does not exist here
    # without COURSEKIT_DATA, setting it is a fix; with the system package present, apt is not
    monkeypatch.delenv("COURSEKIT_DATA")
    (places["system"] / "fashion-mnist").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as err:
        data.fashion_mnist("train", download=False)
    message = str(err.value)
    assert "set COURSEKIT_DATA=DIR" in message and "sudo apt install" not in message
    assert isinstance(err.value, errors.CourseError)


def test_corrupt_idx_file_is_a_course_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(data.CorruptFileError) as err:
        data.read_idx(tmp_path / "bad")
    assert isinstance(err.value, ValueError) and isinstance(err.value, errors.CourseError)


def test_cifar10_reads_binary_archive(places, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    buf, batches = io.BytesIO(), {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            records = rng.integers(0, 256, (3, 3073), dtype=np.uint8)
            records[:, 0] %= 10  # label byte
            batches[name] = records
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.nbytes
            tar.addfile(info, io.BytesIO(records.tobytes()))
    _serve(tmp_path, "cifar10", {"cifar-10-binary.tar.gz": buf.getvalue()}, monkeypatch)
    train, test = data.cifar10("train"), data.cifar10("test")
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    rec = batches["test_batch.bin"][1]
    assert int(test.labels[1]) == rec[0]
    # record layout: label, then the 1024 red, 1024 green, 1024 blue values, row-major
    assert test.images[1, 2, 0, 1] == rec[1 + 2 * 1024 + 1]
    assert test.classes[int(test.labels[1])] == data.images.CIFAR10_CLASSES[rec[0]]


# ----------------------------------------------------------------------------- Batches


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_batches_cover_each_example_once_per_epoch(device):
    x = torch.arange(10)
    batches = data.Batches(
        x, x * 10, batch_size=3, device=device, generator=torch.Generator().manual_seed(1)
    )
    assert len(batches) == 4
    epochs = []
    for _ in range(2):
        seen = []
        for _ in range(len(batches)):
            xb, yb = next(batches)
            assert xb.device.type == device and torch.equal(yb, xb * 10)  # pairs kept together
            seen.append(xb)
        assert [len(b) for b in seen] == [3, 3, 3, 1]
        epoch = torch.cat(seen).cpu()
        assert sorted(epoch.tolist()) == list(range(10))
        epochs.append(epoch)
    assert not torch.equal(epochs[0], epochs[1]), "each epoch needs a fresh permutation"
    assert batches.epoch == 1


def test_batches_imageset_transform_and_determinism():
    s = data.digits("test")
    state = torch.get_rng_state()
    xb, yb = next(data.Batches(s, batch_size=16))
    assert torch.equal(torch.get_rng_state(), state), "Batches must not touch the global RNG"
    assert xb.shape == (16, 1, 8, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert 0 <= xb.min() and xb.max() <= 1 and xb.max() > 0.9  # levels 0..16 -> [0, 1]
    xb2, yb2 = next(data.Batches(s, batch_size=16))
    assert torch.equal(xb, xb2) and torch.equal(yb, yb2)  # default generator is seeded
    xb3, _ = next(data.Batches(s, batch_size=16, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(xb, xb3)

    xb, yb = next(data.Batches(s, y=False, batch_size=4, transform=lambda u: u.float() * 2))
    assert yb is None and xb.max() > 17  # custom transform replaces the default
    xb, yb = next(data.Batches(s.images, batch_size=4))
    assert xb.dtype == torch.uint8 and yb is None  # plain tensor: no transform, no labels
    with pytest.raises(ValueError, match="y has 3"):
        data.Batches(s.images, s.labels[:3], batch_size=4)


def test_batches_state_dict_resumes_bit_for_bit():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    a = data.Batches(x, y, batch_size=3, generator=torch.Generator().manual_seed(4))
    for _ in range(5):  # into the second epoch (4 batches per epoch), mid-permutation
        next(a)
    state = a.state_dict()
    expected = [next(a) for _ in range(9)]  # crosses two more epoch boundaries
    b = data.Batches(x, y, batch_size=3, generator=torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    resumed = [next(b) for _ in range(9)]
    for (xa, ya), (xb, yb) in zip(expected, resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert b.epoch == a.epoch
    # the state is a snapshot: drawing from a does not change it
    c = data.Batches(x, y, batch_size=3)
    c.load_state_dict(state)
    assert torch.equal(next(c)[0], expected[0][0])


def test_batches_state_of_other_data_is_rejected():
    state = data.Batches(torch.zeros(10, 1), batch_size=3).state_dict()
    with pytest.raises(ValueError, match="10 examples, but these Batches hold 7"):
        data.Batches(torch.zeros(7, 1), batch_size=3).load_state_dict(state)
