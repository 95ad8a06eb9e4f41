"""StyleGAN2's training pieces against independent computations: path lengths against
the full Jacobian (jax.jacfwd), the path-length penalty against numpy, lazy R1 and path
length weighted by their interval, the running statistics (step, pl_mean, w_avg) that
the two-player step advances, truncation about the tracked w_avg, the skip output sum,
and DCGAN's N(0, 0.02) initialisation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.gan as gan
from genjax.nn.stylegan_layers import upsample_2x
from genjax.train.adversarial import make_adversarial_step
from genjax.train.state import TrainState


def _tiny(**kw):
    opts = dict(latent_dim=3, w_dim=4, mapping_layers=2, channels=(4, 4), d_channels=(4,))
    return gan.stylegan((8, 8, 1), **{**opts, **kw})


@pytest.fixture(scope="module")
def tiny():
    model = _tiny()
    return model, jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((4, 8, 8, 1)))


def _with_stats(params, **stats):
    g = params["generator"]
    return {**params, "generator": {**g, "stats": {**g["stats"], **{k: jnp.asarray(v, jnp.float32) for k, v in stats.items()}}}}


def test_constructor_defaults_are_the_papers(tiny):
    model, params = tiny
    g, d = model.generator, model.discriminator
    assert (g.mapping_lr_mul, g.equalized_lr, g.architecture, g.blur, g.w_avg_beta) == (0.01, True, "skip", True, 0.995)
    assert gan.stylegan((8, 8, 1)).generator.mapping_layers == 8
    assert (d.mbstd_group_size, d.mbstd_channels, d.equalized_lr) == (4, 1, True)
    assert (model.r1_weight, model.r1_interval, model.pl_weight, model.pl_interval) == (gan.R1_GAMMA, 16, 2.0, 4)
    assert set(params["generator"]["stats"]) == {"w_avg", "step", "pl_mean"}


def test_path_lengths_match_the_jacobian(tiny, rng):
    model, params = tiny
    key = jax.random.PRNGKey(1)
    ws = jnp.asarray(rng.standard_normal((2, 4, 4)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((2, 8, 8, 1)) / 8.0, jnp.float32)
    synth = lambda v: model.synthesize(params, key, v)
    got = jax.jit(lambda v, n: gan.path_lengths(synth, v, n))(ws, y)
    jac = np.asarray(jax.jacfwd(synth)(ws), np.float64)  # (2, 8, 8, 1, 2, 4, 4)
    yy = np.asarray(y, np.float64)
    for i in range(2):
        g = np.einsum("hwc,hwclk->lk", yy[i], jac[i, :, :, :, i])  # J_i^T y_i, (layers, w_dim)
        np.testing.assert_allclose(got[i], np.sqrt(np.mean(np.sum(g**2, axis=1))), rtol=2e-4)
    assert np.abs(jac[0, :, :, :, 1]).max() == 0.0  # examples independent (no cross terms)


def test_path_length_penalty_matches_numpy(rng):
    a = rng.uniform(0.5, 2.0, 6)
    per, mean = gan.path_length_penalty(jnp.asarray(a), jnp.asarray(1.3), decay=0.01)
    want_mean = 1.3 + 0.01 * (a.mean() - 1.3)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    # (a - mean)^2 in float32: a - mean carries ~1e-7 absolute error, which is a large relative error
    # when a lands next to the mean; the absolute tolerance bounds that cancellation, no more.
    np.testing.assert_allclose(per, (a - want_mean) ** 2, rtol=1e-5, atol=1e-8)


def test_lazy_r1_is_taken_every_interval_steps_with_the_rescaled_weight(tiny, rng):
    model, params = tiny
    x = jnp.asarray(rng.uniform(0, 1, (4, 8, 8, 1)), jnp.float32) * 2 - 1  # networks space == data space here
    key = jax.random.PRNGKey(2)
    loss = jax.jit(lambda p: model.d_loss(p, key, x))
    on, m_on = loss(_with_stats(params, step=32))  # 32 % 16 == 0
    off, m_off = loss(_with_stats(params, step=33))
    critic = lambda v: model.critic(params, v)
    grads = np.asarray(jax.grad(lambda v: jnp.sum(critic(v)))(x), np.float64)  # R1 of the summed logits
    r1 = np.sum(grads.reshape(4, -1) ** 2, axis=1)
    np.testing.assert_allclose(m_on["r1"], r1.mean(), rtol=1e-4)
    assert float(m_off["r1"]) == 0.0
    # on a regularisation step the weight is interval * gamma / 2: gamma / 2 on average
    np.testing.assert_allclose(on - off, 16 * 0.5 * gan.R1_GAMMA * r1.mean(), rtol=1e-3, atol=1e-6)


def test_lazy_path_length_term_and_its_running_mean(tiny):
    model, params = tiny
    key = jax.random.PRNGKey(3)
    batch = jnp.zeros((4, 8, 8, 1))
    loss = jax.jit(lambda p: model.g_loss(p, key, batch))
    on, m_on = loss(_with_stats(params, step=8, pl_mean=0.5))
    off, m_off = loss(_with_stats(params, step=9, pl_mean=0.5))
    np.testing.assert_allclose(on - off, 4 * 2.0 * m_on["pl_penalty"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m_on["pl_mean"], 0.5 + 0.01 * (m_on["pl_length"] - 0.5), rtol=1e-5)
    assert float(m_off["pl_mean"]) == 0.5 and float(m_off["pl_penalty"]) == 0.0
    np.testing.assert_allclose(off, m_off["g_loss"], rtol=1e-6)


def test_update_stats_advances_step_pl_mean_and_w_avg(tiny):
    model, params = tiny
    prev = _with_stats(params, step=5, pl_mean=0.25, w_avg=[1.0, -1.0, 0.5, 0.0])["generator"]
    # whatever the optimizer did to the statistics, they are computed from the previous ones
    updated = {**prev, "stats": jax.tree_util.tree_map(lambda a: a + 100.0, prev["stats"])}
    key = jax.random.PRNGKey(4)
    new = model.update_stats(prev, updated, key, jnp.zeros((6, 8, 8, 1)), {"pl_mean": jnp.asarray(0.7)})
    assert float(new["stats"]["step"]) == 6.0
    np.testing.assert_allclose(new["stats"]["pl_mean"], 0.7)
    w = np.asarray(model.generator.apply(prev, model.draw_latent(key, 6), method="mapping"), np.float64)
    want = w.mean(0) + 0.995 * (np.array([1.0, -1.0, 0.5, 0.0]) - w.mean(0))
    np.testing.assert_allclose(new["stats"]["w_avg"], want, rtol=1e-5, atol=1e-6)
    assert new["params"] is updated["params"]


def test_the_adversarial_step_advances_the_statistics(tiny):
    model, params = tiny
    opt = gan.GANOptimizer(generator=optax.adam(1e-3), discriminator=optax.adam(1e-3))
    state = TrainState.create(params, opt, jax.random.PRNGKey(5))
    step = jax.jit(make_adversarial_step(model, opt))
    x = jnp.full((4, 8, 8, 1), 0.5)
    for _ in range(2):
        state, metrics = step(state, x)
    stats = state.params["generator"]["stats"]
    assert float(stats["step"]) == 2.0
    assert float(stats["pl_mean"]) > 0.0  # the step-0 path lengths entered the mean
    assert np.abs(np.asarray(stats["w_avg"])).max() > 0.0
    assert bool(metrics["finite"])


def test_truncation_centres_on_the_tracked_w_avg(tiny, rng):
    model, params = tiny
    v = rng.standard_normal(4)
    p = _with_stats(params, w_avg=v)
    key = jax.random.PRNGKey(6)
    trunc = model.sample(p, key, 3, truncation_psi=0.0, noise=False)
    ref = model.to_data(model.synthesize(p, key, jnp.broadcast_to(jnp.asarray(v, jnp.float32), (1, 4, 4)), noise=False))
    np.testing.assert_allclose(trunc, np.broadcast_to(ref, trunc.shape), rtol=1e-5, atol=1e-6)


def test_skip_output_adds_the_upsampled_coarse_image(tiny, rng):
    model, params = tiny
    g = params["generator"]
    zero = lambda tree: jax.tree_util.tree_map(jnp.zeros_like, tree)
    silent = {**g, "params": {**g["params"], "to_rgb_0": zero(g["params"]["to_rgb_0"]), "rgb_bias_0": jnp.zeros(1)}}
    c = 0.3
    lit = {**silent, "params": {**silent["params"], "rgb_bias_0": jnp.full((1,), c)}}
    orig = dataclasses.replace(model.generator, architecture="orig")
    ws = jnp.asarray(rng.standard_normal((2, 4, 4)), jnp.float32)
    run = lambda gen, v: gen.apply(v, ws, False, method="synthesis")
    # with the coarse to_rgb silenced, "skip" is "orig" (same finest to_rgb)
    np.testing.assert_allclose(run(model.generator, silent), run(orig, silent), rtol=1e-5, atol=1e-6)
    added = np.arctanh(np.asarray(run(model.generator, lit), np.float64)) - np.arctanh(np.asarray(run(orig, silent), np.float64))
    coarse = np.full((2, 4, 4, 1), c)
    np.testing.assert_allclose(added, upsample_2x(jnp.asarray(coarse)), rtol=1e-3, atol=1e-4)
    assert added[0, 0, 0, 0] < c - 0.05 < c - 1e-3 < added[0, 3, 3, 0] + 1e-3  # the border sees the zero padding


def test_dcgan_init_is_the_papers(key):
    model = gan.dcgan((8, 8, 1), latent_dim=8, width=64)
    p = jax.jit(model.init)(key, jnp.zeros((2, 8, 8, 1)))
    kernels = [np.asarray(a) for path, a in jax.tree_util.tree_leaves_with_path(p) if "kernel" in jax.tree_util.keystr(path)]
    allk = np.concatenate([k.ravel() for k in kernels])
    assert abs(allk.std() - 0.02) < 0.002 and abs(allk.mean()) < 0.002
    scale = np.asarray(p["generator"]["params"]["norm_0"]["scale"])
    assert abs(scale.mean() - 1.0) < 0.01 and 0.01 < scale.std() < 0.03
    lecun = gan.dcgan((8, 8, 1), latent_dim=8, width=64, weight_init="lecun")
    q = jax.jit(lecun.init)(key, jnp.zeros((2, 8, 8, 1)))
    np.testing.assert_array_equal(q["generator"]["params"]["norm_0"]["scale"], 1.0)
    with pytest.raises(ValueError, match="weight_init"):
        gan.dcgan((8, 8, 1), weight_init="xavier")


def test_xla_branch_equals_lax_cond_in_value_and_gradient():
    from genjax import _xla

    def f(x, pred, pick):
        return pick(pred, lambda: jnp.sum(jnp.sin(x) * 3.0), lambda: jnp.sum(x**2))

    x = jnp.linspace(-1.0, 1.0, 5)
    for pred in (True, False):
        p = jnp.asarray(pred)
        np.testing.assert_allclose(f(x, p, _xla.branch), f(x, p, jax.lax.cond), rtol=1e-6)
        np.testing.assert_allclose(
            jax.grad(f)(x, p, _xla.branch), jax.grad(f)(x, p, jax.lax.cond), rtol=1e-6
        )
