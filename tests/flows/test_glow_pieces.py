"""Glow's pieces (issue 22): the learned split and top priors against a plain Gaussian
log-density computed in numpy, Glow's zero-initialised conv with its learned log-scale,
the [-0.5, 0.5] input convention, and the whole flow's log-det against
slogdet(jacfwd) in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.flows as F
from genjax.flows.coupling import SCALE_FNS
from genjax.flows.layers import chain_layers


def _perturb(params, key, scale):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


def _np_conv3x3(x, kernel, bias):
    """'SAME' 3x3 convolution of (b, H, W, C) with (3, 3, C, F), in float64 loops."""
    b, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((b, h, w, kernel.shape[-1])) + bias
    for u in range(3):
        for v in range(3):
            out += np.einsum("bhwc,cf->bhwf", xp[:, u : u + h, v : v + w], kernel[u, v])
    return out


def _zero_conv_np(p, x):
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p["params"])
    return _np_conv3x3(x, p["conv"]["kernel"], p["conv"]["bias"]) * np.exp(3.0 * p["logs"])


def _normal_logpdf(x, mean, log_scale):
    return -0.5 * np.log(2 * np.pi) - log_scale - 0.5 * ((x - mean) / np.exp(log_scale)) ** 2


def test_zero_conv_starts_at_zero_and_scales_by_exp_3_logs(key, rng):
    x = jnp.asarray(rng.standard_normal((2, 4, 4, 3)), jnp.float32)
    net = F.ZeroConv(5)
    p = net.init(key, x)
    np.testing.assert_array_equal(net.apply(p, x), 0.0)
    p = _perturb(p, key, 0.3)
    np.testing.assert_allclose(net.apply(p, x), _zero_conv_np(p, np.asarray(x, np.float64)), rtol=1e-4, atol=1e-5)
    cond = F.ConvConditioner(4, 6, num_blocks=0, out_log_scale=True)
    assert "logs" in cond.init(key, x)["params"]["conv_out"]


def test_split_prior_log_density_is_the_plain_gaussian(key, rng):
    x = jnp.asarray(rng.standard_normal((3, 4, 4, 4)), jnp.float32)  # 2 factored + 2 kept channels
    layer = F.LearnedPriorLayer(2, F.ZeroConv(4))
    p = _perturb(layer.init(key, x), key, 0.2)
    b = layer.bijector(p)
    y, ld = b.forward_and_log_det(x)
    got = np.asarray(F.base_log_prob(y, event_ndims=3) + ld, np.float64)
    xx = np.asarray(x, np.float64)
    stats = _zero_conv_np(p, xx[..., 2:])
    mean, log_scale = stats[..., :2], stats[..., 2:]
    want = _normal_logpdf(xx[..., :2], mean, log_scale).sum((1, 2, 3)) + _normal_logpdf(xx[..., 2:], 0.0, 0.0).sum((1, 2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b.inverse(y), x, rtol=1e-5, atol=1e-5)


def test_top_prior_is_a_learned_per_channel_gaussian(key, rng):
    x = jnp.asarray(rng.standard_normal((3, 2, 2, 4)), jnp.float32)
    layer = F.LearnedPriorLayer(4, F.ZeroConv(8))
    p = _perturb(layer.init(key, x), key, 0.3)
    y, ld = layer.bijector(p).forward_and_log_det(x)
    q = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p["params"])
    stats = q["conv"]["bias"] * np.exp(3.0 * q["logs"])  # a conv of zeros: its bias, scaled
    want = _normal_logpdf(np.asarray(x, np.float64), stats[:4], stats[4:]).sum((1, 2, 3))
    np.testing.assert_allclose(F.base_log_prob(y, event_ndims=3) + ld, want, rtol=1e-5, atol=1e-4)


def test_glow_defaults_and_the_centred_input(key, rng):
    flow = F.glow((4, 4, 1), num_levels=2, num_steps=1, features=4, num_blocks=0)
    assert isinstance(flow.layers[0], F.ShiftLayer) and flow.logit_alpha is None
    kinds = [type(l).__name__ for l in flow.layers]
    assert "LearnedPriorLayer" in kinds  # the split prior, before the factor-out
    inner = flow.layers[kinds.index("FactorOutLayer")].layers
    assert type(inner[-2]).__name__ == "LearnedPriorLayer"  # the top prior, before the un-squeeze
    x = jnp.asarray(rng.uniform(0, 1, (2, 4, 4, 1)), jnp.float32)
    params = _perturb(flow.init(key, x), key, 0.05)
    z, ld = flow.normalizing_bijector(params).forward_and_log_det(x)
    rest = chain_layers(flow.layers[1:], {f"layer_{i}": params.get(f"layer_{i + 1}", {}) for i in range(len(flow.layers) - 1)})
    z2, ld2 = rest.forward_and_log_det(x - 0.5)
    np.testing.assert_allclose(z, z2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ld, ld2, rtol=1e-6, atol=1e-6)
    logit = F.glow((4, 4, 1), num_levels=2, num_steps=1, features=4, num_blocks=0, preprocess="logit")
    assert logit.logit_alpha == 0.05 and not isinstance(logit.layers[0], F.ShiftLayer)


def test_coupling_log_scales_against_their_closed_forms():
    raw = np.linspace(-30.0, 30.0, 601)
    closed = {
        "tanh": 3.0 * np.tanh(raw / 3.0),
        "sigmoid": -np.logaddexp(0.0, -(raw + 2.0)),  # log sigmoid(raw + 2)
        "sigmoid2": np.log(2.0) - np.logaddexp(0.0, -raw),  # log(2 sigmoid(raw))
    }
    assert set(closed) == set(SCALE_FNS)
    for name, want in closed.items():
        got = np.asarray(F.bounded_log_scale(jnp.asarray(raw, jnp.float32), scale_fn=name))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
    s2 = np.asarray(F.bounded_log_scale(jnp.asarray(raw, jnp.float32), scale_fn="sigmoid2"))
    assert s2.max() <= np.log(2.0) + 1e-6 and F.bounded_log_scale(jnp.zeros(()), scale_fn="sigmoid2") == 0.0
    slope = jax.grad(lambda r: F.bounded_log_scale(r, scale_fn="sigmoid2"))(0.0)
    np.testing.assert_allclose(slope, 0.5, rtol=1e-6)


@pytest.mark.parametrize("scale_fn", SCALE_FNS)
def test_whole_glow_log_det_matches_slogdet_of_the_jacobian_in_float64(key, rng, scale_fn):
    flow = F.glow((4, 4, 1), num_levels=2, num_steps=2, features=4, num_blocks=1, scale_fn=scale_fn)
    # ActNorm's data-dependent init needs a real batch: at the second level the event is
    # 1x1 spatial, so an init on 2 images sets scales from 2 values per channel (up to
    # e^4 here), the coupling then sees activations of ~1e3, contracts one direction by
    # e^-86, and the Jacobian's condition number (~1e18) is past what slogdet can resolve
    # in float64 (seed 1343532573: every layer's log-det matched its own slogdet, the
    # product's did not). With 64 init images the condition number stays below ~1e2.
    x_init = jnp.asarray(rng.uniform(0.05, 0.95, (64, 4, 4, 1)), jnp.float32)
    x32 = x_init[:2]
    params = _perturb(flow.init(key, x_init), key, 0.1)  # every piece away from its start
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = jnp.asarray(x32, jnp.float64)
        bij = flow.normalizing_bijector(p64)
        _, ld = bij.forward_and_log_det(x)
        for i in range(2):
            f = lambda v: bij.forward(v.reshape(1, 4, 4, 1)).reshape(-1)
            jac = np.asarray(jax.jacfwd(f)(x[i].reshape(-1)))
            assert jac.dtype == np.float64
            assert np.linalg.cond(jac) < 1e8, "the reference slogdet needs a well-conditioned Jacobian"
            np.testing.assert_allclose(ld[i], np.linalg.slogdet(jac)[1], rtol=1e-9, atol=1e-9)
