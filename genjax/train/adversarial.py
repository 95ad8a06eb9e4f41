"""The two-player train step: ``n_critic`` discriminator updates, then one generator update.

It knows only the :class:`~genjax.types.AdversarialModel` protocol: ``d_loss`` and
``g_loss`` over params ``{"generator", "discriminator"}``, plus the optional attributes
``n_critic`` (default 1), ``split_critic_batch`` (default False), ``clip`` (WGAN
weight clipping of the critic after each of its updates; default None) and
``share_fakes`` (default False; then the model also has ``train_fakes(params, key, batch)``
and its losses take ``fakes=``: see :func:`make_adversarial_step`) and
``update_stats(previous, updated, key, batch, metrics) -> generator params`` (running
statistics that are not trained, e.g. StyleGAN's ``w_avg``: called after each step with
the generator params before and after it, a key, the generator's batch and metrics). Both players
live in one ``TrainState``: ``state.params = {"generator", "discriminator"}`` and
``state.opt_state = {"generator", "discriminator"}``, built by a per-player optimizer
(any object with optax transformations ``generator`` and ``discriminator`` and an
``init(params)`` returning both states, e.g. :class:`genjax.gan.GANOptimizer`). Each
player's update is :func:`genjax.train.step.apply_update`, the update of the
single-model step.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from genjax.train.state import TrainState
from genjax.train.step import StepFn, Transform, apply_update, check_ema_decay
from genjax.types import Batch, Metrics, Params

PLAYERS = ("generator", "discriminator")


def is_adversarial(model) -> bool:
    """Whether ``model`` is trained by the two-player step (it has ``d_loss`` and ``g_loss``)."""
    return callable(getattr(model, "d_loss", None)) and callable(getattr(model, "g_loss", None))


def _check_optimizer(optimizer) -> None:
    if not all(hasattr(getattr(optimizer, p, None), "update") for p in PLAYERS) or not hasattr(optimizer, "init"):
        raise ValueError(
            "a GAN needs one optimizer per player: pass optimizer=GANOptimizer(generator=..., "
            f"discriminator=...) (or genjax.gan.gan_adam()), got {type(optimizer).__name__}"
        )


def _clipper(clip) -> Callable[[Params], Params] | None:
    if clip is None:
        return None
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    return lambda params: jax.tree_util.tree_map(lambda p: jnp.clip(p, -clip, clip), params)


def make_adversarial_step(
    model,
    optimizer,
    *,
    transform: Transform | None = None,
    ema_decay: float | None = None,
    skip_nonfinite: bool = False,
) -> StepFn:
    """Builds the un-jitted step ``step(state, batch) -> (state, metrics)`` of a two-player model.

    One step: ``key = fold_in(state.key, state.step)`` split into a transform key, a
    critic key and a generator key. Then ``model.n_critic`` discriminator updates run
    in a fully unrolled ``lax.scan`` (each with its own key: fresh ``z``, fresh penalty
    draws; the same real batch, or its ``n_critic`` equal slices when
    ``model.split_critic_batch``), each followed by WGAN weight clipping when
    ``model.clip`` is set. Finally one generator update against the updated
    discriminator. Each player has its own optimizer state; ``state.step`` counts
    generator updates.

    The critic loop is unrolled (and absent for ``n_critic = 1``) because XLA:CPU runs a
    convolution's weight gradient inside a while loop 40-90x slower than outside one
    (see :func:`genjax.train.make_multi_step`); even a one-trip scan, which XLA inlines,
    left DCGAN's MNIST step (batch 64) at 2.9 s on this project's 2-core CPU, against
    0.55 s without it.

    With ``model.share_fakes`` (``n_critic = 1``) both players score one draw of fakes,
    ``model.train_fakes(params, k_g, batch)``, computed once with its pullback
    (``jax.vjp``): the critic's loss gets them (detached) as ``fakes=``, the generator's
    loss is differentiated with respect to them and the result pulled back to G's
    parameters, so ``G(z)``'s forward pass runs once per step instead of twice. The
    generator's gradient is the one its loss would give on its own with ``k_g`` (G's
    parameters do not change in between); only the critic's fakes differ from the
    default (they are the generator's draw, not one from ``k_d``).

    A model's ``update_stats`` hook then replaces the new generator params (its running
    statistics; it gets ``fold_in(key, 3)``). With EMA, ``state.ema_params["generator"]``
    is ``decay * ema + (1 - decay) * G`` (so also an average of the statistics) and
    ``state.ema_params["discriminator"]`` the current discriminator, so the EMA params
    work wherever params do (``model.sample(state.ema_params, ...)``).

    Metrics: ``loss`` and ``g_loss`` (generator loss), ``d_loss`` and the
    discriminator's metrics (mean over the critic steps), ``grad_norm`` (generator) and
    ``d_grad_norm`` (mean over critic steps), ``d_updates`` (critic updates applied),
    ``finite`` (False when any loss or gradient was NaN/Inf). With ``skip_nonfinite``
    updates are dropped per player: each critic update whose loss or gradient is
    non-finite is dropped (the other critic steps still apply; ``d_updates`` counts
    those applied), and the generator update is dropped when its own loss or gradient
    is non-finite (then its optimizer state and EMA stay too).

    Args:
      model: an :class:`~genjax.types.AdversarialModel` (e.g. :class:`genjax.gan.GAN`).
      optimizer: one optax optimizer per player (``genjax.gan.GANOptimizer``).
      transform: ``transform(key, batch) -> batch`` applied once per step.
      ema_decay: EMA decay of the generator parameters, in ``[0, 1)``.
      skip_nonfinite: drop non-finite updates.

    Raises:
      ValueError: ``optimizer`` is not one optimizer per player; bad ``ema_decay``; (at
        trace time) a batch that ``split_critic_batch`` cannot split into ``n_critic`` slices.
    """
    _check_optimizer(optimizer)
    check_ema_decay(ema_decay)
    n = int(getattr(model, "n_critic", 1))
    split = bool(getattr(model, "split_critic_batch", False)) and n > 1
    project = _clipper(getattr(model, "clip", None))
    update_stats = getattr(model, "update_stats", None)
    share = bool(getattr(model, "share_fakes", False))
    if share and n != 1:
        raise ValueError(f"share_fakes needs n_critic=1 (one critic update per draw), got n_critic={n}")

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(state.key, state.step)
        k_t, k_d, k_g = jax.random.split(key, 3)
        if transform is not None:
            batch = transform(k_t, batch)
        g_params = state.params["generator"]
        if split:
            lead = jax.tree_util.tree_leaves(batch)[0].shape[0]
            if lead % n:
                raise ValueError(f"split_critic_batch: the batch size {lead} is not divisible by n_critic={n}")
            d_batches = jax.tree_util.tree_map(lambda a: a.reshape(n, lead // n, *a.shape[1:]), batch)
            g_batch = jax.tree_util.tree_map(lambda a: a[-1], d_batches)
        else:
            d_batches, g_batch = None, batch

        shared = {}
        if share:  # G(z) once, with its pullback; both players score it
            d_now = state.params["discriminator"]
            shared["fakes"], pullback = jax.vjp(
                lambda gp: model.train_fakes({"generator": gp, "discriminator": d_now}, k_g, g_batch), g_params)

        def d_loss(dp, k, b):
            return model.d_loss({"generator": g_params, "discriminator": dp}, k, b, **shared)

        def critic_update(carry, inputs):
            d_params, d_opt = carry
            k, sub = inputs
            u = apply_update(
                d_loss, optimizer.discriminator, d_params, d_opt, k, batch if sub is None else sub,
                skip_nonfinite=skip_nonfinite, project=project,
            )
            applied = u.finite if skip_nonfinite else jnp.ones((), bool)
            return (u.params, u.opt_state), {**u.metrics, "d_grad_norm": u.grad_norm, "finite": u.finite, "applied": applied}

        d_carry = (state.params["discriminator"], state.opt_state["discriminator"])
        d_keys = jax.random.split(k_d, n)
        if n == 1:  # no scan at all: with a one-trip scan DCGAN's MNIST step ran 5x slower on CPU
            (d_params, d_opt), d_metrics = critic_update(d_carry, (d_keys[0], None))
            d_metrics = jax.tree_util.tree_map(lambda v: v[None], d_metrics)
        else:  # unrolled: straight-line code, no while loop
            (d_params, d_opt), d_metrics = jax.lax.scan(critic_update, d_carry, (d_keys, d_batches), unroll=True)

        def g_loss(gp, k, b):
            return model.g_loss({"generator": gp, "discriminator": d_params}, k, b)

        def g_through_fakes(gp, k, b):  # share_fakes: d loss / d fakes, pulled back through G
            def on_fakes(f):
                return model.g_loss({"generator": gp, "discriminator": d_params}, k, b, fakes=f)

            out, d_fakes = jax.value_and_grad(on_fakes, has_aux=True)(shared["fakes"])
            return out, pullback(d_fakes)[0]

        ema = state.ema_params
        g = apply_update(g_loss, optimizer.generator, g_params, state.opt_state["generator"], k_g, g_batch,
                         skip_nonfinite=skip_nonfinite, ema=None if ema is None else ema["generator"], ema_decay=ema_decay,
                         value_and_grad=g_through_fakes if share else None)
        if ema is not None:
            ema = {"generator": g.ema, "discriminator": d_params}
        g_new = g.params
        if update_stats is not None:  # its own key (fold_in), so models without it draw as before
            g_new = update_stats(g_params, g.params, jax.random.fold_in(key, 3), g_batch, g.metrics)

        new_state = state.replace(
            step=state.step + 1,
            params={"generator": g_new, "discriminator": d_params},
            opt_state={"generator": g.opt_state, "discriminator": d_opt},
            ema_params=ema,
        )
        d_finite = d_metrics.pop("finite")
        applied = d_metrics.pop("applied")
        metrics = {k: jnp.mean(v) for k, v in d_metrics.items()}
        metrics.update(g.metrics)
        metrics.update(
            loss=g.loss,
            grad_norm=g.grad_norm,
            d_updates=jnp.sum(applied.astype(jnp.int32)),
            finite=jnp.all(d_finite) & g.finite,
        )
        return new_state, metrics

    return step
