"""Memorisation: how many samples are near-copies of training images.

With 1501 training digits, a model that learns to reproduce its training set can reach an FCD
*below* the real-vs-real floor: copies of real images are as realistic as images get. FCD
cannot tell copying from generalizing; a nearest-neighbour test can (in the spirit of the
"data-copying" tests of Meehan et al. 2020 and Carlini et al. 2023).

The rule, in classifier features (``classifier_features``):

1. for every held-out real image (never trained on), its distance to the nearest training
   image; the ``quantile`` (5%) of these distances is the threshold ``tau``;
2. for every sample, its distance to the nearest training image;
3. memorisation = the fraction of samples closer to the training set than ``tau``.

A model whose samples are as new as held-out data scores about ``quantile`` (the *base rate*:
held-out images themselves score it by construction); a model that returns training images
scores 1. Distances are Euclidean in the classifier's penultimate features, float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from coursekit.metrics.two_sample import flatten64


@dataclass
class Memorisation:
    """Fraction of samples nearer to the training set than most held-out real images are."""

    fraction: float  # samples with NN distance to train < threshold
    base_rate: float  # the quantile: what a model that does not copy scores
    threshold: float  # tau, the quantile of the held-out images' NN distances
    n: int  # number of samples judged

    def __str__(self) -> str:
        return (
            f"memorisation {self.fraction:.3f} of {self.n} samples nearer to a training image "
            f"than {self.base_rate:.0%} of held-out reals (base rate {self.base_rate:.2f})"
        )


def nearest_neighbour_distance(x: Tensor, reference: Tensor, chunk: int = 512) -> Tensor:
    """Distance from each row of x (N, D) to its nearest row of ``reference`` (M, D): (N,)."""
    x = flatten64(x)
    reference = flatten64(reference).to(x.device)
    if len(reference) == 0:
        raise ValueError("nearest_neighbour_distance needs a non-empty reference set.")
    # chunks of rows keep the (chunk, M) distance matrix small for 60000 training images
    return torch.cat([torch.cdist(rows, reference).min(dim=1).values for rows in x.split(chunk)])


def memorisation_score(
    sample_feats: Tensor,
    train_feats: Tensor,
    held_out_feats: Tensor,
    *,
    quantile: float = 0.05,
) -> Memorisation:
    """The memorisation rule of the module docstring, on features (N, D), (M, D), (K, D)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie strictly between 0 and 1, got {quantile}.")
    if len(sample_feats) < 1 or len(held_out_feats) < 2:
        raise ValueError(
            f"memorisation needs at least 1 sample and 2 held-out images, got "
            f"{len(sample_feats)} and {len(held_out_feats)}."
        )
    d_held_out = nearest_neighbour_distance(held_out_feats, train_feats)  # (K,)
    tau = torch.quantile(d_held_out, quantile)
    d_samples = nearest_neighbour_distance(sample_feats, train_feats)  # (N,)
    return Memorisation(
        fraction=float((d_samples < tau).double().mean()),
        base_rate=quantile,
        threshold=float(tau),
        n=len(d_samples),
    )
