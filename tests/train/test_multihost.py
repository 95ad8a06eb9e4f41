"""Data-parallel training across processes: ``jax.distributed`` on 127.0.0.1 with gloo.

Each launch starts N copies of this file as a script (one CPU device per process),
joined by :func:`genjax.train.distributed.initialize` on a free loopback port, with a
bounded wait; every process is killed and reaped in a ``finally``. The processes train
tiny models on ``data_mesh()`` (the devices of all processes) and write what they end
with; the tests compare that with the same ``fit`` run in this one process, to an
explicit tolerance (the all-reduce sums the per-process gradients in another order).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

# several processes vs one: the same function of the global batch, sums in another order
RTOL, ATOL = 1e-5, 1e-6
HEARTBEAT_S = 30  # a dead process is noticed by its peers' closed sockets at once; a starved live one must not be declared dead
KILL_AT = 3  # the killed run: checkpoints every 2 steps, process 1 dies after step 3


def _vae_run(x, **kw):
    import genjax.data
    from genjax.train import fit
    from genjax.vae import mlp_vae

    vae = mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(8,))
    args = dict(num_steps=4, batch_size=8, seed=3, transform=genjax.data.dynamic_binarize, log_every=2,
                steps_per_dispatch=1, checkpoint_every=2, ema_decay=0.9, progress=False)
    return fit(vae, x, **{**args, **kw})


def _gan_run(y, **kw):
    from genjax import gan
    from genjax.train import fit

    g = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,))
    return fit(g, y, num_steps=3, batch_size=8, optimizer=gan.gan_adam(1e-3), seed=0, steps_per_dispatch=3,
               log_every=3, checkpoint_every=None, progress=False, **kw)


def _data():
    import genjax.data

    x = np.array(genjax.data.load_digits("train").x[:32])
    y = np.random.default_rng(0).uniform(-0.9, 0.9, (32, 2)).astype(np.float32)
    return x, y


def _flat(tree) -> dict[str, np.ndarray]:
    import jax

    from genjax.train.sharding import to_local

    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(to_local(tree))[0]}


def _state_arrays(state) -> dict[str, np.ndarray]:
    return _flat((state.params, state.ema_params, state.opt_state, state.key))


def _worker(port: int, num_processes: int, process_id: int, out: pathlib.Path, jobs: list[str]) -> None:
    """One process of a launch: joins the others, runs ``jobs`` on the global mesh, saves ``p<i>.npz``."""
    from genjax.train import distributed

    distributed.initialize(distributed.ProcessGroup(f"127.0.0.1:{port}", num_processes, process_id),
                           heartbeat_timeout_s=HEARTBEAT_S, init_timeout_s=60)
    import jax

    from genjax.train import data_mesh

    assert jax.process_count() == num_processes and jax.device_count() == num_processes, jax.devices()
    mesh = data_mesh()
    x, y = _data()
    arrays: dict[str, np.ndarray] = {}
    for job in jobs:
        if job == "vae":  # data gathered on the devices (default)
            r = _vae_run(x, mesh=mesh, out_dir=out / "vae")
            arrays.update({"vae" + k: v for k, v in _state_arrays(r.state).items()})
        elif job == "gan":
            r = _gan_run(y, mesh=mesh)
            arrays.update({"gan" + k: v for k, v in _flat(r.state.params).items()})
        elif job == "nomesh":  # several processes without a mesh: an error before any work
            try:
                _vae_run(x, out_dir=out / "nomesh")
            except ValueError as e:
                (out / f"nomesh{process_id}.txt").write_text(str(e))
        elif job == "killed":  # process 1 dies after step KILL_AT; the others must stop with DistributedError

            def die(step, metrics):
                if step == KILL_AT and process_id == 1:
                    os.kill(os.getpid(), signal.SIGKILL)

            try:
                _vae_run(x, mesh=mesh, out_dir=out / "killed", data_on_device=False, on_chunk=die)
            except distributed.DistributedError as e:
                (out / f"error{process_id}.txt").write_text(str(e))
                sys.stdout.flush()
                os._exit(3)  # at once: jax.distributed's shutdown barrier would wait for the dead process
        elif job == "resume":  # each process gathers its own rows of every batch (data_on_device=False)
            r = _vae_run(x, mesh=mesh, out_dir=out / "resume", data_on_device=False, resume=True)
            arrays.update({"resume" + k: v for k, v in _state_arrays(r.state).items()})
            (out / f"resumed_from{process_id}.txt").write_text(str(r.resumed_from))
        else:
            raise ValueError(f"unknown job {job!r}")
    np.savez(out / f"p{process_id}.npz", **arrays)


def launch(commands: list[list[str]], out: pathlib.Path, *, timeout: float = 300) -> list[tuple[int, str]]:
    from genjax.train.distributed import launch_local, local_env

    return launch_local(commands, out, timeout_s=timeout, env=local_env(pathlib.Path(__file__).resolve().parents[2]))


def launch_workers(num_processes: int, out: pathlib.Path, jobs: list[str], **kw) -> list[tuple[int, str]]:
    from genjax.train.distributed import free_port

    port = str(free_port())
    return launch([[sys.executable, __file__, port, str(num_processes), str(i), str(out), *jobs]
                   for i in range(num_processes)], out, **kw)


def _assert_ok(results):
    for i, (rc, log) in enumerate(results):
        assert rc == 0, f"process {i} exited {rc}:\n{log[-4000:]}"


def _group(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix + "[")}


def _assert_close(a, b):
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL, err_msg=k)


def _load(path):
    with np.load(path) as z:
        return dict(z)


@pytest.fixture(scope="module")
def reference():
    """The one-process runs (no mesh) every launch is compared with."""
    x, y = _data()
    vae = _vae_run(x)
    return {"vae": _state_arrays(vae.state), "gan": _flat(_gan_run(y).state.params),
            "vae_loss": [h["loss"] for h in vae.history if h["kind"] == "train"]}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A VAE run on 2 processes whose process 1 is killed after step 3 (checkpoint at 2)."""
    out = tmp_path_factory.mktemp("killed")
    return out, launch_workers(2, out, ["killed"], timeout=240)


def test_four_processes_train_vae_and_gan_as_one_process(tmp_path, reference):
    _assert_ok(launch_workers(4, tmp_path, ["nomesh", "vae", "gan"]))
    p = [_load(tmp_path / f"p{i}.npz") for i in range(4)]
    assert "4 processes train one run only data-parallel: pass mesh=" in (tmp_path / "nomesh3.txt").read_text()
    assert not (tmp_path / "nomesh").exists()
    for i in range(1, 4):  # every process ends with the same replicated state, bit for bit
        assert p[i].keys() == p[0].keys() and all(np.array_equal(p[i][k], p[0][k]) for k in p[0])
    _assert_close(_group(p[0], "vae"), reference["vae"])
    _assert_close(_group(p[0], "gan"), reference["gan"])
    # the train moved the parameters (the comparison is not one of initial values)
    x, _ = _data()
    init = _state_arrays(_vae_run(x, num_steps=1).state)
    assert max(np.abs(reference["vae"][k] - v).max() for k, v in init.items() if v.dtype.kind == "f") > 1e-3
    # checkpoints written once: one committed directory per checkpoint step, no partial
    # ones; one log, each step once, by process 0 only
    run = tmp_path / "vae"
    assert sorted(d.name for d in (run / "checkpoints").iterdir()) == ["2", "4"]
    assert not list(run.glob("**/*orbax-checkpoint-tmp*"))
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]
    np.testing.assert_allclose([r["loss"] for r in lines], reference["vae_loss"], rtol=RTOL)
    assert sorted(json.loads((run / "train_time.json").read_text())) == ["2", "4"]
    assert not list(run.glob(".write-probe-*"))
    # the checkpoint holds the final state: restored in this (single) process, bit for bit
    from genjax.train import restore_params
    from genjax.vae import mlp_vae

    restored = restore_params(run, mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(8,)), x[:2], ema=True)
    assert all(np.array_equal(v, p[0]["vae" + k]) for k, v in _state_arrays(restored).items())


def test_a_dying_process_stops_the_others_with_a_clear_error(killed):
    out, results = killed
    (rc0, log0), (rc1, _) = results
    assert rc1 == -signal.SIGKILL
    assert rc0 == 3, f"process 0 exited {rc0} instead of raising DistributedError:\n{log0[-4000:]}"
    msg = (out / "error0.txt").read_text()
    assert msg.startswith("process 0 of 2: a collective with the other processes failed at ")
    assert "another process probably died" in msg
    # no hang: process 0 left with its own exit code 3, not killed by the launch's 240 s timeout
    ckpts = sorted(d.name for d in (out / "killed" / "checkpoints").iterdir())
    assert ckpts == ["2"]


def test_a_killed_run_resumes_on_one_or_two_processes_with_the_same_result(tmp_path, killed, reference):
    out, results = killed
    assert results[0][0] == 3  # (the kill happened as planned)
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(out / "killed", one)
    shutil.copytree(out / "killed", two / "resume")
    x, y = _data()
    r1 = _vae_run(x, out_dir=one, resume=True)
    assert r1.resumed_from == 2
    _assert_close(_state_arrays(r1.state), reference["vae"])
    # two processes: the VAE resumed from step 2 (each process gathering its rows), then a GAN
    _assert_ok(launch_workers(2, two, ["resume", "gan"]))
    p0, p1 = _load(two / "p0.npz"), _load(two / "p1.npz")
    assert all(np.array_equal(p0[k], p1[k]) for k in p0)
    assert (two / "resumed_from0.txt").read_text() == "2" == (two / "resumed_from1.txt").read_text()
    _assert_close(_group(p0, "resume"), reference["vae"])
    _assert_close(_group(p0, "gan"), reference["gan"])
    lines = [json.loads(l)["step"] for l in (two / "resume" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [2, 4]


def _cli_train(out, name, *extra):
    return ["train", "vae", "--data", "digits", "--hidden", "8", "--latent-dim", "2", "--steps", "4", "--batch-size", "8",
            "--log-every", "2", "--checkpoint-every", "2", "--steps-per-dispatch", "2", "--no-eval", "--no-progress",
            "--out", str(out), "--name", name, *extra]


def test_cli_trains_on_two_processes_from_flags_or_environment(tmp_path):
    from genjax import cli

    from genjax.train.distributed import free_port

    port = free_port()
    flags = [sys.executable, "-m", "genjax.cli", *_cli_train(tmp_path, "two")]
    results = launch([flags + ["--num-processes", "2", "--process-id", "0", "--coordinator", f"127.0.0.1:{port}"],
                      ["env", "JAX_NUM_PROCESSES=2", "JAX_PROCESS_ID=1", f"JAX_COORDINATOR_ADDRESS=127.0.0.1:{port}",
                       *flags]], tmp_path / "logs")
    _assert_ok(results)
    assert '"run_dir"' in results[0][1] and '"run_dir"' not in results[1][1]  # process 0 reports, alone
    assert "of 2 processes" in results[0][1]
    assert cli.main(_cli_train(tmp_path, "one")) == 0
    params = {}
    for name in ("one", "two"):
        *_, p, step = cli._load_run(str(tmp_path / name))
        assert step == 4
        params[name] = _flat(p)
    _assert_close(params["two"], params["one"])
    assert json.loads((tmp_path / "two" / "config.json").read_text()) == json.loads((tmp_path / "one" / "config.json").read_text())


@pytest.mark.parametrize("extra, message", [
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1"],
     r"--process-id must be an integer in \[0, 2\)"),
    (["--num-processes", "2", "--coordinator", "127.0.0.1:1"], "--num-processes=2 needs --process-id"),
    (["--num-processes", "2", "--process-id", "1"], "--num-processes=2 needs --coordinator"),
    (["--process-id", "1"], "--process-id is set but --num-processes is not"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "localhost"], "--coordinator must be HOST:PORT"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "127.0.0.1:99999"], "--coordinator must be HOST:PORT"),
    (["--num-processes", "0"], "--num-processes must be a positive"),
    (["--num-processes", "1", "--heartbeat-timeout", "0"], "--heartbeat-timeout must be a positive"),
])
def test_cli_rejects_inconsistent_process_flags(tmp_path, capsys, monkeypatch, extra, message):
    import re

    from genjax import cli

    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    args = _cli_train(tmp_path, "r", *extra)
    assert cli.main(args) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_cli_needs_a_run_name_with_several_processes(tmp_path, capsys, monkeypatch):
    from genjax import cli

    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
    args = [a for a in _cli_train(tmp_path, "r") if a not in ("--name", "r")]
    assert cli.main(args) == 1
    assert "--num-processes 2: give the run a --name" in capsys.readouterr().err


def test_process_group_reads_the_environment_and_checks_it():
    from genjax.train.distributed import ProcessGroup, process_group

    env = {"JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3", "JAX_COORDINATOR_ADDRESS": "[::1]:1234"}
    assert process_group(environ=env) == ProcessGroup("[::1]:1234", 4, 3)
    assert process_group(process_id=0, environ=env) == ProcessGroup("[::1]:1234", 4, 0)  # arguments win
    assert process_group(environ={}) is None and process_group(1, 0, environ={}) is None
    with pytest.raises(ValueError, match=r"\$JAX_PROCESS_ID must be an integer in \[0, 2\)"):
        process_group(2, environ={**env, "JAX_PROCESS_ID": "2"})
    with pytest.raises(ValueError, match=r"\$JAX_NUM_PROCESSES must be an integer, got 'two'"):
        process_group(environ={"JAX_NUM_PROCESSES": "two"})


def test_shard_rows_is_the_sharded_gathered_batch():
    import jax

    from genjax.train import data_mesh
    from genjax.train.sharding import shard_batch, shard_rows

    mesh = data_mesh(1)
    data = {"x": np.arange(60, dtype=np.float32).reshape(10, 3, 2), "y": np.arange(10)}
    idx = np.array([[3, 1, 4, 1], [5, 9, 2, 6]])
    got, want = shard_rows(data, idx, mesh), shard_batch(jax.tree_util.tree_map(lambda a: a[idx], data), mesh, stacked=True)
    for k in data:
        assert got[k].sharding == want[k].sharding
        np.testing.assert_array_equal(np.asarray(got[k]), data[k][idx])


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4]), sys.argv[5:])
