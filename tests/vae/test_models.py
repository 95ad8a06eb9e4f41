"""VAE model: exact linear-Gaussian checks, IWAE properties, shapes, bad input, training."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import genjax.data
import genjax.train
from genjax.vae import VAE, conv_vae, mlp_vae, slerp

D, B = 8, 4  # data dim and batch of the tiny MLP model


def _lme(a):
    """log(mean(exp(a), axis=0)) in float64 numpy."""
    a = np.asarray(a, np.float64)
    m = a.max(axis=0)
    return m + np.log(np.mean(np.exp(a - m), axis=0))


def tiny_mlp_vae(**overrides) -> VAE:
    kwargs = dict(latent_dim=2, hidden=(8,))
    kwargs.update(overrides)
    if "data_shape" not in kwargs:
        kwargs["data_dim"] = D
    return mlp_vae(**kwargs)


@pytest.fixture
def binary_x(rng):
    return jnp.asarray(rng.integers(0, 2, (B, D)), jnp.float32)


@pytest.fixture
def tiny(key, binary_x):
    vae = tiny_mlp_vae()
    return vae, vae.init(key, binary_x)


# ====================================================================== exact posterior
class LinearGaussian:
    """p(z) = N(0, I_d), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns of W.

    The posterior N(Sigma W^T (x - b) / s^2, Sigma), Sigma = (I + W^T W / s^2)^-1, is
    diagonal, so an affine encoder represents it exactly and every importance weight
    equals p(x) = N(x; b, W W^T + s^2 I).
    """

    def __init__(self, rng, *, data_dim=4, latent_dim=2, s=0.5):
        q, _ = np.linalg.qr(rng.standard_normal((data_dim, latent_dim)))
        self.W = q * rng.uniform(0.5, 2.0, latent_dim)  # orthogonal, unequal column norms
        self.b = 0.5 * rng.standard_normal(data_dim)
        self.s, self.d, self.D = s, latent_dim, data_dim
        col2 = np.sum(self.W**2, axis=0)
        np.testing.assert_allclose(self.W.T @ self.W, np.diag(col2), rtol=0, atol=1e-12)
        self.post_var = 1.0 / (1.0 + col2 / s**2)  # diag of Sigma
        self.cov = self.W @ self.W.T + s**2 * np.eye(data_dim)

    def vae(self, **kw) -> VAE:
        return VAE(
            encoder=nn.Dense(2 * self.d),
            decoder=nn.Dense(self.D),
            data_shape=(self.D,),
            latent_dim=self.d,
            likelihood="gaussian",
            obs_std=self.s,
            **kw,
        )

    def params(self):
        s2 = self.s**2
        A = self.W * self.post_var / s2  # (D, d): x -> mu is x @ A - b @ A
        enc_kernel = np.concatenate([A, np.zeros((self.D, self.d))], axis=1)
        enc_bias = np.concatenate([-self.b @ A, np.log(self.post_var)])
        f32 = lambda a: jnp.asarray(a, jnp.float32)
        return {
            "encoder": {"params": {"kernel": f32(enc_kernel), "bias": f32(enc_bias)}},
            "decoder": {"params": {"kernel": f32(self.W.T), "bias": f32(self.b)}},
        }

    def data(self, rng, n):
        z = rng.standard_normal((n, self.d))
        return z @ self.W.T + self.b + self.s * rng.standard_normal((n, self.D))

    def log_px(self, x):
        return stats.multivariate_normal(self.b, self.cov).logpdf(np.asarray(x, np.float64))

    def posterior(self, x):
        x = np.asarray(x, np.float64)
        return (x - self.b) @ self.W * self.post_var / self.s**2, np.log(self.post_var)


@pytest.fixture
def linear_gaussian(rng):
    lg = LinearGaussian(rng)
    x = lg.data(rng, 3)
    return lg, lg.vae(), lg.params(), jnp.asarray(x, jnp.float32), lg.log_px(x)


def test_linear_gaussian_params_fit_the_modules(linear_gaussian, key):
    lg, vae, params, x, _ = linear_gaussian
    shapes = lambda tree: jax.tree_util.tree_map(jnp.shape, tree)
    assert shapes(params) == shapes(vae.init(key, x))  # hand-set params fit the modules
    mu, logvar = vae.encode(params, x)
    want_mu, want_logvar = lg.posterior(x)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logvar, np.broadcast_to(want_logvar, (3, lg.d)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_samples,chunk_size", [(64, 64), (64, 16), (10, 4), (7, 3), (5, 500), (1, 1)])
def test_log_prob_exact_for_exact_posterior(linear_gaussian, key, num_samples, chunk_size):
    """Every chunking, including a ragged last chunk, gives the closed form (the mask is exact)."""
    _, vae, params, x, log_px = linear_gaussian
    lp = jax.jit(vae.log_prob, static_argnames=("num_samples", "chunk_size"))
    got = lp(params, key, x, num_samples=num_samples, chunk_size=chunk_size)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, log_px, rtol=1e-4, atol=1e-4)


def test_importance_weights_are_constant(linear_gaussian, key):
    _, vae, params, x, log_px = linear_gaussian
    keys = jax.random.split(key, 5)
    log_w = jax.jit(jax.vmap(lambda k: vae.log_weights(params, k, x, num_samples=16)))(keys)
    assert log_w.shape == (5, 16, 3)
    np.testing.assert_allclose(log_w, np.broadcast_to(log_px, log_w.shape), rtol=1e-4, atol=1e-4)
    est = jax.jit(jax.vmap(lambda k: vae.log_prob(params, k, x, num_samples=8, chunk_size=8)))(keys)
    assert float(np.ptp(np.asarray(est), axis=0).max()) < 1e-4  # zero variance across keys


def test_iwae_training_objective_exact(linear_gaussian, key):
    lg, _, params, x, log_px = linear_gaussian
    vae = lg.vae(num_samples=4)
    value, metrics = jax.jit(vae.objective)(params, key, x)
    np.testing.assert_allclose(value, log_px, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics["iwae_4"], log_px.mean(), rtol=1e-4, atol=1e-4)


def test_elbo_objective_for_exact_posterior(linear_gaussian, key):
    """Single-sample ELBO with analytic KL: log p(x) + [log q(z|x) - log p(z) - KL] per draw,
    a zero-mean correction, so its mean over keys is log p(x)."""
    lg, vae, params, x, log_px = linear_gaussian
    n = 2048
    keys = jax.random.split(key, n)
    values = np.asarray(jax.jit(jax.vmap(lambda k: vae.objective(params, k, x)[0]))(keys), np.float64)
    assert values.shape == (n, 3)

    # per draw, against the closed-form decomposition with the same eps
    mu, logvar = lg.posterior(x)
    eps = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (3, lg.d)))(keys[:8]), np.float64)
    z = mu + np.exp(0.5 * logvar) * eps
    log_q = stats.norm(mu, np.exp(0.5 * logvar)).logpdf(z).sum(-1)
    log_pz = stats.norm().logpdf(z).sum(-1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1.0 - logvar, axis=-1)
    np.testing.assert_allclose(values[:8], log_px + log_q - log_pz - kl, rtol=1e-4, atol=1e-4)

    # on average: within 5 standard errors of log p(x)
    se = values.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(values.mean(axis=0) - log_px) < 5 * se + 1e-4), (values.mean(0), log_px, se)


# ====================================================================== IWAE properties
def test_iwae_bound_increases_with_k(tiny, binary_x, key):
    """E[L_1] <= E[L_5] <= E[L_50], and the ELBO <= E[L_50] (Burda et al. 2016, Thm 1)."""
    vae, params = tiny
    n = 64
    keys = jax.random.split(key, n)

    @jax.jit
    def run(keys):
        def one(k):
            est = [vae.log_prob(params, k, binary_x, num_samples=K, chunk_size=K) for K in (1, 5, 50)]
            return vae.objective(params, k, binary_x)[0], *est

        return [v.mean(axis=1) for v in jax.vmap(one)(keys)]  # mean over examples

    elbo, *ests = (np.asarray(v, np.float64) for v in run(keys))
    est = dict(zip((1, 5, 50), ests))

    def below(a, b):  # mean(a) <= mean(b) up to 4 standard errors of the difference
        se = np.sqrt(a.var() / n + b.var() / n)
        return a.mean() <= b.mean() + 4 * se + 1e-6, (a.mean(), b.mean(), se)

    for lo, hi in ((est[1], est[5]), (est[5], est[50]), (elbo, est[50])):
        ok, info = below(lo, hi)
        assert ok, info
    assert est[50].mean() > est[1].mean()  # strictly tighter on a random-init model


def test_log_prob_chunked_equals_direct_computation(tiny, binary_x, key):
    """K=10 in chunks of 4: log-mean-exp of the first 10 of 3 x 4 weights drawn with the chunk keys."""
    vae, params = tiny

    @jax.jit
    def run(k):
        got = vae.log_prob(params, k, binary_x, num_samples=10, chunk_size=4)
        lw = jnp.concatenate([vae.log_weights(params, c, binary_x, num_samples=4) for c in jax.random.split(k, 3)])
        # one chunk (chunk_size >= K) uses the first split key
        got1 = vae.log_prob(params, k, binary_x, num_samples=6, chunk_size=500)
        lw1 = vae.log_weights(params, jax.random.split(k, 1)[0], binary_x, num_samples=6)
        return got, lw, got1, lw1

    got, lw, got1, lw1 = run(key)
    assert lw.shape == (12, B)
    np.testing.assert_allclose(got, _lme(lw[:10]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got1, _lme(lw1), rtol=1e-5, atol=1e-5)
    # the padded samples 10, 11 are really left out
    assert not np.allclose(np.asarray(got), np.asarray(_lme(lw)), rtol=1e-5, atol=1e-5)


# ====================================================================== shapes and contracts
def test_sample_shapes_and_support(tiny, key):
    vae, params = tiny
    s = vae.sample(params, key, 5)
    assert s.shape == (5, D) and s.dtype == jnp.float32
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    m = vae.sample(params, key, 3, mean=True)
    assert m.shape == (3, D)
    assert np.all((np.asarray(m) > 0) & (np.asarray(m) < 1))
    assert not set(np.unique(np.asarray(m))) <= {0.0, 1.0}


def test_sample_mean_is_the_models_own_default(tiny, key):
    """An image VAE owns its data space: ``sample_mean=True`` makes ``sample`` return
    ``E[x|z]`` with no ``mean=`` from the caller (the CLI passed ``mean=True`` to every model)."""
    vae, params = tiny
    pictures = dataclasses.replace(vae, sample_mean=True)
    m = np.asarray(pictures.sample(params, key, 4))
    z = jax.random.normal(jax.random.split(key)[0], (4, vae.latent_dim))
    np.testing.assert_allclose(m, np.asarray(vae.decoder_mean(params, z)), rtol=1e-6)
    np.testing.assert_array_equal(m, np.asarray(vae.sample(params, key, 4, mean=True)))
    assert set(np.unique(np.asarray(pictures.sample(params, key, 4, mean=False)))) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="sample_mean must be True or False"):
        dataclasses.replace(vae, sample_mean="yes")


def test_reconstruct_and_log_prob_shapes(tiny, binary_x, key):
    vae, params = tiny
    r = vae.reconstruct(params, key, binary_x)
    assert r.shape == (B, D) and np.all((np.asarray(r) >= 0) & (np.asarray(r) <= 1))
    rs = vae.reconstruct(params, key, binary_x, mean=False)
    assert rs.shape == (B, D) and set(np.unique(np.asarray(rs))) <= {0.0, 1.0}
    lp = vae.log_prob(params, key, binary_x, num_samples=4, chunk_size=2)
    assert lp.shape == (B,) and np.all(np.asarray(lp) < 0)  # log of a pmf


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolate_endpoints(tiny, binary_x, method):
    vae, params = tiny
    x1, x2 = binary_x, binary_x[::-1]
    path = vae.interpolate(params, x1, x2, num=5, method=method)
    assert path.shape == (5, B, D)
    for x, end in ((x1, path[0]), (x2, path[-1])):
        mu, _ = vae.encode(params, x)
        np.testing.assert_allclose(end, vae.decoder_mean(params, mu), rtol=1e-5, atol=1e-5)


def test_slerp_keeps_norm_and_falls_back_to_linear(rng):
    z1 = rng.standard_normal((3, 4))
    z2 = rng.standard_normal((3, 4))
    z2 *= np.linalg.norm(z1, axis=-1, keepdims=True) / np.linalg.norm(z2, axis=-1, keepdims=True)
    t = np.linspace(0.0, 1.0, 7)[:, None, None]
    path = np.asarray(jax.jit(slerp)(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), t))
    norms = np.linalg.norm(path, axis=-1)
    np.testing.assert_allclose(norms, np.broadcast_to(np.linalg.norm(z1, axis=-1), norms.shape), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(path[0], z1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(path[-1], z2, rtol=1e-5, atol=1e-5)
    # parallel vectors: linear interpolation, no NaN
    par = np.asarray(jax.jit(slerp)(jnp.asarray(z1, jnp.float32), jnp.asarray(2 * z1, jnp.float32), t))
    np.testing.assert_allclose(par, (1 - t) * z1 + t * 2 * z1, rtol=1e-5, atol=1e-5)


def test_loss_variant(tiny, binary_x, key, variant):
    vae, params = tiny
    loss, metrics = variant(vae.loss)(params, key, binary_x)
    assert loss.shape == () and np.isfinite(float(loss))
    assert set(metrics) == {"loss", "elbo", "kl", "recon"}
    np.testing.assert_allclose(loss, -metrics["elbo"], rtol=1e-6, atol=1e-6)  # beta = 1
    np.testing.assert_allclose(metrics["elbo"], -metrics["recon"] - metrics["kl"], rtol=1e-5, atol=1e-5)
    grads = variant(jax.grad(lambda p: vae.loss(p, key, binary_x)[0]))(params)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))


def test_conv_vae_shapes(rng, key):
    vae = conv_vae((8, 8, 1), latent_dim=2, features=(4,), hidden=8)
    x = jnp.asarray(rng.integers(0, 2, (2, 8, 8, 1)), jnp.float32)

    # shapes by abstract evaluation: XLA:CPU compiles convolutions slowly
    params = jax.eval_shape(vae.init, key, x)
    assert params["encoder"]["params"]["out"]["kernel"].shape == (8, 4)  # 2 * latent_dim outputs
    s = jax.eval_shape(lambda p, k: vae.sample(p, k, 3), params, key)
    lp = jax.eval_shape(lambda p, k: vae.log_prob(p, k, x, num_samples=3), params, key)
    assert s.shape == (3, 8, 8, 1) and lp.shape == (2,)
    loss, metrics = jax.eval_shape(vae.loss, params, key, x)
    assert loss.shape == () and set(metrics) == {"loss", "elbo", "kl", "recon"}


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_learned"])  # bernoulli: the fit test
def test_image_shaped_mlp_models(likelihood, rng, key):
    vae = tiny_mlp_vae(data_shape=(8, 8, 1), likelihood=likelihood, obs_std=0.3)
    x = jnp.asarray(rng.integers(0, 2, (2, 8, 8, 1)), jnp.float32)

    @jax.jit
    def run(k):
        params = vae.init(k, x)
        loss, _ = vae.loss(params, k, x)
        samples = vae.sample(params, k, 3), vae.sample(params, k, 3, mean=True)
        return loss, samples, vae.log_prob(params, k, x, num_samples=3), vae.decode(params, jnp.zeros((2, 2)))

    loss, (s, m), lp, (mean, logvar) = run(key)
    assert np.isfinite(float(loss))
    assert s.shape == (3, 8, 8, 1) and m.shape == (3, 8, 8, 1) and lp.shape == (2,)
    assert np.isfinite(np.asarray(lp)).all()
    assert mean.shape == (2, 8, 8, 1)
    assert logvar.shape == (2, 8, 8, 1)
    assert not np.allclose(np.asarray(s), np.asarray(m), rtol=1e-3, atol=1e-3)  # noise is added
    if likelihood == "gaussian":
        np.testing.assert_allclose(logvar, np.full((2, 8, 8, 1), 2 * np.log(0.3)), rtol=1e-5, atol=1e-5)
        # same key, same z: samples are the means plus 0.3 * standard normal noise
        np.testing.assert_allclose(np.std(np.asarray(s) - np.asarray(m)), 0.3, rtol=0.3, atol=0)


# ====================================================================== bad input
def test_bad_data_raises(tiny, key):
    vae, params = tiny
    good = np.zeros((B, D), np.float32)
    with pytest.raises(ValueError, match=r"x must have rank 2"):
        vae.log_prob(params, key, good[0])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8\), got shape \(4, 7\)"):
        vae.log_prob(params, key, good[:, :7])
    with pytest.raises(ValueError, match=r"batch must have shape"):
        jax.jit(vae.loss)(params, key, good[:, :7])  # static check, also under jit
    nan = good.copy()
    nan[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"batch contains 1 non-finite"):
        vae.loss(params, key, jnp.asarray(nan))
    with pytest.raises(ValueError, match=r"batch must be binary"):
        vae.loss(params, key, jnp.full((B, D), 0.5))
    with pytest.raises(ValueError, match=r"x must be a floating-point array"):
        vae.log_prob(params, key, jnp.zeros((B, D), jnp.int32))
    with pytest.raises(ValueError, match=r"is an empty batch"):
        vae.log_prob(params, key, jnp.zeros((0, D)))
    with pytest.raises(ValueError, match=r"num must be a positive integer, got 0"):
        vae.sample(params, key, 0)
    with pytest.raises(ValueError, match=r"num_samples must be a positive integer"):
        vae.log_prob(params, key, good, num_samples=0)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer"):
        vae.log_prob(params, key, good, chunk_size=0)
    with pytest.raises(ValueError, match=r"x1 and x2 must have the same shape"):
        vae.interpolate(params, good, good[:2])
    with pytest.raises(ValueError, match=r"unknown method 'cubic'"):
        vae.interpolate(params, good, good, method="cubic")
    with pytest.raises(ValueError, match=r"batch is a dict without an 'x' entry"):
        vae.loss(params, key, {"image": good})


def test_bad_model_arguments_raise():
    with pytest.raises(ValueError, match=r"unknown likelihood 'poisson'"):
        tiny_mlp_vae(likelihood="poisson")
    with pytest.raises(ValueError, match=r"unknown likelihood 'poisson'"):
        dataclasses.replace(tiny_mlp_vae(), likelihood="poisson")
    with pytest.raises(ValueError, match=r"beta=0.5 needs num_samples=1"):
        tiny_mlp_vae(beta=0.5, num_samples=5)
    with pytest.raises(ValueError, match=r"exactly one of data_dim"):
        mlp_vae(D, data_shape=(D,))
    with pytest.raises(ValueError, match=r"exactly one of data_dim"):
        mlp_vae()
    with pytest.raises(ValueError, match=r"obs_std must be a positive finite number"):
        tiny_mlp_vae(likelihood="gaussian", obs_std=0.0)
    with pytest.raises(ValueError, match=r"latent_dim must be a positive integer"):
        tiny_mlp_vae(latent_dim=0)
    with pytest.raises(ValueError, match=r"data_shape must be \(H, W, C\)"):
        conv_vae((8, 8))


# ====================================================================== training
def test_fit_on_digits_lowers_the_loss():
    train = genjax.data.load_digits("train")
    vae = mlp_vae(data_shape=(8, 8, 1), latent_dim=4, hidden=(16,))
    result = genjax.train.fit(
        vae,
        np.asarray(train.x),
        num_steps=200,
        batch_size=32,
        learning_rate=3e-3,
        seed=0,
        transform=genjax.data.dynamic_binarize,
        log_every=50,
        steps_per_dispatch=50,
        checkpoint_every=None,
        progress=False,
    )
    losses = [r["loss"] for r in result.history if r["kind"] == "train"]
    assert [r["step"] for r in result.history] == [50, 100, 150, 200]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 3.0, losses  # nats per 8x8 image
    assert int(result.state.step) == 200
