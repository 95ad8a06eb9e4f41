"""unCLIP's diffusion prior (issue 20): the frozen text encoder with its embedding, prior space,
the x0 loss against NumPy, candidate selection against a NumPy argmax, sampling (unit norm,
deterministic, the expected candidate from a stub network, guidance identity), the training
data, training that lowers the loss, and the argument checks."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.clip import FrozenTextEncoder, clip_model, pick_caption
from genjax.train import fit
from genjax.types import Condition
from genjax.unclip import (
    embed_scale,
    from_prior_space,
    prior_ddpm,
    prior_training_data,
    sample_prior,
    select_candidates,
    to_prior_space,
)

VOCAB, L, D, NUM_CLASSES = 10, 5, 16, 4  # tiny CLIP: embed_dim 16
NULL = (1, 2)


@functools.lru_cache(maxsize=None)
def _clip():
    clip = clip_model((8, 8, 1), vocab_size=VOCAB, max_len=L, size="tiny")
    params = jax.jit(clip.init)(jax.random.PRNGKey(0), {"x": jnp.zeros((2, 8, 8, 1)), "cond": jnp.ones((2, L), jnp.int32)})
    return clip, params


def _tokens(classes) -> np.ndarray:
    """Caption "bos, 3 + class, eos", padded to L."""
    out = np.zeros((len(classes), L), np.int32)
    out[:, :3] = np.stack([np.ones(len(classes)), 3 + np.asarray(classes), np.full(len(classes), 2)], axis=1)
    return out


@functools.lru_cache(maxsize=None)
def _built():
    clip, params = _clip()
    prior = prior_ddpm(D, text_encoder=FrozenTextEncoder(clip, params, with_embedding=True), text_condition=clip.condition,
                       null_tokens=NULL, width=16, depth=1, num_heads=2, T=20)
    return prior, jax.jit(prior.init)(jax.random.PRNGKey(1), _batch(4))


def _prior(p_uncond: float = 0.1):
    """The tiny prior (one network and init for every ``p_uncond``) and its initial params."""
    prior, params = _built()
    return dataclasses.replace(prior, p_uncond=p_uncond), params


def _perturbed(params, rng):
    """Every leaf perturbed: the network's output layer starts at zero, so an initial prior
    predicts 0 whatever its caption (and samples the zero vector)."""
    return jax.tree_util.tree_map(lambda a: a + 0.3 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params)


def _batch(n: int, seed: int = 0) -> dict:
    classes = np.arange(n) % NUM_CLASSES
    return {"x": np.asarray(to_prior_space(np.eye(D, dtype=np.float32)[classes])), "cond": _tokens(classes)}


def test_frozen_text_encoder_gives_states_and_the_text_embedding():
    clip, params = _clip()
    tokens = _tokens([0, 3])
    states, emb = FrozenTextEncoder(clip, params, with_embedding=True)(tokens)
    np.testing.assert_allclose(states, clip.text_states(params, tokens), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(emb, clip.encode_text(params, tokens), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(FrozenTextEncoder(clip, params)(tokens), states, rtol=1e-6, atol=1e-6)
    from genjax.registry.ldm import FrozenTextEncoder as FromRegistry

    assert FromRegistry is FrozenTextEncoder


def test_prior_space_round_trip(rng):
    emb = rng.normal(size=(5, D)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    z = to_prior_space(emb)
    assert embed_scale(D) == pytest.approx(4.0)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.full(5, 4.0), rtol=1e-5)
    np.testing.assert_allclose(from_prior_space(jnp.asarray(3.0 * z)), emb, rtol=1e-5, atol=1e-6)


def test_the_loss_is_the_x0_mse_computed_by_numpy(key, rng):
    """The prior's loss against NumPy: ``x_t`` from the schedule's arrays at the DDPM's own draws
    (``k_drop, k_loss = split(key)``; ``key_t, key_n = split(k_loss)``), the network called
    directly, the squared error of the clean embedding (not of the noise)."""
    prior, params = _prior(p_uncond=0.0)
    params = _perturbed(params, rng)
    batch = _batch(6)
    loss, metrics = jax.jit(prior.loss)(params, key, batch)
    _, k_loss = jax.random.split(key)
    key_t, key_n = jax.random.split(k_loss)
    t = np.asarray(jax.random.randint(key_t, (6,), 0, prior.num_steps, dtype=jnp.int32))
    noise = np.asarray(jax.random.normal(key_n, (6, D)), np.float64)
    abar = np.asarray(prior.schedule.alphas_cumprod, np.float64)[t][:, None]
    x0 = batch["x"].astype(np.float64)
    x_t = np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * noise
    tokens = jnp.asarray(batch["cond"])
    net = jax.jit(lambda p, x, s, tok: prior.network.apply(p, x, s, context=prior.text_encoder(tok), context_mask=tok != 0))
    pred = net(params, jnp.asarray(x_t, jnp.float32), jnp.asarray(t, jnp.float32), tokens)
    want = np.mean((np.asarray(pred, np.float64) - x0) ** 2)
    assert float(loss) == pytest.approx(want, rel=1e-4)
    assert float(metrics["x0_mse"]) == pytest.approx(want, rel=1e-4)
    assert "eps_mse" not in metrics


def test_select_candidates_picks_the_highest_dot_product(rng):
    cands = rng.normal(size=(6, 3, D)).astype(np.float32)
    text = rng.normal(size=(6, D)).astype(np.float32)
    best = np.argmax(np.einsum("nkd,nd->nk", cands.astype(np.float64), text.astype(np.float64)), axis=1)
    np.testing.assert_array_equal(select_candidates(jnp.asarray(cands), jnp.asarray(text)), cands[np.arange(6), best])
    # a tie keeps the first of the tied candidates
    tied = np.stack([np.eye(D)[[1, 0, 0]], np.eye(D)[[2, 3, 3]]]).astype(np.float32)  # (2, 3, D)
    text = np.eye(D, dtype=np.float32)[[0, 3]]
    got = np.asarray(select_candidates(jnp.asarray(tied), jnp.asarray(text)))
    np.testing.assert_array_equal(got, tied[:, 1])
    with pytest.raises(ValueError, match=r"text_emb must have shape \(n, d\) = \(2, 16\)"):
        select_candidates(jnp.asarray(tied), jnp.zeros((2, 3)))


def test_sample_prior_unit_norm_and_deterministic(key, rng):
    prior, params = _prior()
    params = _perturbed(params, rng)
    tokens = _tokens([0, 1, 2])
    jitted = jax.jit(lambda k, emb: sample_prior(prior, params, k, tokens, text_emb=emb, steps=4))
    run = lambda k, text_emb=None: np.asarray(jitted(k, text_emb))  # noqa: E731
    a, b = run(key), run(key)
    assert a.shape == (3, D)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.ones(3), rtol=1e-5)
    np.testing.assert_array_equal(a, b)
    # another key draws other noise: the result moves (by how much depends on how strongly the random
    # network reads x_t, from ~1e-5 up, so only the change itself is asserted)
    assert not np.array_equal(run(jax.random.fold_in(key, 1)), a)
    # the text embedding defaults to the prior's text encoder's
    _, emb = prior.text_encoder(tokens)
    np.testing.assert_array_equal(run(key, text_emb=emb), a)


class _TableNet(nn.Module):
    """A stub x0-network: row r of the batch predicts ``table[r]`` whatever ``x_t`` (so the
    sampler's k candidates per prompt are known)."""

    table: tuple

    @nn.compact
    def __call__(self, x, t, y=None, context=None, context_mask=None):
        unused = self.param("unused", nn.initializers.zeros, ())
        return jnp.asarray(self.table, x.dtype)[: x.shape[0]] + 0.0 * unused


def test_sample_prior_keeps_the_candidate_closest_to_the_text(key, rng):
    prior, _ = _prior()
    n, k = 3, 3
    table = rng.normal(size=(n * k, D))
    stub = dataclasses.replace(prior, network=_TableNet(tuple(map(tuple, table))))
    params = stub.init(key, _batch(n * k))
    pick = np.array([2, 0, 1])  # the wanted candidate of each prompt: the text embedding points at it
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    text = unit[np.arange(n) * k + pick]
    got = np.asarray(sample_prior(stub, params, key, _tokens([0, 1, 2]), text_emb=jnp.asarray(text, jnp.float32),
                                  num_candidates=k, sampler="ddim", steps=5))
    np.testing.assert_allclose(got, text, rtol=1e-4, atol=1e-4)


def test_guidance_zero_is_the_conditional_sample(key, rng):
    prior, params = _prior()
    params = _perturbed(params, rng)
    tokens = _tokens([0, 3])
    plain = sample_prior(prior, params, key, tokens, steps=4)
    zero = sample_prior(prior, params, key, tokens, steps=4, guidance=jnp.asarray(0.0))  # the guided path, w = 0
    np.testing.assert_allclose(np.asarray(zero), np.asarray(plain), rtol=1e-5, atol=1e-5)
    guided = sample_prior(prior, params, key, tokens, steps=4, guidance=3.0)
    assert np.abs(np.asarray(guided) - np.asarray(plain)).max() > 1e-4


def test_prior_training_data_is_the_scaled_clip_image_embeddings(rng):
    clip, params = _clip()
    images = rng.uniform(size=(5, 8, 8, 1)).astype(np.float32)
    tokens_k = np.stack([_tokens([1, 2, 3, 0, 1]), _tokens([0, 0, 1, 1, 2])], axis=1)  # (5, K=2, L)
    data = prior_training_data(clip, params, images, tokens_k, batch=3)  # two chunks, the last padded
    # jitted chunks vs one eager call: float32 conv rounding (~1e-5), times the scale 4
    np.testing.assert_allclose(data["x"], 4.0 * np.asarray(clip.encode_image(params, images)), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(data["cond"], tokens_k)
    assert data["x"].dtype == np.float32
    with pytest.raises(ValueError, match=r"tokens_k must have shape \(n, K, L\) or \(n, L\) for the n=5 images"):
        prior_training_data(clip, params, images, tokens_k[:4])


def test_training_lowers_the_prior_loss():
    prior, params0 = _prior(p_uncond=0.0)
    n = 64
    classes = np.arange(n) % NUM_CLASSES
    tokens_k = np.stack([_tokens(classes), _tokens(classes)], axis=1)
    data = {"x": np.asarray(to_prior_space(np.eye(D, dtype=np.float32)[classes])), "cond": tokens_k}
    result = fit(prior, data, num_steps=40, batch_size=32, learning_rate=3e-3, transform=pick_caption,
                 init_params=params0, progress=False, checkpoint_every=None, log_every=40)
    batch = {"x": data["x"], "cond": tokens_k[:, 0]}
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    mean_loss = jax.jit(lambda p: jnp.mean(jax.vmap(lambda k: prior.loss(p, k, batch)[0])(keys)))
    before, after = float(mean_loss(params0)), float(mean_loss(result.state.params))
    assert after < 0.7 * before, (before, after)


def test_prior_ddpm_checks_its_arguments():
    clip, params = _clip()
    kw = dict(text_condition=clip.condition, null_tokens=NULL)
    with pytest.raises(ValueError, match="with_embedding=True"):
        prior_ddpm(D, text_encoder=FrozenTextEncoder(clip, params), **kw)
    with pytest.raises(TypeError, match="text_encoder must be callable"):
        prior_ddpm(D, text_encoder=3, **kw)
    te = FrozenTextEncoder(clip, params, with_embedding=True)
    with pytest.raises(ValueError, match="with a max_len"):
        prior_ddpm(D, text_encoder=te, text_condition=Condition(kind="tokens", vocab_size=VOCAB), null_tokens=NULL)
    with pytest.raises(ValueError, match="embed_dim must be a positive integer"):
        prior_ddpm(0, text_encoder=te, **kw)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        prior_ddpm(D, text_encoder=te, width=0, **kw)
