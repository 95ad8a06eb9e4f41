"""Likelihood units shared by every floor: bits per dimension and uniform dequantization.

The bottom floor: imports nothing of genjax but ``_checks`` and ``types``, so families
(flows), ``data`` and ``metrics`` all use the one formula without importing each other.
``genjax.data`` re-exports :func:`uniform_dequantize` and ``genjax.metrics`` re-exports
:func:`bits_per_dim` (their public homes).

The convention (Theis et al. 2016): data on ``L`` levels ``k/(L-1)`` in [0, 1] are
dequantized to ``(k + u)/L``, ``u ~ U[0, 1)``; a continuous density ``p`` on [0, 1]^D then
gives the L-level data a probability ``>= p(x + u/L) / L^D`` in expectation, so
``bits/dim = nll / (D ln 2) + log2 L`` is an upper bound on the discrete data's bits/dim,
and never negative when ``p`` is a density (its integral over each bin is at most 1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.types import Array, PRNGKeyArray


def bits_per_dim(nll_nats, num_dims: int, *, num_levels: int | None = None, allow_nonfinite: bool = False):
    """Bits per dimension of a negative log-likelihood in nats.

    ``bpd = nll / (D ln 2)``. For continuous models evaluated on data rescaled to
    [0, 1] from ``num_levels`` discrete levels (uniform dequantization), the density
    of the data on the integer grid {0..L-1} is ``p([0,1]) / L^D``, so
    ``bpd = nll / (D ln 2) + log2(L)``: pass ``num_levels`` to add that offset.
    For discrete (e.g. binary) models leave ``num_levels`` as None.

    ``allow_nonfinite=True`` passes NaN/Inf through (a training metric, where a
    diverged step must show as NaN rather than raise).

    Raises:
      ValueError: bad ``num_dims`` / ``num_levels``, or a concrete ``nll_nats`` holding
        NaN or Inf (traced values are not checked, so it stays usable under jit).
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be a positive integer, got {num_dims!r}")
    if not allow_nonfinite and _checks.is_concrete(nll_nats) and not np.all(np.isfinite(np.asarray(nll_nats, np.float64))):
        raise ValueError(f"nll_nats must be finite, got {nll_nats!r} (a NaN/Inf negative log-likelihood)")
    # plain arithmetic: works on floats, numpy arrays and traced jax arrays alike
    bpd = nll_nats / (num_dims * math.log(2.0))
    if num_levels is not None:
        if num_levels < 2:
            raise ValueError(f"num_levels must be >= 2, got {num_levels!r}")
        bpd = bpd + math.log2(num_levels)
    return bpd


def uniform_dequantize(key: PRNGKeyArray, x: Array, *, num_levels: int) -> Array:
    """Uniform dequantization: data on the grid ``k/(L-1)`` -> ``(k + u)/L``, ``u ~ U[0,1)``.

    The result is a continuous density on [0, 1)^D; a model density on it gives a
    lower bound on the discrete log-likelihood of the L-level data (Theis et al.
    2016). Bits/dim of the L-level data are reported on this scale.
    """
    if _checks.positive_int("num_levels", num_levels) < 2:
        raise ValueError(f"num_levels must be >= 2 (the data grid k/(L-1) needs two levels), got {num_levels}")
    k = jnp.round(x * (num_levels - 1))
    y = (k + jax.random.uniform(key, x.shape, x.dtype)) / num_levels
    # float rounding can land exactly on the bin's upper edge: keep the interval half-open
    return jnp.minimum(y, jnp.nextafter((k + 1.0) / num_levels, jnp.zeros((), x.dtype)))
