"""Bijectors written in genjax.flows: the distrax checklist (check_bijector) on tiny
shapes, plus closed forms for each layer."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.flows as F
from genjax.flows.layers import MAFLayer
from genjax.nn.made import MADE, made_masks

TOL = dict(atol=1e-4, rtol=1e-4)


def _perturb(params, key, scale):
    """Adds N(0, scale^2) noise to every leaf (distinct per leaf), so layers are not the identity."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


def _actnorm(rng, c):
    return F.ActNorm(jnp.asarray(rng.normal(0, 0.5, c), jnp.float32), jnp.asarray(rng.normal(0, 1, c), jnp.float32), event_ndims=3)


def _conv(rng, c):
    params, perm, sign = F.conv1x1_lu_init(c, seed=int(rng.integers(1000)))
    params = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in params.items()}
    return F.InvertibleConv1x1(**params, permutation=perm, sign=sign, event_ndims=3)


# ---------------------------------------------------------------------- the checklist
@pytest.mark.parametrize("name", ["actnorm", "conv1x1", "squeeze", "unsqueeze", "factor_out", "logit"])
def test_image_bijectors_pass_check(name, rng):
    x = jnp.asarray(rng.normal(size=(3, 4, 4, 2)), jnp.float32)  # batch 3 of (4, 4, 2)
    if name == "actnorm":
        b = _actnorm(rng, 2)
    elif name == "conv1x1":
        b = _conv(rng, 2)
    elif name == "squeeze":
        b = F.Squeeze()
    elif name == "unsqueeze":
        b, x = distrax.Inverse(F.Squeeze()), x.reshape(3, 2, 2, 8)
    elif name == "factor_out":  # identity on 1 channel, a 1x1 conv + actnorm on the other 7
        x = x.reshape(3, 2, 2, 8)
        b = F.FactorOut(distrax.Chain([_conv(rng, 7), _actnorm(rng, 7)]), 1)
    else:
        b, x = F.Logit(0.05, event_ndims=3), jax.nn.sigmoid(x)
    report = F.check_bijector(b, x, eager=name in ("logit", "squeeze"), **TOL)  # + jit vs eager
    assert report["round trip"] <= 1e-4


def test_affine_coupling_checkerboard_passes_check(key, rng):
    x = jnp.asarray(rng.normal(size=(2, 4, 4, 2)), jnp.float32)
    cond = F.ConvConditioner(features=4, out_channels=4, num_blocks=1)
    params = _perturb(jax.jit(cond.init)(key, x), key, 0.3)
    b = F.AffineCoupling(F.checkerboard_mask((4, 4, 2), 1), lambda h: cond.apply(params, h), event_ndims=3)
    F.check_bijector(b, x, **TOL)
    y = b.forward(x)  # the kept half is untouched, the other half moved
    mask = F.checkerboard_mask((4, 4, 2), 1)
    np.testing.assert_array_equal(np.asarray(y)[:, mask], np.asarray(x)[:, mask])
    assert np.abs(np.asarray(y - x)[:, ~mask]).max() > 1e-3


@pytest.mark.parametrize("kind", ["affine", "spline", "maf"])
def test_vector_bijectors_pass_check(kind, key, rng):
    d = 3
    x = jnp.asarray(rng.normal(size=(4, d)), jnp.float32)
    if kind == "affine":
        cond = F.MLPConditioner((8,), 2 * d)
        p = _perturb(jax.jit(cond.init)(key, x), key, 0.5)
        b = F.AffineCoupling(F.alternating_mask(d, 0), lambda h: cond.apply(p, h))
    elif kind == "spline":
        cond = F.MLPConditioner((8,), d * 13)  # 4 bins
        # smaller noise: larger gives knot slopes near distrax's floor (1e-4), where the
        # float32 inverse is ill-conditioned (round trip off by ~0.05 for some seeds)
        p = _perturb(jax.jit(cond.init)(key, x), key, 0.2)
        b = F.spline_coupling(F.alternating_mask(d, 1), lambda h: cond.apply(p, h).reshape(*h.shape, 13), bound=3.0)
    else:
        layer = MAFLayer(MADE((8, 8), 2, (2, 0, 1)))
        b = layer.bijector(_perturb(jax.jit(layer.init)(key, x), key, 0.5))
    report = F.check_bijector(b, x, **TOL)
    assert report["forward log-det vs slogdet(jacfwd)"] <= 1e-3


def test_check_bijector_on_whole_glow(key, rng):
    """The full multi-scale chain (logit, squeeze, actnorm, 1x1 conv, couplings, factor-out)."""
    flow = F.glow((4, 4, 1), num_levels=2, num_steps=1, features=4, num_blocks=0)
    x = jnp.asarray(rng.uniform(0.05, 0.95, (2, 4, 4, 1)), jnp.float32)
    params = _perturb(flow.init(key, x), key, 0.05)
    F.check_bijector(flow.normalizing_bijector(params), x, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------------- closed forms
def test_actnorm_init_normalises_the_batch(rng):
    x = jnp.asarray(rng.normal(3.0, 2.5, (8, 4, 4, 3)), jnp.float32)
    p = F.actnorm_init(x)
    y, ld = F.ActNorm(p["log_scale"], p["bias"], event_ndims=3).forward_and_log_det(x)
    np.testing.assert_allclose(np.mean(np.asarray(y), axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.std(np.asarray(y), axis=(0, 1, 2)), 1.0, rtol=1e-4)
    std = np.std(np.asarray(x), axis=(0, 1, 2))
    np.testing.assert_allclose(ld, np.full(8, -16 * np.sum(np.log(std))), rtol=1e-4)


def test_conv1x1_weight_and_logdet(rng):
    b = _conv(rng, 3)
    w = np.asarray(b.weight())
    np.testing.assert_allclose(np.asarray(b.inverse_weight()) @ w, np.eye(3), atol=1e-5)
    x = jnp.asarray(rng.normal(size=(2, 2, 5, 3)), jnp.float32)
    y, ld = b.forward_and_log_det(x)
    np.testing.assert_allclose(y, np.einsum("ij,bhwj->bhwi", w, np.asarray(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, np.full(2, 10 * np.linalg.slogdet(w)[1]), rtol=1e-4, atol=1e-4)


def test_conv1x1_lu_init_is_a_rotation():
    params, perm, sign = F.conv1x1_lu_init(5, seed=3)
    b = F.InvertibleConv1x1(**params, permutation=perm, sign=sign)
    w = np.asarray(b.weight())
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-5)


def test_squeeze_layout_and_odd_size(rng):
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    y = np.asarray(F.Squeeze().forward(jnp.asarray(x)))
    assert y.shape == (2, 2, 3, 12)
    for a in range(2):
        for b in range(2):  # y[i, j, (a*2 + b)*C + c] = x[2i + a, 2j + b, c]
            np.testing.assert_array_equal(y[:, :, :, (a * 2 + b) * 3 : (a * 2 + b + 1) * 3], x[:, a::2, b::2, :])
    with pytest.raises(ValueError, match=r"divisible by 2 \(odd spatial size\).*\(7, 8, 1\)"):
        F.Squeeze().forward(jnp.zeros((1, 7, 8, 1)))
    with pytest.raises(ValueError, match="divisible by 2"):
        F.check_bijector(F.Squeeze(), jnp.zeros((1, 8, 5, 1)))


def test_logit_matches_closed_form(rng):
    x = jnp.asarray(rng.uniform(size=(5, 3)), jnp.float32)
    y, ld = F.Logit(0.05, event_ndims=1).forward_and_log_det(x)
    p = 0.05 + 0.9 * np.asarray(x, np.float64)
    np.testing.assert_allclose(y, np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, np.sum(np.log(0.9 / (p * (1 - p))), axis=-1), rtol=1e-5, atol=1e-5)


def test_made_is_autoregressive(key, rng):
    order = (2, 0, 3, 1)
    made = MADE((16, 16), 2, order, activation="tanh", zero_init_out=False)
    x = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    params = jax.jit(made.init)(key, x)
    jac = np.asarray(jax.jacfwd(lambda v: made.apply(params, v))(x))  # (4 out, 2 params, 4 in)
    rank = np.empty(4, int)
    rank[list(order)] = np.arange(4)
    allowed = rank[None, :] < rank[:, None]  # output i may depend on input j iff j precedes i
    assert np.all(np.abs(jac[:, 0, :])[~allowed] == 0.0) and np.all(np.abs(jac[:, 1, :])[~allowed] == 0.0)
    assert np.abs(jac[:, 0, :])[allowed].min() > 0.0  # and does depend on all of them
    masks = made_masks(order, (16, 16), 2)
    assert [m.shape for m in masks] == [(4, 16), (16, 16), (16, 8)]


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_factored"):
        F.FactorOut(F.Squeeze(), 0)
    with pytest.raises(ValueError, match="alpha"):
        F.Logit(0.5)
    with pytest.raises(ValueError, match="scale_fn"):
        F.AffineCoupling(np.array([True, False]), lambda h: h, scale_fn="exp")
    with pytest.raises(ValueError, match="lower must have shape"):
        F.InvertibleConv1x1(jnp.zeros((2, 3)), jnp.zeros((3, 3)), jnp.zeros(3), permutation=np.eye(3), sign=np.ones(3))
    with pytest.raises(ValueError, match="ActNorm has 3 channels"):
        F.ActNorm(jnp.zeros(3), jnp.zeros(3), event_ndims=1).forward(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="conditioner must map"):
        F.AffineCoupling(np.array([True, False]), lambda h: h).forward(jnp.zeros((1, 2)))
