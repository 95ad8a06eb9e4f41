"""Non-finite values stop training with an error naming the step and the metric, and the
last good checkpoint stays intact (it restores, finite, equal to a run stopped there);
``on_nonfinite="skip"`` drops exactly the bad updates and counts them.

``tests/train/test_loop.py`` covers a NaN loss from a parameter ramp, a NaN in the
host data and a diverging VAE. Here: NaN/Inf reaching the step through the data
transform at a step computed independently from the batch sampler (one-player and
two-player GAN steps), an infinite gradient under a finite loss, diverging learning
rates of a flow and a GAN with their checkpoints, and the CLI's one-line error and
``--on-nonfinite skip``.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import cli, flows, gan
from genjax.data import BatchSampler
from genjax.train import Checkpointer, NonFiniteError, TrainState, fit, split_run_key


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

N, B, SEED = 32, 4, 11
LOOP = dict(batch_size=B, seed=SEED, log_every=2, steps_per_dispatch=2, checkpoint_every=2, progress=False)


class Linear:
    def init(self, key, batch):
        return {"w": 0.1 * jax.random.normal(key, (batch.shape[-1], 2)), "b": jnp.zeros(2)}

    def loss(self, params, key, batch):
        y = batch @ params["w"] + params["b"]
        return jnp.mean(y**2), {"mse": jnp.mean(y**2)}


def poison(bad_row_value: float):
    """A transform that turns the marker value 1e4 into ``bad_row_value`` (NaN / Inf): the
    host data stays finite, so only the step itself can catch it."""
    return lambda key, batch: jnp.where(batch == 1e4, bad_row_value, batch)


def first_step_with_row(row: int, num_steps: int) -> list[int]:
    """Every step < num_steps whose batch holds ``row`` (from the sampler, independently of fit)."""
    sampler = BatchSampler(split_run_key(SEED)["data"], N, B)
    return [s for s in range(num_steps) if row in set(sampler.indices(s).tolist())]


def marked_data(row: int) -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(N, 3)).astype(np.float32)
    x[row, 1] = 1e4
    return x


def _row_not_in_first_batch() -> int:
    first = set(BatchSampler(split_run_key(SEED)["data"], N, B).indices(0).tolist())
    return min(set(range(N)) - first)


def _restore(out, like):
    ckpt = Checkpointer(out / "checkpoints")
    try:
        return ckpt.steps(), ckpt.restore_latest(like)
    finally:
        ckpt.close()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_poisoned_batch_stops_at_its_step_with_last_good_checkpoint(tmp_path, value):
    row = _row_not_in_first_batch()
    steps = first_step_with_row(row, 40)
    assert steps, "the marked row is never drawn"
    bad = steps[0]
    good = (bad // 2) * 2  # checkpoints every 2 steps, written only after a finite chunk
    out = tmp_path / "run"
    msg = rf"non-finite value at step {bad}: .*loss.*; last good checkpoint is step {good}" if good else \
        rf"non-finite value at step {bad}: .*loss.*; no checkpoint was written"
    with pytest.raises(NonFiniteError, match=msg):
        fit(Linear(), marked_data(row), num_steps=40, out_dir=out, transform=poison(value), **LOOP)
    if good == 0:
        assert U.committed_steps(out / "checkpoints") == []
        return
    assert U.logged_steps(out)[-1] == good
    steps_on_disk, restored = _restore(out, TrainState.create(Linear().init(jax.random.PRNGKey(0), np.zeros((1, 3))),
                                                               optax.adam(1e-3), jax.random.PRNGKey(0)))
    assert steps_on_disk[-1] == good and int(restored.step) == good
    leaves = jax.tree_util.tree_leaves(restored)
    assert all(np.isfinite(np.asarray(l)).all() for l in leaves if np.issubdtype(np.asarray(l).dtype, np.floating))
    # the checkpoint is the state of an uninterrupted run stopped at that step
    clean = fit(Linear(), marked_data(row), num_steps=good, transform=poison(value), **LOOP)
    U.assert_trees_bit_identical(U.flat(jax.device_get(restored)), U.flat(jax.device_get(clean.state)))


def test_skip_drops_exactly_the_poisoned_updates():
    row = _row_not_in_first_batch()
    bad = first_step_with_row(row, 40)
    res = fit(Linear(), marked_data(row), num_steps=40, transform=poison(np.nan), on_nonfinite="skip", **LOOP)
    assert int(res.state.step) == 40
    assert res.history[-1]["skipped_updates"] == len(bad)
    per_record = {r["step"]: r["skipped_updates"] for r in res.history}
    for s in range(2, 41, 2):  # cumulative count at every record, from the sampler's schedule
        assert per_record[s] == sum(b < s for b in bad), s
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree_util.tree_leaves(res.state.params))


class SqrtAbs:
    """Finite loss, infinite gradient: ``loss = sum(sqrt(|w - c|))`` hits ``w = c`` exactly at step 3
    (sgd(1) on ``-sum(w)`` moves ``w`` by 1 per step; ``c = 3``)."""

    def init(self, key, batch):
        return {"w": jnp.zeros(2)}

    def loss(self, params, key, batch):
        w = params["w"]
        loss = jnp.where(w[0] >= 2.5, jnp.sum(jnp.sqrt(jnp.abs(w - 3.0))), -jnp.sum(w)) + 0.0 * jnp.sum(batch)
        return loss, {"w0": w[0]}


def test_infinite_gradient_with_finite_loss_names_grad_norm():
    with pytest.raises(NonFiniteError, match=r"non-finite value at step 3: grad_norm = \['(inf|nan)'\]"):
        fit(SqrtAbs(), np.zeros((8, 1), np.float32), num_steps=6, optimizer=optax.sgd(1.0), batch_size=2,
            log_every=2, steps_per_dispatch=2, checkpoint_every=2, progress=False)


def test_gan_two_player_step_poisoned_data(tmp_path):
    """NaN reaching the discriminator of a two-player step: stops at that step; skip counts it."""
    row = _row_not_in_first_batch()
    bad = first_step_with_row(row, 20)
    x = np.random.default_rng(1).normal(size=(N, 2)).astype(np.float32)
    x[row, 0] = 1e4
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), output="linear")
    opt = gan.gan_adam(1e-3)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=rf"non-finite value at step {bad[0]}: .*d_loss"):
        fit(model, x, num_steps=20, optimizer=opt, out_dir=out, transform=poison(np.nan), **LOOP)
    good = (bad[0] // 2) * 2
    assert U.committed_steps(out / "checkpoints")[-1:] == ([good] if good else [])
    if good:
        tree = U.load_tree(out / "checkpoints" / str(good))
        assert set(tree["params"]) == {"generator", "discriminator"}
        assert all(np.isfinite(v).all() for v in U.flat(tree["params"]).values())
    res = fit(model, x, num_steps=20, optimizer=opt, transform=poison(np.nan), on_nonfinite="skip", **LOOP)
    assert res.history[-1]["skipped_updates"] == len(bad)
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree_util.tree_leaves(res.state.params))


def test_flow_diverging_learning_rate_keeps_last_good_checkpoint(tmp_path):
    x = np.random.default_rng(2).normal(size=(N, 2)).astype(np.float32)
    model = flows.realnvp_2d(num_layers=2, hidden=(8,))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError) as info:
        fit(model, x, num_steps=60, optimizer=optax.sgd(1e6), out_dir=out, **LOOP)
    m = re.search(r"non-finite value at step (\d+): ([a-z_/, ]+) = .*(last good checkpoint is step (\d+)|no checkpoint)", str(info.value))
    assert m, str(info.value)
    bad = int(m.group(1))
    assert "loss" in m.group(2) or "grad_norm" in m.group(2)
    on_disk = U.committed_steps(out / "checkpoints")
    assert all(s <= bad for s in on_disk)
    if m.group(4) is not None:
        assert on_disk[-1] == int(m.group(4))
        tree = U.load_tree(out / "checkpoints" / str(on_disk[-1]))
        assert all(np.isfinite(v).all() for v in U.flat(tree["params"]).values())


def test_cli_nonfinite_is_one_line_and_skip_flag_completes(tmp_path, capsys):
    common = ["--data", "8gaussians", "--out", str(tmp_path), "--steps", "40", "--batch-size", "8", "--lr", "1e7",
              "--latent-dim", "2", "--hidden", "8", "--likelihood", "gaussian", "--obs-std", "0.01",
              "--checkpoint-every", "2", "--log-every", "2", "--steps-per-dispatch", "2", "--no-progress"]
    rc = cli.main(["train", "vae", "--name", "raise", *common])
    err = capsys.readouterr().err
    assert rc == 1, err
    line = U.one_line_error(err)
    assert re.search(r"non-finite value at step \d+: .*(loss|grad_norm)", line), line
    assert "checkpoint" in line
    rc = cli.main(["train", "vae", "--name", "skip", "--on-nonfinite", "skip", "--eval-samples", "2", *common])
    out = capsys.readouterr()
    assert rc == 0, out.err
    recs = [json.loads(l) for l in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(2, 41, 2))
    assert train[-1]["skipped_updates"] > 0
    assert json.loads((tmp_path / "skip" / "config.json").read_text())["on_nonfinite"] == "skip"
    tree = U.load_tree(tmp_path / "skip" / "checkpoints" / "40")
    assert all(np.isfinite(v).all() for v in U.flat(tree["params"]).values())
