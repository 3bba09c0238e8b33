"""Evaluation: likelihood units, two-sample distances, and classifier-based image metrics.

Units: log-likelihoods and NLLs are in **nats** unless the name says bits
(``bits_per_dim``, ``nats_to_bits``). One bit is ``log(2)`` nats.

Sample quality
--------------
- Vectors (2-D toy data): ``energy_distance`` (Szekely & Rizzo 2013), ``mmd`` (Gretton et al.
  2012) and ``two_sample_score``, which prints a value beside its *real-vs-real floor*: the
  same metric between two independent real sets of the same size. A model cannot be told
  apart from the data once its value reaches the floor.
- Images: Frechet classifier distance ``fcd`` (FID, Heusel et al. 2017, with a small
  classifier trained on the data set instead of Inception), ``precision_recall_coverage``
  (Kynkaanniemi et al. 2019; Naeem et al. 2020) and ``classifier_accuracy`` for
  class-conditional samples. Images are float in [0, 1], shape (N, 1, 8, 8) for ``"digits"``
  or (N, 1, 28, 28) for ``"fashion"``. The classifiers are trained by
  ``tools/train_classifiers.py`` and committed in ``data/classifiers/``.
- Copying: ``memorisation_score`` (``memorisation.py``), the fraction of samples nearer to a training
  image than most held-out real images are, in the same classifier features.
"""

from coursekit.metrics.classifiers import (
    CLASSIFIER_DIR,
    CLASSIFIER_NAMES,
    PRDC,
    Classifier,
    FCDScore,
    classifier,
    classifier_accuracy,
    classifier_features,
    classifier_info,
    fcd,
    feature_statistics,
    frechet_distance,
    precision_recall_coverage,
)
from coursekit.metrics.memorisation import (
    Memorisation,
    memorisation_score,
    nearest_neighbour_distance,
)
from coursekit.metrics.two_sample import TwoSampleScore, energy_distance, mmd, two_sample_score
from coursekit.metrics.units import LN2, bits_per_dim, bits_to_nats, nats_to_bits

__all__ = [
    "CLASSIFIER_DIR",
    "CLASSIFIER_NAMES",
    "FCDScore",
    "PRDC",
    "Classifier",
    "LN2",
    "Memorisation",
    "TwoSampleScore",
    "bits_per_dim",
    "bits_to_nats",
    "classifier",
    "classifier_accuracy",
    "classifier_features",
    "classifier_info",
    "energy_distance",
    "fcd",
    "feature_statistics",
    "frechet_distance",
    "memorisation_score",
    "mmd",
    "nearest_neighbour_distance",
    "nats_to_bits",
    "precision_recall_coverage",
    "two_sample_score",
]
