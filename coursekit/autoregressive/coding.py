"""Lossless compression with a probabilistic model: an arithmetic coder.

Shannon: a symbol of probability p can be coded in about -log2 p bits, so a model of
p(x) compresses x to about -log2 p(x) bits, and no code can do better on average. An
arithmetic coder (Witten, Neal & Cleary 1987) gets within ~2 bits of this for a whole
message: it narrows an interval [low, high) by each symbol's share of probability and
writes the bits that the interval's ends already agree on.

Integer version with renormalization, as implemented here:

- the state is two ``PRECISION``-bit integers ``low <= high`` (the interval [low, high + 1));
- a symbol s with quantized frequencies (cumulative ``cdf``, ``cdf[-1] = total``) maps
  the interval to its sub-interval ``[low + r*cdf[s]//total, low + r*cdf[s+1]//total)``;
- renormalization keeps the interval wide: when it lies in the lower (upper) half, the
  next bit is 0 (1), so emit it and double the interval; when it straddles the midpoint
  inside the middle half, the next bit is not known yet: remember a *pending* bit
  (emitted, inverted, after the next decided bit) and double around the middle;
- ``total <= 2**(PRECISION - 2)`` guarantees that every symbol with frequency >= 1 keeps
  a non-empty interval, so the decoder can always tell the symbols apart.

Model probabilities are floats; ``quantize`` turns them into integer frequencies that sum
to ``2**FREQ_BITS`` with every symbol >= 1 (so a symbol the model thinks impossible can
still be coded, at ~FREQ_BITS bits). The code length is about sum -log2 q(x_i): the
quantization costs the KL divergence from p to q, a few thousandths of a bit per symbol.

``compress(model, k)`` drives the coder with an ``coursekit.autoregressive`` model; the
encoder computes each conditional from the prefix exactly as the decoder will see it, so
the frequencies are bit-identical on both sides. Frequencies are computed in float64 on
the CPU.

The last section has the baselines: gzip, bz2, lzma and a minimal grey-level PNG writer.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import struct
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

PRECISION = 32  # bits of the coder's state
FREQ_BITS = 16  # quantized frequencies sum to 2**FREQ_BITS; needs FREQ_BITS <= PRECISION - 2
_FULL = (1 << PRECISION) - 1
_HALF = 1 << (PRECISION - 1)
_QUARTER = 1 << (PRECISION - 2)


# -- quantizing probabilities --------------------------------------------------------------


def quantize(probs: Tensor | np.ndarray, freq_bits: int = FREQ_BITS) -> np.ndarray:
    """Probabilities (..., K) -> integer frequencies (..., K), int64, each >= 1, summing to
    2**freq_bits. Deterministic: the same float64 input always gives the same output.

    Each row must be finite, non-negative and have a positive sum (it is normalized here);
    anything else would give a code that decodes to the wrong symbols, so it raises.
    """
    p = torch.as_tensor(probs, dtype=torch.float64).cpu()
    if p.dim() == 0 or p.shape[-1] == 0:
        raise ValueError(f"probs must have shape (..., K) with K >= 1, got {tuple(p.shape)}.")
    K = p.shape[-1]
    total = 1 << freq_bits
    if K > total:
        raise ValueError(f"{K} symbols do not fit in 2**{freq_bits} frequencies; raise freq_bits.")
    _check_probs(p)
    p = p / p.sum(-1, keepdim=True)
    freq = torch.floor(p * (total - K)).long() + 1  # every symbol keeps >= 1
    # the floors leave a remainder in 0..K-1: give it to the most probable symbol
    rest = total - freq.sum(-1, keepdim=True)
    freq.scatter_add_(-1, p.argmax(-1, keepdim=True), rest)
    return freq.numpy()


def _check_probs(p: Tensor) -> None:
    rows = p.reshape(-1, p.shape[-1])  # (R, K)
    problems = {
        "NaN or infinite values": ~torch.isfinite(rows).all(1),
        "negative probabilities": (rows < 0).any(1),
        "no probability at all (every entry is 0)": rows.sum(1) <= 0,
    }
    for what, bad in problems.items():
        if bad.any():
            r = int(bad.nonzero()[0])
            raise ValueError(
                f"{int(bad.sum())} of {len(rows)} probability vectors have {what} (first: row "
                f"{r}, {rows[r, :8].tolist()}{' ...' if rows.shape[1] > 8 else ''}). The coder "
                "needs finite, non-negative probabilities with a positive sum per symbol: pass "
                "softmax(logits), and check the model for NaN before coding."
            )


def cdf_from_freq(freq: np.ndarray) -> np.ndarray:
    """(..., K) frequencies -> (..., K + 1) cumulative counts starting at 0."""
    zeros = np.zeros((*freq.shape[:-1], 1), dtype=np.int64)
    return np.concatenate([zeros, np.cumsum(freq, axis=-1)], axis=-1)


def cdf_from_probs(probs: Tensor | np.ndarray, freq_bits: int = FREQ_BITS) -> np.ndarray:
    """Probabilities (..., K) -> the (..., K + 1) integer cdf the coder uses."""
    return cdf_from_freq(quantize(probs, freq_bits))


# -- the coder -------------------------------------------------------------------------------


class ArithmeticEncoder:
    """Encode symbols one at a time with ``encode(s, cdf)``; ``finish()`` returns the bits."""

    def __init__(self):
        self.low, self.high = 0, _FULL
        self.pending = 0  # bits decided only by a later renormalization (straddling case)
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([1 - bit] * self.pending)  # the pending bits are the opposite bit
        self.pending = 0

    def encode(self, symbol: int, cdf: Sequence[int]) -> None:
        total = int(cdf[-1])
        if total > _QUARTER:
            raise ValueError(f"cdf total {total} exceeds 2**{PRECISION - 2}; quantize() first.")
        if not 0 <= symbol < len(cdf) - 1:
            raise ValueError(
                f"symbol {symbol} is outside the alphabet 0..{len(cdf) - 2} of this cdf "
                f"({len(cdf)} entries = K + 1); the data and the model disagree on K."
            )
        lo_c, hi_c = int(cdf[symbol]), int(cdf[symbol + 1])
        if int(cdf[0]) != 0 or np.any(np.diff(np.asarray(cdf, dtype=np.int64)) < 0):
            raise ValueError(
                "the cdf must start at 0 and never decrease (a negative frequency); build it "
                "with cdf_from_probs(probs)."
            )
        if hi_c == lo_c:
            raise ValueError(
                f"symbol {symbol} has zero frequency: it cannot be coded. Build the cdf with "
                "cdf_from_probs(probs), which keeps every symbol's frequency >= 1."
            )
        r = self.high - self.low + 1
        self.high = self.low + r * hi_c // total - 1
        self.low = self.low + r * lo_c // total
        while True:  # renormalize
            if self.high < _HALF:  # lower half: the next bit is 0
                self._emit(0)
            elif self.low >= _HALF:  # upper half: the next bit is 1
                self._emit(1)
                self.low -= _HALF
                self.high -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:  # straddles the middle
                self.pending += 1
                self.low -= _QUARTER
                self.high -= _QUARTER
            else:
                break
            self.low = 2 * self.low
            self.high = 2 * self.high + 1

    def finish(self) -> list[int]:
        """Two more bits pick a point inside the final interval; returns all bits."""
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        return self.bits


class ArithmeticDecoder:
    """Decode symbols one at a time with ``decode(cdf)``, given the encoder's bits."""

    def __init__(self, bits: Sequence[int]):
        self.bits, self.pos = bits, 0
        self.low, self.high = 0, _FULL
        self.value = 0
        for _ in range(PRECISION):
            self.value = 2 * self.value + self._next_bit()

    def _next_bit(self) -> int:
        bit = self.bits[self.pos] if self.pos < len(self.bits) else 0  # zeros past the end
        self.pos += 1
        return int(bit)

    def decode(self, cdf: Sequence[int]) -> int:
        total = int(cdf[-1])
        r = self.high - self.low + 1
        # the largest s with cdf[s] <= target: which sub-interval holds the value
        target = ((self.value - self.low + 1) * total - 1) // r
        s = int(np.searchsorted(np.asarray(cdf), target, side="right")) - 1
        self.high = self.low + r * int(cdf[s + 1]) // total - 1
        self.low = self.low + r * int(cdf[s]) // total
        while True:  # the encoder's renormalization, mirrored
            if self.high < _HALF:
                pass
            elif self.low >= _HALF:
                self.low -= _HALF
                self.high -= _HALF
                self.value -= _HALF
            elif self.low >= _QUARTER and self.high < 3 * _QUARTER:
                self.low -= _QUARTER
                self.high -= _QUARTER
                self.value -= _QUARTER
            else:
                break
            self.low = 2 * self.low
            self.high = 2 * self.high + 1
            self.value = 2 * self.value + self._next_bit()
        return s


def encode(symbols: Sequence[int], cdfs: Sequence[Sequence[int]]) -> list[int]:
    """Encode ``symbols[i]`` with ``cdfs[i]``; returns the bits (a list of 0/1)."""
    enc = ArithmeticEncoder()
    for s, cdf in zip(symbols, cdfs, strict=True):
        enc.encode(int(s), cdf)
    return enc.finish()


def decode(bits: Sequence[int], cdfs: Sequence[Sequence[int]]) -> list[int]:
    """Decode ``len(cdfs)`` symbols from ``bits``."""
    dec = ArithmeticDecoder(bits)
    return [dec.decode(cdf) for cdf in cdfs]


def pack_bits(bits: Sequence[int]) -> bytes:
    """Bits -> bytes (the last byte padded with zeros)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(data: bytes) -> list[int]:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()


# -- compressing with an autoregressive model --------------------------------------------------


@dataclasses.dataclass
class Compressed:
    """The code of a batch of examples; ``streams`` has one entry, or one per example."""

    streams: list[bytes]
    num_bits: int  # before padding to whole bytes
    shape: tuple[int, ...]  # (N, *example_shape)
    ideal_bits: float  # sum of -log2 q(x_i) under the quantized conditionals

    @property
    def num_bytes(self) -> int:
        return sum(len(s) for s in self.streams)


@torch.no_grad()
def model_cdfs(model, k: Tensor, t: int, freq_bits: int = FREQ_BITS) -> np.ndarray:
    """The coder's cdfs for dimension ``model.order[t]`` given the prefix of k: (B, K + 1)."""
    logits = model.conditional(k, t).double().cpu()  # (B, K)
    return cdf_from_probs(torch.softmax(logits, -1), freq_bits)


@torch.no_grad()
def compress(
    model, k: Tensor, *, per_image: bool = False, cdf_fn: Callable = model_cdfs
) -> Compressed:
    """Encode integer levels ``k`` (N, *shape) with the model's conditionals.

    One stream for the whole batch (symbols in order: dimension by dimension, all examples
    at each step), or ``per_image`` one stream per example (each decodable on its own).
    The conditionals come from the prefix alone, exactly as ``decompress`` recomputes them.
    """
    if k.dtype.is_floating_point:
        raise TypeError(
            "compress codes integer levels k (e.g. ImageSet.images); got floats. Convert "
            "x in [0, 1] with model.to_levels(x)."
        )
    k = model.to_levels(k)  # checks the shape and the range of the levels
    was_training = model.training
    model.eval()
    N, D = k.shape[0], model.num_dims
    flat = k.reshape(N, D)
    prefix = torch.zeros_like(flat)  # (N, D): what the decoder will know at step t
    encoders = [ArithmeticEncoder() for _ in range(N if per_image else 1)]
    ideal = 0.0
    for t in range(D):
        cdf = cdf_fn(model, prefix.view_as(k), t)  # (N, K + 1)
        pos = int(model.order[t])
        sym = flat[:, pos].cpu().numpy()
        ideal -= np.log2((cdf[np.arange(N), sym + 1] - cdf[np.arange(N), sym]) / cdf[:, -1]).sum()
        for i in range(N):
            encoders[i if per_image else 0].encode(int(sym[i]), cdf[i])
        prefix[:, pos] = flat[:, pos]
    model.train(was_training)
    bits = [e.finish() for e in encoders]
    return Compressed([pack_bits(b) for b in bits], sum(map(len, bits)), tuple(k.shape), ideal)


@torch.no_grad()
def decompress(model, code: Compressed, *, cdf_fn: Callable = model_cdfs) -> Tensor:
    """Invert ``compress``: returns the integer levels, int64 (N, *shape)."""
    was_training = model.training
    model.eval()
    N, D = code.shape[0], model.num_dims
    per_image = len(code.streams) > 1 or N == 1
    decoders = [ArithmeticDecoder(unpack_bits(s)) for s in code.streams]
    dev = model.device
    flat = torch.zeros(N, D, dtype=torch.long, device=dev)
    for t in range(D):
        cdf = cdf_fn(model, flat.view(code.shape), t)
        pos = int(model.order[t])
        sym = [decoders[i if per_image else 0].decode(cdf[i]) for i in range(N)]
        flat[:, pos] = torch.tensor(sym, device=dev)
    model.train(was_training)
    return flat.view(code.shape)


# -- baselines: general-purpose compressors ----------------------------------------------------


def png_bytes(image: np.ndarray | Tensor, filter_type: int | None = None) -> bytes:
    """A minimal 8-bit greyscale PNG of ``image`` (H, W) uint8 (PNG spec, ISO 15948).

    Each scanline gets one filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth); with
    ``filter_type=None`` all five are tried for the whole image and the smallest file is
    kept, which is at least as good as libpng's default heuristic on such small images.
    """
    img = np.asarray(image, dtype=np.uint8)
    if img.ndim != 2:
        raise ValueError(f"png_bytes expects a (H, W) uint8 image, got shape {img.shape}")
    if filter_type is None:
        return min((png_bytes(img, f) for f in range(5)), key=len)
    H, W = img.shape
    rows = [bytes([filter_type]) + _filter_row(img, r, filter_type).tobytes() for r in range(H)]
    raw = b"".join(rows)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)  # 8-bit, greyscale, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_row(img: np.ndarray, r: int, f: int) -> np.ndarray:
    x = img[r].astype(np.int64)
    left = np.concatenate([[0], x[:-1]])
    up = img[r - 1].astype(np.int64) if r > 0 else np.zeros_like(x)
    up_left = np.concatenate([[0], up[:-1]])
    predictor = {0: 0 * x, 1: left, 2: up, 3: (left + up) // 2, 4: _paeth(left, up, up_left)}[f]
    return ((x - predictor) % 256).astype(np.uint8)


def png_decode(data: bytes) -> np.ndarray:
    """Read back a PNG written by ``png_bytes`` (checks every CRC); returns (H, W) uint8."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG signature")
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        if zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        chunks[kind] = chunks.get(kind, b"") + payload
        pos += 12 + n
    W, H, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    if (depth, colour) != (8, 0):
        raise ValueError("only 8-bit greyscale PNGs are supported")
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(H, W + 1)
    img = np.zeros((H, W), dtype=np.int64)
    for r in range(H):
        f, line = raw[r, 0], raw[r, 1:].astype(np.int64)
        up = img[r - 1] if r > 0 else np.zeros(W, dtype=np.int64)
        for c in range(W):  # unfiltering is sequential along the row
            left = img[r, c - 1] if c > 0 else 0
            ul = up[c - 1] if c > 0 else 0
            pred = {
                0: 0,
                1: left,
                2: up[c],
                3: (left + up[c]) // 2,
                4: int(_paeth(np.array(left), np.array(up[c]), np.array(ul))),
            }[int(f)]
            img[r, c] = (line[c] + pred) % 256
    return img.astype(np.uint8)


_LZMA_FILTER = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}


def baseline_sizes(images: np.ndarray | Tensor) -> dict[str, dict[str, int]]:
    """Bytes used by gzip, bz2, lzma and PNG on uint8 ``images`` (N, H, W) or (N, 1, H, W).

    Two settings: ``"whole set"`` compresses all images as one byte stream (one PNG
    holding them stacked vertically), the strongest setting for these compressors;
    ``"per image"`` sums the sizes of the images compressed one by one; these include each
    format's own header and trailer (gzip 18 bytes, xz about 60, PNG 57), as files would.
    """
    imgs = np.asarray(images, dtype=np.uint8)
    imgs = imgs.reshape(imgs.shape[0], imgs.shape[-2], imgs.shape[-1])  # (N, H, W)
    codecs = {
        "gzip": lambda b: gzip.compress(b, 9, mtime=0),
        "bz2": lambda b: bz2.compress(b, 9),
        # xz's strongest preset; a 1 MiB dictionary (> any input here) gives the same bytes
        # as the default 64 MiB one without allocating it at every call
        "lzma": lambda b: lzma.compress(b, filters=[_LZMA_FILTER]),
    }
    out = {}
    for name, fn in codecs.items():
        out[name] = {
            "whole set": len(fn(imgs.tobytes())),
            "per image": sum(len(fn(im.tobytes())) for im in imgs),
        }
    out["png"] = {
        "whole set": len(png_bytes(imgs.reshape(-1, imgs.shape[-1]))),
        "per image": sum(len(png_bytes(im)) for im in imgs),
    }
    return out
