"""GAN model contract: construction checks, bad input, no density, loss wiring."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.gan as gan
import genjax.train
from genjax.gan import objectives as obj
from genjax.types import AdversarialModel, GenerativeModel


def tiny_gan(**overrides) -> gan.GAN:
    kwargs = dict(latent_dim=2, g_hidden=(8,), d_hidden=(8,))
    kwargs.update(overrides)
    return gan.mlp_gan(kwargs.pop("data_shape", 3), **kwargs)


@pytest.fixture
def x(rng):
    return jnp.asarray(rng.uniform(-0.9, 0.9, (4, 3)), jnp.float32)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="unknown loss_kind 'lsgan'; valid choices"):
        tiny_gan(loss_kind="lsgan")
    with pytest.raises(ValueError, match="n_critic must be a positive integer, got 0"):
        tiny_gan(n_critic=0)
    with pytest.raises(ValueError, match="needs clip"):
        tiny_gan(loss_kind="wasserstein")
    with pytest.raises(ValueError, match="needs a StyleGenerator"):
        tiny_gan(style_mixing_prob=0.5)
    with pytest.raises(ValueError, match="unknown output"):
        tiny_gan(output="sigmoid")
    with pytest.raises(ValueError, match="unknown arch"):
        gan.wgan(3, arch="resnet")


def test_bad_input_raises(key, x):
    model = tiny_gan()
    params = model.init(key, x)
    with pytest.raises(ValueError, match=r"must have shape \(batch, 3\)"):
        model.check_batch(jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        model.check_batch(x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"output range is \[-1.0, 1.0\]"):
        model.check_batch(x * 3.0)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, latent_dim=2\)"):
        model.generate(params, key, jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="batch must have shape"):
        model.d_loss(params, key, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="truncation_psi needs a StyleGenerator"):
        model.sample(params, key, 2, truncation_psi=0.5)
    with pytest.raises(ValueError, match="one optimizer per player"):
        genjax.train.make_step(model, optax.adam(1e-3))
    tiny_gan(output="linear").check_batch(x * 3.0)  # linear output: any range


def test_generator_that_cannot_produce_data_shape(key, x):
    model = gan.GAN(
        generator=gan.MLPGenerator((2,), (8,)),
        discriminator=gan.MLPDiscriminator((8,)),
        data_shape=(3,),
        latent_dim=2,
    )
    with pytest.raises(ValueError, match=r"generator produces examples of shape \(2,\)"):
        model.init(key, x)


def test_log_prob_raises_and_kind_is_none(key, x):
    model = tiny_gan()
    assert model.log_prob_kind == "none"
    assert isinstance(model, AdversarialModel)
    assert not isinstance(model, GenerativeModel)  # no single `loss`: callers cannot mistake it
    with pytest.raises(ValueError, match="a GAN has no density"):
        model.log_prob(model.init(key, x), key, x)


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "wasserstein", "wgan_gp", "hinge"])
def test_losses_wire_the_objectives(key, x, loss):
    """d_loss / g_loss equal the free objectives on the same draws (reproduced by hand)."""
    model = tiny_gan(loss_kind=loss, clip=0.5 if loss == "wasserstein" else None, r1_weight=0.3)
    params = model.init(key, x)
    (d, dm), (g, gm) = jax.jit(lambda p, k: (model.d_loss(p, k, x), model.g_loss(p, k, x)))(params, key)
    k_fake, k_gp = jax.random.split(key)
    critic = lambda v: model.discriminate(params, v)
    fake = model._train_fakes(params, k_fake, 4)
    r, f = critic(x), critic(fake)
    d_per = {
        "minimax": lambda: obj.minimax_d_loss(real_logits=r, fake_logits=f),
        "non_saturating": lambda: obj.minimax_d_loss(real_logits=r, fake_logits=f),
        "hinge": lambda: obj.hinge_d_loss(real_scores=r, fake_scores=f),
        "wasserstein": lambda: obj.wasserstein_critic_loss(real_scores=r, fake_scores=f),
        "wgan_gp": lambda: obj.wasserstein_critic_loss(real_scores=r, fake_scores=f)
        + 10.0 * obj.gradient_penalty(k_gp, critic, real=x, fake=fake),
    }[loss]() + 0.15 * obj.r1_penalty(critic, real=x)
    np.testing.assert_allclose(d, jnp.mean(d_per), rtol=1e-5, atol=1e-6)
    f_g = critic(model._train_fakes(params, key, 4))
    g_per = {
        "minimax": lambda: obj.minimax_g_loss(fake_logits=f_g),
        "non_saturating": lambda: obj.non_saturating_g_loss(fake_logits=f_g),
    }.get(loss, lambda: obj.wasserstein_generator_loss(fake_scores=f_g))()
    np.testing.assert_allclose(g, jnp.mean(g_per), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dm["d_real"], jnp.mean(r), rtol=1e-5, atol=1e-6)
    assert ("p_real" in dm) == (loss in ("minimax", "non_saturating"))
    assert ("gp" in dm) == (loss == "wgan_gp") and "r1" in dm


def test_latent_prior(key):
    """``latent_prior="uniform"`` draws ``U[-1, 1]^d`` (moments of the uniform), the default
    ``N(0, I)``; an unknown prior is a clear error."""
    z = np.asarray(tiny_gan(latent_prior="uniform").draw_latent(key, 20000))
    assert z.shape == (20000, 2) and z.min() >= -1.0 and z.max() <= 1.0
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.02)
    np.testing.assert_allclose(z.var(0), 1.0 / 3.0, atol=0.02)  # Var U[-1, 1] = 1/3
    n = np.asarray(tiny_gan().draw_latent(key, 20000))
    assert np.abs(n).max() > 1.5  # not bounded like the uniform
    np.testing.assert_allclose(n.var(0), 1.0, atol=0.05)
    with pytest.raises(ValueError, match="unknown latent_prior 'cauchy'; valid choices"):
        tiny_gan(latent_prior="cauchy")


# ---------------------------------------------------------------------- PacGAN packing
def _pack_score(model, params, k, d):
    """The critic's score of ONE concatenated pack, a function of its ``k * d`` numbers: the
    pack's examples laid out one after another (the public ``discriminate`` on ``k`` examples)."""
    return lambda row: model.discriminate(params, row.reshape(k, d))[0]


@pytest.mark.parametrize("fourier", [0, 4])
def test_packed_penalties_are_those_of_the_concatenated_pack(key, rng, fourier):
    """WGAN-GP and R1 on a packed critic (pack 4, 3 packs) equal ``(||g|| - 1)^2`` and
    ``||g||^2`` with ``g = jax.grad`` of the pack's score with respect to the whole concatenated
    pack, one ``eps`` per pack. Repeating a pack's score to its examples (the experiment's old
    critic) penalised ``pack x`` each example's slice instead."""
    k, d, b = 4, 2, 12
    model = gan.mlp_gan(d, latent_dim=2, g_hidden=(8,), d_hidden=(8,), output="linear", loss_kind="wgan_gp",
                        pack=k, r1_weight=2.0, fourier_features=fourier)
    x = jnp.asarray(rng.normal(size=(b, d)), jnp.float32)
    params = model.init(key, x)
    _, m = jax.jit(model.d_loss)(params, key, x)
    score = _pack_score(model, params, k, d)
    assert model.discriminate(params, x).shape == (b // k,)  # one score per pack

    k_fake, k_gp = jax.random.split(key)
    fake = model._train_fakes(params, k_fake, b)
    eps = jax.random.uniform(k_gp, (b // k, 1))  # one per pack
    rows_real, rows_fake = x.reshape(b // k, k * d), fake.reshape(b // k, k * d)
    gp, r1 = [], []
    for j in range(b // k):
        g = jax.grad(score)(eps[j] * rows_real[j] + (1.0 - eps[j]) * rows_fake[j])
        gp.append((np.linalg.norm(g) - 1.0) ** 2)
        r1.append(np.sum(np.square(jax.grad(score)(rows_real[j]))))
    np.testing.assert_allclose(m["gp"], np.mean(gp), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["r1"], np.mean(r1), rtol=1e-4, atol=1e-6)


def test_pack_layout_and_batch_errors(key, rng):
    """Vectors: a pack is its examples' coordinates one after another; images: their channels
    concatenated. A batch the pack does not divide is an error naming both, before any work."""
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), output="linear", pack=3)
    x = jnp.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(model.pack_batch(x), np.arange(12.0).reshape(2, 6))
    img = gan.GAN(gan.MLPGenerator((4, 4, 2), (8,)), gan.MLPDiscriminator((8,)), (4, 4, 2), 2, pack=2)
    xi = jnp.asarray(rng.normal(size=(4, 4, 4, 2)), jnp.float32)
    p = np.asarray(img.pack_batch(xi))
    assert p.shape == (2, 4, 4, 4)
    np.testing.assert_array_equal(p[1, ..., :2], xi[2])
    np.testing.assert_array_equal(p[1, ..., 2:], xi[3])
    with pytest.raises(ValueError, match=r"train_data has batch size 5, which is not divisible by pack=3"):
        model.check_batch(jnp.zeros((5, 2)), name="train_data")  # what fit checks before training
    params = model.init(key, x[:2])  # parameters depend on shapes only: any batch initialises
    for loss in (model.d_loss, model.g_loss):
        with pytest.raises(ValueError, match=r"batch has batch size 4, which is not divisible by pack=3"):
            loss(params, key, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="pack must be a positive integer, got 0"):
        gan.mlp_gan(2, pack=0)
    with pytest.raises(ValueError, match="fourier_features needs vector data"):
        gan.mlp_gan((4, 4, 1), fourier_features=8)
    assert model.sample(params, key, 5).shape == (5, 2)  # sampling needs no pack


def test_packed_logistic_loss_is_the_mean_over_packs(key, rng):
    """Without a penalty, packing only changes what is scored: the loss is the mean of the
    per-pack losses (equal to the old mean over examples of a repeated pack score)."""
    k, b = 4, 8
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), output="linear", pack=k, fourier_features=4)
    x = jnp.asarray(rng.normal(size=(b, 2)), jnp.float32)
    params = model.init(key, x)
    d, _ = model.d_loss(params, key, x)
    k_fake, _ = jax.random.split(key)
    fake = model._train_fakes(params, k_fake, b)
    score = _pack_score(model, params, k, 2)
    r = jnp.stack([score(row) for row in x.reshape(b // k, -1)])
    f = jnp.stack([score(row) for row in fake.reshape(b // k, -1)])
    np.testing.assert_allclose(d, jnp.mean(jnp.repeat(obj.minimax_d_loss(real_logits=r, fake_logits=f), k)), rtol=1e-5)


# ---------------------------------------------------------------------- data space
def test_the_gan_owns_its_data_space(key, rng):
    """``data_range="unit"``: losses take ``[0, 1]`` data (the networks see ``2x - 1``) and
    ``sample`` returns ``[0, 1]``; ``input_scale``: the networks see ``s * x``, samples come back
    divided by ``s``. Checked against the same networks in the identity space."""
    plain = tiny_gan()
    unit = tiny_gan(data_range="unit")
    x = jnp.asarray(rng.uniform(0.0, 1.0, (4, 3)), jnp.float32)
    params = plain.init(key, x)
    for loss in ("d_loss", "g_loss"):
        np.testing.assert_allclose(getattr(unit, loss)(params, key, x)[0], getattr(plain, loss)(params, key, 2.0 * x - 1.0)[0], rtol=1e-6)
    s_unit, s_plain = unit.sample(params, key, 5), plain.sample(params, key, 5)
    np.testing.assert_allclose(s_unit, (s_plain + 1.0) / 2.0, rtol=1e-6, atol=1e-7)
    assert 0.0 <= float(s_unit.min()) and float(s_unit.max()) <= 1.0
    with pytest.raises(ValueError, match=r"this GAN models data in \[0, 1\] \(data_range='unit'\)"):
        unit.check_batch(2.0 * x - 1.0)
    with pytest.raises(ValueError, match="data_range='unit' maps"):
        tiny_gan(output="linear", data_range="unit")

    lin, scaled = tiny_gan(output="linear"), tiny_gan(output="linear", input_scale=0.25)
    y = jnp.asarray(rng.normal(size=(4, 3)) * 4.0, jnp.float32)
    np.testing.assert_allclose(scaled.d_loss(params, key, y)[0], lin.d_loss(params, key, 0.25 * y)[0], rtol=1e-6)
    np.testing.assert_allclose(scaled.sample(params, key, 5), 4.0 * lin.sample(params, key, 5), rtol=1e-6)
    np.testing.assert_allclose(scaled.discriminate(params, y), lin.discriminate(params, 0.25 * y), rtol=1e-6)
