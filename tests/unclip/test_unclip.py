"""unCLIP, the composed model (issue 20): CLIP -> diffusion prior -> embedding-conditioned decoder.

Tiny untrained parts (8x8 images, a tiny CLIP, prior and pixel decoder): the checks are of the
composition, against independent computations: the loss is the decoder's loss under the CLIP
image embeddings computed separately; guidance 0 is the plain conditional decoder; variations
of an image are its embedding decoded (deterministic given a key); interpolation and text-diff
frames are decodes of the slerped embeddings from one noise; slerp against its formula.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.clip import FrozenTextEncoder
from genjax.clip.constructors import clip_model
from genjax.unclip.constructors import embedding_decoder
from genjax.unclip.models import UnCLIP, slerp
from genjax.unclip.prior import prior_ddpm, sample_prior

PAD, BOS, EOS = 0, 1, 2
SHAPE = (8, 8, 1)
TOKENS = jnp.array([[BOS, 3, 4, EOS], [BOS, 5, EOS, PAD], [BOS, 6, 6, EOS]], jnp.int32)


@pytest.fixture(scope="module")
def parts():
    key = jax.random.PRNGKey(0)
    clip = clip_model(SHAPE, vocab_size=8, max_len=6, size="tiny")
    images = jax.random.uniform(jax.random.PRNGKey(1), (3, *SHAPE))
    cp = clip.init(key, {"x": images, "cond": TOKENS})
    prior = prior_ddpm(clip.embed_dim, text_encoder=FrozenTextEncoder(clip, cp, with_embedding=True),
                       text_condition=clip.condition, null_tokens=(BOS, EOS), width=16, depth=1, num_heads=2, T=10)
    pp = prior.init(jax.random.PRNGKey(2), {"x": jnp.zeros((3, clip.embed_dim)), "cond": TOKENS})
    decoder = embedding_decoder(clip.embed_dim, data_shape=SHAPE, base=8, channel_mult=(1,), num_res_blocks=1,
                                num_heads=2, T=10)
    model = UnCLIP(clip, cp, prior, pp, decoder, prior_sampler={"sampler": "ddim", "steps": 4})
    params = model.init(jax.random.PRNGKey(3), images)
    # the decoder's zero-initialised output conv would make every sample the same: perturb it
    params = jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(4), a.shape), params)
    return model, params, images


def test_slerp_against_formula():
    a, b = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    out = np.asarray(slerp(a, b, jnp.array([0.0, 1 / 3, 1.0])))
    np.testing.assert_allclose(out[0], a, atol=1e-6)
    np.testing.assert_allclose(out[2], b, atol=1e-6)
    np.testing.assert_allclose(out[1], [np.cos(np.pi / 6), np.sin(np.pi / 6), 0.0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(slerp(a, a, jnp.array([0.5]))[0], a, atol=1e-6)  # parallel: no 0/0


def test_loss_is_the_decoders_under_clip_image_embeddings(parts):
    model, params, images = parts
    key = jax.random.PRNGKey(5)
    emb = model.clip.encode_image(model.clip_params, images)
    want, _ = model.decoder.loss(params, key, {"x": images, "cond": emb})
    got, metrics = model.loss(params, key, images)
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    got_dict, _ = model.loss(params, key, {"x": images, "cond": TOKENS})  # captions are not used
    assert float(got_dict) == pytest.approx(float(want), rel=1e-6)
    assert "eps_mse" in metrics
    # the embeddings computed once for a data set (the decoder stage's data) give the same loss
    data = model.decoder_training_data(images, chunk=2)
    np.testing.assert_allclose(data["image_emb"], np.asarray(emb), atol=1e-5)  # unit vectors, other batch sizes
    got_pre, _ = model.loss(params, key, {"x": images, "image_emb": data["image_emb"]})
    assert float(got_pre) == pytest.approx(float(want), rel=1e-4)
    # the loss reads them: other embeddings give another loss
    other, _ = model.loss(params, key, {"x": images, "image_emb": data["image_emb"][::-1]})
    assert float(other) != pytest.approx(float(want), rel=1e-6)
    with pytest.raises(ValueError, match=r"batch\['image_emb'\] must be the images' CLIP embeddings"):
        model.loss(params, key, {"x": images, "image_emb": data["image_emb"][:2]})


def test_sample_and_guidance_identity(parts):
    model, params, _ = parts
    key = jax.random.PRNGKey(6)
    x = model.sample(params, key, 3, cond=TOKENS, guidance=2.0, sampler="ddim", steps=4)
    assert x.shape == (3, *SHAPE) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(x, model.sample(params, key, 3, cond=TOKENS, guidance=2.0, sampler="ddim", steps=4))
    # the composition, step by step: the prior's best-of-2 embedding, decoded
    k_prior, k_dec = jax.random.split(key)
    emb = sample_prior(model.prior, model.prior_params, k_prior, TOKENS,
                       text_emb=model.clip.encode_text(model.clip_params, TOKENS), num_candidates=2, guidance=None,
                       sampler="ddim", steps=4)
    np.testing.assert_allclose(x, model.decoder.sample(params, k_dec, 3, cond=emb, guidance=2.0, sampler="ddim", steps=4),
                               atol=1e-5)
    # guidance 0 is the plain conditional decoder
    a = model.decode(params, key, emb, guidance=0.0, sampler="ddim", steps=4)
    b = model.decoder.sample(params, key, 3, cond=emb, sampler="ddim", steps=4)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # the ablation: the caption's text embedding fed to the decoder directly
    t = model.sample(params, key, 3, cond=TOKENS, embedding="text", sampler="ddim", steps=4)
    want = model.decoder.sample(params, k_dec, 3, cond=model.clip.encode_text(model.clip_params, TOKENS), sampler="ddim",
                                steps=4)
    np.testing.assert_allclose(t, want, atol=1e-5)
    with pytest.raises(ValueError, match="embedding"):
        model.sample(params, key, 3, cond=TOKENS, embedding="image")
    with pytest.raises(ValueError, match="cond"):
        model.sample(params, key, 2, cond=TOKENS)


def test_variations_are_the_embedding_decoded_and_deterministic(parts):
    model, params, images = parts
    key = jax.random.PRNGKey(7)
    v = model.variations(params, key, images[:2], num=3, sampler="ddim", steps=4)
    assert v.shape == (2, 3, *SHAPE)
    np.testing.assert_array_equal(v, model.variations(params, key, images[:2], num=3, sampler="ddim", steps=4))
    emb = jnp.repeat(model.clip.encode_image(model.clip_params, images[:2]), 3, axis=0)
    np.testing.assert_allclose(v.reshape(6, *SHAPE), model.decoder.sample(params, key, 6, cond=emb, sampler="ddim", steps=4),
                               atol=1e-6)
    assert not np.allclose(v[0, 0], v[0, 1])  # different noise per variation
    assert not np.array_equal(v, model.variations(params, jax.random.PRNGKey(8), images[:2], num=3, sampler="ddim", steps=4))
    with pytest.raises(ValueError, match="images"):
        model.variations(params, key, jnp.zeros((1, 4, 4, 1)))


def test_interpolation_and_text_diff_decode_from_one_noise(parts):
    model, params, images = parts
    key = jax.random.PRNGKey(9)
    frames = model.interpolate(params, key, images[0], images[1], num_frames=3, sampler="ddim", steps=4)
    assert frames.shape == (3, *SHAPE)
    ea, eb = model.clip.encode_image(model.clip_params, images[:2])
    one = lambda e: model.decoder.sample(params, key, 1, cond=e[None], sampler="ddim", steps=4)[0]
    np.testing.assert_allclose(frames[0], one(ea), atol=1e-5)
    np.testing.assert_allclose(frames[2], one(eb), atol=1e-5)
    diff = model.text_diff(params, key, images[0], TOKENS[:1], TOKENS[1:2], amounts=(0.0, 0.5), sampler="ddim", steps=4)
    np.testing.assert_allclose(diff[0], one(ea), atol=1e-5)
    te = model.clip.encode_text(model.clip_params, TOKENS[:2])
    z_d = (te[1] - te[0]) / jnp.linalg.norm(te[1] - te[0])
    np.testing.assert_allclose(diff[1], one(slerp(ea, z_d, jnp.array([0.5]))[0]), atol=1e-5)
    with pytest.raises(ValueError, match="amounts"):
        model.text_diff(params, key, images[0], TOKENS[:1], TOKENS[1:2], amounts=(1.5,))
    with pytest.raises(ValueError, match="source and target"):
        model.text_diff(params, key, images[0], TOKENS[:2], TOKENS[1:2])


def test_bad_parts_are_named(parts):
    model, _, _ = parts
    with pytest.raises(ValueError, match="decoder"):
        UnCLIP(model.clip, model.clip_params, model.prior, model.prior_params, model.prior)
    with pytest.raises(ValueError, match="prior"):
        UnCLIP(model.clip, model.clip_params, model.decoder, model.prior_params, model.decoder)
    with pytest.raises(ValueError, match="num_candidates"):
        UnCLIP(model.clip, model.clip_params, model.prior, model.prior_params, model.decoder, num_candidates=0)
    with pytest.raises(ValueError, match="prior_guidance"):
        UnCLIP(model.clip, model.clip_params, model.prior, model.prior_params, model.decoder, prior_guidance=-1.0)
    with pytest.raises(TypeError, match="log_prob_kind"):
        model.log_prob(None, None, None)
