"""Two-sample distances for vectors (2-D toy data), each beside its real-vs-real floor.

``energy_distance`` (Szekely & Rizzo 2013), ``mmd`` (Gretton et al. 2012) and
``two_sample_score``, which prints a value beside the same metric between two independent
real sets of the same size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def flatten64(x: Tensor | np.ndarray) -> Tensor:
    """(N, ...) -> float64 CPU-or-device (N, D), detached."""
    x = torch.as_tensor(x).detach()
    return x.reshape(x.shape[0], -1).double()


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Squared energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (Szekely & Rizzo 2013).

    x: (N, D), y: (M, D). The within-set means exclude i == j (U-statistics), so the
    estimate is unbiased: it is 0 on average for two samples of one distribution (and may
    then come out slightly negative), and > 0 in expectation otherwise.
    """
    x = flatten64(x)
    y = flatten64(y).to(x.device)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("energy_distance needs at least 2 points in each set.")
    dxy = torch.cdist(x, y).mean()
    dxx = torch.cdist(x, x).sum() / (n * (n - 1))  # the zero diagonal drops out of the sum
    dyy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * dxy - dxx - dyy)


def _median_distance(z: Tensor) -> float:
    d = torch.cdist(z, z)
    return float(d[d > 0].median()) if (d > 0).any() else 1.0


def mmd(
    x: Tensor,
    y: Tensor,
    bandwidths: Sequence[float] | None = None,
) -> float:
    """Unbiased squared MMD with a sum of RBF kernels (Gretton et al. 2012, Eq. 3).

    ``k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))`` over the bandwidths ``s``. With
    ``bandwidths=None`` they are (0.25, 0.5, 1, 2, 4) times the median pairwise distance of
    the pooled sample (the median heuristic, spread over scales). x: (N, D), y: (M, D).
    """
    x = flatten64(x)
    y = flatten64(y).to(x.device)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("mmd needs at least 2 points in each set.")
    if bandwidths is None:
        med = _median_distance(torch.cat([x, y]))
        bandwidths = [med * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        d2 = torch.cdist(a, b).square()  # (len(a), len(b))
        return sum(torch.exp(-d2 / (2 * s**2)) for s in bandwidths)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    # U-statistics: leave out the diagonal k(x_i, x_i), which would bias the estimate upwards
    exx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    eyy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(exx + eyy - 2 * kxy.mean())


_TWO_SAMPLE_METRICS: dict[str, Callable[[Tensor, Tensor], float]] = {
    "energy": energy_distance,
    "mmd": mmd,
}


@dataclass
class TwoSampleScore:
    """A distance between samples and data, beside the real-vs-real floor at the same size.

    ``real_floor`` is the mean, ``real_p95`` the 95th percentile of the metric between two
    independent real sets of ``n`` points each: values below ``real_p95`` are as close to the
    data as the data are to themselves.
    """

    value: float
    real_floor: float
    real_p95: float
    metric: str = "energy"
    n: int = 0
    sets: int = 1  # sample sets averaged into value
    value_se: float | None = None  # standard error of value over the sets (sets > 1)

    def __str__(self) -> str:
        of = f" ± {self.value_se:.2g}, mean of {self.sets} sets" if self.sets > 1 else ""
        return (
            f"{self.metric} {self.value:.4g}{of} (real-vs-real floor {self.real_floor:.4g}, "
            f"95th pct {self.real_p95:.4g}, n={self.n})"
        )


def two_sample_score(
    samples: Tensor | Sequence[Tensor],
    real: Tensor | Callable[..., Tensor],
    *,
    metric: str = "energy",
    repeats: int = 5,
    seed: int = 0,
) -> TwoSampleScore:
    """Compare ``samples`` (n, D) with the data, and report the real-vs-real floor.

    ``real`` is either a tensor of data points or a sampler called as ``real(n, seed=s)``
    (e.g. ``functools.partial(data.toy_2d, "moons")``). With a sampler, every real set is a
    fresh draw of n points, with seeds ``10000 * (seed + 1) + i`` so that they are not the
    training set (usually drawn with a small seed). With a tensor, each comparison uses two
    disjoint random subsets of ``n = min(len(samples), len(real) // 2)`` points and
    ``samples`` is cut to its first n, so value and floor are estimated at the same size.
    ``repeats`` real-vs-real pairs give the floor's mean and 95th percentile.

    ``samples`` may also be a list of K sets of n points each (K sample seeds of one model).
    The value is then the mean over the sets, each against its own fresh real set: an
    estimate of the metric's *expected* value at size n, with its standard error in
    ``value_se``, while the floor stays that of single pairs of n real points. One set's value
    swings by about the floor's own spread (a single set can land anywhere from below zero to
    several times the 95th percentile); the mean of K sets swings sqrt(K) times less, so
    "value / real_p95 <= 1" then says that the model's expected distance is within what two
    real sets of this size show, not that one draw was lucky. Pass ``repeats`` of 20 or more
    for a steadier percentile.
    """
    if metric not in _TWO_SAMPLE_METRICS:
        raise ValueError(f"metric must be one of {sorted(_TWO_SAMPLE_METRICS)}, got {metric!r}.")
    dist = _TWO_SAMPLE_METRICS[metric]
    sets = [samples] if isinstance(samples, Tensor) else list(samples)
    if not sets:
        raise ValueError("samples must be a tensor (n, D) or a non-empty list of them.")
    sets = [s.detach() for s in sets]
    n, k = len(sets[0]), len(sets)
    if any(len(s) != n for s in sets):
        raise ValueError(f"All sample sets must have the same size, got {[len(s) for s in sets]}.")
    device = sets[0].device
    if callable(real):
        # seeds far from the small ones a training set is usually drawn with
        draw = lambda i: real(n, seed=10_000 * (seed + 1) + i).to(device)
        # the floor's pairs do not depend on K: one set or many, the same floor
        pairs = [(draw(2 * i + 1), draw(2 * i + 2)) for i in range(repeats)]
        references = [draw(0)] + [draw(2 * repeats + j) for j in range(1, k)]
    else:
        real = real.detach().to(device)
        g = torch.Generator().manual_seed(seed)
        n = min(n, len(real) // 2)
        if n < 2:
            raise ValueError(f"Need at least 4 real points to estimate a floor, got {len(real)}.")
        sets = [s[:n] for s in sets]
        references, pairs = [], []
        for i in range(repeats + k):  # reference 0, the floor's pairs, then more references
            perm = torch.randperm(len(real), generator=g).to(real.device)
            a, b = real[perm[:n]], real[perm[n : 2 * n]]
            if i == 0 or i > repeats:
                references.append(a)
            else:
                pairs.append((a, b))
    values = np.array([dist(s, r) for s, r in zip(sets, references)])
    floors = np.array([dist(a, b) for a, b in pairs])
    return TwoSampleScore(
        value=float(values.mean()),
        real_floor=float(floors.mean()),
        real_p95=float(np.percentile(floors, 95)),
        metric=metric,
        n=n,
        sets=k,
        value_se=float(values.std(ddof=1) / np.sqrt(k)) if k > 1 else None,
    )
