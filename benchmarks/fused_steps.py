"""``fused_steps``: K train steps per dispatch (``make_multi_step``, one ``lax.scan``)
against one jitted step per Python iteration (``make_train_step``), for the IWAE-paper
VAE (784-200-200-50 tanh, Bernoulli, Adam) at batch 20 and 100, where the per-step
dispatch cost is a large part of the step.

Both sides see the same K distinct batches, already on the device (the per-step side
gets them as K separate arrays, so it pays no slicing). Figures are time per step.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Target, block, measure, ratio
from genjax.train import TrainState, make_multi_step, make_train_step
from genjax.vae.constructors import iwae_paper_vae

BATCHES = (20, 100)


def _setup(batch: int, k: int):
    model = iwae_paper_vae(784)
    k_init, k_data, k_train = jax.random.split(jax.random.PRNGKey(0), 3)
    stack = jax.random.bernoulli(k_data, 0.5, (k, batch, 784)).astype(np.float32)
    tx = optax.adam(1e-3)
    params = model.init(k_init, stack[0])
    return model, tx, params, k_train, block(stack)


def run(settings: Settings) -> EntryResult:
    k = 4 if settings.quick else 100
    rows, targets = [], []
    for batch in BATCHES:
        model, tx, params, k_train, stack = _setup(batch, k)
        singles = [block(stack[i]) for i in range(k)]
        step = make_train_step(model.loss, tx)
        multi = make_multi_step(make_train_step(model.loss, tx, jit=False))
        # two keys: TrainState.create keeps the key array itself, and each step donates its state
        box = {"one": TrainState.create(params, tx, k_train), "multi": TrainState.create(params, tx, jax.numpy.copy(k_train))}

        def per_step(n):  # n rounds of K single dispatches
            for _ in range(n):
                for b in singles:
                    box["one"], _ = step(box["one"], b)
            return block(box["one"])

        def fused(n):  # n dispatches of K steps
            for _ in range(n):
                box["multi"], _ = multi(box["multi"], stack)
            return block(box["multi"])

        t_one = measure(per_step, settings)["median_s"] / k
        t_multi = measure(fused, settings)["median_s"] / k
        speedup = ratio(t_one, t_multi)
        rows.append({
            "model": "IWAE-paper VAE 784-200-200-50", "batch": batch, "K": k,
            "per-step ms": 1e3 * t_one, "fused ms/step": 1e3 * t_multi, "speedup": speedup,
            "fused steps/s": 1.0 / t_multi,
        })
        targets.append(Target(f"fused/per-step speedup b{batch}", speedup, 1.5))
    notes = ["per-step: K jitted calls from Python (one dispatch each); fused: one make_multi_step call scanning K steps"]
    return EntryResult("fused_steps", "K steps per dispatch (lax.scan) vs one jitted step per Python iteration", rows, targets, notes)
