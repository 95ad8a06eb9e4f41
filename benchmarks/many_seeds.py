"""``many_seeds``: S = 1, 2, 4, 8 independent runs (seeds) of the IWAE-paper VAE
(784-200-200-50, batch 20 as in the paper) trained at once with ``jax.vmap`` over
the train state and a per-seed batch, against one un-vmapped run.

Figures: time of one (vmapped) step for all S seeds, its ratio to one seed's step,
and the time per seed-step.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, Target, block, measure, ratio
from genjax.train import TrainState, make_train_step
from genjax.vae.models import iwae_paper_vae

SEEDS = (1, 2, 4, 8)
BATCH = 20


def run(settings: Settings) -> EntryResult:
    model = iwae_paper_vae(784)
    tx = optax.adam(1e-3)
    k_data, k_run = jax.random.split(jax.random.PRNGKey(0))
    x0 = jax.random.bernoulli(k_data, 0.5, (BATCH, 784)).astype(np.float32)

    def create(key):
        k_init, k_train = jax.random.split(key)
        return TrainState.create(model.init(k_init, x0), tx, k_train)

    single = Stepper(make_train_step(model.loss, tx), create(k_run), block(x0))
    t_one = measure(single, settings)["median_s"]
    rows = [{"seeds": 1, "mode": "no vmap", "ms/step": 1e3 * t_one, "x one seed": 1.0, "ms per seed-step": 1e3 * t_one}]
    vstep = jax.jit(jax.vmap(make_train_step(model.loss, tx, jit=False)), donate_argnums=0)
    found = {}
    for s in SEEDS:
        states = jax.vmap(create)(jax.random.split(k_run, s))
        xs = jax.random.bernoulli(jax.random.fold_in(k_data, s), 0.5, (s, BATCH, 784)).astype(np.float32)
        t = measure(Stepper(vstep, states, block(xs)), settings)["median_s"]
        found[s] = ratio(t, t_one)
        rows.append({"seeds": s, "mode": "vmap", "ms/step": 1e3 * t, "x one seed": found[s], "ms per seed-step": 1e3 * t / s})
    targets = [Target("8 vmapped seeds / one seed", found.get(8), 3.0, higher_is_better=False)]
    notes = [f"batch {BATCH} per seed, each seed its own data; a vmapped step updates all seeds"]
    return EntryResult("many_seeds", "S seeds at once with jax.vmap vs one seed, time per step", rows, targets, notes)
