"""Metrics: likelihood units (``bits_per_dim``), the domain feature classifier
(``features``), sample-quality metrics on its features (``sample_quality``), mode
coverage and class histograms (``modes``), the exact KL on toy densities (``toy``), retrieval on embeddings (``retrieval``:
cosine ``similarity``, ``recall_at_k``, ``zero_shot_accuracy``, ``r_precision``), and
the one evaluation path every model goes through (``evaluation``; its entry point
``evaluate`` is re-exported here).

The all-in-one function ``genjax.metrics.sample_quality.sample_quality`` is not
re-exported: the name would shadow its module.
"""

from genjax.metrics.features import Classifier, FeatureClassifier, get_classifier, train_classifier
from genjax.metrics.likelihood import bits_per_dim
from genjax.metrics.modes import (
    ModeCoverage,
    class_histogram,
    histogram_kl_to_uniform,
    mixture_diagnostics,
    mode_coverage,
)
from genjax.metrics.toy import exact_kl
from genjax.metrics.retrieval import r_precision, recall_at_k, similarity, zero_shot_accuracy
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
from genjax.metrics.evaluation import evaluate, likelihood, likelihood_convention

__all__ = [
    "Classifier",
    "FeatureClassifier",
    "ModeCoverage",
    "bits_per_dim",
    "class_histogram",
    "classifier_score",
    "density_coverage",
    "evaluate",
    "exact_kl",
    "fid_from_features",
    "frechet_distance",
    "get_classifier",
    "histogram_kl_to_uniform",
    "kid",
    "likelihood",
    "likelihood_convention",
    "mixture_diagnostics",
    "mode_coverage",
    "precision_recall",
    "r_precision",
    "real_vs_real_baseline",
    "recall_at_k",
    "sample_quality_from_features",
    "similarity",
    "train_classifier",
    "zero_shot_accuracy",
]
