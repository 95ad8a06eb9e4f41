"""The stage-1 KL autoencoder of the latent diffusion model (issue 19, part 1): its KL against
distrax's closed form, the latent shapes, the scale factor against a numpy std, the feature
loss, training through the one trainer (plain and with the patch discriminator) and the
kill-and-resume of an autoencoder stage."""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.gan import gan_adam
from genjax.ldm.autoencoder import (
    AdversarialAutoencoder,
    Autoencoder,
    feature_loss,
    kl_autoencoder,
    latent_scale,
)
from genjax.nn.dcgan import DCGANDiscriminator
from genjax.train import Stage, fit, fit_stages

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

SHAPE = (8, 8, 1)  # f = 4 -> (2, 2, c) latents


def tiny_ae(data_shape=SHAPE, **overrides):
    return kl_autoencoder(data_shape, **{"width": 4, "latent_channels": 2, "num_res_blocks": 0, **overrides})


def images(rng, n, shape=SHAPE):
    """Blurry blobs in [0, 1]: something an autoencoder can learn in a few steps."""
    h, w, _ = shape
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(1, h - 1, n), rng.uniform(1, w - 1, n)
    d2 = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
    return np.exp(-d2 / 4.0)[..., None].astype(np.float32)


def random_conv_features(shape=SHAPE):
    """A frozen tiny random conv net: images (b, H, W, C) -> (b, d) features."""
    net = nn.Conv(3, (3, 3), strides=(2, 2))
    params = net.init(jax.random.PRNGKey(7), jnp.zeros((1, *shape)))
    return lambda x: jnp.tanh(net.apply(params, x)).reshape(x.shape[0], -1)


def test_kl_term_matches_distrax_closed_form(rng, key):
    ae = tiny_ae(kl_weight=0.5)
    x = images(rng, 3)
    params = ae.init(key, x)
    mean, logvar = (np.asarray(a, np.float64) for a in ae.encode(params, x))
    assert mean.shape == logvar.shape == (3, 2, 2, 2)
    want = distrax.Normal(mean, np.exp(0.5 * logvar)).kl_divergence(distrax.Normal(0.0, 1.0)).sum(axis=(1, 2, 3))
    loss, m = ae.loss(params, key, x)
    np.testing.assert_allclose(m["kl"], want.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, m["rec_l1"] + 0.5 * m["kl"], rtol=1e-6, atol=1e-6)


def test_loss_composes_its_terms_and_the_feature_loss_vanishes_only_on_identical_images(rng, key):
    fn = random_conv_features()
    x = images(rng, 4)
    np.testing.assert_array_equal(feature_loss(fn, x, x), np.zeros(4))
    other = feature_loss(fn, x, np.clip(x + 0.1 * rng.normal(size=x.shape), 0, 1).astype(np.float32))
    assert other.shape == (4,) and np.all(np.asarray(other) > 0)
    ae = tiny_ae(feature_fn=fn, feature_weight=3.0, kl_weight=0.01)
    params = ae.init(key, x)
    loss, m = ae.loss(params, key, x)
    assert m["feature"] > 0
    np.testing.assert_allclose(loss, m["rec_l1"] + 3.0 * m["feature"] + 0.01 * m["kl"], rtol=1e-6, atol=1e-7)
    assert 0 <= m["rec_mse"] <= m["rec_l1"]  # errors in [0, 1]: e^2 <= |e|


@pytest.mark.parametrize("shape, latent", [((28, 28, 1), (7, 7, 3)), ((28, 56, 1), (7, 14, 3))])
def test_latent_shapes_for_digits_and_pairs(shape, latent, rng, key):
    ae = tiny_ae(data_shape=shape, latent_channels=3, num_res_blocks=(1, 0, 1))
    assert ae.latent_shape == latent
    x = rng.uniform(size=(2, *shape)).astype(np.float32)
    params = ae.init(key, x)
    for net in ("encoder", "decoder"):  # residual blocks per level as asked
        assert {"res_0_0", "res_2_0", "mid"} <= set(params[net]) and "res_1_0" not in params[net]
    mean, logvar = ae.encode(params, x)
    assert mean.shape == logvar.shape == (2, *latent)
    assert ae.decode(params, mean).shape == (2, *shape)


@pytest.mark.parametrize("shape, f, match", [
    (SHAPE, 3, "downsample must be a power of 2"),
    (SHAPE, 0, "downsample must be a positive integer"),
    ((28, 28, 1), 8, r"downsample=8 must divide the image height and width, got data_shape \(28, 28, 1\)"),
    ((30, 28, 1), 4, "downsample=4 must divide"),
])
def test_bad_downsample_is_a_value_error_naming_it(shape, f, match):
    with pytest.raises(ValueError, match=match):
        kl_autoencoder(shape, downsample=f)
    ae = tiny_ae()
    with pytest.raises(ValueError, match=match):
        Autoencoder(ae.encoder, ae.decoder, shape, downsample=f)


def test_encoder_whose_reduction_is_not_downsample_is_caught_at_init(rng, key):
    ae = tiny_ae(downsample=2)  # networks reduce 2x ...
    wrong = Autoencoder(ae.encoder, ae.decoder, SHAPE, latent_channels=2, downsample=4)  # ... model says 4x
    with pytest.raises(ValueError, match=r"the encoder maps .* expected \(2, 2, 4\) for downsample=4"):
        wrong.init(key, images(rng, 2))


def test_bad_inputs(rng, key):
    ae = tiny_ae()
    x = images(rng, 2)
    params = ae.init(key, x)
    with pytest.raises(ValueError, match=r"batch must be images in \[0, 1\]"):
        ae.loss(params, key, 255.0 * x)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8, 8, 1\)"):
        ae.encode(params, x[:, :4])
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2, 2, 2\)"):
        ae.decode(params, jnp.zeros((2, 2, 2, 3)))
    with pytest.raises(ValueError, match="params must be an autoencoder's"):
        ae.reconstruct({"encoder": params["encoder"]}, x)
    with pytest.raises(ValueError, match="this model takes no condition"):
        ae.loss(params, key, {"x": x, "cond": np.zeros(2, np.int32)})
    with pytest.raises(TypeError, match="does not sample"):
        ae.sample(params, key, 2)
    with pytest.raises(TypeError, match="no density"):
        ae.log_prob(params, key, x)
    with pytest.raises(ValueError, match="AdversarialAutoencoder"):
        Autoencoder(ae.encoder, ae.decoder, SHAPE, discriminator=DCGANDiscriminator(patch=True))
    with pytest.raises(ValueError, match="width must be a positive integer"):
        kl_autoencoder(SHAPE, width=0)
    with pytest.raises(ValueError, match=r"num_res_blocks must be a non-negative int or one per level of channels \(2, 4, 8\)"):
        kl_autoencoder(SHAPE, width=4, num_res_blocks=(1, 1))


def test_encode_latent_and_decode(rng, key):
    ae = tiny_ae()
    x = images(rng, 3)
    params = ae.init(key, x)
    mean, logvar = ae.encode(params, x)
    np.testing.assert_array_equal(ae.encode_latent(params, None, x), mean)
    eps = jax.random.normal(key, mean.shape)
    np.testing.assert_allclose(ae.encode_latent(params, key, x), mean + jnp.exp(0.5 * logvar) * eps, rtol=1e-6, atol=1e-6)
    z = 50.0 * jax.random.normal(jax.random.fold_in(key, 1), mean.shape)
    # A freshly initialised decoder may happen to stay inside [0, 1] (it does for seed
    # 1283207707), so its output conv is scaled up 100x: its output then spreads far past it.
    conv_out = {k: 100.0 * v for k, v in params["decoder"]["conv_out"].items()}
    params = {**params, "decoder": {**params["decoder"], "conv_out": conv_out}}
    raw = np.asarray(ae.to_data(ae.decoder.apply({"params": params["decoder"]}, z)))
    assert raw.min() < 0 or raw.max() > 1  # the decoder's output leaves [0, 1] here ...
    out = np.asarray(ae.decode(params, z))
    assert out.min() >= 0 and out.max() <= 1  # ... and decode clips it
    np.testing.assert_array_equal(out, np.clip(raw, 0, 1))
    np.testing.assert_array_equal(ae.reconstruct(params, x), ae.decode(params, mean))


def test_latent_scale_gives_unit_std(rng, key):
    ae = tiny_ae()
    x = images(rng, 7)
    params = ae.init(key, x)
    scale = latent_scale(ae, params, x, batch_size=3)  # chunks 3, 3, 1 (padded)
    z = np.asarray(ae.encode(params, x)[0], np.float64)
    assert isinstance(scale, float)
    np.testing.assert_allclose(np.std(scale * z), 1.0, rtol=1e-5)
    np.testing.assert_allclose(latent_scale(ae, params, x, batch_size=500), scale, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        latent_scale(ae, params, x, batch_size=0)


def test_patch_discriminator_gives_one_logit_per_patch(rng, key):
    x = rng.normal(size=(2, 8, 16, 1)).astype(np.float32)
    d = DCGANDiscriminator(features=(4, 8), patch=True)
    params = d.init(key, x)
    assert d.apply(params, x).shape == (2, 2, 4)
    plain = DCGANDiscriminator(features=(4, 8))
    assert plain.apply(plain.init(key, x), x).shape == (2,)  # the default is unchanged


LOOP = dict(batch_size=8, log_every=4, steps_per_dispatch=4, progress=False)


def test_fit_decreases_the_loss(rng):
    ae = tiny_ae(feature_fn=random_conv_features())
    res = fit(ae, images(rng, 64), num_steps=40, optimizer=optax.adam(1e-2), seed=0, checkpoint_every=None, **LOOP)
    losses = [r["loss"] for r in res.history if "loss" in r]
    assert len(losses) == 10 and np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < 0.7 * losses[0], losses


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(jax.device_get(tree))]


def test_adversarial_autoencoder_trains_finite_and_its_stage_resumes_bit_identical(rng, key, tmp_path):
    x = images(rng, 32)
    ae = tiny_ae(discriminator=True, adv_weight=0.5)
    assert isinstance(ae, AdversarialAutoencoder)

    def stages(steps):
        return [Stage("autoencoder", ae, num_steps=steps, optimizer=gan_adam(1e-3), checkpoint_every=2,
                      batch_size=8, log_every=2, steps_per_dispatch=2)]

    ref = fit_stages(stages(6), x, seed=1, out_dir=tmp_path / "ref", progress=False)
    assert not ref.results["autoencoder"].diverged
    for r in ref.results["autoencoder"].history:
        for k in ("loss", "d_loss", "d_real", "d_fake", "adv", "rec_l1", "kl"):
            assert np.isfinite(r[k]), (k, r)
    params = ref.params["autoencoder"]
    assert set(params) == {"generator", "discriminator"}
    # the autoencoder API takes fit's two-player params as they are
    np.testing.assert_array_equal(ae.reconstruct(params, x[:2]), ae.reconstruct(params["generator"], x[:2]))
    with pytest.raises(TypeError, match="two-player"):
        ae.loss(params, key, x)

    fit_stages(stages(4), x, seed=1, out_dir=tmp_path / "run", progress=False)  # killed after step 4
    res = fit_stages(stages(6), x, seed=1, out_dir=tmp_path / "run", resume=True, progress=False)
    assert res.results["autoencoder"].resumed_from == 4
    for a, b in zip(_leaves(res.results["autoencoder"].state), _leaves(ref.results["autoencoder"].state)):
        np.testing.assert_array_equal(a, b)
    log = "autoencoder/metrics.jsonl"
    assert (tmp_path / "run" / log).read_text() == (tmp_path / "ref" / log).read_text()
