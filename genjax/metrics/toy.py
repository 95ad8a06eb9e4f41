"""Metrics on toy 2-D densities: the exact KL(p||q) and mode coverage of mixtures.

``exact_kl`` needs a density with a closed-form ``log_prob`` (``ToyDensity.has_log_prob``:
8gaussians, 25gaussians, checkerboard, gaussian) and the model's ``log q`` on samples
of ``p``; the mode-coverage diagnostics (modes captured, high-quality fraction, KL of
the mode histogram to uniform; PacGAN's protocol) live in ``genjax.metrics.modes`` and
are re-exported here so that every family is scored by the same functions.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.metrics.modes import ModeCoverage, class_histogram, mixture_diagnostics, mode_coverage


def exact_kl(toy, x, log_q) -> float:
    """``KL(p||q) = E_p[log p(x) - log q(x)]``, Monte Carlo over ``x ~ p``, closed-form ``log p``.

    Args:
      toy: a ``genjax.data.synthetic.ToyDensity`` with ``has_log_prob``.
      x: ``(n, 2)`` samples of ``toy`` (e.g. held-out test draws).
      log_q: ``(n,)`` the model's log-density at ``x`` (exact, a bound or an estimate:
        the caller says which; a lower bound on ``log q`` gives an upper bound on the KL).

    Returns:
      The KL estimate in nats (a float).
    """
    if not getattr(toy, "has_log_prob", False):
        raise ValueError(f"toy must be a density with a closed-form log_prob, got {getattr(toy, 'name', toy)!r}")
    x = np.asarray(x)
    log_q = np.asarray(log_q, np.float64)
    if x.ndim != 2 or log_q.shape != (x.shape[0],):
        raise ValueError(f"log_q must have shape (n,) = ({x.shape[0] if x.ndim else '?'},) for x of shape {x.shape}, got {log_q.shape}")
    _checks.finite("log_q", log_q)
    log_p = np.asarray(toy.log_prob(jnp.asarray(x)), np.float64)
    return float(np.mean(log_p - log_q))


__all__ = ["ModeCoverage", "class_histogram", "exact_kl", "mixture_diagnostics", "mode_coverage"]
