"""Input checks shared by the public API.

Shape and dtype checks are static, so they run at trace time under ``jax.jit``
too. Value checks (finiteness, binary data) need concrete arrays: they run when
the caller passes concrete values (eager calls, the first batch that ``fit``
sees) and are skipped for tracers, as chex's value assertions are.
"""

from __future__ import annotations

import numbers
import weakref
from typing import Sequence

import chex
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
    """Checks ``x`` has shape ``(batch, *event_shape)`` with batch >= 1.

    The rank and shape are asserted with chex (static, so also under ``jit``); chex's
    ``AssertionError`` becomes a ``ValueError`` whose message names the argument and the
    expected shape (chained to chex's, which says what it saw).
    """
    shape = tuple(np.shape(x))
    expected = "(batch, " + ", ".join(str(d) for d in event_shape) + ")"
    try:
        chex.assert_rank(x, 1 + len(event_shape))
    except AssertionError as e:
        raise ValueError(
            f"{name} must have rank {1 + len(event_shape)} with shape {expected}, got shape {shape}"
        ) from e
    try:
        chex.assert_shape(x, (None, *event_shape))
    except AssertionError as e:
        raise ValueError(f"{name} must have shape {expected}, got shape {shape}") from e
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


# ---------------------------------------------------------------------- params of a model
_EXPECTED_PARAMS: dict[int, tuple] = {}


def expected_params(model, example) -> object | None:
    """``jax.eval_shape(model.init, key, example)``: the abstract params tree of ``model``.

    Computed once per model object (abstract evaluation: nothing is run) and cached
    by identity with a weak reference, so a model that is garbage-collected drops its
    entry. ``example`` is an example batch (array, ``jax.ShapeDtypeStruct`` or dict);
    params' shapes do not depend on its batch size, but a module may constrain that
    size (a PacGAN critic needs a multiple of its pack), so callers pass the batch size
    of the call at hand. Returns None (and caches nothing) when ``init`` cannot be
    evaluated for this example: the check is then skipped, never a new failure.
    """
    k = id(model)
    hit = _EXPECTED_PARAMS.get(k)
    if hit is not None and hit[0]() is model:
        return hit[1]
    try:
        expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), example)
    except Exception:  # noqa: BLE001 - e.g. a batch size the model rejects; try again next call
        return None

    def _drop(ref, k=k):
        if _EXPECTED_PARAMS.get(k, (None,))[0] is ref:
            del _EXPECTED_PARAMS[k]

    _EXPECTED_PARAMS[k] = (weakref.ref(model, _drop), expected)
    return expected


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
    return {jax.tree_util.keystr(p): tuple(np.shape(v)) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_params(name: str, params, expected, *, model: str = "this model") -> None:
    """Raises ``ValueError`` unless ``params`` has ``expected``'s tree paths and leaf shapes.

    ``expected`` None (see :func:`expected_params`) skips the comparison.

    Static (paths and shapes only), so it also runs at trace time under ``jit`` /
    ``grad`` at no run-time cost. Dtypes are not compared (params may be cast). The
    message names the first missing path, unexpected path or shape mismatch, e.g.
    params of another model or of the same family with other hyper-parameters.
    """
    if expected is None:
        return
    if not isinstance(params, dict) and not hasattr(params, "items"):
        raise ValueError(f"{name} must be a params dict of {model}, got {type(params).__name__}")
    got, want = _leaf_shapes(params), _leaf_shapes(expected)
    if got == want:
        return
    top_got = sorted({k.split("]", 1)[0] + "]" for k in got})
    top_want = sorted({k.split("]", 1)[0] + "]" for k in want})
    if top_got != top_want:
        raise ValueError(
            f"{name} do not match {model} (params of another model or other hyper-parameters?): "
            f"top-level entries {', '.join(top_got) or 'none'}, expected {', '.join(top_want)}"
        )
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    differ = [k for k in want if k in got and got[k] != want[k]]
    parts = []
    if missing:
        parts.append(f"missing {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        parts.append(f"unexpected {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    if differ:
        k = differ[0]
        parts.append(
            f"{k} has shape {got[k]}, expected {want[k]}"
            + (f" (and {len(differ) - 1} more shape mismatches)" if len(differ) > 1 else "")
        )
    raise ValueError(
        f"{name} do not match {model} (params of another model or other hyper-parameters?): " + "; ".join(parts)
    )
