"""Diffusion model wrappers (DDPM, NCSN, ScoreSDE): losses and gradients, training on a
toy density, no recompilation, samplers' shapes and ranges, classifier-free guidance,
log_prob (against a Gaussian's exact log-density), bad input."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.data
from genjax.diffusion import models as M
from genjax.diffusion import schedules as sch

TINY = {
    "ddpm": lambda: M.ddpm_2d(hidden=(16, 16), emb_dim=8, T=20),
    "ncsn": lambda: M.ncsn_2d(hidden=(16, 16), emb_dim=8, sigma_max=5.0, sigma_min=0.05, num_sigmas=6),
    "score_sde": lambda: M.score_sde_2d(hidden=(16, 16), emb_dim=8),
}


def _toy(key, n, name="8gaussians"):
    return genjax.data.get_toy_density(name).sample(key, n)


class TinyImageNet(nn.Module):
    """A small time-conditional conv net for (b, H, W, C) images (cheaper to compile than a UNet)."""

    @nn.compact
    def __call__(self, x, t, y=None):
        h = nn.Conv(4, (3, 3), padding="SAME")(x)
        h = h + nn.Dense(4)(jnp.sin(t[:, None] / 100.0))[:, None, None, :]
        return nn.Conv(x.shape[-1], (3, 3), padding="SAME")(nn.silu(h))


# ---------------------------------------------------------------------- losses and training
@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_finite_and_gradient_nonzero(name, key):
    model = TINY[name]()
    x = _toy(key, 8)
    params = model.init(jax.random.fold_in(key, 1), x)
    (loss, metrics), grads = jax.jit(jax.value_and_grad(model.loss, has_aux=True))(params, jax.random.fold_in(key, 2), x)
    assert loss.shape == () and np.isfinite(float(loss)) and float(loss) > 0
    assert set(metrics) >= {"loss"} and all(np.isfinite(float(v)) for v in metrics.values())
    gnorm = float(optax.tree.norm(grads))
    assert np.isfinite(gnorm) and gnorm > 1e-6


@pytest.mark.parametrize("name", sorted(TINY))
def test_adam_steps_lower_loss_without_recompiling(name, key):
    model = TINY[name]()
    x_eval = _toy(jax.random.PRNGKey(123), 512)
    params = model.init(key, x_eval[:8])
    tx = optax.adam(3e-3)
    opt_state = tx.init(params)
    traces = []

    @jax.jit
    def step(params, opt_state, key):
        traces.append(1)  # runs once per trace
        k_data, k_loss = jax.random.split(key)
        x = _toy(k_data, 128)
        (loss, _), grads = jax.value_and_grad(model.loss, has_aux=True)(params, k_loss, x)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    eval_keys = jax.random.split(jax.random.PRNGKey(7), 8)

    @jax.jit
    def eval_loss(params):  # the same t / noise draws before and after training
        return jnp.mean(jax.vmap(lambda k: model.loss(params, k, x_eval)[0])(eval_keys))

    before = float(eval_loss(params))
    for i in range(150):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, i))
    after = float(eval_loss(params))
    assert len(traces) == 1 and step._cache_size() == 1
    assert np.isfinite(after) and after < 0.85 * before, (before, after)


# ---------------------------------------------------------------------- samplers
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("ddpm", {"sampler": "ddpm"}),
        ("ddpm", {"sampler": "ddim", "steps": 5}),
        ("ddpm", {"sampler": "ddim", "steps": 5, "eta": 1.0}),
        ("ncsn", {"steps": 3}),
        ("score_sde", {"sampler": "pc", "steps": 25}),
        ("score_sde", {"sampler": "ode", "steps": 10}),
    ],
)
def test_sample_shapes_and_trajectories(name, kwargs, key):
    model = TINY[name]()
    params = jax.jit(model.init)(key, _toy(key, 4))
    sample = jax.jit(functools.partial(model.sample, return_trajectory=True, **kwargs), static_argnames="num")
    x, traj = sample(params, key, num=5)
    x, traj = np.asarray(x), np.asarray(traj)
    assert x.shape == (5, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert traj.ndim == 3 and traj.shape[1:] == (5, 2) and traj.shape[0] >= 2 and np.all(np.isfinite(traj))
    if name != "ncsn":  # NCSN's final Tweedie denoising step comes after the last frame
        np.testing.assert_allclose(traj[-1], x, rtol=1e-5, atol=1e-5)
    # a different key gives different samples
    x2, _ = sample(params, jax.random.fold_in(key, 1), num=5)
    assert np.abs(np.asarray(x2) - x).max() > 1e-4


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 4)])
def test_image_ddpm_samples_lie_in_unit_interval(sampler, steps):
    # a fixed key: with 5x weights some keys clip every pixel to one bound (seed 659756777 gave all
    # zeros), which satisfies the bounds but not the spread check; this key exercises both bounds' clip
    key = jax.random.PRNGKey(0)
    model = M.DDPM(TinyImageNet(), (8, 8, 1), sch.linear_schedule(10, beta_min=1e-2, beta_max=0.3), data_range="unit")
    x = jax.random.uniform(key, (3, 8, 8, 1))
    params = jax.jit(model.init)(key, x)
    # large weights: the unclipped model-space samples leave [-1, 1], so the clip is exercised
    params = jax.tree_util.tree_map(lambda p: 5.0 * p, params)
    out = jax.jit(functools.partial(model.sample, sampler=sampler, steps=steps), static_argnames="num")(params, key, num=6)
    out = np.asarray(out)
    assert out.shape == (6, 8, 8, 1) and out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 1e-3


def test_image_constructors_build_unet_models(key):
    ddpm = M.ddpm_image((28, 28, 1), base=8, T=50, num_classes=10)
    sde = M.score_sde_image((32, 32, 3), base=8, sde="ve")
    assert ddpm.data_range == "unit" and ddpm.num_steps == 50 and ddpm.network.num_classes == 10
    assert isinstance(sde.sde, sch.VESDE) and sde.sde.sigma_max == 50.0
    batch = {"x": jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32), "cond": jax.ShapeDtypeStruct((2,), jnp.int32)}
    params = jax.eval_shape(ddpm.init, key, batch)
    loss, _ = jax.eval_shape(ddpm.loss, params, key, batch)
    assert loss.shape == ()
    with pytest.raises(ValueError, match="divisible by 2"):
        M.ddpm_image((30, 30, 1))


# ---------------------------------------------------------------------- classifier-free guidance
def _cond_ddpm(p_uncond=0.1):
    return M.ddpm_2d(hidden=(16,), emb_dim=8, T=10, num_classes=3, p_uncond=p_uncond)


def test_cfg_guidance_zero_is_the_conditional_path(key, rng):
    model = _cond_ddpm()
    x = jnp.asarray(rng.normal(size=(4, 2)), jnp.float32)
    t = jnp.array([0, 3, 5, 9], jnp.int32)
    y = jnp.array([0, 1, 2, 1], jnp.int32)
    params = model.init(key, {"x": x, "cond": y})
    cond = np.asarray(model.network.apply(params, x, t.astype(jnp.float32), y))
    uncond = np.asarray(model.network.apply(params, x, t.astype(jnp.float32), jnp.full((4,), 3, jnp.int32)))
    assert np.abs(cond - uncond).max() > 1e-4
    for g in (0.0, jnp.asarray(0.0)):  # Python 0 (one pass) and a traced 0 (two passes)
        got = np.asarray(model.eps_fn(params, cond=y, guidance=g)(x, t))
        np.testing.assert_allclose(got, cond, rtol=1e-5, atol=1e-5)
    got = np.asarray(model.eps_fn(params, cond=y, guidance=2.0)(x, t))
    np.testing.assert_allclose(got, 3.0 * cond - 2.0 * uncond, rtol=1e-5, atol=1e-5)
    # without labels the model is the null-label (unconditional) model
    np.testing.assert_allclose(np.asarray(model.eps_fn(params)(x, t)), uncond, rtol=1e-5, atol=1e-5)
    # guided sampling runs and differs from unguided
    sample = jax.jit(functools.partial(model.sample, sampler="ddim", steps=3, cond=1), static_argnames="num")
    s0, s3 = sample(params, key, 4, guidance=0.0), sample(params, key, 4, guidance=3.0)
    assert s0.shape == (4, 2) and np.abs(np.asarray(s3) - np.asarray(s0)).max() > 1e-4


def test_training_drops_labels_with_probability_p_uncond(key, rng):
    p = 0.3
    model = _cond_ddpm(p_uncond=p)
    n = 40000
    y = jnp.asarray(rng.integers(0, 3, size=n), jnp.int32)
    out = np.asarray(model.drop_labels(key, y))
    dropped = out == 3
    frac = dropped.mean()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), frac
    np.testing.assert_array_equal(out[~dropped], np.asarray(y)[~dropped])
    # loss uses it: with p_uncond = 1 the labels do not matter, with p_uncond = 0 they do
    x = _toy(key, 16)
    y1, y2 = jnp.zeros((16,), jnp.int32), jnp.full((16,), 2, jnp.int32)
    for prob, same in ((1.0, True), (0.0, False)):
        m = _cond_ddpm(p_uncond=prob)
        params = jax.jit(m.init)(key, {"x": x, "cond": y1})
        loss = jax.jit(m.loss)
        l1 = float(loss(params, key, {"x": x, "cond": y1})[0])
        l2 = float(loss(params, key, {"x": x, "cond": y2})[0])
        assert (abs(l1 - l2) < 1e-6) == same, (prob, l1, l2)


# ---------------------------------------------------------------------- log_prob
class AnalyticGaussianEps(nn.Module):
    """The exact noise prediction for data N(mu, s^2 I) under ``sde``: the network input is 999 t."""

    sde: object
    mu: tuple
    s: float

    @nn.compact
    def __call__(self, x, c, y=None):
        t = c / M.TIME_SCALE
        m, std = self.sde.marginal(t)
        m, std = m[:, None], std[:, None]
        var = m**2 * self.s**2 + std**2
        return std * (x - m * jnp.asarray(self.mu)) / var


def _np_marginal(sde, t):
    """float64 (mean_coef, std) of the SDE at time t (closed forms, independent of genjax)."""
    if isinstance(sde, sch.VESDE):
        return 1.0, sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t
    log_m = -0.25 * t**2 * (sde.beta_max - sde.beta_min) - 0.5 * t * sde.beta_min
    return math.exp(log_m), math.sqrt(1.0 - math.exp(2.0 * log_m))


def _np_normal_logpdf(x, mean, var):
    return np.sum(-0.5 * (x - mean) ** 2 / var - 0.5 * np.log(2 * math.pi * var), axis=-1)


@pytest.mark.parametrize("sde", [sch.VPSDE(), sch.VESDE(sigma_min=0.01, sigma_max=10.0)], ids=["vp", "ve"])
def test_score_sde_log_prob_matches_gaussian_density(sde, key, rng):
    """With the exact score of Gaussian data N(mu, s^2 I) the probability-flow ODE maps x
    affinely to z = m_T mu + sqrt(v_T / v_eps) (x - m_eps mu) (v_t the marginal variance), so
    the ODE estimate is log N(x; m_eps mu, v_eps) + log prior(z) - log N(z; m_T mu, v_T): the
    true density up to the prior's mismatch with the true time-1 marginal, computed here in
    float64. It is also close to the data density itself."""
    mu, s = np.array([0.5, -1.0]), 0.7
    model = M.ScoreSDE(AnalyticGaussianEps(sde, tuple(mu), s), (2,), sde)
    x = jnp.asarray(mu + 1.5 * s * rng.normal(size=(6, 2)), jnp.float32)
    params = model.init(key, x)
    got = np.asarray(jax.jit(model.log_prob)(params, key, x), np.float64)
    xx = np.asarray(x, np.float64)
    m0, s0 = _np_marginal(sde, model.eps)
    m1, s1 = _np_marginal(sde, 1.0)
    v0, v1 = m0**2 * s**2 + s0**2, m1**2 * s**2 + s1**2
    z = m1 * mu + math.sqrt(v1 / v0) * (xx - m0 * mu)
    prior_var = sde.sigma_max**2 if isinstance(sde, sch.VESDE) else 1.0
    want = _np_normal_logpdf(xx, m0 * mu, v0) + _np_normal_logpdf(z, 0.0, prior_var) - _np_normal_logpdf(z, m1 * mu, v1)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-4)
    data_logp = _np_normal_logpdf(xx, mu, s**2)
    tol = 0.05 if isinstance(sde, sch.VPSDE) else 1.0  # VE's N(0, 100 I) prior is far from N(mu, 100.5 I)
    assert np.abs(got - data_logp).max() < tol


def test_score_sde_unit_range_log_prob_adds_the_scaling_jacobian(key, rng):
    """Images are modelled as 2 x - 1: the density on [0, 1]^D gains D log 2."""
    sde = sch.VPSDE()
    net = AnalyticGaussianEps(sde, (0.2, -0.1), 0.5)
    unit = M.ScoreSDE(net, (2,), sde, data_range="unit")
    ident = M.ScoreSDE(net, (2,), sde)
    u = jnp.asarray(rng.uniform(0.1, 0.9, size=(4, 2)), jnp.float32)
    lp = functools.partial(M.ScoreSDE.log_prob, num_steps=20)
    got = np.asarray(jax.jit(lambda u: lp(unit, {}, key, u))(u))
    ref = np.asarray(jax.jit(lambda v: lp(ident, {}, key, v))(2.0 * u - 1.0))
    np.testing.assert_allclose(got, ref + 2 * math.log(2.0), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        unit.log_prob({}, key, u + 1.0)


def test_log_prob_finite_and_kinds(key):
    x = _toy(key, 4)
    ddpm, ncsn, sde = TINY["ddpm"](), TINY["ncsn"](), TINY["score_sde"]()
    assert (ddpm.log_prob_kind, ncsn.log_prob_kind, sde.log_prob_kind) == ("vlb", "none", "ode_estimate")
    p = jax.jit(ddpm.init)(key, x)

    @jax.jit
    def ddpm_eval(p, key, x):
        return ddpm.log_prob(p, key, x), ddpm.vlb(p, key, x), ddpm.vlb_bits_per_dim(p, key, x)

    lp, terms, bpd = jax.tree_util.tree_map(np.asarray, ddpm_eval(p, key, x))
    assert lp.shape == (4,) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp, -terms["total"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(terms["total"], terms["prior"] + terms["diffusion"] + terms["decoder"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bpd, terms["total"] / (2 * math.log(2)), rtol=1e-5, atol=1e-5)
    p = jax.jit(sde.init)(key, x)
    lp = np.asarray(jax.jit(functools.partial(sde.log_prob, num_steps=10))(p, key, x))
    assert lp.shape == (4,) and np.all(np.isfinite(lp))
    with pytest.raises(ValueError, match="NCSN defines no likelihood"):
        ncsn.log_prob({}, key, x)


def test_denoise_trajectory_shapes(key):
    model = TINY["ddpm"]()
    x = _toy(key, 3)
    params = jax.jit(model.init)(key, x)
    out = jax.jit(functools.partial(model.denoise_trajectory, num_frames=4))(params, key, x)
    assert out["t"].tolist() == [0, 6, 13, 19]
    assert out["x_t"].shape == (4, 3, 2) and out["x0_hat"].shape == (4, 3, 2)


# ---------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(key):
    model = TINY["ddpm"]()
    x = _toy(key, 4)
    params = jax.jit(model.init)(key, x)
    with pytest.raises(ValueError, match=r"batch must have shape \(batch, 2\)"):
        model.loss(params, key, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x must have rank 2"):
        model.check_batch(jnp.zeros((4, 2, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        model.check_batch(x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"steps must be <= T=20"):
        model.sample(params, key, 2, sampler="ddim", steps=21)
    with pytest.raises(ValueError, match="runs all T=20 steps"):
        model.sample(params, key, 2, sampler="ddpm", steps=5)
    with pytest.raises(ValueError, match="unknown sampler 'unipc'"):
        model.sample(params, key, 2, sampler="unipc")
    with pytest.raises(ValueError, match="unknown sampler 'ddpm'"):
        TINY["score_sde"]().sample(params, key, 2, sampler="ddpm")
    with pytest.raises(ValueError, match="cond: this model takes no condition"):
        model.sample(params, key, 2, cond=jnp.array([0, 1]))
    with pytest.raises(ValueError, match="num must be a positive integer"):
        model.sample(params, key, 0)
    with pytest.raises(ValueError, match="unknown data_range"):
        M.DDPM(model.network, (2,), model.schedule, data_range="minus_one_one")

    cond = _cond_ddpm()
    cp = jax.jit(cond.init)(key, {"x": x, "cond": jnp.zeros((4,), jnp.int32)})
    with pytest.raises(ValueError, match=r"batch\['cond'\] must be int class labels in \[0, 3\)"):
        cond.loss(cp, key, {"x": x, "cond": jnp.array([0, 1, 2, 3])})
    with pytest.raises(ValueError, match=r"needs a dict batch"):
        cond.check_batch(x)
    with pytest.raises(ValueError, match=r"cond must be int class labels in \[0, 3\) of shape \(2,\)"):
        cond.sample(cp, key, 2, cond=jnp.array([0, 7]))

    img = M.DDPM(TinyImageNet(), (8, 8, 1), sch.linear_schedule(5), data_range="unit")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] for data_range='unit'"):
        img.check_batch(jnp.full((2, 8, 8, 1), 2.0))
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        M.NCSN(model.network, (2,), jnp.array([0.1, 1.0]))


# ---------------------------------------------------------------------- MLP denoiser on images
def test_ddpm_mlp_on_images_equals_the_flat_model_on_flattened_data(key, rng):
    """Issue 17 C/E: ``ddpm_mlp((H, W, C), data_range="unit")`` (the denoiser flattens inside)
    gives the flat model's params, loss, log_prob and samples on hand-flattened data -- what
    compare's FlatModel wrapper did."""
    img = M.ddpm_mlp((4, 4, 1), hidden=(16,), emb_dim=8, T=10, data_range="unit", num_levels=17)
    flat = M.ddpm_mlp((16,), hidden=(16,), emb_dim=8, T=10, data_range="unit", num_levels=17)
    x = jnp.asarray(rng.integers(0, 17, size=(3, 4, 4, 1)) / 16.0, jnp.float32)
    xf = x.reshape(3, 16)
    params = flat.init(key, xf)
    chex_tree = jax.tree_util.tree_structure
    assert chex_tree(img.init(key, x)) == chex_tree(params)
    k = jax.random.fold_in(key, 1)
    np.testing.assert_array_equal(np.asarray(img.loss(params, k, x)[0]), np.asarray(flat.loss(params, k, xf)[0]))
    np.testing.assert_allclose(np.asarray(img.log_prob(params, k, x)), np.asarray(flat.log_prob(params, k, xf)), rtol=1e-6)
    s_img = np.asarray(img.sample(params, k, 2, sampler="ddim", steps=3))
    assert s_img.shape == (2, 4, 4, 1)
    np.testing.assert_array_equal(s_img, np.asarray(flat.sample(params, k, 2, sampler="ddim", steps=3)).reshape(2, 4, 4, 1))
