"""The DDPM's samplers from a given image and through the VP score (issue 19): image-to-image
(``edit``), inpainting (``inpaint``) and the SDE samplers ``"pc"`` / ``"ode"`` of ``DDPM.sample``.

Closed forms use isotropic Gaussian data ``N(MU, S^2 I)`` and the network that predicts its
exact noise: at alpha-bar ``a^2`` and noise std ``s`` the marginal is ``N(a MU, (a^2 S^2 + s^2) I)``
and ``eps = s (x - a MU) / (a^2 S^2 + s^2)``, evaluated at the continuous time of the
chain's ``DiscreteVPSDE`` (``t = (c + 1) / T``), so it is exact at every index and between.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import models as M
from genjax.diffusion import sampling as smp
from genjax.diffusion import schedules as sch

MU = np.array([0.5, -0.3])
S = 0.7
SCHED = sch.linear_schedule(200, beta_max=0.1)  # abar[T-1] ~ 5e-5: the N(0, I) start is right
SDE = sch.DiscreteVPSDE.from_schedule(SCHED)


class GaussEps(nn.Module):
    """The exact eps of ``N(MU, S^2 I)`` data at DDPM index ``c`` (a float)."""

    @nn.compact
    def __call__(self, x, c, y=None):
        self.param("unused", nn.initializers.zeros, ())
        a, s = SDE.marginal((c + 1.0) / SDE.num_steps)
        a, s = a[:, None], s[:, None]
        return s * (x - a * jnp.asarray(MU, jnp.float32)) / (a**2 * S**2 + s**2)


def _gauss_model(**kw):
    return M.DDPM(GaussEps(), (2,), SCHED, **kw)


class TinyImageNet(nn.Module):
    @nn.compact
    def __call__(self, x, t, y=None):
        h = nn.Conv(4, (3, 3), padding="SAME")(x)
        h = h + nn.Dense(4)(jnp.sin(t[:, None] / 3.0))[:, None, None, :]
        return nn.Conv(x.shape[-1], (3, 3), padding="SAME")(nn.silu(h))


def _image_model():
    return M.DDPM(TinyImageNet(), (4, 4, 1), sch.linear_schedule(8, beta_max=0.4), data_range="unit")


def _moments_ok(x, mean, var, bias):
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    assert np.all(np.isfinite(x))
    se_m, se_v = np.sqrt(var / n), var * np.sqrt(2.0 / n)
    assert np.all(np.abs(x.mean(0) - mean) <= 5 * se_m + bias), (x.mean(0), mean)
    assert np.all(np.abs(x.var(0) - var) <= 5 * se_v + bias), (x.var(0), var)


# ---------------------------------------------------------------------- pc / ode via vp_score
@pytest.mark.parametrize("sampler", ["pc", "ode"])
def test_sde_samplers_through_the_ddpm_recover_gaussian_data(sampler, key):
    model = _gauss_model()
    params = model.init(key, jnp.zeros((2, 2)))
    x = jax.jit(lambda k: model.sample(params, k, 10000, sampler=sampler))(key)
    # they end at t = 1/T, the chain's step 0: N(a0 MU, a0^2 S^2 + s0^2) (float64 closed form)
    a0, s0 = np.sqrt(1 - SCHED.betas[0]), np.sqrt(SCHED.betas[0])
    _moments_ok(x, a0 * MU, a0**2 * S**2 + s0**2, bias=0.02)


# ---------------------------------------------------------------------- image-to-image
def _ddim_numpy(x, ts, prevs, abar):
    """DDIM (eta = 0) with the exact Gaussian eps, in float64 numpy."""
    ext = np.concatenate([abar, [1.0]])
    for t, tp in zip(ts, prevs):
        at, ap = ext[t], ext[tp]
        a, s = np.sqrt(at), np.sqrt(1 - at)
        eps = s * (x - a * MU) / (a * a * S * S + s * s)
        x0 = (x - s * eps) / a
        x = np.sqrt(ap) * x0 + np.sqrt(1 - ap) * eps
    return x


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 20)])
def test_edit_strength_zero_returns_the_input(sampler, steps, key):
    model = _image_model()
    x0 = jax.random.uniform(key, (3, 4, 4, 1))
    params = model.init(key, x0)
    out = model.edit(params, key, x0, strength=0.0, sampler=sampler, steps=None if sampler == "ddpm" else 4)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x0))
    g = _gauss_model()
    xg = jax.random.normal(key, (5, 2))
    n = steps or g.num_steps
    out = g.edit(g.init(key, xg), key, xg, strength=0.4 / n, sampler=sampler, steps=steps)  # round(0.4) = 0 steps
    np.testing.assert_array_equal(np.asarray(out), np.asarray(xg))
    assert smp.edit_steps(0.6 / n, n) == 1


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_edit_strength_one_is_the_sampler_from_the_noised_input(sampler, eta, key):
    model = _gauss_model()
    x0 = jax.random.normal(jax.random.fold_in(key, 1), (6, 2))
    params = model.init(key, x0)
    steps = None if sampler == "ddpm" else 25
    got = np.asarray(model.edit(params, key, x0, strength=1.0, sampler=sampler, steps=steps, eta=eta))
    # by hand: x0 noised to the top index with the first half of the key, then the sampler
    k_noise, _ = jax.random.split(key)
    abar = float(SCHED.alphas_cumprod[-1])
    x_T = np.sqrt(abar) * np.asarray(x0) + np.sqrt(1 - abar) * np.asarray(jax.random.normal(k_noise, (6, 2)))
    eps_fn = model.eps_fn(params)
    if sampler == "ddpm":
        want = smp.ddpm_sample(key, eps_fn, (6, 2), schedule=SCHED, x_T=x_T)
    else:
        want = smp.ddim_sample(key, eps_fn, (6, 2), schedule=SCHED, num_steps=steps, eta=eta, x_T=x_T)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_edit_runs_the_last_steps_from_the_noised_input(key):
    """strength 0.4 of 25 DDIM steps: the last 10 steps from x0 noised to where they begin,
    against a float64 numpy DDIM on the same start."""
    model = _gauss_model()
    x0 = jax.random.normal(jax.random.fold_in(key, 2), (6, 2))
    params = model.init(key, x0)
    got = np.asarray(model.edit(params, key, x0, strength=0.4, sampler="ddim", steps=25), np.float64)
    taus = smp.ddim_timesteps(200, 25)
    ts, prevs = taus[:10][::-1], np.concatenate([[-1], taus[:9]])[::-1]
    abar = np.cumprod(1 - np.asarray(SCHED.betas, np.float64))
    k_noise, _ = jax.random.split(key)
    z = np.asarray(jax.random.normal(k_noise, (6, 2)), np.float64)
    start = np.sqrt(abar[ts[0]]) * np.asarray(x0, np.float64) + np.sqrt(1 - abar[ts[0]]) * z
    np.testing.assert_allclose(got, _ddim_numpy(start, ts, prevs, abar), rtol=1e-4, atol=1e-4)
    # a partial edit stays closer to its input than a full one
    full = np.asarray(model.edit(params, key, x0, strength=1.0, sampler="ddim", steps=25))
    assert np.abs(got - np.asarray(x0)).mean() < np.abs(full - np.asarray(x0)).mean()


# ---------------------------------------------------------------------- inpainting
@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 4)])
def test_inpaint_keeps_known_values_exactly(sampler, steps, key):
    model = _image_model()
    x0 = jax.random.uniform(key, (3, 4, 4, 1))
    params = model.init(key, x0)
    mask = np.zeros((4, 4, 1), bool)
    mask[:, :2] = True  # the left half is known
    out = np.asarray(model.inpaint(params, key, x0, mask, sampler=sampler, steps=steps))
    full = np.broadcast_to(mask, out.shape)
    np.testing.assert_array_equal(out[full], np.asarray(x0)[full])  # bit for bit
    assert np.abs(out[~full] - np.asarray(x0)[~full]).max() > 1e-3  # the rest is generated
    assert out.min() >= 0.0 and out.max() <= 1.0
    # a 0/1 float mask is the same mask
    out01 = np.asarray(model.inpaint(params, key, x0, mask.astype(np.float32), sampler=sampler, steps=steps))
    np.testing.assert_array_equal(out01, out)


def test_inpaint_generates_the_unknown_coordinate_from_the_data_distribution(key):
    """Isotropic data: the exact eps is coordinate-wise, so the unknown coordinate's chain is
    the unconditional one and its samples follow the data marginal N(MU[1], S^2)."""
    model = _gauss_model()
    params = model.init(key, jnp.zeros((2, 2)))
    x0 = jnp.tile(jnp.array([[2.0, 5.0]]), (8000, 1))  # the unknown value 5.0 must not leak in
    mask = np.array([True, False])
    for sampler, steps in (("ddpm", None), ("ddim", 50)):
        out = np.asarray(jax.jit(lambda k: model.inpaint(params, k, x0, mask, sampler=sampler, steps=steps))(key))
        assert np.all(out[:, 0] == 2.0)
        _moments_ok(out[:, 1:], MU[1:], S**2, bias=0.02)


def test_editing_bad_input_raises_before_work(key):
    model = _image_model()
    x0 = jax.random.uniform(key, (2, 4, 4, 1))
    params = model.init(key, x0)
    for s in (-0.1, 1.5, "half", jnp.asarray(0.5)):
        with pytest.raises(ValueError, match="strength must be a number in"):
            model.edit(params, key, x0, strength=s)
    with pytest.raises(ValueError, match=r"x0 must have shape \(batch, 4, 4, 1\)|x0"):
        model.edit(params, key, x0[:, :3], strength=0.5)
    with pytest.raises(ValueError, match=r"x0 must lie in \[0, 1\]"):
        model.inpaint(params, key, x0 + 2.0, np.ones((4, 4, 1), bool))
    with pytest.raises(ValueError, match=r"mask must broadcast to the images' shape \(2, 4, 4, 1\), got shape \(3,\)"):
        model.inpaint(params, key, x0, np.ones((3,), bool))
    with pytest.raises(ValueError, match=r"mask must hold only 0 and 1"):
        model.inpaint(params, key, x0, np.full((4, 4, 1), 0.5, np.float32))
    for method in (lambda **kw: model.edit(params, key, x0, strength=0.5, **kw),
                   lambda **kw: model.inpaint(params, key, x0, np.ones((4, 4, 1), bool), **kw)):
        with pytest.raises(ValueError, match="unknown sampler 'pc'; valid choices: ddim, ddpm"):
            method(sampler="pc")
        with pytest.raises(ValueError, match="guidance: this model takes no condition"):
            method(guidance=2.0)
