"""Classifier-based image metrics: FCD, precision/recall/coverage, class accuracy.

Frechet classifier distance ``fcd`` (FID, Heusel et al. 2017, with a small classifier trained
on the data set instead of Inception), ``precision_recall_coverage`` (Kynkaanniemi et al.
2019; Naeem et al. 2020) and ``classifier_accuracy``. Images are float in [0, 1], shape
(N, 1, 8, 8) for ``"digits"`` or (N, 1, 28, 28) for ``"fashion"``. The classifiers are trained
by ``tools/train_classifiers.py`` and committed in ``data/classifiers/``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from coursekit.metrics.two_sample import flatten64

CLASSIFIER_DIR = Path(__file__).resolve().parents[2] / "data" / "classifiers"
CLASSIFIER_NAMES = ("digits", "fashion")


class Classifier(nn.Module):
    """A small CNN: ``len(widths)`` blocks of conv3x3-ReLU-maxpool2, then two linear layers.

    x: (N, 1, S, S) float in [0, 1] -> logits (N, num_classes).
    ``features(x)`` -> (N, feature_dim): the penultimate layer, *before* its ReLU, whose
    statistics FCD compares (pre-activations are closer to Gaussian than rectified ones).
    """

    def __init__(
        self,
        image_size: int,
        widths: Sequence[int] = (32, 64),
        feature_dim: int = 128,
        num_classes: int = 10,
    ):
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = []
        ch, size = 1, image_size
        for w in widths:
            layers += [nn.Conv2d(ch, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            ch, size = w, size // 2  # max-pooling floors odd sizes: 7 -> 3
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * size * size, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        h = self.conv(x)  # (N, C_last, s, s)
        return self.fc(h.flatten(1))  # (N, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.features(x)))  # (N, num_classes)


def _classifier_paths(name: str) -> tuple[Path, Path]:
    if name not in CLASSIFIER_NAMES:
        raise ValueError(f"Unknown classifier {name!r}; choose one of {CLASSIFIER_NAMES}.")
    return CLASSIFIER_DIR / f"{name}.pt", CLASSIFIER_DIR / f"{name}.json"


def classifier_info(name: str) -> dict:
    """The JSON stored next to the weights: architecture, test accuracy, training set-up."""
    _, meta_path = _classifier_paths(name)
    if not meta_path.exists():
        raise FileNotFoundError(_missing_classifier_message(name, meta_path))
    return json.loads(meta_path.read_text())


def _missing_classifier_message(name: str, path: Path) -> str:
    return (
        f"The evaluation classifier {name!r} is missing ({path}). It is committed in the "
        "repository's data/classifiers/; if you installed coursekit without the repository, "
        "clone it, or regenerate the weights with `python tools/train_classifiers.py "
        f"--only {name}` from the repository root."
    )


@functools.cache
def _load_classifier(name: str, device: str) -> Classifier:
    weights_path, _ = _classifier_paths(name)
    if not weights_path.exists():
        raise FileNotFoundError(_missing_classifier_message(name, weights_path))
    arch = classifier_info(name)["architecture"]
    net = Classifier(**arch)
    net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    net.requires_grad_(False)
    return net.eval().to(device)


def classifier(name: str, device: torch.device | str = "cpu") -> Classifier:
    """The evaluation classifier ``"digits"`` (8x8) or ``"fashion"`` (28x28), in eval mode.

    Loaded once per device from ``data/classifiers/`` and cached; do not train it in place.
    """
    return _load_classifier(name, str(torch.device(device)))


def _where(x) -> str:
    # the classifier runs where the images live (a tensor's or an ImageSet's .device)
    return str(torch.device(getattr(x, "device", "cpu")))


def _prepare_images(x, net: Classifier, what: str) -> Tensor:
    """ImageSet or tensor -> float (N, 1, S, S) in [0, 1] on the caller's device, checked."""
    if hasattr(x, "float") and hasattr(x, "images"):  # an ImageSet
        x = x.float()
    x = torch.as_tensor(x).detach().float()
    S = net.image_size
    if x.dim() != 4 or x.shape[1:] != (1, S, S):
        raise ValueError(
            f"{what} must have shape (N, 1, {S}, {S}) for this classifier, got {tuple(x.shape)}. "
            "Pick the classifier that matches the images: classifier='digits' for 8x8, "
            "classifier='fashion' for 28x28."
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.5 or hi > 1.5:
        raise ValueError(
            f"{what} ranges over [{lo:.3g}, {hi:.3g}] but the classifier expects floats in [0, 1]. "
            "Map the samples back to [0, 1] (e.g. (x + 1) / 2, or ImageSet.float())."
        )
    # the classifier never saw values outside [0, 1]; small overshoots of a sampler are clipped
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def classifier_features(x: Tensor, classifier: str = "digits", batch_size: int = 1000) -> Tensor:
    """Penultimate-layer features (N, feature_dim), float64 on CPU, of images (N, 1, S, S)."""
    net = _load_classifier(classifier, _where(x))
    x = _prepare_images(x, net, "images")
    return torch.cat([net.features(b).double().cpu() for b in x.split(batch_size)])


@torch.no_grad()
def classifier_accuracy(
    samples: Tensor, labels: Tensor, classifier: str = "digits", batch_size: int = 1000
) -> float:
    """Fraction of ``samples`` (N, 1, S, S) that the classifier assigns to ``labels`` (N,).

    Judges class-conditional samples: compare with the classifier's test accuracy
    (``classifier_info(name)["test_accuracy"]``), the value for real images.
    """
    net = _load_classifier(classifier, _where(samples))
    x = _prepare_images(samples, net, "samples")
    preds = torch.cat([net(b).argmax(dim=1) for b in x.split(batch_size)])
    return float((preds.cpu() == torch.as_tensor(labels).cpu()).float().mean())


# ---------------------------------------------------------------------------------------------
# Frechet distance


def feature_statistics(feats: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), float64."""
    f = flatten64(feats).cpu().numpy()
    if len(f) < 2:
        raise ValueError("Need at least 2 feature vectors to estimate a covariance.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^{1/2})`` (Dowson & Landau 1982; FID,
    Heusel et al. 2017, Eq. 6), in float64.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    cov1, cov2 = (
        np.atleast_2d(np.asarray(cov1, np.float64)),
        np.atleast_2d(np.asarray(cov2, np.float64)),
    )
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError(
            f"Shapes differ: mu {mu1.shape} vs {mu2.shape}, cov {cov1.shape} vs {cov2.shape}."
        )
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        # singular product (fewer samples than dimensions): regularize as pytorch-fid does
        offset = np.eye(len(cov1)) * 1e-6
        covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    # sqrtm of a product of PSD matrices is real in exact arithmetic; drop round-off imag parts
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


@dataclass
class FCDScore:
    """Frechet classifier distance of samples, beside the real-vs-real floor at the same size."""

    value: float
    floor: float
    n: int = 0
    classifier: str = "digits"

    def __str__(self) -> str:
        return f"FCD {self.value:.3g} (real-vs-real floor {self.floor:.3g}, n={self.n})"


def fcd(
    samples: Tensor,
    real,
    *,
    classifier: str = "digits",
    repeats: int = 3,
    seed: int = 0,
) -> FCDScore:
    """Frechet classifier distance between ``samples`` and ``real`` images, with its floor.

    samples: (N, 1, S, S) float in [0, 1]; real: such a tensor or an ImageSet. ``real`` is
    shuffled (``seed``) and split into two disjoint halves A and B of
    ``n = min(N, len(real) // 2)`` images; ``samples`` are cut to their first n.
    value = FD(samples, A) and floor = FD(B, A): both at the same size, since FD's bias grows
    as the size shrinks. Both are averaged over ``repeats`` random splits. Use
    n > feature_dim (64 for digits, 128 for fashion) so the covariances have full rank.
    """
    fake = classifier_features(samples, classifier)
    real_f = classifier_features(real, classifier)
    n = min(len(fake), len(real_f) // 2)
    if n < 2:
        raise ValueError(
            f"fcd needs at least 2 samples and 4 real images, got {len(fake)}, {len(real_f)}."
        )
    stats_fake = feature_statistics(fake[:n])
    g = torch.Generator().manual_seed(seed)
    values, floors = [], []
    for _ in range(repeats):
        perm = torch.randperm(len(real_f), generator=g)
        stats_a = feature_statistics(real_f[perm[:n]])
        stats_b = feature_statistics(real_f[perm[n : 2 * n]])
        values.append(frechet_distance(*stats_fake, *stats_a))
        floors.append(frechet_distance(*stats_b, *stats_a))
    return FCDScore(
        value=float(np.mean(values)), floor=float(np.mean(floors)), n=n, classifier=classifier
    )


# ---------------------------------------------------------------------------------------------
# Precision, recall, density, coverage


@dataclass
class PRDC:
    """Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

    precision: fraction of fakes inside some real point's k-NN ball (fidelity).
    recall: fraction of reals inside some fake point's k-NN ball (diversity).
    density: mean number of real balls holding a fake, over k (~1 when matched; unbounded).
    coverage: fraction of real balls holding at least one fake.
    """

    precision: float
    recall: float
    density: float
    coverage: float

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.3f}, recall {self.recall:.3f}, "
            f"density {self.density:.3f}, coverage {self.coverage:.3f}"
        )


def _kth_neighbour_distance(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of x (N, D) to its k-th nearest other row: (N,)."""
    out = []
    for rows in x.split(chunk):
        d = torch.cdist(rows, x)  # (chunk, N), includes the zero distance to itself
        out.append(d.kthvalue(k + 1, dim=1).values)  # k + 1: skip the point itself
    return torch.cat(out)


def precision_recall_coverage(real_feats: Tensor, fake_feats: Tensor, k: int = 5) -> PRDC:
    """PRDC of fake features (M, D) against real features (N, D) with k-NN balls (k=5)."""
    real, fake = flatten64(real_feats), flatten64(fake_feats)
    fake = fake.to(real.device)
    if min(len(real), len(fake)) <= k:
        raise ValueError(
            f"Need more than k={k} real and fake points, got {len(real)}, {len(fake)}."
        )
    r_real = _kth_neighbour_distance(real, k)  # (N,)
    r_fake = _kth_neighbour_distance(fake, k)  # (M,)
    d = torch.cdist(real, fake)  # (N, M)
    inside_real_ball = d <= r_real[:, None]  # (N, M): fake j inside real ball i
    precision = inside_real_ball.any(dim=0).double().mean()
    recall = (d <= r_fake[None, :]).any(dim=1).double().mean()
    density = inside_real_ball.sum(dim=0).double().mean() / k
    # coverage: the nearest fake of real i lies within real i's ball
    coverage = (d.min(dim=1).values <= r_real).double().mean()
    return PRDC(float(precision), float(recall), float(density), float(coverage))
