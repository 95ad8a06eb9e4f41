"""Schedules: discrete betas/alpha-bar and their posterior coefficients against float64
NumPy; SDE marginals against a numerical solution of the moment ODEs built from
``sde()``'s own drift and diffusion; priors against scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from genjax.diffusion.constructors import discrete_schedule
from genjax.diffusion import (
    VESDE,
    DiscreteVPSDE,
    VPSDE,
    SubVPSDE,
    alpha_sigma,
    cosine_schedule,
    geometric_sigmas,
    linear_schedule,
    scaled_linear_schedule,
    schedule_from_betas,
)


@pytest.mark.parametrize("make", [lambda: linear_schedule(100), lambda: linear_schedule(1000),
                                  lambda: cosine_schedule(50), lambda: cosine_schedule(1000),
                                  lambda: scaled_linear_schedule(1000)])
def test_discrete_schedule_contract(make):
    s = make()
    b = np.asarray(s.betas, np.float64)
    abar = np.asarray(s.alphas_cumprod, np.float64)
    assert s.betas.dtype == jnp.float32 and s.alphas_cumprod.dtype == jnp.float32
    assert b.shape == abar.shape == (s.num_steps,)
    assert np.all((b > 0) & (b < 1))
    assert np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1
    np.testing.assert_allclose(abar, np.cumprod(1.0 - b), rtol=1e-5, atol=1e-7)


def test_linear_and_cosine_closed_forms():
    s = linear_schedule(7, beta_min=1e-3, beta_max=0.1)
    np.testing.assert_allclose(s.betas, np.linspace(1e-3, 0.1, 7), rtol=1e-6)
    T, off = 100, 0.008
    c = cosine_schedule(T, s=off)
    f = lambda u: np.cos((u / T + off) / (1 + off) * np.pi / 2) ** 2  # noqa: E731
    t = np.arange(T)
    abar = f(t + 1.0) / f(0.0)
    unclipped = np.asarray(c.betas) < 0.999 - 1e-6
    # where no beta was clipped (all but the last), alpha-bar is exactly f(t+1)/f(0)
    np.testing.assert_allclose(np.asarray(c.alphas_cumprod)[unclipped], abar[unclipped], rtol=2e-5, atol=1e-7)
    assert float(c.betas[-1]) == pytest.approx(0.999, rel=1e-6)


def test_scaled_linear_is_stable_diffusions_schedule():
    """sqrt(beta) evenly spaced; at T = 1000 its last sqrt(abar) is Stable Diffusion's 0.068265
    (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", sec. 3.1),
    against DDPM's pixel schedule ending near 0.0064; the constructors' name scales it by 1000/T."""
    s = scaled_linear_schedule(5, beta_min=0.01, beta_max=0.09)
    np.testing.assert_allclose(s.betas, [0.01, 0.0225, 0.04, 0.0625, 0.09], rtol=1e-6)
    sd = discrete_schedule("scaled_linear", 1000)
    assert float(np.sqrt(sd.alphas_cumprod[-1])) == pytest.approx(0.068265, abs=2e-5)
    assert float(np.sqrt(discrete_schedule("linear", 1000).alphas_cumprod[-1])) == pytest.approx(0.00635, abs=2e-5)
    short = np.asarray(discrete_schedule("scaled_linear", 100).betas, np.float64)
    np.testing.assert_allclose(short, np.linspace(np.sqrt(8.5e-3), np.sqrt(0.12), 100) ** 2, rtol=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        discrete_schedule("sqrt_linear", 1000)


@pytest.mark.parametrize("T", [1, 2, 50])
def test_posterior_quantities_match_numpy(T):
    s = linear_schedule(T, beta_min=1e-3, beta_max=0.2)
    b = np.asarray(s.betas, np.float64)
    abar = np.cumprod(1.0 - b)
    prev = np.concatenate([[1.0], abar[:-1]])
    pv = b * (1 - prev) / (1 - abar)
    np.testing.assert_allclose(s.alphas_cumprod_prev, prev, rtol=1e-5)
    np.testing.assert_allclose(s.posterior_variance, pv, rtol=1e-4, atol=1e-10)
    expected_log = np.log(np.concatenate([[pv[1] if T > 1 else b[0]], pv[1:]]))
    np.testing.assert_allclose(s.posterior_log_variance_clipped, expected_log, rtol=1e-4)
    np.testing.assert_allclose(s.posterior_mean_coef1, b * np.sqrt(prev) / (1 - abar), rtol=1e-4)
    np.testing.assert_allclose(s.posterior_mean_coef2, (1 - prev) * np.sqrt(1 - b) / (1 - abar), rtol=1e-4, atol=1e-8)


def test_alpha_sigma(rng):
    s = cosine_schedule(30)
    t = jnp.asarray(rng.integers(0, 30, size=5), jnp.int32)
    a, sig = alpha_sigma(s, t)
    abar = np.asarray(s.alphas_cumprod, np.float64)[np.asarray(t)]
    assert a.shape == sig.shape == (5,)
    np.testing.assert_allclose(a, np.sqrt(abar), rtol=1e-6)
    np.testing.assert_allclose(sig, np.sqrt(1 - abar), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(a) ** 2 + np.asarray(sig) ** 2, 1.0, rtol=1e-6)
    # under jit the range check is skipped but shapes are still checked
    a2, _ = jax.jit(alpha_sigma)(s, t)
    np.testing.assert_allclose(a2, a, rtol=1e-6)


def _moment_ode(sde, t1, v0):
    """Solves m' = f(t) m, v' = 2 f(t) v + g(t)^2 with f, g read off ``sde.sde``."""
    one = jnp.ones((1, 1), jnp.float32)

    def coeffs(t):
        drift, g = sde.sde(one, jnp.full((1,), t, jnp.float32))
        return float(drift[0, 0]), float(g[0])

    def rhs(t, y):
        f, g = coeffs(t)
        return [f * y[0], 2 * f * y[1] + g * g]

    sol = integrate.solve_ivp(rhs, (0.0, t1), [1.0, v0], rtol=1e-8, atol=1e-10, method="RK45")
    return sol.y[0, -1], sol.y[1, -1]


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_sde_marginals_match_numerical_solution(name):
    sde = {"vp": VPSDE(), "subvp": SubVPSDE(beta_min=0.2, beta_max=15.0),
           "ve": VESDE(sigma_min=0.05, sigma_max=5.0)}[name]
    ts = np.array([0.05, 0.3, 0.7, 1.0])
    mean, std = sde.marginal(jnp.asarray(ts, jnp.float32))
    assert mean.shape == std.shape == (4,)
    v0 = sde.sigma_min**2 if name == "ve" else 0.0  # VE: t=0 is the data perturbed with sigma_min
    for i, t in enumerate(ts):
        m_ref, v_ref = _moment_ode(sde, t, v0)
        assert float(mean[i]) == pytest.approx(m_ref, rel=1e-4, abs=1e-6), (name, t)
        assert float(std[i]) ** 2 == pytest.approx(v_ref, rel=1e-3, abs=1e-6), (name, t)
    if name in ("vp", "subvp"):
        # mean coefficient exp(-0.5 int_0^t beta) by quadrature
        for i, t in enumerate(ts):
            integral, _ = integrate.quad(lambda u: sde.beta_min + u * (sde.beta_max - sde.beta_min), 0, t)
            assert float(mean[i]) == pytest.approx(np.exp(-0.5 * integral), rel=1e-5)
        var_ref = 1 - np.asarray(mean, np.float64) ** 2
        expected = var_ref if name == "vp" else var_ref**2  # sub-VP variance (1 - m^2)^2
        np.testing.assert_allclose(np.asarray(std, np.float64) ** 2, expected, rtol=1e-4)
    else:
        np.testing.assert_allclose(std, sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** ts, rtol=1e-5)


def test_discrete_vpsde_marginals_match_numerical_solution():
    """The piecewise-constant beta(t) of a short chain: ``marginal`` agrees with the moment ODE
    of ``sde()``'s own drift and diffusion (scipy), on and between the grid points."""
    sde = DiscreteVPSDE.from_schedule(linear_schedule(8, beta_min=0.05, beta_max=0.4))
    ts = np.array([0.06, 0.125, 0.3, 0.5, 0.81, 1.0])
    mean, std = sde.marginal(jnp.asarray(ts, jnp.float32))
    for i, t in enumerate(ts):
        m_ref, v_ref = _moment_ode(sde, t, 0.0)
        assert float(mean[i]) == pytest.approx(m_ref, rel=1e-4, abs=1e-6), t
        assert float(std[i]) ** 2 == pytest.approx(v_ref, rel=1e-3, abs=1e-6), t


@pytest.mark.parametrize("T", [10, 100, 200, 1000])
def test_discrete_vpsde_has_the_chains_marginals_at_the_grid(T):
    """Issue 17 A6: at ``t_i = (i + 1) / T`` the SDE's mean and std are the chain's
    ``sqrt(abar_i)``, ``sqrt(1 - abar_i)`` (float64 cumulative product) -- for every step,
    whatever T (the linear VPSDE(T beta_0, T beta_T) was 41% off at T=100)."""
    sched = linear_schedule(T, beta_min=min(1e-4 * 1000 / T, 0.5), beta_max=min(2e-2 * 1000 / T, 0.999))
    sde = DiscreteVPSDE.from_schedule(sched)
    assert isinstance(sde, VPSDE) and sde.num_steps == T
    abar = np.cumprod(1.0 - np.asarray(sched.betas, np.float64))
    mean, std = sde.marginal(jnp.asarray(np.arange(1, T + 1) / T, jnp.float32))
    np.testing.assert_allclose(np.asarray(std, np.float64), np.sqrt(1.0 - abar), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(mean, np.float64), np.sqrt(abar), rtol=1e-3, atol=1e-6)


def test_discrete_vpsde_bad_input():
    with pytest.raises(ValueError, match="schedule must be a DiscreteSchedule"):
        DiscreteVPSDE.from_schedule(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="rates must be a non-empty tuple"):
        DiscreteVPSDE()


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_max=3.0)])
def test_prior(sde, key):
    scale = getattr(sde, "sigma_max", 1.0) if isinstance(sde, VESDE) else 1.0
    z = sde.prior_sample(key, (4000, 3))
    assert z.shape == (4000, 3) and z.dtype == jnp.float32
    # sample std within 5 standard errors (se of a std estimate ~ std / sqrt(2n))
    np.testing.assert_allclose(np.std(np.asarray(z), axis=0), scale, rtol=5 / np.sqrt(8000))
    lp = sde.prior_log_prob(z[:5])
    ref = stats.multivariate_normal(np.zeros(3), scale**2 * np.eye(3)).logpdf(np.asarray(z[:5], np.float64))
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    # image-shaped input: summed over all non-batch axes
    zi = z[:8].reshape(2, 2, 2, 3)
    ref_i = stats.norm(0, scale).logpdf(np.asarray(zi, np.float64)).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(sde.prior_log_prob(zi), ref_i, rtol=1e-5)


def test_sde_shapes():
    x = jnp.ones((3, 4, 4, 2))
    t = jnp.full((3,), 0.5)
    for sde in (VPSDE(), SubVPSDE(), VESDE()):
        drift, g = sde.sde(x, t)
        assert drift.shape == x.shape and g.shape == (3,)
        assert sde.T == 1.0
    with pytest.raises(ValueError, match="t must have shape"):
        VPSDE().sde(x, jnp.ones((2,)))


def test_geometric_sigmas():
    s = geometric_sigmas(10.0, 0.01, 7)
    assert s.dtype == jnp.float32 and s.shape == (7,)
    a = np.asarray(s, np.float64)
    assert a[0] == pytest.approx(10.0, rel=1e-6) and a[-1] == pytest.approx(0.01, rel=1e-6)
    np.testing.assert_allclose(a[1:] / a[:-1], (0.001) ** (1 / 6), rtol=1e-5)
    assert np.all(np.diff(a) < 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        linear_schedule(0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        cosine_schedule(-3)
    with pytest.raises(ValueError, match="beta_max < 1"):
        linear_schedule(10, beta_max=1.5)
    with pytest.raises(ValueError, match="beta_min must be a positive"):
        linear_schedule(10, beta_min=0.0)
    with pytest.raises(ValueError, match="betas must lie in"):
        schedule_from_betas([0.1, 1.0])
    s = linear_schedule(10)
    with pytest.raises(ValueError, match=r"t must lie in \{0, ..., 9\}"):
        alpha_sigma(s, jnp.array([0, 10]))
    with pytest.raises(ValueError, match=r"t must lie in"):
        alpha_sigma(s, jnp.array([-1, 3]))
    with pytest.raises(ValueError, match="integer array"):
        alpha_sigma(s, jnp.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(batch,\)"):
        alpha_sigma(s, jnp.zeros((2, 2), jnp.int32))
    with pytest.raises(ValueError, match="sigma_min must be a positive"):
        geometric_sigmas(1.0, 0.0, 5)
    with pytest.raises(ValueError, match="need sigma_max > sigma_min"):
        geometric_sigmas(0.1, 1.0, 5)
    with pytest.raises(ValueError, match="num must be a positive integer"):
        geometric_sigmas(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="need sigma_min < sigma_max"):
        VESDE(sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="beta_min must be a positive"):
        VPSDE(beta_min=-0.1)
