"""The normalizing flows' training objective: negative log-likelihood by the change of
variables, on uniformly dequantized data for discrete (image) data.

Free functions returning per-example values, as ``genjax.vae.objectives`` does;
:meth:`genjax.flows.Flow.loss` reduces them. With ``z = g(x)`` the normalizing map and
``N(0, I)`` the base,

    log p(x) = log N(g(x); 0, I) + log|det dg/dx (x)|,

and for data on ``L`` levels ``k / (L - 1)`` the flow is trained on ``(k + u) / L``,
``u ~ U[0, 1)`` (:func:`dequantize`): its NLL in nats over ``D ln 2`` plus ``log2 L`` is
then an upper bound on the bits/dim of the discrete data (Theis et al. 2016).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from genjax._units import uniform_dequantize
from genjax.types import Array, PRNGKeyArray

_LOG_2PI = math.log(2.0 * math.pi)


def base_log_prob(z: Array, *, event_ndims: int) -> Array:
    """``log N(z; 0, I)`` of ``z (b, *event)`` summed over the last ``event_ndims`` axes -> ``(b,)``."""
    axes = tuple(range(z.ndim - event_ndims, z.ndim))
    d = math.prod(z.shape[z.ndim - event_ndims:])
    return -0.5 * jnp.sum(z * z, axis=axes) - 0.5 * d * _LOG_2PI


def log_likelihood(z: Array, log_det: Array, *, event_ndims: int) -> Array:
    """The change of variables: ``log N(z; 0, I) + log|det dg/dx|`` per example, ``(b,)``.

    Args:
      z: ``g(x)``, shape ``(b, *event)``.
      log_det: ``log|det dg/dx (x)|``, shape ``(b,)``.
      event_ndims: the number of event axes of ``z``.
    """
    return base_log_prob(z, event_ndims=event_ndims) + log_det


def negative_log_likelihood(z: Array, log_det: Array, *, event_ndims: int) -> Array:
    """The flow's training objective per example (nats, lower is better), ``(b,)``:
    ``-(log N(z; 0, I) + log|det dg/dx|)``."""
    return -log_likelihood(z, log_det, event_ndims=event_ndims)


def dequantize(key: PRNGKeyArray, x: Array, *, num_levels: int | None) -> Array:
    """``k / (L - 1) -> (k + u) / L`` with ``u ~ U[0, 1)`` for data on ``L = num_levels``
    levels; continuous data (``num_levels=None``) unchanged."""
    if num_levels is None:
        return x
    return uniform_dequantize(key, x, num_levels=num_levels)
