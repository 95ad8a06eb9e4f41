"""VAE objectives as free pure functions; each returns per-example values.

Notation: ``x`` data, ``z`` latent, ``q(z|x) = N(mu, diag(exp(logvar)))`` the
encoder, ``p(z) = N(0, I)`` the prior, ``p(x|z)`` the decoder.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax.types import Array

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu: Array, logvar: Array) -> Array:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the last axis.

    ``KL = 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)``.

    Args:
      mu: ``(..., d)`` means.
      logvar: ``(..., d)`` log-variances.

    Returns:
      ``(...)`` KL per example, in nats.
    """
    return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mu) - 1.0 - logvar, axis=-1)


def diag_gaussian_log_prob(z: Array, mu: Array, logvar: Array) -> Array:
    """log N(z; mu, diag exp(logvar)) summed over the last axis. Shapes broadcast."""
    return -0.5 * jnp.sum(_LOG_2PI + logvar + jnp.square(z - mu) * jnp.exp(-logvar), axis=-1)


def standard_normal_log_prob(z: Array) -> Array:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * jnp.sum(_LOG_2PI + jnp.square(z), axis=-1)


def bernoulli_log_likelihood(*, logits: Array, x: Array, event_ndims: int) -> Array:
    """log Bernoulli(x; sigmoid(logits)), summed over the last ``event_ndims`` axes.

    Computed from logits as ``x * logits - softplus(logits)``, never log(0).
    """
    ll = x * logits - jax.nn.softplus(logits)
    return jnp.sum(ll, axis=tuple(range(-event_ndims, 0)))


def gaussian_log_likelihood(*, mean: Array, logvar: Array, x: Array, event_ndims: int) -> Array:
    """log N(x; mean, diag exp(logvar)) summed over the last ``event_ndims`` axes."""
    ll = -0.5 * (_LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))
    return jnp.sum(ll, axis=tuple(range(-event_ndims, 0)))


def elbo(log_likelihood: Array, mu: Array, logvar: Array, *, beta: float = 1.0) -> Array:
    """Evidence lower bound with the analytic KL: ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))``.

    ``beta = 1`` is the ELBO of the seed chapter (§19.2); ``beta != 1`` the beta-VAE
    objective (not a bound on log p(x) then).

    Args:
      log_likelihood: ``(b,)`` single-sample (reparameterized) estimate of
        ``E_q[log p(x|z)]``.
      mu, logvar: ``(b, d)`` encoder outputs.
      beta: KL weight.

    Returns:
      ``(b,)`` per-example ELBO (higher is better).
    """
    return log_likelihood - beta * gaussian_kl(mu, logvar)


def log_mean_exp(a: Array, *, axis: int = 0) -> Array:
    """``log(mean(exp(a), axis))`` computed stably."""
    return jax.nn.logsumexp(a, axis=axis) - math.log(a.shape[axis])


def iwae_bound(log_weights: Array, *, axis: int = 0) -> Array:
    """Importance-weighted bound (Burda et al. 2016): ``log (1/k) sum_i w_i``.

    With ``log w_i = log p(x, z_i) - log q(z_i | x)``, ``z_i ~ q(z|x)``; ``k = 1`` is
    the ELBO, and the bound tightens towards ``log p(x)`` as ``k`` grows.

    Args:
      log_weights: log importance weights with the ``k`` samples along ``axis``.
      axis: the sample axis.

    Returns:
      the bound, with ``axis`` reduced.
    """
    return log_mean_exp(log_weights, axis=axis)
