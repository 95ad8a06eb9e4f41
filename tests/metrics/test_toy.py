"""Exact KL on a toy density against the Gaussian closed form; the re-exported mode coverage."""

import jax
import numpy as np
import pytest

from genjax.data import synthetic
from genjax.metrics import exact_kl, mode_coverage


def test_exact_kl_matches_the_gaussian_closed_form():
    """p = N(mu, S) (the ``gaussian`` toy density), q = N(m, s^2 I): KL(p||q) =
    0.5 [tr(S)/s^2 + |m - mu|^2/s^2 - d + d log s^2 - log det S]."""
    toy = synthetic.get_toy_density("gaussian")
    mu, S = np.asarray(toy.params["mean"]), np.asarray(toy.params["cov"])
    x = np.asarray(toy.sample(jax.random.PRNGKey(0), 200_000), np.float64)
    assert np.allclose(x.mean(0), mu, atol=0.02) and np.allclose(np.cov(x.T), S, atol=0.03)  # p is as stated
    m, s = np.array([0.0, 0.25]), 1.5
    log_q = -0.5 * np.sum((x - m) ** 2, 1) / s**2 - np.log(2 * np.pi * s**2)
    closed = 0.5 * (np.trace(S) / s**2 + (m - mu) @ (m - mu) / s**2 - 2 + 2 * np.log(s**2) - np.log(np.linalg.det(S)))
    assert exact_kl(toy, x, log_q) == pytest.approx(closed, abs=0.01)
    assert exact_kl(toy, x, np.asarray(toy.log_prob(x))) == pytest.approx(0.0, abs=1e-9)  # q = p


def test_exact_kl_bad_input():
    toy = synthetic.get_toy_density("gaussian")
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"log_q must have shape \(n,\) = \(4,\)"):
        exact_kl(toy, x, np.zeros(3))
    with pytest.raises(ValueError, match="log_q"):
        exact_kl(toy, x, np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="closed-form log_prob"):
        exact_kl(synthetic.get_toy_density("two-moons"), x, np.zeros(4))


def test_mode_coverage_counts_known_samples_exactly():
    """Samples placed at 3 of 4 modes (2, 1, 1) plus 2 far away: 3 captured, 4/6 high quality."""
    modes = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = np.array([[0.0, 0.01], [0.01, 0.0], [1.0, 0.0], [0.0, 1.02], [0.5, 0.5], [5.0, 5.0]])
    cov = mode_coverage(x, modes, std=0.01, threshold=3.0)
    assert int(cov.modes_captured) == 3
    assert float(cov.hq_fraction) == pytest.approx(4 / 6)
    np.testing.assert_array_equal(np.asarray(cov.counts), [2, 1, 1, 0])
