"""Diffusion samplers; each is one ``lax.scan`` over its steps with pre-split keys.

Conventions (see :mod:`genjax.diffusion.schedules`):

- DDPM/DDIM: ``eps_fn(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``, ``t`` in
  ``{0..T-1}``; the chain starts from ``x_{T-1} ~ N(0, I)`` and ends at the clean data.
- NCSN: ``score_fn(x, sigma (b,)) -> score``.
- Score SDE: ``score_fn(x, t (b,) float) -> score``; integration runs from ``sde.T`` to
  a small ``eps``.

With ``return_trajectory=True`` a sampler returns ``(samples, trajectory)`` with the
trajectory's first axis over the kept frames (the start included; see each sampler).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.diffusion.objectives import VARIANCES, model_log_variance, p_mean, predict_x0, q_sample
from genjax.diffusion.schedules import (
    SDE, VESDE, DiscreteSchedule, DiscreteVPSDE, SubVPSDE, VPSDE, _bcast, check_data, check_sigmas,
)
from genjax.types import Array, PRNGKeyArray

EpsFn = Callable[[Array, Array], Array]
ScoreFn = Callable[[Array, Array], Array]


def _check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple (batch, *data_shape), got {shape!r}") from None
    if len(shape) < 1 or any(d <= 0 for d in shape):
        raise ValueError(f"shape must be a non-empty tuple of positive sizes (batch, *data_shape), got {shape}")
    return shape


def _check_out(name: str, out: Array, x: Array) -> None:
    if tuple(np.shape(out)) != tuple(np.shape(x)):
        raise ValueError(
            f"{name} must return an array of the input's shape {tuple(np.shape(x))}, got {tuple(np.shape(out))}"
        )


def _finish(x: Array, frames: Array, x_start: Array, return_trajectory: bool):
    if not return_trajectory:
        return x
    return x, jnp.concatenate([x_start[None], frames], axis=0)


def classifier_free_guidance(eps_cond: Array, eps_uncond: Array, guidance) -> Array:
    """Classifier-free guidance: ``(1 + w) * eps_cond - w * eps_uncond``.

    ``w = 0`` is the plain conditional model; larger ``w`` trades diversity for
    fidelity to the condition (Ho & Salimans, 2022). Works for scores alike.

    Args:
      eps_cond, eps_uncond: predictions of equal shape.
      guidance: ``w``, a scalar (or broadcastable array).
    """
    if tuple(np.shape(eps_cond)) != tuple(np.shape(eps_uncond)):
        raise ValueError(
            f"eps_cond and eps_uncond must have equal shapes, got {tuple(np.shape(eps_cond))} "
            f"and {tuple(np.shape(eps_uncond))}"
        )
    return (1.0 + guidance) * eps_cond - guidance * eps_uncond


def _check_clip(clip_denoised) -> tuple[float, float] | None:
    if clip_denoised is None:
        return None
    if len(tuple(clip_denoised)) != 2 or not float(clip_denoised[0]) < float(clip_denoised[1]):
        raise ValueError(f"clip_denoised must be None or a pair (lo, hi) with lo < hi, got {clip_denoised!r}")
    return float(clip_denoised[0]), float(clip_denoised[1])


def check_eta(eta) -> float:
    """DDIM's ``eta``: a finite Python number ``>= 0`` (static), as a float."""
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not np.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be a finite number >= 0 (a Python number: it is static), got {eta!r}")
    return float(eta)


# A chain sampler is a descending sequence of steps ``t -> t_prev`` (``t_prev = -1``: the clean
# data) and an update ``x_prev = update(x, eps, t, t_prev, key)``; DDPM, DDIM, image-to-image
# and inpainting all run :func:`_run_chain` and differ only in the grid, the update and the start.
def _ddpm_update(schedule: DiscreteSchedule, variance: str, clip_denoised):
    """Ancestral step ``t -> t - 1``: the posterior mean at ``x0_hat`` plus ``sigma_t z`` (none at ``t = 0``)."""
    log_var = model_log_variance(schedule, variance)

    def update(x, eps, t_scalar, t_prev, k):
        t = jnp.full((x.shape[0],), t_scalar, jnp.int32)
        mean = p_mean(schedule, x, t, eps, clip=clip_denoised)
        std = jnp.where(t_scalar > 0, jnp.exp(0.5 * log_var[t_scalar]), 0.0)
        return mean + std * jax.random.normal(k, x.shape, x.dtype)

    return update


def _ddim_update(schedule: DiscreteSchedule, eta: float):
    """DDIM step ``t -> t_prev`` with stochasticity ``eta`` (see :func:`ddim_sample`)."""
    abar = _abar_ext(schedule)

    def update(x, eps, t_scalar, t_prev, k):
        t = jnp.full((x.shape[0],), t_scalar, jnp.int32)
        a_t, a_p = abar[t_scalar], abar[t_prev]
        x0_hat = predict_x0(schedule, x, t, eps)
        sigma = eta * jnp.sqrt((1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p))
        dir_coef = jnp.sqrt(jnp.maximum(1.0 - a_p - sigma**2, 0.0))
        x = jnp.sqrt(a_p) * x0_hat + dir_coef * eps
        if eta > 0:
            x = x + sigma * jax.random.normal(k, x.shape, x.dtype)
        return x

    return update


def _run_chain(eps_fn: EpsFn, update, x_start: Array, ts, prevs, keys, *, known=None, return_trajectory=False):
    """``lax.scan`` of ``x <- update(x, eps_fn(x, t), t, t_prev, k)`` over the descending ``ts``
    (``prevs`` the next index, ``-1`` last). ``known(x, t_prev, k)``, if given, is applied after
    each step (inpainting) with a key of its own."""
    b = x_start.shape[0]

    def step(x, inp):
        t_scalar, t_prev, k = inp
        if known is not None:
            k, k_known = jax.random.split(k)
        eps = eps_fn(x, jnp.full((b,), t_scalar, jnp.int32))
        _check_out("eps_fn", eps, x)
        x = update(x, eps, t_scalar, t_prev, k)
        if known is not None:
            x = known(x, t_prev, k_known)
        return x, (x if return_trajectory else None)

    xs = (jnp.asarray(ts, jnp.int32), jnp.asarray(prevs, jnp.int32), keys)
    x, frames = jax.lax.scan(step, x_start, xs)
    return _finish(x, frames, x_start, return_trajectory)


def _check_start(name: str, x, shape) -> Array:
    if tuple(np.shape(x)) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(np.shape(x))}")
    check_data(name, x)
    return jnp.asarray(x, jnp.float32)


def ddpm_sample(
    key: PRNGKeyArray,
    eps_fn: EpsFn,
    shape: Sequence[int],
    *,
    schedule: DiscreteSchedule,
    variance: str = "beta",
    clip_denoised: tuple[float, float] | None = None,
    x_T: Array | None = None,
    return_trajectory: bool = False,
):
    """Ancestral DDPM sampling over all ``T`` steps.

    ``x_{T-1} ~ N(0, I)``; for ``t = T-1..0``: ``x0_hat = (x_t - sqrt(1 - abar) eps) /
    sqrt(abar)`` (clipped to ``clip_denoised`` if given), ``x_{t-1} = mu(x_t, x0_hat) +
    sigma_t z`` with ``sigma_t^2`` from ``variance`` (``"beta"``: beta[t];
    ``"posterior"``: beta_tilde[t]); no noise is added at the last step (``t = 0``).

    Args:
      key: PRNG key.
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      shape: ``(b, *d)``.
      schedule: the discrete schedule.
      variance: ``"beta"`` or ``"posterior"``.
      clip_denoised: ``None`` or ``(lo, hi)`` bounds for ``x0_hat`` (e.g. ``(-1, 1)``).
      x_T: optional ``(b, *d)`` start at index ``T - 1`` (default ``N(0, I)``).
      return_trajectory: also return the ``(T + 1, b, *d)`` states, start first.

    Returns:
      ``(b, *d)`` samples (and the trajectory).
    """
    shape = _check_shape(shape)
    _checks.one_of("variance", variance, VARIANCES)
    clip_denoised = _check_clip(clip_denoised)
    T = schedule.num_steps
    key_init, key_steps = jax.random.split(key)
    x_start = jax.random.normal(key_init, shape, jnp.float32) if x_T is None else _check_start("x_T", x_T, shape)
    ts = np.arange(T - 1, -1, -1)
    return _run_chain(
        eps_fn, _ddpm_update(schedule, variance, clip_denoised), x_start, ts, ts - 1,
        jax.random.split(key_steps, T), return_trajectory=return_trajectory,
    )


def ddim_timesteps(num_steps_total: int, num_steps: int) -> np.ndarray:
    """The DDIM sub-sequence: ``num_steps`` increasing indices from 0 to ``T - 1``
    (evenly spaced, rounded; ``[T - 1]`` when ``num_steps = 1``)."""
    if num_steps == 1:
        return np.array([num_steps_total - 1])
    return np.round(np.linspace(0, num_steps_total - 1, num_steps)).astype(np.int64)


def _check_ddim_steps(schedule: DiscreteSchedule, num_steps) -> int:
    num_steps = _checks.positive_int("num_steps", num_steps)
    if num_steps > schedule.num_steps:
        raise ValueError(f"num_steps must be <= the schedule's T={schedule.num_steps}, got {num_steps}")
    return num_steps


def _abar_ext(schedule: DiscreteSchedule) -> Array:
    """``(T + 1,)`` alpha-bar with index ``-1`` (the clean data, 1.0) appended last, so
    that ``ext[-1] = 1`` matches the "t = -1" convention."""
    return jnp.concatenate([schedule.alphas_cumprod, jnp.ones((1,), jnp.float32)])


def ddim_sample(
    key: PRNGKeyArray,
    eps_fn: EpsFn,
    shape: Sequence[int],
    *,
    schedule: DiscreteSchedule,
    num_steps: int,
    eta: float = 0.0,
    x_T: Array | None = None,
    return_trajectory: bool = False,
):
    """DDIM sampling over ``num_steps <= T`` evenly spaced indices (Song et al., 2021).

    Per step ``t -> t'`` (``t'`` the previous index of the sub-sequence, ``-1`` last):
    ``x0_hat = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t)``,
    ``sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t')``,
    ``x' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma z``.
    ``eta = 0`` is deterministic given ``x_T``; ``eta = 1`` is DDPM-like ancestral
    sampling on the sub-sequence.

    Args:
      key: PRNG key (the start ``x_T`` when not given, and the ``eta > 0`` noise); may be
        ``None`` when ``x_T`` is given and ``eta = 0``.
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      shape: ``(b, *d)``.
      schedule: the discrete schedule (``T`` steps).
      num_steps: number of network evaluations, ``1 <= num_steps <= T``.
      eta: stochasticity, ``>= 0``.
      x_T: optional ``(b, *d)`` start at index ``T - 1`` (e.g. from :func:`ddim_encode`).
      return_trajectory: also return the ``(num_steps + 1, b, *d)`` states.

    Returns:
      ``(b, *d)`` samples (and the trajectory).
    """
    shape = _check_shape(shape)
    num_steps = _check_ddim_steps(schedule, num_steps)
    eta = check_eta(eta)
    if key is None:  # allowed when nothing is random
        if x_T is None or eta > 0:
            raise ValueError("key may be None only when x_T is given and eta = 0 (deterministic DDIM)")
        key = jax.random.PRNGKey(0)  # unused
    key_init, key_steps = jax.random.split(key)
    x_start = jax.random.normal(key_init, shape, jnp.float32) if x_T is None else _check_start("x_T", x_T, shape)
    taus = ddim_timesteps(schedule.num_steps, num_steps)
    prev = np.concatenate([[-1], taus[:-1]])
    return _run_chain(
        eps_fn, _ddim_update(schedule, eta), x_start, taus[::-1], prev[::-1],
        jax.random.split(key_steps, num_steps), return_trajectory=return_trajectory,
    )


# ---------------------------------------------------------------------- editing
CHAIN_SAMPLERS = ("ddpm", "ddim")


def chain_grid(schedule: DiscreteSchedule, sampler: str, num_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The steps ``t -> t_prev`` of a chain sampler, in the order they run (``t`` descending).

    ``"ddpm"``: all ``T`` indices (``num_steps`` must be ``None`` or ``T``); ``"ddim"``: the
    ``num_steps`` indices of :func:`ddim_timesteps`. ``t_prev = -1`` is the clean data.

    Returns:
      ``(ts, prevs)``, two ``(n,)`` int arrays.
    """
    _checks.one_of("sampler", sampler, CHAIN_SAMPLERS)
    T = schedule.num_steps
    if sampler == "ddpm":
        if num_steps is not None and _checks.positive_int("num_steps", num_steps) != T:
            raise ValueError(f"the 'ddpm' sampler runs all T={T} steps, got num_steps={num_steps}; use sampler='ddim'")
        taus = np.arange(T)
    else:
        if num_steps is None:
            raise ValueError("num_steps is required for sampler='ddim'")
        taus = ddim_timesteps(T, _check_ddim_steps(schedule, num_steps))
    prevs = np.concatenate([[-1], taus[:-1]])
    return taus[::-1].copy(), prevs[::-1].copy()


def _chain_update(schedule, sampler, *, eta, variance, clip_denoised):
    if sampler == "ddpm":
        _checks.one_of("variance", variance, VARIANCES)
        return _ddpm_update(schedule, variance, _check_clip(clip_denoised))
    return _ddim_update(schedule, check_eta(eta))


def _noise_to(key: PRNGKeyArray, x0: Array, t_scalar, schedule: DiscreteSchedule) -> Array:
    """``q_sample(x0, t)`` at one index for the whole batch; ``t = -1`` gives ``x0`` itself."""
    t = jnp.full((x0.shape[0],), jnp.maximum(t_scalar, 0), jnp.int32)
    return jnp.where(t_scalar < 0, x0, q_sample(key, x0, t, schedule)[0])


def edit_steps(strength, n: int) -> int:
    """How many of a sampler's ``n`` steps image-to-image runs: ``round(strength * n)``
    (Python's round); ``strength`` a number in ``[0, 1]``."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1] (a Python number: it is static), got {strength!r}")
    return int(round(float(strength) * n))


def edit_sample(
    key: PRNGKeyArray,
    eps_fn: EpsFn,
    x0: Array,
    *,
    schedule: DiscreteSchedule,
    strength: float,
    sampler: str = "ddim",
    num_steps: int | None = None,
    eta: float = 0.0,
    variance: str = "beta",
    clip_denoised: tuple[float, float] | None = None,
) -> Array:
    """Image-to-image (SDEdit, Meng et al., 2022; Stable Diffusion's img2img).

    Of the sampler's ``n`` steps (:func:`chain_grid`) the last ``k = round(strength * n)``
    run: ``x0`` is noised with ``q_sample`` to the index where they begin and denoised by
    them under ``eps_fn`` (which may carry a new condition). ``strength = 0`` returns ``x0``
    (no step); ``strength = 1`` starts from ``x0`` noised to the top index ``T - 1``.

    Args:
      key: PRNG key, split into the noise of ``q_sample`` and the steps' keys.
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      x0: ``(b, *d)`` the images to edit (model space).
      schedule: the discrete schedule.
      strength: in ``[0, 1]``, how much of the chain runs (a Python number).
      sampler: ``"ddpm"`` or ``"ddim"``.
      num_steps: the sampler's steps (``"ddim"``: required; ``"ddpm"``: ``None`` or ``T``).
      eta: DDIM stochasticity; variance, clip_denoised: as in :func:`ddpm_sample`.

    Returns:
      ``(b, *d)`` edited samples.
    """
    check_data("x0", x0)
    ts, prevs = chain_grid(schedule, sampler, num_steps)
    k = edit_steps(strength, len(ts))
    update = _chain_update(schedule, sampler, eta=eta, variance=variance, clip_denoised=clip_denoised)
    if k == 0:
        return jnp.asarray(x0)
    ts, prevs = ts[len(ts) - k:], prevs[len(ts) - k:]
    key_noise, key_steps = jax.random.split(key)
    x_start = _noise_to(key_noise, jnp.asarray(x0, jnp.float32), int(ts[0]), schedule)
    return _run_chain(eps_fn, update, x_start, ts, prevs, jax.random.split(key_steps, k))


def check_mask(mask, shape: tuple[int, ...], *, name: str = "mask") -> Array:
    """``mask`` (bool, or 0/1 numbers) broadcast to ``shape`` as a bool array (True: known).

    Raises:
      ValueError: a mask that does not broadcast to ``shape`` or (concrete) holds values other
        than 0 and 1.
    """
    mshape = tuple(np.shape(mask))
    try:
        ok = np.broadcast_shapes(mshape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must broadcast to the images' shape {tuple(shape)}, got shape {mshape}")
    dtype = jnp.result_type(mask)
    if not (jnp.issubdtype(dtype, jnp.bool_) or jnp.issubdtype(dtype, jnp.number)):
        raise ValueError(f"{name} must be bool or 0/1 numbers, got dtype {dtype}")
    if not jnp.issubdtype(dtype, jnp.bool_) and _checks.is_concrete(mask):
        a = np.asarray(mask)
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must hold only 0 and 1 (True: known), got values in [{a.min()}, {a.max()}]")
    return jnp.broadcast_to(jnp.asarray(mask) != 0, shape)


def inpaint_sample(
    key: PRNGKeyArray,
    eps_fn: EpsFn,
    x0: Array,
    mask: Array,
    *,
    schedule: DiscreteSchedule,
    sampler: str = "ddim",
    num_steps: int | None = None,
    eta: float = 0.0,
    variance: str = "beta",
    clip_denoised: tuple[float, float] | None = None,
) -> Array:
    """Inpainting by replacement (RePaint's simplest form, Lugmayr et al., 2022, no resampling).

    Samples from ``N(0, I)`` with the sampler's steps; the known region (``mask`` True) starts
    as ``q_sample(x0, T - 1)`` and after each step ``t -> t_prev`` is replaced by
    ``q_sample(x0, t_prev)``, after the last by ``x0`` itself, so the known values come out
    exactly. The unknown region is generated to fit them.

    Args:
      key: PRNG key.
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      x0: ``(b, *d)`` images whose known region is kept (model space).
      mask: bool or 0/1, broadcastable to ``x0``; True: known.
      schedule, sampler, num_steps, eta, variance, clip_denoised: as in :func:`edit_sample`.

    Returns:
      ``(b, *d)`` samples, equal to ``x0`` where ``mask``.
    """
    check_data("x0", x0)
    x0 = jnp.asarray(x0, jnp.float32)
    mask = check_mask(mask, x0.shape)
    ts, prevs = chain_grid(schedule, sampler, num_steps)
    update = _chain_update(schedule, sampler, eta=eta, variance=variance, clip_denoised=clip_denoised)
    key_init, key_known, key_steps = jax.random.split(key, 3)

    def known(x, t_prev, k):
        return jnp.where(mask, _noise_to(k, x0, t_prev, schedule), x)

    x_start = known(jax.random.normal(key_init, x0.shape, jnp.float32), int(ts[0]), key_known)
    return _run_chain(eps_fn, update, x_start, ts, prevs, jax.random.split(key_steps, len(ts)), known=known)


def ddim_encode(
    eps_fn: EpsFn, x0: Array, *, schedule: DiscreteSchedule, num_steps: int, inversion_iters: int = 0
) -> Array:
    """Deterministic DDIM inversion (eta = 0): runs the DDIM update backwards, data -> ``x_T``.

    Step ``t' -> t`` along the same sub-sequence as :func:`ddim_sample`:
    ``x_t = sqrt(abar_t) x0_hat + sqrt(1 - abar_t) e`` with
    ``x0_hat = (x_t' - sqrt(1 - abar_t') e) / sqrt(abar_t')`` and ``e = eps_fn(x_t', t)``
    (the network is evaluated at the destination index, as the sampler does; exact
    inversion would need ``e = eps_fn(x_t, t)``). ``inversion_iters > 0`` refines each
    step by that many fixed-point iterations towards the exact inverse.

    Args:
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      x0: ``(b, *d)`` data.
      schedule: the discrete schedule.
      num_steps: as in :func:`ddim_sample` (use the same value to reconstruct).
      inversion_iters: fixed-point refinements per step (0 = plain DDIM inversion).

    Returns:
      ``(b, *d)`` latent ``x_T`` at index ``T - 1``.
    """
    check_data("x0", x0)
    num_steps = _check_ddim_steps(schedule, num_steps)
    inversion_iters = _checks.nonneg_int("inversion_iters", inversion_iters)
    b = x0.shape[0]
    taus = ddim_timesteps(schedule.num_steps, num_steps)
    prev = np.concatenate([[-1], taus[:-1]])
    abar = _abar_ext(schedule)

    def step(x_p, inp):
        t_scalar, t_prev = inp
        t = jnp.full((b,), t_scalar, jnp.int32)
        a_t, a_p = abar[t_scalar], abar[t_prev]

        def forward(e):
            x0_hat = (x_p - jnp.sqrt(1.0 - a_p) * e) / jnp.sqrt(a_p)
            return jnp.sqrt(a_t) * x0_hat + jnp.sqrt(1.0 - a_t) * e

        e = eps_fn(x_p, t)
        _check_out("eps_fn", e, x_p)
        x_t = forward(e)
        if inversion_iters:
            x_t = jax.lax.fori_loop(0, inversion_iters, lambda _, xt: forward(eps_fn(xt, t)), x_t)
        return x_t, None

    xs = (jnp.asarray(taus, jnp.int32), jnp.asarray(prev, jnp.int32))
    x_T, _ = jax.lax.scan(step, jnp.asarray(x0, jnp.float32), xs)
    return x_T


def annealed_langevin_sample(
    key: PRNGKeyArray,
    score_fn: ScoreFn,
    shape: Sequence[int],
    *,
    sigmas: Array,
    steps_per_sigma: int = 100,
    step_size: float = 2e-5,
    denoise: bool = True,
    x_init: Array | None = None,
    return_trajectory: bool = False,
):
    """NCSN annealed Langevin dynamics (Song & Ermon, 2019).

    For each level ``sigma_i`` (decreasing), ``steps_per_sigma`` steps of
    ``x <- x + alpha_i / 2 * score_fn(x, sigma_i) + sqrt(alpha_i) z`` with
    ``alpha_i = step_size * sigma_i^2 / sigma_L^2``. With ``denoise`` the result gets one
    Tweedie step ``x + sigma_L^2 score_fn(x, sigma_L)`` (NCSNv2). The start is
    ``x_init`` or ``N(0, sigma_1^2 I)``.

    Args:
      key: PRNG key.
      score_fn: ``(x (b, *d), sigma (b,)) -> score (b, *d)``.
      shape: ``(b, *d)``.
      sigmas: ``(L,)`` positive noise levels, largest first.
      steps_per_sigma: Langevin steps per level.
      step_size: ``epsilon``, the step at the smallest level.
      denoise: add the final Tweedie denoising step.
      x_init: optional ``(b, *d)`` start.
      return_trajectory: also return ``(L + 1, b, *d)``: the start and the state after
        each level (before the denoising step).

    Returns:
      ``(b, *d)`` samples (and the trajectory).
    """
    shape = _check_shape(shape)
    check_sigmas(sigmas)
    steps_per_sigma = _checks.positive_int("steps_per_sigma", steps_per_sigma)
    step_size = _checks.positive_float("step_size", step_size)
    sigmas = jnp.asarray(sigmas, jnp.float32)
    L = sigmas.shape[0]
    b = shape[0]
    key_init, key_steps = jax.random.split(key)
    if x_init is None:
        x_init = sigmas[0] * jax.random.normal(key_init, shape, jnp.float32)
    elif tuple(np.shape(x_init)) != shape:
        raise ValueError(f"x_init must have shape {shape}, got {tuple(np.shape(x_init))}")
    x_init = jnp.asarray(x_init, jnp.float32)
    sigma_last = sigmas[-1]

    def level(x, inp):
        sigma, k = inp
        alpha = step_size * (sigma / sigma_last) ** 2
        sig_b = jnp.full((b,), sigma)

        def langevin(x, kk):
            score = score_fn(x, sig_b)
            _check_out("score_fn", score, x)
            return x + 0.5 * alpha * score + jnp.sqrt(alpha) * jax.random.normal(kk, shape, x.dtype), None

        x, _ = jax.lax.scan(langevin, x, jax.random.split(k, steps_per_sigma))
        return x, (x if return_trajectory else None)

    x, frames = jax.lax.scan(level, x_init, (sigmas, jax.random.split(key_steps, L)))
    samples = x
    if denoise:
        samples = x + sigma_last**2 * score_fn(x, jnp.full((b,), sigma_last))
    return _finish(samples, frames, x_init, return_trajectory)


def _check_sde(sde) -> None:
    if not isinstance(sde, (VPSDE, SubVPSDE, VESDE)):
        raise ValueError(f"sde must be a VPSDE, SubVPSDE or VESDE, got {type(sde).__name__}")


def _check_eps(eps, sde) -> float:
    eps = _checks.positive_float("eps", eps)
    if eps >= sde.T:
        raise ValueError(f"eps must be in (0, {sde.T}), got {eps}")
    return eps


def pc_sample(
    key: PRNGKeyArray,
    score_fn: ScoreFn,
    shape: Sequence[int],
    *,
    sde: SDE,
    num_steps: int = 1000,
    snr: float = 0.16,
    corrector_steps: int = 1,
    denoise: bool = True,
    eps: float = 1e-3,
    return_trajectory: bool = False,
):
    """Predictor-corrector sampling of the reverse SDE (Song et al., 2021).

    Times ``t_0 = T > t_1 > ... > t_N = eps`` evenly spaced. At each ``t_i``:
    ``corrector_steps`` Langevin corrector steps with step
    ``2 a (snr ||z|| / ||score||)^2`` (per-example norms averaged over the batch, as in
    score_sde, so the step size couples the batch; ``a = exp(-beta(t) dt)`` (score_sde's
    ``1 - beta(t) dt`` to first order, but positive for any step count) for the VP SDEs, 1 for VE), then one Euler-Maruyama predictor step of the reverse SDE
    ``dx = [f - g^2 score] dt + g dW`` down to ``t_{i+1}``. With ``denoise`` the last
    predictor step adds no noise (score_sde's ``x_mean``).

    Args:
      key: PRNG key.
      score_fn: ``(x (b, *d), t (b,) float) -> score (b, *d)``.
      shape: ``(b, *d)``.
      sde: the forward SDE.
      num_steps: predictor steps ``N``.
      snr: corrector signal-to-noise ratio.
      corrector_steps: Langevin steps per time (0 = predictor only).
      denoise: no noise in the last predictor step.
      eps: final time.
      return_trajectory: also return the ``(N + 1, b, *d)`` states (after each predictor).

    Returns:
      ``(b, *d)`` samples at time ``eps`` (and the trajectory).
    """
    shape = _check_shape(shape)
    _check_sde(sde)
    num_steps = _checks.positive_int("num_steps", num_steps)
    corrector_steps = _checks.nonneg_int("corrector_steps", corrector_steps)
    snr = _checks.positive_float("snr", snr)
    eps = _check_eps(eps, sde)
    b = shape[0]
    times = np.linspace(sde.T, eps, num_steps + 1)
    key_init, key_steps = jax.random.split(key)
    x_start = sde.prior_sample(key_init, shape)

    def per_example_norm(v):
        return jnp.sqrt(jnp.sum(jnp.reshape(v, (b, -1)) ** 2, axis=-1))

    def step(x, inp):
        t_scalar, dt, is_last, k = inp
        t = jnp.full((b,), t_scalar, jnp.float32)
        k_corr, k_pred = jax.random.split(k)
        if isinstance(sde, (VPSDE, SubVPSDE)):
            # score_sde's alpha_i = 1 - beta(t) dt, written exp(-beta(t) dt): equal to first
            # order, and positive for coarse grids (1 - beta dt < 0 once N < beta_max)
            a = jnp.exp(-sde.beta(t) * dt)
        else:
            a = jnp.ones((b,), jnp.float32)

        def corrector(x, kk):
            grad = score_fn(x, t)
            _check_out("score_fn", grad, x)
            z = jax.random.normal(kk, shape, x.dtype)
            # norms averaged over the batch, as in score_sde: per-example norms blow the
            # step up wherever an example's score is near zero (e.g. at a mode)
            ratio = snr * jnp.mean(per_example_norm(z)) / jnp.maximum(jnp.mean(per_example_norm(grad)), 1e-12)
            step_size = 2.0 * a * ratio**2
            x = x + _bcast(step_size, x) * grad + _bcast(jnp.sqrt(2.0 * step_size), x) * z
            return x, None

        if corrector_steps:
            x, _ = jax.lax.scan(corrector, x, jax.random.split(k_corr, corrector_steps))
        drift, g = sde.sde(x, t)
        score = score_fn(x, t)
        _check_out("score_fn", score, x)
        x_mean = x - (drift - _bcast(g**2, x) * score) * dt
        noise = _bcast(g * jnp.sqrt(dt), x) * jax.random.normal(k_pred, shape, x.dtype)
        x = x_mean + jnp.where(is_last & denoise, 0.0, 1.0) * noise
        return x, (x if return_trajectory else None)

    xs = (
        jnp.asarray(times[:-1], jnp.float32),
        jnp.asarray(times[:-1] - times[1:], jnp.float32),
        jnp.arange(num_steps) == num_steps - 1,
        jax.random.split(key_steps, num_steps),
    )
    x, frames = jax.lax.scan(step, x_start, xs)
    return _finish(x, frames, x_start, return_trajectory)


def probability_flow(sde: SDE, score_fn: ScoreFn) -> Callable[[Array, Array], Array]:
    """The probability-flow ODE velocity ``v(x, t) = f(x, t) - g(t)^2 / 2 * score(x, t)``."""

    def velocity(x: Array, t: Array) -> Array:
        drift, g = sde.sde(x, t)
        score = score_fn(x, t)
        _check_out("score_fn", score, x)
        return drift - 0.5 * _bcast(g**2, x) * score

    return velocity


def rk4_step(f, y, t, h, *, loop_stages: bool = False):
    """One classical Runge-Kutta step of ``dy/dt = f(y, t)`` (pytrees ``y``, scalar ``t``, ``h``).

    ``loop_stages``: the four stages as one ``lax.fori_loop`` whose body calls ``f`` once, so a
    costly ``f`` (a network and its derivatives) is compiled once instead of four times; the same
    step to float rounding (``y + h sum_i w_i k_i`` with ``w = (1, 2, 2, 1) / 6``).
    """

    def axpy(a, u, v):
        return jax.tree.map(lambda ui, vi: ui + a * vi, u, v)

    if loop_stages:
        offsets = jnp.asarray([0.0, 0.5, 0.5, 1.0], jnp.float32)
        weights = jnp.asarray([1.0, 2.0, 2.0, 1.0], jnp.float32) / 6.0

        def stage(i, carry):
            acc, k = carry
            k = f(axpy(offsets[i] * h, y, k), t + offsets[i] * h)
            return axpy(weights[i], acc, k), k

        zeros = jax.tree.map(jnp.zeros_like, y)
        acc, _ = jax.lax.fori_loop(0, 4, stage, (zeros, zeros))
        return axpy(h, y, acc)
    k1 = f(y, t)
    k2 = f(axpy(0.5 * h, y, k1), t + 0.5 * h)
    k3 = f(axpy(0.5 * h, y, k2), t + 0.5 * h)
    k4 = f(axpy(h, y, k3), t + h)
    return jax.tree.map(lambda yi, a, bb, c, d: yi + h / 6.0 * (a + 2 * bb + 2 * c + d), y, k1, k2, k3, k4)


def ode_sample(
    key: PRNGKeyArray,
    score_fn: ScoreFn,
    shape: Sequence[int],
    *,
    sde: SDE,
    num_steps: int = 100,
    x_T: Array | None = None,
    eps: float = 1e-3,
    return_trajectory: bool = False,
):
    """Samples by integrating the probability-flow ODE from ``sde.T`` to ``eps``.

    ``dx/dt = f(x, t) - g(t)^2 / 2 * score_fn(x, t)``, fixed-step classical RK4 with
    ``num_steps`` steps (4 score evaluations each); deterministic given ``x_T``.

    Args:
      key: PRNG key (the prior draw when ``x_T`` is not given).
      score_fn: ``(x (b, *d), t (b,) float) -> score (b, *d)``.
      shape: ``(b, *d)``.
      sde: the forward SDE.
      num_steps: RK4 steps.
      x_T: optional ``(b, *d)`` start at time ``T``.
      eps: final time.
      return_trajectory: also return the ``(num_steps + 1, b, *d)`` states.

    Returns:
      ``(b, *d)`` samples (and the trajectory).
    """
    shape = _check_shape(shape)
    _check_sde(sde)
    num_steps = _checks.positive_int("num_steps", num_steps)
    eps = _check_eps(eps, sde)
    b = shape[0]
    if x_T is None:
        x_T = sde.prior_sample(key, shape)
    elif tuple(np.shape(x_T)) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(np.shape(x_T))}")
    x_T = jnp.asarray(x_T, jnp.float32)
    velocity = probability_flow(sde, score_fn)
    times = np.linspace(sde.T, eps, num_steps + 1)
    h = float(times[1] - times[0])  # negative: integrating backwards in time

    def f(x, t):
        return velocity(x, jnp.full((b,), t, jnp.float32))

    def step(x, t):
        x = rk4_step(f, x, t, h)
        return x, (x if return_trajectory else None)

    x, frames = jax.lax.scan(step, x_T, jnp.asarray(times[:-1], jnp.float32))
    return _finish(x, frames, x_T, return_trajectory)


# ---------------------------------------------------------------------- few-step ODE solvers
# One engine for the fast solvers of the probability-flow ODE. Every solver sees the model as
# a noise prediction ``eps(x, t)`` on a path ``x_t = alpha(t) x0 + sigma(t) eps`` given by an SDE's
# marginals (a DDPM through ``DiscreteVPSDE.from_schedule``: its chain is that SDE at
# ``t = (i + 1) / T``; a score model through ``eps = -sigma(t) score``). A solver of ``n`` steps
# runs on ``n`` times ``t_max = t_0 > ... > t_{n-1} = t_min`` of a time schedule, computed on the
# host, and ends with one step to the clean data (the data prediction at ``t_{n-1}``, as DDPM
# and DDIM end), so ``n - 1`` solver steps run in one ``lax.scan`` and the last is a denoising.
# Every coefficient is computed on the host in float64 from the marginals at the times the
# network is actually evaluated at, so the schedule's inversion (interpolation) costs no accuracy.

#: the few-step solvers of :func:`solver_sample`
FAST_SAMPLERS = ("euler", "heun", "dpm++2m", "dpm2", "dpm3")
#: the time-step schedules: uniform in t, quadratic in t, uniform in log-SNR, Karras et al.'s sigmas
TIME_SCHEDULES = ("uniform", "quadratic", "logsnr", "karras")
#: network evaluations per solver step (the final denoising step is one evaluation)
_EVALS_PER_STEP = {"euler": 1, "heun": 2, "dpm++2m": 1, "dpm2": 2, "dpm3": 3}
#: each solver's time schedule by default: its paper's
DEFAULT_TIME_SCHEDULE = {"euler": "karras", "heun": "karras", "dpm++2m": "logsnr", "dpm2": "logsnr", "dpm3": "logsnr"}


def solver_nfe(sampler: str, steps: int) -> int:
    """Network evaluations of :func:`solver_sample` with ``steps`` steps: ``k (steps - 1) + 1``,
    ``k`` the solver's evaluations per step (1: ``"euler"``, ``"dpm++2m"``; 2: ``"heun"``,
    ``"dpm2"``; 3: ``"dpm3"``); the last step (to the clean data) is one evaluation."""
    _checks.one_of("sampler", sampler, FAST_SAMPLERS)
    return _EVALS_PER_STEP[sampler] * (_checks.positive_int("steps", steps) - 1) + 1


class _Path:
    """An SDE's noise path on the host, float64: ``alpha(t)``, ``sigma(t)``, the log-SNR
    ``lambda = log(alpha / sigma)``, the EDM noise level ``sigma / alpha`` and their inverses.

    The SDE's own marginals are evaluated once on a fixed geometric grid of ``t`` in
    ``[t_min, sde.T]`` (one shape: compiled once per process, not per call) and interpolated
    linearly in ``log t`` (``log alpha``, ``log sigma``; relative error below 1e-7)."""

    SIZE = 16384

    def __init__(self, sde, t_min: float):
        self.log_t = np.linspace(math.log(t_min), math.log(float(sde.T)), self.SIZE)
        with jax.ensure_compile_time_eval():  # host values, also while a caller's jit traces
            a, s = sde.marginal(jnp.asarray(np.exp(self.log_t), jnp.float32))
            self.log_a, self.log_s = np.log(np.asarray(a, np.float64)), np.log(np.asarray(s, np.float64))

    def alpha_sigma(self, t) -> tuple[np.ndarray, np.ndarray]:
        lt = np.log(np.atleast_1d(np.asarray(t, np.float64)))
        return np.exp(np.interp(lt, self.log_t, self.log_a)), np.exp(np.interp(lt, self.log_t, self.log_s))

    def lam(self, t) -> np.ndarray:
        a, s = self.alpha_sigma(t)
        return np.log(a) - np.log(s)

    def edm_sigma(self, t) -> np.ndarray:
        a, s = self.alpha_sigma(t)
        return s / a

    def t_of_lam(self, lam) -> np.ndarray:
        """The times of log-SNR ``lam`` (decreasing in ``t``), clipped to the grid."""
        table = self.log_a - self.log_s
        return np.exp(np.interp(-np.asarray(lam, np.float64), -table, self.log_t))

    def t_of_edm_sigma(self, sig) -> np.ndarray:
        """The times of EDM noise level ``sig`` (increasing in ``t``), clipped to the grid."""
        return np.exp(np.interp(np.log(np.asarray(sig, np.float64)), self.log_s - self.log_a, self.log_t))


def solver_times(sde, steps: int, time_schedule: str, *, t_min: float, t_max: float | None = None,
                 rho: float = 7.0) -> np.ndarray:
    """The ``steps`` times ``t_max = t_0 > ... > t_{steps-1} = t_min`` a solver evaluates at.

    ``"uniform"``: evenly spaced in ``t``; ``"quadratic"``: evenly spaced in ``sqrt(t)`` (DPM-Solver's
    ``time_quadratic``); ``"logsnr"``: evenly spaced in ``lambda = log(alpha / sigma)``;
    ``"karras"``: EDM's ``sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) -
    sigma_max^(1/rho)))^rho`` in the noise level ``sigma / alpha`` (Karras et al., 2022, rho = 7).
    The last two are inverted by interpolation of the SDE's marginals.

    Args:
      sde: the SDE (``VPSDE``, ``SubVPSDE``, ``VESDE`` or a DDPM's ``DiscreteVPSDE``).
      steps: the number of times, ``>= 1`` (``[t_max]`` when 1).
      time_schedule: one of :data:`TIME_SCHEDULES`.
      t_min: the last time, in ``(0, t_max)``.
      t_max: the first time (default ``sde.T``).
      rho: the Karras schedule's exponent.

    Returns:
      ``(steps,)`` float64, decreasing.
    """
    steps = _checks.positive_int("steps", steps)
    _checks.one_of("time_schedule", time_schedule, TIME_SCHEDULES)
    rho = _checks.positive_float("rho", rho)
    t_max = float(sde.T) if t_max is None else _checks.positive_float("t_max", t_max)
    t_min = _checks.positive_float("t_min", t_min)
    if not t_min < t_max <= sde.T:
        raise ValueError(f"need 0 < t_min < t_max <= sde.T={sde.T}, got t_min={t_min}, t_max={t_max}")
    if steps == 1:
        return np.array([t_max])
    u = np.linspace(0.0, 1.0, steps)
    path = _Path(sde, t_min)
    if time_schedule == "uniform":
        t = t_max + u * (t_min - t_max)
    elif time_schedule == "quadratic":
        t = (math.sqrt(t_max) + u * (math.sqrt(t_min) - math.sqrt(t_max))) ** 2
    elif time_schedule == "logsnr":
        lam_max, lam_min = path.lam(t_min)[0], path.lam(t_max)[0]
        t = path.t_of_lam(lam_min + u * (lam_max - lam_min))
    else:
        s_max, s_min = path.edm_sigma(t_max)[0], path.edm_sigma(t_min)[0]
        sig = (s_max ** (1 / rho) + u * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        t = path.t_of_edm_sigma(sig)
    t[0], t[-1] = t_max, t_min
    return t


def _dpmpp_2m_table(path: _Path, t: np.ndarray) -> dict:
    """DPM-Solver++(2M) (Lu et al., 2022b), data prediction ``D = (x - sigma eps) / alpha``, step
    ``s -> t``, ``h = lambda_t - lambda_s``: ``x_t = (sigma_t / sigma_s) x_s - alpha_t expm1(-h) D'``
    with ``D' = (1 + 1/(2r)) D_s - 1/(2r) D_prev``, ``r = h_prev / h`` (``D' = D_s`` on the first step)."""
    a, s = path.alpha_sigma(t)
    lam = np.log(a) - np.log(s)
    h = np.diff(lam)
    r = np.concatenate([[np.inf], h[:-1] / h[1:]])
    w1 = np.where(np.isinf(r), 0.0, -0.5 / r)
    return {"t": t[:-1], "alpha": a[:-1], "sigma": s[:-1], "cx": s[1:] / s[:-1], "cd": -a[1:] * np.expm1(-h),
            "w0": 1.0 - w1, "w1": w1}


def _dpm_single_table(path: _Path, t: np.ndarray, order: int) -> dict:
    """DPM-Solver-2 (``r1 = 1/2``) and -3 (``r1 = 1/3, r2 = 2/3``), noise prediction (Lu et al.,
    2022, algorithms 1 and 2); the intermediate times are the log-SNR points ``lambda_s + r h``."""
    a, s = path.alpha_sigma(t)
    lam = np.log(a) - np.log(s)
    h = np.diff(lam)
    rs = (0.5,) if order == 2 else (1.0 / 3.0, 2.0 / 3.0)
    tab = {"t": t[:-1], "alpha": a[:-1], "sigma": s[:-1]}
    inner = []
    for j, r in enumerate(rs):
        tj = path.t_of_lam(lam[:-1] + r * h)
        aj, sj = path.alpha_sigma(tj)
        r = (np.log(aj) - np.log(sj) - lam[:-1]) / h  # the ratio the evaluated time really has
        inner.append((tj, aj, sj, r))
        tab[f"t{j + 1}"] = tj
        tab[f"ax{j + 1}"] = aj / a[:-1]  # u_j = (alpha_j / alpha_s) x - sigma_j expm1(r_j h) eps_s ...
        tab[f"ae{j + 1}"] = -sj * np.expm1(r * h)
    tab["ax"], tab["ae"] = a[1:] / a[:-1], -s[1:] * np.expm1(h)
    if order == 2:
        r1 = inner[0][3]
        tab["ad"] = -s[1:] / (2.0 * r1) * np.expm1(h)  # ... - sigma_t / (2 r1) expm1(h) (eps_1 - eps_s)
    else:
        (_, _, s2, r2), r1 = inner[1], inner[0][3]
        tab["ad1"] = -(r2 / r1) * s2 * (np.expm1(r2 * h) / (r2 * h) - 1.0)  # u_2's correction by eps_1 - eps_s
        tab["ad"] = -(s[1:] / r2) * (np.expm1(h) / h - 1.0)  # x_t's by eps_2 - eps_s
    return tab


def _edm_table(path: _Path, t: np.ndarray, churn: tuple[float, float, float, float]) -> dict:
    """EDM (Karras et al., 2022, algorithm 2) in ``x = alpha(t) x_hat``, noise level
    ``sigma_hat = sigma / alpha``: optional churn raises ``sigma_hat_i`` to ``(1 + gamma_i)
    sigma_hat_i`` (``gamma_i = min(S_churn / n, sqrt(2) - 1)`` where ``S_tmin <= sigma_hat_i <=
    S_tmax``) by fresh noise of std ``S_noise sqrt(sigma'^2 - sigma_hat_i^2)``; then
    ``x_hat' = x_hat + (sigma_hat_{i+1} - sigma') eps`` (Euler), averaged with the slope at the
    end (Heun). Rows for every one of the ``n`` times (the last feeds the final denoising)."""
    s_churn, s_tmin, s_tmax, s_noise = churn
    n = len(t)
    sig = path.edm_sigma(t)
    gamma = np.where((sig >= s_tmin) & (sig <= s_tmax), min(s_churn / n, math.sqrt(2.0) - 1.0), 0.0)
    t_hat = np.where(gamma > 0, path.t_of_edm_sigma(sig * (1.0 + gamma)), t)
    a_hat, s_hat = path.alpha_sigma(t_hat)
    a, _ = path.alpha_sigma(t)
    sig_hat = s_hat / a_hat
    noise = s_noise * np.sqrt(np.maximum(sig_hat**2 - sig**2, 0.0))
    return {"t": t_hat, "alpha_in": a, "alpha": a_hat, "sigma": s_hat, "noise": noise, "sig_hat": sig_hat,
            "t_next": np.concatenate([t[1:], t[-1:]]), "alpha_next": np.concatenate([a[1:], a[-1:]]),
            "sig_next": np.concatenate([sig[1:], [0.0]])}


def _check_churn(sampler, s_churn, s_tmin, s_tmax, s_noise) -> tuple[float, float, float, float]:
    for name, v in (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_noise", s_noise)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0 (a Python number: it is static), got {v!r}")
    if isinstance(s_tmax, bool) or not isinstance(s_tmax, numbers.Real) or np.isnan(s_tmax) or s_tmax < s_tmin:
        raise ValueError(f"s_tmax must be a number >= s_tmin={s_tmin} (may be inf), got {s_tmax!r}")
    if s_churn > 0 and sampler not in ("euler", "heun"):
        raise ValueError(f"s_churn > 0 is EDM's stochastic sampler: sampler must be 'euler' or 'heun', got {sampler!r}")
    return float(s_churn), float(s_tmin), float(s_tmax), float(s_noise)


def _solver_model(eps_fn, schedule, score_fn, sde, eps):
    """``(eps(x, t (b,) float) -> eps_hat, sde, t_min)`` of the two ways a model comes."""
    if (eps_fn is None) == (score_fn is None):
        raise ValueError("give either eps_fn with schedule (a DDPM's chain) or score_fn with sde, not both or neither")
    if eps_fn is not None:
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule with eps_fn, got {type(schedule).__name__}")
        if sde is not None:
            raise ValueError("sde goes with score_fn; with eps_fn the SDE is the schedule's DiscreteVPSDE")
        vp = DiscreteVPSDE.from_schedule(schedule)
        T = vp.num_steps
        # the chain's index i is the SDE's t = (i + 1) / T: the network sees the (fractional) index T t - 1
        model = lambda x, t: eps_fn(x, T * t - 1.0)  # noqa: E731
        return model, vp, (1.0 / T if eps is None else _check_eps(eps, vp))
    _check_sde(sde)
    if schedule is not None:
        raise ValueError("schedule goes with eps_fn; with score_fn give the sde")

    def model(x, t):
        score = score_fn(x, t)
        _check_out("score_fn", score, x)
        return -_bcast(sde.marginal(t)[1], x) * score

    return model, sde, _check_eps(1e-3 if eps is None else eps, sde)


def solver_sample(
    key: PRNGKeyArray | None,
    shape: Sequence[int],
    *,
    sampler: str,
    steps: int,
    eps_fn: EpsFn | None = None,
    schedule: DiscreteSchedule | None = None,
    score_fn: ScoreFn | None = None,
    sde: SDE | None = None,
    time_schedule: str | None = None,
    eps: float | None = None,
    rho: float = 7.0,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    x_T: Array | None = None,
    return_trajectory: bool = False,
):
    """Few-step solvers of the probability-flow ODE: DPM-Solver++(2M), DPM-Solver-2/3, EDM Euler/Heun.

    ``sampler``:

    - ``"dpm++2m"``: DPM-Solver++(2M), multistep second order in the data prediction (Lu et al.,
      2022b); 1 evaluation per step.
    - ``"dpm2"``, ``"dpm3"``: DPM-Solver-2 and -3, single-step in the noise prediction (Lu et al.,
      2022); 2 and 3 evaluations per step.
    - ``"euler"``, ``"heun"``: EDM's first- and second-order steps in the noise level
      ``sigma / alpha`` of ``x / alpha`` (Karras et al., 2022; for a VP model this is the VP <-> VE
      map ``x = s(t) x_edm`` with ``s = alpha``), with optional stochastic churn (``s_churn``,
      ``s_tmin``, ``s_tmax``, ``s_noise``; ``s_churn = 0``: deterministic); Euler is DDIM on its
      grid. 1 and 2 evaluations per step.

    The model is a DDPM's ``eps_fn(x, t)`` with its ``schedule`` (read as ``DiscreteVPSDE``: the
    network is called at the fractional index ``T t - 1``) or a ``score_fn(x, t)`` with its
    ``sde`` (``eps = -std(t) score``); guidance goes inside the function; any data shape (pixels
    or latents). The ``steps`` times :func:`solver_times` run from ``sde.T`` to ``eps`` and a last
    step goes to the clean data (the data prediction at ``eps``): :func:`solver_nfe` network
    evaluations in all (Heun: ``2 steps - 1``; DPM-Solver-3: ``3 steps - 2``).

    Args:
      key: PRNG key (the start when ``x_T`` is not given, the churn noise); may be ``None`` when
        ``x_T`` is given and ``s_churn = 0``.
      shape: ``(b, *d)``.
      sampler: one of :data:`FAST_SAMPLERS`.
      steps: ``>= 1``.
      eps_fn, schedule: a DDPM's ``(x (b, *d), t (b,) float index) -> eps_hat`` and its schedule;
      score_fn, sde: or a score model's ``(x, t (b,) float) -> score`` and its SDE.
      time_schedule: one of :data:`TIME_SCHEDULES` (default :data:`DEFAULT_TIME_SCHEDULE`).
      eps: the last time before the clean data (default ``1 / T``, the chain's index 0, for a
        DDPM; ``1e-3`` for an SDE).
      rho: the Karras schedule's exponent.
      s_churn, s_tmin, s_tmax, s_noise: EDM's churn (``"euler"``, ``"heun"`` only).
      x_T: optional ``(b, *d)`` start at ``sde.T`` (default a draw from the prior; ``N(0, I)``
        for a DDPM).
      return_trajectory: also return the ``(steps + 1, b, *d)`` states, start first, the
        samples last.

    Returns:
      ``(b, *d)`` samples (and the trajectory).
    """
    shape = _check_shape(shape)
    _checks.one_of("sampler", sampler, FAST_SAMPLERS)
    steps = _checks.positive_int("steps", steps)
    time_schedule = DEFAULT_TIME_SCHEDULE[sampler] if time_schedule is None else time_schedule
    _checks.one_of("time_schedule", time_schedule, TIME_SCHEDULES)
    churn = _check_churn(sampler, s_churn, s_tmin, s_tmax, s_noise)
    model, sde, t_min = _solver_model(eps_fn, schedule, score_fn, sde, eps)
    times = solver_times(sde, steps, time_schedule, t_min=t_min, rho=rho)
    if key is None and (x_T is None or churn[0] > 0):
        raise ValueError("key may be None only when x_T is given and s_churn = 0 (nothing random)")
    key = jax.random.PRNGKey(0) if key is None else key  # unused when nothing is random
    key_init, key_steps = jax.random.split(key)
    if x_T is not None:
        x_start = _check_start("x_T", x_T, shape)
    elif eps_fn is not None:
        x_start = jax.random.normal(key_init, shape, jnp.float32)
    else:
        x_start = sde.prior_sample(key_init, shape)
    b = shape[0]
    path = _Path(sde, t_min)

    def f(x, t):
        e = model(x, jnp.full((b,), t, jnp.float32))
        _check_out("eps_fn", e, x)
        return e

    def rows(tab):  # the host table as float32 arrays (a scan's xs)
        return {k: jnp.asarray(v, jnp.float32) for k, v in tab.items()}

    if sampler in ("euler", "heun"):
        tab = rows(_edm_table(path, times, churn))
        keys = jax.random.split(key_steps, steps)

        def churned(x, r, k):
            if churn[0] == 0:
                return x
            return x + r["alpha_in"] * r["noise"] * jax.random.normal(k, x.shape, x.dtype)  # in x_hat units

        def step(x, inp):
            r, k = inp
            xh = churned(x, r, k) / r["alpha_in"]
            e = f(r["alpha"] * xh, r["t"])
            xn = xh + (r["sig_next"] - r["sig_hat"]) * e
            if sampler == "heun":
                e2 = f(r["alpha_next"] * xn, r["t_next"])
                xn = xh + (r["sig_next"] - r["sig_hat"]) * 0.5 * (e + e2)
            x = r["alpha_next"] * xn
            return x, (x if return_trajectory else None)

        last = jax.tree.map(lambda v: v[-1], tab)
        head = jax.tree.map(lambda v: v[:-1], tab)
        x, frames = jax.lax.scan(step, x_start, (head, keys[:-1]))
        xh = churned(x, last, keys[-1]) / last["alpha_in"]
        x0 = xh - last["sig_hat"] * f(last["alpha"] * xh, last["t"])
    elif sampler == "dpm++2m":
        tab = rows(_dpmpp_2m_table(path, times))

        def step(carry, r):
            x, d_prev = carry
            d = (x - r["sigma"] * f(x, r["t"])) / r["alpha"]
            x = r["cx"] * x + r["cd"] * (r["w0"] * d + r["w1"] * d_prev)
            return (x, d), (x if return_trajectory else None)

        (x, _), frames = jax.lax.scan(step, (x_start, jnp.zeros_like(x_start)), tab)
        x0 = None
    else:
        order = 2 if sampler == "dpm2" else 3
        tab = rows(_dpm_single_table(path, times, order))

        def step(x, r):
            e = f(x, r["t"])
            e1 = f(r["ax1"] * x + r["ae1"] * e, r["t1"])
            if order == 2:
                x = r["ax"] * x + r["ae"] * e + r["ad"] * (e1 - e)
            else:
                e2 = f(r["ax2"] * x + r["ae2"] * e + r["ad1"] * (e1 - e), r["t2"])
                x = r["ax"] * x + r["ae"] * e + r["ad"] * (e2 - e)
            return x, (x if return_trajectory else None)

        x, frames = jax.lax.scan(step, x_start, tab)
        x0 = None
    if x0 is None:  # the last step, to the clean data: the data prediction at t_min
        (a_min,), (s_min,) = path.alpha_sigma(times[-1])
        x0 = (x - float(s_min) * f(x, float(times[-1]))) / float(a_min)
    if not return_trajectory:
        return x0
    frames = x0[None] if frames is None else jnp.concatenate([frames, x0[None]], axis=0)
    return x0, jnp.concatenate([x_start[None], frames], axis=0)
