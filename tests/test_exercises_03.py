"""Every check of lecture 03 passes the reference and fails, with its message, on wrong answers."""

import numpy as np
import pytest
import torch

from coursekit import autoregressive as ar
from coursekit.autoregressive import coding
from coursekit.exercises import autoregressive as ex


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    monkeypatch.delenv("COURSEKIT_STRICT", raising=False)


def _fails_with(result, *phrases):
    assert not result, "the check should fail on this wrong answer"
    for phrase in phrases:
        assert phrase in result.message, result.message


# -- MADE masks ----------------------------------------------------------------------------


def _made_masks_off_by_one(din, hidden, dout):
    masks, prev = [], din
    for deg in hidden:
        masks.append((deg[:, None] >= prev[None, :]).float())
        prev = deg
    masks.append((dout[:, None] >= prev[None, :]).float())  # should be strict
    return masks


def _made_masks_reversed(din, hidden, dout):
    masks, prev = [], din
    for deg in hidden:
        masks.append((deg[:, None] <= prev[None, :]).float())  # comparison the wrong way
        prev = deg
    masks.append((dout[:, None] < prev[None, :]).float())
    return masks


def _made_masks_all_strict(din, hidden, dout):
    masks, prev = [], din
    for deg in hidden:
        masks.append((deg[:, None] > prev[None, :]).float())  # hidden layers should use >=
        prev = deg
    masks.append((dout[:, None] > prev[None, :]).float())
    return masks


def test_made_check_passes_the_reference():
    assert ex.check_made_masks(ar.made_masks)


def test_made_check_names_the_off_by_one():
    _fails_with(ex.check_made_masks(_made_masks_off_by_one), "off-by-one", "strict")


def test_made_check_names_looking_ahead():
    _fails_with(ex.check_made_masks(_made_masks_reversed), "after it in the order")


def test_made_check_names_missing_connections():
    _fails_with(ex.check_made_masks(_made_masks_all_strict), "does not depend on an input before")


def test_made_check_reports_a_stub():
    def stub(*args):
        raise NotImplementedError

    _fails_with(ex.check_made_masks(stub), "not implemented yet")


# -- PixelCNN masks ---------------------------------------------------------------------------


def test_pixelcnn_check_passes_the_reference():
    assert ex.check_pixelcnn_mask(ar.pixelcnn_mask)


def test_pixelcnn_check_names_swapped_types():
    swapped = lambda k, t: ar.pixelcnn_mask(k, "B" if t == "A" else "A")
    _fails_with(ex.check_pixelcnn_mask(swapped), "swapped types A and B")


def test_pixelcnn_check_names_a_transposed_mask():
    _fails_with(ex.check_pixelcnn_mask(lambda k, t: ar.pixelcnn_mask(k, t).T), "transposed")


def test_pixelcnn_check_names_the_whole_centre_row():
    def whole_row(k, t):
        m = torch.ones(k, k)
        m[k // 2 + 1 :] = 0
        return m

    _fails_with(ex.check_pixelcnn_mask(whole_row), "kept the whole centre row")


# -- causal attention mask ----------------------------------------------------------------------


def test_causal_check_passes_the_reference():
    assert ex.check_causal_mask(ar.causal_mask)


def test_causal_check_names_a_transposed_mask():
    bad = lambda T, device=None: torch.ones(T, T, dtype=torch.bool, device=device).triu()
    _fails_with(ex.check_causal_mask(bad), "transposed")


def test_causal_check_names_a_missing_diagonal():
    bad = lambda T, device=None: torch.ones(T, T, dtype=torch.bool, device=device).tril(-1)
    _fails_with(ex.check_causal_mask(bad), "excluded the diagonal")


def test_causal_check_wants_booleans():
    bad = lambda T, device=None: torch.ones(T, T, device=device).tril()
    _fails_with(ex.check_causal_mask(bad), "dtype")


# -- arithmetic encoder --------------------------------------------------------------------------

HALF, QUARTER, FULL = 1 << 31, 1 << 30, (1 << 32) - 1


def _encode_without_renormalization(symbols, cdfs):
    # Python's big integers hide the problem: the interval shrinks until it is empty
    low, high = 0, FULL
    for s, cdf in zip(symbols, cdfs):
        r = high - low + 1
        high = low + r * int(cdf[s + 1]) // int(cdf[-1]) - 1
        low = low + r * int(cdf[s]) // int(cdf[-1])
    return [int(b) for b in format(low, "032b")[:2]]


def _encode_without_middle_case(symbols, cdfs):
    low, high, bits = 0, FULL, []
    for s, cdf in zip(symbols, cdfs):
        r = high - low + 1
        high = low + r * int(cdf[s + 1]) // int(cdf[-1]) - 1
        low = low + r * int(cdf[s]) // int(cdf[-1])
        while True:
            if high < HALF:
                bits.append(0)
            elif low >= HALF:
                bits.append(1)
                low, high = low - HALF, high - HALF
            else:
                break
            low, high = 2 * low, 2 * high + 1
    return bits + ([0, 1] if low < QUARTER else [1, 0])


def test_coder_check_passes_the_reference():
    assert ex.check_arithmetic_encoder(coding.encode)


def test_coder_check_names_missing_renormalization():
    _fails_with(ex.check_arithmetic_encoder(_encode_without_renormalization), "renormalize")


def test_coder_check_names_the_missing_middle_case():
    _fails_with(
        ex.check_arithmetic_encoder(_encode_without_middle_case), "left out the middle case"
    )


def test_coder_check_rejects_non_bits():
    _fails_with(ex.check_arithmetic_encoder(lambda s, c: list(np.array(s) + 2)), "0/1 bits")


# -- the battery: more wrong answers, sizes, the ends of the coder's loop, in-place -------------

SEEDS = [0, 1, 2, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_check_passes_the_reference_at_other_seeds(seed):
    assert ex.check_made_masks(ar.made_masks, seed=seed)
    assert ex.check_pixelcnn_mask(ar.pixelcnn_mask, seed=seed)
    assert ex.check_causal_mask(ar.causal_mask, seed=seed)
    assert ex.check_arithmetic_encoder(coding.encode, seed=seed)


def _made_swapped_strictness(din, hidden, dout):
    masks, prev = [], din
    for deg in hidden:
        masks.append((deg[:, None] > prev[None, :]).float())
        prev = deg
    masks.append((dout[:, None] >= prev[None, :]).float())
    return masks


def _made_two_layers(din, hidden, dout):
    # the notebook's two hidden layers written into the loop
    masks, prev = [], din
    for i in range(2):
        masks.append((hidden[i][:, None] >= prev[None, :]).float())
        prev = hidden[i]
    masks.append((dout[:, None] > prev[None, :]).float())
    return masks


def _made_in_place(din, hidden, dout):
    hidden.insert(0, din)  # edits the caller's list
    masks = [(b[:, None] >= a[None, :]).float() for a, b in zip(hidden, hidden[1:])]
    return masks + [(dout[:, None] > hidden[-1][None, :]).float()]


MADE_BATTERY = [
    (_made_swapped_strictness, "swapped the comparisons"),
    (lambda din, h, dout: [m.T for m in ar.made_masks(din, h, dout)], "transposed the masks"),
    (lambda din, h, dout: ar.made_masks(din, h, dout)[:-1], "return one mask per layer"),
    (lambda din, h, dout: ar.made_masks(din, h, dout) + [torch.ones(1, 1)], "you returned 4 masks"),
    (_made_two_layers, "It passed with D=6, K=3, L=2"),
    (lambda din, h, dout: ar.made_masks(din, h, din.repeat(3)), "It passed with D=6, K=3, L=2"),
    (_made_in_place, "modified its input `hidden` in place"),
]


@pytest.mark.parametrize("wrong, words", MADE_BATTERY)
def test_made_battery(wrong, words):
    _fails_with(ex.check_made_masks(wrong), words)


def _pixel_centre_row_only(k, t):
    m = ar.pixelcnn_mask(k, t)
    m[k // 2 + 1 :] = 1
    return m


def _pixel_rows_above(k, t):
    m = torch.zeros(k, k)
    m[: k // 2] = 1
    return m


PIXEL_BATTERY = [
    (_pixel_centre_row_only, "masked only the centre row"),
    (_pixel_rows_above, "hid the whole centre row"),
    (lambda k, t: 1 - ar.pixelcnn_mask(k, t), "inverted the mask"),
    (lambda k, t: ar.pixelcnn_mask(k, t).flip(0).flip(1), "hid the pixels above and to the left"),
    (lambda k, t: ar.pixelcnn_mask(3, t), "It passed with k=3"),
    (
        lambda k, t: ar.pixelcnn_mask(k, t)[:3, :3] if k > 3 else ar.pixelcnn_mask(k, t),
        "shape (3, 3)",
    ),
]


@pytest.mark.parametrize("wrong, words", PIXEL_BATTERY)
def test_pixelcnn_battery(wrong, words):
    _fails_with(ex.check_pixelcnn_mask(wrong), words)


def _additive(T, device=None):
    return torch.zeros(T, T).masked_fill(~ar.causal_mask(T), float("-inf"))


CAUSAL_BATTERY = [
    (lambda T, device=None: torch.eye(T, dtype=torch.bool), "only to itself"),
    (lambda T, device=None: torch.ones(T, T, dtype=torch.bool), "masked nothing"),
    (lambda T, device=None: torch.ones(T, T, dtype=torch.bool).tril(1), "shifted the triangle"),
    (lambda T, device=None: ~ar.causal_mask(T), "inverted it"),
    (_additive, "additive float mask"),
    (lambda T, device=None: ar.causal_mask(6), "It passed with T=6"),
]


@pytest.mark.parametrize("wrong, words", CAUSAL_BATTERY)
def test_causal_battery(wrong, words):
    _fails_with(ex.check_causal_mask(wrong), words)


def _variant(**options):
    return lambda symbols, cdfs: ex._encode_variant(symbols, cdfs, **options)


def _encode_all_but_last(symbols, cdfs):
    # off by one at the end of the loop
    return coding.encode(symbols[:-1], cdfs[:-1])


def _encode_popping(symbols, cdfs):
    out = coding.encode(list(symbols), cdfs)
    symbols.clear()  # empties the caller's list
    return out


def _encode_hard_coded(symbols, cdfs):
    # three symbols of an alphabet of three, as in the notebook's first case
    return coding.encode(symbols, np.tile(cdfs[0], (len(symbols), 1)))


CODER_BATTERY = [
    (_variant(final=False), "forgot the final bits"),
    (_variant(final_pending=False), "without its pending bit"),
    (_variant(opposite=False), "they are the opposite bit"),
    (_variant(minus_one=False), "forgot the - 1"),
    (_variant(middle=False), "left out the middle case"),
    (_encode_all_but_last, "did not encode the last symbol"),
    (_encode_popping, "modified its input `symbols` in place"),
    (_encode_hard_coded, "It passed with n=3, K=3"),
]


@pytest.mark.parametrize("wrong, words", CODER_BATTERY)
def test_coder_battery(wrong, words):
    _fails_with(ex.check_arithmetic_encoder(wrong), words)


def test_coder_check_includes_a_single_symbol():
    seen = []

    def spy(symbols, cdfs):
        seen.append(len(symbols))
        return coding.encode(symbols, cdfs)

    assert ex.check_arithmetic_encoder(spy)
    assert 1 in seen and len(set(seen)) == len(seen)
