"""``many_seeds``: S = 1, 2, 4, 8 independent runs (seeds) of the IWAE-paper VAE
(784-200-200-50, batch 20 as in the paper) trained at once by ``genjax.train.fit(...,
seeds=S)`` (train states stacked, the step ``jax.vmap``-ped, each seed its own batches),
against one run of ``fit`` without seeds.

Time per step: ``fit`` run for ``K`` and for ``(1 + R) K`` steps with ``steps_per_dispatch
= K``; both compile the same chunk once, so the difference of their wall times is ``R K``
steps of training. Figures: time of one (vmapped) step for all S seeds, its ratio to one
seed's step, and the time per seed-step.

Schedules of the ``SCHEDULE_SEEDS`` = 8 seeds' step (the same train step, donated, one call
per step, timed side by side with one seed's step, repeats interleaved): ``vmap`` (what
``fit(seeds=S)`` does: every matmul becomes one batched ``dot_general`` over the seeds),
``lax.map`` (the seeds one after another inside one dispatch) and a Python loop of S
single-seed calls. The seeds cannot share one plain matmul (each has its own weights), so
the batched ``dot_general`` is the "seeds on the batch axis" schedule. The last rows
measure the limit: the S seeds' Adam update alone (a memory-bound pass over
``7 x S x params`` floats) and its ratio to one seed's whole step.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Target, block, calibrate, ratio, time_once
from genjax.train import TrainState, fit, make_multi_step, make_train_step
from genjax.vae.constructors import iwae_paper_vae

SEEDS = (1, 2, 4, 8)
BATCH = 20


def step_time(model, data, seeds, settings: Settings) -> float:
    """Median seconds per training step of ``fit(..., seeds=seeds)`` (None: one run)."""
    k, extra = (2, 1) if settings.quick else (50, 4)

    def wall(steps: int) -> float:
        return fit(model, data, num_steps=steps, batch_size=BATCH, optimizer=optax.adam(1e-3), seeds=seeds,
                   steps_per_dispatch=k, log_every=steps, checkpoint_every=None, progress=False).wall_time_s

    per = [(wall((1 + extra) * k) - wall(k)) / (extra * k) for _ in range(settings.repeats)]
    return max(statistics.median(per), 1e-9)


SCHEDULE_SEEDS = 8
#: steps per call of the scanned schedules
SCAN_K = 10


def _stepper(step, state, xs):
    box = [state]

    def run(n):
        for _ in range(n):
            box[0] = step(box[0], xs)
        return block(box[0])

    return run


def schedules(model, data, seeds: int, settings: Settings) -> dict:
    """Seconds per step of each schedule of ``seeds`` seeds' step and of one seed's (medians of
    interleaved repeats), and of the seeds' Adam update alone."""
    tx = optax.adam(1e-3)
    x = jnp.asarray(data[:BATCH])
    one_step = make_train_step(model.loss, tx, jit=False)
    step = lambda st, b: one_step(st, b)[0]
    create = lambda k: TrainState.create(model.init(k, x), tx, k)
    keys = jax.random.split(jax.random.PRNGKey(1), seeds)
    xs = jnp.stack([jnp.asarray(data[i * BATCH:(i + 1) * BATCH]) for i in range(seeds)])
    stacked = lambda: jax.vmap(create)(keys)
    one_jit = jax.jit(step, donate_argnums=0)

    def python_loop(states, batches):
        return [one_jit(st, b) for st, b in zip(states, batches)]

    def adam(st, g):
        u, o = tx.update(g, st.opt_state, st.params)
        return st.replace(params=optax.apply_updates(st.params, u), opt_state=o)

    grads = jax.tree_util.tree_map(jnp.zeros_like, stacked().params)
    k = 2 if settings.quick else SCAN_K  # steps per call of the scanned schedules, as fit's chunks
    scan_one = make_multi_step(one_step, loop="scan")
    scan_vmap = make_multi_step(jax.vmap(one_step), loop="scan")
    per_step = lambda multi, state, batches: _stepper(lambda st, b: multi(st, b)[0], state, batches)
    runs = {
        "one seed": _stepper(one_jit, create(keys[0]), x),
        f"one seed, {k} steps per lax.scan": per_step(scan_one, create(keys[0]), jnp.stack([x] * k)),
        f"vmap, {k} steps per lax.scan (fit)": per_step(scan_vmap, stacked(), jnp.stack([xs] * k)),
        "vmap": _stepper(jax.jit(jax.vmap(step), donate_argnums=0), stacked(), xs),
        "lax.map": _stepper(jax.jit(lambda sts, bs: jax.lax.map(lambda a: step(*a), (sts, bs)), donate_argnums=0), stacked(), xs),
        "python loop": _stepper(python_loop, [create(k) for k in keys], list(xs)),
        "adam alone (vmap)": _stepper(jax.jit(jax.vmap(adam), donate_argnums=0), stacked(), grads),
    }
    n = {name: calibrate(r, settings) for name, r in runs.items()}
    times = {name: [] for name in runs}
    for _ in range(settings.repeats):  # interleaved: load changes hit every schedule alike
        for name, r in runs.items():
            times[name].append(time_once(lambda: r(n[name])) / n[name])
    per_call = {name: statistics.median(t) for name, t in times.items()}
    return {name: t / k if "lax.scan" in name else t for name, t in per_call.items()}


def run(settings: Settings) -> EntryResult:
    model = iwae_paper_vae(784)
    data = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, (10 * BATCH, 784)), np.float32)
    t_one = step_time(model, data, None, settings)
    rows = [{"seeds": 1, "mode": "no vmap", "ms/step": 1e3 * t_one, "x one seed": 1.0, "ms per seed-step": 1e3 * t_one}]
    found = {}
    for s in SEEDS:
        t = step_time(model, data, s, settings)
        found[s] = ratio(t, t_one)
        rows.append({"seeds": s, "mode": "vmap", "ms/step": 1e3 * t, "x one seed": found[s], "ms per seed-step": 1e3 * t / s})
    sched = schedules(model, data, SCHEDULE_SEEDS, settings)
    t1 = sched.pop("one seed")
    t1_scan = next(t for name, t in sched.items() if name.startswith("one seed"))
    for name, t in sched.items():  # each against one seed's step of the same kind (scanned or dispatched)
        seeds = 1 if name.startswith("one seed") else SCHEDULE_SEEDS
        base = t1_scan if "lax.scan" in name and seeds > 1 else t1
        rows.append({"seeds": seeds, "mode": f"step: {name}", "ms/step": 1e3 * t, "x one seed": t / base,
                     "ms per seed-step": 1e3 * t / seeds})
    targets = [Target("8 vmapped seeds / one seed", found.get(8), 3.0, higher_is_better=False)]
    notes = [f"batch {BATCH} per seed, each seed its own batches; genjax.train.fit(seeds=S), the steps of a chunk in one "
             "lax.scan; per step = difference of two fit runs' wall times over their difference in steps",
             f"'step: ...' rows: {SCHEDULE_SEEDS} seeds' jitted step per call (fit's vmap, lax.map, a Python loop of "
             "single-seed calls, and fit's schedule: the vmapped step in K-step lax.scan chunks) and the seeds' Adam update "
             "alone, 'x one seed' against one seed's jitted step (the scanned rows: one seed's scanned step) timed in the "
             "same interleaved repeats, without fit's compilations whose noise enters the fit rows; the vmapped step cannot beat its own Adam update, which moves "
             f"{SCHEDULE_SEEDS}x one seed's bytes"]
    return EntryResult("many_seeds", "S seeds at once with fit(seeds=S) vs one seed, time per step", rows, targets, notes)
