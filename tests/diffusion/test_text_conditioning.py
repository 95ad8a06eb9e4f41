"""Token conditioning of the DDPM (issue 19): a frozen text encoder's states reach the network
by cross-attention, classifier-free guidance over [caption; empty caption], caption dropout,
padding invariance, every sampler under a caption, and training with ``fit`` on a dict batch.

The "text encoder" is a random embedding table (``tokens -> TABLE[tokens]``); the network a
tiny MLP with one cross-attention read of the caption (cheap to compile) or, for training,
a tiny ``UNet(use_context=True)``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import models as M
from genjax.diffusion import schedules as sch
from genjax.nn.attention import CrossAttention
from genjax.train import fit
from genjax.types import Condition

PAD, BOS, EOS = 0, 1, 2
TOKENS = Condition("tokens", vocab_size=7, max_len=6, pad_id=PAD)
NULL = (BOS, EOS)
TABLE = jax.random.normal(jax.random.PRNGKey(7), (7, 6))


def encoder(tokens):
    return TABLE[tokens]


class TokenNet(nn.Module):
    """``(x (b, d), t, None, context, context_mask) -> (b, d)``: an MLP that reads the caption once."""

    @nn.compact
    def __call__(self, x, t, y=None, context=None, context_mask=None):
        assert y is None
        h = nn.Dense(8)(x) + nn.Dense(8)(jnp.sin(t[:, None] / 10.0))
        a = CrossAttention(num_heads=2)(h[:, None, :], context, context_mask)[:, 0]
        return nn.Dense(x.shape[-1])(nn.silu(h + a))


def _model(p_uncond=0.1, **kw):
    kw = {"text_encoder": encoder, "text_condition": TOKENS, "null_tokens": NULL, **kw}
    return M.DDPM(TokenNet(), (2,), sch.linear_schedule(10, beta_max=0.3), p_uncond=p_uncond, **kw)


def _apply(model, params, x, t, tokens):
    """The network called by hand on one caption (no DDPM code in between)."""
    tokens = jnp.asarray(tokens)
    return np.asarray(model.network.apply(params, x, jnp.asarray(t, jnp.float32), None,
                                          context=TABLE[tokens], context_mask=tokens != PAD))


CAPS = jnp.array([[BOS, 3, 4, EOS], [BOS, 5, EOS, PAD], [BOS, 6, 6, EOS]], jnp.int32)


@pytest.fixture
def setup(key):
    model = _model()
    x = jax.random.normal(key, (3, 2))
    params = model.init(key, {"x": x, "cond": CAPS})
    return model, params, x, jnp.array([0, 4, 9], jnp.int32)


def test_construction_and_condition():
    model = _model()
    assert model.condition == TOKENS and model.null_tokens == NULL
    np.testing.assert_array_equal(model.null_cond(2, 4), [[BOS, EOS, PAD, PAD]] * 2)
    bad = [
        (dict(num_classes=3), "num_classes and text_encoder are exclusive"),
        (dict(null_tokens=None), "null_tokens must be the empty caption's tokens"),
        (dict(null_tokens=(PAD, PAD)), r"not all pad_id=0, got \(0, 0\)"),
        (dict(null_tokens=(BOS, 9)), r"ints in \[0, 7\)"),
        (dict(text_condition=Condition("labels", num_classes=3)), "text_condition must be a types.Condition"),
        (dict(text_encoder=None), "text_condition and null_tokens need a text_encoder"),
    ]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=msg):
            _model(**kw)
    with pytest.raises(TypeError, match="text_encoder must be callable"):
        _model(text_encoder=3)


def test_cfg_is_the_combination_of_two_separate_network_calls(setup):
    model, params, x, t = setup
    cond = _apply(model, params, x, t, CAPS)
    null = _apply(model, params, x, t, jnp.array([NULL] * 3))  # L = 2: another length than CAPS
    assert np.abs(cond - null).max() > 1e-4  # the caption reaches the network
    for w in (1.0, 3.5):
        got = np.asarray(model.eps_fn(params, cond=CAPS, guidance=w)(x, t))
        np.testing.assert_allclose(got, (1 + w) * cond - w * null, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.eps_fn(params, cond=CAPS)(x, t)), cond, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.eps_fn(params)(x, t)), null, rtol=1e-5, atol=1e-6)  # cond=None: ""


def test_a_negative_prompt_takes_the_null_conditions_place(setup, key):
    """Guidance with a negative prompt (issue 23): (1 + w) eps(cond) - w eps(negative), each from a
    separate call of the network; one negative row serves every sample; a negative equal to the
    empty caption is plain guidance."""
    model, params, x, t = setup
    neg = jnp.array([[BOS, 6, EOS]], jnp.int32)  # one row, another length than CAPS
    cond = _apply(model, params, x, t, CAPS)
    away = _apply(model, params, x, t, jnp.tile(neg, (3, 1)))
    w = 2.5
    got = np.asarray(model.eps_fn(params, cond=CAPS, guidance=w, negative_cond=jnp.tile(neg, (3, 1)))(x, t))
    np.testing.assert_allclose(got, (1 + w) * cond - w * away, rtol=1e-5, atol=1e-5)
    score, sde = model.vp_score(params, cond=CAPS, guidance=w, negative_cond=jnp.tile(neg, (3, 1)))
    _, std = sde.marginal(jnp.full((3,), 0.5))
    np.testing.assert_allclose(np.asarray(score(x, jnp.full((3,), 0.5))),
                               -((1 + w) * _apply(model, params, x, np.full(3, 4.0), CAPS)
                                 - w * _apply(model, params, x, np.full(3, 4.0), jnp.tile(neg, (3, 1))))
                               / np.asarray(std)[:, None], rtol=1e-4, atol=1e-5)
    plain = np.asarray(model.sample(params, key, 3, sampler="ddim", steps=4, cond=CAPS, guidance=w))
    as_null = np.asarray(model.sample(params, key, 3, sampler="ddim", steps=4, cond=CAPS, guidance=w,
                                      negative_cond=jnp.array([NULL], jnp.int32)))
    np.testing.assert_allclose(as_null, plain, rtol=1e-5, atol=1e-5)
    other = np.asarray(model.sample(params, key, 3, sampler="ddim", steps=4, cond=CAPS, guidance=w, negative_cond=neg))
    assert np.abs(other - plain).max() > 1e-4
    for kw, message in ((dict(cond=CAPS), "needs cond and guidance > 0"), (dict(guidance=w), "guidance needs a cond"),
                        (dict(cond=CAPS, guidance=w, negative_cond=jnp.zeros((2, 3), jnp.int32)), "negative_cond must be")):
        with pytest.raises(ValueError, match=message):
            model.sample(params, key, 3, **{"negative_cond": neg, **kw})


def test_padding_never_changes_eps(setup):
    model, params, x, t = setup
    padded = jnp.pad(CAPS, ((0, 0), (0, 2)), constant_values=PAD)  # L 4 -> 6
    for w in (0.0, 2.0):
        a = np.asarray(model.eps_fn(params, cond=CAPS, guidance=w)(x, t))
        b = np.asarray(model.eps_fn(params, cond=padded, guidance=w)(x, t))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    other = CAPS.at[0, 1].set(5)  # one real token changed: the prediction changes
    assert np.abs(np.asarray(model.eps(params, x, t, other)) - np.asarray(model.eps(params, x, t, CAPS))).max() > 1e-5


def test_the_text_encoder_is_frozen(setup):
    model, params, x, t = setup

    def out(table):
        m = dataclasses.replace(model, text_encoder=lambda tok: table[tok])
        return jnp.sum(m.eps(params, x, t, CAPS) ** 2)

    assert float(jnp.abs(jax.grad(out)(TABLE)).max()) == 0.0
    # ... while the same function of the table without stop_gradient has a gradient
    direct = jax.grad(lambda tab: jnp.sum(model.network.apply(
        params, x, t.astype(jnp.float32), None, context=tab[CAPS], context_mask=CAPS != PAD) ** 2))(TABLE)
    assert float(jnp.abs(direct).max()) > 0.0


def test_caption_dropout(setup, key):
    model, params, x, _ = setup
    big = jnp.tile(CAPS, (2000, 1))
    np.testing.assert_array_equal(_model(p_uncond=1.0).drop_cond(key, big), np.tile([BOS, EOS, PAD, PAD], (6000, 1)))
    np.testing.assert_array_equal(_model(p_uncond=0.0).drop_cond(key, big), big)
    out = np.asarray(_model(p_uncond=0.3).drop_cond(key, big))
    dropped = (out == [BOS, EOS, PAD, PAD]).all(1)
    assert abs(dropped.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 6000)
    np.testing.assert_array_equal(out[~dropped], np.asarray(big)[~dropped])
    # through the loss: with p_uncond = 1 the caption does not matter, with 0 it does
    other = jnp.array([[BOS, 6, EOS, PAD]] * 3, jnp.int32)
    for prob, same in ((1.0, True), (0.0, False)):
        m = _model(p_uncond=prob)
        l1 = float(m.loss(params, key, {"x": x, "cond": CAPS})[0])
        l2 = float(m.loss(params, key, {"x": x, "cond": other})[0])
        assert (abs(l1 - l2) < 1e-7) == same, (prob, l1, l2)


def test_every_sampler_under_a_caption(setup, key):
    model, params, x, t = setup
    w = 2.0
    score, sde = model.vp_score(params, cond=CAPS, guidance=w)
    tc = jnp.array([0.1, 0.55, 1.0])
    _, std = sde.marginal(tc)
    idx = np.asarray(10 * tc - 1.0)  # the DDPM index of time t: T t - 1
    guided = (1 + w) * _apply(model, params, x, idx, CAPS) - w * _apply(model, params, x, idx, jnp.array([NULL] * 3))
    np.testing.assert_allclose(np.asarray(score(x, tc)), -guided / np.asarray(std)[:, None], rtol=1e-4, atol=1e-5)
    for sampler in ("ddpm", "ddim", "pc", "ode"):
        s0 = np.asarray(model.sample(params, key, 3, sampler=sampler, steps=None, cond=CAPS))
        s2 = np.asarray(model.sample(params, key, 3, sampler=sampler, cond=CAPS, guidance=w))
        assert s0.shape == (3, 2) and np.all(np.isfinite(s2)) and np.abs(s2 - s0).max() > 1e-5, sampler
    with pytest.raises(ValueError, match=r"cond must be int tokens in \[0, 7\) of shape \(3, L\), L <= 6"):
        model.sample(params, key, 3, cond=jnp.zeros((3, 7), jnp.int32))
    with pytest.raises(ValueError, match="labels given, but the model is conditioned on tokens, not class labels; use cond="):
        with pytest.warns(DeprecationWarning):
            model.sample(params, key, 3, labels=1)
    with pytest.raises(ValueError, match=r"batch: a text-conditional DDPM needs a dict batch \{'x': ..., 'cond': int tokens"):
        model.loss(params, key, x)
    with pytest.raises(ValueError, match=r"unknown sampler .langevin.; valid choices: ddim, ddpm, dpm\+\+2m, dpm2, dpm3, euler, heun, ode, pc"):
        model.sample(params, key, 3, sampler="langevin")


def test_text_conditioned_image_ddpm_trains_with_fit(key):
    model = M.ddpm_image((8, 8, 1), base=8, channel_mult=(1,), num_heads=1, T=10,
                         text_encoder=encoder, text_condition=TOKENS, null_tokens=NULL, p_uncond=0.2)
    assert model.network.use_context
    rng = np.random.default_rng(0)
    data = {"x": rng.uniform(size=(16, 8, 8, 1)).astype(np.float32),
            "cond": np.tile(np.asarray(CAPS), (6, 1))[:16]}
    init = model.init(key, {"x": data["x"][:2], "cond": data["cond"][:2]})
    res = fit(model, data, num_steps=4, batch_size=8, learning_rate=1e-3, log_every=2, checkpoint_every=None,
              steps_per_dispatch=2, progress=False, init_params=init)
    losses = [r["loss"] for r in res.history if "loss" in r]
    assert losses and np.all(np.isfinite(losses))
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), res.state.params, init)
    assert max(jax.tree.leaves(moved)) > 0.0
    s = np.asarray(model.sample(res.state.params, key, 2, sampler="ddim", steps=3, cond=CAPS[:2], guidance=2.0))
    assert s.shape == (2, 8, 8, 1) and s.min() >= 0.0 and s.max() <= 1.0
