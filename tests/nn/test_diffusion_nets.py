"""Diffusion networks: embeddings against their closed form, denoiser / UNet shapes,
conditioning on t and y, zero-initialised UNet output, attention against numpy, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn.denoiser import MLPDenoiser
from genjax.nn.embeddings import LabelEmbedding, TimeEmbedding, null_label, sinusoidal_embedding
from genjax.nn.unet import AttentionBlock, UNet


def _perturb(params, key, scale=0.3):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])


# ---------------------------------------------------------------------- embeddings
@pytest.mark.parametrize("dim", [2, 8, 64])
def test_sinusoidal_embedding_matches_closed_form(dim, rng):
    t = rng.uniform(0.0, 1000.0, size=(5,)).astype(np.float32)
    got = np.asarray(sinusoidal_embedding(jnp.asarray(t), dim, max_period=10000.0), np.float64)
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    args = t.astype(np.float64)[:, None] * freqs[None, :]
    want = np.concatenate([np.sin(args), np.cos(args)], axis=1)
    assert got.shape == (5, dim)
    # float32 sin of arguments up to 1000 rad: absolute error ~ 1000 * 2^-24
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    # the first frequency is exactly 1
    np.testing.assert_allclose(got[:, 0], np.sin(t.astype(np.float64)), rtol=0, atol=2e-4)


def test_sinusoidal_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim must be even"):
        sinusoidal_embedding(jnp.zeros((3,)), 5)
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\)"):
        sinusoidal_embedding(jnp.zeros((3, 1)), 4)


def test_time_and_label_embedding_shapes_and_null_row(key):
    temb = TimeEmbedding(12)
    p = temb.init(key, jnp.zeros((3,)))
    assert temb.apply(p, jnp.arange(3.0)).shape == (3, 12)
    lemb = LabelEmbedding(num_classes=4, features=6)
    p = lemb.init(key, jnp.zeros((2,), jnp.int32))
    assert p["params"]["table"]["embedding"].shape == (5, 6)  # 4 classes + null
    out = np.asarray(lemb.apply(p, jnp.array([0, 3, null_label(4)])))
    np.testing.assert_array_equal(out[2], np.asarray(p["params"]["table"]["embedding"][4]))
    assert np.abs(out[2] - out[0]).max() > 1e-4
    with pytest.raises(ValueError, match=r"y must lie in \[0, 4\]"):
        lemb.apply(p, jnp.array([0, 5]))
    with pytest.raises(ValueError, match="integer class labels"):
        lemb.apply(p, jnp.array([0.0, 1.0]))


# ---------------------------------------------------------------------- MLP denoiser
def test_mlp_denoiser_shape_and_conditioning(key, rng):
    net = MLPDenoiser(hidden=(16, 16), emb_dim=8, num_classes=3)
    x1 = rng.normal(size=(1, 2)).astype(np.float32)
    x = jnp.asarray(np.repeat(x1, 5, axis=0))
    t = jnp.array([3.0, 40.0, 3.0, 3.0, 3.0])
    y = jnp.array([1, 1, 2, null_label(3), 1], jnp.int32)
    params = net.init(key, x, t, y)
    out = np.asarray(jax.jit(net.apply)(params, x, t, y))
    assert out.shape == (5, 2) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[4], out[0], rtol=1e-6, atol=1e-6)  # same inputs, same output
    assert np.abs(out[1] - out[0]).max() > 1e-3, "output does not depend on t"
    assert np.abs(out[2] - out[0]).max() > 1e-3, "output does not depend on y"
    assert np.abs(out[3] - out[0]).max() > 1e-3, "null label gives the same output as a real label"
    # y=None on a conditional network is the null label
    out_none = np.asarray(net.apply(params, x[:1], t[:1]))
    out_null = np.asarray(net.apply(params, x[:1], t[:1], jnp.array([3])))
    np.testing.assert_allclose(out_none, out_null, rtol=1e-6, atol=1e-6)


def test_mlp_denoiser_unconditional_and_errors(key):
    net = MLPDenoiser(hidden=(8,), emb_dim=4)
    x, t = jnp.zeros((2, 3)), jnp.zeros((2,))
    params = net.init(key, x, t)
    assert net.apply(params, x, t).shape == (2, 3)
    # an event of any shape is flattened inside: the flat network's function, reshaped
    x3 = jnp.arange(6.0).reshape(2, 3, 1) / 6.0
    np.testing.assert_array_equal(np.asarray(net.apply(params, x3, t)), np.asarray(net.apply(params, x3.reshape(2, 3), t)).reshape(2, 3, 1))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, dim\) or \(batch, \*event\)"):
        net.apply(params, jnp.zeros((3,)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\)"):
        net.apply(params, x, jnp.zeros((3,)))
    with pytest.raises(ValueError, match="num_classes=None"):
        net.apply(params, x, t, jnp.array([0, 1]))


# ---------------------------------------------------------------------- UNet
@pytest.mark.parametrize("shape", [(2, 8, 8, 1), (2, 28, 28, 1), (2, 32, 32, 3)])
def test_unet_output_shape(shape, key):
    net = UNet(base=8, channel_mult=(1, 2, 2), num_res_blocks=1, num_classes=10)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    t = jax.ShapeDtypeStruct(shape[:1], jnp.float32)
    y = jax.ShapeDtypeStruct(shape[:1], jnp.int32)
    params = jax.eval_shape(net.init, key, x, t, y)
    out = jax.eval_shape(net.apply, params, x, t, y)
    assert out.shape == shape and out.dtype == jnp.float32
    # attention sits at the lowest resolution (H / 4) only
    assert "mid_attn" in params["params"] and "down_2_attn_0" in params["params"]
    assert "down_0_attn_0" not in params["params"]


def test_unet_zero_init_output_and_conditioning(key, rng):
    net = UNet(base=8, channel_mult=(1, 2), num_res_blocks=1, num_classes=3, num_heads=2)
    x1 = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    x = jnp.asarray(np.repeat(x1, 4, axis=0))
    t = jnp.array([5.0, 500.0, 5.0, 5.0])
    y = jnp.array([0, 0, 1, null_label(3)], jnp.int32)
    params = jax.jit(net.init)(key, x, t, y)
    apply = jax.jit(net.apply)
    out0 = np.asarray(apply(params, x, t, y))
    assert out0.shape == (4, 8, 8, 2)
    np.testing.assert_array_equal(out0, 0.0)  # zero-initialised output convolution
    out = np.asarray(apply(_perturb(params, jax.random.fold_in(key, 1)), x, t, y))
    assert np.all(np.isfinite(out)) and np.abs(out).max() > 1e-3
    assert np.abs(out[1] - out[0]).max() > 1e-3, "output does not depend on t"
    assert np.abs(out[2] - out[0]).max() > 1e-3, "output does not depend on y"
    assert np.abs(out[3] - out[0]).max() > 1e-3, "null label gives the same output as a real label"


def _numpy_group_norm(x, groups, scale, bias, eps=1e-6):
    b, h, w, c = x.shape
    g = x.reshape(b, h * w, groups, c // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(b, h, w, c) * scale + bias


@pytest.mark.parametrize("num_heads", [1, 2])
def test_attention_block_matches_numpy(num_heads, key, rng):
    block = AttentionBlock(num_heads=num_heads, num_groups=2)
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    params = _perturb(block.init(key, jnp.asarray(x)), jax.random.fold_in(key, 1), scale=0.5)
    got = np.asarray(block.apply(params, jnp.asarray(x)), np.float64)

    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    x64 = x.astype(np.float64)
    h = _numpy_group_norm(x64, 2, p["norm"]["scale"], p["norm"]["bias"]).reshape(2, 9, 4)
    dense = lambda name, a: a @ p[name]["kernel"] + p[name]["bias"]  # noqa: E731
    q, k, v = dense("q", h), dense("k", h), dense("v", h)
    dh = 4 // num_heads
    heads = []
    for i in range(num_heads):
        sl = slice(i * dh, (i + 1) * dh)
        logits = np.einsum("bqd,bkd->bqk", q[..., sl], k[..., sl]) / np.sqrt(dh)
        wts = np.exp(logits - logits.max(-1, keepdims=True))
        wts /= wts.sum(-1, keepdims=True)
        heads.append(wts @ v[..., sl])
    want = x64 + dense("proj", np.concatenate(heads, axis=-1)).reshape(2, 3, 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want - x64).max() > 1e-2  # the attention branch is not negligible


def test_unet_errors(key):
    net = UNet(base=8, channel_mult=(1, 2, 2))
    t = jnp.zeros((2,))
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        net.init(key, jnp.zeros((2, 8, 8)), t)
    with pytest.raises(ValueError, match=r"30x30 must be divisible by 2\*\*\(len\(channel_mult\) - 1\) = 4"):
        net.init(key, jnp.zeros((2, 30, 30, 1)), t)
    with pytest.raises(ValueError, match="num_classes=None"):
        net.init(key, jnp.zeros((2, 8, 8, 1)), t, jnp.array([0, 1]))
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\)"):
        net.init(key, jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 1)))
    cond = UNet(base=8, channel_mult=(1, 2), num_classes=3)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\]"):
        cond.init(key, jnp.zeros((2, 8, 8, 1)), t, jnp.array([0, 4]))
