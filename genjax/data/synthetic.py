"""Toy 2-D densities for generative-model experiments.

Each density is a :class:`ToyDensity`: a named, immutable object with a pure
JAX sampler ``sample(key, n) -> (n, 2) float32`` (jittable with ``n`` static)
and, where an exact closed form exists, ``log_prob(x) -> (n,)``.  Parameters
follow the conventions of the GAN / normalizing-flow literature (WGAN-GP,
FFJORD, Johnson et al. 2016); every density lives in roughly ``[-4, 4]^2``.

=============  ===============  ==========  ===============================
name           exact log_prob   ``modes``   description
=============  ===============  ==========  ===============================
8gaussians     yes              (8, 2)      8 isotropic Gaussians (std 0.02)
                                            equally spaced on a circle of
                                            radius 2, equal weights
25gaussians    yes              (25, 2)     25 isotropic Gaussians (std
                                            0.05) centred at
                                            ``{-4,-2,0,2,4}^2``, equal weights
checkerboard   yes              None        uniform on the 8 black squares
                                            (side 2) of a 4x4 board tiling
                                            ``[-4, 4)^2``
gaussian       yes              None        one Gaussian, full covariance
two-moons      no               None        sklearn ``make_moons``, centred
                                            and scaled by 2.5
rings          no               None        4 concentric rings, radii 1..4
pinwheel       no               None        5-arm pinwheel (Johnson et al.
                                            2016)
swiss-roll     no               None        sklearn ``make_swiss_roll``
                                            (x, z) scaled by 1/5
=============  ===============  ==========  ===============================

Calling ``log_prob`` on a density without a closed form raises ``ValueError``.

Example:
    >>> import jax
    >>> d = get_toy_density("8gaussians")
    >>> x = jax.jit(d.sample, static_argnums=1)(jax.random.key(0), 128)
    >>> x.shape, d.log_prob(x).shape
    ((128, 2), (128,))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

__all__ = [
    "EXACT_LOG_PROB_DENSITIES",
    "TOY_DENSITIES",
    "ToyDensity",
    "checkerboard",
    "eight_gaussians",
    "gaussian",
    "get_toy_density",
    "pinwheel",
    "rings",
    "swiss_roll",
    "twenty_five_gaussians",
    "two_moons",
]

#: Names of the densities whose ``log_prob`` is exact (sorted).
EXACT_LOG_PROB_DENSITIES: tuple[str, ...] = (
    "25gaussians",
    "8gaussians",
    "checkerboard",
    "gaussian",
)

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- #
# The density object
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True, eq=False)
class ToyDensity:
    """A named toy 2-D density with a pure-JAX sampler.

    Instances are built by the constructors in :data:`TOY_DENSITIES`; they are
    immutable and hashed by identity, so bound methods can be passed to
    ``jax.jit`` directly.

    Attributes:
        name: Registry name, e.g. ``"8gaussians"``.
        has_log_prob: Whether :meth:`log_prob` is available (exact closed form).
        modes: ``(M, 2)`` float64 array of mixture-component centres for the
            Gaussian-mixture densities, else ``None``.
        mode_std: Isotropic std of each mixture component, else ``None``.
        params: Read-only mapping of the hyper-parameters used to build it.
    """

    name: str
    has_log_prob: bool
    modes: np.ndarray | None
    mode_std: float | None
    params: Mapping[str, Any]
    _sample_fn: Callable[[jax.Array, int], jax.Array] = dataclasses.field(repr=False)
    _log_prob_fn: Callable[[jax.Array], jax.Array] | None = dataclasses.field(
        repr=False, default=None
    )

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """Draws ``n`` i.i.d. samples.

        Args:
            key: A JAX PRNG key (raw ``uint32[2]`` or typed).
            n: Number of samples; a positive Python int (static under jit).

        Returns:
            ``(n, 2)`` float32 array.

        Raises:
            ValueError: If ``n`` is not a positive int.
        """
        n = _check_n(n)
        x = self._sample_fn(key, n)
        return x.astype(jnp.float32)

    def log_prob(self, x: jax.Array) -> jax.Array:
        """Exact log-density of each row of ``x``.

        Args:
            x: ``(n, 2)`` array of points.

        Returns:
            ``(n,)`` array of log-densities (``-inf`` outside the support).

        Raises:
            ValueError: If the density has no closed form, or ``x`` does not
                have shape ``(n, 2)``.
        """
        if self._log_prob_fn is None:
            raise ValueError(
                f"toy density {self.name!r} has no closed-form log_prob; "
                f"densities with one: {list(EXACT_LOG_PROB_DENSITIES)}"
            )
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(
                f"x must have shape (n, 2), got shape {tuple(x.shape)} "
                f"(toy density {self.name!r})"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return self._log_prob_fn(x)


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #
def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(
            f"n must be a positive Python int (static under jit, e.g. "
            f"jax.jit(d.sample, static_argnums=1)), got {n!r} of type "
            f"{type(n).__name__}"
        )
    if n <= 0:
        raise ValueError(f"n must be a positive int, got n={int(n)}")
    return int(n)


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return value


def _check_nonneg(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return value


def _params(**kwargs: Any) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(kwargs))


# --------------------------------------------------------------------------- #
# Isotropic Gaussian mixtures (equal weights)
# --------------------------------------------------------------------------- #
@functools.partial(jax.jit, static_argnums=1)
def _mixture_sample(key: jax.Array, n: int, centres: jax.Array, std: jax.Array) -> jax.Array:
    k_idx, k_eps = jax.random.split(key)
    idx = jax.random.randint(k_idx, (n,), 0, centres.shape[0])
    eps = jax.random.normal(k_eps, (n, 2), dtype=jnp.float32)
    return centres[idx] + std * eps


@jax.jit
def _mixture_log_prob(x: jax.Array, centres: jax.Array, std: jax.Array) -> jax.Array:
    m = centres.shape[0]
    sq = jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=-1)  # (n, M)
    log_norm = -_LOG_2PI - 2.0 * jnp.log(std) - math.log(m)
    return logsumexp(-0.5 * sq / std**2, axis=-1) + log_norm


def _isotropic_mixture(
    name: str, centres: np.ndarray, std: float, params: Mapping[str, Any]
) -> ToyDensity:
    centres = np.array(centres, dtype=np.float64)
    centres.setflags(write=False)  # exposed as ``modes``; keep it immutable
    centres_f32 = centres.astype(np.float32)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _mixture_sample(key, n, centres_f32, np.float32(std))

    def log_prob_fn(x: jax.Array) -> jax.Array:
        return _mixture_log_prob(x, centres.astype(x.dtype), np.asarray(std, x.dtype))

    return ToyDensity(
        name=name,
        has_log_prob=True,
        modes=centres,
        mode_std=std,
        params=params,
        _sample_fn=sample_fn,
        _log_prob_fn=log_prob_fn,
    )


def eight_gaussians(*, std: float = 0.02, radius: float = 2.0) -> ToyDensity:
    """8 equal-weight isotropic Gaussians equally spaced on a circle.

    Centres are ``radius * (cos(k pi/4), sin(k pi/4))`` for ``k = 0..7``
    (the WGAN-GP "8gaussians" layout).

    Args:
        std: Per-coordinate std of each component.
        radius: Radius of the circle of centres.

    Returns:
        A :class:`ToyDensity` named ``"8gaussians"`` with exact ``log_prob``;
        ``modes`` has shape ``(8, 2)``.
    """
    std = _check_positive("std", std)
    radius = _check_positive("radius", radius)
    angles = np.arange(8) * (2.0 * np.pi / 8)
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    return _isotropic_mixture("8gaussians", centres, std, _params(std=std, radius=radius))


def twenty_five_gaussians(*, std: float = 0.05, spacing: float = 2.0) -> ToyDensity:
    """25 equal-weight isotropic Gaussians on a 5x5 grid.

    Centres are ``spacing * {-2, -1, 0, 1, 2}^2`` (``{-4,-2,0,2,4}^2`` by
    default), ordered row-major in ``(x, y)``.

    Args:
        std: Per-coordinate std of each component.
        spacing: Distance between neighbouring centres.

    Returns:
        A :class:`ToyDensity` named ``"25gaussians"`` with exact ``log_prob``;
        ``modes`` has shape ``(25, 2)``.
    """
    std = _check_positive("std", std)
    spacing = _check_positive("spacing", spacing)
    grid = spacing * np.arange(-2, 3, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    centres = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    return _isotropic_mixture(
        "25gaussians", centres, std, _params(std=std, spacing=spacing)
    )


# --------------------------------------------------------------------------- #
# Checkerboard
# --------------------------------------------------------------------------- #
#: Lower-left corners of the black squares: cell (i, j) of the 4x4 board
#: covering [-4, 4)^2 is black iff (i + j) is even.
_CHECKER_CORNERS = np.array(
    [(-4.0 + 2 * i, -4.0 + 2 * j) for i in range(4) for j in range(4) if (i + j) % 2 == 0],
    dtype=np.float32,
)


@functools.partial(jax.jit, static_argnums=1)
def _checkerboard_sample(key: jax.Array, n: int) -> jax.Array:
    corners = jnp.asarray(_CHECKER_CORNERS)
    k_idx, k_u = jax.random.split(key)
    idx = jax.random.randint(k_idx, (n,), 0, corners.shape[0])
    lo = corners[idx]
    u = jax.random.uniform(k_u, (n, 2), dtype=jnp.float32)
    # Rounding of lo + 2u can land on the (excluded) upper edge; clamp.
    hi = jnp.nextafter(lo + 2.0, lo)
    return jnp.clip(lo + 2.0 * u, lo, hi)


@jax.jit
def _checkerboard_log_prob(x: jax.Array) -> jax.Array:
    cell = jnp.floor((x + 4.0) / 2.0)
    inside = jnp.all((x >= -4.0) & (x < 4.0), axis=-1)
    black = (jnp.sum(cell, axis=-1).astype(jnp.int32) % 2) == 0
    return jnp.where(inside & black, -math.log(32.0), -jnp.inf).astype(x.dtype)


def checkerboard() -> ToyDensity:
    """Uniform density on the black squares of a 4x4 checkerboard.

    The board tiles ``[-4, 4)^2`` with half-open squares of side 2; cell
    ``(i, j) = floor((x + 4) / 2)`` is black iff ``i + j`` is even (so
    ``[-4, -2)^2`` is black, as in FFJORD).  The density is ``1/32`` on the
    8 black squares (total area 32) and 0 elsewhere.

    Returns:
        A :class:`ToyDensity` named ``"checkerboard"`` with exact ``log_prob``
        (``log(1/32)`` inside, ``-inf`` outside).
    """
    return ToyDensity(
        name="checkerboard",
        has_log_prob=True,
        modes=None,
        mode_std=None,
        params=_params(),
        _sample_fn=_checkerboard_sample,
        _log_prob_fn=_checkerboard_log_prob,
    )


# --------------------------------------------------------------------------- #
# Single full-covariance Gaussian
# --------------------------------------------------------------------------- #
@functools.partial(jax.jit, static_argnums=1)
def _gaussian_sample(key: jax.Array, n: int, mean: jax.Array, chol: jax.Array) -> jax.Array:
    z = jax.random.normal(key, (n, 2), dtype=jnp.float32)
    return mean + z @ chol.T


@jax.jit
def _gaussian_log_prob(
    x: jax.Array, mean: jax.Array, chol_inv: jax.Array, log_norm: jax.Array
) -> jax.Array:
    z = (x - mean) @ chol_inv.T
    return -0.5 * jnp.sum(z**2, axis=-1) + log_norm


def gaussian(
    *,
    mean: tuple[float, float] | np.ndarray = (0.5, -0.5),
    cov: tuple[tuple[float, float], tuple[float, float]] | np.ndarray = (
        (1.0, 0.6),
        (0.6, 2.0),
    ),
) -> ToyDensity:
    """A single 2-D Gaussian ``N(mean, cov)``.

    Args:
        mean: ``(2,)`` mean.
        cov: ``(2, 2)`` symmetric positive-definite covariance.

    Returns:
        A :class:`ToyDensity` named ``"gaussian"`` with exact ``log_prob``.

    Raises:
        ValueError: If ``mean``/``cov`` have the wrong shape or ``cov`` is not
            symmetric positive definite.
    """
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if mean.shape != (2,) or not np.all(np.isfinite(mean)):
        raise ValueError(f"mean must be a finite array of shape (2,), got {mean!r}")
    if cov.shape != (2, 2) or not np.all(np.isfinite(cov)):
        raise ValueError(f"cov must be a finite array of shape (2, 2), got {cov!r}")
    if not np.allclose(cov, cov.T):
        raise ValueError(f"cov must be symmetric, got {cov.tolist()}")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(f"cov must be positive definite, got {cov.tolist()}") from None
    chol_inv = np.linalg.inv(chol)
    log_norm = -_LOG_2PI - float(np.sum(np.log(np.diag(chol))))
    mean_f32, chol_f32 = mean.astype(np.float32), chol.astype(np.float32)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _gaussian_sample(key, n, mean_f32, chol_f32)

    def log_prob_fn(x: jax.Array) -> jax.Array:
        dt = x.dtype
        return _gaussian_log_prob(
            x, mean.astype(dt), chol_inv.astype(dt), np.asarray(log_norm, dt)
        )

    return ToyDensity(
        name="gaussian",
        has_log_prob=True,
        modes=None,
        mode_std=None,
        params=_params(mean=tuple(mean.tolist()), cov=tuple(map(tuple, cov.tolist()))),
        _sample_fn=sample_fn,
        _log_prob_fn=log_prob_fn,
    )


# --------------------------------------------------------------------------- #
# Densities without a closed form
# --------------------------------------------------------------------------- #
def _sample_only(name: str, sample_fn: Callable, params: Mapping[str, Any]) -> ToyDensity:
    return ToyDensity(
        name=name,
        has_log_prob=False,
        modes=None,
        mode_std=None,
        params=params,
        _sample_fn=sample_fn,
        _log_prob_fn=None,
    )


@functools.partial(jax.jit, static_argnums=1)
def _two_moons_sample(key: jax.Array, n: int, noise: jax.Array, scale: jax.Array) -> jax.Array:
    k_lab, k_t, k_eps = jax.random.split(key, 3)
    lower = jax.random.bernoulli(k_lab, 0.5, (n,))
    t = jax.random.uniform(k_t, (n,), dtype=jnp.float32, maxval=jnp.pi)
    c, s = jnp.cos(t), jnp.sin(t)
    px = jnp.where(lower, 1.0 - c, c)
    py = jnp.where(lower, 0.5 - s, s)
    p = jnp.stack([px, py], axis=-1)
    p = p + noise * jax.random.normal(k_eps, (n, 2), dtype=jnp.float32)
    return scale * (p - jnp.array([0.5, 0.25], dtype=jnp.float32))


def two_moons(*, noise: float = 0.1, scale: float = 2.5) -> ToyDensity:
    """Two interleaved half circles, as sklearn ``make_moons``.

    Each sample picks a moon with probability 1/2 and ``t ~ U[0, pi]``: the
    upper moon is ``(cos t, sin t)``, the lower ``(1 - cos t, 0.5 - sin t)``.
    Gaussian noise of std ``noise`` is added in these (sklearn) units, then
    the points are centred at ``(0.5, 0.25)`` and multiplied by ``scale``
    (default range ~ ``[-3.75, 3.75] x [-1.9, 1.9]``).

    Args:
        noise: Std of the isotropic Gaussian noise, in sklearn units.
        scale: Multiplier applied after centring.

    Returns:
        A :class:`ToyDensity` named ``"two-moons"`` (no ``log_prob``).
    """
    noise = _check_nonneg("noise", noise)
    scale = _check_positive("scale", scale)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _two_moons_sample(key, n, np.float32(noise), np.float32(scale))

    return _sample_only("two-moons", sample_fn, _params(noise=noise, scale=scale))


@functools.partial(jax.jit, static_argnums=1)
def _rings_sample(key: jax.Array, n: int, radii: jax.Array, noise: jax.Array) -> jax.Array:
    k_idx, k_th, k_eps = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (n,), 0, radii.shape[0])
    theta = jax.random.uniform(k_th, (n,), dtype=jnp.float32, maxval=2.0 * jnp.pi)
    r = radii[idx] + noise * jax.random.normal(k_eps, (n,), dtype=jnp.float32)
    return jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=-1)


def rings(
    *, radii: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0), noise: float = 0.08
) -> ToyDensity:
    """Concentric rings with equal mass per ring.

    Each sample picks a ring uniformly, an angle ``theta ~ U[0, 2 pi)`` and a
    radius ``r = radii[k] + noise * N(0, 1)``.

    Args:
        radii: Ring radii (positive, at least one).
        noise: Std of the radial Gaussian noise.

    Returns:
        A :class:`ToyDensity` named ``"rings"`` (no ``log_prob``).
    """
    radii_arr = np.asarray(radii, dtype=np.float64).reshape(-1)
    if radii_arr.size == 0 or not np.all(np.isfinite(radii_arr) & (radii_arr > 0)):
        raise ValueError(f"radii must be a non-empty sequence of positive numbers, got {radii!r}")
    noise = _check_nonneg("noise", noise)
    radii_f32 = radii_arr.astype(np.float32)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _rings_sample(key, n, radii_f32, np.float32(noise))

    return _sample_only(
        "rings", sample_fn, _params(radii=tuple(radii_arr.tolist()), noise=noise)
    )


@functools.partial(jax.jit, static_argnums=1)
def _pinwheel_sample(
    key: jax.Array,
    n: int,
    num_arms: jax.Array,
    stds: jax.Array,
    rate: jax.Array,
    scale: jax.Array,
) -> jax.Array:
    k_idx, k_f = jax.random.split(key)
    arm = jax.random.randint(k_idx, (n,), 0, num_arms)
    f = jax.random.normal(k_f, (n, 2), dtype=jnp.float32) * stds
    f = f.at[:, 0].add(1.0)
    angle = arm.astype(jnp.float32) * (2.0 * jnp.pi / num_arms) + rate * jnp.exp(f[:, 0])
    c, s = jnp.cos(angle), jnp.sin(angle)
    # f @ [[c, -s], [s, c]], i.e. einsum('ti,tij->tj') of the reference code
    out = jnp.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], axis=-1)
    return scale * out


def pinwheel(
    *,
    num_arms: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.05,
    rate: float = 0.25,
    scale: float = 2.0,
) -> ToyDensity:
    """The pinwheel of Johnson et al. (2016, "Composing graphical models with
    neural networks").

    Features ``f = (1 + radial_std * e1, tangential_std * e2)`` are rotated by
    the angle ``-(2 pi k / num_arms + rate * exp(f_0))`` for a uniformly chosen
    arm ``k`` (exactly the ``einsum('ti,tij->tj', ...)`` of the reference
    code), then multiplied by ``scale``.  The reference code scales by 10;
    the default 2 keeps the data in roughly ``[-4, 4]^2`` like the other
    densities.

    Args:
        num_arms: Number of arms (positive int).
        radial_std: Std of the radial feature.
        tangential_std: Std of the tangential feature.
        rate: Twist rate.
        scale: Output multiplier.

    Returns:
        A :class:`ToyDensity` named ``"pinwheel"`` (no ``log_prob``).
    """
    if isinstance(num_arms, bool) or not isinstance(num_arms, (int, np.integer)) or num_arms <= 0:
        raise ValueError(f"num_arms must be a positive int, got {num_arms!r}")
    num_arms = int(num_arms)
    radial_std = _check_nonneg("radial_std", radial_std)
    tangential_std = _check_nonneg("tangential_std", tangential_std)
    rate = float(rate)
    if not math.isfinite(rate):
        raise ValueError(f"rate must be finite, got {rate!r}")
    scale = _check_positive("scale", scale)
    stds = np.array([radial_std, tangential_std], dtype=np.float32)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _pinwheel_sample(
            key, n, np.int32(num_arms), stds, np.float32(rate), np.float32(scale)
        )

    return _sample_only(
        "pinwheel",
        sample_fn,
        _params(
            num_arms=num_arms,
            radial_std=radial_std,
            tangential_std=tangential_std,
            rate=rate,
            scale=scale,
        ),
    )


@functools.partial(jax.jit, static_argnums=1)
def _swiss_roll_sample(key: jax.Array, n: int, noise: jax.Array, scale: jax.Array) -> jax.Array:
    k_t, k_eps = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,), dtype=jnp.float32))
    p = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1)
    p = p + noise * jax.random.normal(k_eps, (n, 2), dtype=jnp.float32)
    return scale * p


def swiss_roll(*, noise: float = 1.0, scale: float = 0.2) -> ToyDensity:
    """2-D swiss roll: the (x, z) coordinates of sklearn ``make_swiss_roll``.

    ``t = 1.5 pi (1 + 2u)`` with ``u ~ U[0, 1)``; the point is
    ``(t cos t, t sin t)`` plus isotropic Gaussian noise of std ``noise``
    (sklearn units), multiplied by ``scale``.  The defaults (noise 1, scale
    1/5) are FFJORD's, giving roughly ``[-3, 3]^2``.

    Args:
        noise: Std of the Gaussian noise before scaling.
        scale: Output multiplier.

    Returns:
        A :class:`ToyDensity` named ``"swiss-roll"`` (no ``log_prob``).
    """
    noise = _check_nonneg("noise", noise)
    scale = _check_positive("scale", scale)

    def sample_fn(key: jax.Array, n: int) -> jax.Array:
        return _swiss_roll_sample(key, n, np.float32(noise), np.float32(scale))

    return _sample_only("swiss-roll", sample_fn, _params(noise=noise, scale=scale))


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
TOY_DENSITIES: dict[str, Callable[..., ToyDensity]] = {
    "8gaussians": eight_gaussians,
    "25gaussians": twenty_five_gaussians,
    "checkerboard": checkerboard,
    "two-moons": two_moons,
    "rings": rings,
    "pinwheel": pinwheel,
    "swiss-roll": swiss_roll,
    "gaussian": gaussian,
}


def get_toy_density(name: str, **kwargs: Any) -> ToyDensity:
    """Builds a toy density by name.

    Args:
        name: One of the keys of :data:`TOY_DENSITIES`.
        **kwargs: Keyword hyper-parameters for that density's constructor.

    Returns:
        The :class:`ToyDensity`.

    Raises:
        ValueError: If ``name`` is unknown (the message lists valid names).
    """
    try:
        ctor = TOY_DENSITIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown toy density name {name!r}; valid names: {sorted(TOY_DENSITIES)}"
        ) from None
    return ctor(**kwargs)


# --------------------------------------------------------------------------- #
# Exact log-densities in float64 (for KL estimates), rings included
# --------------------------------------------------------------------------- #
def rings_log_prob(x: Any, radii: Any, noise: float) -> np.ndarray:
    """Exact log-density of :func:`rings` ``(radii, noise)`` at ``x`` ``(n, 2)`` (float64, numpy).

    Derived from how :func:`_rings_sample` draws: ring ``k`` uniformly, angle
    ``theta ~ U[0, 2 pi)``, signed radius ``r = R_k + noise * eps``, point
    ``r (cos theta, sin theta)``. The polar radius ``rho = |r|`` then has density
    ``f(rho) = (1/K) sum_k [N(rho; R_k, noise) + N(-rho; R_k, noise)]`` (the second term
    is a negative ``r`` flipped through the origin) and the polar angle is uniform and
    independent, so ``p(x) = f(rho) / (2 pi rho)`` exactly.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got shape {x.shape}")
    radii = np.asarray(radii, np.float64).reshape(-1)
    noise = _check_positive("noise", noise)
    rho = np.maximum(np.hypot(x[:, 0], x[:, 1]), 1e-300)
    z = np.concatenate([rho[:, None] - radii[None, :], rho[:, None] + radii[None, :]], axis=1) / noise
    terms = -0.5 * z * z - 0.5 * _LOG_2PI - math.log(noise)
    m = terms.max(axis=1, keepdims=True)
    log_f = m[:, 0] + np.log(np.exp(terms - m).sum(axis=1)) - math.log(len(radii))
    return log_f - np.log(2.0 * math.pi * rho)


def exact_log_prob(toy: ToyDensity, x: Any) -> np.ndarray:
    """``log p(x)`` in float64 numpy for every density with a closed form, rings included.

    ``rings`` uses :func:`rings_log_prob`; the others their :meth:`ToyDensity.log_prob`.

    Raises:
        ValueError: If ``toy`` has no closed form (the message lists those that do).
    """
    if toy.name == "rings":
        return rings_log_prob(x, toy.params["radii"], toy.params["noise"])
    if not toy.has_log_prob:
        raise ValueError(
            f"toy density {toy.name!r} has no closed-form log-density; "
            f"densities with one: {sorted((*EXACT_LOG_PROB_DENSITIES, 'rings'))}"
        )
    return np.asarray(toy.log_prob(jnp.asarray(x)), np.float64)
