"""The diffusion prior's causal Transformer (issue 20): output shape, padding that never changes
the prediction, causality (a position's state never depends on a later token), and the error
messages that name the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn import PriorTransformer

B, D, W_CTX, L, MAX_LEN = 2, 6, 5, 4, 12


def tiny(**kw) -> PriorTransformer:
    return PriorTransformer(**{"width": 8, "depth": 2, "num_heads": 2, "max_len": MAX_LEN, **kw})


def _inputs(rng, length=L, real=(2, 4)):
    x = jnp.asarray(rng.normal(size=(B, D)), jnp.float32)
    t = jnp.asarray([3.0, 17.0])
    states = rng.normal(size=(B, length, W_CTX)).astype(np.float32)
    mask = np.zeros((B, length), bool)
    for i, n in enumerate(real):
        mask[i, :n] = True
    states[~mask] = 0.0  # as a text encoder gives them
    emb = jnp.asarray(rng.normal(size=(B, D)), jnp.float32)
    return x, t, (jnp.asarray(states), emb), jnp.asarray(mask)


def _params(net, key, rng, x, t, ctx, mask):
    """Initialised, then every leaf perturbed (the output layer starts at zero, which would make
    any invariance test vacuous)."""
    params = net.init(key, x, t, context=ctx, context_mask=mask)
    return jax.tree_util.tree_map(lambda a: a + 0.3 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params)


def test_output_shape_and_finite(key, rng):
    net = tiny()
    x, t, ctx, mask = _inputs(rng)
    params = _params(net, key, rng, x, t, ctx, mask)
    out = net.apply(params, x, t, context=ctx, context_mask=mask)
    assert out.shape == (B, D) and out.dtype == jnp.float32
    assert np.isfinite(np.asarray(out)).all()
    assert float(jnp.abs(out).max()) > 0  # the perturbed output layer is used
    states = net.apply(params, x, t, context=ctx, context_mask=mask, return_states=True)
    assert states.shape == (B, L + 4, 8)


def test_padding_never_changes_the_prediction(key, rng):
    net = tiny()
    x, t, (states, emb), mask = _inputs(rng)
    params = _params(net, key, rng, x, t, (states, emb), mask)
    out = net.apply(params, x, t, context=(states, emb), context_mask=mask)
    # pad the captions 4 positions longer, with garbage states at the padding
    pad = jnp.asarray(rng.normal(size=(B, 4, W_CTX)), jnp.float32)
    longer = jnp.concatenate([states.at[~np.asarray(mask)].set(5.0), pad], axis=1)
    longer_mask = jnp.concatenate([mask, jnp.zeros((B, 4), bool)], axis=1)
    out_long = net.apply(params, x, t, context=(longer, emb), context_mask=longer_mask)
    np.testing.assert_allclose(np.asarray(out_long), np.asarray(out), rtol=1e-5, atol=1e-5)
    # and a real token does change it (the check above could not pass by ignoring the caption)
    changed = net.apply(params, x, t, context=(states.at[:, 0].add(1.0), emb), context_mask=mask)
    assert np.abs(np.asarray(changed) - np.asarray(out)).max() > 1e-4


def test_causal_a_state_ignores_later_tokens(key, rng):
    net = tiny()
    x, t, ctx, mask = _inputs(rng)
    params = _params(net, key, rng, x, t, ctx, mask)
    get = lambda x_, t_: np.asarray(net.apply(params, x_, t_, context=ctx, context_mask=mask, return_states=True))
    base = get(x, t)
    # x_t is token L + 2: positions up to L + 1 do not see it, positions L + 2 and L + 3 do
    moved = get(x + 1.0, t)
    np.testing.assert_allclose(moved[:, : L + 2], base[:, : L + 2], rtol=1e-6, atol=1e-6)
    assert np.abs(moved[:, L + 2 :] - base[:, L + 2 :]).max() > 1e-4
    # the timestep is token L + 1
    later = get(x, t + 100.0)
    np.testing.assert_allclose(later[:, : L + 1], base[:, : L + 1], rtol=1e-6, atol=1e-6)
    assert np.abs(later[:, L + 1 :] - base[:, L + 1 :]).max() > 1e-4


@pytest.mark.parametrize("change, match", [
    (dict(y=jnp.zeros((B,), jnp.int32)), "y must be None"),
    (dict(x=jnp.zeros((B, 2, 3))), r"x must be a float array of shape \(batch, d\)"),
    (dict(t=jnp.zeros((B + 1,))), r"t must have shape \(batch,\)"),
    (dict(context=jnp.zeros((B, L, W_CTX))), "context must be .*with_embedding=True"),
    (dict(context=(jnp.zeros((B, L)), jnp.zeros((B, D)))), r"caption states.* must have shape \(batch, L, D\)"),
    (dict(context=(jnp.zeros((B, L, W_CTX)), jnp.zeros((B,)))), r"context\[1\] \(text embedding\)"),
    (dict(context_mask=jnp.ones((B, L + 1), bool)), "context_mask must have shape"),
    (dict(context=(jnp.zeros((B, MAX_LEN, W_CTX)), jnp.zeros((B, D))), context_mask=None), "L=12 tokens, but max_len=12"),
])
def test_bad_inputs_name_the_argument(key, rng, change, match):
    net = tiny()
    x, t, ctx, mask = _inputs(rng)
    args = {"x": x, "t": t, "y": None, "context": ctx, "context_mask": mask, **change}
    with pytest.raises(ValueError, match=match):
        net.init(key, args.pop("x"), args.pop("t"), **args)


@pytest.mark.parametrize("kw, match", [
    (dict(width=6, num_heads=4), "divisible by num_heads"),
    (dict(depth=0), "depth must be a positive integer"),
    (dict(max_len=4), "max_len must exceed 4"),
])
def test_bad_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)
