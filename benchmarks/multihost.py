"""``multihost``: ``fit`` steps/s on 1, 2 and 4 processes (``jax.distributed``, one CPU device each).

The seed VAE (784-400-20, Bernoulli, Adam) at a global batch of 128 on 1024 random
binary images, trained by ``fit(..., mesh=data_mesh())``: each process joins the others
on 127.0.0.1 (:func:`genjax.train.distributed.initialize`, collectives over gloo/TCP),
gathers its slice of every global batch and runs the sharded step; the gradient is
all-reduced across the processes every step. The 1-process row is the same ``fit`` on a
1-device mesh, without ``jax.distributed``.

Timing: ``fit``'s ``on_chunk`` marks the end of every dispatch of ``steps_per_dispatch``
steps (its metrics already on the host); the first dispatch (compilation) is dropped and
the figure is the median seconds per step of the others, read in process 0.

On a machine with fewer cores than processes (this project's has 2), the processes
share the cores: the figures then measure what the processes, the per-step TCP
all-reduce and the per-process dispatch cost, not a speed-up. On a cluster, one process
per host or accelerator splits the work N ways (docs/scaling.md gives the command).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

from benchmarks.common import EntryResult, Settings, ratio

PROCESSES = (1, 2, 4)
BATCH = 128


def worker(port: int, num_processes: int, process_id: int, batch: int, quick: bool) -> dict:
    """One process of the run: seconds per step of each dispatch after the first."""
    from genjax.train import distributed

    if num_processes > 1:
        distributed.initialize(distributed.ProcessGroup(f"127.0.0.1:{port}", num_processes, process_id),
                               heartbeat_timeout_s=60, init_timeout_s=120)
    import jax
    import numpy as np

    from genjax.train import data_mesh, fit
    from genjax.vae.constructors import seed_vae

    per_dispatch = 2 if quick else 20
    dispatches = 3 if quick else 8
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, (1024, 784)), np.float32)
    marks = []
    fit(seed_vae(784), x, num_steps=per_dispatch * dispatches, batch_size=batch, mesh=data_mesh(), progress=False,
        steps_per_dispatch=per_dispatch, log_every=per_dispatch * dispatches, checkpoint_every=None,
        on_chunk=lambda step, metrics: marks.append(time.perf_counter()))
    per_step = [(b - a) / per_dispatch for a, b in zip(marks[:-1], marks[1:])]
    return {"s_per_step": statistics.median(per_step), "all_s": per_step, "steps_per_dispatch": per_dispatch,
            "devices": jax.device_count(), "processes": jax.process_count()}


def _measure(num_processes: int, settings: Settings) -> dict:
    from genjax.train.distributed import free_port, launch_local, local_env

    root = pathlib.Path(__file__).resolve().parent.parent
    port = str(free_port())
    cmds = [[sys.executable, "-m", "benchmarks.multihost", "--worker", port, str(num_processes), str(i),
             "--batch", str(BATCH)] + (["--quick"] if settings.quick else []) for i in range(num_processes)]
    with tempfile.TemporaryDirectory() as logs:
        results = launch_local(cmds, logs, timeout_s=580, env=local_env(root))
    for i, (rc, out) in enumerate(results):
        if rc != 0:
            raise RuntimeError(f"multihost worker {i} of {num_processes} failed (exit {rc}):\n{out[-3000:]}")
    return json.loads(results[0][1].strip().splitlines()[-1])


def run(settings: Settings) -> EntryResult:
    res = {n: _measure(n, settings) for n in PROCESSES}
    base = res[1]["s_per_step"]
    rows = [{"processes": n, "devices": r["devices"], "batch": BATCH, "ms/step": 1e3 * r["s_per_step"],
             "steps/s": 1.0 / r["s_per_step"], "vs 1 process": ratio(base, r["s_per_step"])} for n, r in res.items()]
    cores = os.cpu_count()
    notes = [
        f"fit(seed VAE 784-400-20, global batch {BATCH}, mesh=data_mesh()) on N processes of one CPU device each, "
        "joined by jax.distributed on 127.0.0.1 (gloo all-reduce over TCP every step); median seconds per step of "
        f"the dispatches after the first ({res[1]['steps_per_dispatch']} steps each), read in process 0",
        f"this machine has {cores} CPU cores: with more processes than cores they share them, so 'vs 1 process' "
        "(steps/s of N processes / steps/s of 1) below 1 is the cost of the processes and the TCP all-reduce, "
        "not a lack of scaling; on a cluster each process has its own host or accelerator",
    ]
    return EntryResult("multihost", "fit steps/s on 1, 2, 4 processes (jax.distributed, one global mesh)", rows, [], notes)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="multihost benchmark worker (run by benchmarks.run)")
    p.add_argument("--worker", nargs=3, type=int, metavar=("PORT", "N", "I"), required=True)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    print(json.dumps(worker(*args.worker, args.batch, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
