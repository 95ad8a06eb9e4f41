"""What the diffusion models share: data ranges, the data <-> model-space maps, input
and params checks, and the continuous-time scale fed to the networks.

Data ranges (``data_range``):

* ``"unit"`` (images): batches arrive in ``[0, 1]`` float32; the models work on
  ``2 x - 1`` in ``[-1, 1]`` and ``sample`` maps back and clips to ``[0, 1]``.
* ``"identity"`` (toy 2-D data): data are used unscaled and samples are returned unscaled.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._checks import batch_x
from genjax.diffusion.sampling import FAST_SAMPLERS, solver_nfe
from genjax.types import Array, Batch, check_cond


DATA_RANGES = ("unit", "identity")
DDPM_SAMPLERS = ("ddpm", "ddim")
SDE_SAMPLERS = ("pc", "ode")
NCSN_SAMPLERS = ("langevin",)
#: the few-step solvers (DDPM and ScoreSDE) and their default steps: about 20 network evaluations each
FAST_DEFAULT_STEPS = {"euler": 20, "heun": 10, "dpm++2m": 20, "dpm2": 10, "dpm3": 7}

#: continuous time ``t`` in [0, 1] is fed to the network as ``TIME_SCALE * t`` (score_sde)
TIME_SCALE = 999.0


# ---------------------------------------------------------------------- shared helpers
def _init_common(model) -> None:
    object.__setattr__(model, "data_shape", tuple(int(d) for d in model.data_shape))
    if not model.data_shape:
        raise ValueError("data_shape must have at least one dimension, e.g. (2,) or (28, 28, 1)")
    for d in model.data_shape:
        _checks.positive_int("data_shape entries", d)
    _checks.one_of("data_range", model.data_range, DATA_RANGES)
    if not isinstance(model.network, nn.Module):
        raise ValueError(f"network must be a flax.linen Module, got {type(model.network).__name__}")


def _to_model(model, x: Array) -> Array:
    """Data -> model space: ``2 x - 1`` for ``"unit"`` data, ``x`` otherwise."""
    return 2.0 * x - 1.0 if model.data_range == "unit" else x


def _to_data(model, x: Array) -> Array:
    """Model space -> data: ``clip((x + 1) / 2, 0, 1)`` for ``"unit"`` data, ``x`` otherwise."""
    return jnp.clip(0.5 * (x + 1.0), 0.0, 1.0) if model.data_range == "unit" else x


def _check_x(model, batch: Batch, name: str) -> Array:
    """Shape, dtype, finiteness and (``"unit"``, concrete) the [0, 1] range of the data."""
    x = batch_x(batch)
    _checks.batch_shape(name, x, model.data_shape)
    if isinstance(batch, dict) and batch.get("cond") is not None and model.condition.kind == "none":
        check_cond(model.condition, batch["cond"], x.shape[0], name=f"{name}['cond']")  # raises
    _checks.finite(name, x)
    if model.data_range == "unit" and _checks.is_concrete(x):
        a = np.asarray(x)
        if a.min() < 0.0 or a.max() > 1.0:
            raise ValueError(
                f"{name} must lie in [0, 1] for data_range='unit' (images), got values in "
                f"[{a.min():.3g}, {a.max():.3g}]; rescale it or build the model with data_range='identity'"
            )
    return x


def _check_params(model, params, name: str = "params") -> None:
    """Raises ``ValueError`` unless ``params`` has the tree and leaf shapes of ``model.init``'s
    output (``jax.eval_shape``, cached per model; static, so free under jit)."""
    expected = _checks.expected_params(model, jax.ShapeDtypeStruct((2, *model.data_shape), jnp.float32))
    _checks.check_params(
        name, params, expected, model=f"this {type(model).__name__} (data_shape={model.data_shape})"
    )


def _sample_shape(model, num) -> tuple[int, ...]:
    return (_checks.positive_int("num", num), *model.data_shape)


def _finish(model, out, return_trajectory: bool):
    if return_trajectory:
        samples, traj = out
        return _to_data(model, samples), _to_data(model, traj)
    return _to_data(model, out)


def _steps(steps, default: int | None) -> int | None:
    return default if steps is None else _checks.positive_int("steps", steps)


def _fast_steps(sampler: str, steps) -> int:
    """A few-step solver's steps (default ``FAST_DEFAULT_STEPS``), checked."""
    return _steps(steps, FAST_DEFAULT_STEPS[sampler])


def _nfe(sampler: str, steps: int, corrector_steps: int = 1) -> int:
    """Network evaluations per sample of ``sampler`` with ``steps`` steps (a guided evaluation,
    one batched call on ``[cond; null]``, counts once)."""
    if sampler in FAST_SAMPLERS:
        return solver_nfe(sampler, steps)
    return {"ddpm": steps, "ddim": steps, "pc": (1 + corrector_steps) * steps, "ode": 4 * steps}[sampler]
