"""CLIP: the objective against plain numpy, the temperature cap, memorising a tiny set,
the prompt ensemble, the caption transform and bad input. The text tower here is a stand-in
defined in this file (an embedding bag): the model takes any module tokens -> (states, pooled)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import clip
from genjax.nn.encoders import PooledConvEncoder
from genjax.train import fit
from genjax.types import Condition

VOCAB, MAX_LEN = 12, 5


class BagOfWords(nn.Module):
    """Stand-in text tower: token embeddings, pooled as the mean over non-padding tokens."""

    vocab_size: int
    width: int = 16
    pad_id: int = 0

    @nn.compact
    def __call__(self, tokens):
        states = nn.Embed(self.vocab_size, self.width)(tokens)
        mask = (tokens != self.pad_id)[..., None].astype(states.dtype)
        pooled = jnp.sum(states * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
        return states, pooled


def tiny_clip(**overrides) -> clip.CLIP:
    kw = dict(
        image_encoder=PooledConvEncoder(features=(8,), out_dim=16, groups=4),
        text_encoder=BagOfWords(VOCAB),
        image_shape=(8, 8, 1),
        condition=Condition(kind="tokens", vocab_size=VOCAB, max_len=MAX_LEN, pad_id=0),
        embed_dim=8,
    )
    kw.update(overrides)
    return clip.CLIP(**kw)


def numpy_info_nce(u, v, scale):
    """The CLIP paper's pseudo-code (Figure 3) in float64 numpy."""
    logits = scale * (u @ v.T)

    def ce(l):  # rows: cross-entropy with the diagonal as targets
        l = l - l.max(axis=1, keepdims=True)
        return np.log(np.exp(l).sum(axis=1)) - np.diagonal(l)

    return 0.5 * (ce(logits) + ce(logits.T))


def test_symmetric_info_nce_matches_numpy(rng):
    u = rng.normal(size=(6, 4))
    v = rng.normal(size=(6, 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t = np.log(1 / 0.07)
    got = clip.symmetric_info_nce(clip.clip_logits(jnp.asarray(u, jnp.float32), jnp.asarray(v, jnp.float32), jnp.float32(t)))
    np.testing.assert_allclose(np.asarray(got), numpy_info_nce(u, v, 1 / 0.07), rtol=1e-5, atol=1e-5)
    # identical pairs everywhere: every row and column is uniform -> log b
    same = jnp.ones((5, 5))
    np.testing.assert_allclose(np.asarray(clip.symmetric_info_nce(same)), np.log(5), rtol=1e-6, atol=1e-6)


def test_model_loss_is_the_mean_of_the_numpy_info_nce(key):
    model = tiny_clip()
    x = jax.random.uniform(key, (4, 8, 8, 1))
    tokens = jnp.array([[1, 3, 2, 0, 0], [1, 4, 5, 2, 0], [1, 6, 2, 0, 0], [1, 7, 8, 9, 2]], jnp.int32)
    params = jax.jit(model.init)(key, {"x": x, "cond": tokens})
    loss, metrics = jax.jit(model.loss)(params, key, {"x": x, "cond": tokens})
    u = np.asarray(jax.jit(model.encode_image)(params, x), np.float64)
    v = np.asarray(jax.jit(model.encode_text)(params, tokens), np.float64)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss), numpy_info_nce(u, v, 1 / 0.07).mean(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["logit_scale"]), 1 / 0.07, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.jit(model.similarity)(params, x, tokens)), u @ v.T, rtol=1e-4, atol=1e-5)
    assert model.text_states(params, tokens).shape == (4, MAX_LEN, 16)  # the text tower's token states


def test_constructor_towers_take_any_image_size(key):
    """The pooled CNN's parameters do not depend on H, W: a 8x8 model's params embed 8x16 images."""
    square = clip.clip_model((8, 8, 1), size="tiny", vocab_size=VOCAB, max_len=MAX_LEN)
    wide = clip.clip_model((8, 16, 1), size="tiny", vocab_size=VOCAB, max_len=MAX_LEN)
    tokens = jnp.array([[1, 3, 2, 0, 0]], jnp.int32)
    params = jax.jit(square.init)(key, {"x": jnp.zeros((1, 8, 8, 1)), "cond": tokens})
    emb = jax.jit(wide.encode_image)(params, jnp.ones((2, 8, 16, 1)))
    assert emb.shape == (2, square.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(emb), axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        clip.clip_model((8, 8, 1), size="huge", vocab_size=VOCAB, max_len=MAX_LEN)


def test_temperature_is_capped_value_and_gradient():
    """The cap is a clamp of the value: past log(100) the scale is exactly 100 and the gradient
    with respect to the log-scale is 0; below it the gradient is d exp(t)/dt = exp(t)."""
    huge = jnp.float32(50.0)
    assert float(clip.logit_scale(huge)) == pytest.approx(100.0, rel=1e-6)
    assert float(jax.grad(clip.logit_scale)(huge)) == 0.0
    t = jnp.float32(np.log(1 / 0.07))
    assert float(jax.grad(clip.logit_scale)(t)) == pytest.approx(1 / 0.07, rel=1e-5)
    # a model initialised far past the cap trains with logits scaled by 100, and the
    # log-scale gets no gradient
    model = tiny_clip(init_temperature=1e-6)
    x = jnp.linspace(0, 1, 3 * 64).reshape(3, 8, 8, 1)
    batch = {"x": x, "cond": jnp.array([[1, 3, 2, 0, 0], [1, 4, 2, 0, 0], [1, 5, 2, 0, 0]], jnp.int32)}
    params = jax.jit(model.init)(jax.random.PRNGKey(0), batch)
    assert float(params["log_scale"]) == pytest.approx(np.log(1e6), rel=1e-5)
    grads, metrics = jax.jit(jax.grad(model.loss, has_aux=True))(params, jax.random.PRNGKey(0), batch)
    assert float(metrics["logit_scale"]) == pytest.approx(100.0, rel=1e-5)
    assert float(grads["log_scale"]) == 0.0


def test_pick_caption_takes_one_of_each_images_captions(key):
    k = 3
    cond = jnp.arange(4 * k * MAX_LEN, dtype=jnp.int32).reshape(4, k, MAX_LEN)
    seen = set()
    for i in range(20):
        out = clip.pick_caption(jax.random.fold_in(key, i), {"x": jnp.zeros((4, 8, 8, 1)), "cond": cond})["cond"]
        assert out.shape == (4, MAX_LEN)
        for row in range(4):
            j = [c for c in range(k) if np.array_equal(out[row], cond[row, c])]
            assert len(j) == 1
            seen.add((row, j[0]))
    assert len(seen) == 4 * k  # every caption of every image is drawn at some step


def test_memorises_eight_pairs():
    """8 random images, 8 captions (2 spellings each): the loss falls from ~log 8 to near 0."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)
    words = np.arange(3, 11)
    tokens = np.zeros((8, 2, MAX_LEN), np.int32)
    tokens[:, :, 0] = 1
    tokens[:, 0, 1] = words
    tokens[:, 1, 1:3] = np.stack([words, np.roll(words, 1)], 1)  # "w_i w_{i-1}": a second caption
    tokens[:, 0, 2] = tokens[:, 1, 3] = 2
    model = tiny_clip()
    res = fit(model, {"x": x, "cond": tokens}, num_steps=300, batch_size=8, learning_rate=1e-2,
              transform=clip.pick_caption, log_every=50, checkpoint_every=None, progress=False, seed=0)
    losses = [r["loss"] for r in res.history if r["kind"] == "train"]
    assert losses[0] > 1.0
    params = res.state.params
    final, metrics = jax.jit(model.loss)(params, jax.random.PRNGKey(0), {"x": x, "cond": tokens[:, 0]})
    assert float(final) < 0.05, losses
    assert float(metrics["image_to_text_acc"]) == 1.0 and float(metrics["text_to_image_acc"]) == 1.0


class FakeTokenizer:
    table = {"a": 3, "b": 4, "c": 5, "d": 6, "e": 7}

    def encode(self, texts):
        out = np.zeros((len(texts), MAX_LEN), np.int32)
        for i, t in enumerate(texts):
            ids = [1] + [self.table[w] for w in t.split()] + [2]
            out[i, : len(ids)] = ids
        return out


def test_zero_shot_is_the_prompt_ensemble(key):
    model = tiny_clip(tokenizer=FakeTokenizer())
    x = jax.random.uniform(key, (5, 8, 8, 1))
    prompts = [["a", "a b"], ["c", "d", "c e"]]
    params = jax.jit(model.init)(key, {"x": x, "cond": jnp.ones((5, MAX_LEN), jnp.int32)})
    u = np.asarray(jax.jit(model.encode_image)(params, x))
    encode_text = jax.jit(model.encode_text)
    classes = []
    for ps in prompts:  # independent: embed, normalise, average, renormalise
        e = np.asarray(encode_text(params, FakeTokenizer().encode(ps)))
        m = e.mean(0)
        classes.append(m / np.linalg.norm(m))
    want = np.argmax(u @ np.stack(classes).T, axis=1)
    np.testing.assert_allclose(np.asarray(model.class_embeddings(params, prompts)), np.stack(classes), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model.zero_shot_classify(params, x, prompts)), want)
    # the same from (C, P, L) token ids (equal P per class)
    tok = np.stack([FakeTokenizer().encode(["a", "a b"]), FakeTokenizer().encode(["c", "c e"])])
    got = model.class_embeddings(params, tok)
    assert got.shape == (2, model.embed_dim)
    with pytest.raises(ValueError, match="no tokenizer"):
        tiny_clip().zero_shot_classify(params, x, prompts)


def test_bad_input_names_the_argument(key):
    model = tiny_clip()
    x = jnp.zeros((2, 8, 8, 1))
    tokens = jnp.ones((2, MAX_LEN), jnp.int32)
    params = model.init(key, {"x": x, "cond": tokens})
    with pytest.raises(ValueError, match=r"batch\['x'\] must have rank 4"):
        model.loss(params, key, {"x": jnp.zeros((2, 8, 8)), "cond": tokens})
    with pytest.raises(ValueError, match=r"x must have rank 4"):
        model.encode_image(params, jnp.zeros((8, 8, 1)))
    with pytest.raises(ValueError, match=r"batch\['cond'\] must be int tokens"):
        model.loss(params, key, {"x": x, "cond": jnp.zeros((2,), jnp.int32)})
    with pytest.raises(ValueError, match=r"tokens must be int tokens in \[0, 12\)"):
        model.encode_text(params, jnp.full((2, MAX_LEN), 99, jnp.int32))
    with pytest.raises(ValueError, match="needs a dict batch"):
        model.loss(params, key, x)
    with pytest.raises(ValueError, match="condition must be a Condition\\(kind='tokens'"):
        tiny_clip(condition=Condition(kind="labels", num_classes=10))
    with pytest.raises(ValueError, match="class_prompts must be \\(C, P, L\\)"):
        model.class_embeddings(params, jnp.ones((3, MAX_LEN), jnp.int32))
    with pytest.raises(TypeError, match="does not sample"):
        model.sample(params, key, 2)
