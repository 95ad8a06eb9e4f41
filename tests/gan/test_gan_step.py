"""The two-player train step: one trace, n_critic honoured, clipping, EMA, skipping
non-finite updates, and ``fit`` on 8gaussians."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.data
import genjax.gan as gan
import genjax.train
from genjax.train import TrainState, make_adversarial_step

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")


def tiny_gan(**overrides) -> gan.GAN:
    kwargs = dict(latent_dim=2, g_hidden=(8,), d_hidden=(8,))
    kwargs.update(overrides)
    return gan.mlp_gan(2, **kwargs)


def _x(rng, n=4):
    return jnp.asarray(rng.uniform(-0.9, 0.9, (n, 2)), jnp.float32)


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def _changed(a, b) -> bool:
    return any(not np.array_equal(u, v) for u, v in zip(_leaves(a), _leaves(b)))


def test_no_retrace_and_n_critic_updates_per_generator_update(key, rng):
    model = tiny_gan(loss_kind="wgan_gp", n_critic=3)
    tx = gan.gan_adam(1e-3)
    params = model.init(key, _x(rng))
    state = TrainState.create(params, tx, key)
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(make_adversarial_step(model, tx), n=1))
    for _ in range(3):
        state, metrics = step(state, _x(rng))  # new data, same shapes: no retrace
    assert int(state.step) == 3
    # Adam counts its own updates: 3 per generator update for the critic
    assert int(state.opt_state["discriminator"][0].count) == 9
    assert int(state.opt_state["generator"][0].count) == 3
    assert int(metrics["d_updates"]) == 3
    assert bool(metrics["finite"])
    assert {"loss", "d_loss", "g_loss", "grad_norm", "d_grad_norm", "d_real", "d_fake", "gp"} <= set(metrics)
    np.testing.assert_allclose(metrics["loss"], metrics["g_loss"], rtol=0, atol=0)
    assert _changed(state.params["generator"], params["generator"])
    assert _changed(state.params["discriminator"], params["discriminator"])


@pytest.mark.parametrize("n_critic", [1, 3])
def test_critic_updates_compile_without_a_loop(key, rng, n_critic):
    """The critic updates are straight-line code (XLA:CPU runs a conv weight gradient in a
    while loop 40-90x slower; even a one-trip scan made DCGAN's MNIST step 5x slower):
    the only while loops left are the PRNG's own, and the unrolled updates still equal
    n_critic sequential critic steps."""
    model = gan.dcgan((28, 28, 1), latent_dim=4, width=4, loss_kind="wasserstein", clip=0.5, n_critic=n_critic)
    tx = gan.GANOptimizer(generator=optax.sgd(0.1), discriminator=optax.sgd(0.1))
    batch = jnp.asarray(rng.uniform(-1, 1, (4, 28, 28, 1)), jnp.float32)
    params = model.init(key, batch)
    state = TrainState.create(params, tx, key)
    step = make_adversarial_step(model, tx)
    hlo = jax.jit(step).lower(state, batch).compile().as_text()
    loops = [line for line in hlo.splitlines() if " while(" in line]
    assert all("threefry" in line or "_uniform" in line for line in loops), loops
    if n_critic == 1:  # no scan at all (a one-trip scan's conv gradients ran 5x slower on CPU)
        assert "scan" not in str(jax.make_jaxpr(step)(state, batch))
    new_state, metrics = jax.jit(step)(state, batch)
    assert int(metrics["d_updates"]) == n_critic and metrics["d_loss"].shape == ()
    # the same critic updates by hand: plain SGD on d_loss with the step's keys, then clipping
    k_d = jax.random.split(jax.random.fold_in(state.key, state.step), 3)[1]
    d = params["discriminator"]
    for k in jax.random.split(k_d, n_critic):
        g = jax.grad(lambda dp: model.d_loss({"generator": params["generator"], "discriminator": dp}, k, batch)[0])(d)
        d = gan.clip_weights(jax.tree_util.tree_map(lambda p, q: p - 0.1 * q, d, g), clip=0.5)
    for a, b in zip(_leaves(new_state.params["discriminator"]), _leaves(d)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_wgan_clipping_keeps_critic_weights_in_range(key, rng):
    c = 0.05
    model = gan.wgan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), clip=c, n_critic=2)
    tx = gan.GANOptimizer(generator=optax.sgd(0.1), discriminator=optax.sgd(1.0))
    params = model.init(key, _x(rng))
    assert max(np.abs(p).max() for p in _leaves(params["discriminator"])) > c  # init exceeds c
    state, _ = jax.jit(make_adversarial_step(model, tx))(TrainState.create(params, tx, key), _x(rng))
    d = _leaves(state.params["discriminator"])
    assert max(np.abs(p).max() for p in d) == pytest.approx(c, rel=1e-6)  # within, and active
    assert all(np.all(np.abs(p) <= c) for p in d)


def test_split_critic_batch(key, rng):
    model = tiny_gan(loss_kind="hinge", n_critic=2, split_critic_batch=True)
    tx = gan.gan_adam(1e-3)
    state = TrainState.create(model.init(key, _x(rng)), tx, key)
    step = make_adversarial_step(model, tx)
    with pytest.raises(ValueError, match="batch size 5 is not divisible by n_critic=2"):
        jax.eval_shape(step, state, _x(rng, 5))
    out, metrics = jax.eval_shape(step, state, _x(rng, 6))
    assert metrics["d_loss"].shape == ()


def test_ema_and_skip_nonfinite(key, rng):
    model = tiny_gan()
    tx = gan.gan_adam(1e-2)
    params = model.init(key, _x(rng))
    step = jax.jit(make_adversarial_step(model, tx, ema_decay=0.25, skip_nonfinite=True))
    state, metrics = step(TrainState.create(params, tx, key, ema=True), _x(rng))
    assert bool(metrics["finite"])
    chex.assert_trees_all_close(
        state.ema_params["generator"],
        jax.tree_util.tree_map(lambda e, p: 0.25 * e + 0.75 * p, params["generator"], state.params["generator"]),
        rtol=1e-6,
        atol=1e-7,
    )
    chex.assert_trees_all_equal(state.ema_params["discriminator"], state.params["discriminator"])
    # a NaN batch (traced, so not caught by check_batch) makes the critic's update
    # non-finite: it is dropped (params and optimizer state kept); the generator's loss
    # does not read the real data, so its finite update still applies (per-player skipping)
    before = jax.tree_util.tree_map(np.asarray, state)
    state2, metrics = step(state, _x(rng).at[0, 0].set(jnp.nan))
    assert not bool(metrics["finite"]) and int(metrics["d_updates"]) == 0
    assert not np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    assert int(state2.step) == int(before.step) + 1
    chex.assert_trees_all_equal(state2.params["discriminator"], before.params["discriminator"])
    chex.assert_trees_all_equal(state2.opt_state["discriminator"], before.opt_state["discriminator"])
    assert _changed(state2.params["generator"], before.params["generator"])
    chex.assert_tree_all_finite(state2.params)


def test_fit_seed_gan_on_8gaussians(key, seed):
    data = genjax.data.get_toy_density("8gaussians").sample(key, 64)
    model = gan.seed_gan(data_dim=2, latent_dim=2)
    with pytest.raises(ValueError, match="output range"):  # radius 2 does not fit tanh
        genjax.train.fit(model, np.asarray(data), num_steps=1, batch_size=8, optimizer=gan.gan_adam(), progress=False)
    x = np.asarray(data) / 2.5  # into [-1, 1]
    init = model.init(jax.random.PRNGKey(seed), jnp.asarray(x[:8]))
    result = genjax.train.fit(
        model,
        x,
        num_steps=4,
        batch_size=8,
        optimizer=gan.gan_adam(1e-3),
        seed=seed,
        steps_per_dispatch=2,
        log_every=2,
        checkpoint_every=None,
        ema_decay=0.9,
        progress=False,
        init_params=init,
    )
    assert int(result.state.step) == 4 and len(result.history) == 2
    for rec in result.history:
        for k in ("loss", "d_loss", "g_loss", "grad_norm", "d_real", "d_fake", "p_real"):
            assert np.isfinite(rec[k]), (k, rec)
    assert _changed(result.state.params["generator"], init["generator"])
    assert _changed(result.state.params["discriminator"], init["discriminator"])
    samples = model.sample(result.state.ema_params, key, 16)
    assert samples.shape == (16, 2) and np.all(np.abs(np.asarray(samples)) <= 1.0)


def test_stylegan_step_is_finite_and_trains_both_players(key):
    model = gan.stylegan((8, 8, 1), latent_dim=3, w_dim=4, mapping_layers=1, channels=(4, 4), d_channels=(4,))
    x = jnp.asarray(np.linspace(-0.9, 0.9, 2 * 64).reshape(2, 8, 8, 1), jnp.float32)
    params = jax.jit(model.init)(key, x)
    tx = gan.gan_adam(1e-3)
    state, metrics = jax.jit(make_adversarial_step(model, tx))(TrainState.create(params, tx, key), x)
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["r1"]))
    assert _changed(state.params["generator"], params["generator"])
    assert _changed(state.params["discriminator"], params["discriminator"])


class ProtocolOnly:
    """A two-player model that is only the AdversarialModel protocol (no make_train_step):
    ``fit`` trains it with genjax.train's adversarial step."""

    def __init__(self, gan_model):
        self.gan = gan_model
        self.log_prob_kind = "none"
        self.n_critic = gan_model.n_critic

    def init(self, key, batch):
        return self.gan.init(key, batch)

    def d_loss(self, params, key, batch):
        return self.gan.d_loss(params, key, batch)

    def g_loss(self, params, key, batch):
        return self.gan.g_loss(params, key, batch)

    def sample(self, params, key, num):
        return self.gan.sample(params, key, num)


def test_fit_trains_a_protocol_only_adversarial_model_like_the_gan(rng):
    model = tiny_gan(loss_kind="wgan_gp", n_critic=2)
    x = np.asarray(rng.uniform(-0.9, 0.9, (32, 2)), np.float32)
    kw = dict(num_steps=3, batch_size=8, optimizer=gan.gan_adam(1e-2), seed=4, steps_per_dispatch=3, log_every=3,
              checkpoint_every=None, ema_decay=0.5, progress=False)
    assert genjax.train.is_adversarial(ProtocolOnly(model)) and not hasattr(ProtocolOnly(model), "make_train_step")
    a = genjax.train.fit(ProtocolOnly(model), x, **kw)
    b = genjax.train.fit(model, x, **kw)
    for u, v in zip(_leaves(a.state), _leaves(b.state)):
        np.testing.assert_array_equal(u, v)
    assert a.history[0]["d_updates"] == 2
    with pytest.raises(ValueError, match="one optimizer per player"):
        genjax.train.fit(ProtocolOnly(model), x, **dict(kw, optimizer=optax.adam(1e-3)))


def test_library_step_equals_the_straightforward_step(key, rng):
    """The library step (one critic call on ``[real; fake]``, metrics, checks) gives the params of
    the hand-written step of the same GAN (two critic calls, no metrics; ``benchmarks.breakdown``'s
    reference for its speed) to float tolerance, over three steps."""
    from benchmarks.breakdown import minimal_gan_step

    # A large step (lr 1e-2: differences would show). Adam's eps is 1e-3, not 1e-8: Adam divides by
    # sqrt(v), so with eps 1e-8 a weight whose gradient is ~1e-9 moves by +-lr on the sign of its
    # float rounding (seed 240432257: 1.9e-4 on 1 of 32768 after 3 steps); eps 1e-3 bounds that
    # gain at lr / eps = 10 while every weight with a real gradient still moves by ~lr.
    adam = optax.adam(1e-2, b1=0.5, eps=1e-3)
    model, tx = gan.seed_gan(16, 4), gan.GANOptimizer(generator=adam, discriminator=adam)
    x = jnp.asarray(rng.uniform(-1, 1, (8, 16)), jnp.float32)
    state = TrainState.create(model.init(key, x), tx, jax.random.fold_in(key, 1))
    lib, ref = jax.jit(genjax.train.make_step(model, tx)), jax.jit(minimal_gan_step(model, tx))
    ref_state = (state.params, state.opt_state, state.key, state.step)
    for _ in range(3):
        state, _ = lib(state, x)
        ref_state = ref(ref_state, x)
    assert _changed(state.params, TrainState.create(model.init(key, x), tx, key).params)
    # (float reassociation of one vs two critic calls moves weights by ~1e-7; one step moves each
    # by ~lr = 1e-2, so a wrong step is 100x outside the tolerance)
    chex.assert_trees_all_close(state.params, ref_state[0], rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(state.opt_state, ref_state[1], rtol=1e-4, atol=1e-4)


def test_shared_fakes_step_equals_the_step_that_recomputes_them(key, rng):
    """``share_fakes``: G(z) computed once and G's gradient pulled back through it gives the
    params of the hand-written step that draws one ``z`` and computes ``G(z)`` twice (the
    seed's PyTorch code), to float tolerance over three steps; and not those of the default
    step (two draws), so the comparison could fail."""
    from benchmarks.breakdown import minimal_gan_step

    adam = optax.adam(1e-2, b1=0.5, eps=1e-3)  # as in the test above (a large step; eps 1e-3)
    tx = gan.GANOptimizer(generator=adam, discriminator=adam)
    model = gan.seed_gan(16, 4, share_fakes=True)
    x = jnp.asarray(rng.uniform(-1, 1, (8, 16)), jnp.float32)
    state = TrainState.create(model.init(key, x), tx, jax.random.fold_in(key, 1))
    lib = jax.jit(genjax.train.make_step(model, tx))
    ref, two_draws = jax.jit(minimal_gan_step(model, tx, shared=True)), jax.jit(minimal_gan_step(model, tx))
    ref_state = other = (state.params, state.opt_state, state.key, state.step)
    for _ in range(3):
        state, _ = lib(state, x)
        ref_state, other = ref(ref_state, x), two_draws(other, x)
    chex.assert_trees_all_close(state.params, ref_state[0], rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_close(state.opt_state, ref_state[1], rtol=1e-4, atol=1e-4)
    gap = max(np.abs(a - b).max() for a, b in zip(_leaves(state.params["discriminator"]), _leaves(other[0]["discriminator"])))
    assert gap > 1e-3


@pytest.mark.parametrize("make", ["mlp", "dcgan"])
def test_shared_fakes_one_step_by_hand(key, rng, make):
    """One SGD step with ``share_fakes`` against the losses' own gradients: D's on the
    generator's draw of fakes (``train_fakes`` with the step's generator key), then G's
    from ``g_loss`` itself (which draws the same fakes again) against the updated D."""
    if make == "mlp":
        model, x = tiny_gan(share_fakes=True), _x(rng, 8)
    else:  # batch-norm generator, image fakes
        model = gan.dcgan((8, 8, 1), latent_dim=4, width=4, share_fakes=True)
        x = jnp.asarray(rng.uniform(-1, 1, (4, 8, 8, 1)), jnp.float32)
    lr = 0.1
    tx = gan.GANOptimizer(generator=optax.sgd(lr), discriminator=optax.sgd(lr))
    state = TrainState.create(model.init(key, x), tx, jax.random.fold_in(key, 1))
    new, metrics = jax.jit(genjax.train.make_step(model, tx))(state, x)
    _, k_d, k_g = jax.random.split(jax.random.fold_in(state.key, state.step), 3)
    p = state.params
    fakes = model.train_fakes(p, k_g, x)
    d_grad = jax.grad(lambda dp: model.d_loss({**p, "discriminator": dp}, jax.random.split(k_d, 1)[0], x, fakes=fakes)[0])(
        p["discriminator"])
    d_new = jax.tree_util.tree_map(lambda a, g: a - lr * g, p["discriminator"], d_grad)
    g_grad = jax.grad(lambda gp: model.g_loss({"generator": gp, "discriminator": d_new}, k_g, x)[0])(p["generator"])
    g_new = jax.tree_util.tree_map(lambda a, g: a - lr * g, p["generator"], g_grad)
    chex.assert_trees_all_close(new.params["discriminator"], d_new, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(new.params["generator"], g_new, rtol=1e-5, atol=1e-6)
    assert _changed(new.params["generator"], p["generator"]) and bool(metrics["finite"])


def test_shared_fakes_bad_settings_are_refused():
    with pytest.raises(ValueError, match="share_fakes=True .* needs n_critic=1"):
        tiny_gan(share_fakes=True, loss_kind="wgan_gp", n_critic=3)
    with pytest.raises(ValueError, match="share_fakes must be True or False"):
        tiny_gan(share_fakes=1)
    model = tiny_gan(share_fakes=True)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"fakes: expected shape \(4, 2\)"):
        model.d_loss(params, jax.random.PRNGKey(0), jnp.zeros((4, 2)), fakes=jnp.zeros((3, 2)))


@pytest.mark.parametrize("overrides", [dict(pack=2), dict(fourier_features=4, loss_kind="wgan_gp"), dict(r1_weight=1.0)])
def test_one_critic_call_scores_as_two(key, rng, overrides):
    """A row-wise discriminator scores ``[real; fake]`` in one call: the D loss, its metrics and
    its gradient equal those of two separate calls (a discriminator marked not row-wise)."""
    import dataclasses

    model = tiny_gan(**overrides)
    assert model.discriminator.rowwise
    two = dataclasses.replace(model, discriminator=model.discriminator.clone(parent=None))
    object.__setattr__(two.discriminator, "rowwise", False)
    assert not two.discriminator.rowwise and model.discriminator.rowwise
    x = _x(rng, 8)
    params = model.init(key, x)
    one_out = jax.value_and_grad(model.d_loss, has_aux=True)(params, key, x)
    two_out = jax.value_and_grad(two.d_loss, has_aux=True)(params, key, x)
    chex.assert_trees_all_close(one_out, two_out, rtol=1e-5, atol=1e-6)
