"""The training state: a pytree that holds everything a resumed run needs."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from genjax.types import Params, PRNGKeyArray


class TrainState(flax.struct.PyTreeNode):
    """Step counter, parameters, optimizer state, the run's train key and optional EMA.

    ``key`` is the raw ``uint32[2]`` train key of the run; the step at ``step = s``
    uses ``jax.random.fold_in(key, s)``, so a run resumed from a checkpoint replays
    the same random stream. ``ema_params`` is ``None`` without EMA. ``create``
    copies ``params``, so the caller's arrays survive the donating train step.
    """

    step: jax.Array
    params: Params
    opt_state: optax.OptState
    key: jax.Array
    ema_params: Params | None = None

    @classmethod
    def create(
        cls, params: Params, tx: optax.GradientTransformation, key: PRNGKeyArray, *, ema: bool = False
    ) -> "TrainState":
        params = jax.tree_util.tree_map(jnp.copy, params)  # the jitted step donates its state
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            key=jnp.copy(raw_key(key)),  # copied too: a donated step would delete the caller's key
            ema_params=jax.tree_util.tree_map(jnp.copy, params) if ema else None,
        )


def raw_key(key: Any) -> jax.Array:
    """A ``uint32`` key array from either a typed key (``jax.random.key``) or a raw one."""
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def state_step(state) -> int:
    """``state.step`` as an int; for the stacked state of several seeds (every seed at the same step) its first entry."""
    step = jax.device_get(state.step)
    return int(step.reshape(-1)[0]) if getattr(step, "ndim", 0) else int(step)
