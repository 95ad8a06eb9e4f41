"""Conditioning in the model API (issue 17 D): ``types.Condition`` / ``check_cond`` for each
kind of condition, ``sample(..., cond=, guidance=)`` on the class-conditional DDPM (and its
deprecated ``labels=`` alias), and unconditional models rejecting a condition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import vae
from genjax.diffusion import models as M
from genjax.types import NO_CONDITION, Condition, batch_cond, check_cond, check_guidance, token_mask

LABELS = Condition("labels", num_classes=10)
VECTOR = Condition("vector", dim=3)
TOKENS = Condition("tokens", vocab_size=7, max_len=5, pad_id=0)


# ---------------------------------------------------------------------- the shared checker
def test_check_cond_labels():
    np.testing.assert_array_equal(check_cond(LABELS, 3, 4), [3, 3, 3, 3])  # one int: broadcast
    got = check_cond(LABELS, np.array([0, 9, 2]), 3)
    assert got.dtype == jnp.int32 and got.shape == (3,)
    assert check_cond(LABELS, None, 3) is None
    msg = r"cond must be int class labels in \[0, 10\) of shape \(3,\), or one int"
    with pytest.raises(ValueError, match=msg + r", got values in \[0, 10\]"):
        check_cond(LABELS, np.array([0, 10, 1]), 3)
    with pytest.raises(ValueError, match=msg + r", got shape \(2,\)"):
        check_cond(LABELS, np.array([0, 1]), 3)
    with pytest.raises(ValueError, match=msg + r", got shape \(3,\) dtype float32"):
        check_cond(LABELS, np.zeros(3, np.float32), 3)
    with pytest.raises(ValueError, match=r"cond must be int class labels .* got values in \[-1, -1\]"):
        check_cond(LABELS, -1, 3)


def test_check_cond_none_vector_tokens():
    with pytest.raises(ValueError, match=r"cond: this model takes no condition \(condition kind 'none'\), got 3"):
        check_cond(NO_CONDITION, 3, 2)
    assert check_cond(VECTOR, np.ones((2, 3), np.float32), 2).shape == (2, 3)
    with pytest.raises(ValueError, match=r"cond must be a float array of shape \(2, 3\), got shape \(2, 4\)"):
        check_cond(VECTOR, np.ones((2, 4), np.float32), 2)
    with pytest.raises(ValueError, match="non-finite"):
        check_cond(VECTOR, np.full((2, 3), np.nan, np.float32), 2)
    toks = np.array([[3, 4, 0, 0], [1, 2, 6, 0]])
    assert check_cond(TOKENS, toks, 2).shape == (2, 4)
    np.testing.assert_array_equal(token_mask(TOKENS, toks), toks != 0)
    tok_msg = r"cond must be int tokens in \[0, 7\) of shape \(2, L\), L <= 5, padded with pad_id=0"
    with pytest.raises(ValueError, match=tok_msg + r", got shape \(2, 6\)"):
        check_cond(TOKENS, np.zeros((2, 6), np.int32), 2)
    with pytest.raises(ValueError, match=tok_msg + r", got values in \[0, 7\]"):
        check_cond(TOKENS, np.array([[0, 7]]).repeat(2, 0), 2)
    with pytest.raises(ValueError, match=tok_msg):
        check_cond(TOKENS, np.zeros((2, 3), np.float32), 2)
    with pytest.raises(ValueError, match=r"Condition\(kind='labels'\).num_classes must be a positive integer"):
        Condition("labels")
    with pytest.raises(ValueError, match="unknown condition kind 'text'"):
        Condition("text")


def test_check_guidance_and_batch_cond():
    assert check_guidance(None, LABELS, 3) == 0.0 and check_guidance(2.0, LABELS, 3) == 2.0
    with pytest.raises(ValueError, match="guidance: this model takes no condition"):
        check_guidance(1.0, NO_CONDITION, None)
    with pytest.raises(ValueError, match="guidance needs a cond"):
        check_guidance(1.0, LABELS, None)
    with pytest.raises(ValueError, match=r"guidance must be a finite number >= 0, got -1.0"):
        check_guidance(-1.0, LABELS, 3)
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"batch: a model conditioned on labels needs a dict batch \{'x': ..., 'cond'"):
        batch_cond(LABELS, x, 2)
    assert batch_cond(LABELS, x, 2, required=False) is None
    np.testing.assert_array_equal(batch_cond(LABELS, {"x": x, "cond": np.array([1, 2])}, 2), [1, 2])
    with pytest.raises(ValueError, match=r"batch\['cond'\]: this model takes no condition"):
        batch_cond(NO_CONDITION, {"x": x, "cond": np.array([1, 2])}, 2)


# ---------------------------------------------------------------------- models
def _tiny(num_classes=None):
    return M.ddpm_2d(hidden=(8,), emb_dim=8, T=10, num_classes=num_classes)


def test_ddpm_condition_and_cond_equals_deprecated_labels(key):
    model = _tiny(num_classes=3)
    assert model.condition == Condition("labels", num_classes=3) and _tiny().condition == NO_CONDITION
    x = jax.random.normal(key, (4, 2))
    y = jnp.array([0, 2, 1, 1], jnp.int32)
    params = model.init(key, {"x": x, "cond": y})
    kw = dict(sampler="ddim", steps=2)
    new = np.asarray(model.sample(params, key, 4, cond=2, guidance=1.5, **kw))
    with pytest.warns(DeprecationWarning, match="labels= is deprecated; use cond="):
        old = np.asarray(model.sample(params, key, 4, labels=2, guidance=1.5, **kw))
    np.testing.assert_array_equal(new, old)
    plain = np.asarray(model.sample(params, key, 4, cond=2, **kw))  # guidance None == 0
    np.testing.assert_array_equal(plain, np.asarray(model.sample(params, key, 4, cond=2, guidance=0.0, **kw)))
    assert np.abs(plain - new).max() > 1e-5
    # the batch's "y" is a deprecated alias of "cond"
    l_cond = model.loss(params, key, {"x": x, "cond": y})[0]
    l_y = model.loss(params, key, {"x": x, "y": y})[0]
    assert float(l_cond) == float(l_y)
    # log_prob with cond vs the null-label model differ (the condition reaches the network)
    assert np.abs(np.asarray(model.log_prob(params, key, x, cond=y)) - np.asarray(model.log_prob(params, key, x))).max() > 0
    with pytest.raises(ValueError, match="give cond or its deprecated alias labels, not both"):
        model.sample(params, key, 2, cond=1, labels=1)
    with pytest.raises(ValueError, match="guidance needs a cond"):
        model.sample(params, key, 2, guidance=2.0)


def test_unconditional_models_reject_a_condition(key):
    x = jax.random.normal(key, (3, 2))
    for model in (_tiny(), M.ncsn_2d(hidden=(8,), emb_dim=8, num_sigmas=3), M.score_sde_2d(hidden=(8,), emb_dim=8)):
        params = model.init(key, x)
        assert model.condition == NO_CONDITION
        with pytest.raises(ValueError, match="cond: this model takes no condition"):
            model.sample(params, key, 2, cond=1)
        with pytest.raises(ValueError, match="guidance: this model takes no condition"):
            model.sample(params, key, 2, guidance=1.0)
        with pytest.raises(ValueError, match=r"batch\['cond'\]: this model takes no condition"):
            model.loss(params, key, {"x": x, "cond": jnp.zeros((3,), jnp.int32)})
    v = vae.mlp_vae(data_shape=(2,), latent_dim=2, hidden=(8,), likelihood="gaussian")
    assert v.condition == NO_CONDITION
    vp = v.init(key, x)
    assert v.sample(vp, key, 2, cond=None, guidance=None).shape == (2, 2)
    with pytest.raises(ValueError, match="cond: this model takes no condition"):
        v.sample(vp, key, 2, cond=jnp.zeros((2,), jnp.int32))
    with pytest.raises(ValueError, match="guidance: this model takes no condition"):
        v.sample(vp, key, 2, guidance=2.0)
