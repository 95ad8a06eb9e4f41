"""GAN objectives against float64 closed forms; penalties on critics with known gradients;
the minimiser of the min-max discriminator loss is p / (p + q)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from genjax.gan import objectives as obj

REAL = np.array([-20.0, -3.5, -0.7, 0.0, 0.3, 2.2, 7.0, 20.0])
FAKE = np.array([15.0, 4.0, -1.3, 0.0, -0.4, -2.5, -9.0, -18.0])


def _sig(l):
    return 1.0 / (1.0 + np.exp(-l))


def _f32(a):
    return jnp.asarray(a, jnp.float32)


def test_losses_match_closed_forms(variant):
    r, f = _f32(REAL), _f32(FAKE)
    fns = {
        "minimax_d": lambda r, f: obj.minimax_d_loss(real_logits=r, fake_logits=f),
        "minimax_g": lambda r, f: obj.minimax_g_loss(fake_logits=f),
        "ns_g": lambda r, f: obj.non_saturating_g_loss(fake_logits=f),
        "w_critic": lambda r, f: obj.wasserstein_critic_loss(real_scores=r, fake_scores=f),
        "w_gen": lambda r, f: obj.wasserstein_generator_loss(fake_scores=f),
        "hinge_d": lambda r, f: obj.hinge_d_loss(real_scores=r, fake_scores=f),
        "hinge_g": lambda r, f: obj.hinge_g_loss(fake_scores=f),
    }
    expected = {  # float64, straight from the definitions
        "minimax_d": -(np.log(_sig(REAL)) + np.log(1.0 - _sig(FAKE))),
        "minimax_g": np.log(1.0 - _sig(FAKE)),
        "ns_g": -np.log(_sig(FAKE)),
        "w_critic": FAKE - REAL,
        "w_gen": -FAKE,
        "hinge_d": np.maximum(0.0, 1.0 - REAL) + np.maximum(0.0, 1.0 + FAKE),
        "hinge_g": -FAKE,
    }
    for name, fn in fns.items():
        got = variant(fn)(r, f)
        assert got.shape == (len(REAL),), name
        np.testing.assert_allclose(np.asarray(got, np.float64), expected[name], rtol=2e-5, atol=1e-6, err_msg=name)


def test_logistic_losses_finite_at_extreme_logits():
    big = _f32([1e4, -1e4, 80.0, -80.0])
    for fn in (
        lambda l: obj.minimax_d_loss(real_logits=l, fake_logits=-l),
        lambda l: obj.minimax_d_loss(real_logits=-l, fake_logits=l),
        lambda l: obj.minimax_g_loss(fake_logits=l),
        lambda l: obj.non_saturating_g_loss(fake_logits=l),
    ):
        val, grad = jax.value_and_grad(lambda l: jnp.sum(fn(l)))(big)
        assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))
    # -log sigmoid(-1e4) = 1e4 exactly in float32; a confident correct D costs ~0
    np.testing.assert_allclose(obj.non_saturating_g_loss(fake_logits=_f32([-1e4])), [1e4], rtol=1e-6)
    np.testing.assert_allclose(obj.minimax_d_loss(real_logits=_f32([1e4]), fake_logits=_f32([-1e4])), [0.0], atol=1e-30)


def test_gradient_penalty_of_linear_critic_is_exact(rng, key, variant):
    w = _f32(rng.standard_normal(12) * 0.7)
    critic = lambda x: x.reshape(x.shape[0], -1) @ w
    real = _f32(rng.standard_normal((5, 2, 2, 3)))
    fake = _f32(rng.standard_normal((5, 2, 2, 3)))
    gp = variant(lambda k, a, b: obj.gradient_penalty(k, critic, real=a, fake=b))(key, real, fake)
    expected = (np.linalg.norm(np.asarray(w, np.float64)) - 1.0) ** 2
    assert gp.shape == (5,)
    np.testing.assert_allclose(gp, np.full(5, expected), rtol=1e-5, atol=1e-7)


def test_gradient_penalty_evaluates_at_keyed_interpolates(rng, key):
    """f(x) = |x|^2 / 2 has grad x: the penalty is (|x_hat| - 1)^2 at x_hat = eps x + (1 - eps) G(z)."""
    critic = lambda x: 0.5 * jnp.sum(jnp.square(x), axis=-1)
    real, fake = _f32(rng.standard_normal((64, 3)) * 2), _f32(rng.standard_normal((64, 3)) * 2)
    gp = obj.gradient_penalty(key, critic, real=real, fake=fake)
    eps = np.asarray(jax.random.uniform(key, (64, 1)), np.float64)  # the documented draw
    x_hat = eps * np.asarray(real, np.float64) + (1 - eps) * np.asarray(fake, np.float64)
    np.testing.assert_allclose(gp, (np.linalg.norm(x_hat, axis=1) - 1.0) ** 2, rtol=1e-4, atol=1e-5)
    other = obj.gradient_penalty(jax.random.fold_in(key, 1), critic, real=real, fake=fake)
    assert not np.allclose(gp, other)  # the key matters
    same = obj.gradient_penalty(key, critic, real=real, fake=real)  # no interpolation left
    np.testing.assert_allclose(same, (np.linalg.norm(np.asarray(real), axis=1) - 1.0) ** 2, rtol=1e-4, atol=1e-5)


def test_r1_penalty_of_quadratic_critic(rng, variant):
    a = rng.standard_normal((4, 4))
    a = a + a.T
    critic = lambda x: 0.5 * jnp.einsum("bi,ij,bj->b", x, _f32(a), x)
    x = _f32(rng.standard_normal((6, 4)))
    r1 = variant(lambda v: obj.r1_penalty(critic, real=v))(x)
    expected = np.sum((np.asarray(x, np.float64) @ a) ** 2, axis=1)  # grad = A x
    np.testing.assert_allclose(r1, expected, rtol=1e-5, atol=1e-5)


def test_clip_weights():
    params = {"a": _f32([[-3.0, 0.005], [0.5, -0.001]]), "b": {"c": _f32([0.2])}}
    out = obj.clip_weights(params, clip=0.01)
    np.testing.assert_array_equal(out["a"], _f32([[-0.01, 0.005], [0.01, -0.001]]))
    np.testing.assert_array_equal(out["b"]["c"], _f32([0.01]))
    with pytest.raises(ValueError, match="clip must be positive"):
        obj.clip_weights(params, clip=0.0)


def test_mismatched_real_and_fake_raise():
    with pytest.raises(ValueError, match="same shape"):
        obj.minimax_d_loss(real_logits=jnp.zeros(3), fake_logits=jnp.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        obj.hinge_d_loss(real_scores=jnp.zeros((3, 1)), fake_scores=jnp.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        obj.gradient_penalty(jax.random.PRNGKey(0), jnp.sum, real=jnp.zeros((2, 3)), fake=jnp.zeros((3, 3)))


def test_minimax_discriminator_optimum_is_density_ratio(rng):
    """Minimising the seed's D loss between p = N(0, 1) (real) and q = N(1, 0.5^2) (fake)
    gives D*(x) = p / (p + q). The log-ratio of two Gaussians is quadratic in x, so a
    logit l(x) = a + b x + c x^2 can represent D* exactly and the loss is convex in (a, b, c)."""
    n = 20000
    real = _f32(rng.standard_normal(n))
    fake = _f32(1.0 + 0.5 * rng.standard_normal(n))
    feats = lambda x: jnp.stack([jnp.ones_like(x), x, x * x], axis=-1)
    logit = lambda theta, x: feats(x) @ theta
    loss = lambda theta: jnp.mean(obj.minimax_d_loss(real_logits=logit(theta, real), fake_logits=logit(theta, fake)))
    tx = optax.adam(0.05)

    @jax.jit
    def train(theta):
        def body(carry, _):
            theta, opt = carry
            g = jax.grad(loss)(theta)
            upd, opt = tx.update(g, opt, theta)
            return (optax.apply_updates(theta, upd), opt), None

        (theta, _), _ = jax.lax.scan(body, (theta, tx.init(theta)), None, length=1500)
        return theta

    theta = train(jnp.zeros(3, jnp.float32))
    grid = np.linspace(-1.0, 2.0, 31)
    p, q = stats.norm.pdf(grid, 0.0, 1.0), stats.norm.pdf(grid, 1.0, 0.5)
    d_star = p / (p + q)
    d_hat = np.asarray(jax.nn.sigmoid(logit(theta, _f32(grid))), np.float64)
    np.testing.assert_allclose(d_hat, d_star, atol=0.03, rtol=0)
