"""``many_seeds``: S = 1, 2, 4, 8 independent runs (seeds) of the IWAE-paper VAE
(784-200-200-50, batch 20 as in the paper) trained at once by ``genjax.train.fit(...,
seeds=S)`` (train states stacked, the step ``jax.vmap``-ped, each seed its own batches),
against one run of ``fit`` without seeds.

Time per step: ``fit`` run for ``K`` and for ``(1 + R) K`` steps with ``steps_per_dispatch
= K``; both compile the same chunk once, so the difference of their wall times is ``R K``
steps of training. Figures: time of one (vmapped) step for all S seeds, its ratio to one
seed's step, and the time per seed-step.
"""

from __future__ import annotations

import statistics

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Target, ratio
from genjax.train import fit
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
    targets = [Target("8 vmapped seeds / one seed", found.get(8), 3.0, higher_is_better=False)]
    notes = [f"batch {BATCH} per seed, each seed its own batches; genjax.train.fit(seeds=S), the steps of a chunk in one "
             "lax.scan; per step = difference of two fit runs' wall times over their difference in steps"]
    return EntryResult("many_seeds", "S seeds at once with fit(seeds=S) vs one seed, time per step", rows, targets, notes)
