"""Sample-quality metrics against closed forms and independent computations.

References used: closed-form Fréchet distances (1-D and commuting covariances),
``scipy.linalg.sqrtm`` of ``S1 S2`` (the reference FID route, where genjax uses
``eigh`` of a symmetric product), brute-force loops for the k-NN manifold metrics and
the definition of the Inception score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from genjax.metrics import sample_quality as sq


def _random_cov(rng, d, *, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0.0 if rank else 0.1) * np.eye(d)


# --------------------------------------------------------------------------- FID


def test_frechet_distance_one_dimensional_closed_form(rng):
    m1, m2 = rng.normal(size=2)
    v1, v2 = rng.uniform(0.1, 3.0, size=2)
    expected = (m1 - m2) ** 2 + (math.sqrt(v1) - math.sqrt(v2)) ** 2
    got = sq.frechet_distance(np.array([m1]), np.array([[v1]]), np.array([m2]), np.array([[v2]]))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_frechet_distance_commuting_covariances_closed_form(rng):
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # shared eigenvectors: S1 S2 = S2 S1
    s1, s2 = rng.uniform(0.05, 4.0, size=(2, d))
    mu1, mu2 = rng.normal(size=(2, d))
    sigma1, sigma2 = (q * s1) @ q.T, (q * s2) @ q.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = sq.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-10)
    # diagonal covariances (q = I) as well
    got_diag = sq.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got_diag == pytest.approx(expected, rel=1e-9, abs=1e-10)


def _fid_sqrtm_reference(f1, f2):
    """The reference FID route: scipy sqrtm of the (non-symmetric) product S1 S2."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_agrees_with_sqrtm_route_symmetric_and_zero_on_itself(rng):
    d = 8
    f1 = rng.normal(size=(300, d)) @ rng.normal(size=(d, d))
    f2 = rng.normal(size=(250, d)) @ rng.normal(size=(d, d)) + 0.5
    fid12 = sq.fid_from_features(f1, f2)
    assert fid12 == pytest.approx(_fid_sqrtm_reference(f1, f2), rel=1e-6, abs=1e-8)
    assert sq.fid_from_features(f2, f1) == pytest.approx(fid12, rel=1e-9, abs=1e-10)
    assert fid12 > 0.1
    assert sq.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8 * np.trace(np.cov(f1, rowvar=False)))


def test_fid_singular_covariances_stay_finite(rng):
    # n <= d: rank-deficient covariances, where sqrtm of the product is ill-conditioned
    f1 = rng.normal(size=(5, 12))
    f2 = rng.normal(size=(6, 12))
    got = sq.fid_from_features(f1, f2)
    assert np.isfinite(got) and got >= 0
    assert sq.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8)
    # the eps offset (reference convention) changes the value by O(sqrt(eps)) only
    assert sq.fid_from_features(f1, f2, eps=1e-6) == pytest.approx(got, abs=1e-2)


def test_frechet_distance_matches_monte_carlo_free_statistics(rng):
    # fid_from_features == frechet_distance of the (n-1)-normalised statistics
    f1, f2 = rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) * 2
    mu1, s1 = sq.feature_statistics(f1)
    np.testing.assert_allclose(s1, np.cov(f1, rowvar=False), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mu1, f1.mean(0), rtol=1e-12, atol=1e-14)
    mu2, s2 = sq.feature_statistics(f2)
    assert sq.fid_from_features(f1, f2) == pytest.approx(sq.frechet_distance(mu1, s1, mu2, s2), rel=1e-12)


def test_fid_errors():
    f = np.zeros((10, 4))
    with pytest.raises(ValueError, match="same feature dimension"):
        sq.fid_from_features(f, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="f2 has 1 samples, need at least 2"):
        sq.fid_from_features(f, np.zeros((1, 4)))
    bad = np.ones((10, 4))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="f1 contains 1 non-finite"):
        sq.fid_from_features(bad, f)
    with pytest.raises(ValueError, match="2-D feature array"):
        sq.fid_from_features(np.zeros(10), f)
    with pytest.raises(ValueError, match=r"sigma2 must be a \(2, 2\) covariance"):
        sq.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="sigma1 must be symmetric"):
        sq.frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma1 is not positive semi-definite"):
        sq.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


# --------------------------------------------------------------------------- KID


def _mmd2_loops(x, y):
    """Unbiased MMD^2 with the cubic kernel, by explicit double sums."""
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / m**2


def test_kid_single_subset_equals_double_sum(rng):
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) + 0.3
    out = sq.kid(x, y, num_subsets=1, subset_size=7)
    assert out["subset_size"] == 7 and out["num_subsets"] == 1
    assert out["kid_mean"] == pytest.approx(_mmd2_loops(x, y), rel=1e-10, abs=1e-12)
    assert out["kid_std"] is None  # one value: no spread to report


def test_kid_subsets_of_the_whole_sets_are_one_value_not_a_zero_spread(rng):
    """Defect A4: with n = 360 and subsets of min(1000, n), compare's "100 subsets" were
    100 copies of the whole sets (std 0). KID is then one value, and says so."""
    x, y = rng.normal(size=(9, 3)), rng.normal(size=(9, 3)) + 0.3
    out = sq.kid(x, y, num_subsets=100, subset_size=1000)
    assert out["num_subsets"] == 1 and out["subset_size"] == 9 and out["kid_std"] is None
    assert out["kid_mean"] == pytest.approx(_mmd2_loops(x, y), rel=1e-10, abs=1e-12)
    assert "one value on all 9 vs 9" in out["kid_how"]
    # subsets smaller than n are random draws with a real spread
    small = sq.kid(x, y, num_subsets=20, subset_size=5, seed=1)
    assert small["num_subsets"] == 20 and small["kid_std"] > 0 and "20 random subsets of 5" in small["kid_how"]
    q = sq.sample_quality_from_features(x, y, kid_subsets=100, kid_subset_size=1000)
    assert q["kid_std"] is None and q["kid_subsets"] == 1 and q["kid_how"] == out["kid_how"]


def test_kid_is_unbiased_and_detects_a_shift(rng):
    d, m, draws = 4, 20, 400
    same = np.array(
        [sq.kid(rng.normal(size=(m, d)), rng.normal(size=(m, d)), num_subsets=1, subset_size=m)["kid_mean"]
         for _ in range(draws)]
    )
    se = same.std(ddof=1) / math.sqrt(draws)
    # unbiased: the mean over independent draws is 0 within 4 standard errors
    assert abs(same.mean()) < 4 * se
    assert (same < 0).any()  # an unbiased estimate of 0 must go negative sometimes
    shifted = sq.kid(rng.normal(size=(200, d)), rng.normal(size=(200, d)) + 1.0, num_subsets=10, subset_size=100)
    assert shifted["kid_mean"] > 20 * se
    # mean / std over subsets: median 8.3, 0.5th percentile 5.0 over 300 draws (one CI run saw 4.0)
    assert shifted["kid_mean"] > 3 * shifted["kid_std"]


def test_kid_subset_size_capped_and_errors(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(12, 2))
    assert sq.kid(x, y, num_subsets=3, subset_size=1000)["subset_size"] == 12
    with pytest.raises(ValueError, match="subset_size must be at least 2"):
        sq.kid(x, y, subset_size=1)
    with pytest.raises(ValueError, match="num_subsets must be a positive integer"):
        sq.kid(x, y, num_subsets=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        sq.kid(x, rng.normal(size=(12, 3)))


# --------------------------------------------------------------------------- k-NN manifolds


def _radii_brute(x, k):
    n = len(x)
    r = []
    for i in range(n):
        dists = sorted(np.linalg.norm(x[i] - x[j]) for j in range(n) if j != i)
        r.append(dists[k - 1])
    return np.array(r)


def _pr_brute(real, fake, k):
    rr, fr = _radii_brute(real, k), _radii_brute(fake, k)
    prec = np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, rr)) for f in fake])
    rec = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, fr)) for r in real])
    return prec, rec


def _dc_brute(real, fake, k):
    rr = _radii_brute(real, k)
    count = sum(np.linalg.norm(f - r) < rad for f in fake for r, rad in zip(real, rr))
    covered = [any(np.linalg.norm(f - r) < rad for f in fake) for r, rad in zip(real, rr)]
    return count / (k * len(fake)), np.mean(covered)


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_density_coverage_match_brute_force(rng, k):
    real = rng.normal(size=(15, 3))
    fake = rng.normal(size=(12, 3)) * 1.5 + 0.7
    pr = sq.precision_recall(real, fake, k=k)
    bp, br = _pr_brute(real, fake, k)
    assert pr["precision"] == pytest.approx(bp, abs=1e-12)
    assert pr["recall"] == pytest.approx(br, abs=1e-12)
    dc = sq.density_coverage(real, fake, k=k)
    bd, bc = _dc_brute(real, fake, k)
    assert dc["density"] == pytest.approx(bd, abs=1e-12)
    assert dc["coverage"] == pytest.approx(bc, abs=1e-12)
    # the fixtures are not degenerate: something is in and something is out
    assert 0 < bp < 1 or 0 < br < 1


def test_block_boundaries_do_not_change_results(rng, monkeypatch):
    real, fake = rng.normal(size=(23, 2)), rng.normal(size=(19, 2)) + 0.5
    full = {**sq.precision_recall(real, fake, k=2), **sq.density_coverage(real, fake, k=2)}
    monkeypatch.setattr(sq, "_BLOCK", 4)
    blocked = {**sq.precision_recall(real, fake, k=2), **sq.density_coverage(real, fake, k=2)}
    assert blocked == full


def test_identical_sets_are_perfect(rng):
    x = rng.normal(size=(60, 4))
    pr = sq.precision_recall(x, x.copy(), k=3)
    dc = sq.density_coverage(x, x.copy(), k=5)
    assert pr == {"precision": 1.0, "recall": 1.0}
    assert dc["coverage"] == 1.0
    # open balls: each holds its centre and k - 1 others -> density exactly k N / (k N)
    assert dc["density"] == pytest.approx(1.0, abs=1e-12)


def test_shifted_fake_loses_precision_collapsed_fake_loses_recall(rng):
    real = rng.normal(size=(300, 2))
    base = sq.precision_recall(real, rng.normal(size=(300, 2)), k=3)
    assert base["precision"] > 0.85 and base["recall"] > 0.85
    # 7 standard deviations away (at 3, outlying real points' wide balls still caught
    # up to 70% of the shifted set in 30 seeds; at 5, at most 6%)
    shifted = sq.precision_recall(real, rng.normal(size=(300, 2)) + 5.0, k=3)
    assert shifted["precision"] < 0.2
    # collapse: every fake sample near one point of the real support
    centre = real[np.argmin(np.sum(real**2, 1))]  # a real point in the dense middle
    collapsed = rng.normal(size=(300, 2)) * 0.01 + centre
    pr = sq.precision_recall(real, collapsed, k=3)
    assert pr["precision"] > 0.9
    assert pr["recall"] < 0.2
    dc = sq.density_coverage(real, collapsed, k=5)
    assert dc["coverage"] < 0.2


def test_manifold_errors(rng):
    x = rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match=r"real has 3 samples, need at least 4 for the k=3"):
        sq.precision_recall(x, rng.normal(size=(10, 2)), k=3)
    with pytest.raises(ValueError, match=r"fake has 3 samples, need at least 4"):
        sq.precision_recall(rng.normal(size=(10, 2)), x, k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        sq.density_coverage(x, x, k=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        sq.density_coverage(rng.normal(size=(10, 2)), rng.normal(size=(10, 3)), k=2)
    bad = rng.normal(size=(10, 2))
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="fake contains 1 non-finite"):
        sq.density_coverage(rng.normal(size=(10, 2)), bad, k=2)


# --------------------------------------------------------------------------- classifier score


@pytest.mark.parametrize("num_classes", [2, 10])
def test_classifier_score_closed_forms(num_classes):
    confident = 50.0 * np.tile(np.eye(num_classes), (3, 1))  # balanced, near one-hot
    # exp(log K - O(K e^-50)) = K
    assert sq.classifier_score(confident) == pytest.approx(num_classes, rel=1e-9)
    collapsed = 50.0 * np.tile(np.eye(num_classes)[:1], (3 * num_classes, 1))
    assert sq.classifier_score(collapsed) == pytest.approx(1.0, abs=1e-9)
    assert sq.classifier_score(np.zeros((5, num_classes))) == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_matches_definition(rng):
    logits = rng.normal(size=(40, 6)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p.mean(0)
    expected = math.exp(np.mean(np.sum(p * np.log(p / py), axis=1)))
    assert sq.classifier_score(logits) == pytest.approx(expected, rel=1e-10)
    # huge logits: one-hot rows without overflow
    assert sq.classifier_score(1e4 * np.eye(4)) == pytest.approx(4.0, rel=1e-12)
    with pytest.raises(ValueError, match="logits must be a 2-D"):
        sq.classifier_score(np.zeros(4))


# --------------------------------------------------------------------------- all at once


def test_sample_quality_from_features_is_the_individual_metrics(rng):
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 0.4
    real_l, fake_l = rng.normal(size=(40, 10)), rng.normal(size=(30, 10)) * 4
    out = sq.sample_quality_from_features(
        real, fake, real_logits=real_l, fake_logits=fake_l, kid_subsets=5, kid_subset_size=20, seed=3
    )
    assert out["fid"] == sq.fid_from_features(real, fake)
    k = sq.kid(real, fake, num_subsets=5, subset_size=20, seed=3)
    assert (out["kid_mean"], out["kid_std"], out["kid_subset_size"]) == (k["kid_mean"], k["kid_std"], 20)
    assert {key: out[key] for key in ("precision", "recall")} == sq.precision_recall(real, fake, k=3)
    assert {key: out[key] for key in ("density", "coverage")} == sq.density_coverage(real, fake, k=5)
    assert out["classifier_score"] == sq.classifier_score(fake_l)
    assert out["real_classifier_score"] == sq.classifier_score(real_l)
    counts = np.bincount(fake_l.argmax(1), minlength=10)
    assert out["class_histogram"]["counts"] == counts.tolist()
    assert (out["num_real"], out["num_fake"], out["feature_dim"]) == (40, 30, 5)


def test_sample_quality_from_features_checks_first(rng):
    real = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match=r"the real set has 5 samples, need more than k = 5"):
        sq.sample_quality_from_features(real, rng.normal(size=(20, 3)))
    with pytest.raises(ValueError, match="fake_logits has 4 rows"):
        sq.sample_quality_from_features(
            rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), fake_logits=np.zeros((4, 10))
        )
    with pytest.raises(ValueError, match="same feature dimension"):
        sq.sample_quality_from_features(rng.normal(size=(20, 3)), rng.normal(size=(20, 4)))
    with pytest.raises(ValueError, match="kid_subset_size must be at least 2"):
        sq.sample_quality_from_features(rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), kid_subset_size=1)
    with pytest.raises(ValueError, match="the fake set has 2 samples, need more than k_precision_recall=3"):
        sq.sample_quality_from_features(rng.normal(size=(20, 3)), rng.normal(size=(2, 3)))
