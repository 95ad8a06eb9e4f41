"""Mode-collapse diagnostics: mode coverage on Gaussian mixtures, class histograms on images.

Every family is scored by these functions (they moved here from ``genjax.gan.diagnostics``:
a family does not import ``metrics``, and ``metrics`` does not import a family).

Mixtures (the VEEGAN / PacGAN protocol): each sample is assigned to its nearest mode
(Euclidean); it is *high quality* when within ``threshold * std`` of that mode (3 std
in the papers). A mode is *captured* when at least ``min_count`` high-quality samples
are assigned to it (``min_count = 1`` is the rule the issue states; raise it to
ignore stray samples). The mode histogram counts high-quality samples per mode; its
KL divergence to the uniform distribution over modes is 0 for perfectly balanced
coverage and ``log M`` when everything falls in one of ``M`` modes.

The core functions are pure jnp (jittable, and ``vmap``-able over seeds); the
``*_diagnostics`` wrappers return plain Python numbers for reports.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.types import Array


class ModeCoverage(NamedTuple):
    """Mode statistics of a set of samples (a pytree of arrays).

    Attributes:
      modes_captured: ``()`` int, modes with at least ``min_count`` high-quality samples.
      hq_fraction: ``()`` fraction of samples within ``threshold * std`` of their nearest mode.
      kl_to_uniform: ``()`` ``KL(h || U_M)`` of the normalised mode histogram ``h``
        (``inf`` when there is no high-quality sample).
      counts: ``(M,)`` int, high-quality samples per mode.
    """

    modes_captured: Array
    hq_fraction: Array
    kl_to_uniform: Array
    counts: Array


def histogram_kl_to_uniform(counts: Array) -> Array:
    """``KL(p || U) = sum_k p_k log(K p_k)`` for ``p = counts / sum(counts)`` (0 log 0 = 0).

    Args:
      counts: ``(K,)`` non-negative counts.

    Returns:
      ``()`` KL in nats; ``inf`` when all counts are zero.

    Raises:
      ValueError: ``counts`` is not 1-D, or (concrete counts) holds negative or
        non-finite values.
    """
    if np.ndim(counts) != 1:
        raise ValueError(f"counts must be a 1-D array (K,), got shape {np.shape(counts)}")
    if _checks.is_concrete(counts):
        a = np.asarray(counts, np.float64)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"counts must be non-negative finite numbers, got values in [{a.min():.3g}, {a.max():.3g}]")
    counts = jnp.asarray(counts, jnp.float32)
    total = jnp.sum(counts)
    p = counts / jnp.maximum(total, 1.0)
    k = counts.shape[-1]
    terms = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p * k, 1.0)), 0.0)
    return jnp.where(total > 0, jnp.sum(terms), jnp.inf)


def mode_coverage(
    samples: Array, modes: Array, *, std: float, threshold: float = 3.0, min_count: int = 1
) -> ModeCoverage:
    """Nearest-mode statistics of ``samples`` against mixture centres ``modes``.

    Args:
      samples: ``(n, d)`` generated points.
      modes: ``(M, d)`` mixture centres.
      std: isotropic standard deviation of each component.
      threshold: a sample is high quality within ``threshold * std`` of its nearest mode.
      min_count: high-quality samples a mode needs to count as captured.

    Returns:
      :class:`ModeCoverage`.

    Raises:
      ValueError: bad shapes, an empty sample set, or (concrete values) ``std`` or
        ``threshold`` not a positive finite number, non-finite samples.
    """
    for name, v in (("std", std), ("threshold", threshold)):
        if _checks.is_concrete(v):
            if np.ndim(v) != 0:
                raise ValueError(f"{name} must be a positive finite number (a scalar), got shape {np.shape(v)}")
            f = float(np.asarray(v))
            if not (np.isfinite(f) and f > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if np.ndim(samples) == 2 and np.shape(samples)[0] == 0:
        raise ValueError(f"samples is empty (shape {np.shape(samples)}); expected at least one sample (n, d)")
    _checks.finite("samples", samples)
    samples = jnp.asarray(samples)
    modes = jnp.asarray(modes, samples.dtype)
    if samples.ndim != 2 or modes.ndim != 2 or samples.shape[1] != modes.shape[1]:
        raise ValueError(
            f"samples must be (n, d) and modes (M, d) with the same d, got {samples.shape} and {modes.shape}"
        )
    sq = jnp.sum(jnp.square(samples[:, None, :] - modes[None, :, :]), axis=-1)  # (n, M)
    nearest = jnp.argmin(sq, axis=1)
    hq = jnp.sqrt(jnp.min(sq, axis=1)) <= threshold * std
    counts = jnp.zeros(modes.shape[0], jnp.int32).at[nearest].add(hq.astype(jnp.int32))
    return ModeCoverage(
        modes_captured=jnp.sum(counts >= min_count),
        hq_fraction=jnp.mean(hq.astype(jnp.float32)),
        kl_to_uniform=histogram_kl_to_uniform(counts),
        counts=counts,
    )


def mixture_diagnostics(samples: Array, density, *, threshold: float = 3.0, min_count: int = 1) -> dict:
    """:func:`mode_coverage` against a ``ToyDensity`` with ``modes`` / ``mode_std``
    (``8gaussians``, ``25gaussians``), as Python numbers.

    Returns:
      ``{"modes_captured", "num_modes", "hq_fraction", "kl_to_uniform", "mode_counts",
      "threshold_std", "min_count"}``.

    Raises:
      ValueError: the density has no modes, bad ``threshold`` / ``min_count``, or
        non-finite ``samples``.
    """
    if getattr(density, "modes", None) is None or getattr(density, "mode_std", None) is None:
        raise ValueError(
            f"density {getattr(density, 'name', density)!r} has no modes/mode_std; mode diagnostics "
            "need a Gaussian mixture such as '8gaussians' or '25gaussians'"
        )
    threshold = _checks.positive_float("threshold", threshold)
    min_count = _checks.positive_int("min_count", min_count)
    _checks.finite("samples", samples)
    cov = mode_coverage(samples, density.modes, std=density.mode_std, threshold=threshold, min_count=min_count)
    return {
        "modes_captured": int(cov.modes_captured),
        "num_modes": int(density.modes.shape[0]),
        "hq_fraction": float(cov.hq_fraction),
        "kl_to_uniform": float(cov.kl_to_uniform),
        "mode_counts": np.asarray(cov.counts).tolist(),
        "threshold_std": threshold,
        "min_count": min_count,
    }


def class_histogram(
    samples: Array, classify_fn: Callable[[Array], Array], *, num_classes: int | None = None, batch_size: int = 500
) -> dict:
    """Class histogram of samples under a classifier, and its KL to uniform.

    Args:
      samples: ``(n, *data_shape)`` generated images.
      classify_fn: ``classify_fn(x) -> (b, K)`` logits (any monotone class scores).
      num_classes: K; default the classifier's output width.
      batch_size: samples classified per call.

    Returns:
      ``{"counts": [K ints], "frequencies": [K floats], "classes_covered": int,
      "kl_to_uniform": float, "max_class_fraction": float, "uniform_kl_max": log K}``
      (``uniform_kl_max`` is the KL when every sample falls in one class).
    """
    n = int(np.shape(samples)[0])
    if n == 0:
        raise ValueError("samples is empty")
    batch_size = _checks.positive_int("batch_size", batch_size)
    labels = []
    for i in range(0, n, batch_size):
        logits = classify_fn(samples[i : i + batch_size])
        if np.ndim(logits) != 2:
            raise ValueError(f"classify_fn must return (batch, num_classes) logits, got shape {np.shape(logits)}")
        num_classes = num_classes or int(np.shape(logits)[1])
        labels.append(np.asarray(jnp.argmax(logits, axis=-1)))
    counts = np.bincount(np.concatenate(labels), minlength=num_classes)[:num_classes]
    freq = counts / counts.sum()
    return {
        "counts": counts.tolist(),
        "frequencies": freq.tolist(),
        "classes_covered": int((counts > 0).sum()),
        "kl_to_uniform": float(histogram_kl_to_uniform(jnp.asarray(counts))),
        "max_class_fraction": float(freq.max()),
        "uniform_kl_max": math.log(num_classes),
    }
