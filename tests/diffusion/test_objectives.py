"""Diffusion objectives against closed forms computed independently in float64 NumPy.

Gaussian data ``N(mu, Sigma)`` in 2-D has an analytic score at every noise level
``(a, s)``: ``x_t ~ N(a mu, a^2 Sigma + s^2 I)``, ``score = -Cov_t^{-1}(x - a mu)`` and
``eps = -s * score``; the losses and bounds are checked against what that implies.
Monte-Carlo comparisons use a tolerance of a few standard errors estimated from the
same draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax.diffusion import (
    VESDE,
    VPSDE,
    SubVPSDE,
    discretized_gaussian_log_likelihood,
    dsm_loss,
    eps_matching_loss,
    geometric_sigmas,
    linear_schedule,
    q_posterior,
    q_sample,
    score_sde_loss,
    vlb_terms,
)

MU = np.array([0.3, -0.2])
COV = np.array([[0.2, 0.05], [0.05, 0.1]])


def gaussian_score(x, a, s, mu=MU, cov=COV):
    """Score of N(a mu, a^2 cov + s^2 I) at x; x (b, 2), a and s (b,)."""
    c = a[:, None, None] ** 2 * jnp.asarray(cov, jnp.float32) + s[:, None, None] ** 2 * jnp.eye(2)
    return -jnp.linalg.solve(c, (x - a[:, None] * jnp.asarray(mu, jnp.float32))[..., None])[..., 0]


def exact_eps_fn(schedule):
    def eps_fn(x, t):
        abar = schedule.alphas_cumprod[t]
        a, s = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
        return -s[:, None] * gaussian_score(x, a, s)

    return eps_fn


def data(rng, n):
    return jnp.asarray(rng.multivariate_normal(MU, COV, size=n), jnp.float32)


def test_q_sample_moments(key):
    s = linear_schedule(50, beta_max=0.2)
    n = 20000
    ts = np.array([0, 10, 49])
    x0 = jnp.asarray(np.tile([[1.5, -0.5]], (n, 1)), jnp.float32)
    abar = np.cumprod(1 - np.asarray(s.betas, np.float64))
    for i, t in enumerate(ts):
        x_t, noise = q_sample(jax.random.fold_in(key, i), x0, jnp.full((n,), t, jnp.int32), s)
        assert x_t.shape == noise.shape == (n, 2)
        x_t = np.asarray(x_t, np.float64)
        mean, var = np.sqrt(abar[t]) * np.array([1.5, -0.5]), 1 - abar[t]
        se = np.sqrt(var / n)
        np.testing.assert_allclose(x_t.mean(0), mean, atol=5 * se)
        # se of a sample variance ~ var * sqrt(2 / n)
        np.testing.assert_allclose(x_t.var(0), var, rtol=5 * np.sqrt(2 / n))
        # the returned noise is the one that made x_t
        np.testing.assert_allclose(x_t, mean + np.sqrt(var) * np.asarray(noise, np.float64), atol=1e-5)


def test_q_posterior_matches_bayes(rng):
    s = linear_schedule(20, beta_min=1e-3, beta_max=0.3)
    b = 6
    x0 = jnp.asarray(rng.normal(size=(b, 3, 2)), jnp.float32)
    x_t = jnp.asarray(rng.normal(size=(b, 3, 2)), jnp.float32)
    t = jnp.asarray([0, 1, 2, 7, 18, 19], jnp.int32)
    mean, var, logvar = q_posterior(s, x0, x_t, t)
    assert mean.shape == (b, 3, 2) and var.shape == logvar.shape == (b,)
    betas = np.asarray(s.betas, np.float64)
    abar = np.cumprod(1 - betas)
    for i, ti in enumerate(np.asarray(t)):
        if ti == 0:  # the previous state is x0 itself
            np.testing.assert_allclose(mean[i], x0[i], rtol=1e-4, atol=1e-5)
            assert float(var[i]) == pytest.approx(0.0, abs=1e-9)
            continue
        # Gaussian product: q(x_{t-1}|x0) = N(sqrt(abar') x0, 1-abar'), q(x_t|x_{t-1}) = N(sqrt(alpha) x_{t-1}, beta)
        ap = abar[ti - 1]
        prec = 1 / (1 - ap) + (1 - betas[ti]) / betas[ti]
        m = (np.sqrt(ap) * np.asarray(x0[i], np.float64) / (1 - ap)
             + np.sqrt(1 - betas[ti]) * np.asarray(x_t[i], np.float64) / betas[ti]) / prec
        np.testing.assert_allclose(mean[i], m, rtol=1e-4, atol=1e-5)
        assert float(var[i]) == pytest.approx(1 / prec, rel=1e-4)
        assert float(logvar[i]) == pytest.approx(np.log(1 / prec), rel=1e-4)


def test_eps_matching_loss(key, rng):
    s = linear_schedule(40, beta_max=0.2)
    x0 = data(rng, 512)
    seen = {}

    def zero_eps(x, t):
        seen["x"], seen["t"] = x, t
        return jnp.zeros_like(x)

    @jax.jit
    def run(k, x0):  # returns what eps_fn saw, from the same trace
        per, metrics = eps_matching_loss(k, zero_eps, x0, schedule=s)
        return per, metrics, seen["x"], seen["t"]

    per, metrics, seen["x"], seen["t"] = run(key, x0)
    assert per.shape == (512,) and set(metrics) == {"eps_mse"}
    t = np.asarray(seen["t"])
    assert t.dtype == np.int32 and t.min() >= 0 and t.max() <= 39
    assert abs(t.mean() - 19.5) < 5 * np.sqrt((40**2 - 1) / 12 / 512)  # uniform on {0..39}
    abar = np.cumprod(1 - np.asarray(s.betas, np.float64))[t]
    noise = (np.asarray(seen["x"], np.float64) - np.sqrt(abar)[:, None] * np.asarray(x0)) / np.sqrt(1 - abar)[:, None]
    np.testing.assert_allclose(per, np.mean(noise**2, axis=1), rtol=1e-3, atol=1e-4)
    assert float(metrics["eps_mse"]) == pytest.approx(float(np.mean(per)), rel=1e-5)

    # the true noise (an oracle that knows x0) gives zero loss; the analytic eps of
    # the data distribution gives the irreducible error, below that of eps = 0
    def oracle(x, t):
        ab = s.alphas_cumprod[t][:, None]
        return (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1 - ab)

    tt = jnp.asarray(rng.integers(0, 40, size=512), jnp.int32)

    @jax.jit
    def three(k, tt):
        return [eps_matching_loss(k, f, x0, schedule=s, t=tt)[0]
                for f in (oracle, exact_eps_fn(s), lambda x, t: jnp.zeros_like(x))]

    per_oracle, per_exact, per_zero = three(key, tt)
    np.testing.assert_allclose(per_oracle, 0.0, atol=1e-3)
    assert float(per_exact.mean()) < float(per_zero.mean())


_discretized_jit = jax.jit(lambda x, m, ls: discretized_gaussian_log_likelihood(x, means=m, log_scales=ls))


@pytest.mark.parametrize("mean,log_scale", [(0.0, np.log(0.3)), (0.37, np.log(0.004)), (-0.95, np.log(0.05)),
                                            (1.4, np.log(0.2)), (0.2, np.log(3.0))])
def test_discretized_gaussian_sums_to_one_and_matches_scipy(mean, log_scale):
    L = 256
    grid = np.linspace(-1, 1, L)
    x = jnp.asarray(grid, jnp.float32)[:, None]  # (L, 1): every bin
    lp = _discretized_jit(x, jnp.full_like(x, mean), jnp.float32(log_scale))
    assert lp.shape == (L, 1)
    assert float(jax.scipy.special.logsumexp(lp)) == pytest.approx(0.0, abs=1e-4)
    # direct CDF differences in float64
    sd, h = np.exp(log_scale), 1 / (L - 1)
    upper = np.where(grid > 1 - h, np.inf, grid + h)
    lower = np.where(grid < -1 + h, -np.inf, grid - h)
    # (survival functions above the mean, so that the float64 difference does not cancel)
    p = np.where(grid > mean, stats.norm.sf(lower, mean, sd) - stats.norm.sf(upper, mean, sd),
                 stats.norm.cdf(upper, mean, sd) - stats.norm.cdf(lower, mean, sd))
    ok = p > 1e-25
    np.testing.assert_allclose(np.asarray(lp[:, 0], np.float64)[ok], np.log(p[ok]), rtol=1e-3, atol=2e-3)
    assert np.all(np.isfinite(np.asarray(lp)))


def test_discretized_gaussian_elementwise_shapes(rng):
    x = jnp.asarray(rng.integers(0, 256, size=(2, 4, 4, 3)) / 127.5 - 1, jnp.float32)
    means = jnp.asarray(rng.normal(size=x.shape) * 0.5, jnp.float32)
    lp = _discretized_jit(x, means, jnp.log(jnp.float32(0.1)))
    assert lp.shape == x.shape
    assert np.all(np.asarray(lp) <= 0)


def test_vlb_terms_gaussian_data(key, rng):
    T = 100
    s = linear_schedule(T, beta_max=0.2)
    n = 512
    x0 = data(rng, n)
    out = jax.jit(lambda k, x: vlb_terms(k, exact_eps_fn(s), x, schedule=s, decoder="gaussian",
                                         return_per_step=True))(key, x0)
    for name in ("total", "prior", "diffusion", "decoder"):
        assert out[name].shape == (n,) and np.all(np.isfinite(np.asarray(out[name])))
    kl = np.asarray(out["kl_per_step"])
    assert kl.shape == (T, n) and np.all(kl >= -1e-5)  # every KL term is non-negative
    np.testing.assert_allclose(out["diffusion"], kl.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["total"], out["prior"] + out["diffusion"] + out["decoder"], rtol=1e-5, atol=1e-4)
    # prior: closed-form KL(N(sqrt(abar) x0, 1 - abar) || N(0, 1)), summed over dims
    ab = np.prod(1 - np.asarray(s.betas, np.float64))
    m = np.sqrt(ab) * np.asarray(x0, np.float64)
    prior = 0.5 * np.sum((1 - ab) + m**2 - 1 - np.log(1 - ab), axis=1)
    np.testing.assert_allclose(out["prior"], prior, rtol=1e-3, atol=1e-6)
    # with the exact eps the bound is tight up to the discretisation gap: it is an upper
    # bound on -log N(x0; mu, Sigma) in expectation, and within 0.5 nats of it here
    gap = np.asarray(out["total"], np.float64) + stats.multivariate_normal(MU, COV).logpdf(np.asarray(x0, np.float64))
    se = gap.std() / np.sqrt(n)
    assert gap.mean() > -4 * se, (gap.mean(), se)
    assert gap.mean() < 0.5, (gap.mean(), se)


def test_vlb_terms_discretized_and_bad_eps(key, rng):
    s = linear_schedule(30, beta_max=0.3)
    x0 = jnp.asarray(rng.integers(0, 256, size=(4, 2, 2)) / 127.5 - 1, jnp.float32)
    models = (lambda x, t: jnp.zeros_like(x), lambda x, t: jnp.full_like(x, 5.0))
    good, bad = jax.jit(lambda k, x0: [vlb_terms(k, f, x0, schedule=s, variance="posterior") for f in models])(key, x0)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in good.values())
    # discretized decoder: a probability, so -log P >= 0
    assert np.all(np.asarray(good["decoder"]) >= -1e-5)
    # a wildly wrong eps model (eps = 5) is penalised by the bound
    assert np.all(np.asarray(bad["diffusion"]) > np.asarray(good["diffusion"]))


def _mean_and_se(v):
    v = np.asarray(v, np.float64)
    return v.mean(), v.std() / np.sqrt(v.size)


def test_dsm_loss_minimum(key, rng):
    sigmas = geometric_sigmas(2.0, 0.05, 5)
    n = 8000
    x = data(rng, n)
    score = lambda xt, sig: gaussian_score(xt, jnp.ones_like(sig), sig)  # noqa: E731
    # closed form at the optimum, per noise level: 0.5 * (d - sigma^2 tr(Cov_sigma^{-1}))
    sig = np.asarray(sigmas, np.float64)
    minimum = np.array([0.5 * (2 - s**2 * np.trace(np.linalg.inv(COV + s**2 * np.eye(2)))) for s in sig])
    idx = jnp.asarray(rng.integers(0, 5, size=n), jnp.int32)

    @jax.jit
    def losses(k, x, idx):
        return (dsm_loss(k, score, x, sigmas=sigmas, sigma_index=idx), dsm_loss(k, score, x, sigmas=sigmas),
                dsm_loss(k, lambda xt, sg: jnp.zeros_like(xt), x, sigmas=sigmas))

    loss, loss_random, loss_zero = losses(key, x, idx)
    assert loss.shape == (n,)
    m, se = _mean_and_se(loss)
    assert m == pytest.approx(minimum[np.asarray(idx)].mean(), abs=5 * se)
    # random levels: the average of the per-level minima
    m2, se2 = _mean_and_se(loss_random)
    assert m2 == pytest.approx(minimum.mean(), abs=5 * se2 + 0.02)
    # a zero score: 0.5 E||z||^2 = 1, larger than every minimum
    mz, sez = _mean_and_se(loss_zero)
    assert mz == pytest.approx(1.0, abs=5 * sez)
    assert mz > m2 + 5 * (se2 + sez)


@pytest.mark.parametrize(
    "sde,weighting",
    [(VPSDE(), False), (VPSDE(), True), (SubVPSDE(), True), (VESDE(sigma_min=0.01, sigma_max=5.0), False)],
    ids=["vp-std2", "vp-likelihood", "subvp-likelihood", "ve-std2"],
)
def test_score_sde_loss_minimum(sde, weighting, key, rng):
    n = 6000
    x = data(rng, n)
    t = jnp.asarray(rng.uniform(0.05, 1.0, size=n), jnp.float32)

    def score(xt, tt):
        a, s = sde.marginal(tt)
        return gaussian_score(xt, a, s)

    @jax.jit
    def losses(k, x, t):
        return (score_sde_loss(k, score, x, sde=sde, likelihood_weighting=weighting, t=t),
                score_sde_loss(k, lambda xt, tt_: jnp.zeros_like(xt), x, sde=sde, likelihood_weighting=weighting, t=t),
                score_sde_loss(k, score, x[:64], sde=sde, likelihood_weighting=weighting))

    loss, zero, default = losses(key, x, t)
    assert loss.shape == (n,)
    a, s = (np.asarray(v, np.float64) for v in sde.marginal(t))
    tr = np.array([np.trace(np.linalg.inv(ai**2 * COV + si**2 * np.eye(2))) for ai, si in zip(a, s)])
    minimum = 0.5 * (2 - s**2 * tr)  # E||s score + z||^2 / 2 at the optimum
    if weighting:
        g2 = np.asarray(sde.sde(x, t)[1], np.float64) ** 2
        minimum = minimum * g2 / s**2
    m, se = _mean_and_se(loss)
    assert m == pytest.approx(minimum.mean(), abs=5 * se)
    mz, sez = _mean_and_se(zero)
    assert mz > m + 3 * (se + sez)
    # uniform times in [eps, 1]: finite, non-negative
    assert default.shape == (64,) and np.all(np.isfinite(np.asarray(default))) and np.all(np.asarray(default) >= 0)


def test_bad_input_raises(key):
    s = linear_schedule(10)
    x = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="has batch size 2 but x has batch size 3"):
        q_sample(key, x, jnp.array([0, 1]), s)
    with pytest.raises(ValueError, match=r"t must lie in \{0, ..., 9\}"):
        q_sample(key, x, jnp.array([0, 1, 10]), s)
    with pytest.raises(ValueError, match="x0 must be a floating-point"):
        q_sample(key, jnp.zeros((3, 2), jnp.int32), jnp.array([0, 1, 2]), s)
    with pytest.raises(ValueError, match="x_t must have the shape of x0"):
        q_posterior(s, x, jnp.zeros((3, 3)), jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="unknown variance 'fixed'; valid choices: beta, posterior"):
        vlb_terms(key, lambda x, t: x, x, schedule=s, variance="fixed")
    with pytest.raises(ValueError, match="eps_fn must return an array of the input's shape"):
        eps_matching_loss(key, lambda x, t: x[:, :1], x, schedule=s)
    with pytest.raises(ValueError, match="sigmas must be positive"):
        dsm_loss(key, lambda x, sg: x, x, sigmas=jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="sigmas must be a non-empty 1-D"):
        dsm_loss(key, lambda x, sg: x, x, sigmas=jnp.zeros((0,)))
    with pytest.raises(ValueError, match="eps must be in"):
        score_sde_loss(key, lambda x, t: x, x, sde=VPSDE(), eps=1.5)
    with pytest.raises(ValueError, match=r"t must have shape \(batch,\) = \(3,\)"):
        score_sde_loss(key, lambda x, t: x, x, sde=VPSDE(), t=jnp.ones((2,)))
    with pytest.raises(ValueError, match="means must have the shape of x"):
        discretized_gaussian_log_likelihood(x, means=jnp.zeros((3,)), log_scales=jnp.zeros(()))
    with pytest.raises(ValueError, match="num_levels must be >= 2"):
        discretized_gaussian_log_likelihood(x, means=x, log_scales=jnp.zeros(()), num_levels=1)
