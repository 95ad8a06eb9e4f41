"""Noise schedules: the discrete DDPM chain and the continuous SDEs of score_sde.

Discrete convention (DDPM/DDIM): ``T`` steps, integer index ``t`` in ``{0..T-1}``;
``x`` at index ``t`` is ``sqrt(abar[t]) x0 + sqrt(1 - abar[t]) eps`` with
``abar[t] = prod_{s<=t} (1 - beta[s])``. Index ``-1`` is the clean data (``abar = 1``).
Index ``t`` is step ``t + 1`` of the DDPM paper.

Continuous convention (score SDE): ``t`` in ``[eps, 1]``, a float array of shape
``(b,)``; ``x_t = mean_coef(t) x0 + std(t) noise``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.types import Array, PRNGKeyArray

_LOG_2PI = math.log(2.0 * math.pi)


class DiscreteSchedule(NamedTuple):
    """A discrete variance schedule (a pytree of two float32 arrays).

    Attributes:
      betas: ``(T,)`` per-step noise variances ``beta[t]`` in (0, 1).
      alphas_cumprod: ``(T,)`` ``abar[t] = prod_{s<=t} (1 - beta[s])``, decreasing.

    The properties derive the quantities of the DDPM posterior
    ``q(x_{t-1} | x_t, x0) = N(coef1[t] x0 + coef2[t] x_t, beta_tilde[t])``.
    """

    betas: Array
    alphas_cumprod: Array

    @property
    def num_steps(self) -> int:
        """``T`` (a static Python int, also under jit)."""
        return int(self.betas.shape[0])

    @property
    def alphas(self) -> Array:
        """``(T,)`` ``1 - beta[t]``."""
        return 1.0 - self.betas

    @property
    def alphas_cumprod_prev(self) -> Array:
        """``(T,)`` ``abar[t-1]``, with ``abar[-1] = 1`` (the clean data)."""
        return jnp.concatenate([jnp.ones((1,), self.alphas_cumprod.dtype), self.alphas_cumprod[:-1]])

    @property
    def posterior_variance(self) -> Array:
        """``(T,)`` ``beta_tilde[t] = beta[t] (1 - abar[t-1]) / (1 - abar[t])`` (0 at ``t = 0``)."""
        return self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @property
    def posterior_log_variance_clipped(self) -> Array:
        """``(T,)`` ``log beta_tilde[t]`` with the ``t = 0`` entry (log 0) replaced by
        ``log beta_tilde[1]`` (``log beta[0]`` when ``T = 1``), as in DDPM."""
        pv = self.posterior_variance
        first = pv[1:2] if self.num_steps > 1 else self.betas[:1]
        return jnp.log(jnp.concatenate([first, pv[1:]]))

    @property
    def posterior_mean_coef1(self) -> Array:
        """``(T,)`` coefficient of ``x0``: ``beta[t] sqrt(abar[t-1]) / (1 - abar[t])``."""
        return self.betas * jnp.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @property
    def posterior_mean_coef2(self) -> Array:
        """``(T,)`` coefficient of ``x_t``: ``(1 - abar[t-1]) sqrt(1 - beta[t]) / (1 - abar[t])``."""
        return (1.0 - self.alphas_cumprod_prev) * jnp.sqrt(self.alphas) / (1.0 - self.alphas_cumprod)


def schedule_from_betas(betas) -> DiscreteSchedule:
    """Builds a :class:`DiscreteSchedule` from ``(T,)`` betas in (0, 1).

    The cumulative product is taken in float64 (NumPy) and stored as float32.

    Raises:
      ValueError: if ``betas`` is not a non-empty 1-D array with values in (0, 1).
    """
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.shape[0] == 0:
        raise ValueError(f"betas must be a non-empty 1-D array of shape (T,), got shape {b.shape}")
    if not np.all((b > 0) & (b < 1)):
        raise ValueError(f"betas must lie in (0, 1), got values in [{b.min():.3g}, {b.max():.3g}]")
    abar = np.cumprod(1.0 - b)
    return DiscreteSchedule(betas=jnp.asarray(b, jnp.float32), alphas_cumprod=jnp.asarray(abar, jnp.float32))


def _beta_range(num_steps, beta_min, beta_max) -> tuple[int, float, float]:
    """The checked ``(T, beta_min, beta_max)`` of a schedule spaced between two betas."""
    num_steps = _checks.positive_int("num_steps", num_steps)
    beta_min = _checks.positive_float("beta_min", beta_min)
    beta_max = _checks.positive_float("beta_max", beta_max)
    if not beta_min <= beta_max < 1.0:
        raise ValueError(f"need 0 < beta_min <= beta_max < 1, got beta_min={beta_min}, beta_max={beta_max}")
    return num_steps, beta_min, beta_max


def linear_schedule(num_steps: int, *, beta_min: float = 1e-4, beta_max: float = 2e-2) -> DiscreteSchedule:
    """DDPM's linear schedule: ``beta[t]`` evenly spaced from ``beta_min`` to ``beta_max``.

    Args:
      num_steps: ``T`` >= 1.
      beta_min, beta_max: ``0 < beta_min <= beta_max < 1``.

    Returns:
      A :class:`DiscreteSchedule` with ``T`` steps.

    Raises:
      ValueError: on a non-positive ``num_steps`` or betas outside ``(0, 1)``.
    """
    num_steps, beta_min, beta_max = _beta_range(num_steps, beta_min, beta_max)
    return schedule_from_betas(np.linspace(beta_min, beta_max, num_steps, dtype=np.float64))


def scaled_linear_schedule(num_steps: int, *, beta_min: float = 8.5e-4, beta_max: float = 1.2e-2) -> DiscreteSchedule:
    """Stable Diffusion's ``scaled_linear`` schedule: ``sqrt(beta[t])`` evenly spaced from
    ``sqrt(beta_min)`` to ``sqrt(beta_max)`` (the latent diffusion defaults, 0.00085..0.012 at
    ``T = 1000``, which end at ``abar[T-1] ~ 0.0047``: far less noise than DDPM's pixel
    schedule, whose ``abar`` ends near 4e-5, since 7x7x4 latents lose their signal sooner).

    Args:
      num_steps: ``T`` >= 1.
      beta_min, beta_max: ``0 < beta_min <= beta_max < 1``.

    Raises:
      ValueError: on a non-positive ``num_steps`` or betas outside ``(0, 1)``.
    """
    num_steps, beta_min, beta_max = _beta_range(num_steps, beta_min, beta_max)
    return schedule_from_betas(np.linspace(np.sqrt(beta_min), np.sqrt(beta_max), num_steps, dtype=np.float64) ** 2)


def cosine_schedule(num_steps: int, *, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """The cosine schedule of Nichol & Dhariwal (2021).

    ``f(u) = cos((u / T + s) / (1 + s) * pi / 2)^2``; ``abar[t] = f(t + 1) / f(0)``
    before clipping, i.e. ``beta[t] = min(1 - f(t + 1) / f(t), max_beta)``; the stored
    ``alphas_cumprod`` is the cumulative product of the clipped ``1 - beta``.

    Raises:
      ValueError: on a non-positive ``num_steps`` or ``s``, or ``max_beta`` outside (0, 1).
    """
    num_steps = _checks.positive_int("num_steps", num_steps)
    s = _checks.positive_float("s", s)
    max_beta = _checks.positive_float("max_beta", max_beta)
    if max_beta >= 1.0:
        raise ValueError(f"max_beta must be in (0, 1), got {max_beta}")
    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((u + s) / (1.0 + s) * np.pi / 2.0) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    betas = np.maximum(betas, 1e-8)  # f is decreasing, so this only guards rounding
    return schedule_from_betas(betas)


def check_timesteps(t, *, num_steps: int, batch: int | None = None, name: str = "t") -> None:
    """Checks integer timesteps: shape ``(batch,)``, integer dtype, and (for concrete
    arrays) values in ``{0..num_steps-1}``.

    Raises:
      ValueError: naming ``name`` and what was expected.
    """
    shape = tuple(np.shape(t))
    if len(shape) != 1:
        raise ValueError(f"{name} must have shape (batch,), got shape {shape}")
    if batch is not None and shape[0] != batch:
        raise ValueError(f"{name} has batch size {shape[0]} but x has batch size {batch}")
    if not jnp.issubdtype(jnp.result_type(t), jnp.integer):
        raise ValueError(f"{name} must be an integer array of step indices, got dtype {jnp.result_type(t)}")
    if _checks.is_concrete(t):
        a = np.asarray(t)
        if a.size and (a.min() < 0 or a.max() >= num_steps):
            raise ValueError(
                f"{name} must lie in {{0, ..., {num_steps - 1}}} (T={num_steps}), got values in "
                f"[{a.min()}, {a.max()}]"
            )


def check_data(name: str, x) -> None:
    """Checks ``x`` is a floating array of shape ``(batch, *d)`` with batch >= 1."""
    shape = tuple(np.shape(x))
    if len(shape) < 1:
        raise ValueError(f"{name} must have shape (batch, *data_shape), got a scalar")
    _checks.batch_shape(name, x, shape[1:])


def check_times(t, *, batch: int, name: str = "t") -> None:
    """Checks continuous times: a floating array of shape ``(batch,)``."""
    shape = tuple(np.shape(t))
    if shape != (batch,):
        raise ValueError(f"{name} must have shape (batch,) = ({batch},), got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(t), jnp.floating):
        raise ValueError(f"{name} must be a floating-point array of times, got dtype {jnp.result_type(t)}")


def alpha_sigma(schedule: DiscreteSchedule, t: Array) -> tuple[Array, Array]:
    """``(sqrt(abar[t]), sqrt(1 - abar[t]))`` for integer indices ``t``.

    Args:
      schedule: the discrete schedule (``T`` steps).
      t: ``(b,)`` integer indices in ``{0..T-1}``.

    Returns:
      Two ``(b,)`` float32 arrays: the signal and noise scales of ``x_t``.

    Raises:
      ValueError: if ``t`` is not ``(b,)`` integer, or (concrete) out of range.
    """
    check_timesteps(t, num_steps=schedule.num_steps)
    abar = schedule.alphas_cumprod[t]
    return jnp.sqrt(abar), jnp.sqrt(1.0 - abar)


def _bcast(v: Array, x: Array) -> Array:
    """Reshapes a ``(b,)`` vector to broadcast against ``x`` of shape ``(b, *d)``."""
    return jnp.reshape(v, v.shape + (1,) * (x.ndim - 1))


def _std_normal_log_prob(z: Array, *, scale: float = 1.0) -> Array:
    """``log N(z; 0, scale^2 I)`` summed over all but the batch axis, ``(b,)``."""
    d = math.prod(z.shape[1:])
    sq = jnp.sum(jnp.reshape(z, (z.shape[0], -1)) ** 2, axis=-1)
    return -0.5 * d * (_LOG_2PI + 2.0 * math.log(scale)) - 0.5 * sq / scale**2


def _check_sde_args(x: Array, t: Array) -> None:
    check_data("x", x)
    check_times(t, batch=x.shape[0])


@dataclasses.dataclass(frozen=True)
class _LinearBetaSDE:
    """What the VP and sub-VP SDEs share: the linear ``beta(t)``, the mean coefficient
    ``exp(-0.5 int_0^t beta)`` and the N(0, I) prior."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = dataclasses.field(default=1.0, init=False)

    def __post_init__(self):
        _checks.positive_float("beta_min", self.beta_min)
        _checks.positive_float("beta_max", self.beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(f"need beta_min <= beta_max, got beta_min={self.beta_min}, beta_max={self.beta_max}")

    def beta(self, t: Array) -> Array:
        """``beta(t)``, same shape as ``t``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coef(self, t: Array) -> Array:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def prior_sample(self, key: PRNGKeyArray, shape) -> Array:
        """A draw from N(0, I) of ``shape``."""
        return jax.random.normal(key, tuple(shape), jnp.float32)

    def prior_log_prob(self, z: Array) -> Array:
        """``log N(z; 0, I)`` per example, ``(b,)`` nats."""
        return _std_normal_log_prob(z)


@dataclasses.dataclass(frozen=True)
class VPSDE(_LinearBetaSDE):
    """Variance-preserving SDE (the continuous DDPM): ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW``.

    ``beta(t) = beta_min + t (beta_max - beta_min)``, ``t`` in [0, 1]. Marginal:
    ``mean_coef = exp(-0.5 int_0^t beta)``, ``std = sqrt(1 - mean_coef^2)``. Prior N(0, I).
    """

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE coefficients: ``(drift (b, *d), diffusion (b,))``."""
        _check_sde_args(x, t)
        beta = self.beta(t)
        return -0.5 * _bcast(beta, x) * x, jnp.sqrt(beta)

    def marginal(self, t: Array) -> tuple[Array, Array]:
        """``(mean_coef (b,), std (b,))`` of ``x_t | x0``."""
        lm = self._log_mean_coef(t)
        return jnp.exp(lm), jnp.sqrt(-jnp.expm1(2.0 * lm))


@dataclasses.dataclass(frozen=True)
class DiscreteVPSDE(VPSDE):
    """The VP-SDE of a discrete schedule: its marginals equal the chain's at ``t_i = (i + 1) / T``.

    A DDPM read as a VP-SDE. ``beta(t)`` is piecewise constant, ``rates[i] = -T log(1 - beta[i])``
    on ``(i / T, (i + 1) / T]``, so ``int_0^{t_i} beta = -log abar[i]`` and the marginal
    ``mean_coef(t_i) = sqrt(abar[i])``, ``std(t_i) = sqrt(1 - abar[i])`` exactly, whatever ``T``
    (between grid points ``log mean_coef`` is linear in ``t``). The linear ``VPSDE(T beta[0],
    T beta[-1])`` that DDPM's ``T = 1000`` chain is usually read as matches the chain only as
    ``T -> inf``: half a step off in time and ``beta`` for ``-log(1 - beta)``, its marginal std
    is off by 41% at ``T = 100``, 22% at ``T = 200`` and 5% at ``T = 1000`` (first step).

    Build it with :meth:`from_schedule`. ``beta_min`` and ``beta_max`` are the range of
    ``beta(t)``; ``rates`` hold the ``T`` piecewise values (a tuple: hashable, static).
    """

    rates: tuple[float, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        r = np.asarray(self.rates, np.float64)
        if r.ndim != 1 or r.shape[0] == 0 or not np.all(np.isfinite(r) & (r > 0)):
            raise ValueError("rates must be a non-empty tuple of positive finite values; use DiscreteVPSDE.from_schedule")

    @classmethod
    def from_schedule(cls, schedule: DiscreteSchedule) -> "DiscreteVPSDE":
        """The VP-SDE whose marginals at ``t_i = (i + 1) / T`` are ``schedule``'s at index ``i``."""
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule, got {type(schedule).__name__}")
        betas = np.asarray(schedule.betas, np.float64)
        rates = -len(betas) * np.log1p(-betas)
        return cls(beta_min=float(rates.min()), beta_max=float(rates.max()), rates=tuple(float(v) for v in rates))

    @property
    def num_steps(self) -> int:
        """``T``, the number of steps of the discrete chain."""
        return len(self.rates)

    def _bin(self, t: Array) -> tuple[Array, Array]:
        u = t * self.num_steps
        i = jnp.clip(jnp.floor(u), 0, self.num_steps - 1)
        return i.astype(jnp.int32), u - i

    def beta(self, t: Array) -> Array:
        """``beta(t) = rates[i]`` on ``(i / T, (i + 1) / T]``, same shape as ``t``."""
        i, _ = self._bin(t)
        return jnp.asarray(self.rates, jnp.float32)[i]

    def _log_mean_coef(self, t: Array) -> Array:
        r = np.asarray(self.rates, np.float64)
        cum = jnp.asarray(np.concatenate([[0.0], np.cumsum(r)]) / len(r), jnp.float32)  # int_0^{i/T} beta
        i, frac = self._bin(t)
        return -0.5 * (cum[i] + frac * jnp.asarray(r / len(r), jnp.float32)[i])


@dataclasses.dataclass(frozen=True)
class SubVPSDE(_LinearBetaSDE):
    """The sub-VP SDE: ``dx = -beta(t)/2 x dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dW``.

    Marginal: ``mean_coef = exp(-0.5 int_0^t beta)``, ``std = 1 - mean_coef^2`` (a variance
    below the VP one). Prior N(0, I).
    """

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE coefficients: ``(drift (b, *d), diffusion (b,))``."""
        _check_sde_args(x, t)
        beta = self.beta(t)
        discount = -jnp.expm1(4.0 * self._log_mean_coef(t))  # 1 - exp(-2 int beta)
        return -0.5 * _bcast(beta, x) * x, jnp.sqrt(beta * discount)

    def marginal(self, t: Array) -> tuple[Array, Array]:
        """``(mean_coef (b,), std (b,))`` of ``x_t | x0``."""
        lm = self._log_mean_coef(t)
        return jnp.exp(lm), -jnp.expm1(2.0 * lm)


@dataclasses.dataclass(frozen=True)
class VESDE:
    """Variance-exploding SDE (continuous NCSN): ``dx = sqrt(d sigma^2(t)/dt) dW``.

    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``. Marginal (score_sde convention):
    ``mean_coef = 1``, ``std = sigma(t)``, i.e. the ``t = 0`` distribution is the data
    perturbed with ``sigma_min`` (``sigma_min^2 + int_0^t g^2 = sigma(t)^2``).
    Prior N(0, sigma_max^2 I).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    T: float = dataclasses.field(default=1.0, init=False)

    def __post_init__(self):
        _checks.positive_float("sigma_min", self.sigma_min)
        _checks.positive_float("sigma_max", self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"need sigma_min < sigma_max, got sigma_min={self.sigma_min}, sigma_max={self.sigma_max}"
            )

    def sigma(self, t: Array) -> Array:
        """``sigma(t)``, same shape as ``t``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x: Array, t: Array) -> tuple[Array, Array]:
        """Forward SDE coefficients: ``(drift (b, *d) = 0, diffusion (b,))``."""
        _check_sde_args(x, t)
        g = self.sigma(t) * math.sqrt(2.0 * (math.log(self.sigma_max) - math.log(self.sigma_min)))
        return jnp.zeros_like(x), g

    def marginal(self, t: Array) -> tuple[Array, Array]:
        """``(mean_coef (b,) = 1, std (b,) = sigma(t))``."""
        return jnp.ones_like(t), self.sigma(t)

    def prior_sample(self, key: PRNGKeyArray, shape) -> Array:
        """A draw from N(0, sigma_max^2 I) of ``shape``."""
        return self.sigma_max * jax.random.normal(key, tuple(shape), jnp.float32)

    def prior_log_prob(self, z: Array) -> Array:
        """``log N(z; 0, sigma_max^2 I)`` per example, ``(b,)`` nats."""
        return _std_normal_log_prob(z, scale=self.sigma_max)


SDE = VPSDE | SubVPSDE | VESDE


def geometric_sigmas(sigma_max: float, sigma_min: float, num: int) -> Array:
    """NCSN noise levels: ``num`` values from ``sigma_max`` down to ``sigma_min``, geometric.

    Returns:
      ``(num,)`` float32, decreasing (``[sigma_max]`` when ``num = 1``).

    Raises:
      ValueError: unless ``sigma_max > sigma_min > 0`` and ``num >= 1``.
    """
    sigma_max = _checks.positive_float("sigma_max", sigma_max)
    sigma_min = _checks.positive_float("sigma_min", sigma_min)
    num = _checks.positive_int("num", num)
    if sigma_max <= sigma_min:
        raise ValueError(f"need sigma_max > sigma_min, got sigma_max={sigma_max}, sigma_min={sigma_min}")
    s = np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), num))
    return jnp.asarray(s, jnp.float32)


def check_sigmas(sigmas, *, name: str = "sigmas") -> None:
    """Checks NCSN noise levels: a non-empty ``(L,)`` array, positive (concrete arrays)."""
    shape = tuple(np.shape(sigmas))
    if len(shape) != 1 or shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of noise levels (L,), got shape {shape}")
    if _checks.is_concrete(sigmas):
        a = np.asarray(sigmas)
        if not np.all(np.isfinite(a) & (a > 0)):
            raise ValueError(f"{name} must be positive and finite, got values in [{a.min():.3g}, {a.max():.3g}]")
