"""Likelihoods: the probability-flow ODE estimate against the exact Gaussian density of
the time-eps marginal (scipy), and the VLB in bits/dim against vlb_terms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax.diffusion import VESDE, VPSDE, SubVPSDE, linear_schedule, ode_log_prob, vlb_bits_per_dim, vlb_terms

MU = np.array([0.5, -0.3])
COV = np.array([[0.6, 0.2], [0.2, 0.4]])


def gaussian_score(x, a, s):
    """Score of N(a MU, a^2 COV + s^2 I) at x (b, 2); explicit 2x2 inverse."""
    p, q, r = a**2 * COV[0, 0] + s**2, a**2 * COV[0, 1], a**2 * COV[1, 1] + s**2
    det = p * r - q * q
    y0, y1 = x[:, 0] - a * MU[0], x[:, 1] - a * MU[1]
    return -jnp.stack([(r * y0 - q * y1) / det, (p * y1 - q * y0) / det], axis=-1)


def sde_score_for(sde):
    def score(x, t):
        a, s = sde.marginal(t)
        return gaussian_score(x, a, s)

    return score


def marginal_log_pdf(sde, x, t):
    a, s = (float(np.asarray(v)[0]) for v in sde.marginal(jnp.full((1,), t, jnp.float32)))
    return stats.multivariate_normal(a * MU, a * a * COV + s * s * np.eye(2)).logpdf(np.asarray(x, np.float64))


# VP/sub-VP: RK4 with 50 steps plus the N(0, I) prior's miss of the time-1 marginal
# N(0.007 MU, ~I): over 30 seeds x 16 examples the error was at most 0.0135 nats (largest
# for examples in the tails, log p < -4), so the tolerance is 0.03. VE: the prior N(0, sigma_max^2 I) ignores the
# data mean (a |z . MU| / sigma_max^2 ~ |MU| / sigma_max term: up to 0.035 nats at the default
# sigma_max = 50, so the test uses sigma_max = 200: below 0.01).
@pytest.mark.parametrize("sde,atol", [(VPSDE(), 3e-2), (SubVPSDE(), 3e-2), (VESDE(sigma_max=200.0), 2e-2)],
                         ids=["vp", "subvp", "ve"])
def test_ode_log_prob_exact_trace_matches_gaussian(sde, atol, key, rng):
    x = jnp.asarray(rng.multivariate_normal(MU, COV, size=16), jnp.float32)
    lp = jax.jit(lambda k, x: ode_log_prob(k, sde_score_for(sde), x, sde=sde, num_steps=50, trace="exact"))(key, x)
    assert lp.shape == (16,)
    ref = marginal_log_pdf(sde, x, 1e-5)
    np.testing.assert_allclose(lp, ref, atol=atol, rtol=0)
    # and the time-eps marginal is the data density to within 5e-3 nats (VE: plus sigma_min^2 I)
    np.testing.assert_allclose(ref, stats.multivariate_normal(MU, COV).logpdf(np.asarray(x, np.float64)), atol=5e-3)


def test_ode_log_prob_hutchinson(key, rng):
    sde = VPSDE()
    x = jnp.asarray(rng.multivariate_normal(MU, COV, size=16), jnp.float32)
    ref = marginal_log_pdf(sde, x, 1e-5)
    run = jax.jit(lambda k: ode_log_prob(k, sde_score_for(sde), x, sde=sde, num_steps=50, num_probes=8))
    draws = np.stack([np.asarray(run(k)) for k in jax.random.split(key, 4)])  # (4, 16): 32 probes each
    # each estimate is unbiased in the divergence: the error per example shrinks like
    # 1/sqrt(probes); the off-diagonal part of the Jacobian sets its size (< 0.5 nats here)
    assert np.all(np.isfinite(draws))
    np.testing.assert_allclose(draws.mean(0), ref, atol=0.25, rtol=0)
    assert abs(float((draws.mean(0) - ref).mean())) < 0.1
    # different probes give different estimates (it is random), the exact trace does not
    assert np.std(draws, axis=0).max() > 0


def test_ode_log_prob_log_time_grid_resolves_narrow_data(key, rng):
    """Data N(0, 0.01^2 I): the divergence of the exact score grows like 1/t down to the data
    scale, which a uniform 50-step grid from eps = 1e-5 cannot integrate (measured error 1.4
    nats) while the default geometric grid is exact to 2e-4 nats."""
    sde, s = VPSDE(), 0.01

    def score(x, t):
        a, sd = sde.marginal(t)
        return -x / (a**2 * s**2 + sd**2)[:, None]

    x = jnp.asarray(rng.normal(0.0, s, (8, 2)), jnp.float32)
    a, sd = (float(np.asarray(v)[0]) for v in sde.marginal(jnp.full((1,), 1e-5, jnp.float32)))
    ref = stats.multivariate_normal(np.zeros(2), (a * a * s * s + sd * sd) * np.eye(2)).logpdf(np.asarray(x, np.float64))
    run = lambda grid: np.asarray(ode_log_prob(key, score, x, sde=sde, num_steps=50, trace="exact", time_grid=grid))  # noqa: E731
    np.testing.assert_allclose(run("auto"), ref, atol=5e-3, rtol=0)
    np.testing.assert_allclose(run("log"), run("auto"), rtol=0, atol=0)
    assert np.abs(run("uniform") - ref).max() > 0.3
    with pytest.raises(ValueError, match="time_grid"):
        run("cubic")


def test_ode_log_prob_python_loop_equals_scan(key, rng, monkeypatch):
    """The Python loop of jitted RK4 steps (what ``loop="auto"`` picks for a conv score on
    CPU, outside jit, with the reverse-mode trace) integrates the same ODE as the ``lax.scan``."""
    from genjax import _xla

    sde = VPSDE()
    w = jnp.asarray(0.1 * rng.standard_normal((3, 3, 1, 1)), jnp.float32)

    def conv_score(x, t):  # a linear conv "score" on (b, 4, 4, 1) images
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return -x + y * t[:, None, None, None]

    x = jnp.asarray(rng.standard_normal((3, 4, 4, 1)), jnp.float32)
    def run(loop, mode="vjp"):
        return np.asarray(ode_log_prob(key, conv_score, x, sde=sde, num_steps=6, loop=loop, hutchinson_mode=mode))

    scan, python = run("scan"), run("python")
    np.testing.assert_allclose(python, scan, rtol=1e-5, atol=1e-4)
    # auto: the rule sees the convolution; on CPU it takes the Python loop outside jit
    picked = []
    real = _xla.python_loop_is_faster
    monkeypatch.setattr(_xla, "python_loop_is_faster", lambda *a: picked.append(real(*a)) or picked[-1])
    np.testing.assert_allclose(run("auto"), scan, rtol=1e-5, atol=1e-4)
    assert picked == [jax.default_backend() == "cpu"]
    # the forward-mode trace (the default) differentiates no convolution: auto scans, the rule unasked
    np.testing.assert_allclose(run("auto", "jvp"), scan, rtol=1e-5, atol=1e-4)
    assert len(picked) == 1
    # under jit x is traced: auto falls back to the scan (the rule is not even asked) ...
    jitted = jax.jit(lambda k, x: ode_log_prob(k, conv_score, x, sde=sde, num_steps=6, hutchinson_mode="vjp"))(key, x)
    np.testing.assert_allclose(jitted, scan, rtol=1e-5, atol=1e-4)
    assert len(picked) == 1
    # ... and an explicit Python loop is refused with the reason
    with pytest.raises(ValueError, match="loop='python' needs a concrete x"):
        jax.jit(lambda k, x: ode_log_prob(k, conv_score, x, sde=sde, loop="python"))(key, x)
    with pytest.raises(ValueError, match="loop must be one of auto, scan, python, got 'while'"):
        ode_log_prob(key, conv_score, x, sde=sde, loop="while")


def test_vlb_bits_per_dim(key, rng):
    sched = linear_schedule(20, beta_max=0.4)
    x0 = jnp.asarray(rng.integers(0, 256, size=(3, 2, 2, 1)) / 127.5 - 1, jnp.float32)

    def eps_fn(x, t):
        return 0.1 * x

    bpd, total = jax.jit(lambda k, x: (vlb_bits_per_dim(k, eps_fn, x, schedule=sched),
                                        vlb_terms(k, eps_fn, x, schedule=sched)["total"]))(key, x0)
    assert bpd.shape == (3,)
    np.testing.assert_allclose(bpd, np.asarray(total) / (4 * math.log(2)), rtol=1e-5)
    # a discrete-data bound: at least 0 bits; a uniform model over 256 levels costs 8 bits/dim
    assert np.all(np.asarray(bpd) > 0)


def test_bad_input_raises(key):
    sde = VPSDE()
    x = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="unknown trace 'skilling'; valid choices: exact, hutchinson"):
        ode_log_prob(key, sde_score_for(sde), x, sde=sde, trace="skilling")
    with pytest.raises(ValueError, match="num_probes must be a positive integer"):
        ode_log_prob(key, sde_score_for(sde), x, sde=sde, num_probes=0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        ode_log_prob(key, sde_score_for(sde), x, sde=sde, num_steps=0)
    with pytest.raises(ValueError, match="eps must be in"):
        ode_log_prob(key, sde_score_for(sde), x, sde=sde, eps=2.0)
    with pytest.raises(ValueError, match="x must be a floating-point"):
        ode_log_prob(key, sde_score_for(sde), jnp.zeros((2, 2), jnp.int32), sde=sde)
    with pytest.raises(ValueError, match=r"x0 must lie in \[-1, 1\]"):
        vlb_bits_per_dim(key, lambda x, t: x, jnp.full((2, 3), 2.0), schedule=linear_schedule(5))
