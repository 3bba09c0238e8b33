"""Data for the course: toy 2-D sets, small image sets, and on-device batching.

Conventions (each pinned by tests/test_data.py):

- Toy sets: ``toy_2d(name, n, seed=0)`` -> float32 ``(n, 2)``, roughly in ``[-4, 4]^2``,
  i.i.d. points, a pure function of ``(name, n, seed)`` (private generator, global RNG
  untouched). ``TOY_NAMES`` lists the names.
- Image sets are ``ImageSet``s: ``images`` uint8 ``(N, C, H, W)`` holding the integer
  levels ``0 .. levels - 1`` as stored, ``labels`` int64 ``(N,)``. ``.float()`` is
  float32 in ``[0, 1]`` = ``images / (levels - 1)``. Likelihoods of discrete images
  are reported per dimension over these ``levels`` (bits/dim uses ``log2``).
  ``digits``: 8x8, 17 levels (1501 train / 296 test); ``mnist``, ``fashion_mnist``:
  1x28x28, 256 levels (60000 / 10000); ``cifar10``: 3x32x32, 256 levels (50000 / 10000).
- Files are found in ``$COURSEKIT_DATA/<dataset>``, the repository's ``data/<dataset>``,
  ``/usr/share/datasets/<dataset>``, then ``$COURSEKIT_CACHE`` (``~/.cache/coursekit``);
  downloads are sha256-checked and atomic (``sources``). ``read_idx`` reads IDX files
  (``idx``). Missing or broken data raise ``errors.CourseError`` subclasses
  (``DataNotFoundError`` is also a ``FileNotFoundError``) whose message says what to do.
- ``Batches(x, y=None, batch_size=..., device=...)`` keeps the data on the device and
  yields random ``(x, y_or_None)`` batches forever, one permutation per epoch.

One file per concept: ``imageset`` (the ``ImageSet`` class), ``idx`` (the IDX file format),
``sources`` (finding and downloading files), ``images`` (the image datasets), ``toy`` (2-D
sets), ``sprites`` (a synthetic shapes set), ``audio`` (tones), ``batches`` (on-device batching).
"""

# This file only re-exports (hence the file-wide noqa); one import line per data module.
# ruff: noqa: F401
from coursekit.data.batches import Batches
from coursekit.data.idx import CorruptFileError, read_idx, write_idx
from coursekit.data.images import cifar10, digits, fashion_mnist, mnist
from coursekit.data.imageset import ImageSet
from coursekit.data.sources import (
    ChecksumMismatchError,
    DataNotFoundError,
    DownloadError,
    IncompleteDownloadError,
)
from coursekit.data.sprites import shapes
from coursekit.data.toy import TOY_NAMES, toy_2d
