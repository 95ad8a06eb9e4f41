"""Samplers on 2-D Gaussian data N(MU, COV) with the analytic score (no network).

At noise level (a, s) the marginal is N(a MU, a^2 COV + s^2 I), so
``score = -(a^2 COV + s^2 I)^{-1} (x - a MU)`` and ``eps = -s * score``. Every sampler
must recover MU and COV from N = 10000 samples. Tolerances are
``5 standard errors + the sampler's own bias``: se(mean_i) = sqrt(COV_ii / N),
se(cov_ij) = sqrt((COV_ii COV_jj + COV_ij^2) / N) (about 0.007 here). The biases are
stated per sampler; for DDPM/DDIM each step is linear-Gaussian, so the exact moments of
the discrete chain are propagated in float64 NumPy and the samples must match those
within 5 se (and those must lie within the stated bias of the data moments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import (
    VESDE,
    VPSDE,
    SubVPSDE,
    annealed_langevin_sample,
    classifier_free_guidance,
    ddim_encode,
    ddim_sample,
    ddpm_sample,
    geometric_sigmas,
    linear_schedule,
    ode_sample,
    pc_sample,
)
from genjax.diffusion.sampling import ddim_timesteps

MU = np.array([0.5, -0.3])
COV = np.array([[0.6, 0.2], [0.2, 0.4]])
N = 10000
I2 = np.eye(2)


def gaussian_score(x, a, s):
    """Score of N(a MU, a^2 COV + s^2 I) at x (b, 2); a, s (b,). Explicit 2x2 inverse."""
    p = a**2 * COV[0, 0] + s**2
    q = a**2 * COV[0, 1]
    r = a**2 * COV[1, 1] + s**2
    det = p * r - q * q
    y0 = x[:, 0] - a * MU[0]
    y1 = x[:, 1] - a * MU[1]
    return -jnp.stack([(r * y0 - q * y1) / det, (p * y1 - q * y0) / det], axis=-1)


def eps_fn_for(schedule):
    def eps_fn(x, t):
        abar = schedule.alphas_cumprod[t]
        a, s = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
        return -s[:, None] * gaussian_score(x, a, s)

    return eps_fn


def sde_score_for(sde):
    def score(x, t):
        a, s = sde.marginal(t)
        return gaussian_score(x, a, s)

    return score


def ncsn_score(x, sigma):
    return gaussian_score(x, jnp.ones_like(sigma), sigma)


def assert_moments(x, mean, cov, *, bias: float):
    """Sample mean/cov of x within 5 se + bias of (mean, cov)."""
    x = np.asarray(x, np.float64)
    assert x.shape == (N, 2) and np.all(np.isfinite(x))
    se_mean = np.sqrt(np.diag(cov) / N)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / N)
    err_mean = np.abs(x.mean(0) - mean)
    err_cov = np.abs(np.cov(x.T) - cov)
    assert np.all(err_mean <= 5 * se_mean + bias), (err_mean, 5 * se_mean + bias)
    assert np.all(err_cov <= 5 * se_cov + bias), (err_cov, 5 * se_cov + bias)


# -- exact moments of the discrete chains (float64) ---------------------------------

def _eps_affine(at):
    """eps = E x + e0 at alpha-bar ``at``."""
    a, s = np.sqrt(at), np.sqrt(1 - at)
    P = np.linalg.inv(a * a * COV + s * s * I2)
    return s * P, -s * P @ (a * MU)


def ddim_chain_moments(abar, taus, eta):
    ext = np.concatenate([abar, [1.0]])
    prev = np.concatenate([[-1], taus[:-1]])
    m, C = np.zeros(2), I2.copy()
    for t, tp in zip(taus[::-1], prev[::-1]):
        at, ap = ext[t], ext[tp]
        E, e0 = _eps_affine(at)
        X, x0c = (I2 - np.sqrt(1 - at) * E) / np.sqrt(at), -np.sqrt(1 - at) * e0 / np.sqrt(at)
        sig = eta * np.sqrt((1 - ap) / (1 - at) * (1 - at / ap))
        dc = np.sqrt(max(1 - ap - sig**2, 0.0))
        A, c = np.sqrt(ap) * X + dc * E, np.sqrt(ap) * x0c + dc * e0
        m, C = A @ m + c, A @ C @ A.T + sig**2 * I2
    return m, C


def ddpm_chain_moments(betas, variance):
    abar = np.cumprod(1 - betas)
    prev = np.concatenate([[1.0], abar[:-1]])
    pv = betas * (1 - prev) / (1 - abar)
    m, C = np.zeros(2), I2.copy()
    for t in range(len(betas) - 1, -1, -1):
        E, e0 = _eps_affine(abar[t])
        s, a = np.sqrt(1 - abar[t]), np.sqrt(abar[t])
        X, x0c = (I2 - s * E) / a, -s * e0 / a
        c1 = betas[t] * np.sqrt(prev[t]) / (1 - abar[t])
        c2 = (1 - prev[t]) * np.sqrt(1 - betas[t]) / (1 - abar[t])
        A, c = c1 * X + c2 * I2, c1 * x0c
        var = 0.0 if t == 0 else (betas[t] if variance == "beta" else pv[t])
        m, C = A @ m + c, A @ C @ A.T + var * I2
    return m, C


# -- samplers ------------------------------------------------------------------------

SCHED = linear_schedule(200, beta_max=0.1)  # abar[T-1] ~ 5e-5: the N(0, I) start is right


@pytest.mark.parametrize("variance,bias", [("beta", 0.01), ("posterior", 0.04)])
def test_ddpm_recovers_gaussian(variance, bias, key):
    x = jax.jit(lambda k: ddpm_sample(k, eps_fn_for(SCHED), (N, 2), schedule=SCHED, variance=variance))(key)
    m, C = ddpm_chain_moments(np.asarray(SCHED.betas, np.float64), variance)
    # DDPM's bias with exact eps comes from the fixed reverse variance: beta over-, beta-tilde
    # under-disperses (COV entries <= 0.6 < 1); the exact chain has it below `bias`
    assert np.abs(m - MU).max() < bias and np.abs(C - COV).max() < bias
    assert_moments(x, m, C, bias=0.0)
    assert_moments(x, MU, COV, bias=bias)


@pytest.mark.parametrize("eta,steps,bias", [(0.0, 50, 0.06), (1.0, 100, 0.07)])
def test_ddim_recovers_gaussian(eta, steps, bias, key):
    x = jax.jit(lambda k: ddim_sample(k, eps_fn_for(SCHED), (N, 2), schedule=SCHED, num_steps=steps, eta=eta))(key)
    # DDIM with fewer steps than T has an O(1/steps) discretisation bias; the exact
    # moments of the skipped chain show it (0.049 and 0.054 here)
    m, C = ddim_chain_moments(np.cumprod(1 - np.asarray(SCHED.betas, np.float64)), ddim_timesteps(200, steps), eta)
    assert np.abs(m - MU).max() < bias and np.abs(C - COV).max() < bias
    assert_moments(x, m, C, bias=0.0)
    assert_moments(x, MU, COV, bias=bias)


def test_ddim_deterministic_and_encode_roundtrip(key, rng):
    sched = linear_schedule(100, beta_max=0.2)
    eps_fn = eps_fn_for(sched)
    x0 = jnp.asarray(rng.multivariate_normal(MU, COV, size=64), jnp.float32)

    @jax.jit
    def roundtrip(k1, k2, x0):
        x_T = ddim_encode(eps_fn, x0, schedule=sched, num_steps=25)
        x_T5 = ddim_encode(eps_fn, x0, schedule=sched, num_steps=25, inversion_iters=5)
        a = ddim_sample(k1, eps_fn, x0.shape, schedule=sched, num_steps=25, x_T=x_T)
        b = ddim_sample(k2, eps_fn, x0.shape, schedule=sched, num_steps=25, x_T=x_T)
        c = ddim_sample(None, eps_fn, x0.shape, schedule=sched, num_steps=25, x_T=x_T5)
        return x_T, a, b, c

    k1, k2 = jax.random.split(key)
    x_T, rec_a, rec_b, rec_iter = roundtrip(k1, k2, x0)
    # eta = 0: the key does not matter once x_T is given
    np.testing.assert_array_equal(np.asarray(rec_a), np.asarray(rec_b))
    # plain DDIM inversion evaluates eps at the pre-step point: an O(step) error (over 20000
    # draws: mean 0.05, max 0.22 for 25 of 100 steps); with 5 fixed-point iterations per
    # step the inversion is exact up to float32 round-off
    err = np.abs(np.asarray(rec_a) - np.asarray(x0))
    assert err.mean() < 0.08 and err.max() < 0.3, (err.mean(), err.max())
    np.testing.assert_allclose(rec_iter, x0, atol=2e-3)
    # the latent is distributed like the prior N(0, I) (the flow maps the data law to it)
    assert np.abs(np.asarray(x_T).mean(0)).max() < 0.5 and 0.6 < float(np.asarray(x_T).std()) < 1.4


def langevin_chain_moments(sigmas, steps, step_size):
    """Exact mean/cov of annealed Langevin + Tweedie on N(MU, COV), per eigen-direction."""
    lam, U = np.linalg.eigh(COV)
    m, v = -U.T @ MU, np.full(2, sigmas[0] ** 2)  # start N(0, sigma_1^2 I), centred at MU
    for sg in sigmas:
        alpha = step_size * (sg / sigmas[-1]) ** 2
        r = 1 - alpha / (2 * (lam + sg**2))
        for _ in range(steps):
            m, v = r * m, r * r * v + alpha
    shrink = lam / (lam + sigmas[-1] ** 2)  # x + sigma_L^2 score(x, sigma_L)
    m, v = shrink * m, shrink**2 * v
    return MU + U @ m, U @ np.diag(v) @ U.T


def test_annealed_langevin_recovers_gaussian(key):
    sigmas = geometric_sigmas(3.0, 0.1, 10)
    x = jax.jit(lambda k: annealed_langevin_sample(k, ncsn_score, (N, 2), sigmas=sigmas, steps_per_sigma=100,
                                                   step_size=3e-3))(key)
    # the dynamics are linear-Gaussian: their exact moments (incomplete mixing, the
    # discretisation and the final Tweedie shrinkage included) are within 0.0085 of the data's
    m, C = langevin_chain_moments(np.asarray(sigmas, np.float64), 100, 3e-3)
    assert np.abs(m - MU).max() < 0.012 and np.abs(C - COV).max() < 0.012
    assert_moments(x, m, C, bias=0.0)
    assert_moments(x, MU, COV, bias=0.012)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=["vp", "subvp", "ve"])
def test_pc_recovers_gaussian(sde, key):
    x = jax.jit(lambda k: pc_sample(k, sde_score_for(sde), (N, 2), sde=sde, num_steps=100))(key)
    # Euler-Maruyama with 100 steps plus a Langevin corrector: bias well below 0.02
    # (VE's prior N(0, 50^2) ignores the data mean: a 0.5/50 relative offset)
    assert_moments(x, MU, COV, bias=0.02)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["vp", "ve"])
def test_ode_recovers_gaussian_and_converges_at_order_4(sde, key):
    x = jax.jit(lambda k: ode_sample(k, sde_score_for(sde), (N, 2), sde=sde, num_steps=40))(key)
    assert_moments(x, MU, COV, bias=0.015)
    # for Gaussian data the flow is linear and known: with Cov_t = a_t^2 COV + s_t^2 I,
    # x_eps = a_eps MU + Cov_eps^{1/2} Cov_T^{-1/2} (x_T - a_T MU)
    x_T = sde.prior_sample(jax.random.fold_in(key, 1), (16, 2))
    (a1,), (s1,) = (np.asarray(v, np.float64) for v in sde.marginal(jnp.ones((1,))))
    (a0,), (s0,) = (np.asarray(v, np.float64) for v in sde.marginal(jnp.full((1,), 1e-3)))
    w, U = np.linalg.eigh(COV)
    M = U @ np.diag(np.sqrt(a0**2 * w + s0**2) / np.sqrt(a1**2 * w + s1**2)) @ U.T
    exact = a0 * MU + (np.asarray(x_T, np.float64) - a1 * MU) @ M.T
    run = jax.jit(lambda x_T, n: ode_sample(None, sde_score_for(sde), (16, 2), sde=sde, num_steps=n, x_T=x_T),
                  static_argnums=1)
    e20 = np.abs(np.asarray(run(x_T, 20), np.float64) - exact).max()
    e40 = np.abs(np.asarray(run(x_T, 40), np.float64) - exact).max()
    assert e40 < 5e-3
    # RK4: halving the step divides the error by ~16 (>= 8 allowed; float32 floor 1e-5)
    assert e40 < max(e20 / 8, 2e-5), (e20, e40)


def test_trajectories_and_shapes(key):
    sched = linear_schedule(10, beta_max=0.3)
    eps_fn = eps_fn_for(sched)
    sig = geometric_sigmas(1.0, 0.1, 3)
    vp = VPSDE()

    @jax.jit
    def run(k):
        return (
            ddpm_sample(k, eps_fn, (3, 2), schedule=sched, clip_denoised=(-1.0, 1.0), return_trajectory=True),
            ddim_sample(k, eps_fn, (3, 2), schedule=sched, num_steps=4, return_trajectory=True),
            annealed_langevin_sample(k, ncsn_score, (3, 2), sigmas=sig, steps_per_sigma=2, return_trajectory=True),
            pc_sample(k, sde_score_for(vp), (3, 2), sde=vp, num_steps=5, return_trajectory=True),
            ode_sample(k, sde_score_for(vp), (3, 2), sde=vp, num_steps=5, return_trajectory=True),
        )

    (x1, t1), (x2, t2), (x3, t3), (x4, t4), (x5, t5) = run(key)
    # (frames, b, *d): the start, then one frame per step (per noise level for Langevin)
    assert t1.shape == (11, 3, 2) and t2.shape == (5, 3, 2) and t3.shape == (4, 3, 2)
    assert t4.shape == (6, 3, 2) and t5.shape == (6, 3, 2)
    for x, t in ((x1, t1), (x2, t2), (x4, t4), (x5, t5)):
        assert x.shape == (3, 2)
        np.testing.assert_array_equal(np.asarray(t[-1]), np.asarray(x))
    # Langevin's last frame is before the Tweedie step: x = frame + sigma_L^2 score(frame)
    np.testing.assert_allclose(x3, t3[-1] + 0.01 * ncsn_score(t3[-1], jnp.full((3,), 0.1)), rtol=1e-4, atol=1e-5)


def test_clip_denoised_bounds_the_prediction(key):
    # with x0_hat clipped to [-0.1, 0.1], the t = 0 step returns x0_hat itself
    sched = linear_schedule(10, beta_max=0.3)
    x = ddpm_sample(key, eps_fn_for(sched), (64, 2), schedule=sched, clip_denoised=(-0.1, 0.1))
    assert np.all(np.abs(np.asarray(x)) <= 0.1 + 1e-5)


def test_jit_equals_eager(variant, key):
    sched = linear_schedule(20, beta_max=0.3)
    eps_fn = eps_fn_for(sched)
    ref = ddim_sample(key, eps_fn, (4, 2), schedule=sched, num_steps=8, eta=0.5)
    out = variant(lambda k: ddim_sample(k, eps_fn, (4, 2), schedule=sched, num_steps=8, eta=0.5))(key)
    jitted = jax.jit(lambda k: ddim_sample(k, eps_fn, (4, 2), schedule=sched, num_steps=8, eta=0.5))(key)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jitted, ref, rtol=1e-5, atol=1e-5)


def test_classifier_free_guidance(rng):
    c = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    u = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
    np.testing.assert_allclose(classifier_free_guidance(c, u, 0.0), c, rtol=1e-6)
    np.testing.assert_allclose(classifier_free_guidance(c, u, 2.5), 3.5 * np.asarray(c) - 2.5 * np.asarray(u),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="equal shapes"):
        classifier_free_guidance(c, u[:, :2], 1.0)


def test_bad_input_raises(key):
    sched = linear_schedule(10)
    eps_fn = eps_fn_for(sched)
    with pytest.raises(ValueError, match="num_steps must be <= the schedule's T=10, got 11"):
        ddim_sample(key, eps_fn, (2, 2), schedule=sched, num_steps=11)
    with pytest.raises(ValueError, match="num_steps must be <= the schedule's T=10"):
        ddim_encode(eps_fn, jnp.zeros((2, 2)), schedule=sched, num_steps=20)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        ddim_sample(key, eps_fn, (2, 2), schedule=sched, num_steps=0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        pc_sample(key, sde_score_for(VPSDE()), (2, 2), sde=VPSDE(), num_steps=-1)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        ode_sample(key, sde_score_for(VPSDE()), (2, 2), sde=VPSDE(), num_steps=0)
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        ddim_sample(key, eps_fn, (2, 2), schedule=sched, num_steps=5, eta=-1.0)
    with pytest.raises(ValueError, match="key may be None only when x_T is given and eta = 0"):
        ddim_sample(None, eps_fn, (2, 2), schedule=sched, num_steps=5)
    with pytest.raises(ValueError, match=r"x_T must have shape \(2, 2\)"):
        ddim_sample(key, eps_fn, (2, 2), schedule=sched, num_steps=5, x_T=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown variance 'large'; valid choices: beta, posterior"):
        ddpm_sample(key, eps_fn, (2, 2), schedule=sched, variance="large")
    with pytest.raises(ValueError, match="clip_denoised must be None or a pair"):
        ddpm_sample(key, eps_fn, (2, 2), schedule=sched, clip_denoised=(1.0, -1.0))
    with pytest.raises(ValueError, match="eps_fn must return an array of the input's shape"):
        ddpm_sample(key, lambda x, t: x[:, :1], (2, 2), schedule=sched)
    with pytest.raises(ValueError, match="shape must be a non-empty tuple of positive sizes"):
        ddpm_sample(key, eps_fn, (0, 2), schedule=sched)
    with pytest.raises(ValueError, match="sigmas must be positive"):
        annealed_langevin_sample(key, ncsn_score, (2, 2), sigmas=jnp.array([1.0, -0.1]))
    with pytest.raises(ValueError, match="steps_per_sigma must be a positive integer"):
        annealed_langevin_sample(key, ncsn_score, (2, 2), sigmas=jnp.array([1.0, 0.1]), steps_per_sigma=0)
    with pytest.raises(ValueError, match="sde must be a VPSDE, SubVPSDE or VESDE"):
        pc_sample(key, ncsn_score, (2, 2), sde="vp")
    with pytest.raises(ValueError, match="eps must be in"):
        ode_sample(key, sde_score_for(VPSDE()), (2, 2), sde=VPSDE(), eps=1.0)


def test_pc_coarse_grid_stays_finite(key):
    """With fewer steps than beta_max (here 10 < 20), score_sde's ``1 - beta dt`` corrector
    factor is negative and ``sqrt(2 step)`` NaN; ``exp(-beta dt)`` keeps every sample finite."""
    vp = VPSDE()
    x = jax.jit(lambda k: pc_sample(k, sde_score_for(vp), (64, 2), sde=vp, num_steps=10))(key)
    assert np.all(np.isfinite(np.asarray(x)))
