"""x0-prediction and vector conditioning of the DDPM (issue 20: unCLIP's prior predicts the clean
embedding; its decoder is conditioned on a CLIP image embedding, zeroed for guidance).

Checked against independent computations: the x0 loss against numpy at the same noise and t; an
x0-predicting DDPM whose network is the closed-form posterior mean of Gaussian data samples
exactly what the eps-predicting DDPM with the closed-form noise does; guidance against two
separate network calls.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import models as M
from genjax.diffusion import objectives as obj
from genjax.diffusion import schedules as sch
from genjax.nn.unet import UNet
from genjax.train import fit

SCHED = sch.linear_schedule(20, beta_max=0.3)
MU, S = 0.7, 0.5  # the Gaussian data N(MU, S^2) of the closed-form tests


class GaussianPosterior(nn.Module):
    """The exact ``E[x0 | x_t]`` (``target="x0"``) or ``E[eps | x_t]`` of N(MU, S^2) data."""

    target: str

    @nn.compact
    def __call__(self, x, t, y=None):
        self.param("unused", nn.initializers.zeros, ())
        abar = SCHED.alphas_cumprod[t.astype(jnp.int32)][:, None]
        a, v = jnp.sqrt(abar), abar * S**2 + (1.0 - abar)
        x0 = MU + a * S**2 / v * (x - a * MU)
        return x0 if self.target == "x0" else (x - a * x0) / jnp.sqrt(1.0 - abar)


def test_x0_loss_against_numpy(key):
    x0 = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    fn = lambda xt, t: 0.5 * xt + t[:, None] / 10.0
    per, metrics = obj.denoising_loss(key, fn, x0, schedule=SCHED, target="x0")
    key_t, key_n = jax.random.split(key)
    t = np.asarray(jax.random.randint(key_t, (6,), 0, 20, dtype=jnp.int32))
    noise = np.asarray(jax.random.normal(key_n, x0.shape))
    abar = np.asarray(SCHED.alphas_cumprod)[t][:, None]
    xt = np.sqrt(abar) * np.asarray(x0) + np.sqrt(1 - abar) * noise
    want = np.mean((0.5 * xt + t[:, None] / 10.0 - np.asarray(x0)) ** 2, axis=1)
    np.testing.assert_allclose(per, want, rtol=1e-5, atol=1e-6)
    assert set(metrics) == {"x0_mse"}
    # the same key gives the same t and noise for the eps target
    per_eps, m_eps = obj.denoising_loss(key, fn, x0, schedule=SCHED, target="eps")
    np.testing.assert_allclose(per_eps, np.mean((0.5 * xt + t[:, None] / 10.0 - noise) ** 2, axis=1), rtol=1e-5, atol=1e-6)
    assert set(m_eps) == {"eps_mse"}
    with pytest.raises(ValueError, match="target"):
        obj.denoising_loss(key, fn, x0, schedule=SCHED, target="v")


def test_eps_from_x0_inverts_q_sample(key):
    x0 = jax.random.normal(key, (5, 4))
    t = jnp.array([0, 3, 7, 12, 19])
    xt, noise = obj.q_sample(jax.random.PRNGKey(3), x0, t, SCHED)
    np.testing.assert_allclose(obj.eps_from_x0(xt, x0, t, SCHED), noise, rtol=1e-4, atol=1e-4)


def test_x0_model_samples_like_the_eps_model(key):
    """Closed-form networks: the x0-predicting DDPM and the eps-predicting one are the same sampler."""
    m_x0 = M.DDPM(GaussianPosterior("x0"), (1,), SCHED, prediction="x0")
    m_eps = M.DDPM(GaussianPosterior("eps"), (1,), SCHED)
    p = m_x0.init(key, jnp.zeros((2, 1)))
    x = jnp.linspace(-2, 2, 7)[:, None]
    t = jnp.full((7,), 11.0)
    np.testing.assert_allclose(m_x0.eps(p, x, t), m_eps.eps(p, x, t), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m_eps.predict_x0(p, x, t), m_x0.predict_x0(p, x, t), rtol=1e-4, atol=1e-4)
    for sampler in ("ddpm", "ddim"):
        a = m_x0.sample(p, jax.random.PRNGKey(5), 64, sampler=sampler)
        b = m_eps.sample(p, jax.random.PRNGKey(5), 64, sampler=sampler)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    many = m_x0.sample(p, jax.random.PRNGKey(6), 4000, sampler="ddpm")
    assert abs(float(jnp.mean(many)) - MU) < 0.05 and abs(float(jnp.std(many)) - S) < 0.05
    # the x0 model's loss is the x0 error, reported as x0_mse
    loss, metrics = m_x0.loss(p, key, jnp.full((8, 1), MU))
    assert "x0_mse" in metrics and float(loss) == pytest.approx(float(metrics["x0_mse"]))
    with pytest.raises(ValueError, match="prediction"):
        M.DDPM(GaussianPosterior("x0"), (1,), SCHED, prediction="v")


class VectorNet(nn.Module):
    """``(x (b, d), t, y (b, k) floats) -> (b, d)``."""

    @nn.compact
    def __call__(self, x, t, y=None):
        assert y is not None and y.shape[1] == 3
        h = nn.Dense(8)(x) + nn.Dense(8)(jnp.sin(t[:, None] / 10.0)) + nn.Dense(8)(y)
        return nn.Dense(x.shape[-1])(nn.silu(h))


def _vector_model(**kw):
    return M.DDPM(VectorNet(), (2,), SCHED, cond_dim=3, **kw)


def test_vector_condition_null_drop_and_guidance(key):
    m = _vector_model(p_uncond=0.5)
    assert m.condition.kind == "vector" and m.condition.dim == 3
    v = jax.random.normal(key, (4, 3))
    p = m.init(key, {"x": jnp.zeros((4, 2)), "cond": v})
    np.testing.assert_array_equal(m.null_cond(4), np.zeros((4, 3)))
    dropped = np.asarray(m.drop_cond(jax.random.PRNGKey(2), v))
    zero = np.all(dropped == 0, axis=1)
    assert np.all(dropped[~zero] == np.asarray(v)[~zero]) and dropped.dtype == np.float32
    assert not np.all(M.DDPM(VectorNet(), (2,), SCHED, cond_dim=3, p_uncond=1.0).drop_cond(key, v) != 0)
    np.testing.assert_array_equal(M.DDPM(VectorNet(), (2,), SCHED, cond_dim=3, p_uncond=0.0).drop_cond(key, v), v)
    x, t = jax.random.normal(jax.random.PRNGKey(4), (4, 2)), jnp.full((4,), 5.0)
    c = m.network.apply(p, x, t, v)
    u = m.network.apply(p, x, t, jnp.zeros((4, 3)))
    np.testing.assert_allclose(m.eps_fn(p, cond=v, guidance=2.0)(x, t), 3.0 * c - 2.0 * u, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.eps_fn(p, cond=v, guidance=0.0)(x, t), c, rtol=1e-6)
    np.testing.assert_allclose(m.eps(p, x, t), u, rtol=1e-6)  # y=None: the zero vector
    out = m.sample(p, jax.random.PRNGKey(8), 4, cond=v, guidance=1.0, sampler="ddim", steps=5)
    assert out.shape == (4, 2) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="cond"):
        m.sample(p, key, 4, cond=jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="cond"):
        m.sample(p, key, 4, cond=jnp.zeros((4, 3), jnp.int32))
    with pytest.raises(ValueError, match="batch"):
        m.loss(p, key, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="exclusive"):
        M.DDPM(VectorNet(), (2,), SCHED, cond_dim=3, num_classes=4)


def test_unet_vector_condition_and_tokens(key):
    x, t = jnp.zeros((2, 8, 8, 1)), jnp.array([1.0, 2.0])
    y = jax.random.normal(key, (2, 5))
    plain = UNet(base=8, channel_mult=(1, 2), num_heads=2)
    p_plain = plain.init(key, x, t)
    vec = UNet(base=8, channel_mult=(1, 2), num_heads=2, cond_dim=5)
    p_vec = vec.init(key, x, t, y)
    names = lambda p: {"/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(p)}
    assert names(p_vec) - names(p_plain) == {"params/vector_emb/kernel", "params/vector_emb/bias"}
    tok = UNet(base=8, channel_mult=(1, 2), num_heads=2, cond_dim=5, vector_tokens=4)
    p_tok = tok.init(key, x, t, y)
    assert any("xattn" in n for n in names(p_tok)) and any("vector_tokens" in n for n in names(p_tok))
    # the output depends on y through both paths (the zero-initialised output conv is perturbed first)
    p_tok = jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(key, a.shape), p_tok)
    x1 = jax.random.normal(key, x.shape)
    a, b = tok.apply(p_tok, x1, t, y), tok.apply(p_tok, x1, t, -y)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4
    np.testing.assert_allclose(tok.apply(p_tok, x1, t, None), tok.apply(p_tok, x1, t, jnp.zeros((2, 5))), rtol=1e-6)
    with pytest.raises(ValueError, match="y must be a float vector"):
        tok.apply(p_tok, x1, t, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="vector_tokens needs cond_dim"):
        UNet(base=8, channel_mult=(1, 2), vector_tokens=2).init(key, x, t)


def test_vector_ddpm_trains_with_fit(key, tmp_path):
    """A tiny vector-conditioned UNet DDPM: fit on {"x", "cond"} lowers the loss."""
    m = M.DDPM(UNet(base=8, channel_mult=(1,), num_heads=2, cond_dim=3, vector_tokens=2), (4, 4, 1), SCHED,
               cond_dim=3, data_range="unit")
    rng = np.random.default_rng(0)
    cond = rng.normal(size=(64, 3)).astype(np.float32)
    x = (cond[:, :1, None, None] > 0).astype(np.float32) * np.ones((64, 4, 4, 1), np.float32)
    import optax
    r = fit(m, {"x": x, "cond": cond}, optimizer=optax.adam(3e-3), num_steps=60, batch_size=16, seed=0,
            log_every=20, progress=False)
    losses = [rec["loss"] for rec in r.history if rec.get("kind") == "train"]
    assert losses[-1] < losses[0]
