"""``synthetic.exact_log_prob`` / ``rings_log_prob``: the float64 closed forms the toy KL
experiments use (rings' radial form moved here from ``experiments/flows_toy2d.py``)."""

import jax
import numpy as np
import pytest

from genjax.data import synthetic


def test_rings_closed_form_matches_the_sampler():
    toy = synthetic.get_toy_density("rings")
    radii, noise = toy.params["radii"], toy.params["noise"]
    xs = np.linspace(-5.0, 5.0, 400)  # even count: the origin (integrable singularity) is not on the grid
    grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    assert np.exp(synthetic.rings_log_prob(grid, radii, noise)).sum() * (xs[1] - xs[0]) ** 2 == pytest.approx(1.0, abs=2e-3)
    # the radial histogram of sampler draws matches 2 pi rho p(rho, 0)
    x = np.asarray(toy.sample(jax.random.PRNGKey(0), 100_000))
    hist, edges = np.histogram(np.hypot(x[:, 0], x[:, 1]), bins=50, range=(0.0, 5.0), density=True)
    c = np.linspace(0.0, 5.0, 50 * 40 + 1)[:-1] + 5.0 / (50 * 40 * 2)  # 40 midpoints per bin
    radial = np.exp(synthetic.rings_log_prob(np.stack([c, 0 * c], -1), radii, noise)) * 2 * np.pi * c
    expected = radial.reshape(50, 40).mean(axis=1)  # bin averages of the radial density
    assert np.abs(hist - expected).max() < 0.05  # fixed key; peaks are ~1.2


def test_rings_closed_form_at_a_point_by_hand():
    """One ring of radius 2, noise 0.5, at (1, 0): [N(1; 2, .5) + N(-1; 2, .5)] / (2 pi)."""
    phi = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) / 0.5
    expected = np.log((phi((1 - 2) / 0.5) + phi((-1 - 2) / 0.5)) / (2 * np.pi * 1.0))
    got = synthetic.rings_log_prob(np.array([[1.0, 0.0]]), (2.0,), 0.5)
    assert got.dtype == np.float64 and got[0] == pytest.approx(expected, rel=1e-12)


def test_exact_log_prob_dispatches_and_refuses():
    x = np.array([[0.5, -0.25], [2.0, 0.0]], np.float32)
    for name in ("8gaussians", "checkerboard"):
        toy = synthetic.get_toy_density(name)
        got = synthetic.exact_log_prob(toy, x)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, np.asarray(toy.log_prob(x), np.float64))
    rings = synthetic.get_toy_density("rings")
    np.testing.assert_array_equal(synthetic.exact_log_prob(rings, x),
                                  synthetic.rings_log_prob(x, rings.params["radii"], rings.params["noise"]))
    with pytest.raises(ValueError, match="'two-moons' has no closed-form log-density.*rings"):
        synthetic.exact_log_prob(synthetic.get_toy_density("two-moons"), x)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        synthetic.rings_log_prob(np.zeros(3), (1.0,), 0.1)
    with pytest.raises(ValueError, match="noise must be a finite positive number"):
        synthetic.rings_log_prob(x, (1.0,), 0.0)
