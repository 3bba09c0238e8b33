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
    _fails_with(ex.check_arithmetic_encoder(_encode_without_middle_case), "straddles the midpoint")


def test_coder_check_rejects_non_bits():
    _fails_with(ex.check_arithmetic_encoder(lambda s, c: list(np.array(s) + 2)), "0/1 bits")
