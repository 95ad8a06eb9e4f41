"""Train-step factories against hand-written updates (no model: a keyed least-squares loss)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.train import TrainState, make_multi_step, make_train_step, with_transform

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")


def loss_fn(params, key, batch):
    """Least squares plus a key-dependent term, so the step key matters."""
    pred = batch["x"] @ params["w"] + params["b"]
    noise = jax.random.normal(key, params["w"].shape)
    loss = jnp.mean(jnp.square(pred - batch["y"])) + 0.1 * jnp.sum(noise * params["w"])
    return loss, {"mse": jnp.mean(jnp.square(pred - batch["y"]))}


def make_params(rng):
    return {"w": jnp.asarray(rng.standard_normal(3), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def make_batch(rng, *lead):
    return {
        "x": jnp.asarray(rng.standard_normal((*lead, 4, 3)), jnp.float32),
        "y": jnp.asarray(rng.standard_normal((*lead, 4)), jnp.float32),
    }


def new_state(params, tx, key, **kw):
    """A state owning fresh copies of ``params`` and ``key`` (the jitted step donates its state)."""
    return TrainState.create(jax.tree_util.tree_map(jnp.array, params), tx, jnp.array(key), **kw)


def assert_trees_equal(a, b):
    chex.assert_trees_all_equal_structs(a, b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_step_does_not_retrace(rng, key):
    chex.clear_trace_counter()
    counted = chex.assert_max_traces(loss_fn, n=1)
    tx = optax.adam(1e-2)
    step = make_train_step(counted, tx)
    state = new_state(make_params(rng), tx, key)
    for _ in range(4):
        state, metrics = step(state, make_batch(rng))
    assert int(state.step) == 4
    assert bool(metrics["finite"])


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "nojit"])
def test_sgd_step_equals_manual_update(rng, key, jit):
    lr = 0.1
    params, batch = make_params(rng), make_batch(rng)
    state = new_state(params, optax.sgd(lr), key)
    state = state.replace(step=jnp.asarray(7, jnp.int32))  # the key is folded with the step
    run_key = np.asarray(state.key)  # the jitted step donates (deletes) ``state``
    k = jax.random.fold_in(state.key, 7)
    (want_loss, want_aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, k, batch)
    want = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    new, metrics = make_train_step(loss_fn, optax.sgd(lr), jit=jit)(state, batch)
    chex.assert_trees_all_close(new.params, want, rtol=1e-6, atol=1e-6)
    assert int(new.step) == 8
    np.testing.assert_allclose(metrics["loss"], want_loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(metrics["mse"], want_aux["mse"], rtol=1e-6, atol=1e-6)
    gnorm = np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in jax.tree_util.tree_leaves(grads)))
    np.testing.assert_allclose(metrics["grad_norm"], gnorm, rtol=1e-5, atol=1e-6)
    assert bool(metrics["finite"])
    np.testing.assert_array_equal(new.key, run_key)  # the run key itself never changes


def test_multi_step_equals_sequential_steps(rng, key):
    tx = optax.adam(0.05)
    params = make_params(rng)
    batches = make_batch(rng, 3)  # (K=3, 4, ...)
    single = make_train_step(loss_fn, tx, ema_decay=0.5, jit=False)
    multi = make_multi_step(single)

    state, metrics = multi(new_state(params, tx, key, ema=True), batches)
    seq = new_state(params, tx, key, ema=True)
    step = jax.jit(single)
    seq_metrics = []
    for i in range(3):
        seq, m = step(seq, jax.tree_util.tree_map(lambda a: a[i], batches))
        seq_metrics.append(m)

    assert int(state.step) == 3
    for name in ("loss", "mse", "grad_norm", "finite"):
        assert metrics[name].shape == (3,)
    chex.assert_trees_all_close(state.params, seq.params, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(state.opt_state, seq.opt_state, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(state.ema_params, seq.ema_params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], [m["loss"] for m in seq_metrics], rtol=1e-6, atol=1e-6)
    # each step saw its own batch and key: the losses are not all equal
    assert len(np.unique(np.asarray(metrics["loss"]))) == 3


def _conv_loss(params, key, batch):
    """A one-layer convolution: makes the step a 'conv step' for ``loop='auto'``."""
    y = jax.lax.conv_general_dilated(batch["img"], params["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    loss = jnp.mean(jnp.square(y - 1.0)) + 0.01 * jnp.sum(jax.random.normal(key, params["k"].shape) * params["k"])
    return loss, {}


@pytest.mark.parametrize("loop", ["scan", "python", "auto"])
def test_multi_step_loops_agree(rng, key, loop):
    """Every loop mode is the same K steps: bit-identical to K jitted single steps for
    ``python``, to rounding for ``scan``; for a conv step on CPU ``auto`` picks ``python``."""
    tx = optax.adam(0.05)
    params = {"k": jnp.asarray(rng.standard_normal((3, 3, 2, 2)), jnp.float32)}
    batches = {"img": jnp.asarray(rng.standard_normal((3, 2, 5, 5, 2)), jnp.float32)}
    single = make_train_step(_conv_loss, tx, jit=False)
    multi = make_multi_step(single, loop=loop)
    state, metrics = multi(new_state(params, tx, key), batches)
    seq, step = new_state(params, tx, key), jax.jit(single, donate_argnums=0)
    losses = []
    for i in range(3):
        seq, m = step(seq, jax.tree_util.tree_map(lambda a: a[i], batches))
        losses.append(float(m["loss"]))
    assert int(state.step) == 3 and metrics["loss"].shape == (3,)
    if loop == "auto":
        assert multi.loop() == ("python" if jax.default_backend() == "cpu" else "scan")
    if loop == "python" or (loop == "auto" and jax.default_backend() == "cpu"):
        chex.assert_trees_all_equal(state.params, seq.params)
        np.testing.assert_array_equal(metrics["loss"], losses)
    else:
        chex.assert_trees_all_close(state.params, seq.params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["loss"], losses, rtol=1e-5, atol=1e-6)


def test_auto_loop_scans_a_step_without_convolution(rng, key):
    tx = optax.sgd(0.1)
    multi = make_multi_step(make_train_step(loss_fn, tx, jit=False))
    assert multi.loop() is None  # decided on the first call
    multi(new_state(make_params(rng), tx, key), make_batch(rng, 2))
    assert multi.loop() == "scan"


def test_has_convolution_sees_nested_jaxprs():
    from genjax.train.step import has_convolution

    w = jnp.ones((3, 3, 1, 1))
    conv = lambda x: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = jnp.ones((1, 4, 4, 1))
    assert has_convolution(conv, x)
    assert has_convolution(lambda x: jax.lax.scan(lambda c, _: (conv(c), None), x, None, length=2)[0], x)
    assert has_convolution(lambda x: jax.lax.cond(True, conv, lambda v: v, x), x)
    assert has_convolution(jax.grad(lambda x: conv(x).sum()), x)
    assert not has_convolution(lambda x: jnp.tanh(x @ jnp.ones((1, 1))), x)


def test_multi_step_loop_argument_checked():
    single = make_train_step(loss_fn, optax.sgd(0.1), jit=False)
    with pytest.raises(ValueError, match="loop must be one of auto, scan, python, got 'fast'"):
        make_multi_step(single, loop="fast")
    with pytest.raises(ValueError, match="loop='python' needs jit=True"):
        make_multi_step(single, loop="python", jit=False)


def test_ema_follows_the_recurrence(rng, key):
    d, n = 0.8, 4
    tx = optax.sgd(0.1)
    params = make_params(rng)
    step = jax.jit(make_train_step(loss_fn, tx, ema_decay=d, jit=False))
    state = new_state(params, tx, key, ema=True)
    ema = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), params)
    for _ in range(n):
        state, _ = step(state, make_batch(rng))
        ema = jax.tree_util.tree_map(lambda e, p: d * e + (1 - d) * np.asarray(p, np.float64), ema, state.params)
    chex.assert_trees_all_close(state.ema_params, ema, rtol=1e-5, atol=1e-6)
    assert not np.allclose(state.ema_params["w"], state.params["w"], rtol=1e-3, atol=1e-3)


def test_ema_decay_out_of_range():
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
            make_train_step(loss_fn, optax.sgd(0.1), ema_decay=bad)


@pytest.mark.parametrize("skip", [True, False], ids=["skip", "apply"])
def test_nonfinite_loss(rng, key, skip):
    tx = optax.adam(0.1)
    params = make_params(rng)
    step = jax.jit(make_train_step(loss_fn, tx, ema_decay=0.9, skip_nonfinite=skip, jit=False))
    state = new_state(params, tx, key, ema=True)
    state, _ = step(state, make_batch(rng))  # one good step first, so opt_state is non-trivial
    before = jax.tree_util.tree_map(np.asarray, state)

    bad = make_batch(rng)
    bad["y"] = bad["y"].at[0].set(jnp.nan)
    state, metrics = step(state, bad)
    assert not bool(metrics["finite"])
    assert not np.isfinite(float(metrics["loss"]))
    assert int(state.step) == 2  # the counter advances either way
    if skip:
        assert_trees_equal(state.params, before.params)
        assert_trees_equal(state.opt_state, before.opt_state)
        assert_trees_equal(state.ema_params, before.ema_params)
        state, metrics = step(state, make_batch(rng))  # training goes on
        assert bool(metrics["finite"]) and np.isfinite(np.asarray(state.params["w"])).all()
    else:
        assert not np.isfinite(np.asarray(state.params["w"])).all()


def test_nonfinite_gradient_with_finite_loss(key):
    """sqrt(|w|) at w = 0: finite loss, infinite gradient -> finite=False."""

    def sqrt_loss(params, key, batch):
        return jnp.sum(jnp.sqrt(jnp.abs(params["w"]))), {}

    tx = optax.sgd(0.1)
    params = {"w": jnp.array([0.0, 1.0])}
    state = new_state(params, tx, key)
    new, metrics = make_train_step(sqrt_loss, tx, skip_nonfinite=True)(state, None)
    assert np.isfinite(float(metrics["loss"]))
    assert not bool(metrics["finite"])
    np.testing.assert_array_equal(new.params["w"], [0.0, 1.0])


def test_with_transform_splits_the_key(rng, key):
    seen = {}

    def recording_loss(params, k, batch):
        seen["loss_key"], seen["batch"] = k, batch
        return loss_fn(params, k, batch)

    transform = lambda k, batch: {**batch, "y": batch["y"] + jax.random.normal(k, batch["y"].shape)}
    assert with_transform(recording_loss, None) is recording_loss
    params, batch = make_params(rng), make_batch(rng)
    with_transform(recording_loss, transform)(params, key, batch)
    k_t, k_l = jax.random.split(key)
    np.testing.assert_array_equal(seen["loss_key"], k_l)
    np.testing.assert_allclose(seen["batch"]["y"], transform(k_t, batch)["y"], rtol=1e-6, atol=1e-6)


def test_create_owns_its_key_and_params(rng, key):
    """Two states made from the same caller arrays both survive a donating step: ``create``
    copies params and the key (a shared key buffer was deleted by the first donated step)."""
    params, tx = make_params(rng), optax.sgd(0.1)
    k = jnp.array(key)
    a, b = TrainState.create(params, tx, k), TrainState.create(params, tx, k)
    step = make_train_step(loss_fn, tx)
    batch = make_batch(rng, 4)
    a, _ = step(a, batch)
    b, _ = step(b, batch)  # would fail on a deleted buffer if the key were shared
    assert_trees_equal(a.params, b.params)
    np.testing.assert_array_equal(np.asarray(k), np.asarray(key))  # the caller's key is intact
