"""Likelihood units: nats, bits and bits per dimension.

Log-likelihoods and NLLs are in **nats** unless the name says bits. One bit is ``log(2)`` nats.
"""

from __future__ import annotations

import math

from torch import Tensor

LN2 = math.log(2.0)


def nats_to_bits(x: Tensor | float) -> Tensor | float:
    """Nats -> bits (divide by ln 2)."""
    return x / LN2


def bits_to_nats(x: Tensor | float) -> Tensor | float:
    """Bits -> nats (multiply by ln 2)."""
    return x * LN2


def bits_per_dim(nll_nats: Tensor | float, num_dims: int) -> Tensor | float:
    """Per-example NLL in nats -> bits per dimension: ``nll / (num_dims * ln 2)``.

    ``num_dims`` is C * H * W for images. Apply it to discrete NLLs (a model of the integer
    levels, or a dequantized density with its scaling log-det included), e.g. a uniform
    model over 256 levels has NLL ``D * ln 256`` nats and thus 8 bits/dim.
    """
    return nll_nats / (num_dims * LN2)
