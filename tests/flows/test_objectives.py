"""The flows' training objective (``genjax.flows.objectives``): per-example values against
numpy and ``jax.jacfwd``; ``Flow.loss`` is their mean."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.flows as F
from genjax.flows import objectives as obj


def test_negative_log_likelihood_matches_numpy(rng):
    z = rng.normal(size=(5, 3, 2)).astype(np.float32)
    log_det = rng.normal(size=(5,)).astype(np.float32)
    nll = obj.negative_log_likelihood(jnp.asarray(z), jnp.asarray(log_det), event_ndims=2)
    z64 = z.astype(np.float64).reshape(5, -1)
    expected = 0.5 * np.sum(z64**2, axis=1) + 0.5 * 6 * math.log(2 * math.pi) - log_det
    assert nll.shape == (5,)
    np.testing.assert_allclose(np.asarray(nll), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(obj.log_likelihood(jnp.asarray(z), jnp.asarray(log_det), event_ndims=2)),
                               -expected, rtol=1e-5, atol=1e-5)


def test_flow_loss_is_the_mean_nll_by_the_jacobian(key, rng):
    """Flow.loss against an independent change of variables: ``log N(g(x)) + log|det J_g(x)|``
    with ``J_g`` from ``jax.jacfwd`` of the normalizing map."""
    flow = F.realnvp_2d(num_layers=3, hidden=(8,))
    x = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    params = flow.init(key, x)
    leaves, tree = jax.tree_util.tree_flatten(params)  # non-identity couplings
    params = tree.unflatten([l + 0.3 * jax.random.normal(jax.random.fold_in(key, i), l.shape) for i, l in enumerate(leaves)])
    g = lambda v: flow.normalizing_bijector(params).forward(v[None])[0]  # noqa: E731
    z = np.asarray(jax.vmap(g)(x), np.float64)
    log_det = np.array([np.linalg.slogdet(np.asarray(jax.jacfwd(g)(v), np.float64))[1] for v in x])
    expected = np.mean(0.5 * np.sum(z**2, axis=1) + math.log(2 * math.pi) - log_det)
    loss, metrics = flow.loss(params, key, x)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-4)
    assert float(metrics["nll"]) == float(loss)


def test_dequantize_moves_each_level_into_its_own_bin(key):
    L = 5
    k = np.arange(L, dtype=np.float32)
    x = jnp.asarray(np.tile(k / (L - 1), (40, 1)))
    y = np.asarray(obj.dequantize(key, x, num_levels=L))
    assert np.all(y >= k / L) and np.all(y < (k + 1) / L)
    assert len(np.unique(y[:, 0])) > 1  # one uniform draw per element
    assert obj.dequantize(key, x, num_levels=None) is x


def test_image_flow_loss_reports_bits_per_dim(key, rng):
    flow = F.realnvp((4, 4, 1), num_layers=2, hidden=(8,), data_levels=17, logit_alpha=0.05)
    x = jnp.asarray(rng.integers(0, 17, size=(4, 4, 4, 1)) / 16.0, jnp.float32)
    params = flow.init(key, x)
    loss, metrics = flow.loss(params, key, x)
    # the same uniform draw as the loss's, then the model's exact density of that point
    per = -flow.log_prob(params, key, x)
    np.testing.assert_allclose(float(loss), float(jnp.mean(per)), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["bits_per_dim"]), float(loss) / (16 * math.log(2)) + math.log2(17), rtol=1e-5)


@pytest.mark.parametrize("event_ndims", [1, 3])
def test_base_log_prob_sums_over_the_event(event_ndims, rng):
    z = rng.normal(size=(2, 2, 2, 2)).astype(np.float32)
    out = np.asarray(obj.base_log_prob(jnp.asarray(z), event_ndims=event_ndims))
    axes = tuple(range(4 - event_ndims, 4))
    d = int(np.prod(z.shape[4 - event_ndims:]))
    np.testing.assert_allclose(out, -0.5 * np.sum(z.astype(np.float64) ** 2, axis=axes) - 0.5 * d * math.log(2 * math.pi),
                               rtol=1e-5, atol=1e-5)
