"""Couplings of noise and data for flow matching: which noise x₀ each data point x₁ is paired
with before the path between them is drawn.

The independent coupling pairs a batch as drawn. The minibatch optimal-transport coupling
(Pooladian et al., 2023; Tong et al., 2024) re-pairs the batch by the exact assignment that
minimises the summed squared distance Σᵢ ||x₁ᵢ − x₀_{π(i)}||² (``scipy``'s
``linear_sum_assignment``, the Hungarian algorithm): a permutation, so every noise sample is
used exactly once, not a plan sampled with replacement. Paired paths then cross less, and the
marginal velocity field they define is straighter.

Shapes: ``x0`` and ``x1`` are (B, ...) with the same B; distances are over all but the batch
dimension, in float64.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def squared_distances(x0: Tensor, x1: Tensor) -> Tensor:
    """C[i, j] = ||x1_i − x0_j||² (B, B), float64: data point i against noise sample j."""
    a, b = x1.detach().flatten(1).double(), x0.detach().flatten(1).double()  # (B, D)
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)  # (B, B)


def ot_permutation(x0: Tensor, x1: Tensor) -> Tensor:
    """The permutation π (int64, (B,)) with ``x0[π]`` paired to ``x1`` at least total cost.

    Rows of the cost matrix are the data points, so the assignment's column for row i is the
    noise sample that goes with x1[i]: ``x0[π][i]`` pairs with ``x1[i]``. (Its inverse, the
    data point each noise sample goes to, pairs the wrong way round: a classic bug.)
    """
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"OT pairing needs as many noise samples as data points, got {x0.shape[0]} and "
            f"{x1.shape[0]}; draw the noise with the batch's shape."
        )
    rows, cols = linear_sum_assignment(squared_distances(x0, x1).cpu().numpy())
    assert (rows == range(len(rows))).all()  # scipy returns the rows in order
    return torch.as_tensor(cols, dtype=torch.long, device=x0.device)


def ot_pair(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """(x0 re-ordered, x1): the minibatch OT coupling of a batch of noise and data."""
    return x0[ot_permutation(x0, x1)], x1


def transport_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """The mean squared distance E||x1 − x0||² of a pairing (a scalar, summed over dims)."""
    return (x1 - x0).flatten(1).pow(2).sum(1).mean()
