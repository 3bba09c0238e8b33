"""Scoring disentanglement against known factors: the mutual information gap (MIG).

Chen et al. (2018), eq. 5: for each ground-truth factor v_k, the two latents that carry the
most information about it are found, and the gap between them is normalized by the
factor's entropy,

    MIG = (1/K) sum_k ( I(z_(1); v_k) - I(z_(2); v_k) ) / H(v_k),

where z_(1), z_(2) are the latents with the largest and second largest I(z_j; v_k). A
score near 1 means each factor lives in exactly one latent; near 0, a factor is either
absent or spread over several latents. Mutual informations are estimated from histograms:
latents and continuous factors are cut into ``bins`` equally populated bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor


@dataclass
class MIGScore:
    """The MIG and its ingredients."""

    value: float  # the mean over factors of the normalized gap
    per_factor: np.ndarray  # (K,) the normalized gap of each factor
    mutual_info: np.ndarray  # (K, D_z) I(z_j; v_k) / H(v_k), each in [0, 1]

    def __str__(self) -> str:
        return f"MIG = {self.value:.3f}"


def _discretize(values: np.ndarray, bins: int) -> np.ndarray:
    """Integer codes 0..bins-1 by quantiles; a column with few distinct values keeps them."""
    distinct = np.unique(values)
    if len(distinct) <= bins:
        return np.searchsorted(distinct, values)
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def _entropy(codes: np.ndarray) -> float:
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats from the joint histogram of two integer code arrays."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_information_gap(
    latents: Tensor | np.ndarray, factors: Tensor | np.ndarray, *, bins: int = 20
) -> MIGScore:
    """MIG of ``latents`` (N, D_z) (e.g. the encoder means) against ``factors`` (N, K)."""
    z = np.asarray(
        latents.detach().cpu() if isinstance(latents, Tensor) else latents, dtype=np.float64
    )
    v = np.asarray(
        factors.detach().cpu() if isinstance(factors, Tensor) else factors, dtype=np.float64
    )
    if z.ndim != 2 or v.ndim != 2 or len(z) != len(v):
        raise ValueError(
            f"latents (N, D_z) and factors (N, K) must be 2-D with the same N; got {z.shape} and {v.shape}."
        )
    if z.shape[1] < 2:
        raise ValueError(
            "MIG compares the best and second-best latent: it needs at least 2 latents."
        )
    z_codes = [_discretize(z[:, j], bins) for j in range(z.shape[1])]
    mi = np.zeros((v.shape[1], z.shape[1]))
    for k in range(v.shape[1]):
        v_codes = _discretize(v[:, k], bins)
        h = _entropy(v_codes)
        for j, zc in enumerate(z_codes):
            mi[k, j] = _mutual_info(v_codes, zc) / h
    top2 = -np.sort(-mi, axis=1)[:, :2]  # (K, 2): best and second-best latent per factor
    gaps = top2[:, 0] - top2[:, 1]
    return MIGScore(value=float(gaps.mean()), per_factor=gaps, mutual_info=mi)
