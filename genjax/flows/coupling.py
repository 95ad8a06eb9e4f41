"""Coupling and autoregressive bijectors, and the masks that define them.

* :class:`AffineCoupling` -- distrax ``MaskedCoupling`` with an affine inner map whose
  log-scale is bounded (RealNVP / Glow).
* :func:`spline_coupling` -- ``MaskedCoupling`` with distrax's rational-quadratic
  spline (neural spline flows, Durkan et al., 2019).
* :class:`MaskedAutoregressive` -- the MAF bijector (Papamakarios et al., 2017).

Like every layer of ``genjax.flows`` they are written in the normalizing direction
(``forward``: data ``x`` -> base ``z``).
"""

from __future__ import annotations

from typing import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from genjax.types import Array

SCALE_FNS = ("tanh", "sigmoid", "sigmoid2")


def bounded_log_scale(raw: Array, *, scale_fn: str = "tanh", bound: float = 3.0) -> Array:
    """Maps an unconstrained conditioner output to a stable log-scale.

    * ``"tanh"``: ``bound * tanh(raw / bound)`` -- identity near 0 (so a zero-initialised
      conditioner gives the identity map), never beyond ``+-bound``.
    * ``"sigmoid"``: ``log sigmoid(raw + 2)`` -- Glow's choice: scale in (0, 1), 0.88 at 0.
    * ``"sigmoid2"``: ``log(2 sigmoid(raw))`` -- scale in (0, 2), exactly 1 at 0 (a
      zero-initialised conditioner is the identity, as with tanh) and slope 1/2 there
      (Glow's sigmoid has 0.12). A coupling can expand by at most 2x, so expansions cannot
      compound over many couplings the way ``exp(3)`` per coupling can on an input unlike
      the training data.
    """
    if scale_fn == "tanh":
        return bound * jnp.tanh(raw / bound)
    if scale_fn == "sigmoid":
        return jax.nn.log_sigmoid(raw + 2.0)
    if scale_fn == "sigmoid2":
        return jnp.log(2.0) + jax.nn.log_sigmoid(raw)
    raise ValueError(f"unknown scale_fn {scale_fn!r}; valid choices: {', '.join(SCALE_FNS)}")


# ---------------------------------------------------------------------- masks
def alternating_mask(dim: int, parity: int) -> np.ndarray:
    """``(dim,)`` bool mask, True (kept) on even indices for parity 0, odd for parity 1."""
    return (np.arange(dim) + parity) % 2 == 0


def checkerboard_mask(shape: tuple[int, int, int], parity: int) -> np.ndarray:
    """``(H, W, C)`` bool mask, True where ``(i + j + parity)`` is even, all channels alike."""
    h, w, c = shape
    board = (np.arange(h)[:, None] + np.arange(w)[None, :] + parity) % 2 == 0
    return np.broadcast_to(board[:, :, None], (h, w, c)).copy()


def channel_mask(shape: tuple[int, ...], parity: int) -> np.ndarray:
    """Bool mask of ``shape``, True on the first half of the channels (parity 0) or the second."""
    c = shape[-1]
    if c < 2:
        raise ValueError(f"a channel mask needs at least 2 channels, got shape {tuple(shape)}")
    first = np.arange(c) < c // 2
    keep = first if parity % 2 == 0 else ~first
    return np.broadcast_to(keep, tuple(shape)).copy()


# ---------------------------------------------------------------------- affine coupling
class AffineCoupling(distrax.MaskedCoupling):
    """Affine coupling ``z = where(mask, x, x * exp(s) + t)`` with ``(t, s~) = NN(x * mask)``.

    ``s = bounded_log_scale(s~)``. The conditioner sees only the kept (mask True)
    entries, so the Jacobian is triangular: ``log|det J| = sum_{mask False} s``.

    Args:
      mask: bool array of the event shape, True where the input is kept.
      conditioner: ``(..., *event) -> (..., *event[:-1], 2 * C)``; the last axis holds
        ``[shift | raw log-scale]`` (for vectors ``(..., D) -> (..., 2 D)``).
      event_ndims: rank of one event; defaults to ``mask.ndim``.
      scale_fn: ``"tanh"`` or ``"sigmoid"`` (see :func:`bounded_log_scale`).
      scale_bound: the tanh bound.
    """

    def __init__(
        self,
        mask: Array,
        conditioner: Callable[[Array], Array],
        *,
        event_ndims: int | None = None,
        scale_fn: str = "tanh",
        scale_bound: float = 3.0,
    ):
        if scale_fn not in SCALE_FNS:
            raise ValueError(f"unknown scale_fn {scale_fn!r}; valid choices: {', '.join(SCALE_FNS)}")

        def checked(h: Array) -> Array:
            out = conditioner(h)
            want = h.shape[:-1] + (2 * h.shape[-1],)
            if out.shape != want:
                raise ValueError(f"AffineCoupling conditioner must map {h.shape} to {want}, got {out.shape}")
            return out

        def inner(params: Array) -> distrax.Bijector:
            shift, raw = jnp.split(params, 2, axis=-1)
            return distrax.ScalarAffine(shift, log_scale=bounded_log_scale(raw, scale_fn=scale_fn, bound=scale_bound))

        super().__init__(mask=jnp.asarray(mask), conditioner=checked, bijector=inner, event_ndims=event_ndims)


def spline_coupling(
    mask: Array,
    conditioner: Callable[[Array], Array],
    *,
    bound: float = 4.0,
    event_ndims: int | None = None,
) -> distrax.MaskedCoupling:
    """Rational-quadratic spline coupling (distrax ``MaskedCoupling`` + ``RationalQuadraticSpline``).

    The conditioner maps the masked input ``(..., *event)`` to spline parameters
    ``(..., *event, 3K + 1)`` (K bins); all-zero parameters are the identity. The
    spline acts on ``[-bound, bound]`` and is the identity outside (linear tails,
    ``boundary_slopes="identity"``).
    """

    def inner(params: Array) -> distrax.Bijector:
        return distrax.RationalQuadraticSpline(params, range_min=-bound, range_max=bound, boundary_slopes="identity")

    return distrax.MaskedCoupling(mask=jnp.asarray(mask), conditioner=conditioner, bijector=inner, event_ndims=event_ndims)


# ---------------------------------------------------------------------- MAF
class MaskedAutoregressive(distrax.Bijector):
    """The MAF bijector on vectors ``(..., D)``, normalizing direction.

    ``(mu, s) = conditioner(x)`` is autoregressive: ``mu_i, s_i`` depend only on the
    ``x_j`` that precede ``i`` in some order (a MADE). Then

    * forward (density, one pass): ``z = (x - mu(x)) * exp(-s(x))``,
      ``log|det J| = -sum_i s_i(x)``;
    * inverse (sampling, sequential): ``x = z * exp(s(x)) + mu(x)`` is solved by the
      fixed-point iteration ``x <- z * exp(s(x)) + mu(x)`` from ``x = 0``, run ``D``
      times inside ``lax.scan``. After step ``k`` the first ``k`` variables in the
      autoregressive order are exact, so ``D`` steps give the exact inverse (each a
      full conditioner pass, the cost of the textbook per-dimension loop).
      ``log|det J^-1| = sum_i s_i(x)``, with ``s`` from the last step (exact there).

    Args:
      conditioner: ``(..., D) -> (shift, log_scale)``, each ``(..., D)``, autoregressive.
    """

    def __init__(self, conditioner: Callable[[Array], tuple[Array, Array]]):
        super().__init__(event_ndims_in=1)
        self.conditioner = conditioner

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        shift, log_scale = self.conditioner(x)
        return (x - shift) * jnp.exp(-log_scale), -jnp.sum(log_scale, axis=-1)

    def inverse_and_log_det(self, z: Array) -> tuple[Array, Array]:
        def step(carry, _):
            x, _ = carry
            shift, log_scale = self.conditioner(x)
            return (z * jnp.exp(log_scale) + shift, log_scale), None

        init = (jnp.zeros_like(z), jnp.zeros_like(z))
        (x, log_scale), _ = jax.lax.scan(step, init, None, length=z.shape[-1])
        return x, jnp.sum(log_scale, axis=-1)
