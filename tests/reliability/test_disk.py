"""Disk problems: an unwritable or full output directory fails before training (or at the
first checkpoint) with a clear message, and a failed write never leaves a checkpoint that
resume would take as valid. "Full" is simulated in-process: the checkpoint commit, the
metrics append or the free-space query is monkeypatched to fail with ENOSPC.

(``tests/train/test_loop.py`` covers an ``out_dir`` below a regular file for ``fit``.)
"""

from __future__ import annotations

import builtins
import collections
import errno
import pathlib
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from orbax.checkpoint._src.path import atomicity

from genjax import cli
from genjax.train import fit


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

ENOSPC = OSError(errno.ENOSPC, "No space left on device")
KW = dict(num_steps=8, batch_size=4, seed=2, log_every=2, steps_per_dispatch=2, checkpoint_every=2, ema_decay=0.5,
          progress=False)
DATA = np.random.default_rng(3).normal(size=(16, 3)).astype(np.float32)


class Counted:
    """A linear model that counts ``init`` and traced ``loss`` calls (so "no work" is checkable)."""

    def __init__(self):
        self.inits = self.losses = 0

    def init(self, key, batch):
        self.inits += 1
        return {"w": jax.random.normal(key, (3, 2))}

    def loss(self, params, key, batch):
        self.losses += 1
        y = batch @ params["w"] + 0.01 * jax.random.normal(key, (batch.shape[0], 2))
        return jnp.mean(y**2), {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    return out, fit(Counted(), DATA, out_dir=out, **KW)


def _fail_commit_at(monkeypatch, steps: set[int]):
    """Orbax's commit of checkpoint ``step`` raises ENOSPC after the data went to the tmp dir."""
    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self):
        name = pathlib.Path(self.get_final()).name  # also called for the item ("default") inside the step
        if name.isdigit() and int(name) in steps:
            # partial data as a full disk would leave it: truncate a data file first
            files = [p for p in pathlib.Path(self.get()).rglob("*") if p.is_file() and p.parent.name == "d"]
            if files:
                files[0].write_bytes(files[0].read_bytes()[:3])
            raise ENOSPC
        return await original(self)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)


def test_read_only_out_dir_fails_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "ro"
    real = pathlib.Path.write_text

    def write_text(self, *a, **k):
        if str(self).startswith(str(out)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    model = Counted()
    with pytest.raises(OSError, match=r"out_dir '.*ro' is not writable: .*Read-only file system"):
        fit(model, DATA, out_dir=out, **KW)
    assert model.inits == 0 and model.losses == 0


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    model, out = Counted(), tmp_path / "run"
    with pytest.raises(OSError, match=r"out_dir '.*run' has 4096 bytes free; the checkpoints of this run need about \d+ bytes") as info:
        fit(model, DATA, out_dir=out, **KW)
    assert info.value.errno == errno.ENOSPC
    assert model.losses == 0  # no step was traced, let alone run
    assert U.committed_steps(out / "checkpoints") == [] and not (out / "metrics.jsonl").exists()


def test_enough_space_is_not_refused(tmp_path, monkeypatch):
    """The estimate is not a blanket refusal: (max_to_keep + 1) state copies + 1 MiB is enough."""
    usage = collections.namedtuple("usage", "total used free")
    state_bytes = 4 * (3 * 2) * 4 + 4 + 8  # params, adam mu/nu, EMA (float32 3x2 each), step int32, key uint32[2]
    adam_count = 4
    need = 4 * (state_bytes + adam_count) + (1 << 20)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, need))
    res = fit(Counted(), DATA, out_dir=tmp_path / "run", **KW)
    assert int(res.state.step) == 8
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, need - 1))
    with pytest.raises(OSError, match="bytes free"):
        fit(Counted(), DATA, out_dir=tmp_path / "run2", **KW)


@pytest.mark.parametrize("fail_at", [2, 6])
def test_disk_full_at_a_checkpoint_leaves_nothing_resume_would_take(reference, tmp_path, monkeypatch, fail_at):
    out = tmp_path / "run"
    _fail_commit_at(monkeypatch, {fail_at})
    with pytest.raises(OSError, match=rf"could not write the checkpoint at step {fail_at} to .*checkpoints: OSError: .*No space left") as info:
        fit(Counted(), DATA, out_dir=out, **KW)
    assert info.value.errno == errno.ENOSPC
    ckpts = out / "checkpoints"
    assert U.committed_steps(ckpts) == list(range(2, fail_at, 2))
    assert U.tmp_checkpoints(ckpts) == []  # the partial write was removed
    monkeypatch.undo()
    res = fit(Counted(), DATA, out_dir=out, resume=True, **KW)
    assert res.resumed_from == (fail_at - 2 or None)
    U.assert_runs_bit_identical(reference[0], out)


def test_disk_full_on_the_metrics_log(reference, tmp_path, monkeypatch):
    """The log is written before the checkpoint of a step: a failed append means no checkpoint there."""
    out = tmp_path / "run"
    real_open = builtins.open
    calls = {"n": 0}

    def open_(file, mode="r", *a, **k):
        if str(file).endswith("metrics.jsonl") and "a" in mode:
            calls["n"] += 1
            if calls["n"] == 3:  # the append of step 6
                f = real_open(file, mode, *a, **k)
                f.write('{"kind": "train", "st')  # a torn line, then the disk is full
                f.close()
                raise ENOSPC
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(OSError, match=r"could not append step 6 to the metrics log .*metrics.jsonl: .*No space left"):
        fit(Counted(), DATA, out_dir=out, **KW)
    monkeypatch.undo()
    assert U.committed_steps(out / "checkpoints") == [2, 4]
    res = fit(Counted(), DATA, out_dir=out, resume=True, **KW)
    assert res.resumed_from == 4
    U.assert_runs_bit_identical(reference[0], out)


def test_cli_out_below_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = cli.main(["train", "vae", "--data", "8gaussians", "--out", str(blocker), "--steps", "2", "--no-progress"])
    assert rc == 1
    line = U.one_line_error(capsys.readouterr().err)
    assert str(blocker) in line


def test_cli_disk_full_at_first_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    _fail_commit_at(monkeypatch, {2})
    argv = U.train_argv("vae", "8gaussians", tmp_path, "r", 4, 0, "--batch-size", "4", "--latent-dim", "2", "--hidden", "8")
    argv[argv.index("--checkpoint-every") + 1] = "2"
    assert cli.main(argv) == 1
    line = U.one_line_error(capsys.readouterr().err)
    assert "could not write the checkpoint at step 2" in line and "No space left" in line
    assert U.committed_steps(tmp_path / "r" / "checkpoints") == []
    assert U.tmp_checkpoints(tmp_path / "r" / "checkpoints") == []
