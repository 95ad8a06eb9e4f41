"""StyleGAN2 building blocks against independent computations: equalized-lr layers
against plain layers with the scaled weights, the [1, 3, 3, 1] FIR resampling against
its closed form, the minibatch standard deviation against numpy."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.stylegan_layers import EqualConv, EqualDense, downsample_2x, minibatch_stddev, stddev_group, upsample_2x


def test_equal_dense_is_a_plain_dense_with_the_scaled_weights(key, rng):
    x = jnp.asarray(rng.standard_normal((5, 7)), jnp.float32)
    layer = EqualDense(3, lr_mul=0.01, bias_init=0.5)
    p = layer.init(key, x)["params"]
    # stored N(0, 1 / lr_mul^2): the std of 21 draws is far above 1
    assert np.std(np.asarray(p["kernel"])) > 20.0
    np.testing.assert_allclose(p["bias"], 0.5 / 0.01)  # used bias starts at bias_init
    plain = nn.Dense(3)
    scaled = {"params": {"kernel": p["kernel"] * 0.01 / np.sqrt(7), "bias": p["bias"] * 0.01}}
    np.testing.assert_allclose(layer.apply({"params": p}, x), plain.apply(scaled, x), rtol=1e-5, atol=1e-6)
    ref = np.asarray(x, np.float64) @ (np.asarray(p["kernel"], np.float64) * 0.01 / np.sqrt(7)) + 0.5
    np.testing.assert_allclose(layer.apply({"params": p}, x), ref, rtol=1e-4, atol=1e-5)


def test_equal_conv_is_a_plain_conv_with_the_scaled_weights(key, rng):
    x = jnp.asarray(rng.standard_normal((2, 5, 5, 4)), jnp.float32)
    layer = EqualConv(6, 3)
    p = layer.init(key, x)["params"]
    p = {**p, "bias": jnp.asarray(rng.standard_normal(6), jnp.float32)}
    plain = nn.Conv(6, (3, 3), padding="SAME")
    scaled = {"params": {"kernel": p["kernel"] / np.sqrt(3 * 3 * 4), "bias": p["bias"]}}
    np.testing.assert_allclose(layer.apply({"params": p}, x), plain.apply(scaled, x), rtol=1e-5, atol=1e-5)


def _up_1d(v):  # closed form of upfirdn(up=2, [1,3,3,1]/4) with zeros beyond the border
    pad = np.concatenate([[0.0], v, [0.0]])
    out = np.empty(2 * len(v))
    out[0::2] = (pad[:-2] + 3 * pad[1:-1]) / 4
    out[1::2] = (3 * pad[1:-1] + pad[2:]) / 4
    return out


def _down_1d(v):  # closed form of upfirdn(down=2, [1,3,3,1]/8), padding (1, 1)
    pad = np.concatenate([[0.0], v, [0.0]])
    i = np.arange(len(v) // 2)
    return (pad[2 * i] + 3 * pad[2 * i + 1] + 3 * pad[2 * i + 2] + pad[2 * i + 3]) / 8


def test_fir_resampling_matches_its_closed_form(rng):
    x = rng.standard_normal((2, 4, 6, 3))
    up = np.apply_along_axis(_up_1d, 2, np.apply_along_axis(_up_1d, 1, x))
    np.testing.assert_allclose(upsample_2x(jnp.asarray(x, jnp.float32)), up, rtol=1e-5, atol=1e-6)
    down = np.apply_along_axis(_down_1d, 2, np.apply_along_axis(_down_1d, 1, x))
    np.testing.assert_allclose(downsample_2x(jnp.asarray(x, jnp.float32)), down, rtol=1e-5, atol=1e-6)
    # a constant image stays constant away from the border; blur=False: nearest / average pool
    ones = jnp.ones((1, 6, 6, 1))
    np.testing.assert_allclose(upsample_2x(ones)[0, 1:-1, 1:-1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(downsample_2x(ones)[0, 1:-1, 1:-1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(upsample_2x(jnp.asarray(x), blur=False)[:, ::2, ::2], x, rtol=1e-6)
    np.testing.assert_allclose(downsample_2x(jnp.asarray(x), blur=False), x.reshape(2, 2, 2, 3, 2, 3).mean((2, 4)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("b,group,channels", [(8, 4, 1), (6, 4, 2), (3, 4, 1)])
def test_minibatch_stddev_matches_numpy(rng, b, group, channels):
    x = rng.standard_normal((b, 3, 3, 4)) * rng.uniform(0.5, 2.0, (b, 1, 1, 1))
    y = np.asarray(minibatch_stddev(jnp.asarray(x, jnp.float32), group_size=group, num_channels=channels))
    assert y.shape == (b, 3, 3, 4 + channels)
    np.testing.assert_allclose(y[..., :4], x, rtol=1e-6)
    g = stddev_group(b, group)
    assert g == {8: 4, 6: 3, 3: 3}[b]  # the largest divisor of the batch <= the group size
    n = b // g
    for i in range(b):
        members = [j for j in range(b) if j % n == i % n]  # the reference's reshape(G, -1)
        assert len(members) == g
        for f in range(channels):
            sl = x[members][..., f * 4 // channels : (f + 1) * 4 // channels]
            want = np.sqrt(sl.var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(y[i, :, :, 4 + f], want, rtol=1e-5)
    with pytest.raises(ValueError, match="num_channels=3"):
        minibatch_stddev(jnp.zeros((4, 2, 2, 4)), num_channels=3)
