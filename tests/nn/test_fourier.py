"""The Fourier-feature critic: features of each example of a pack, computed by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn import FourierDiscriminator


def test_fourier_critic_matches_numpy_and_packs_per_example(key, rng):
    d, k, f = 2, 3, 5
    net = FourierDiscriminator((7,), num_features=f, sigma=2.0, seed=1, example_dim=d)
    x = rng.normal(size=(4, k * d)).astype(np.float32)
    params = net.init(key, jnp.asarray(x))
    out = np.asarray(net.apply(params, jnp.asarray(x)))
    assert out.shape == (4,)
    b = np.random.default_rng(1).normal(0.0, 2.0, (d, f))
    xs = x.reshape(4, k, d).astype(np.float64)
    phi = np.concatenate([xs, np.sin(xs @ b), np.cos(xs @ b)], axis=-1).reshape(4, -1)
    p = jax.tree_util.tree_map(np.asarray, params["params"]["mlp"]["mlp"])
    h = phi @ p["dense_0"]["kernel"] + p["dense_0"]["bias"]
    h = np.where(h > 0, h, 0.2 * h)
    ref = (h @ p["out"]["kernel"] + p["out"]["bias"])[:, 0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not a multiple of example_dim=2"):
        net.apply(params, jnp.zeros((4, 5)))
