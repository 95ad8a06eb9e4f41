"""The few-step solvers (``sampling.solver_sample``) on 2-D Gaussian data N(MU, COV) with the
analytic eps/score (no network), as in ``test_sampling.py``.

For Gaussian data the probability-flow ODE is linear and solved in closed form: with
``C_t = a_t^2 COV + s_t^2 I``, ``x_t1 = a_t1 MU + C_t1^{1/2} C_t0^{-1/2} (x_t0 - a_t0 MU)``, and the
solvers' last step (to the clean data) is the posterior mean
``E[x0 | x_t] = MU + a_t COV C_t^{-1} (x_t - a_t MU)`` at the last time. So every solver's final
sample from a given ``x_T`` has an exact reference, computed here in float64 NumPy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import (
    VESDE,
    VPSDE,
    DiscreteVPSDE,
    classifier_free_guidance,
    ddim_sample,
    ddpm_2d,
    linear_schedule,
    solver_nfe,
    solver_sample,
    solver_times,
)
from genjax.diffusion.sampling import FAST_SAMPLERS, TIME_SCHEDULES

MU = np.array([0.5, -0.3])
COV = np.array([[0.6, 0.2], [0.2, 0.4]])
ORDER = {"euler": 1, "heun": 2, "dpm++2m": 2, "dpm2": 2, "dpm3": 3}


def gaussian_score(x, a, s, mu=MU):
    """Score of N(a mu, a^2 COV + s^2 I) at x (b, 2); a, s (b,). Explicit 2x2 inverse."""
    p, q, r = a**2 * COV[0, 0] + s**2, a**2 * COV[0, 1], a**2 * COV[1, 1] + s**2
    det = p * r - q * q
    y0, y1 = x[:, 0] - a * mu[0], x[:, 1] - a * mu[1]
    return -jnp.stack([(r * y0 - q * y1) / det, (p * y1 - q * y0) / det], axis=-1)


def score_for(sde, mu=MU):
    return lambda x, t: gaussian_score(x, *sde.marginal(t), mu=mu)


def chain_eps_for(vp: DiscreteVPSDE, mu=MU):
    """A DDPM's eps_fn(x, index) for Gaussian data; float indices read on the chain's VP-SDE."""

    def eps_fn(x, idx):
        a, s = vp.marginal((jnp.asarray(idx, jnp.float32) + 1.0) / vp.num_steps)
        return -s[:, None] * gaussian_score(x, a, s, mu=mu)

    return eps_fn


def _np_marginal(sde, t):
    a, s = sde.marginal(jnp.full((1,), t, jnp.float32))
    return float(a[0]), float(s[0])


def exact(sde, x_T, t_min, mu=MU):
    """The solvers' exact target: the flow from sde.T to t_min, then E[x0 | x_{t_min}] (float64)."""
    (a1, s1), (a0, s0) = _np_marginal(sde, sde.T), _np_marginal(sde, t_min)
    w, U = np.linalg.eigh(COV)
    M = U @ np.diag(np.sqrt(a0**2 * w + s0**2) / np.sqrt(a1**2 * w + s1**2)) @ U.T
    x = a0 * mu + (np.asarray(x_T, np.float64) - a1 * mu) @ M.T
    C = a0**2 * COV + s0**2 * np.eye(2)
    return mu + (a0 * COV @ np.linalg.solve(C, (x - a0 * mu).T)).T


def _run(sampler, steps, x_T, **kw):
    return np.asarray(jax.jit(lambda x: solver_sample(None, x.shape, sampler=sampler, steps=steps, x_T=x, **kw))(x_T),
                      np.float64)


# step counts of the convergence fit: in each solver's asymptotic range and above float32's floor
FIT_STEPS = {"euler": (16, 32, 64), "heun": (16, 32, 64), "dpm++2m": (16, 32, 64), "dpm2": (16, 32, 64),
             "dpm3": (12, 24, 48)}


@pytest.mark.parametrize("sampler", FAST_SAMPLERS)
def test_error_falls_at_the_solvers_order(sampler):
    """log-log slope of the max error against the steps, each solver on its default time schedule."""
    sde = VPSDE()
    x_T = sde.prior_sample(jax.random.PRNGKey(1), (16, 2))
    ref = exact(sde, x_T, 1e-3)
    steps = FIT_STEPS[sampler]
    errs = [np.abs(_run(sampler, n, x_T, score_fn=score_for(sde), sde=sde) - ref).max() for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    # measured: euler 0.99, heun 2.2, dpm++2m 2.0 (its 16 -> 32 -> 64 pairs: 1.9, 2.0), dpm2 2.1, dpm3 3.5
    assert abs(slope - ORDER[sampler]) < 0.6, (sampler, slope, errs)
    assert errs[-1] < errs[0] / 2 ** (ORDER[sampler] * 1.4), (sampler, errs)


MANY_STEPS = {"euler": 1000, "heun": 100, "dpm++2m": 100, "dpm2": 100, "dpm3": 40}


@pytest.mark.parametrize("sampler", FAST_SAMPLERS)
@pytest.mark.parametrize("model", ["ddpm-chain", "vp-score", "ve-score"])
def test_many_steps_match_the_exact_flow(sampler, model):
    if model == "ddpm-chain":
        schedule = linear_schedule(100)
        sde = DiscreteVPSDE.from_schedule(schedule)
        kw, t_min = {"eps_fn": chain_eps_for(sde), "schedule": schedule}, 1.0 / 100
        x_T = jax.random.normal(jax.random.PRNGKey(2), (16, 2))
    else:
        sde = VPSDE() if model == "vp-score" else VESDE(sigma_max=20.0)
        kw, t_min = {"score_fn": score_for(sde), "sde": sde}, 1e-3
        x_T = sde.prior_sample(jax.random.PRNGKey(2), (16, 2))
    x = _run(sampler, MANY_STEPS[sampler], x_T, **kw)
    ref = exact(sde, x_T, t_min)
    assert np.abs(x - ref).max() < 1e-2 * (1 + np.abs(ref).max()), (sampler, model, np.abs(x - ref).max())


def test_euler_on_uniform_times_is_ddim():
    """EDM's Euler step in sigma/alpha is DDIM's update; on the uniform grid of a T = 100 chain
    with 4 steps the times are DDIM's indices 99, 66, 33, 0."""
    schedule = linear_schedule(100)
    eps_fn = chain_eps_for(DiscreteVPSDE.from_schedule(schedule))
    x_T = jax.random.normal(jax.random.PRNGKey(3), (16, 2))
    a = solver_sample(None, (16, 2), sampler="euler", steps=4, eps_fn=eps_fn, schedule=schedule,
                      time_schedule="uniform", x_T=x_T)
    b = ddim_sample(None, eps_fn, (16, 2), schedule=schedule, num_steps=4, x_T=x_T)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)


def test_time_schedules():
    sde = VPSDE()
    for name in TIME_SCHEDULES:
        t = solver_times(sde, 6, name, t_min=1e-3)
        assert t[0] == 1.0 and t[-1] == 1e-3 and np.all(np.diff(t) < 0), name
    a, s = (np.asarray(v, np.float64) for v in sde.marginal(jnp.asarray(solver_times(sde, 6, "logsnr", t_min=1e-3),
                                                                            jnp.float32)))
    np.testing.assert_allclose(np.diff(np.log(a / s)), np.diff(np.log(a / s))[0], rtol=1e-3)  # uniform in log-SNR
    t = solver_times(sde, 6, "karras", t_min=1e-3, rho=7.0)
    a, s = (np.asarray(v, np.float64) for v in sde.marginal(jnp.asarray(t, jnp.float32)))
    lo, hi = (s / a)[-1], (s / a)[0]
    want = (hi ** (1 / 7) + np.linspace(0, 1, 6) * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7
    np.testing.assert_allclose(s / a, want, rtol=1e-3)
    np.testing.assert_allclose(solver_times(sde, 5, "quadratic", t_min=1e-2),
                               np.linspace(1.0, 0.1, 5) ** 2, rtol=1e-12)


@pytest.mark.parametrize("sampler", FAST_SAMPLERS)
def test_network_evaluations_are_counted(sampler):
    """solver_nfe equals the eps calls the compiled sampler makes (counted by a host callback)."""
    sde = VPSDE()
    calls = []

    def score(x, t):
        jax.debug.callback(lambda: calls.append(1))
        return score_for(sde)(x, t)

    steps = 5
    x = jax.jit(lambda k: solver_sample(k, (4, 2), sampler=sampler, steps=steps, score_fn=score, sde=sde))(
        jax.random.PRNGKey(0))
    jax.block_until_ready(x)
    jax.effects_barrier()
    assert len(calls) == solver_nfe(sampler, steps) == {"euler": 5, "dpm++2m": 5, "heun": 9, "dpm2": 9, "dpm3": 13}[sampler]


def test_guidance_passes_through():
    """Guided eps of two Gaussians with one covariance is the eps of N((1 + w) mu_c - w mu_u, COV):
    eps is affine in the mean, so a guided solver ends at that Gaussian's exact flow."""
    schedule = linear_schedule(100)
    vp = DiscreteVPSDE.from_schedule(schedule)
    mu_c, mu_u, w = np.array([1.0, 0.0]), np.array([0.0, 0.5]), 2.0
    cond, uncond = chain_eps_for(vp, mu_c), chain_eps_for(vp, mu_u)
    guided = lambda x, t: classifier_free_guidance(cond(x, t), uncond(x, t), w)  # noqa: E731
    x_T = jax.random.normal(jax.random.PRNGKey(4), (16, 2))
    x = _run("dpm3", 30, x_T, eps_fn=guided, schedule=schedule)
    ref = exact(vp, x_T, 0.01, mu=(1 + w) * mu_c - w * mu_u)
    assert np.abs(x - ref).max() < 1e-3


def test_churn_samples_the_data_distribution(key):
    """EDM's stochastic Heun (S_churn = 20 over 100 steps: gamma = 0.2, fresh noise of std
    0.66 sigma at each step in [S_tmin, S_tmax]) still samples N(MU, COV): moments of 10000 draws
    within 5 standard errors plus 0.01 of bias (measured: 0.015 at 100 steps with gamma = 0.4,
    0.004 at 200; 25 steps: 0.09 in the variance, 0.04 without churn)."""
    sde = VPSDE()
    x = np.asarray(jax.jit(lambda k: solver_sample(k, (10000, 2), sampler="heun", steps=100, score_fn=score_for(sde),
                                                   sde=sde, s_churn=20.0, s_tmin=0.05, s_tmax=50.0))(key))
    se_mean = np.sqrt(np.diag(COV) / len(x))
    assert np.all(np.abs(x.mean(0) - MU) < 5 * se_mean + 0.01), x.mean(0)
    assert np.abs(np.cov(x.T) - COV).max() < 5 * 0.007 + 0.01, np.cov(x.T)
    y = solver_sample(key, (8, 2), sampler="heun", steps=5, score_fn=score_for(sde), sde=sde, s_churn=40.0)
    z = solver_sample(jax.random.fold_in(key, 1), (8, 2), sampler="heun", steps=5, score_fn=score_for(sde), sde=sde,
                      s_churn=40.0)
    x_T = sde.prior_sample(key, (8, 2))  # the same start with and without churn: churn changes the result
    assert not np.allclose(np.asarray(y), np.asarray(z))
    d0 = solver_sample(None, (8, 2), sampler="heun", steps=5, score_fn=score_for(sde), sde=sde, x_T=x_T)
    d1 = solver_sample(key, (8, 2), sampler="heun", steps=5, score_fn=score_for(sde), sde=sde, x_T=x_T, s_churn=40.0)
    assert not np.allclose(np.asarray(d0), np.asarray(d1))


def test_trajectory_shape():
    sde = VPSDE()
    x, traj = solver_sample(jax.random.PRNGKey(0), (3, 2), sampler="dpm2", steps=4, score_fn=score_for(sde), sde=sde,
                            return_trajectory=True)
    assert traj.shape == (5, 3, 2)
    np.testing.assert_array_equal(np.asarray(traj[-1]), np.asarray(x))
    x1 = solver_sample(jax.random.PRNGKey(0), (3, 2), sampler="euler", steps=1, score_fn=score_for(sde), sde=sde)
    assert x1.shape == (3, 2) and np.all(np.isfinite(np.asarray(x1)))


def test_bad_arguments_raise():
    sde, sched = VPSDE(), linear_schedule(10)
    kw = dict(score_fn=score_for(sde), sde=sde)
    k = jax.random.PRNGKey(0)
    cases = [
        (dict(sampler="dpm++3m", steps=5, **kw), "sampler"),
        (dict(sampler="heun", steps=0, **kw), "steps"),
        (dict(sampler="heun", steps=5, time_schedule="cosine", **kw), "time_schedule"),
        (dict(sampler="heun", steps=5, rho=-1.0, **kw), "rho"),
        (dict(sampler="dpm2", steps=5, s_churn=1.0, **kw), "s_churn"),
        (dict(sampler="heun", steps=5, s_churn=-1.0, **kw), "s_churn"),
        (dict(sampler="heun", steps=5, s_tmin=2.0, s_tmax=1.0, **kw), "s_tmax"),
        (dict(sampler="heun", steps=5, eps=1.5, **kw), "eps"),
        (dict(sampler="heun", steps=5, eps_fn=lambda x, t: x, schedule=sched, **kw), "eps_fn"),
        (dict(sampler="heun", steps=5, eps_fn=lambda x, t: x, schedule=None), "schedule"),
        (dict(sampler="heun", steps=5, x_T=jnp.zeros((3, 2)), **kw), "x_T"),
    ]
    for args, name in cases:
        with pytest.raises(ValueError, match=name):
            solver_sample(k, (4, 2), **args)
    with pytest.raises(ValueError, match="key"):
        solver_sample(None, (4, 2), sampler="heun", steps=3, **kw)
    with pytest.raises(ValueError, match="eps_fn"):  # a wrong output shape names the function
        solver_sample(k, (4, 2), sampler="euler", steps=3, eps_fn=lambda x, t: x[:, :1], schedule=sched)


@pytest.mark.parametrize("sampler", FAST_SAMPLERS)
def test_ddpm_samples_with_each_solver(sampler):
    """A tiny untrained DDPM: each name samples, equals solver_sample on its eps_fn, and the
    registry's NFE count is the solver's."""
    from genjax import registry

    model = ddpm_2d(data_dim=2, hidden=(16,), T=20, default_sampler=sampler)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))
    key = jax.random.PRNGKey(1)
    x = model.sample(params, key, 6, sampler=sampler, steps=3)
    ref = solver_sample(key, (6, 2), sampler=sampler, steps=3, eps_fn=model.eps_fn(params), schedule=model.schedule)
    np.testing.assert_allclose(np.asarray(x), np.asarray(ref), rtol=1e-5, atol=1e-6)
    x, traj = model.sample(params, key, 6, time_schedule="uniform", return_trajectory=True)  # the default steps
    assert x.shape == (6, 2) and traj.shape[1:] == (6, 2) and np.all(np.isfinite(np.asarray(traj)))
    nfe, how = registry.network_evaluations(model)
    assert nfe == model.sampler_nfe() == solver_nfe(sampler, traj.shape[0] - 1) and sampler in how
    with pytest.raises(ValueError, match="time_schedule"):
        model.sample(params, key, 2, sampler="ddim", time_schedule="karras")


def test_ddpm_guided_and_score_sde_samplers():
    """Guidance reaches the solvers through DDPM.sample (a guided run differs from the plain one
    and equals solver_sample on the guided eps_fn); ScoreSDE takes the names too."""
    from genjax.diffusion import score_sde_2d

    model = ddpm_2d(data_dim=2, hidden=(16,), T=20, num_classes=3)
    params = model.init(jax.random.PRNGKey(0), {"x": jnp.zeros((4, 2)), "cond": jnp.zeros((4,), jnp.int32)})
    key = jax.random.PRNGKey(1)
    y = jnp.full((5,), 2, jnp.int32)
    g = model.sample(params, key, 5, sampler="dpm++2m", steps=4, cond=y, guidance=3.0)
    p = model.sample(params, key, 5, sampler="dpm++2m", steps=4, cond=y)
    ref = solver_sample(key, (5, 2), sampler="dpm++2m", steps=4, eps_fn=model.eps_fn(params, cond=y, guidance=3.0),
                        schedule=model.schedule)
    np.testing.assert_allclose(np.asarray(g), np.asarray(ref), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(g), np.asarray(p))
    sm = score_sde_2d(data_dim=2, hidden=(16,), sde="vp")
    sp = sm.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))
    for name in ("dpm++2m", "heun"):
        assert sm.sample(sp, key, 3, sampler=name, steps=3).shape == (3, 2)
    assert sm.sampler_nfe("heun", 10) == 19 and sm.sampler_nfe("pc", 10) == 20
