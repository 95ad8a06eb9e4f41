"""VAE objectives against independent computations (distrax, float64 numpy)."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.vae import (
    bernoulli_log_likelihood,
    diag_gaussian_log_prob,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    log_mean_exp,
    mlp_vae,
    standard_normal_log_prob,
)


# ------------------------------------------------------------------ numpy references
def np_log_sigmoid(logits):
    """log sigmoid(l) = -log(1 + exp(-l)), stable in float64."""
    return -np.logaddexp(0.0, -np.asarray(logits, np.float64))


def np_bernoulli_ll(logits, x, axes):
    logits = np.asarray(logits, np.float64)
    x = np.asarray(x, np.float64)
    return np.sum(x * np_log_sigmoid(logits) + (1.0 - x) * np_log_sigmoid(-logits), axis=axes)


def np_kl_std_normal(mu, logvar):
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return 0.5 * np.sum(np.exp(logvar) + mu**2 - 1.0 - logvar, axis=-1)


def np_dense(p, x):
    return np.asarray(x, np.float64) @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def np_mlp(p, x, num_hidden):
    """Forward pass of ``genjax.nn.MLP`` (ReLU) from its params dict."""
    for i in range(num_hidden):
        x = np.maximum(np_dense(p[f"dense_{i}"], x), 0.0)
    return np_dense(p["out"], x)


# Jitted once: eager op-by-op dispatch of these composites is slower on CPU than one compile.
_lme = jax.jit(log_mean_exp, static_argnames="axis")
_iwae = jax.jit(iwae_bound, static_argnames="axis")
_bern = jax.jit(bernoulli_log_likelihood, static_argnames="event_ndims")


# ------------------------------------------------------------------ KL
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_gaussian_kl_matches_distrax(rng, shape):
    mu = jnp.asarray(2.0 * rng.standard_normal(shape), jnp.float32)
    logvar = jnp.asarray(rng.uniform(-3.0, 2.0, shape), jnp.float32)
    got = jax.jit(gaussian_kl)(mu, logvar)

    @jax.jit
    def reference(mu, logvar):
        q = distrax.MultivariateNormalDiag(mu, jnp.exp(0.5 * logvar))
        return q.kl_divergence(distrax.MultivariateNormalDiag(jnp.zeros(shape), jnp.ones(shape)))

    want = reference(mu, logvar)
    assert got.shape == shape[:-1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(got) >= -1e-6)


def test_gaussian_kl_zero_at_prior():
    np.testing.assert_allclose(gaussian_kl(jnp.zeros((2, 3)), jnp.zeros((2, 3))), np.zeros(2), rtol=0, atol=1e-7)


def test_gaussian_log_probs_match_distrax(rng):
    z, mu = (jnp.asarray(rng.standard_normal((4, 3)), jnp.float32) for _ in range(2))
    logvar = jnp.asarray(rng.uniform(-2.0, 1.0, (4, 3)), jnp.float32)

    @jax.jit
    def both(z, mu, logvar):
        ref = distrax.MultivariateNormalDiag(mu, jnp.exp(0.5 * logvar)).log_prob(z)
        ref_std = distrax.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3)).log_prob(z)
        # the Gaussian decoder likelihood is the same density summed over event axes
        dec = gaussian_log_likelihood(
            mean=mu.reshape(4, 3, 1), logvar=logvar.reshape(4, 3, 1), x=z.reshape(4, 3, 1), event_ndims=2
        )
        return ref, ref_std, diag_gaussian_log_prob(z, mu, logvar), standard_normal_log_prob(z), dec

    want, want_std, got, got_std, got_dec = both(z, mu, logvar)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_std, want_std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_dec, want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ ELBO
def test_elbo_free_function_matches_numpy(rng):
    ll = jnp.asarray(-10.0 * rng.uniform(size=5), jnp.float32)
    mu, logvar = (jnp.asarray(rng.standard_normal((5, 3)), jnp.float32) for _ in range(2))
    for beta in (1.0, 0.25, 4.0):
        want = np.asarray(ll, np.float64) - beta * np_kl_std_normal(mu, logvar)
        got = jax.jit(elbo, static_argnames="beta")(ll, mu, logvar, beta=beta)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_model_elbo_matches_numpy_forward_pass(key, rng, beta):
    """The model's ELBO (num_samples=1) recomputed in float64 numpy from the params dict."""
    d, latent, hidden = 6, 3, 8
    vae = mlp_vae(d, latent_dim=latent, hidden=(hidden,), beta=beta)
    k_init, k_obj = jax.random.split(key)
    x = jnp.asarray(rng.integers(0, 2, (4, d)), jnp.float32)
    params = vae.init(k_init, x)
    value, metrics = jax.jit(vae.objective)(params, k_obj, x)
    loss, loss_metrics = jax.jit(vae.loss)(params, k_obj, x)

    enc = params["encoder"]["params"]["mlp"]
    dec = params["decoder"]["params"]["mlp"]
    h = np_mlp(enc, x, 1)
    mu, logvar = h[:, :latent], h[:, latent:]
    # the model draws eps ~ N(0, I) of the latent's shape from the key it is given
    eps = np.asarray(jax.random.normal(k_obj, (4, latent)), np.float64)
    z = mu + np.exp(0.5 * logvar) * eps
    logits = np_mlp(dec, z, 1)
    ll = np_bernoulli_ll(logits, x, axes=-1)
    kl = np_kl_std_normal(mu, logvar)
    want = ll - beta * kl

    assert value.shape == (4,)
    np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["recon"], -ll.mean(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["elbo"], (ll - kl).mean(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss, -want.mean(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loss_metrics["loss"], loss, rtol=0, atol=0)


def test_model_iwae_objective_matches_numpy(key, rng):
    """num_samples=k: log mean_k [p(x|z_k) p(z_k) / q(z_k|x)] with eps drawn as (k, b, d)."""
    d, latent, k, b = 6, 3, 3, 4
    vae = mlp_vae(d, latent_dim=latent, hidden=(8,), num_samples=k)
    k_init, k_obj = jax.random.split(key)
    x = jnp.asarray(rng.integers(0, 2, (b, d)), jnp.float32)
    params = vae.init(k_init, x)
    value, metrics = jax.jit(vae.objective)(params, k_obj, x)

    h = np_mlp(params["encoder"]["params"]["mlp"], x, 1)
    mu, logvar = h[:, :latent], h[:, latent:]
    eps = np.asarray(jax.random.normal(k_obj, (k, b, latent)), np.float64)
    z = mu + np.exp(0.5 * logvar) * eps
    logits = np_mlp(params["decoder"]["params"]["mlp"], z, 1)
    ll = np_bernoulli_ll(logits, x, axes=-1)
    log_pz = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=-1)
    log_qz = -0.5 * np.sum(np.log(2 * np.pi) + logvar + eps**2, axis=-1)
    log_w = ll + log_pz - log_qz
    m = log_w.max(axis=0)
    want = m + np.log(np.mean(np.exp(log_w - m), axis=0))
    np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics[f"iwae_{k}"], want.mean(), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ IWAE / log-mean-exp
def test_log_mean_exp_matches_float64_numpy(rng):
    a = jnp.asarray(3.0 * rng.standard_normal((7, 4)), jnp.float32)
    a64 = np.asarray(a, np.float64)
    for axis in (0, 1):
        want = np.log(np.mean(np.exp(a64), axis=axis))
        np.testing.assert_allclose(_lme(a, axis=axis), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(_iwae(a, axis=axis), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift", [-1e4, 1e4, -3e4])
def test_iwae_bound_stable_for_large_magnitudes(rng, shift):
    moderate = 2.0 * rng.standard_normal((50, 3))
    want = shift + np.log(np.mean(np.exp(moderate), axis=0))  # float64, shift pulled out by hand
    a = jnp.asarray(shift + moderate, jnp.float32)
    with np.errstate(over="ignore", divide="ignore"):
        naive = np.log(np.mean(np.exp(np.asarray(a)), axis=0))
    assert not np.isfinite(naive).all()  # the naive formula fails here
    got = _iwae(a, axis=0)
    assert np.isfinite(np.asarray(got)).all()
    # float32 resolution at |a| ~ 1e4 is ~1e-3
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=5e-3)


def test_iwae_bound_k1_is_identity(rng):
    a = jnp.asarray(100.0 * rng.standard_normal((1, 6)), jnp.float32)
    np.testing.assert_allclose(_iwae(a, axis=0), a[0], rtol=1e-7, atol=0)
    np.testing.assert_allclose(_lme(a.T, axis=1), a[0], rtol=1e-7, atol=0)


def test_log_mean_exp_ignores_minus_inf_entries(rng):
    """-inf weights contribute nothing but still count in the mean (as log_prob's mask relies on)."""
    a = jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)
    padded = jnp.concatenate([a, jnp.full((2, 2), -jnp.inf)])
    want = np.log(np.sum(np.exp(np.asarray(a, np.float64)), axis=0) / 5.0)
    np.testing.assert_allclose(_lme(padded, axis=0), want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ Bernoulli likelihood
def test_bernoulli_log_likelihood_matches_numpy(rng):
    logits = jnp.asarray(4.0 * rng.standard_normal((3, 4, 2)), jnp.float32)
    x = jnp.asarray(rng.integers(0, 2, (3, 4, 2)), jnp.float32)
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    x64 = np.asarray(x, np.float64)
    elementwise = x64 * np.log(p) + (1.0 - x64) * np.log(1.0 - p)
    for event_ndims, axes in ((1, (-1,)), (2, (-2, -1)), (3, (0, 1, 2))):
        got = _bern(logits=logits, x=x, event_ndims=event_ndims)
        want = elementwise.sum(axis=axes)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bernoulli_log_likelihood_finite_at_extreme_logits():
    logits = jnp.array([[100.0, -100.0, 100.0, -100.0]])
    x = jnp.array([[1.0, 0.0, 0.0, 1.0]])
    got = _bern(logits=logits[..., None], x=x[..., None], event_ndims=1)
    assert np.isfinite(np.asarray(got)).all()
    want = np_bernoulli_ll(logits, x, axes=())  # float64: 0, 0, -100, -100 (up to e^-100)
    assert got.shape == (1, 4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # gradients are finite too
    g = jax.jit(jax.grad(lambda l: bernoulli_log_likelihood(logits=l, x=x, event_ndims=1).sum()))(logits)
    assert np.isfinite(np.asarray(g)).all()
