"""Corrupted checkpoints: resume detects the bad one, names it, falls back to the previous
good one (bit-identical to an uninterrupted run) or refuses with a clear error when none
is usable, and never overwrites or deletes good data.

``tests/train/test_loop.py`` already covers: every file of the latest checkpoint
truncated+garbled, and the array files bit-inverted (fallback to the previous one).
Here: single-bit flips that orbax restores silently (caught by the recorded sha256),
truncation alone, deleted files, an emptied step directory, two bad checkpoints in a
row, all of them bad (in-process and through the CLI), a leftover temporary directory
of a killed save, and checkpoints of another model.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import cli
from genjax.train import CheckpointError, CheckpointMismatchError, Checkpointer, TrainState, fit, restore_params
from genjax.train.checkpoint import DIGEST_KEY, state_digest


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = [
    pytest.mark.filterwarnings("ignore:Some donated buffers were not usable"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # orbax's readers after a failure
]


class Linear:
    """``loss = mean((x @ w + b)^2)`` plus a key-dependent term: tiny, with a key stream."""

    def __init__(self, dim: int = 3):
        self.dim = dim

    def init(self, key, batch):
        return {"w": jax.random.normal(key, (batch.shape[-1], self.dim)), "b": jnp.zeros(self.dim)}

    def loss(self, params, key, batch):
        y = batch @ params["w"] + params["b"] + 0.01 * jax.random.normal(key, (batch.shape[0], self.dim))
        loss = jnp.mean(y**2)
        return loss, {"mse": loss}


STEPS = 8
KW = dict(num_steps=STEPS, batch_size=4, seed=5, log_every=2, steps_per_dispatch=2, checkpoint_every=2,
          ema_decay=0.9, progress=False)
DATA = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    res = fit(Linear(), DATA, out_dir=out, **KW)
    assert U.committed_steps(out / "checkpoints") == [4, 6, 8]
    return out, res


def _copy(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    return out


def _hashes(folder: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    return files


def _resume(out, expect_warning: str | None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(Linear(), DATA, out_dir=out, resume=True, **KW)
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if expect_warning is not None:
        assert any(expect_warning in m for m in msgs), msgs
    return res, msgs


def _assert_like_reference(res, reference, out):
    U.assert_trees_bit_identical(U.flat(jax.device_get(res.state)), U.flat(jax.device_get(reference[1].state)))
    assert (out / "metrics.jsonl").read_bytes() == (reference[0] / "metrics.jsonl").read_bytes()


def test_every_checkpoint_records_the_digest_of_its_state(reference):
    out, res = reference
    ckpt = Checkpointer(out / "checkpoints")
    try:
        recorded = ckpt.manager.metadata(8).custom_metadata[DIGEST_KEY]
    finally:
        ckpt.close()
    assert recorded == state_digest(res.state)  # the final state is the step-8 checkpoint
    # the digest sees a one-ulp change of one number
    w = np.asarray(res.state.params["w"]).copy()
    w.flat[0] = np.nextafter(w.flat[0], np.inf)
    assert state_digest(res.state.replace(params={**res.state.params, "w": jnp.asarray(w)})) != recorded


def test_single_bit_flip_in_array_data_is_caught(reference, tmp_path):
    """Orbax restores some one-bit flips in its data files as silently different
    numbers; the recorded sha256 turns every one of them into a fallback."""
    out = _copy(reference, tmp_path)
    like = TrainState.create(reference[1].state.params, optax.adam(1e-3), jax.random.PRNGKey(0), ema=True)
    flipped = 0
    for f in sorted((out / "checkpoints" / "8").rglob("*")):
        if not f.is_file() or f.parent.name != "d":
            continue
        original = f.read_bytes()
        for frac in (0.25, 0.5, 0.75):
            b = bytearray(original)
            b[int(len(b) * frac)] ^= 0x04
            f.write_bytes(bytes(b))
            ckpt = Checkpointer(out / "checkpoints")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    restored = ckpt.restore_latest(like)
            finally:
                ckpt.close()
            if int(restored.step) == 8:  # the flip hit bytes that do not change the state
                assert state_digest(restored) == state_digest(reference[1].state)
            else:
                assert int(restored.step) == 6
                assert any("checkpoint at step 8" in str(w.message) for w in caught)
                flipped += 1
        f.write_bytes(original)
    assert flipped > 0


def test_truncated_latest_falls_back_and_keeps_good_data(reference, tmp_path):
    out = _copy(reference, tmp_path)
    good = _hashes(out / "checkpoints" / "6")
    for f in _data_files(out / "checkpoints" / "8"):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 3])  # truncation only, no garbage
    res, msgs = _resume(out, "checkpoint at step 8")
    assert res.resumed_from == 6
    assert any("falling back" in m for m in msgs)
    _assert_like_reference(res, reference, out)
    assert _hashes(out / "checkpoints" / "6") == good  # the good checkpoint was not rewritten
    assert (out / "checkpoints-unreadable" / "8").is_dir()  # the bad one is kept aside, not deleted


def test_deleted_files_and_empty_step_dir(reference, tmp_path):
    out = _copy(reference, tmp_path)
    for f in _data_files(out / "checkpoints" / "8"):
        f.unlink()
    res, _ = _resume(out, "checkpoint at step 8")
    assert res.resumed_from == 6
    _assert_like_reference(res, reference, out)

    out2 = tmp_path / "run2"
    shutil.copytree(reference[0], out2)
    step_dir = out2 / "checkpoints" / "8"
    shutil.rmtree(step_dir)
    step_dir.mkdir()  # a bare directory named like a step
    res2, _ = _resume(out2, "checkpoint at step 8")
    assert res2.resumed_from == 6
    _assert_like_reference(res2, reference, out2)


def test_two_bad_checkpoints_fall_back_two_levels(reference, tmp_path):
    out = _copy(reference, tmp_path)
    for step in (6, 8):
        meta = out / "checkpoints" / str(step) / "default" / "_METADATA"
        meta.write_text('{"not": "orbax metadata"')
    res, msgs = _resume(out, "checkpoint at step 8")
    assert any("checkpoint at step 6" in m for m in msgs)
    assert res.resumed_from == 4
    _assert_like_reference(res, reference, out)


def test_no_usable_checkpoint_refuses_and_changes_nothing(reference, tmp_path):
    out = _copy(reference, tmp_path)
    for step in (4, 6, 8):
        for f in _data_files(out / "checkpoints" / str(step)):
            f.write_bytes(b"\x00" * 7)
    before = _hashes(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match=r"no usable checkpoint: checkpoint at step 8 .*step 6 .*step 4"):
            fit(Linear(), DATA, out_dir=out, resume=True, **KW)
    assert _hashes(out) == before  # nothing written, moved or deleted, metrics log included


def test_cli_resume_with_no_usable_checkpoint_is_one_line(reference, tmp_path, capsys):
    """The CLI: a run whose checkpoints are all damaged exits 1 with one line naming them."""
    run = tmp_path / "vae-run"
    assert cli.main(U.train_argv("vae", "8gaussians", tmp_path, "vae-run", 8, 0, "--batch-size", "4",
                                 "--latent-dim", "2", "--hidden", "8")) == 0
    for step in U.committed_steps(run / "checkpoints"):
        (run / "checkpoints" / str(step) / "default" / "_METADATA").write_text("{}")
    before = _hashes(run)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(U.train_argv("vae", "8gaussians", tmp_path, "vae-run", 8, 0, "--resume"))
    assert rc == 1
    line = U.one_line_error(capsys.readouterr().err)
    assert "no usable checkpoint" in line and "checkpoint at step 8" in line and "checkpoint at step 4" in line
    assert _hashes(run) == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["sample", str(run), "--num", "2", "--out", str(tmp_path / "s.npy")]) == 1
    assert "no usable checkpoint" in U.one_line_error(capsys.readouterr().err)


def test_leftover_tmp_dir_of_a_killed_save_is_ignored(reference, tmp_path):
    out = _copy(reference, tmp_path)
    ckpts = out / "checkpoints"
    shutil.rmtree(ckpts / "8")
    tmp = ckpts / "8.orbax-checkpoint-tmp"
    shutil.copytree(reference[0] / "checkpoints" / "8", tmp)  # complete data, but never committed
    (tmp / "commit_success.txt").unlink()
    log = out / "metrics.jsonl"
    log.write_text(log.read_text() + '{"kind": "train", "step": 9, "loss": 1')  # torn line of the killed run
    ckpt = Checkpointer(ckpts)
    try:
        assert ckpt.steps() == [4, 6]
    finally:
        ckpt.close()
    res, _ = _resume(out, None)
    assert res.resumed_from == 6
    _assert_like_reference(res, reference, out)
    assert U.tmp_checkpoints(ckpts) == [] and U.committed_steps(ckpts) == [4, 6, 8]


def test_checkpoints_of_another_model_are_a_clear_error(reference, tmp_path):
    out = _copy(reference, tmp_path)
    before = _hashes(out)
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint at step 8 .* holds the state of a different model"):
        fit(Linear(dim=5), DATA, out_dir=out, resume=True, **KW)
    assert issubclass(CheckpointMismatchError, ValueError)
    assert _hashes(out) == before
    assert not (out / "checkpoints-unreadable").exists()  # not mistaken for damage and moved aside
    with pytest.raises(CheckpointMismatchError, match="different model"):
        restore_params(out, Linear(dim=5), DATA[:2])


def test_restore_params_falls_back_too(reference, tmp_path):
    """``genjax sample`` / ``eval`` read the newest readable checkpoint the same way."""
    out = _copy(reference, tmp_path)
    for f in _data_files(out / "checkpoints" / "8"):
        f.write_bytes(f.read_bytes()[:5])
    with pytest.warns(UserWarning, match=r"checkpoint at step 8 .*unreadable"):
        state = restore_params(out, Linear(), DATA[:2], ema=True)
    assert int(state.step) == 6
    ref6 = U.load_tree(reference[0] / "checkpoints" / "6")
    np.testing.assert_array_equal(np.asarray(state.params["w"]), ref6["params"]["w"])
    np.testing.assert_array_equal(np.asarray(state.ema_params["b"]), ref6["ema_params"]["b"])
