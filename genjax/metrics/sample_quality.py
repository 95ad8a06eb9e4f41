"""Sample-quality metrics on feature arrays: FID, KID, precision/recall,
density/coverage and the classifier score.

Every function takes features ``(n, d)`` (any float array; computed in float64 NumPy)
from one feature extractor -- in genjax the domain classifier of
:mod:`genjax.metrics.features` -- and returns Python floats (or a dict of them).
:func:`sample_quality` runs the extractor once per image set and computes them all;
:func:`real_vs_real_baseline` computes the same numbers between two disjoint halves of
the real data, the reference row that says what "as good as the data" looks like at
that sample size (FID and KID are biased by the sample size, so compare models only at
equal ``n``).

Conventions:

* **FID** (Heusel et al. 2017): ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``
  with the unbiased (``n - 1``) sample covariances. ``tr (S1 S2)^{1/2}`` is computed as
  ``sum_i sqrt(lambda_i)`` over the eigenvalues of the symmetric PSD matrix
  ``S1^{1/2} S2 S1^{1/2}`` (same spectrum as ``S1 S2``), with ``S1^{1/2}`` from
  ``eigh``. This route is real by construction, so there is no imaginary part to drop;
  negative eigenvalues of order round-off (singular covariances, e.g. ``n <= d``)
  are clipped to 0. The reference implementation (``scipy.linalg.sqrtm`` of
  ``S1 S2``) adds ``eps * I`` to both covariances when the product is singular; pass
  ``eps`` > 0 to do the same here (default 0: not needed by the eigen route).
* **KID** (Binkowski et al. 2018): unbiased estimator of MMD^2 with the cubic
  polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, averaged over ``num_subsets``
  random subsets of ``subset_size`` from each set (drawn without replacement within a
  subset); the mean and the standard deviation over subsets are returned -- or one
  value and no spread when every subset would be the whole of both sets. Unbiased
  means it can be negative for two samples of the same distribution.
* **Precision / recall** (Kynkaanniemi et al. 2019): the real manifold is the union of
  closed balls around each real feature with radius its distance to its ``k``-th
  nearest other real feature; precision is the fraction of fake features inside it.
  Recall swaps the roles (fake manifold, fraction of real features inside).
* **Density / coverage** (Naeem et al. 2020): with the same real balls (``k`` = 5 by
  default) but open, ``density = (1 / (k M)) sum_j #{i : Y_j in B(X_i)}`` (can exceed
  1) and ``coverage = (1 / N) #{i : some Y_j in B(X_i)}``. Open balls make the density
  of a set against itself exactly 1 when its distances are distinct (each ball holds
  its centre and ``k - 1`` others).
* **Classifier score** (the Inception-score analogue, Salimans et al. 2016):
  ``exp(E_x KL(p(y|x) || p(y)))`` with ``p(y) = E_x p(y|x)``; between 1 (every sample
  gets the same prediction) and ``K`` (confident and balanced over ``K`` classes).

Distances are computed in row blocks, so memory stays ``O(block * n)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from genjax import _checks
from genjax.metrics.modes import class_histogram

__all__ = [
    "classifier_score",
    "density_coverage",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "kid",
    "precision_recall",
    "real_vs_real_baseline",
    "sample_quality",
    "sample_quality_from_features",
]

_BLOCK = 1024  # rows per distance block


# --------------------------------------------------------------------------- checks


def _features(name: str, f, *, min_n: int = 2, why: str = "") -> np.ndarray:
    """``f`` as a finite float64 ``(n, d)`` array with ``n >= min_n``."""
    a = np.asarray(f)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D feature array (n, d), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a real-valued array, got dtype {a.dtype}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has feature dimension 0 (shape {a.shape})")
    if a.shape[0] < min_n:
        raise ValueError(
            f"{name} has {a.shape[0]} samples, need at least {min_n}{why} (shape {a.shape})"
        )
    _checks.finite(name, a)
    return a.astype(np.float64)


def _same_dim(n1: str, a: np.ndarray, n2: str, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{n1} and {n2} must have the same feature dimension, got {a.shape[1]} ({n1} shape "
            f"{a.shape}) and {b.shape[1]} ({n2} shape {b.shape})"
        )


def _k(name: str, k) -> int:
    return _checks.positive_int(name, k)


# --------------------------------------------------------------------------- FID


def feature_statistics(f) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (``n - 1`` normaliser) of
    features ``f`` ``(n, d)``, float64.

    Raises:
      ValueError: ``f`` not ``(n, d)`` with ``n >= 2``, or non-finite.
    """
    f = _features("f", f, min_n=2, why=" for a covariance")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check_gaussian(mu_name: str, mu, sigma_name: str, sigma) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    if mu.ndim != 1:
        raise ValueError(f"{mu_name} must be a mean vector (d,), got shape {mu.shape}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(f"{sigma_name} must be a ({d}, {d}) covariance matching {mu_name}, got shape {sigma.shape}")
    _checks.finite(mu_name, mu)
    _checks.finite(sigma_name, sigma)
    scale = max(float(np.max(np.abs(sigma))), 1e-300)
    if not np.allclose(sigma, sigma.T, rtol=0.0, atol=1e-8 * scale):
        raise ValueError(f"{sigma_name} must be symmetric (a covariance matrix)")
    return mu, (sigma + sigma.T) / 2.0


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 0.0) -> float:
    """Squared Fréchet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and
    ``N(mu2, sigma2)``: ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``.

    Args:
      mu1, mu2: means ``(d,)``.
      sigma1, sigma2: symmetric PSD covariances ``(d, d)``.
      eps: added to the diagonal of both covariances first (the reference FID's
        offset for singular products; 0 by default, see the module docstring).

    Returns:
      The distance (``>= 0`` up to round-off, clipped at 0), in squared feature units.

    Raises:
      ValueError: shape mismatch, non-finite or non-symmetric input, a covariance
        with an eigenvalue below ``-1e-6`` times its largest, or a negative ``eps``.
    """
    mu1, sigma1 = _check_gaussian("mu1", mu1, "sigma1", sigma1)
    mu2, sigma2 = _check_gaussian("mu2", mu2, "sigma2", sigma2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same dimension, got shapes {mu1.shape} and {mu2.shape}")
    if isinstance(eps, bool) or not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a non-negative finite number, got {eps!r}")
    d = mu1.shape[0]
    if eps:
        sigma1 = sigma1 + eps * np.eye(d)
        sigma2 = sigma2 + eps * np.eye(d)
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        w = np.linalg.eigvalsh(s)
        if w[0] < -1e-6 * max(w[-1], 1e-300):
            raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {w[0]:.3g})")
    a = _sqrt_psd(sigma1)
    m = a @ sigma2 @ a
    tr_covmean = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid_from_features(f1, f2, *, eps: float = 0.0) -> float:
    """Fréchet distance between Gaussians fitted to features ``f1`` ``(n1, d)`` and
    ``f2`` ``(n2, d)`` (:func:`feature_statistics`, then :func:`frechet_distance`).

    Raises:
      ValueError: not 2-D, different ``d``, fewer than 2 samples, non-finite.
    """
    f1 = _features("f1", f1, min_n=2, why=" for a covariance")
    f2 = _features("f2", f2, min_n=2, why=" for a covariance")
    _same_dim("f1", f1, "f2", f2)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


# --------------------------------------------------------------------------- KID


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    off = m * (m - 1)
    return float(
        (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2.0 * kxy.mean()
    )


def kid(f1, f2, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Kernel Inception Distance analogue: unbiased MMD^2, cubic polynomial kernel.

    For each of ``num_subsets`` subsets, draw ``m = min(subset_size, n1, n2)`` rows of
    each set without replacement and compute
    ``sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2``
    with ``k(x, y) = (x . y / d + 1)^3``.

    When ``m`` is both set sizes (``subset_size >= n1 == n2``), every "subset" is the
    whole of both sets and the estimator does not depend on the draw: KID is then one
    value on all rows, ``kid_std`` is None (no spread to report, not 0) and
    ``num_subsets`` is 1. Ask for ``subset_size < n`` (the KID paper's subsets of 1000
    out of 50000) for a spread over subsets.

    Args:
      f1: features ``(n1, d)``.
      f2: features ``(n2, d)``.
      num_subsets: number of subsets.
      subset_size: rows per subset (capped at ``min(n1, n2)``).
      seed: seed of ``numpy.random.default_rng`` drawing the subsets.

    Returns:
      ``{"kid_mean", "kid_std", "num_subsets", "subset_size", "kid_how"}``: mean and
      standard deviation (``ddof=0``) over the subsets actually used, in squared kernel
      units; the subset count and size used; ``kid_how`` says which in words.

    Raises:
      ValueError: not 2-D, different ``d``, fewer than 2 samples, non-finite, bad
        ``num_subsets`` / ``subset_size``.
    """
    f1 = _features("f1", f1, min_n=2, why=" for the unbiased MMD estimate")
    f2 = _features("f2", f2, min_n=2, why=" for the unbiased MMD estimate")
    _same_dim("f1", f1, "f2", f2)
    num_subsets = _checks.positive_int("num_subsets", num_subsets)
    subset_size = _checks.positive_int("subset_size", subset_size)
    if subset_size < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    if m == f1.shape[0] == f2.shape[0]:  # every subset would be both whole sets: one value
        return {
            "kid_mean": _mmd2_unbiased(f1, f2),
            "kid_std": None,
            "num_subsets": 1,
            "subset_size": m,
            "kid_how": f"one value on all {m} vs {m} rows (subsets of min({subset_size}, n) would all be the whole sets)",
        }
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        values[s] = _mmd2_unbiased(x, y)
    return {
        "kid_mean": float(values.mean()),
        "kid_std": float(values.std()),
        "num_subsets": num_subsets,
        "subset_size": m,
        "kid_how": f"mean and std over {num_subsets} random subsets of {m} rows of each set",
    }


# --------------------------------------------------------------------------- k-NN manifolds


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(a), len(b))``, clipped at 0."""
    # a fresh contiguous b^T: numpy sends ``x @ x.T`` of one buffer to syrk, whose
    # rounding differs from gemm's; always gemm keeps the distances of a set to itself
    # (the radii) and to an equal copy (the ball tests) bitwise identical
    dot = a @ np.ascontiguousarray(b.T)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * dot
    return np.maximum(d, 0.0)


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of ``x`` to its ``k``-th nearest *other* row
    ``(n,)`` (kept squared: a sqrt/square round trip would move ties)."""
    out = np.empty(x.shape[0])
    for i in range(0, x.shape[0], _BLOCK):
        d = _sq_dists(x[i : i + _BLOCK], x)
        rows = np.arange(d.shape[0])
        d[rows, i + rows] = 0.0  # the point itself, exactly 0 despite round-off
        # index k of the sorted row: index 0 is the point itself
        out[i : i + _BLOCK] = np.partition(d, k, axis=1)[:, k]
    return out


def _ball_counts(query: np.ndarray, centres: np.ndarray, r2: np.ndarray, *, closed: bool) -> np.ndarray:
    """For each query row, the number of balls ``B(centres_i, sqrt(r2_i))`` holding it.

    Distances are computed centre-major (``_sq_dists(centres_block, query)``), the
    same orientation as the radii in :func:`_knn_sq_radii`, so a query set equal to the
    centres reproduces the radii's distances bit for bit and ties resolve consistently.
    """
    out = np.zeros(query.shape[0], np.int64)
    for i in range(0, centres.shape[0], _BLOCK):
        d = _sq_dists(centres[i : i + _BLOCK], query)
        rb = r2[i : i + _BLOCK, None]
        out += (d <= rb if closed else d < rb).sum(0)
    return out


def _manifold_inputs(real, fake, k, k_name: str) -> tuple[np.ndarray, np.ndarray, int]:
    k = _k(k_name, k)
    why = f" for the {k_name}={k} nearest neighbours (n > k)"
    real = _features("real", real, min_n=k + 1, why=why)
    fake = _features("fake", fake, min_n=1)
    _same_dim("real", real, "fake", fake)
    return real, fake, k


def precision_recall(real, fake, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake`` against
    ``real`` with ``k``-NN manifolds (closed balls).

    Args:
      real: real features ``(N, d)``, ``N > k``.
      fake: generated features ``(M, d)``, ``M > k``.
      k: neighbour rank defining each ball's radius.

    Returns:
      ``{"precision", "recall"}`` in ``[0, 1]``.

    Raises:
      ValueError: not 2-D, different ``d``, ``n <= k``, non-finite, bad ``k``.
    """
    real, fake, k = _manifold_inputs(real, fake, k, "k")
    fake = _features("fake", fake, min_n=k + 1, why=f" for the k={k} nearest neighbours (n > k)")
    real_r = _knn_sq_radii(real, k)
    fake_r = _knn_sq_radii(fake, k)
    precision = float(np.mean(_ball_counts(fake, real, real_r, closed=True) > 0))
    recall = float(np.mean(_ball_counts(real, fake, fake_r, closed=True) > 0))
    return {"precision": precision, "recall": recall}


def density_coverage(real, fake, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) of ``fake`` against ``real`` (open
    balls around the real features only).

    Args:
      real: real features ``(N, d)``, ``N > k``.
      fake: generated features ``(M, d)``, ``M >= 1``.
      k: neighbour rank defining each real ball's radius.

    Returns:
      ``{"density", "coverage"}``: density ``>= 0`` (1 for a set against itself),
      coverage in ``[0, 1]``.

    Raises:
      ValueError: not 2-D, different ``d``, ``N <= k``, non-finite, bad ``k``.
    """
    real, fake, k = _manifold_inputs(real, fake, k, "k")
    real_r = _knn_sq_radii(real, k)
    counts = _ball_counts(fake, real, real_r, closed=False)
    density = float(counts.sum() / (k * fake.shape[0]))
    # coverage: a real ball is covered when its nearest fake lies inside it
    covered = np.empty(real.shape[0], bool)
    for i in range(0, real.shape[0], _BLOCK):
        d = _sq_dists(real[i : i + _BLOCK], fake)  # centre-major, as in _ball_counts
        covered[i : i + _BLOCK] = d.min(1) < real_r[i : i + _BLOCK]
    return {"density": density, "coverage": float(covered.mean())}


# --------------------------------------------------------------------------- classifier score


def classifier_score(logits) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` with ``p(y|x) = softmax(logits)`` and
    ``p(y) = E_x p(y|x)`` (the Inception score, on the domain classifier).

    Args:
      logits: ``(n, K)`` class logits of ``n >= 1`` samples.

    Returns:
      The score in ``[1, K]``.

    Raises:
      ValueError: not 2-D, empty, or non-finite.
    """
    lg = _features("logits", logits, min_n=1)
    log_p = lg - lg.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))  # log p(y|x)
    p = np.exp(log_p)
    log_marg = np.log(p.mean(0))  # log p(y); -inf only where every p(y|x) underflows to 0
    terms = np.where(p > 0, p * (log_p - np.where(np.isfinite(log_marg), log_marg, 0.0)[None, :]), 0.0)
    return float(np.exp(terms.sum(1).mean()))


# --------------------------------------------------------------------------- all at once


def sample_quality_from_features(
    real_features,
    fake_features,
    *,
    real_logits=None,
    fake_logits=None,
    k_precision_recall: int = 3,
    k_density_coverage: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of this module on precomputed features (and logits).

    Args:
      real_features: ``(N, d)``.
      fake_features: ``(M, d)``.
      real_logits: optional ``(N, K)``; adds ``"real_classifier_score"``.
      fake_logits: optional ``(M, K)``; adds ``"classifier_score"`` and
        ``"class_histogram"`` (:func:`genjax.metrics.modes.class_histogram`).
      k_precision_recall: ``k`` of :func:`precision_recall`.
      k_density_coverage: ``k`` of :func:`density_coverage`.
      kid_subsets, kid_subset_size, seed: see :func:`kid`.

    Returns:
      ``{"fid", "kid_mean", "kid_std", "kid_subset_size", "kid_subsets", "kid_how", "precision", "recall",
      "density", "coverage", "num_real", "num_fake", "feature_dim", "k_precision_recall",
      "k_density_coverage"}`` plus the logit entries above; all Python numbers.

    Raises:
      ValueError: every check of the individual metrics, run before any work.
    """
    k_pr, k_dc = _check_settings(
        _num_rows(real_features),
        _num_rows(fake_features),
        k_precision_recall=k_precision_recall,
        k_density_coverage=k_density_coverage,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
    )
    real = _features("real_features", real_features, min_n=max(k_pr, k_dc) + 1)
    fake = _features("fake_features", fake_features, min_n=k_pr + 1)
    _same_dim("real_features", real, "fake_features", fake)
    for name, lg, f in (("real_logits", real_logits, real), ("fake_logits", fake_logits, fake)):
        if lg is not None:
            lg_arr = _features(name, lg, min_n=1)
            if lg_arr.shape[0] != f.shape[0]:
                raise ValueError(
                    f"{name} has {lg_arr.shape[0]} rows but the matching features have {f.shape[0]}"
                )

    out: dict[str, Any] = {"fid": fid_from_features(real, fake)}
    k = kid(real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    out.update(kid_mean=k["kid_mean"], kid_std=k["kid_std"], kid_subset_size=k["subset_size"],
               kid_subsets=k["num_subsets"], kid_how=k["kid_how"])
    out.update(precision_recall(real, fake, k=k_pr))
    out.update(density_coverage(real, fake, k=k_dc))
    out.update(
        num_real=int(real.shape[0]),
        num_fake=int(fake.shape[0]),
        feature_dim=int(real.shape[1]),
        k_precision_recall=k_pr,
        k_density_coverage=k_dc,
    )
    if fake_logits is not None:
        out["classifier_score"] = classifier_score(fake_logits)
        # the logits are the "samples" and the identity the classifier: no second pass
        out["class_histogram"] = class_histogram(np.asarray(fake_logits), lambda lg: lg)
    if real_logits is not None:
        out["real_classifier_score"] = classifier_score(real_logits)
    return out


def _num_rows(x) -> int:
    return int(np.shape(x)[0]) if np.ndim(x) else 0


def _check_settings(
    num_real: int, num_fake: int, *, k_precision_recall, k_density_coverage, kid_subsets, kid_subset_size, seed
) -> tuple[int, int]:
    """Checks the settings and the sample counts they need; returns the two ``k``."""
    k_pr = _k("k_precision_recall", k_precision_recall)
    k_dc = _k("k_density_coverage", k_density_coverage)
    _checks.positive_int("kid_subsets", kid_subsets)
    if _checks.positive_int("kid_subset_size", kid_subset_size) < 2:
        raise ValueError(f"kid_subset_size must be at least 2, got {kid_subset_size}")
    _checks.nonneg_int("seed", seed)
    kmax = max(k_pr, k_dc)
    if num_real <= kmax:
        raise ValueError(
            f"the real set has {num_real} samples, need more than k = {kmax} (k_precision_recall="
            f"{k_pr}, k_density_coverage={k_dc}) for the nearest-neighbour metrics"
        )
    if num_fake <= k_pr:
        raise ValueError(
            f"the fake set has {num_fake} samples, need more than k_precision_recall={k_pr} "
            "for the nearest-neighbour metrics"
        )
    return k_pr, k_dc


def _classifier_info(classifier) -> dict[str, Any]:
    return {
        "dataset": classifier.dataset,
        "config_hash": classifier.config_hash,
        "test_accuracy": float(classifier.test_accuracy),
        "seed": int(classifier.seed),
    }


def sample_quality(
    real_images,
    fake_images,
    classifier,
    *,
    k_precision_recall: int = 3,
    k_density_coverage: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """All sample-quality metrics of ``fake_images`` against ``real_images``.

    The classifier runs once per set (features and logits in one pass); then
    :func:`sample_quality_from_features`.

    Args:
      real_images: ``(N, *classifier.input_shape)`` in ``[0, 1]``.
      fake_images: ``(M, *classifier.input_shape)`` in ``[0, 1]``.
      classifier: a :class:`genjax.metrics.features.Classifier`.
      k_precision_recall, k_density_coverage, kid_subsets, kid_subset_size, seed:
        see :func:`sample_quality_from_features`.

    Returns:
      The dict of :func:`sample_quality_from_features` (with ``classifier_score``,
      ``real_classifier_score`` and ``class_histogram``) plus ``"classifier"``:
      ``{"dataset", "config_hash", "test_accuracy", "seed"}``.

    Raises:
      ValueError: images of the wrong shape or range (from the classifier), or any
        check of the metrics.
    """
    settings = dict(
        k_precision_recall=k_precision_recall,
        k_density_coverage=k_density_coverage,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
    )
    # the settings are checked before the classifier runs
    _check_settings(_num_rows(real_images), _num_rows(fake_images), **settings)
    real_f, real_l = classifier.embed(real_images)
    fake_f, fake_l = classifier.embed(fake_images)
    out = sample_quality_from_features(real_f, fake_f, real_logits=real_l, fake_logits=fake_l, **settings)
    out["classifier"] = _classifier_info(classifier)
    return out


def real_vs_real_baseline(
    real_images,
    classifier,
    *,
    k_precision_recall: int = 3,
    k_density_coverage: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`sample_quality` between two disjoint random halves of ``real_images``.

    The images are permuted with ``numpy.random.default_rng(seed)``; the first
    ``N // 2`` play "real", the next ``N // 2`` "fake" (an odd last image is unused).
    Report it next to models evaluated with ``N // 2`` samples against ``N // 2`` real
    images, since FID/KID/precision depend on the sample sizes.

    Args:
      real_images: ``(N, *classifier.input_shape)`` in ``[0, 1]``.
      classifier: a :class:`genjax.metrics.features.Classifier`.
      k_precision_recall, k_density_coverage, kid_subsets, kid_subset_size: as for
        :func:`sample_quality`.
      seed: seed of the split and of KID's subsets.

    Returns:
      The :func:`sample_quality` dict plus ``"split_seed"``.
    """
    x = np.asarray(real_images)
    if x.ndim < 1 or x.shape[0] < 4:
        raise ValueError(f"real_images needs at least 4 images to split in halves, got shape {x.shape}")
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    half = x.shape[0] // 2
    out = sample_quality(
        x[perm[:half]],
        x[perm[half : 2 * half]],
        classifier,
        k_precision_recall=k_precision_recall,
        k_density_coverage=k_density_coverage,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
    )
    out["split_seed"] = seed
    return out
