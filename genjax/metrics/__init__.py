"""Metrics: likelihood units (``bits_per_dim``), the domain feature classifier
(``features``), sample-quality metrics on its features (``sample_quality``), and on toy
densities the exact KL and mixture mode coverage (``toy``).

The all-in-one function is ``genjax.metrics.sample_quality.sample_quality``; it is not
re-exported here because the name would shadow its module.
"""

from genjax.metrics.features import Classifier, FeatureClassifier, get_classifier, train_classifier
from genjax.metrics.likelihood import bits_per_dim
from genjax.metrics.toy import exact_kl, mixture_diagnostics, mode_coverage
from genjax.metrics.sample_quality import (
    classifier_score,
    density_coverage,
    fid_from_features,
    frechet_distance,
    kid,
    precision_recall,
    real_vs_real_baseline,
    sample_quality_from_features,
)

__all__ = [
    "Classifier",
    "FeatureClassifier",
    "bits_per_dim",
    "classifier_score",
    "density_coverage",
    "exact_kl",
    "fid_from_features",
    "frechet_distance",
    "get_classifier",
    "kid",
    "mixture_diagnostics",
    "mode_coverage",
    "precision_recall",
    "real_vs_real_baseline",
    "sample_quality_from_features",
    "train_classifier",
]
