"""``breakdown``: where a train step's time goes, for the cases whose targets are missed.

For each case the full step (``make_train_step``, jitted, state donated, as in the
other entries) is split into its two halves, each jitted and timed alone: the
**gradient** (``jax.value_and_grad`` of the loss: forward and backward) and the
**Adam update** (``optimizer.update`` + ``apply_updates`` on a fixed gradient). The
gradient half is also given as GFLOP/s and % of this run's matmul peak (FLOPs as in
``train_step``). A last row times an empty dispatch (a jitted ``x + 1`` on a scalar):
the per-call cost that ``fused_steps`` and the scan samplers save.

Cases: the seed VAE at batch 128 and 1024 (``train_step``'s % of peak targets) and the
IWAE-paper VAE at batch 20, one seed and 8 vmapped seeds (``many_seeds``' 8-seeds target).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, block, dense_flops, measure
from genjax.train import TrainState, make_train_step
from genjax.vae.constructors import iwae_paper_vae, seed_vae

IWAE_ENC = [(784, 200), (200, 200), (200, 100)]
IWAE_DEC = [(50, 200), (200, 200), (200, 784)]
SEED_ENC = [(784, 400), (400, 40)]
SEED_DEC = [(20, 400), (400, 784)]

#: (label, model factory, batch, seeds (None: no vmap), encoder widths, decoder widths)
CASES = (
    ("seed VAE", lambda: seed_vae(784), 128, None, SEED_ENC, SEED_DEC),
    ("seed VAE", lambda: seed_vae(784), 1024, None, SEED_ENC, SEED_DEC),
    ("IWAE-paper VAE", lambda: iwae_paper_vae(784), 20, None, IWAE_ENC, IWAE_DEC),
    ("IWAE-paper VAE", lambda: iwae_paper_vae(784), 20, 8, IWAE_ENC, IWAE_DEC),
)


def grad_flops(batch: int, enc, dec) -> float:
    """Matmul FLOPs of forward + backward of a VAE loss (as ``train_step.step_flops``)."""
    return 3 * (dense_flops(batch, enc) + dense_flops(batch, dec)) - dense_flops(batch, enc[:1])


def _loop(fn, *args):
    def run(n):
        out = None
        for _ in range(n):
            out = fn(*args)
        return block(out)

    return run


def _case(make, batch: int, seeds, settings: Settings) -> dict:
    model, tx = make(), optax.adam(1e-3)
    x = jnp.asarray(np.asarray(jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, (batch, 784)), np.float32))

    def create(key):
        return TrainState.create(model.init(key, x), tx, key)

    def grad(state, batch_x):
        (_, _), g = jax.value_and_grad(model.loss, has_aux=True)(state.params, state.key, batch_x)
        return g

    def update(state, g):
        updates, opt = tx.update(g, state.opt_state, state.params)
        return optax.apply_updates(state.params, updates), opt

    step = make_train_step(model.loss, tx, jit=False)
    if seeds:
        state, xs = jax.vmap(create)(jax.random.split(jax.random.PRNGKey(1), seeds)), jnp.stack([x] * seeds)
        grad, update, step = jax.vmap(grad), jax.vmap(update), jax.vmap(step)
    else:
        state, xs = create(jax.random.PRNGKey(1)), x
    grad_j, update_j = jax.jit(grad), jax.jit(update)
    g = block(grad_j(state, xs))
    t_grad = measure(_loop(grad_j, state, xs), settings)["median_s"]
    t_update = measure(_loop(update_j, state, g), settings)["median_s"]
    t_full = measure(Stepper(jax.jit(step, donate_argnums=0), state, xs), settings)["median_s"]
    return {"full": t_full, "grad": t_grad, "update": t_update,
            "params": sum(a.size for a in jax.tree_util.tree_leaves(state.params))}


def dispatch_s(settings: Settings) -> float:
    """Seconds per call of a jitted ``x + 1`` on a scalar (the cost of one dispatch)."""
    f, x = jax.jit(lambda v: v + 1), jnp.zeros(())
    return measure(_loop(f, x), settings)["median_s"]


def run(settings: Settings, peak: float | None = None) -> EntryResult:
    rows = []
    for label, make, batch, seeds, enc, dec in CASES:
        r = _case(make, batch, seeds, settings)
        gflops = grad_flops(batch, enc, dec) * (seeds or 1) / r["grad"] / 1e9
        rows.append({
            "case": label + (f" x{seeds} seeds (vmap)" if seeds else ""), "batch": batch,
            "params (M)": r["params"] / 1e6, "full ms": 1e3 * r["full"], "grad ms": 1e3 * r["grad"],
            "adam ms": 1e3 * r["update"], "adam share": r["update"] / r["full"],
            "grad GFLOP/s": gflops, "grad % peak": None if not peak else 100 * gflops * 1e9 / peak,
        })
    t = dispatch_s(settings)
    rows.append({"case": "empty jitted call (dispatch)", "batch": None, "params (M)": None, "full ms": 1e3 * t,
                 "grad ms": None, "adam ms": None, "adam share": None, "grad GFLOP/s": None, "grad % peak": None})
    notes = [
        "grad and adam are jitted and timed separately (not donated); full is the donated train step, "
        "so full can be less than grad + adam (fusion, buffer reuse) or more (metrics, the key split)",
        "adam share = adam ms / full ms: Adam reads params, grads and both moments and writes three of them, "
        "a memory-bound pass over 7 arrays of the parameter size",
    ]
    return EntryResult("breakdown", "where the step time goes: gradient vs Adam update, and one dispatch",
                       rows, [], notes)
