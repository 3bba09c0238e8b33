"""The capstone's measurements beside the families' usual ratings (lecture 10).

The evaluation harness (``evaluation.evaluate``) gives each trained model one row of numbers;
this module adds the few measurements a comparison of *families* needs, and turns numbers into
the ✓ / ✗ / ? of the table every course prints:

- ``slerp`` and ``path_length_ratio``: how smoothly a latent decodes. Two latents are joined
  by a spherical interpolation (it keeps the norm of Gaussian latents, which a straight line
  shrinks in the middle), decoded at ``steps + 1`` points, and the classifier-feature path
  length is divided by the feature distance of its two ends: 1 is a path that moves straight
  from one image to the other; a path that jumps back and forth, or through other digits,
  scores more.
- ``class_histogram_kl``: KL(data's class histogram ‖ samples'), in nats, with the classes
  predicted by the evaluation classifier for both sets. A family that drops a class scores
  high; additive smoothing (``pseudo_count``) keeps a missing class finite.
- ``rate``: a number against two stated thresholds -> "✓", "?" or "✗"; ``None`` -> "n/a";
  ``NOT_MEASURED`` ("—") marks a property a family has but that was not measured.
- ``kendall_tau``: the rank agreement of two seeds' scores of the same families.
- ``pareto_front``: the models that no other model beats on both cost and quality.
- ``weighted_ranking``: the families ordered by a weighted count of their ✓ (the widget).
- ``markdown_table``: measured ratings beside the seed ratings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from coursekit import metrics

GOOD, UNSURE, BAD, NONE, NOT_MEASURED = "✓", "?", "✗", "n/a", "—"
# a property the family lacks (n/a) counts as missing; one not measured (—) as unknown (?)
SCORE = {GOOD: 1.0, UNSURE: 0.5, BAD: 0.0, NONE: 0.0, NOT_MEASURED: 0.5}


def slerp(z_a: Tensor, z_b: Tensor, ts: Tensor) -> Tensor:
    """Spherical interpolation of rows: (B, ...) and (B, ...) at ts (S,) -> (S, B, ...).

    Falls back to the straight line where the two rows are (nearly) parallel.
    """
    a, b = z_a.flatten(1), z_b.flatten(1)  # (B, D)
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)  # (B,)
    omega = torch.acos(cos)  # (B,) the angle between the two latents
    t = ts.to(a).view(-1, 1, 1)  # (S, 1, 1)
    sin = torch.sin(omega).view(1, -1, 1)  # (1, B, 1)
    om = omega.view(1, -1, 1)
    near = sin.abs() < 1e-6
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * om) / torch.where(near, 1.0, sin))
    wb = torch.where(near, t, torch.sin(t * om) / torch.where(near, 1.0, sin))
    out = wa * a.unsqueeze(0) + wb * b.unsqueeze(0)  # (S, B, D)
    return out.view(len(ts), *z_a.shape)


@torch.no_grad()
def path_length_ratio(
    decode: Callable[[Tensor], Tensor],
    z_a: Tensor,
    z_b: Tensor,
    *,
    steps: int = 16,
    classifier: str = "digits",
) -> Tensor:
    """Feature path length / end-to-end feature distance of decoded interpolations, (B,).

    ``decode`` maps latents (N, ...) to images (N, C, H, W) in [0, 1]; the path from each row
    of ``z_a`` to the same row of ``z_b`` is decoded at ``steps + 1`` points of ``slerp``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    S, B = steps + 1, len(z_a)
    zs = slerp(z_a, z_b, torch.linspace(0, 1, S))  # (S, B, ...)
    images = decode(zs.reshape(S * B, *z_a.shape[1:]))  # (S*B, C, H, W)
    f = metrics.classifier_features(images.float().cpu(), classifier).double()
    f = f.view(S, B, -1)  # (S, B, F)
    length = (f[1:] - f[:-1]).norm(dim=-1).sum(0)  # (B,)
    direct = (f[-1] - f[0]).norm(dim=-1)  # (B,)
    return length / direct.clamp(min=1e-12)


@torch.no_grad()
def class_histogram_kl(
    samples: Tensor, real: Tensor, *, classifier: str = "digits", pseudo_count: float = 0.5
) -> float:
    """KL(real class histogram ‖ samples' class histogram) in nats, classes by ``classifier``."""
    net = metrics.classifier(classifier)

    def histogram(x: Tensor) -> Tensor:
        x = x.detach().float().cpu().clamp(0.0, 1.0)  # the classifier's range
        logits = torch.cat([net(xb) for xb in x.split(1000)])  # (N, K)
        counts = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double()
        counts = counts + pseudo_count
        return counts / counts.sum()

    p, q = histogram(real), histogram(samples)
    return float((p * (p / q).log()).sum())


def rate(value: float | None, *, good: float, bad: float, higher_is_better: bool = True) -> str:
    """ "✓" when ``value`` reaches ``good``, "✗" when it is past ``bad``, "?" between; "n/a"
    for None. With ``higher_is_better=False`` small values are good (good <= bad)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    if higher_is_better:
        if good < bad:
            raise ValueError(f"higher is better, so good ({good}) must be >= bad ({bad}).")
        return GOOD if value >= good else BAD if value < bad else UNSURE
    if good > bad:
        raise ValueError(f"lower is better, so good ({good}) must be <= bad ({bad}).")
    return GOOD if value <= good else BAD if value > bad else UNSURE


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two score lists over the same items (1: the same order)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two lists of the same length >= 2, got {len(a)} and {len(b)}.")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    n_a = concordant + discordant + ties_a
    n_b = concordant + discordant + ties_b
    if n_a == 0 or n_b == 0:
        return math.nan
    return (concordant - discordant) / math.sqrt(n_a * n_b)


def pareto_front(cost: Sequence[float], loss: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both (lower cost, lower loss), by cost."""
    front = []
    for i in range(len(cost)):
        dominated = any(
            cost[j] <= cost[i] and loss[j] <= loss[i] and (cost[j] < cost[i] or loss[j] < loss[i])
            for j in range(len(cost))
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: cost[i])


def weighted_ranking(
    ratings: Mapping[str, Mapping[str, str]], weights: Mapping[str, float]
) -> list[tuple[str, float]]:
    """Families by sum_c weight_c * score(rating_c) / sum_c weight_c, best first.

    Scores: ✓ 1, ? and — (not measured) 0.5, ✗ and n/a 0 (a property a family lacks counts as
    missing).
    """
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError("weights must be >= 0 with a positive sum.")
    scored = [
        (name, sum(w * SCORE[row[c]] for c, w in weights.items()) / total)
        for name, row in ratings.items()
    ]
    return sorted(scored, key=lambda item: -item[1])


def markdown_table(
    ratings: Mapping[str, Mapping[str, str]],
    columns: Sequence[str],
    seed: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """One row per family; a cell is the measured rating, then the seed's in brackets where the
    seed rates that family (a bracket in bold marks a disagreement)."""
    seed = seed or {}
    lines = ["| family | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in ratings.items():
        cells = []
        for c in columns:
            cell = row[c]
            if name in seed:
                theirs = seed[name][c]
                cell += f" ({theirs})" if theirs == row[c] else f" **({theirs})**"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
