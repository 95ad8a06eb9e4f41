"""Train-step factories: one jitted step, and K steps fused in one ``lax.scan``."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from genjax._xla import LOOPS, check_loop, has_convolution, python_loop_is_faster  # noqa: F401  (LOOPS, has_convolution: re-exported)
from genjax.train.state import TrainState
from genjax.types import Batch, LossFn, Metrics, Params, PRNGKeyArray

StepFn = Callable[[TrainState, Batch], "tuple[TrainState, Metrics]"]
Transform = Callable[[PRNGKeyArray, Batch], Batch]


def with_transform(loss_fn: LossFn, transform: Transform | None) -> LossFn:
    """``loss_fn`` applied to ``transform(key, batch)`` (e.g. dynamic binarization).

    The step key is split in two: one for the transform, one for the loss.
    """
    if transform is None:
        return loss_fn

    def wrapped(params, key, batch):
        k_t, k_l = jax.random.split(key)
        return loss_fn(params, k_l, transform(k_t, batch))

    return wrapped


def keep_if(ok: jax.Array, new, old):
    """``new`` where the scalar ``ok`` holds, else ``old`` (leaf by leaf)."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)


class Update(NamedTuple):
    """What :func:`apply_update` returns: the new parameters, optimizer state and EMA
    (``None`` without one), the loss, the loss function's metrics, the global gradient
    norm and ``finite``."""

    params: Params
    opt_state: optax.OptState
    ema: Params | None
    loss: jax.Array
    metrics: Metrics
    grad_norm: jax.Array
    finite: jax.Array


def apply_update(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    params: Params,
    opt_state: optax.OptState,
    key: PRNGKeyArray,
    batch: Batch,
    *,
    skip_nonfinite: bool = False,
    project: Callable[[Params], Params] | None = None,
    ema: Params | None = None,
    ema_decay: float | None = None,
    value_and_grad: Callable | None = None,
) -> Update:
    """One optimizer update of ``params``: the update every train step is made of.

    Gradient of ``loss_fn(params, key, batch) -> (loss, metrics)`` (by ``value_and_grad
    (params, key, batch) -> ((loss, metrics), grads)`` when given: a step that already
    holds part of the computation, e.g. the two-player step's shared fakes), its global norm,
    ``finite`` (loss and norm are finite), the optax update, then ``project`` (e.g. WGAN
    weight clipping) on the new parameters, then (given ``ema`` and ``ema_decay``) the
    EMA ``decay * ema + (1 - decay) * params``. With ``skip_nonfinite`` a non-finite
    update is dropped: the old ``params``, ``opt_state`` and ``ema`` are returned.
    """
    if value_and_grad is None:
        value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, metrics), grads = value_and_grad(params, key, batch)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, new_opt = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    if project is not None:
        new_params = project(new_params)
    new_ema = ema
    if ema is not None and ema_decay is not None:
        new_ema = ema_update(ema, new_params, ema_decay, finite=finite if skip_nonfinite else None)
    if skip_nonfinite:
        new_params, new_opt = keep_if(finite, new_params, params), keep_if(finite, new_opt, opt_state)
    return Update(new_params, new_opt, new_ema, loss, metrics, grad_norm, finite)


def ema_update(ema: Params, params: Params, decay: float, *, finite: jax.Array | None = None) -> Params:
    """``decay * ema + (1 - decay) * params``; kept as ``ema`` where ``finite`` is False."""
    new = jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
    return new if finite is None else keep_if(finite, new, ema)


def check_ema_decay(ema_decay) -> None:
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")


def make_train_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    *,
    ema_decay: float | None = None,
    skip_nonfinite: bool = False,
    jit: bool = True,
) -> StepFn:
    """Builds ``step(state, batch) -> (state, metrics)``.

    The step key is ``fold_in(state.key, state.step)``. Metrics gain ``loss``,
    ``grad_norm`` and ``finite`` (False when the loss or any gradient is NaN/Inf).
    With ``skip_nonfinite`` such an update is dropped (params, optimizer state and
    EMA stay as they were; the step counter still advances). With ``jit`` the step
    is ``jax.jit``-compiled with the state donated. The update itself is
    :func:`apply_update`, shared with the two-player step
    (:func:`genjax.train.adversarial.make_adversarial_step`).

    Args:
      loss_fn: ``(params, key, batch) -> (scalar loss, metrics)``.
      tx: optax optimizer, built once.
      ema_decay: if set, ``ema = decay * ema + (1 - decay) * params`` after each update.
      skip_nonfinite: drop non-finite updates instead of applying them.
      jit: compile the step.
    """
    check_ema_decay(ema_decay)

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(state.key, state.step)
        u = apply_update(loss_fn, tx, state.params, state.opt_state, key, batch, skip_nonfinite=skip_nonfinite,
                         ema=state.ema_params, ema_decay=ema_decay)
        new_state = state.replace(step=state.step + 1, params=u.params, opt_state=u.opt_state, ema_params=u.ema)
        metrics = {**u.metrics, "loss": u.loss, "grad_norm": u.grad_norm, "finite": u.finite}
        return new_state, metrics

    return jax.jit(step, donate_argnums=0) if jit else step


def make_multi_step(step: StepFn, *, jit: bool = True, loop: str = "auto") -> Callable[[TrainState, Batch], "tuple[TrainState, Metrics]"]:
    """K steps in one call: ``multi(state, batches)`` runs ``step`` over the leading
    axis of ``batches`` (``(K, b, ...)``) and returns stacked ``(K,)`` metrics.

    ``step`` should be the un-jitted step (``make_train_step(..., jit=False)``);
    K is the static leading size of ``batches`` (one compilation per distinct K).

    ``loop``:
      ``"scan"``: the K steps are one ``lax.scan`` in one jitted dispatch (no per-step
      host round trip: what small models need).
      ``"python"``: a Python loop over one jitted, donating step (K dispatches).
      ``"auto"`` (default): ``"python"`` when the step contains a convolution and runs
      on CPU, else ``"scan"``. XLA:CPU runs a convolution's weight gradient inside a
      while loop 40-90x slower than the same op outside one (measured: a 3x3 conv's
      weight gradient 27 ms for 5 plain steps vs 2.4 s for the same 5 steps in a
      ``lax.scan``; Glow's train step 0.77 s vs 35 s), while a conv model's step is long
      enough that dispatching it from Python costs nothing measurable.
      The choice is made on the first call, from the traced step and the default backend,
      so a run and its resume always make the same one.
    """
    check_loop(loop)

    def scanned(state: TrainState, batches: Batch) -> tuple[TrainState, Metrics]:
        return jax.lax.scan(step, state, batches)

    if not jit:
        if loop == "python":
            raise ValueError("loop='python' needs jit=True (it dispatches one jitted step per batch)")
        return scanned
    scan_multi = jax.jit(scanned, donate_argnums=0)
    one = jax.jit(step, donate_argnums=0)

    def python_multi(state: TrainState, batches: Batch) -> tuple[TrainState, Metrics]:
        k = jax.tree_util.tree_leaves(batches)[0].shape[0]
        metrics = []
        for i in range(k):
            state, m = one(state, jax.tree_util.tree_map(lambda a: a[i], batches))
            metrics.append(m)
        return state, jax.tree_util.tree_map(lambda *ms: jnp.stack(ms), *metrics)

    if loop == "scan":
        return scan_multi
    if loop == "python":
        return python_multi
    chosen: list = []

    def auto_multi(state: TrainState, batches: Batch) -> tuple[TrainState, Metrics]:
        if not chosen:
            first = jax.tree_util.tree_map(lambda a: a[0], batches)
            conv = python_loop_is_faster(step, state, first)
            chosen.append(python_multi if conv else scan_multi)
        return chosen[0](state, batches)

    auto_multi.loop = lambda: None if not chosen else ("python" if chosen[0] is python_multi else "scan")
    return auto_multi
