"""Data-parallel training on a 4-device mesh, and mixed precision.

The mesh tests need 4 devices, which on CPU exist only if
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` is set before JAX is imported.
So one subprocess (this file run as a script) does all the mesh work once and saves
its results; the tests compare them. The reference of every sharded result is the
same computation on one device (device 0 of the same process), to an explicit
tolerance: the sharded run sums per-device partial results in another order.
The mixed-precision tests run in this process.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.data
from genjax.nn.unet import UNet
from genjax.train import fit, with_compute_dtype
from genjax.vae import conv_vae, mlp_vae

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

NUM_DEVICES = 4
# sharded vs one device: same function, sums in another order (measured max |diff| ~3e-8)
RTOL, ATOL = 1e-5, 1e-6


def _flat(prefix, tree, out):
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
        out[prefix + "/" + jax.tree_util.keystr(path)] = np.asarray(leaf)


def _worker(out_dir: str) -> None:
    """Runs in the subprocess with 4 CPU devices; writes ``results.npz`` and ``info.json``."""
    from genjax import gan
    from genjax.train import (
        TrainState, data_mesh, make_sharded_step, make_train_step, replicate, shard_batch, with_transform,
    )

    assert jax.device_count() == NUM_DEVICES, jax.devices()
    out = pathlib.Path(out_dir)
    arrays, info = {}, {}
    mesh = data_mesh(NUM_DEVICES)
    x = np.array(genjax.data.load_digits("train").x[:32])
    vae = mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(8,))

    # one step, sharded vs single device (the same un-jitted step function)
    batch = x[:8]
    tx = optax.adam(1e-2)
    params = vae.init(jax.random.PRNGKey(0), jnp.asarray(batch))
    step = make_train_step(with_transform(vae.loss, genjax.data.dynamic_binarize), tx, jit=False)
    _flat("step_init", params, arrays)
    single, metrics = jax.jit(step)(TrainState.create(params, tx, jax.random.PRNGKey(1)), jnp.asarray(batch))
    _flat("step_single", (single.params, single.opt_state, metrics["loss"]), arrays)
    sharded_step = make_sharded_step(step, mesh)
    state_r = replicate(TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)
    batch_s = shard_batch(batch, mesh)
    info["batch_shard_shapes"] = sorted({tuple(s.data.shape) for s in batch_s.addressable_shards})
    info["batch_devices"] = len(batch_s.sharding.device_set)
    with jax.set_mesh(mesh):
        hlo = sharded_step.__wrapped__.lower(state_r, batch_s).compile().as_text()
    info["hlo_all_reduce"] = "all-reduce" in hlo
    sharded, metrics_s = sharded_step(state_r, batch_s)
    info["state_devices"] = len(jax.tree_util.tree_leaves(sharded.params)[0].sharding.device_set)
    info["state_replicated"] = all(l.sharding.is_fully_replicated for l in jax.tree_util.tree_leaves(sharded))
    _flat("step_sharded", (sharded.params, sharded.opt_state, metrics_s["loss"]), arrays)

    # fit: 4 steps with and without the mesh (checkpoints at 2 and 4); then each run's
    # step-2 checkpoint resumed in the other layout, to step 4
    kw = dict(batch_size=8, seed=3, transform=genjax.data.dynamic_binarize, log_every=2, steps_per_dispatch=2,
              checkpoint_every=2, ema_decay=0.9, progress=False)
    runs = {
        "ref": fit(vae, x, num_steps=4, out_dir=out / "ref", **kw),
        "mesh": fit(vae, x, num_steps=4, out_dir=out / "mesh", mesh=mesh, **kw),
    }
    for name, source, second in (("mesh_then_single", "mesh", None), ("single_then_mesh", "ref", mesh)):
        d = out / name
        shutil.copytree(out / source, d)
        shutil.rmtree(d / "checkpoints" / "4")  # as if the run had stopped after step 2
        runs[name] = fit(vae, x, num_steps=4, out_dir=d, resume=True, mesh=second, **kw)
        info[name + "_resumed_from"] = runs[name].resumed_from
        info[name + "_devices"] = len(jax.tree_util.tree_leaves(runs[name].state.params)[0].sharding.device_set)
        info[name + "_log_steps"] = [json.loads(l)["step"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    for name, r in runs.items():
        _flat("fit_" + name, (r.state.params, r.state.ema_params, r.state.opt_state, r.state.key), arrays)
        arrays["loss_" + name] = np.array([h["loss"] for h in r.history if h["kind"] == "train"])

    # a model with its own two-player step
    g = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,))
    y = np.random.default_rng(0).uniform(-0.9, 0.9, (32, 2)).astype(np.float32)
    gk = dict(num_steps=2, batch_size=8, optimizer=gan.gan_adam(1e-3), seed=0, steps_per_dispatch=2,
              log_every=2, checkpoint_every=None, progress=False)
    for name, m in (("gan_ref", None), ("gan_mesh", mesh)):
        r = fit(g, y, mesh=m, **gk)
        _flat(name, r.state.params, arrays)
        arrays["loss_" + name] = np.array([[h["d_loss"], h["g_loss"]] for h in r.history])

    # batch size not divisible by the data axis: an error before any work
    bad_dir = out / "bad"
    try:
        fit(vae, x, num_steps=2, mesh=mesh, out_dir=bad_dir, **{**kw, "batch_size": 6})
        info["bad_batch_error"] = None
    except ValueError as e:
        info["bad_batch_error"] = str(e)
    info["bad_batch_dir_created"] = bad_dir.exists()
    np.savez(out / "results.npz", **arrays)
    (out / "info.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def mesh_run(tmp_path_factory, run_on_host_devices):
    out = tmp_path_factory.mktemp("mesh")
    run_on_host_devices(__file__, out, NUM_DEVICES)
    with np.load(out / "results.npz") as z:
        arrays = dict(z)
    return arrays, json.loads((out / "info.json").read_text())


def _group(arrays, prefix):
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _assert_close(a, b, rtol=RTOL, atol=ATOL):
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def test_sharded_step_matches_single_device_step(mesh_run):
    arrays, info = mesh_run
    assert info["batch_devices"] == NUM_DEVICES
    assert info["batch_shard_shapes"] == [[8 // NUM_DEVICES, 8, 8, 1]]  # each device holds 2 examples
    assert info["hlo_all_reduce"]  # the gradient is reduced across devices, not computed on one
    assert info["state_devices"] == NUM_DEVICES and info["state_replicated"]
    single, sharded = _group(arrays, "step_single"), _group(arrays, "step_sharded")
    _assert_close(sharded, single)
    # the step moved the parameters (so the comparison is not one of initial values)
    init = _group(arrays, "step_init")
    assert max(np.abs(single["[0]" + k] - v).max() for k, v in init.items()) > 1e-3


def test_fit_on_mesh_matches_fit_on_one_device(mesh_run):
    arrays, _ = mesh_run
    ref = _group(arrays, "fit_ref")
    _assert_close(_group(arrays, "fit_mesh"), ref)
    np.testing.assert_allclose(arrays["loss_mesh"], arrays["loss_ref"], rtol=RTOL)
    assert arrays["loss_ref"].shape == (2,)
    # the train key is an integer: exactly equal
    key = [k for k in ref if k.startswith("[3]")]
    assert key and all(np.array_equal(_group(arrays, "fit_mesh")[k], ref[k]) for k in key)


@pytest.mark.parametrize("name", ["mesh_then_single", "single_then_mesh"])
def test_checkpoint_moves_between_mesh_and_one_device(mesh_run, name):
    arrays, info = mesh_run
    assert info[name + "_resumed_from"] == 2
    assert info[name + "_devices"] == (1 if name == "mesh_then_single" else NUM_DEVICES)
    assert info[name + "_log_steps"] == [2, 4]  # one record per log point, none lost or repeated
    _assert_close(_group(arrays, "fit_" + name), _group(arrays, "fit_ref"))
    np.testing.assert_allclose(arrays["loss_" + name], arrays["loss_ref"], rtol=RTOL)


def test_two_player_gan_step_on_mesh(mesh_run):
    arrays, _ = mesh_run
    _assert_close(_group(arrays, "gan_mesh"), _group(arrays, "gan_ref"))
    np.testing.assert_allclose(arrays["loss_gan_mesh"], arrays["loss_gan_ref"], rtol=RTOL)


def test_batch_not_divisible_by_data_axis_is_a_clear_error(mesh_run):
    _, info = mesh_run
    msg = info["bad_batch_error"]
    assert msg is not None and "batch_size=6" in msg and "divisible" in msg and str(NUM_DEVICES) in msg
    assert not info["bad_batch_dir_created"]  # raised before any work


def test_mesh_argument_checked():
    x = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        fit(mlp_vae(data_shape=(2,), latent_dim=1, hidden=(4,), likelihood="gaussian"), x,
            num_steps=1, batch_size=4, mesh="data", progress=False)
    bad = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match="axis named 'data'"):
        fit(mlp_vae(data_shape=(2,), latent_dim=1, hidden=(4,), likelihood="gaussian"), x,
            num_steps=1, batch_size=4, mesh=bad, progress=False)


# --- mixed precision -------------------------------------------------------------------------------

def tiny_conv_vae(**kw):
    return conv_vae((8, 8, 1), latent_dim=2, features=(8,), hidden=16, **kw)


def test_bf16_conv_vae_loss_close_to_f32_and_grads_f32():
    x = jnp.asarray(genjax.data.load_digits("train").x[:8])
    x = (x > 0.5).astype(jnp.float32)
    f32 = tiny_conv_vae()
    bf16 = with_compute_dtype(f32, "bfloat16")
    assert bf16.encoder.dtype == jnp.bfloat16 and f32.encoder.dtype is None
    params = f32.init(jax.random.PRNGKey(0), x)
    key = jax.random.PRNGKey(1)
    grad32 = jax.jit(jax.value_and_grad(lambda p: f32.loss(p, key, x)[0]))
    grad16 = jax.jit(jax.value_and_grad(lambda p: bf16.loss(p, key, x)[0]))
    (l32, g32), (l16, g16) = grad32(params), grad16(params)
    assert l16.dtype == jnp.float32
    np.testing.assert_allclose(l16, l32, rtol=2e-2)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(g16))
    a, b = (np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(g)]) for g in (g16, g32))
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99
    # the convolutions really run in bfloat16 (and not in the float32 model)
    conv_dtypes = lambda m: {str(e.outvars[0].aval.dtype) for e in jax.make_jaxpr(lambda p: m.loss(p, key, x))(params).jaxpr.eqns
                             if e.primitive.name == "conv_general_dilated"}
    assert conv_dtypes(bf16) == {"bfloat16"} and conv_dtypes(f32) == {"float32"}


def test_fit_bf16_keeps_f32_params_close_to_f32_run():
    x = (np.array(genjax.data.load_digits("train").x[:16]) > 0.5).astype(np.float32)
    kw = dict(num_steps=2, batch_size=8, learning_rate=1e-3, seed=0, steps_per_dispatch=2, log_every=2,
              checkpoint_every=None, progress=False)
    r32 = fit(tiny_conv_vae(), x, **kw)
    r16 = fit(tiny_conv_vae(), x, compute_dtype="bfloat16", **kw)
    leaves = jax.tree_util.tree_leaves((r16.state.params, r16.state.opt_state))
    assert all(l.dtype in (jnp.float32, jnp.int32) for l in leaves)  # master params and Adam moments f32
    np.testing.assert_allclose(r16.history[-1]["loss"], r32.history[-1]["loss"], rtol=2e-2)
    # Adam moves each parameter by at most ~lr per step in either run
    for a, b in zip(jax.tree_util.tree_leaves(r16.state.params), jax.tree_util.tree_leaves(r32.state.params)):
        np.testing.assert_allclose(a, b, atol=2 * 2 * 1e-3 + 1e-6)
    with pytest.raises(ValueError, match="compute_dtype"):
        fit(tiny_conv_vae(), x, compute_dtype="int8", **kw)
    with pytest.raises(ValueError, match="compute_dtype=bfloat16: VAE has no network"):
        fit(mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(8,)), x, compute_dtype="bfloat16", **kw)


def test_bf16_unet_close_to_f32():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 1))
    t = jnp.array([0.1, 0.7])
    net32, net16 = UNet(base=8, channel_mult=(1,)), UNet(base=8, channel_mult=(1,), dtype=jnp.bfloat16)
    params = net32.init(jax.random.PRNGKey(1), x, t)
    shapes16 = jax.eval_shape(net16.init, jax.random.PRNGKey(1), x, t)
    assert jax.tree_util.tree_structure(shapes16) == jax.tree_util.tree_structure(params)
    assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(shapes16))  # params stay f32
    # the output conv starts at zero: perturb every parameter so the output is not trivially 0
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = jax.tree_util.tree_unflatten(tree, [l + 0.1 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])
    y32, y16 = jax.jit(net32.apply)(params, x, t), jax.jit(net16.apply)(params, x, t)
    assert y16.dtype == jnp.float32 and y16.shape == y32.shape == x.shape
    scale = float(jnp.std(y32))
    assert scale > 1e-2
    # bf16 rounds to 2**-8 relative per op; through the ~15 layers of a 2-level UNet the
    # measured relative L2 error was 0.017-0.021 over three parameter draws, the worst
    # element 5-7% of std(y); this 1-level one has fewer layers
    rel = float(jnp.linalg.norm(y16 - y32) / jnp.linalg.norm(y32))
    assert 1e-4 < rel < 0.04  # > 0: the bf16 network really rounds
    np.testing.assert_allclose(y16, y32, atol=0.15 * scale, rtol=0)


if __name__ == "__main__":
    _worker(sys.argv[1])
