"""The ``fit`` loop: bit-identical resume, non-finite handling, argument checks, checkpoints."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import genjax.data
from genjax.train import Checkpointer, NonFiniteError, TrainState, fit, split_run_key
from genjax.vae import mlp_vae

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

N_STEPS, SEED = 6, 3
VAE_KW = dict(
    batch_size=8,
    seed=SEED,
    transform=genjax.data.dynamic_binarize,
    log_every=2,
    steps_per_dispatch=2,
    checkpoint_every=2,
    ema_decay=0.9,
    progress=False,
)


def tiny_vae():
    return mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(8,))


@pytest.fixture(scope="module")
def digits():
    return np.array(genjax.data.load_digits("train").x[:64])


def host_state(state):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(state))


def assert_states_identical(a, b):
    la, ta = jax.tree_util.tree_flatten(host_state(a))
    lb, tb = jax.tree_util.tree_flatten(host_state(b))
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def metric_lines(out_dir):
    return (pathlib.Path(out_dir) / "metrics.jsonl").read_text().splitlines()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits):
    """The uninterrupted run: N_STEPS steps, checkpoints at 2, 4, 6."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, **VAE_KW)
    return out, result


def test_reference_run_layout(reference):
    out, result = reference
    assert int(result.state.step) == N_STEPS and result.resumed_from is None
    steps = [json.loads(l)["step"] for l in metric_lines(out)]
    assert steps == [2, 4, 6]
    assert [r["step"] for r in result.history] == steps
    assert Checkpointer(out / "checkpoints").steps() == [2, 4, 6]
    assert result.state.ema_params is not None
    assert not np.array_equal(result.state.ema_params["decoder"]["params"]["mlp"]["out"]["kernel"],
                              result.state.params["decoder"]["params"]["mlp"]["out"]["kernel"])


def test_resume_is_bit_identical(reference, digits, tmp_path):
    ref_out, ref = reference
    out = tmp_path / "run"
    first = fit(tiny_vae(), digits, num_steps=4, out_dir=out, **VAE_KW)
    assert int(first.state.step) == 4
    # the first run is "killed" after its checkpoint at 4 having logged more, with a torn last line
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "kind": "train", "loss": 1.0}) + "\n")
        f.write('{"step": 6, "kind": "tr')
    resumed = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, resume=True, **VAE_KW)
    assert resumed.resumed_from == 4
    assert_states_identical(resumed.state, ref.state)  # params, opt_state, EMA, key, step
    assert metric_lines(out) == metric_lines(ref_out)
    assert [r["step"] for r in resumed.history] == [2, 4, 6]


def test_train_time_adds_up_over_resumes(digits, tmp_path):
    """``train_time_s`` counts every call that trained the run: the resumed call adds its own
    seconds to those recorded with the checkpoint it resumed from (and only those: not the
    time the first call spent after its last checkpoint). A call that ends on its final checkpoint
    reports the seconds recorded with it, so a later restore reports the very same figure."""
    out = tmp_path / "run"
    first = fit(tiny_vae(), digits, num_steps=4, out_dir=out, **VAE_KW)
    times = json.loads((out / "train_time.json").read_text())
    assert first.resumed_from is None and first.train_time_s == times["4"] <= first.wall_time_s
    assert sorted(times) == ["2", "4"] and 0 < times["2"] <= times["4"]
    times["4"] = 1000.0  # as if the first call had trained for 1000 s up to its checkpoint at 4
    (out / "train_time.json").write_text(json.dumps(times))
    resumed = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, resume=True, **VAE_KW)
    assert resumed.resumed_from == 4
    saved = json.loads((out / "train_time.json").read_text())
    assert sorted(saved) == ["2", "4", "6"] and resumed.train_time_s == saved["6"]
    assert 1000.0 < resumed.train_time_s <= 1000.0 + resumed.wall_time_s
    # finished: a restore trains nothing and adds nothing (an experiment that restores its runs to
    # write results reports their train time, however often it is re-run)
    for _ in range(2):
        again = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, resume=True, **VAE_KW)
        assert again.resumed_from == N_STEPS and again.wall_time_s > 0
        assert again.train_time_s == saved["6"]
    # a run directory without the record (written before it existed) resumes from 0 s
    (out / "train_time.json").unlink()
    shutil.rmtree(out / "checkpoints" / "6")
    late = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, resume=True, **VAE_KW)
    assert late.resumed_from == 4 and 0 < late.train_time_s <= late.wall_time_s
    assert late.train_time_s == json.loads((out / "train_time.json").read_text())["6"]


def test_corrupt_latest_checkpoint_falls_back(reference, digits, tmp_path):
    ref_out, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref_out, out)
    files = [f for f in (out / "checkpoints" / "6").rglob("*") if f.is_file()]
    assert files
    for f in files:  # truncate and garble every file of the latest checkpoint
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] + b"\x00garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(tiny_vae(), digits, num_steps=N_STEPS, out_dir=out, resume=True, **VAE_KW)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(re.search(r"checkpoint at step 6 .* is unreadable .*falling back", m) for m in messages), messages
    assert any(re.search(r"moved the unreadable checkpoint at step 6", m) for m in messages), messages
    assert resumed.resumed_from == 4
    assert_states_identical(resumed.state, ref.state)
    assert metric_lines(out) == metric_lines(ref_out)
    # the re-trained step 6 is on disk again (the unreadable one is kept aside, not deleted)
    assert (out / "checkpoints-unreadable" / "6").is_dir()
    like = TrainState.create(ref.state.params, optax.adam(1e-3), jax.random.PRNGKey(0), ema=True)
    ckpt = Checkpointer(out / "checkpoints")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback needed any more
            restored = ckpt.restore_latest(like)
    finally:
        ckpt.close()
    assert int(restored.step) == N_STEPS
    assert_states_identical(restored, ref.state)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's reader, after the failure
def test_corrupt_array_data_is_detected(reference, tmp_path):
    """Flipped bytes in the array files only (metadata intact) are caught too: fallback to step 4."""
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    data_files = [f for f in (out / "checkpoints" / "6").rglob("*") if f.is_file() and f.parent.name == "d"]
    assert data_files
    for f in data_files:
        b = bytearray(f.read_bytes())
        b[len(b) // 2 :] = bytes(x ^ 0xFF for x in b[len(b) // 2 :])
        f.write_bytes(bytes(b))
    like = TrainState.create(reference[1].state.params, optax.adam(1e-3), jax.random.PRNGKey(0), ema=True)
    ckpt = Checkpointer(out / "checkpoints")
    try:
        with pytest.warns(UserWarning, match=r"checkpoint at step 6 .* is unreadable"):
            restored = ckpt.restore_latest(like)
    finally:
        ckpt.close()
    assert int(restored.step) == 4
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree_util.tree_leaves(restored.params))


def test_out_dir_with_a_run_needs_resume(reference, digits, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    before = metric_lines(out)
    with pytest.raises(ValueError, match=r"out_dir .* already holds a run \(checkpoints at steps \[2, 4, 6\]\)"):
        fit(tiny_vae(), digits, num_steps=8, out_dir=out, **VAE_KW)
    assert metric_lines(out) == before


# ---------------------------------------------------------------------- non-finite
class Ramp:
    """``loss = -sum(w)``: with ``sgd(1)`` the parameters are ``w = s`` at step ``s``; the
    loss is NaN once ``w >= 5``, i.e. from step 5 on. No ``check_batch``."""

    def __init__(self):
        self.inits = 0

    def init(self, key, batch):
        self.inits += 1
        return {"w": jnp.zeros(2, jnp.float32)}

    def loss(self, params, key, batch):
        w = params["w"]
        loss = jnp.where(w[0] >= 4.5, jnp.nan, -jnp.sum(w) + 0.0 * jnp.sum(batch))
        return loss, {"w0": w[0]}


RAMP_KW = dict(
    batch_size=2, optimizer=optax.sgd(1.0), log_every=2, steps_per_dispatch=2, checkpoint_every=2, progress=False
)


def test_nonfinite_raises_naming_step_and_metric(tmp_path):
    out = tmp_path / "run"
    msg = r"non-finite value at step 5: loss = \['nan'\]; last good checkpoint is step 4"
    with pytest.raises(NonFiniteError, match=msg):
        fit(Ramp(), np.zeros((8, 2), np.float32), num_steps=8, out_dir=out, **RAMP_KW)
    assert issubclass(NonFiniteError, FloatingPointError)
    assert [json.loads(l)["step"] for l in metric_lines(out)] == [2, 4]
    ckpt = Checkpointer(out / "checkpoints")
    try:
        assert ckpt.steps()[-1] == 4
        like = TrainState.create({"w": jnp.zeros(2)}, optax.sgd(1.0), jax.random.PRNGKey(0))
        restored = ckpt.restore_latest(like)
    finally:
        ckpt.close()
    assert int(restored.step) == 4
    np.testing.assert_array_equal(restored.params["w"], [4.0, 4.0])


def test_nonfinite_skip_completes_and_counts():
    result = fit(Ramp(), np.zeros((8, 2), np.float32), num_steps=8, on_nonfinite="skip", **RAMP_KW)
    assert int(result.state.step) == 8
    np.testing.assert_array_equal(result.state.params["w"], [5.0, 5.0])  # updates from step 5 dropped
    assert [(r["step"], r["skipped_updates"]) for r in result.history] == [(2, 0), (4, 0), (6, 1), (8, 3)]
    # each record is the mean over its window's applied updates (step s sees w = s - 1, loss -2(s - 1)):
    # steps 5-6 are the loss of step 5 alone (not NaN from the dropped step 6); 7-8 applied none
    assert [r["loss"] for r in result.history] == [-1.0, -5.0, -8.0, "nan"]
    assert [r["w0"] for r in result.history] == [0.5, 2.5, 4.0, "nan"]


def test_vae_diverging_learning_rate_raises(digits):
    with pytest.raises(NonFiniteError, match=r"non-finite value at step \d+: .*(loss|grad_norm)"):
        fit(tiny_vae(), digits, num_steps=20, optimizer=optax.sgd(1e8), batch_size=8, seed=SEED,
            transform=genjax.data.dynamic_binarize, log_every=20, steps_per_dispatch=20,
            checkpoint_every=None, progress=False)


# ---------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(num_steps=0), r"num_steps must be a positive integer, got 0"),
        (dict(batch_size=9), r"batch_size=9 is larger than train_data \(8 examples\)"),
        (dict(batch_size=-1), r"batch_size must be a positive integer, got -1"),
        (dict(log_every=0), r"log_every must be a positive integer"),
        (dict(on_nonfinite="ignore"), r"unknown on_nonfinite 'ignore'"),
    ],
)
def test_bad_arguments_raise_before_work(tmp_path, overrides, match):
    model, out = Ramp(), tmp_path / "run"
    kw = {**RAMP_KW, "num_steps": 4, "out_dir": out, **overrides}
    with pytest.raises(ValueError, match=match):
        fit(model, np.zeros((8, 2), np.float32), **kw)
    assert model.inits == 0 and not out.exists()


@pytest.mark.parametrize("in_first_batch", [True, False], ids=["first-batch", "later-batch"])
def test_nan_in_train_data_raises(tmp_path, in_first_batch):
    x = np.zeros((8, 2), np.float32)
    first = set(genjax.data.BatchSampler(split_run_key(0)["data"], 8, 2).indices(0).tolist())
    row = min(first) if in_first_batch else min(set(range(8)) - first)
    x[row, 1] = np.nan
    model = Ramp()
    with pytest.raises(ValueError, match=r"train_data contains 1 non-finite"):
        fit(model, x, num_steps=4, seed=0, out_dir=tmp_path / "run", **RAMP_KW)
    assert model.inits == 0 and not (tmp_path / "run").exists()


def test_non_binary_data_for_bernoulli_vae_names_train_data(digits):
    with pytest.raises(ValueError, match=r"train_data must be binary"):
        fit(tiny_vae(), digits, num_steps=2, batch_size=8, progress=False)  # no binarize transform


def test_unwritable_out_dir_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    model = Ramp()
    with pytest.raises(OSError, match=r"out_dir .*file/run.* is not writable"):
        fit(model, np.zeros((8, 2), np.float32), num_steps=4, out_dir=blocker / "run", **RAMP_KW)
    assert model.inits == 0
