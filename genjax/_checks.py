"""Input checks shared by the public API.

Shape and dtype checks are static, so they run at trace time under ``jax.jit``
too. Value checks (finiteness, binary data) need concrete arrays: they run when
the caller passes concrete values (eager calls, the first batch that ``fit``
sees) and are skipped for tracers, as chex's value assertions are.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def one_of(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(sorted(choices))}")
    return value


def batch_shape(name: str, x, event_shape: tuple[int, ...], *, floating: bool = True) -> None:
    """Checks ``x`` has shape ``(batch, *event_shape)`` with batch >= 1."""
    shape = tuple(np.shape(x))
    expected = "(batch, " + ", ".join(str(d) for d in event_shape) + ")"
    if len(shape) != 1 + len(event_shape):
        raise ValueError(
            f"{name} must have rank {1 + len(event_shape)} with shape {expected}, got shape {shape}"
        )
    if shape[1:] != tuple(event_shape):
        raise ValueError(f"{name} must have shape {expected}, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); expected at least one example")
    if floating and not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {jnp.result_type(x)}")


def finite(name: str, x) -> None:
    """Raises if a concrete ``x`` holds NaN or Inf (no-op for tracers)."""
    if is_concrete(x):
        bad = ~np.isfinite(np.asarray(x))
        if bad.any():
            raise ValueError(f"{name} contains {int(bad.sum())} non-finite values (NaN or Inf)")


def binary(name: str, x) -> None:
    """Raises if a concrete ``x`` holds values other than 0 and 1 (no-op for tracers)."""
    if is_concrete(x):
        a = np.asarray(x)
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(
                f"{name} must be binary (only 0 and 1) for a Bernoulli decoder; got values in "
                f"[{a.min():.3g}, {a.max():.3g}]. Binarize it (genjax.data.dynamic_binarize) "
                "or use likelihood='gaussian'"
            )


def batch_x(batch):
    """The data array of a batch: the batch itself, or ``batch["x"]`` for a dict batch."""
    if isinstance(batch, dict):
        if "x" not in batch:
            raise ValueError(f"batch is a dict without an 'x' entry (keys: {sorted(batch)})")
        return batch["x"]
    return batch
