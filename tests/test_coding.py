"""The arithmetic coder: exact round trips, code length against -log2 q, against the
`constriction` library, and driven by an autoregressive model; the PNG baseline."""

import math
import zlib

import numpy as np
import pytest
import torch

from coursekit import autoregressive as ar
from coursekit.autoregressive import coding

constriction = pytest.importorskip("constriction")


def _random_problem(n, K, seed, alpha=0.5, tiny=0.0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(K, alpha), size=n)
    if tiny:
        p[:, 0] = tiny  # a nearly impossible symbol ...
        p /= p.sum(1, keepdims=True)
    sym = np.array([rng.choice(K, p=q) for q in p])
    if tiny:
        sym[:: max(n // 5, 1)] = 0  # ... that occurs anyway
    return p, sym


def _ideal_bits(cdf, sym):
    q = np.diff(cdf, axis=1)[np.arange(len(sym)), sym] / cdf[:, -1]
    return float(-np.log2(q).sum())


def test_quantize_keeps_every_symbol_and_the_total():
    p = np.array([[1.0, 0.0, 1e-30, 0.0], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])
    f = coding.quantize(p)
    assert f.dtype == np.int64 and (f >= 1).all() and (f.sum(1) == 2**coding.FREQ_BITS).all()
    assert (f[1] == 2**14).all()
    assert np.array_equal(f, coding.quantize(torch.tensor(p)))  # deterministic, any input type


@pytest.mark.parametrize(
    "seed,K,tiny", [(0, 2, 0.0), (1, 17, 0.0), (2, 256, 0.0), (3, 17, 1e-12), (4, 5, 1e-300)]
)
def test_round_trip_and_length_within_two_bits_of_ideal(seed, K, tiny):
    p, sym = _random_problem(2000, K, seed, tiny=tiny)
    cdf = coding.cdf_from_probs(p)
    bits = coding.encode(sym, cdf)
    assert coding.decode(bits, cdf) == sym.tolist()
    ideal = _ideal_bits(cdf, sym)
    assert ideal <= len(bits) <= ideal + 2, (len(bits), ideal)
    # through bytes, as stored
    assert coding.decode(coding.unpack_bits(coding.pack_bits(bits)), cdf) == sym.tolist()


def test_quantization_costs_little_on_ordinary_distributions():
    # the expected cost of coding with q instead of p is KL(p || q) bits per symbol
    p, _ = _random_problem(5000, 17, 5, alpha=1.0)
    q = coding.quantize(p) / 2**coding.FREQ_BITS
    kl = (p * np.log2(p / q)).sum(1)
    assert (kl >= -1e-12).all() and kl.mean() < 0.001


def test_empty_and_single_symbol_messages():
    cdf = coding.cdf_from_probs(np.array([[0.5, 0.5]]))
    assert coding.decode(coding.encode([], cdf[:0]), cdf[:0]) == []
    assert coding.decode(coding.encode([1], cdf), cdf) == [1]


def test_agrees_with_constriction_range_coder():
    p, sym = _random_problem(3000, 17, 6)
    cdf = coding.cdf_from_probs(p)
    q = np.diff(cdf, axis=1) / cdf[:, -1:]  # the same quantized distributions for both coders
    ours = len(coding.encode(sym, cdf))
    enc = constriction.stream.queue.RangeEncoder()
    model = constriction.stream.model.Categorical(perfect=False)
    enc.encode(sym.astype(np.int32), model, q)
    theirs = enc.num_bits()
    decoded = constriction.stream.queue.RangeDecoder(enc.get_compressed()).decode(model, q)
    assert np.array_equal(decoded, sym)
    ideal = _ideal_bits(cdf, sym)
    # constriction pads to 32-bit words and quantizes q again to 24 bits: a few words apart
    assert abs(ours - theirs) <= 0.002 * ideal + 96, (ours, theirs, ideal)
    assert ours <= theirs + 2


def test_rejects_a_zero_frequency_with_a_clear_message():
    enc = coding.ArithmeticEncoder()
    with pytest.raises(ValueError, match="zero frequency"):
        enc.encode(1, [0, 5, 5, 10])


@pytest.mark.parametrize("per_image", [False, True])
def test_compress_with_a_model_round_trips_and_matches_its_nll(per_image):
    torch.manual_seed(0)
    model = ar.GatedPixelCNN((1, 4, 4), 5, channels=8, num_layers=2)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randint(0, 5, (6, 1, 4, 4))
    code = coding.compress(model, x, per_image=per_image)
    assert torch.equal(coding.decompress(model, code), x)
    with torch.no_grad():
        nll_bits = float(-model.log_prob(x).sum() / math.log(2))
    streams = 6 if per_image else 1
    assert abs(code.ideal_bits - nll_bits) < 0.01 * x[0].numel() * 6  # quantization cost
    assert code.ideal_bits <= code.num_bits <= code.ideal_bits + 2 * streams
    assert code.num_bytes <= math.ceil(code.num_bits / 8) + streams


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4, None])
def test_png_writer_round_trips_and_has_valid_chunks(filter_type):
    img = np.random.default_rng(0).integers(0, 17, (8, 8)).astype(np.uint8)
    png = coding.png_bytes(img, filter_type)
    assert (
        png[:8] == b"\x89PNG\r\n\x1a\n"
        and png[12:16] == b"IHDR"
        and png.endswith(b"IEND\xaeB`\x82")
    )
    assert np.array_equal(coding.png_decode(png), img)
    # IDAT holds one filter byte and 8 pixels per row
    n = int.from_bytes(png[33:37], "big")
    assert len(zlib.decompress(png[41 : 41 + n])) == 8 * 9
    broken = bytearray(png)
    broken[41] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        coding.png_decode(bytes(broken))


def test_baseline_sizes_cover_both_settings():
    imgs = np.random.default_rng(0).integers(0, 17, (5, 1, 8, 8))
    sizes = coding.baseline_sizes(imgs)
    assert set(sizes) == {"gzip", "bz2", "lzma", "png"}
    assert all(set(v) == {"whole set", "per image"} and min(v.values()) > 0 for v in sizes.values())


@pytest.mark.parametrize(
    "probs, match",
    [
        (np.array([[0.5, 0.5], [0.0, 0.0]]), r"every entry is 0\) \(first: row 1"),
        (np.array([[0.5, np.nan]]), "NaN or infinite"),
        (np.array([[np.inf, 1.0]]), "NaN or infinite"),
        (np.array([[0.7, -0.2, 0.5]]), "negative probabilities"),
        (np.zeros((2, 0)), "K >= 1"),
    ],
)
def test_invalid_probabilities_are_rejected_not_coded_wrongly(probs, match):
    with pytest.raises(ValueError, match=match):
        coding.quantize(probs)
    with pytest.raises(ValueError, match="softmax|K >= 1"):
        coding.cdf_from_probs(probs)


def test_encoder_rejects_a_symbol_outside_the_alphabet_and_a_decreasing_cdf():
    enc = coding.ArithmeticEncoder()
    with pytest.raises(ValueError, match=r"outside the alphabet 0..2"):
        enc.encode(3, [0, 5, 6, 10])
    with pytest.raises(ValueError, match="never decrease"):
        enc.encode(0, [0, 7, 5, 10])  # a negative frequency for symbol 1


def test_compress_rejects_levels_the_model_does_not_have():
    model = ar.FVSBN((1, 2, 2), 3)
    with pytest.raises(ValueError, match="outside the 3 levels"):
        coding.compress(model, torch.full((1, 1, 2, 2), 3))
    with pytest.raises(ValueError, match=r"shape \(B, 1, 2, 2\)"):
        coding.compress(model, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer levels"):
        coding.compress(model, torch.zeros(1, 1, 2, 2))
