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

GAN rows (``train_step``'s GAN b128 target): the seed MLP GAN's library step
(``genjax.train.make_step``, jitted, state donated) against :func:`minimal_gan_step`, a
hand-written jitted JAX step of the same model with the same random draws and the same
update (no metrics, no checks), and the library step's parts, each jitted and timed
alone: the discriminator's and the generator's gradient (``model.d_loss`` /
``model.g_loss``), each player's Adam update, the metrics and non-finite checks (global
gradient norms, ``isfinite``) and the step's key derivation. Then the step that
``train_step`` times (``share_fakes=True``: one draw of fakes per step, as the seed code
draws one ``z``; ``G(z)`` computed once, G's gradient pulled back through it) beside the
minimal step with that one draw, which computes ``G(z)`` twice as the seed's PyTorch code does.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, block, dense_flops, measure
from genjax.gan.constructors import seed_gan
from genjax.gan.step import gan_adam
from genjax.train import TrainState, make_step, make_train_step
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
    norm_j = jax.jit(lambda g: jnp.isfinite(optax.tree.norm(g)))  # the step's grad_norm metric and finite check
    t_norm = measure(_loop(norm_j, g), settings)["median_s"]
    t_full = measure(Stepper(jax.jit(step, donate_argnums=0), state, xs), settings)["median_s"]
    return {"full": t_full, "grad": t_grad, "update": t_update, "norm": t_norm,
            "params": sum(a.size for a in jax.tree_util.tree_leaves(state.params))}


#: batches of the GAN rows
GAN_BATCHES = (128,)
GAN_LATENT = 100


def gan_step_keys(state_key, step):
    """The library step's keys (``make_adversarial_step`` then ``GAN.d_loss`` / ``GAN._train_fakes``
    for ``n_critic = 1``): the latent draws' keys of the critic and of the generator update."""
    k_t, k_d, k_g = jax.random.split(jax.random.fold_in(state_key, step), 3)
    k_fake, _ = jax.random.split(jax.random.split(k_d, 1)[0])
    return jax.random.split(k_fake, 4)[0], jax.random.split(k_g, 4)[0]


def minimal_gan_step(model, tx, *, shared: bool = False):
    """The straightforward step of a logistic non-saturating GAN with ``pack = 1`` (e.g. ``seed_gan``):
    D's Adam update on ``softplus(-D(x)) + softplus(D(G(z1)))``, then G's on
    ``softplus(-D'(G(z2)))`` against the updated D, with the library step's draws
    (:func:`gan_step_keys`). State ``(params, {"generator", "discriminator"} Adam states, key, step)``;
    returns the new state (un-jitted). The reference for the library step's speed and numbers.
    ``shared``: ``z1 = z2`` (the seed code's one draw per step, ``share_fakes``), ``G(z)``
    still computed twice as the seed's PyTorch code does."""
    gen, disc = model.generator, model.discriminator

    def step(state, x):
        params, opt, key, i = state
        kz1, kz2 = gan_step_keys(key, i)
        kz1 = kz2 if shared else kz1
        z1, z2 = (jax.random.normal(k, (x.shape[0], model.latent_dim)) for k in (kz1, kz2))
        fake = jax.lax.stop_gradient(gen.apply(params["generator"], z1))

        def d_loss(dp):
            return jnp.mean(jax.nn.softplus(-disc.apply(dp, x)) + jax.nn.softplus(disc.apply(dp, fake)))

        def g_loss(gp):
            return jnp.mean(jax.nn.softplus(-disc.apply(d_new, gen.apply(gp, z2))))

        d_old = params["discriminator"]
        u, d_opt = tx.discriminator.update(jax.grad(d_loss)(d_old), opt["discriminator"], d_old)
        d_new = optax.apply_updates(d_old, u)
        g_old = params["generator"]
        u, g_opt = tx.generator.update(jax.grad(g_loss)(g_old), opt["generator"], g_old)
        new = {"generator": optax.apply_updates(g_old, u), "discriminator": d_new}
        return new, {"generator": g_opt, "discriminator": d_opt}, key, i + 1

    return step


def _gan_rows(batch: int, settings: Settings) -> list[dict]:
    model, tx = seed_gan(784, GAN_LATENT), gan_adam(2e-4, b1=0.5)
    x = block(jax.random.uniform(jax.random.PRNGKey(0), (batch, 784), minval=-1.0, maxval=1.0))
    state = TrainState.create(model.init(jax.random.PRNGKey(1), x), tx, jax.random.PRNGKey(2))
    copy = lambda t: jax.tree_util.tree_map(jnp.copy, t)  # each donating stepper its own buffers
    minimal = jax.jit(lambda s, b: (minimal_gan_step(model, tx)(s, b), None), donate_argnums=0)
    minimal_shared = jax.jit(lambda s, b: (minimal_gan_step(model, tx, shared=True)(s, b), None), donate_argnums=0)
    m_state = lambda: (copy(state.params), copy(state.opt_state), jnp.copy(state.key), jnp.copy(state.step))
    shared = dataclasses.replace(model, share_fakes=True)
    p, o = state.params, state.opt_state

    def player_grad(player):
        loss = model.d_loss if player == "discriminator" else model.g_loss

        def grad(params, key, b):
            return jax.grad(lambda q: loss({**params, player: q}, key, b)[0])(params[player])

        return jax.jit(grad)

    g_d, g_g = player_grad("discriminator"), player_grad("generator")
    grads = {"discriminator": block(g_d(p, state.key, x)), "generator": block(g_g(p, state.key, x))}

    def adam(player):
        opt_tx = getattr(tx, player)
        return jax.jit(lambda g, o_, q: optax.apply_updates(q, opt_tx.update(g, o_, q)[0]))

    checks = jax.jit(lambda gs: {k: jnp.isfinite(optax.tree.norm(g)) for k, g in gs.items()})
    keys = jax.jit(gan_step_keys)
    parts = [
        ("library step (make_step, donated)", Stepper(jax.jit(make_step(model, tx), donate_argnums=0), copy(state), x)),
        ("minimal jitted JAX step (same draws)", Stepper(minimal, m_state(), x)),
        ("library step, share_fakes (one draw, G(z) once)",
         Stepper(jax.jit(make_step(shared, tx), donate_argnums=0), copy(state), x)),
        ("minimal jitted JAX step, one draw (G(z) twice, as the seed's PyTorch code)", Stepper(minimal_shared, m_state(), x)),
        ("D gradient (d_loss: G forward, D on real and fake)", _loop(g_d, p, state.key, x)),
        ("G gradient (g_loss: G and D forward, both backward)", _loop(g_g, p, state.key, x)),
        ("D Adam update", _loop(adam("discriminator"), grads["discriminator"], o["discriminator"], p["discriminator"])),
        ("G Adam update", _loop(adam("generator"), grads["generator"], o["generator"], p["generator"])),
        ("metrics: gradient norms, isfinite", _loop(checks, grads)),
        ("keys: fold_in and splits", _loop(keys, state.key, state.step)),
    ]
    times = {name: measure(run, settings)["median_s"] for name, run in parts}
    full = times[parts[0][0]]
    return [{"case": f"seed MLP GAN: {name}", "batch": batch, "full ms": 1e3 * t, "share of step": t / full}
            for name, t in times.items()]


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
            "adam ms": 1e3 * r["update"], "adam share": r["update"] / r["full"], "grad norm ms": 1e3 * r["norm"],
            "grad GFLOP/s": gflops, "grad % peak": None if not peak else 100 * gflops * 1e9 / peak,
        })
    for batch in GAN_BATCHES:
        rows += _gan_rows(batch, settings)
    t = dispatch_s(settings)
    rows.append({"case": "empty jitted call (dispatch)", "batch": None, "params (M)": None, "full ms": 1e3 * t,
                 "grad ms": None, "adam ms": None, "adam share": None, "grad GFLOP/s": None, "grad % peak": None})
    notes = [
        "grad and adam are jitted and timed separately (not donated); full is the donated train step, "
        "so full can be less than grad + adam (fusion, buffer reuse) or more (metrics, the key split)",
        "adam share = adam ms / full ms: Adam reads params, grads and both moments and writes three of them, "
        "a memory-bound pass over 7 arrays of the parameter size",
        "grad norm ms: the global gradient norm and its isfinite (make_train_step's grad_norm metric and finite "
        "flag) timed alone; inside the seed VAE b128 step it costs 6-8% (CPU time, library step vs the same step "
        "without it, measured side by side), the remaining gap to a minimal jitted step",
        "seed MLP GAN rows: 'full ms' is each part jitted and timed alone; 'share of step' = its time / the library "
        "step's; the minimal step is minimal_gan_step (same model, draws and update, no metrics or checks)",
    ]
    return EntryResult("breakdown", "where the step time goes: gradient vs Adam update, and one dispatch",
                       rows, [], notes)
