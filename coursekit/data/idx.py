"""IDX files, the format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

The header is two zero bytes, a type code, the number of dimensions ``d``, then ``d``
big-endian int32 sizes; the data follow in C order, big-endian. Files may be gzipped.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from coursekit import errors


class CorruptFileError(errors.CourseError, ValueError):
    """A data file that cannot be read as what it claims to be; the message names it."""


# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped (detected by content) or raw.

    The header is two zero bytes, a type code, the number of dimensions ``d``, then
    ``d`` big-endian int32 sizes; the data follow in C order. Returns a native-endian
    array of that shape. Raises ``ValueError`` naming the file when the magic number is
    wrong, or the file is truncated or longer than its header says (a ``CorruptFileError``,
    also a ``ValueError``).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise CorruptFileError(
                f"{path}: corrupt or truncated gzip file ({e}). Delete it and fetch it again."
            ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CorruptFileError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type code 08/09/0b/0c/0d/0e> <number of dimensions>)."
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(
            f"{path}: truncated IDX header ({len(raw)} bytes, expected {header})."
        )
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise CorruptFileError(
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
