"""Diffusion objectives as free pure functions; each returns per-example values.

Conventions (see :mod:`genjax.diffusion.schedules`): discrete index ``t`` in
``{0..T-1}``, ``x_t = sqrt(abar[t]) x0 + sqrt(1 - abar[t]) eps``;
``eps_fn(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``;
``score_fn(x (b, *d), t or sigma (b,) float) -> score (b, *d)``.
All log-probabilities are in nats.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr

from genjax import _checks
from genjax.diffusion.schedules import (
    SDE,
    DiscreteSchedule,
    _bcast,
    check_data,
    check_sigmas,
    check_times,
    check_timesteps,
)
from genjax.types import Array, Metrics, PRNGKeyArray

EpsFn = Callable[[Array, Array], Array]
ScoreFn = Callable[[Array, Array], Array]

_LOG_2PI = math.log(2.0 * math.pi)
VARIANCES = ("beta", "posterior")
DECODERS = ("discretized", "gaussian")


def _sum_event(v: Array) -> Array:
    """Sums a ``(b, *d)`` array over all but the batch axis."""
    return jnp.sum(jnp.reshape(v, (v.shape[0], -1)), axis=-1)


def _mean_event(v: Array) -> Array:
    return jnp.mean(jnp.reshape(v, (v.shape[0], -1)), axis=-1)


def _check_output(name: str, out: Array, x: Array) -> None:
    if tuple(np.shape(out)) != tuple(np.shape(x)):
        raise ValueError(
            f"{name} must return an array of the input's shape {tuple(np.shape(x))}, got {tuple(np.shape(out))}"
        )


def q_sample(key: PRNGKeyArray, x0: Array, t: Array, schedule: DiscreteSchedule) -> tuple[Array, Array]:
    """Draws ``x_t ~ q(x_t | x0) = N(sqrt(abar[t]) x0, (1 - abar[t]) I)``.

    Args:
      key: PRNG key for the noise.
      x0: ``(b, *d)`` clean data.
      t: ``(b,)`` integer indices in ``{0..T-1}``.
      schedule: the discrete schedule.

    Returns:
      ``(x_t, noise)``, both ``(b, *d)``; ``x_t = sqrt(abar) x0 + sqrt(1 - abar) noise``.

    Raises:
      ValueError: on a non-floating ``x0``, ``t`` of the wrong shape/dtype, a batch
        mismatch, or (concrete ``t``) an index out of range.
    """
    check_data("x0", x0)
    check_timesteps(t, num_steps=schedule.num_steps, batch=x0.shape[0])
    noise = jax.random.normal(key, x0.shape, x0.dtype)
    abar = schedule.alphas_cumprod[t]
    x_t = _bcast(jnp.sqrt(abar), x0) * x0 + _bcast(jnp.sqrt(1.0 - abar), x0) * noise
    return x_t, noise


def q_posterior(schedule: DiscreteSchedule, x0: Array, x_t: Array, t: Array) -> tuple[Array, Array, Array]:
    """The forward-process posterior ``q(x_{t-1} | x_t, x0) = N(mean, variance I)``.

    ``mean = coef1[t] x0 + coef2[t] x_t``, ``variance = beta_tilde[t]``
    (see :class:`DiscreteSchedule`). At ``t = 0`` the "previous" state is the clean
    data: ``mean = x0``, ``variance = 0`` and the log-variance is clipped to
    ``log beta_tilde[1]``.

    Args:
      schedule: the discrete schedule.
      x0, x_t: ``(b, *d)``.
      t: ``(b,)`` integer indices in ``{0..T-1}``.

    Returns:
      ``(mean (b, *d), variance (b,), log_variance (b,))``.
    """
    check_data("x0", x0)
    if tuple(np.shape(x_t)) != tuple(np.shape(x0)):
        raise ValueError(f"x_t must have the shape of x0 {tuple(np.shape(x0))}, got {tuple(np.shape(x_t))}")
    check_timesteps(t, num_steps=schedule.num_steps, batch=x0.shape[0])
    c1 = _bcast(schedule.posterior_mean_coef1[t], x0)
    c2 = _bcast(schedule.posterior_mean_coef2[t], x0)
    return c1 * x0 + c2 * x_t, schedule.posterior_variance[t], schedule.posterior_log_variance_clipped[t]


def predict_x0(schedule: DiscreteSchedule, x_t: Array, t: Array, eps: Array) -> Array:
    """``x0_hat = (x_t - sqrt(1 - abar[t]) eps) / sqrt(abar[t])``, ``(b, *d)``."""
    abar = schedule.alphas_cumprod[t]
    return (x_t - _bcast(jnp.sqrt(1.0 - abar), x_t) * eps) / _bcast(jnp.sqrt(abar), x_t)


def model_log_variance(schedule: DiscreteSchedule, variance: str) -> Array:
    """``(T,)`` log-variance of the reverse step ``p(x_{t-1} | x_t)``.

    ``"beta"``: ``log beta[t]`` (DDPM's sigma^2 = beta); ``"posterior"``:
    ``log beta_tilde[t]``. In both the ``t = 0`` entry (the decoder) is
    ``log beta_tilde[1]``, as in improved DDPM's fixed variances.
    """
    _checks.one_of("variance", variance, VARIANCES)
    clipped = schedule.posterior_log_variance_clipped
    if variance == "posterior":
        return clipped
    return jnp.concatenate([clipped[:1], jnp.log(schedule.betas[1:])])


def p_mean(schedule: DiscreteSchedule, x_t: Array, t: Array, eps: Array, *, clip=None) -> Array:
    """Mean of ``p(x_{t-1} | x_t)``: the posterior mean at ``x0_hat`` (optionally clipped)."""
    x0_hat = predict_x0(schedule, x_t, t, eps)
    if clip is not None:
        x0_hat = jnp.clip(x0_hat, clip[0], clip[1])
    c1 = _bcast(schedule.posterior_mean_coef1[t], x_t)
    c2 = _bcast(schedule.posterior_mean_coef2[t], x_t)
    return c1 * x0_hat + c2 * x_t


def eps_matching_loss(
    key: PRNGKeyArray, eps_fn: EpsFn, x0: Array, *, schedule: DiscreteSchedule, t: Array | None = None
) -> tuple[Array, Metrics]:
    """DDPM's "simple" objective: ``mean_d (eps_fn(x_t, t) - eps)^2`` with ``t ~ U{0..T-1}``.

    Args:
      key: PRNG key (timesteps and noise).
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      x0: ``(b, *d)`` clean data.
      schedule: the discrete schedule.
      t: optional ``(b,)`` integer indices to use instead of uniform draws.

    Returns:
      ``(per_example (b,), metrics)``: the squared error averaged over the data
      dimensions, and ``{"eps_mse": mean over the batch}``.
    """
    return denoising_loss(key, eps_fn, x0, schedule=schedule, t=t, target="eps")


#: what a denoising network predicts (``denoising_loss``'s ``target``)
PREDICTIONS = ("eps", "x0")


def denoising_loss(
    key: PRNGKeyArray, fn: EpsFn, x0: Array, *, schedule: DiscreteSchedule, target: str = "eps",
    t: Array | None = None,
) -> tuple[Array, Metrics]:
    """``mean_d (fn(x_t, t) - target)^2`` with ``t ~ U{0..T-1}`` and ``x_t ~ q(x_t | x0)``.

    ``target="eps"``: the noise (DDPM's "simple" loss, metric ``"eps_mse"``); ``"x0"``: the clean
    data (the unCLIP prior's loss, metric ``"x0_mse"``). The same ``key`` draws the same ``t``
    and noise for either target.

    Args:
      key: PRNG key (timesteps and noise).
      fn: ``(x (b, *d), t (b,) int32) -> (b, *d)``, the prediction of ``target``.
      x0: ``(b, *d)`` clean data.
      schedule: the discrete schedule.
      target: ``"eps"`` or ``"x0"``.
      t: optional ``(b,)`` integer indices to use instead of uniform draws.
    """
    _checks.one_of("target", target, PREDICTIONS)
    check_data("x0", x0)
    b = x0.shape[0]
    key_t, key_n = jax.random.split(key)
    if t is None:
        t = jax.random.randint(key_t, (b,), 0, schedule.num_steps, dtype=jnp.int32)
    check_timesteps(t, num_steps=schedule.num_steps, batch=b)
    x_t, noise = q_sample(key_n, x0, t, schedule)
    pred = fn(x_t, t)
    _check_output("eps_fn" if target == "eps" else "fn", pred, x0)
    per_example = _mean_event(jnp.square(pred - (noise if target == "eps" else x0)))
    return per_example, {f"{target}_mse": jnp.mean(per_example)}


def eps_from_x0(x_t: Array, x0_hat: Array, t: Array, schedule: DiscreteSchedule) -> Array:
    """The noise that ``x0_hat`` implies at ``x_t``: ``(x_t - sqrt(abar[t]) x0_hat) / sqrt(1 - abar[t])``
    (``t`` ``(b,)`` integer indices), so an x0-predicting network serves every eps sampler."""
    abar = schedule.alphas_cumprod[t]
    return (x_t - _bcast(jnp.sqrt(abar), x_t) * x0_hat) / _bcast(jnp.sqrt(1.0 - abar), x_t)


def discretized_gaussian_log_likelihood(x: Array, *, means: Array, log_scales: Array, num_levels: int = 256) -> Array:
    """Elementwise log-probability of ``x`` under a Gaussian discretized to ``num_levels`` bins.

    Data live on the grid ``{-1 + 2k / (L - 1)}`` in [-1, 1]; bin ``k`` covers
    ``x +- 1 / (L - 1)``, except that the first bin extends to ``-inf`` and the last
    to ``+inf`` (so the probabilities over the ``L`` bins sum to 1). The probability of
    a bin is ``Phi((x + h - mean) / scale) - Phi((x - h - mean) / scale)``, evaluated on
    the side of the mean where the CDF is the small tail and in log space (accurate far
    into the tails); for bins narrower than ``1e-3`` scales the midpoint rule
    ``pdf(x) * 2h`` is used.

    Args:
      x: data in [-1, 1] (on the grid).
      means: Gaussian means, shape of ``x``.
      log_scales: log standard deviations, broadcastable to ``x``.
      num_levels: ``L`` >= 2.

    Returns:
      Log-probabilities (nats), shape of ``x``.
    """
    num_levels = _checks.positive_int("num_levels", num_levels)
    if num_levels < 2:
        raise ValueError(f"num_levels must be >= 2, got {num_levels}")
    if tuple(np.shape(x)) != tuple(np.shape(means)):
        raise ValueError(f"means must have the shape of x {tuple(np.shape(x))}, got {tuple(np.shape(means))}")
    try:
        np.broadcast_shapes(np.shape(log_scales), np.shape(x))
    except ValueError:
        raise ValueError(
            f"log_scales of shape {tuple(np.shape(log_scales))} does not broadcast to x's shape {tuple(np.shape(x))}"
        ) from None
    h = 1.0 / (num_levels - 1)
    inv_std = jnp.exp(-log_scales)
    c = x - means
    plus_in = inv_std * (c + h)
    min_in = inv_std * (c - h)
    mid_in = inv_std * c
    log_cdf_plus = log_ndtr(plus_in)  # log P(X <= x + h): the first bin
    log_sf_min = log_ndtr(-min_in)  # log P(X > x - h): the last bin
    # interior bins: log(Phi(hi) - Phi(lo)) = log Phi(hi) + log(-expm1(log Phi(lo) - log Phi(hi))),
    # on the side of the mean where Phi is the small tail (accurate far out)
    upper = mid_in > 0
    hi = jnp.where(upper, -min_in, plus_in)
    lo = jnp.where(upper, -plus_in, min_in)
    log_hi = log_ndtr(hi)
    log_delta = log_hi + jnp.log(-jnp.expm1(jnp.minimum(log_ndtr(lo) - log_hi, -1e-30)))
    # bins much narrower than the scale: the midpoint rule pdf(x) * 2h (error O(width^2))
    log_mid = -0.5 * (_LOG_2PI + jnp.square(mid_in)) + jnp.log(2.0 * h * inv_std)
    log_delta = jnp.where(2.0 * h * inv_std < 1e-3, log_mid, log_delta)
    return jnp.where(x < -1.0 + h, log_cdf_plus, jnp.where(x > 1.0 - h, log_sf_min, log_delta))


def _normal_kl(mean1, logvar1, mean2, logvar2):
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)))."""
    return 0.5 * (logvar2 - logvar1 + jnp.exp(logvar1 - logvar2) + jnp.square(mean1 - mean2) * jnp.exp(-logvar2) - 1.0)


def vlb_terms(
    key: PRNGKeyArray,
    eps_fn: EpsFn,
    x0: Array,
    *,
    schedule: DiscreteSchedule,
    variance: str = "beta",
    decoder: str = "discretized",
    num_levels: int = 256,
    return_per_step: bool = False,
    t_chunk: int = 8,
    num_terms: int | None = None,
) -> dict[str, Array]:
    """The DDPM variational bound ``-log p(x0) <= prior + diffusion + decoder``, per example.

    With index ``t`` in ``{0..T-1}`` (DDPM step ``t + 1``):

    - ``prior = KL(q(x_{T-1} | x0) || N(0, I))`` (closed form);
    - ``diffusion = sum_{t=1}^{T-1} KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))`` with
      one draw ``x_t ~ q(x_t | x0)`` per ``t`` (key ``split(key, T)[t]``: a single-sample
      estimate of each expectation);
    - ``decoder = -log p(x0 | x_{t=0})``: the discretized Gaussian of
      :func:`discretized_gaussian_log_likelihood` (data in [-1, 1] on the
      ``num_levels`` grid; the bound is then on ``-log P(x0)`` of the discrete data), or
      with ``decoder="gaussian"`` the continuous Gaussian density (a bound on the
      negative log-density).

    ``p(x_{t-1} | x_t) = N(mu(x_t, x0_hat), sigma_t^2)`` with ``x0_hat`` from ``eps_fn``
    (unclipped) and ``sigma_t^2`` from :func:`model_log_variance`.

    The terms are computed ``t_chunk`` indices per step of one ``lax.scan``, the network
    called once per step on the ``(t_chunk, b)`` inputs (``jax.vmap`` over ``t``, so any
    ``eps_fn``, conditioned or guided, works): ``T / t_chunk`` sequential calls instead of
    ``T``; ``t_chunk=1`` is one call per ``t``. The numbers do not depend on ``t_chunk``
    (to float rounding). On CPU the time does not either: the default digits UNet's VLB of 50
    test digits (T = 1000) took 62-71 s warm for ``t_chunk`` 1, 4, 8 and 16 alike (measured side by
    side, 2 loaded cores: the FLOPs are the same and one call already fills the cores); the
    default 8 is for accelerators, where a bigger call fills the device. What makes the bound
    cheaper is fewer terms (``num_terms``).

    Args:
      key: PRNG key (one noise draw per step; the strata draws of ``num_terms``).
      eps_fn: ``(x (b, *d), t (b,) int32) -> eps_hat (b, *d)``.
      x0: ``(b, *d)`` data.
      schedule: the discrete schedule.
      variance: ``"beta"`` or ``"posterior"``.
      decoder: ``"discretized"`` or ``"gaussian"``.
      num_levels: grid size of the discretized decoder.
      return_per_step: also return ``"kl_per_step"``, ``(T, b)``: the KL term of each
        index ``t`` (row 0, the decoder's step, is 0). Not with ``num_terms``.
      t_chunk: indices ``t`` per network call (the batch is ``t_chunk * b``).
      num_terms: ``None`` (default): all ``T - 1`` KL terms. An integer ``K < T - 1``: the
        cheaper unbiased estimate of ``diffusion`` from ``K`` stratified indices: ``1..T-1``
        cut into ``K`` contiguous strata of sizes ``n_j``, one index ``t_j`` drawn uniformly in
        each, ``diffusion ~= sum_j n_j KL_{t_j}`` (``K + 1`` network calls per example instead
        of ``T``; its expectation is the full sum, its spread is added to the estimator's).

    Returns:
      ``{"total", "prior", "diffusion", "decoder"}``, each ``(b,)`` nats.
    """
    check_data("x0", x0)
    _checks.one_of("variance", variance, VARIANCES)
    _checks.one_of("decoder", decoder, DECODERS)
    num_levels = _checks.positive_int("num_levels", num_levels)
    t_chunk = _checks.positive_int("t_chunk", t_chunk)
    b = x0.shape[0]
    T = schedule.num_steps
    if num_terms is not None:
        num_terms = _checks.positive_int("num_terms", num_terms)
        if return_per_step:
            raise ValueError("return_per_step needs every term: pass num_terms=None")
        if num_terms >= T - 1:
            num_terms = None  # as many strata as terms: the full sum
    logvar_model = model_log_variance(schedule, variance)

    abar_last = schedule.alphas_cumprod[-1]
    prior = _sum_event(
        _normal_kl(jnp.sqrt(abar_last) * x0, jnp.log1p(-abar_last), jnp.zeros_like(x0), jnp.zeros_like(x0))
    )

    def term(t_scalar, k):
        t = jnp.full((b,), t_scalar, jnp.int32)
        x_t, _ = q_sample(k, x0, t, schedule)
        eps_hat = eps_fn(x_t, t)
        _check_output("eps_fn", eps_hat, x0)
        mean_model = p_mean(schedule, x_t, t, eps_hat)
        lv_model = _bcast(logvar_model[t], x0)
        mean_q, _, lv_q = q_posterior(schedule, x0, x_t, t)
        kl = _sum_event(_normal_kl(mean_q, _bcast(lv_q, x0), mean_model, lv_model))
        if decoder == "discretized":
            ll = discretized_gaussian_log_likelihood(
                x0, means=mean_model, log_scales=0.5 * lv_model, num_levels=num_levels
            )
        else:
            ll = -0.5 * (_LOG_2PI + lv_model + jnp.square(x0 - mean_model) * jnp.exp(-lv_model))
        return kl, -_sum_event(ll)

    keys = jax.random.split(key, T)
    if num_terms is None:
        ts = jnp.arange(T, dtype=jnp.int32)
        weights = None
    else:  # index 0 (the decoder) and one index per stratum of 1..T-1
        edges = np.linspace(1, T, num_terms + 1).round().astype(np.int32)
        sizes = jnp.asarray(np.diff(edges), jnp.float32)
        u = jax.random.uniform(jax.random.fold_in(key, T), (num_terms,))
        picks = jnp.asarray(edges[:-1]) + jnp.floor(u * sizes).astype(jnp.int32)
        ts = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.minimum(picks, jnp.asarray(edges[1:]) - 1)])
        weights = jnp.concatenate([jnp.zeros((1,), jnp.float32), sizes])
    kls, nlls = _chunked_terms(term, ts, keys[ts], t_chunk)
    decoder_term = nlls[0]
    if weights is None:
        kls = kls.at[0].set(0.0)
        diffusion = jnp.sum(kls, axis=0)
    else:
        diffusion = jnp.sum(weights[:, None] * kls, axis=0)
    out = {
        "total": prior + diffusion + decoder_term,
        "prior": prior,
        "diffusion": diffusion,
        "decoder": decoder_term,
    }
    if return_per_step:
        out["kl_per_step"] = kls
    return out


def _chunked_terms(term, ts: Array, keys: Array, chunk: int):
    """``term(t, key)`` for every ``t`` in ``ts`` (each output ``(b,)``), stacked ``(len(ts), b)``:
    ``chunk`` indices per step of a ``lax.scan``, vmapped over them (the last chunk padded with
    copies of the first index, then dropped)."""
    n = ts.shape[0]
    chunk = min(chunk, n)
    pad = -n % chunk
    if pad:
        ts = jnp.concatenate([ts, jnp.broadcast_to(ts[:1], (pad,))])
        keys = jnp.concatenate([keys, jnp.broadcast_to(keys[:1], (pad,) + keys.shape[1:])])
    groups = (ts.reshape(-1, chunk), keys.reshape((-1, chunk) + keys.shape[1:]))
    _, outs = jax.lax.scan(lambda _, g: (None, jax.vmap(term)(*g)), None, groups)
    return tuple(o.reshape((-1,) + o.shape[2:])[:n] for o in outs)


def dsm_loss(
    key: PRNGKeyArray, score_fn: ScoreFn, x: Array, *, sigmas: Array, sigma_index: Array | None = None
) -> Array:
    """NCSN denoising score matching with weight ``sigma^2``.

    ``x~ = x + sigma z``, ``sigma = sigmas[i]`` with ``i ~ U{0..L-1}``;
    ``loss = 0.5 * sum_d (sigma * score_fn(x~, sigma) + z)^2``
    (= ``0.5 sigma^2 ||s(x~) - (-(x~ - x) / sigma^2)||^2``).

    Args:
      key: PRNG key (noise levels and noise).
      score_fn: ``(x (b, *d), sigma (b,)) -> score (b, *d)``.
      x: ``(b, *d)`` data.
      sigmas: ``(L,)`` positive noise levels.
      sigma_index: optional ``(b,)`` integer level indices instead of uniform draws.

    Returns:
      ``(b,)`` per-example loss.
    """
    check_data("x", x)
    check_sigmas(sigmas)
    b = x.shape[0]
    L = int(np.shape(sigmas)[0])
    key_i, key_n = jax.random.split(key)
    if sigma_index is None:
        sigma_index = jax.random.randint(key_i, (b,), 0, L, dtype=jnp.int32)
    check_timesteps(sigma_index, num_steps=L, batch=b, name="sigma_index")
    sigma = jnp.asarray(sigmas, jnp.float32)[sigma_index]
    z = jax.random.normal(key_n, x.shape, x.dtype)
    score = score_fn(x + _bcast(sigma, x) * z, sigma)
    _check_output("score_fn", score, x)
    return 0.5 * _sum_event(jnp.square(_bcast(sigma, x) * score + z))


def score_sde_loss(
    key: PRNGKeyArray,
    score_fn: ScoreFn,
    x: Array,
    *,
    sde: SDE,
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    t: Array | None = None,
) -> Array:
    """Continuous-time denoising score matching (score_sde).

    ``t ~ U(eps, T)``, ``x_t = m(t) x + s(t) z``. Without likelihood weighting
    (``lambda = s^2``): ``loss = 0.5 * sum_d (s(t) score + z)^2``. With it
    (``lambda = g(t)^2``, which bounds the negative log-likelihood):
    ``loss = 0.5 * g(t)^2 * sum_d (score + z / s(t))^2``.

    Args:
      key: PRNG key (times and noise).
      score_fn: ``(x (b, *d), t (b,) float) -> score (b, *d)``.
      x: ``(b, *d)`` data.
      sde: a :class:`VPSDE`, :class:`SubVPSDE` or :class:`VESDE`.
      likelihood_weighting: use ``g^2`` weighting.
      eps: smallest time, in (0, T).
      t: optional ``(b,)`` float times instead of uniform draws.

    Returns:
      ``(b,)`` per-example loss.
    """
    check_data("x", x)
    eps = _checks.positive_float("eps", eps)
    if eps >= sde.T:
        raise ValueError(f"eps must be in (0, {sde.T}), got {eps}")
    b = x.shape[0]
    key_t, key_n = jax.random.split(key)
    if t is None:
        t = jax.random.uniform(key_t, (b,), jnp.float32, eps, sde.T)
    check_times(t, batch=b)
    z = jax.random.normal(key_n, x.shape, x.dtype)
    mean, std = sde.marginal(t)
    score = score_fn(_bcast(mean, x) * x + _bcast(std, x) * z, t)
    _check_output("score_fn", score, x)
    if not likelihood_weighting:
        return 0.5 * _sum_event(jnp.square(_bcast(std, x) * score + z))
    _, g = sde.sde(x, t)
    return 0.5 * jnp.square(g) * _sum_event(jnp.square(score + z / _bcast(std, x)))
