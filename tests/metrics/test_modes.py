"""Mode-collapse diagnostics on samples placed by hand, so every count is known exactly."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.data
from genjax.metrics import class_histogram, histogram_kl_to_uniform, mixture_diagnostics, mode_coverage


def test_samples_at_five_of_eight_modes(rng):
    density = genjax.data.get_toy_density("8gaussians")  # std 0.02
    modes, std = density.modes, density.mode_std
    chosen = [0, 2, 3, 5, 7]
    per_mode = np.array([10, 10, 10, 5, 5])
    at_modes = np.concatenate([np.repeat(modes[[m]], c, axis=0) for m, c in zip(chosen, per_mode)])
    at_modes = at_modes + rng.uniform(-1, 1, at_modes.shape) * std  # within sqrt(2) std < 3 std
    stray = np.zeros((10, 2))  # the circle's centre: 100 std from every mode
    samples = jnp.asarray(np.concatenate([at_modes, stray]), jnp.float32)
    out = mixture_diagnostics(samples, density)
    assert out["modes_captured"] == 5 and out["num_modes"] == 8
    assert out["hq_fraction"] == pytest.approx(40 / 50, abs=1e-6)
    counts = np.zeros(8, int)
    counts[chosen] = per_mode
    assert out["mode_counts"] == counts.tolist()
    p = per_mode / per_mode.sum()
    assert out["kl_to_uniform"] == pytest.approx(float(np.sum(p * np.log(p * 8))), rel=1e-5)
    # min_count: modes with only 5 high-quality samples no longer count
    assert mixture_diagnostics(samples, density, min_count=6)["modes_captured"] == 3


def test_threshold_is_three_std():
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    samples = jnp.asarray([[2.9, 0.0], [3.1, 0.0], [10.0, 0.5]], jnp.float32)
    cov = mode_coverage(samples, modes, std=1.0)
    assert int(cov.modes_captured) == 2
    np.testing.assert_array_equal(cov.counts, [1, 1])
    assert float(cov.hq_fraction) == pytest.approx(2 / 3)
    assert float(cov.kl_to_uniform) == pytest.approx(0.0, abs=1e-7)  # balanced


def test_full_collapse_and_vmap_over_seeds():
    modes = genjax.data.get_toy_density("25gaussians").modes
    one_mode = jnp.broadcast_to(jnp.asarray(modes[7], jnp.float32), (30, 2))
    all_modes = jnp.asarray(np.repeat(modes, 2, axis=0), jnp.float32)[:30]  # first 15 modes, twice each
    stacked = jnp.stack([one_mode, all_modes])
    cov = jax.vmap(lambda s: mode_coverage(s, modes, std=0.05))(stacked)
    np.testing.assert_array_equal(cov.modes_captured, [1, 15])
    np.testing.assert_allclose(cov.kl_to_uniform, [math.log(25), math.log(25 / 15)], rtol=1e-5)
    np.testing.assert_allclose(cov.hq_fraction, [1.0, 1.0])
    assert float(histogram_kl_to_uniform(jnp.zeros(4))) == math.inf


def test_class_histogram_under_a_known_classifier():
    labels = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3, 3])
    x = jnp.asarray(np.eye(4)[labels] * 5.0, jnp.float32)  # the logits are the input itself
    out = class_histogram(x, lambda v: v, batch_size=3)
    assert out["counts"] == [3, 2, 0, 5] and out["classes_covered"] == 3
    p = np.array([0.3, 0.2, 0.5])
    assert out["kl_to_uniform"] == pytest.approx(float(np.sum(p * np.log(4 * p))), rel=1e-5)
    assert out["max_class_fraction"] == pytest.approx(0.5)


def test_bad_diagnostic_input():
    with pytest.raises(ValueError, match="has no modes"):
        mixture_diagnostics(jnp.zeros((3, 2)), genjax.data.get_toy_density("checkerboard"))
    with pytest.raises(ValueError, match="same d"):
        mode_coverage(jnp.zeros((3, 3)), np.zeros((2, 2)), std=1.0)
    with pytest.raises(ValueError, match=r"\(batch, num_classes\) logits"):
        class_histogram(jnp.zeros((3, 2)), lambda v: v[:, 0])
