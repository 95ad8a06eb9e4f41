"""Bijectors distrax lacks: ActNorm, invertible 1x1 convolution, squeeze, factor-out,
Glow's learned prior, logit.

Direction: every layer of ``genjax.flows`` is written in the *normalizing*
direction, ``forward: x (data side) -> z (base side)``; a flow's distribution is
``distrax.Transformed(base, distrax.Inverse(normalizing))``. The layers here are
bijections of their own, so either direction can be used as a distrax bijector.

All take their parameters as arrays at construction (built inside pure functions
from a params pytree) and hold no state. Shapes follow distrax: an input of shape
``batch_shape + event_shape`` gives a log-det of shape ``batch_shape``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from genjax.types import Array


def _sum_last(a: Array, n: int) -> Array:
    return jnp.sum(a, axis=tuple(range(a.ndim - n, a.ndim))) if n else a


def _split_shape(x: Array, event_ndims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(batch_shape, event_shape)`` of ``x`` for a bijector with ``event_ndims``."""
    if x.ndim < event_ndims:
        raise ValueError(f"expected an input of rank >= {event_ndims} (the event rank), got shape {x.shape}")
    k = x.ndim - event_ndims
    return tuple(x.shape[:k]), tuple(x.shape[k:])


def _check_channels(name: str, x: Array, channels: int) -> None:
    if x.shape[-1] != channels:
        raise ValueError(f"{name} has {channels} channels (last axis) but got an input of shape {x.shape}")


# ---------------------------------------------------------------------- ActNorm
class ActNorm(distrax.Bijector):
    """Per-channel affine map (Kingma & Dhariwal, 2018): ``y = x * exp(log_scale) + bias``.

    Channels are the last axis; ``log_scale`` and ``bias`` have shape ``(C,)``. With
    an event of shape ``(*S, C)`` (e.g. ``(H, W, C)``), ``log|det J| = prod(S) *
    sum(log_scale)``, the same for every input. Initialise from data with
    :func:`actnorm_init` so that the outputs on a first batch have zero mean and unit
    variance per channel.

    Args:
      log_scale: ``(C,)``.
      bias: ``(C,)``.
      event_ndims: rank of one event (1 for vectors, 3 for ``(H, W, C)`` images).
    """

    def __init__(self, log_scale: Array, bias: Array, *, event_ndims: int = 1):
        if event_ndims < 1:
            raise ValueError(f"ActNorm needs event_ndims >= 1 (channels are the last axis), got {event_ndims}")
        if jnp.shape(log_scale) != jnp.shape(bias) or len(jnp.shape(log_scale)) != 1:
            raise ValueError(f"log_scale and bias must both be (C,), got {jnp.shape(log_scale)} and {jnp.shape(bias)}")
        super().__init__(event_ndims_in=event_ndims, is_constant_jacobian=True)
        self.log_scale = log_scale
        self.bias = bias

    def _log_det(self, x: Array) -> Array:
        _check_channels("ActNorm", x, self.log_scale.shape[0])
        batch, event = _split_shape(x, self.event_ndims_in)
        ld = math.prod(event[:-1]) * jnp.sum(self.log_scale)
        return jnp.broadcast_to(ld, batch).astype(x.dtype)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        ld = self._log_det(x)
        return x * jnp.exp(self.log_scale) + self.bias, ld

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        ld = self._log_det(y)
        return (y - self.bias) * jnp.exp(-self.log_scale), -ld


def actnorm_init(x: Array, *, eps: float = 1e-6) -> dict[str, Array]:
    """Data-dependent ActNorm parameters: per-channel ``(x - mean) / std`` on this batch.

    Args:
      x: ``(..., C)`` activations reaching the ActNorm layer (a first batch).
      eps: added to the standard deviation.

    Returns:
      ``{"log_scale": -log(std + eps), "bias": -mean / (std + eps)}``, each ``(C,)``,
      so ``ActNorm(**p).forward(x)`` has mean 0 and standard deviation ~1 per channel.
    """
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    std = jnp.std(x, axis=axes) + eps
    return {"log_scale": -jnp.log(std), "bias": -mean / std}


# ---------------------------------------------------------------------- 1x1 conv
class InvertibleConv1x1(distrax.Bijector):
    """Invertible 1x1 convolution with an LU-parameterised weight (Glow).

    ``W = P L (U + diag(sign * exp(log_s)))`` with ``P`` a fixed permutation, ``L``
    unit lower-triangular (strict lower part of ``lower``), ``U`` strictly upper
    (strict upper part of ``upper``) and fixed ``sign``. At every position of the
    event ``y = W x`` over channels (last axis), so for an event ``(*S, C)``
    ``log|det J| = prod(S) * sum(log_s)`` (O(C), no determinant).

    Args:
      lower, upper: ``(C, C)`` (only the strict lower / upper parts are used).
      log_s: ``(C,)``.
      permutation: ``(C, C)`` permutation matrix (not trained).
      sign: ``(C,)`` of +-1 (not trained).
      event_ndims: rank of one event (3 for images).
    """

    def __init__(self, lower: Array, upper: Array, log_s: Array, *, permutation, sign, event_ndims: int = 3):
        c = jnp.shape(log_s)[0]
        for name, a, shape in (("lower", lower, (c, c)), ("upper", upper, (c, c)), ("permutation", permutation, (c, c)), ("sign", sign, (c,))):
            if jnp.shape(a) != shape:
                raise ValueError(f"InvertibleConv1x1: {name} must have shape {shape}, got {jnp.shape(a)}")
        if event_ndims < 1:
            raise ValueError(f"InvertibleConv1x1 needs event_ndims >= 1, got {event_ndims}")
        super().__init__(event_ndims_in=event_ndims, is_constant_jacobian=True)
        self.lower, self.upper, self.log_s = lower, upper, log_s
        self.permutation, self.sign = permutation, sign

    def _factors(self):
        c = self.log_s.shape[0]
        eye = jnp.eye(c, dtype=self.log_s.dtype)
        low = jnp.tril(self.lower, -1) + eye
        up = jnp.triu(self.upper, 1) + jnp.diag(self.sign * jnp.exp(self.log_s))
        return jnp.asarray(self.permutation, self.log_s.dtype), low, up

    def weight(self) -> Array:
        """``W = P L U``, shape ``(C, C)``."""
        p, low, up = self._factors()
        return p @ low @ up

    def inverse_weight(self) -> Array:
        """``W^-1 = U^-1 L^-1 P^T`` by two triangular solves, shape ``(C, C)``."""
        p, low, up = self._factors()
        eye = jnp.eye(low.shape[0], dtype=low.dtype)
        low_inv = jax.scipy.linalg.solve_triangular(low, eye, lower=True, unit_diagonal=True)
        up_inv = jax.scipy.linalg.solve_triangular(up, eye, lower=False)
        return up_inv @ low_inv @ p.T

    def _log_det(self, x: Array) -> Array:
        _check_channels("InvertibleConv1x1", x, self.log_s.shape[0])
        batch, event = _split_shape(x, self.event_ndims_in)
        return jnp.broadcast_to(math.prod(event[:-1]) * jnp.sum(self.log_s), batch).astype(x.dtype)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        ld = self._log_det(x)
        return x @ self.weight().T, ld

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        ld = self._log_det(y)
        return y @ self.inverse_weight().T, -ld


def _lu(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a = P @ L @ U`` by Gaussian elimination with partial pivoting (numpy, float64)."""
    n = a.shape[0]
    a = np.array(a, np.float64)
    perm = np.arange(n)
    for k in range(n):
        p = k + int(np.argmax(np.abs(a[k:, k])))
        a[[k, p]], perm[[k, p]] = a[[p, k]], perm[[p, k]]
        a[k + 1 :, k] /= a[k, k]
        a[k + 1 :, k + 1 :] -= np.outer(a[k + 1 :, k], a[k, k + 1 :])
    return np.eye(n)[perm].T, np.tril(a, -1) + np.eye(n), np.triu(a)


@functools.lru_cache(maxsize=256)
def _conv1x1_lu_init_cached(channels: int, seed: int):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
    p, low, up = _lu(q)
    assert np.allclose(p @ low @ up, q, atol=1e-10)
    s = np.diag(up)
    f32 = lambda a: np.asarray(a, np.float32)
    params = {"lower": f32(low), "upper": f32(np.triu(up, 1)), "log_s": f32(np.log(np.abs(s)))}
    return params, f32(p), f32(np.sign(s))


def conv1x1_lu_init(channels: int, *, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """LU factors of a random rotation (Glow's initialisation), computed with numpy.

    Returns:
      ``(params, permutation, sign)``: trainable ``{"lower", "upper", "log_s"}`` and the
      fixed ``(C, C)`` permutation and ``(C,)`` signs, all float32 numpy arrays (fresh
      copies), deterministic in ``(channels, seed)``.
    """
    params, p, sign = _conv1x1_lu_init_cached(int(channels), int(seed))
    return {k: v.copy() for k, v in params.items()}, p.copy(), sign.copy()


# ---------------------------------------------------------------------- squeeze / factor-out
class Squeeze(distrax.Bijector):
    """Space-to-depth: ``(..., H, W, C) -> (..., H/f, W/f, f*f*C)`` (a permutation, log-det 0).

    ``y[i, j, (a * f + b) * C + c] = x[i * f + a, j * f + b, c]``. The inverse is
    depth-to-space; ``distrax.Inverse(Squeeze())`` is the un-squeeze.

    Raises:
      ValueError: (at trace time) when H or W is not divisible by ``factor``, or the
        inverse gets a channel count not divisible by ``factor**2``.
    """

    def __init__(self, factor: int = 2):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"Squeeze factor must be a positive integer, got {factor!r}")
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)
        self.factor = factor

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        batch, (h, w, c) = _split_shape(x, 3)
        f = self.factor
        if h % f or w % f:
            odd = " (odd spatial size)" if f == 2 else ""
            raise ValueError(
                f"Squeeze(factor={f}) needs height and width divisible by {f}{odd}; got an event of "
                f"shape (H, W, C) = {(h, w, c)}"
            )
        y = x.reshape(*batch, h // f, f, w // f, f, c)
        k = len(batch)
        y = jnp.moveaxis(y, k + 2, k + 1).reshape(*batch, h // f, w // f, f * f * c)
        return y, jnp.zeros(batch, x.dtype)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        batch, (h, w, c) = _split_shape(y, 3)
        f = self.factor
        if c % (f * f):
            raise ValueError(f"Squeeze(factor={f}) inverse needs channels divisible by {f * f}; got event shape {(h, w, c)}")
        x = y.reshape(*batch, h, w, f, f, c // (f * f))
        k = len(batch)
        x = jnp.moveaxis(x, k + 2, k + 1).reshape(*batch, h * f, w * f, c // (f * f))
        return x, jnp.zeros(batch, y.dtype)


class FactorOut(distrax.Bijector):
    """Multi-scale factor-out: the first ``num_factored`` channels go to the base distribution.

    ``y = concat(x[..., :k], g(x[..., k:]))`` along the last axis, where ``g`` (the
    rest of the flow at coarser scales) must keep its input's shape. The identity
    part contributes nothing to the log-det, so ``log|det J| = log|det J_g|``. With a
    standard-normal base this is RealNVP's multi-scale architecture (Dinh et al.,
    2017): the factored-out half is Gaussianised at this scale.

    Args:
      bijector: ``g``, acting on events ``(..., C - k)``.
      num_factored: ``k``, channels passed through unchanged.
    """

    def __init__(self, bijector: distrax.Bijector, num_factored: int):
        if isinstance(num_factored, bool) or not isinstance(num_factored, int) or num_factored < 1:
            raise ValueError(f"num_factored must be a positive integer, got {num_factored!r}")
        if bijector.event_ndims_in != bijector.event_ndims_out or bijector.event_ndims_in < 1:
            raise ValueError("FactorOut needs an inner bijector with equal event ranks >= 1")
        super().__init__(event_ndims_in=bijector.event_ndims_in)
        self.bijector = bijector
        self.num_factored = num_factored

    def _apply(self, x: Array, fn) -> tuple[Array, Array]:
        k = self.num_factored
        if x.shape[-1] <= k:
            raise ValueError(f"FactorOut(num_factored={k}) needs more than {k} channels, got shape {x.shape}")
        rest, ld = fn(x[..., k:])
        if rest.shape != x[..., k:].shape:
            raise ValueError(f"FactorOut's inner bijector must keep the shape {x[..., k:].shape}, got {rest.shape}")
        return jnp.concatenate([x[..., :k], rest], axis=-1), ld

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        return self._apply(x, self.bijector.forward_and_log_det)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        return self._apply(y, self.bijector.inverse_and_log_det)


class LearnedPrior(distrax.Bijector):
    """Glow's learned Gaussian prior as a bijector onto ``N(0, I)``.

    ``y[..., :k] = (x[..., :k] - m) * exp(-s)`` with ``(m, s) = split(net(x[..., k:]))``
    (the kept channels ``x[..., k:]`` pass unchanged), so ``log N(y; 0, I) + log|det J|``
    is ``log N(x[..., :k]; m, diag(exp(2 s))) + log N(x[..., k:]; 0, I)``: the factored-out
    half has the prior ``N(m(kept), exp(s(kept))^2)`` (Kingma & Dhariwal, 2018, the split
    prior). With ``k`` = all channels (the top prior), ``net`` sees zeros of one channel,
    so ``(m, s)`` are learned constants. ``log|det J| = -sum s``.

    Args:
      net: ``(..., H, W, C') -> (..., H, W, 2 k)``, ``[mean | log-scale]``.
      num_factored: ``k``.
      event_ndims: rank of one event (3 for images).
    """

    def __init__(self, net: Callable[[Array], Array], num_factored: int, *, event_ndims: int = 3):
        if isinstance(num_factored, bool) or not isinstance(num_factored, int) or num_factored < 1:
            raise ValueError(f"num_factored must be a positive integer, got {num_factored!r}")
        super().__init__(event_ndims_in=event_ndims)
        self.net = net
        self.num_factored = num_factored

    def _stats(self, x: Array) -> tuple[Array, Array]:
        k = self.num_factored
        if x.shape[-1] < k:
            raise ValueError(f"LearnedPrior(num_factored={k}) needs at least {k} channels, got shape {x.shape}")
        cond = x[..., k:] if x.shape[-1] > k else jnp.zeros((*x.shape[:-1], 1), x.dtype)
        out = self.net(cond)
        if out.shape != (*x.shape[:-1], 2 * k):
            raise ValueError(f"LearnedPrior's net must map {cond.shape} to {(*x.shape[:-1], 2 * k)}, got {out.shape}")
        mean, log_scale = jnp.split(out, 2, axis=-1)
        return mean, log_scale

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        k = self.num_factored
        mean, log_scale = self._stats(x)
        y = jnp.concatenate([(x[..., :k] - mean) * jnp.exp(-log_scale), x[..., k:]], axis=-1)
        return y, -_sum_last(log_scale, self.event_ndims_in)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        k = self.num_factored
        mean, log_scale = self._stats(y)  # the kept channels are the same in x and y
        x = jnp.concatenate([y[..., :k] * jnp.exp(log_scale) + mean, y[..., k:]], axis=-1)
        return x, _sum_last(log_scale, self.event_ndims_in)


# ---------------------------------------------------------------------- logit
class Logit(distrax.Bijector):
    """Logit pre-processing of data in [0, 1]: ``y = logit(alpha + (1 - 2 alpha) x)``.

    ``alpha`` keeps the logit finite at 0 and 1 (RealNVP uses 0.05). Per element
    ``log|dy/dx| = log(1 - 2 alpha) - log p - log(1 - p)`` with ``p = alpha + (1 - 2
    alpha) x``, summed over the event. Inverse: ``x = (sigmoid(y) - alpha) / (1 - 2 alpha)``.

    Args:
      alpha: in [0, 0.5).
      event_ndims: rank of one event.
    """

    def __init__(self, alpha: float = 0.05, *, event_ndims: int = 0):
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha < 0.5):
            raise ValueError(f"Logit alpha must be in [0, 0.5), got {alpha!r}")
        super().__init__(event_ndims_in=event_ndims)
        self.alpha = float(alpha)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        a = self.alpha
        p = a + (1.0 - 2.0 * a) * x
        y = jnp.log(p) - jnp.log1p(-p)
        ld = math.log1p(-2.0 * a) - jnp.log(p) - jnp.log1p(-p)
        return y, _sum_last(ld, self.event_ndims_in)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        a = self.alpha
        x = (jax.nn.sigmoid(y) - a) / (1.0 - 2.0 * a)
        ld = jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y) - math.log1p(-2.0 * a)
        return x, _sum_last(ld, self.event_ndims_in)
