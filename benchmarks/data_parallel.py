"""``data_parallel``: the train step on a ``jax.sharding.Mesh`` of N devices vs one device.

The seed VAE (784-400-20, Bernoulli, Adam) at a global batch of 128 and 1024, split
along the mesh's ``"data"`` axis (``genjax.train.data_mesh`` /
``make_sharded_step``: state replicated, batch sharded, XLA inserts the gradient
all-reduce). N = 1, 2, 4 devices.

On CPU the N devices are forced with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``,
which must be set before JAX is imported, so the mesh figures come from a worker
process (``python -m benchmarks.data_parallel --worker``). Forced host devices share
the machine's cores: on a 2-core CPU a mesh cannot be faster than one device (which
already uses both cores for its matmuls); there the figures measure what sharding
costs (partitioned matmuls, the all-reduce, per-device dispatch). On a machine with
N accelerators the same code splits the work N ways.

Rows: ``plain`` is ``make_train_step`` without a mesh in this (parent) process, one
CPU device with the whole thread pool; ``mesh N`` rows run in the worker;
``vs mesh 1`` is steps/s relative to the 1-device mesh of the same batch (the scaling).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, block, measure, ratio

DEVICES = (1, 2, 4)
BATCHES = (128, 1024)


def _model_and_state(batch: int):
    from genjax.train import TrainState
    from genjax.vae.constructors import seed_vae

    model = seed_vae(784)
    tx = optax.adam(1e-3)
    k_data, k_init, k_train = jax.random.split(jax.random.PRNGKey(0), 3)
    x = np.asarray(jax.random.bernoulli(k_data, 0.5, (batch, 784)), np.float32)
    state = TrainState.create(model.init(k_init, x[:2]), tx, k_train)
    return model, tx, state, x


def _measure_plain(batch: int, settings: Settings) -> float:
    from genjax.train import make_train_step

    model, tx, state, x = _model_and_state(batch)
    return measure(Stepper(make_train_step(model.loss, tx), state, block(jax.device_put(x))), settings)["median_s"]


def _measure_mesh(batch: int, n: int, settings: Settings) -> float:
    from genjax.train import make_train_step
    from genjax.train.sharding import data_mesh, make_sharded_step, replicate, shard_batch

    mesh = data_mesh(n)
    model, tx, state, x = _model_and_state(batch)
    step = make_sharded_step(make_train_step(model.loss, tx, jit=False), mesh)
    return measure(Stepper(step, replicate(state, mesh), shard_batch(x, mesh)), settings)["median_s"]


def worker(devices: tuple[int, ...], batches: tuple[int, ...], quick: bool) -> dict:
    """Runs in the process with forced devices: seconds per step for every (batch, N)."""
    settings = Settings.make(quick)
    have = len(jax.devices())
    out = {"device_count": have, "platform": jax.devices()[0].platform, "s_per_step": {}}
    for b in batches:
        for n in devices:
            if n <= have and b % n == 0:
                out["s_per_step"][f"{b}/{n}"] = _measure_mesh(b, n, settings)
    return out


def _run_worker(settings: Settings) -> dict:
    root = pathlib.Path(__file__).resolve().parent.parent
    flags = os.environ.get("XLA_FLAGS", "")
    env = {
        **os.environ,
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={max(DEVICES)}".strip(),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "benchmarks.data_parallel", "--worker",
           "--devices", ",".join(map(str, DEVICES)), "--batches", ",".join(map(str, BATCHES))]
    if settings.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, cwd=root, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"data_parallel worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(settings: Settings) -> EntryResult:
    plain = {b: _measure_plain(b, settings) for b in BATCHES}
    res = _run_worker(settings)
    rows = []
    for b in BATCHES:
        rows.append({"batch": b, "mode": "plain (no mesh)", "devices": 1, "ms/step": 1e3 * plain[b],
                     "steps/s": 1.0 / plain[b], "vs mesh 1": None})
        base = res["s_per_step"].get(f"{b}/1")
        for n in DEVICES:
            t = res["s_per_step"].get(f"{b}/{n}")
            if t is None:
                continue
            rows.append({"batch": b, "mode": f"mesh {n}", "devices": n, "ms/step": 1e3 * t,
                         "steps/s": 1.0 / t, "vs mesh 1": ratio(base, t)})
    cores = os.cpu_count()
    notes = [
        f"mesh rows: {res['device_count']} forced {res['platform']} devices in a worker process "
        f"(XLA_FLAGS=--xla_force_host_platform_device_count={max(DEVICES)}); this machine has {cores} CPU cores",
        "'vs mesh 1' = steps/s of N devices / steps/s of the 1-device mesh, same global batch; "
        "forced CPU devices share the same cores, so values near or below 1 measure the cost of sharding, "
        "not a lack of scaling on real accelerators",
    ]
    return EntryResult("data_parallel", "train step on a Mesh of N devices (batch split along 'data') vs one device",
                       rows, [], notes)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="data_parallel benchmark worker (run by benchmarks.run)")
    p.add_argument("--worker", action="store_true", required=True)
    p.add_argument("--devices", default=",".join(map(str, DEVICES)))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    out = worker(tuple(int(v) for v in args.devices.split(",")),
                 tuple(int(v) for v in args.batches.split(",")), args.quick)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
