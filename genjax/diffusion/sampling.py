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

import numbers
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.diffusion.objectives import VARIANCES, model_log_variance, p_mean, predict_x0, q_sample
from genjax.diffusion.schedules import SDE, VESDE, DiscreteSchedule, SubVPSDE, VPSDE, _bcast, check_data, check_sigmas
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


def rk4_step(f, y, t, h):
    """One classical Runge-Kutta step of ``dy/dt = f(y, t)`` (pytrees ``y``, scalar ``t``, ``h``)."""

    def axpy(a, u, v):
        return jax.tree.map(lambda ui, vi: ui + a * vi, u, v)

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
