"""Cross-attention (issue 17 D): the masked multi-head attention against a plain-NumPy
softmax(Q K^T / sqrt(d)) V, padding that never changes the output, and the UNet's optional
context input (off: the plain UNet, unchanged)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.attention import CrossAttention, CrossAttentionBlock, dot_product_attention
from genjax.nn.unet import UNet


def _np_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(d)) v per example and head over the unmasked keys, float64."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, n, h, d = q.shape
    out = np.zeros((b, n, h, d))
    for i in range(b):
        keep = np.asarray(mask[i], bool)
        for j in range(h):
            if not keep.any():
                continue
            s = q[i, :, j] @ k[i, keep, j].T / np.sqrt(d)
            w = np.exp(s - s.max(axis=-1, keepdims=True))
            w /= w.sum(axis=-1, keepdims=True)
            out[i, :, j] = w @ v[i, keep, j]
    return out


def test_dot_product_attention_matches_numpy(rng):
    q = rng.normal(size=(3, 4, 2, 5)).astype(np.float32)
    k = rng.normal(size=(3, 6, 2, 5)).astype(np.float32)
    v = rng.normal(size=(3, 6, 2, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], bool)  # last: all padding
    got = np.asarray(dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(mask)))
    np.testing.assert_allclose(got, _np_attention(q, k, v, mask), rtol=1e-5, atol=1e-6)
    assert np.all(got[2] == 0.0)
    full = np.asarray(dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)))
    np.testing.assert_allclose(full, _np_attention(q, k, v, np.ones((3, 6), bool)), rtol=1e-5, atol=1e-6)


def test_cross_attention_module_matches_numpy_and_ignores_padding(key, rng):
    x = jnp.asarray(rng.normal(size=(2, 7, 8)), jnp.float32)  # queries: 7 positions, 8 channels
    ctx = jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)  # keys/values: 4 tokens of width 6
    mask = jnp.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    layer = CrossAttention(num_heads=2)
    params = layer.init(key, x, ctx, mask)
    got = np.asarray(layer.apply(params, x, ctx, mask))
    assert got.shape == (2, 7, 8)
    # independent: the projections by hand, the attention in NumPy
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    dense = lambda a, n: np.asarray(a, np.float64) @ p[n]["kernel"] + p[n]["bias"]  # noqa: E731
    q = dense(x, "q").reshape(2, 7, 2, 4)
    k = dense(ctx, "k").reshape(2, 4, 2, 4)
    v = dense(ctx, "v").reshape(2, 4, 2, 4)
    ref = _np_attention(q, k, v, np.asarray(mask)).reshape(2, 7, 8) @ p["out"]["kernel"] + p["out"]["bias"]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # padded positions never change the output, whatever they hold
    ctx2 = ctx.at[0, 2:].set(1e3).at[1, 3].set(-7.0)
    np.testing.assert_array_equal(np.asarray(layer.apply(params, x, ctx2, mask)), got)
    # ... while a real token does
    assert np.abs(np.asarray(layer.apply(params, x, ctx.at[0, 1].set(3.0), mask)) - got).max() > 1e-4
    with pytest.raises(ValueError, match=r"context_mask must have shape \(batch, L\) = \(2, 4\)"):
        layer.apply(params, x, ctx, mask[:, :3])
    with pytest.raises(ValueError, match=r"context must have shape \(batch, L, D\) = \(2, L, D\)"):
        layer.apply(params, x, ctx[0])


def test_cross_attention_block_is_residual(key, rng):
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 8)), jnp.float32)
    ctx = jnp.asarray(rng.normal(size=(2, 3, 5)), jnp.float32)
    block = CrossAttentionBlock(num_heads=2)
    params = block.init(key, x, ctx)
    zero_out = jax.tree_util.tree_map(lambda a: a, params)
    zero_out["params"]["attn"]["out"] = jax.tree_util.tree_map(jnp.zeros_like, params["params"]["attn"]["out"])
    np.testing.assert_array_equal(np.asarray(block.apply(zero_out, x, ctx)), np.asarray(x))
    assert block.apply(params, x, ctx).shape == x.shape


def test_unet_context_off_is_the_plain_unet_and_on_attends(key, rng):
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1))
    t = jnp.array([3.0, 500.0])
    plain = UNet(base=8, channel_mult=(1, 2), num_res_blocks=1, num_heads=2)
    p = plain.init(jax.random.PRNGKey(1), x, t)
    # golden figures of the UNet before cross-attention existed (same config, keys and input):
    # the same parameters, and the same function
    assert sum(v.size for v in jax.tree_util.tree_leaves(p)) == 44969 and len(jax.tree_util.tree_leaves(p)) == 144
    p["params"]["conv_out"]["kernel"] = jnp.full_like(p["params"]["conv_out"]["kernel"], 0.1)
    assert float(plain.apply(p, x, t).sum()) == pytest.approx(165.7030029296875, rel=1e-5)

    net = UNet(base=8, channel_mult=(1, 2), num_res_blocks=1, num_heads=2, use_context=True)
    ctx = jnp.asarray(rng.normal(size=(2, 5, 6)), jnp.float32)
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    q = net.init(jax.random.PRNGKey(1), x, t, None, ctx, mask)
    assert {k for k in q["params"] if "xattn" in k} == {"down_1_xattn_0", "mid_xattn", "up_1_xattn_0", "up_1_xattn_1"}
    q["params"]["conv_out"]["kernel"] = jnp.full_like(q["params"]["conv_out"]["kernel"], 0.1)
    out = np.asarray(net.apply(q, x, t, None, ctx, mask))
    np.testing.assert_array_equal(np.asarray(net.apply(q, x, t, None, ctx.at[0, 3:].set(9.0), mask)), out)
    assert np.abs(np.asarray(net.apply(q, x, t, None, ctx.at[0, 0].set(9.0), mask)) - out)[0].max() > 1e-5
    with pytest.raises(ValueError, match=r"UNet\(use_context=True\) needs context"):
        net.apply(q, x, t)
    with pytest.raises(ValueError, match="built without use_context=True"):
        plain.apply(p, x, t, None, ctx)


def test_cross_attention_block_query_positions(key, rng):
    """``query_positions`` adds a learned (H, W, C) table to the queries' input only: the block
    equals the plain block applied with the table folded into the query projection's input
    (computed here by hand), and it lets two positions with the same features attend differently."""
    x = jnp.zeros((1, 2, 3, 8), jnp.float32)  # every position alike: only the table tells them apart
    ctx = jnp.asarray(rng.normal(size=(1, 4, 5)), jnp.float32)
    block = CrossAttentionBlock(num_heads=2, query_positions=True)
    params = block.init(key, x, ctx)
    pos = params["params"]["query_pos"]
    assert pos.shape == (2, 3, 8) and 0.005 < float(jnp.std(pos)) < 0.05
    pos = jax.random.normal(jax.random.PRNGKey(3), pos.shape)
    params["params"]["query_pos"] = pos
    out = np.asarray(block.apply(params, x, ctx))
    assert np.abs(out[0, 0, 0] - out[0, 1, 2]).max() > 1e-4  # positions differ now
    # independent computation: GroupNorm of a constant map is 0, so the queries see only the table
    a = params["params"]["attn"]
    q = (np.asarray(pos).reshape(6, 8) @ np.asarray(a["q"]["kernel"]) + np.asarray(a["q"]["bias"])).reshape(1, 6, 2, 4)
    k = (np.asarray(ctx) @ np.asarray(a["k"]["kernel"]) + np.asarray(a["k"]["bias"])).reshape(1, 4, 2, 4)
    v = (np.asarray(ctx) @ np.asarray(a["v"]["kernel"]) + np.asarray(a["v"]["bias"])).reshape(1, 4, 2, 4)
    att = _np_attention(q, k, v, np.ones((1, 4), bool)).reshape(1, 6, 8)
    want = att @ np.asarray(a["out"]["kernel"], np.float64) + np.asarray(a["out"]["bias"])
    np.testing.assert_allclose(out.reshape(1, 6, 8), want, rtol=1e-4, atol=1e-5)
    # without the option there is no table and every position of a constant map gets the same output
    plain = CrossAttentionBlock(num_heads=2)
    pp = plain.init(key, x, ctx)
    assert "query_pos" not in pp["params"]
    po = np.asarray(plain.apply(pp, x, ctx))
    np.testing.assert_allclose(po[0, 0, 0], po[0, 1, 2], atol=1e-6)


def test_unet_cross_attention_has_query_positions(key):
    x = jnp.zeros((2, 8, 8, 1))
    t = jnp.array([3.0, 500.0])
    ctx = jnp.ones((2, 5, 6))
    net = UNet(base=8, channel_mult=(1, 2), num_res_blocks=1, num_heads=2, use_context=True)
    q = net.init(key, x, t, None, ctx)
    assert q["params"]["mid_xattn"]["query_pos"].shape == (4, 4, 16)
    off = UNet(base=8, channel_mult=(1, 2), num_res_blocks=1, num_heads=2, use_context=True, query_positions=False)
    assert "query_pos" not in off.init(key, x, t, None, ctx)["params"]["mid_xattn"]
