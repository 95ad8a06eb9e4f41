"""Likelihood units: nats <-> bits per dimension, with the dequantization convention."""

from __future__ import annotations

import math

import numpy as np

from genjax import _checks


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
