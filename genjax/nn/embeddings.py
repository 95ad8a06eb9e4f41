"""Time and label embeddings for conditional denoisers.

* ``sinusoidal_embedding(t, dim)``: the Transformer / DDPM positional encoding of a
  scalar per example, ``[sin(t * f_0..f_{h-1}), cos(t * f_0..f_{h-1})]`` with
  ``h = dim / 2`` and ``f_k = max_period ** (-k / h)`` (so ``f_0 = 1``).
* ``TimeEmbedding``: the sinusoidal features followed by ``Dense -> SiLU -> Dense``.
* ``LabelEmbedding``: a table of ``num_classes + 1`` vectors; index ``num_classes``
  is the "null" label used by classifier-free guidance (Ho & Salimans, 2022).

The time input is whatever scalar the caller conditions on (a DDPM step index as a
float, ``999 * t`` for continuous time, a scaled noise level); its range should be
comparable to ``[0, 1000]`` so that the frequencies span it.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks


def null_label(num_classes: int) -> int:
    """The index of the unconditional ("null") label: ``num_classes``."""
    return _checks.positive_int("num_classes", num_classes)


def check_time(t, batch: int, *, name: str = "t") -> None:
    """Raises ``ValueError`` unless ``t`` is a ``(batch,)`` array (static check)."""
    shape = tuple(np.shape(t))
    if shape != (batch,):
        raise ValueError(f"{name} must have shape (batch,) = ({batch},), got shape {shape}")


def check_labels(y, batch: int, num_classes: int | None, *, name: str = "y", allow_null: bool = True) -> None:
    """Checks class labels ``y``: ``(batch,)`` integers in ``[0, num_classes]``.

    ``num_classes`` itself (the null label) is allowed when ``allow_null``. Shape,
    dtype and "labels need num_classes" are static checks; the value range is
    checked only on concrete arrays.

    Raises:
      ValueError: labels given to an unconditional network, wrong shape or dtype,
        or (concrete) values out of range.
    """
    if num_classes is None:
        raise ValueError(
            f"{name} (class labels) given, but the network is unconditional (num_classes=None); "
            "build it with num_classes=K to condition on labels"
        )
    shape = tuple(np.shape(y))
    if shape != (batch,):
        raise ValueError(f"{name} must have shape (batch,) = ({batch},), got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {jnp.result_type(y)}")
    if _checks.is_concrete(y):
        a = np.asarray(y)
        hi = num_classes if allow_null else num_classes - 1
        if a.size and (a.min() < 0 or a.max() > hi):
            extra = f" ({num_classes} is the null label)" if allow_null else ""
            raise ValueError(
                f"{name} must lie in [0, {hi}]{extra}, got values in [{a.min()}, {a.max()}]"
            )


def sinusoidal_embedding(t: jax.Array, dim: int, *, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal features of a scalar per example.

    Args:
      t: ``(b,)`` float (or int) array.
      dim: even output width ``2 h``.
      max_period: the slowest frequency is ``max_period ** (-(h - 1) / h)``.

    Returns:
      ``(b, dim)`` float32: ``[sin(t f_k)]_{k<h}`` followed by ``[cos(t f_k)]_{k<h}``,
      ``f_k = exp(-log(max_period) k / h)``.

    Raises:
      ValueError: ``t`` not of rank 1, or ``dim`` not a positive even integer.
    """
    dim = _checks.positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even (sin and cos halves), got {dim}")
    if np.ndim(t) != 1:
        raise ValueError(f"t must have shape (batch,), got shape {np.shape(t)}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class TimeEmbedding(nn.Module):
    """``(b,)`` scalars -> ``(b, features)``: sinusoidal(``dim``) -> Dense -> SiLU -> Dense."""

    features: int
    dim: int | None = None  # sinusoidal width; defaults to ``features`` rounded up to even
    max_period: float = 10000.0

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        dim = self.dim if self.dim is not None else self.features + (self.features % 2)
        h = sinusoidal_embedding(t, dim, max_period=self.max_period)
        h = nn.silu(nn.Dense(self.features, name="dense_0")(h))
        return nn.Dense(self.features, name="dense_1")(h)


class LabelEmbedding(nn.Module):
    """``(b,)`` int labels in ``[0, num_classes]`` -> ``(b, features)``.

    Row ``num_classes`` is the learned "null" embedding (unconditional), used by
    classifier-free guidance; ``null_label(num_classes)`` returns that index.
    """

    num_classes: int
    features: int

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        check_labels(y, np.shape(y)[0] if np.ndim(y) else -1, self.num_classes)
        table = nn.Embed(self.num_classes + 1, self.features, name="table")
        return table(jnp.asarray(y, jnp.int32))
