"""Diffusion models as frozen dataclasses of a network and hyper-parameters.

Three families on the functions of ``objectives``, ``sampling`` and ``likelihood``:

* :class:`DDPM` -- discrete-time noise prediction (Ho et al., 2020); ancestral
  ("ddpm") and DDIM sampling; optional classifier-free guidance (Ho & Salimans, 2022).
  ``log_prob`` is the discrete variational bound (``log_prob_kind = "vlb"``).
* :class:`NCSN` -- noise-conditional score network (Song & Ermon, 2019) with
  annealed Langevin sampling; no likelihood (``log_prob_kind = "none"``).
* :class:`ScoreSDE` -- continuous-time score model (Song et al., 2021) with
  predictor-corrector and probability-flow ODE sampling; ``log_prob`` is the
  probability-flow ODE estimate (``log_prob_kind = "ode_estimate"``).

Data ranges (``data_range``):

* ``"unit"`` (images): batches arrive in ``[0, 1]`` float32; the models work on
  ``2 x - 1`` in ``[-1, 1]`` and ``sample`` maps back and clips to ``[0, 1]``.
* ``"identity"`` (toy 2-D data): data are used unscaled and samples are returned unscaled.

The network is a linen module called as ``network.apply(params, x, c, y)`` with
``x (b, *data_shape)`` in model space, ``c (b,)`` float conditioning scalar and ``y``
``(b,)`` int labels or ``None``; see each class for what ``c`` is. Batches are an array
``(b, *data_shape)`` or a dict ``{"x": ..., "y": labels}``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._checks import batch_x
from genjax.diffusion import likelihood as lik
from genjax.diffusion import objectives as obj
from genjax.diffusion import sampling as smp
from genjax.diffusion import schedules as sch
from genjax.nn.denoiser import MLPDenoiser
from genjax.nn.embeddings import check_labels
from genjax.nn.unet import UNet, check_image_size
from genjax.types import Array, Batch, Metrics, Params, PRNGKeyArray

DATA_RANGES = ("unit", "identity")
DDPM_SAMPLERS = ("ddpm", "ddim")
SDE_SAMPLERS = ("pc", "ode")
NCSN_SAMPLERS = ("langevin",)

#: continuous time ``t`` in [0, 1] is fed to the network as ``TIME_SCALE * t`` (score_sde)
TIME_SCALE = 999.0


# ---------------------------------------------------------------------- shared helpers
def _init_common(model) -> None:
    object.__setattr__(model, "data_shape", tuple(int(d) for d in model.data_shape))
    if not model.data_shape:
        raise ValueError("data_shape must have at least one dimension, e.g. (2,) or (28, 28, 1)")
    for d in model.data_shape:
        _checks.positive_int("data_shape entries", d)
    _checks.one_of("data_range", model.data_range, DATA_RANGES)
    if not isinstance(model.network, nn.Module):
        raise ValueError(f"network must be a flax.linen Module, got {type(model.network).__name__}")


def _to_model(model, x: Array) -> Array:
    """Data -> model space: ``2 x - 1`` for ``"unit"`` data, ``x`` otherwise."""
    return 2.0 * x - 1.0 if model.data_range == "unit" else x


def _to_data(model, x: Array) -> Array:
    """Model space -> data: ``clip((x + 1) / 2, 0, 1)`` for ``"unit"`` data, ``x`` otherwise."""
    return jnp.clip(0.5 * (x + 1.0), 0.0, 1.0) if model.data_range == "unit" else x


def _check_x(model, batch: Batch, name: str) -> Array:
    """Shape, dtype, finiteness and (``"unit"``, concrete) the [0, 1] range of the data."""
    x = batch_x(batch)
    _checks.batch_shape(name, x, model.data_shape)
    _checks.finite(name, x)
    if model.data_range == "unit" and _checks.is_concrete(x):
        a = np.asarray(x)
        if a.min() < 0.0 or a.max() > 1.0:
            raise ValueError(
                f"{name} must lie in [0, 1] for data_range='unit' (images), got values in "
                f"[{a.min():.3g}, {a.max():.3g}]; rescale it or build the model with data_range='identity'"
            )
    return x


def _check_params(model, params, name: str = "params") -> None:
    """Raises ``ValueError`` unless ``params`` has the tree and leaf shapes of ``model.init``'s
    output (``jax.eval_shape``, cached per model; static, so free under jit)."""
    expected = _checks.expected_params(model, jax.ShapeDtypeStruct((2, *model.data_shape), jnp.float32))
    _checks.check_params(
        name, params, expected, model=f"this {type(model).__name__} (data_shape={model.data_shape})"
    )


def _sample_shape(model, num) -> tuple[int, ...]:
    return (_checks.positive_int("num", num), *model.data_shape)


def _finish(model, out, return_trajectory: bool):
    if return_trajectory:
        samples, traj = out
        return _to_data(model, samples), _to_data(model, traj)
    return _to_data(model, out)


def _steps(steps, default: int | None) -> int | None:
    return default if steps is None else _checks.positive_int("steps", steps)


# ---------------------------------------------------------------------- DDPM
@dataclasses.dataclass(frozen=True, eq=False)
class DDPM:
    """Discrete-time diffusion with an eps-prediction network.

    The network gets the step index ``t`` in ``{0..T-1}`` as a float (``c = t``) and
    predicts the noise: ``eps_hat = network(x_t, t, y)``. Training minimises DDPM's
    "simple" loss (``objectives.eps_matching_loss``, ``t ~ U{0..T-1}``).

    Classifier-free guidance (``num_classes`` set): training replaces each label by the
    null label ``num_classes`` with probability ``p_uncond``; sampling with labels uses
    ``(1 + w) eps(x, y) - w eps(x, null)`` (``w = guidance``; ``w = 0`` is the plain
    conditional model) and without labels the unconditional (null-label) model.

    ``log_prob`` is minus the discrete variational bound ``objectives.vlb_terms``
    (``log_prob_kind = "vlb"``, a lower bound on log-likelihood, one noise draw per
    step, ``T`` network calls): for ``"unit"`` (image) data the discretized-Gaussian
    decoder on the 256-level grid, i.e. a bound on ``log P(x)`` of the 8-bit image;
    for ``"identity"`` data the Gaussian decoder, a bound on the log-density of ``x``.
    (The probability-flow ODE would need the continuous SDE matching the schedule;
    the discrete bound is the likelihood the DDPM paper reports, so we use it.)

    Attributes:
      network: module ``(x (b, *data_shape), t (b,) float, y (b,) int | None) -> (b, *data_shape)``.
      data_shape: one example's shape, e.g. ``(2,)`` or ``(28, 28, 1)``.
      schedule: the ``T``-step ``DiscreteSchedule``.
      num_classes: label conditioning with classifier-free guidance (``None``: off).
      p_uncond: label-drop probability in training.
      default_sampler: ``"ddpm"`` (ancestral, all ``T`` steps) or ``"ddim"``.
      data_range: ``"unit"`` (images in [0, 1]) or ``"identity"``.
      variance: reverse-step variance, ``"beta"`` or ``"posterior"`` (beta-tilde).
      num_levels: grid size of the discretized decoder of the image VLB.
    """

    network: nn.Module
    data_shape: tuple[int, ...]
    schedule: sch.DiscreteSchedule = dataclasses.field(repr=False)
    num_classes: int | None = None
    p_uncond: float = 0.1
    default_sampler: str = "ddpm"
    data_range: str = "identity"
    variance: str = "beta"
    num_levels: int = 256

    log_prob_kind = "vlb"

    def __post_init__(self):
        _init_common(self)
        if not isinstance(self.schedule, sch.DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule, got {type(self.schedule).__name__}")
        if self.num_classes is not None:
            _checks.positive_int("num_classes", self.num_classes)
        if not (isinstance(self.p_uncond, (int, float)) and 0.0 <= self.p_uncond <= 1.0):
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {self.p_uncond!r}")
        _checks.one_of("default_sampler", self.default_sampler, DDPM_SAMPLERS)
        _checks.one_of("variance", self.variance, ("beta", "posterior"))
        _checks.positive_int("num_levels", self.num_levels)

    @property
    def num_steps(self) -> int:
        """``T``."""
        return self.schedule.num_steps

    @property
    def null_label(self) -> int | None:
        """The unconditional label ``num_classes`` (``None`` for an unconditional model)."""
        return self.num_classes

    # ------------------------------------------------------------------ checks
    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite values,
        ``"unit"`` data outside [0, 1], or (conditional model) missing / out-of-range labels."""
        x = _check_x(self, batch, name)
        self._batch_labels(batch, x.shape[0], name)

    def _batch_labels(self, batch: Batch, b: int, name: str) -> Array | None:
        if self.num_classes is None:
            return None  # labels in the batch are ignored by an unconditional model
        if not isinstance(batch, dict) or "y" not in batch:
            raise ValueError(
                f"{name}: a class-conditional DDPM (num_classes={self.num_classes}) needs a dict batch "
                "{'x': ..., 'y': labels}"
            )
        check_labels(batch["y"], b, self.num_classes, name=f"{name}['y']", allow_null=False)
        return jnp.asarray(batch["y"], jnp.int32)

    def _labels(self, labels, num: int) -> Array | None:
        if labels is None:
            return None if self.num_classes is None else jnp.full((num,), self.num_classes, jnp.int32)
        if self.num_classes is None:
            raise ValueError("labels given, but the model is unconditional (num_classes=None)")
        if np.ndim(labels) == 0:
            labels = jnp.full((num,), labels, jnp.int32)
        check_labels(labels, num, self.num_classes, name="labels", allow_null=True)
        return jnp.asarray(labels, jnp.int32)

    # ------------------------------------------------------------------ networks
    def eps(self, params: Params, x: Array, t: Array, y: Array | None = None) -> Array:
        """Network noise prediction in model space: ``x (b, *d)``, ``t (b,)`` int -> ``(b, *d)``."""
        return self.network.apply(params, x, jnp.asarray(t, jnp.float32), y)

    def eps_fn(self, params: Params, *, labels: Array | None = None, guidance=0.0):
        """The sampler's ``eps_fn(x, t_int)``, closing over params, labels and guidance.

        Labels ``(b,)`` (or ``None`` for the null label on a conditional model). With
        ``guidance`` not the Python number 0 both the conditional and the null-label
        predictions are made (one batched call) and combined by
        ``sampling.classifier_free_guidance``.
        """
        static_zero = isinstance(guidance, (int, float)) and guidance == 0
        if labels is None or static_zero:
            return lambda x, t: self.eps(params, x, t, labels)

        def guided(x, t):
            b = x.shape[0]
            null = jnp.full((b,), self.num_classes, jnp.int32)
            out = self.eps(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([labels, null]))
            return smp.classifier_free_guidance(out[:b], out[b:], guidance)

        return guided

    def drop_labels(self, key: PRNGKeyArray, y: Array) -> Array:
        """Replaces each label by the null label with probability ``p_uncond``, ``(b,)``."""
        drop = jax.random.bernoulli(key, self.p_uncond, np.shape(y))
        return jnp.where(drop, self.num_classes, y).astype(jnp.int32)

    # ------------------------------------------------------------------ model API
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Network parameters from an example batch."""
        x = _check_x(self, batch, "batch")
        b = x.shape[0]
        y = None if self.num_classes is None else jnp.zeros((b,), jnp.int32)
        return self.network.init(key, jnp.asarray(x, jnp.float32), jnp.zeros((b,), jnp.float32), y)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean eps-matching loss (per-dimension squared error) and ``{"loss", "eps_mse"}``."""
        x = _check_x(self, batch, "batch")
        y = self._batch_labels(batch, x.shape[0], "batch")
        _check_params(self, params)
        k_drop, k_loss = jax.random.split(key)
        if y is not None:
            y = self.drop_labels(k_drop, y)
        per_example, metrics = obj.eps_matching_loss(
            k_loss, lambda xt, t: self.eps(params, xt, t, y), _to_model(self, x), schedule=self.schedule
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, **metrics}

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        labels: Array | int | None = None,
        guidance=0.0,
        return_trajectory: bool = False,
    ):
        """``num`` samples ``(num, *data_shape)`` in the data range.

        Args:
          sampler: ``"ddpm"`` (ancestral, all ``T`` steps; ``steps`` must be ``None`` or
            ``T``) or ``"ddim"`` (``steps <= T`` evenly spaced steps, default
            ``min(T, 50)``, stochasticity ``eta``); default ``default_sampler``.
          labels: ``(num,)`` ints or one int (conditional model); ``None``: unconditional.
          guidance: classifier-free guidance weight ``w`` (0: plain conditional).
          return_trajectory: also return the sampler's trajectory
            ``(frames, num, *data_shape)``, mapped to the data range.

        Raises:
          ValueError: unknown sampler, ``steps > T``, bad labels.
        """
        sampler = _checks.one_of("sampler", self.default_sampler if sampler is None else sampler, DDPM_SAMPLERS)
        shape = _sample_shape(self, num)
        T = self.num_steps
        steps = _steps(steps, T if sampler == "ddpm" else min(T, 50))
        if sampler == "ddpm" and steps != T:
            raise ValueError(f"the 'ddpm' sampler runs all T={T} steps, got steps={steps}; use sampler='ddim'")
        if steps > T:
            raise ValueError(f"steps must be <= T={T} for DDIM, got steps={steps}")
        _check_params(self, params)
        eps_fn = self.eps_fn(params, labels=self._labels(labels, shape[0]), guidance=guidance)
        clip = (-1.0, 1.0) if self.data_range == "unit" else None
        if sampler == "ddpm":
            out = smp.ddpm_sample(
                key, eps_fn, shape, schedule=self.schedule, variance=self.variance,
                clip_denoised=clip, return_trajectory=return_trajectory,
            )
        else:
            out = smp.ddim_sample(
                key, eps_fn, shape, schedule=self.schedule, num_steps=steps, eta=eta,
                return_trajectory=return_trajectory,
            )
        return _finish(self, out, return_trajectory)

    def vlb(self, params: Params, key: PRNGKeyArray, x: Array, *, labels: Array | None = None) -> dict[str, Array]:
        """``objectives.vlb_terms`` of ``x`` (data range), each ``(b,)`` nats."""
        x = _check_x(self, x, "x")
        _check_params(self, params)
        eps_fn = self.eps_fn(params, labels=self._labels(labels, x.shape[0]))
        decoder = "discretized" if self.data_range == "unit" else "gaussian"
        return obj.vlb_terms(
            key, eps_fn, _to_model(self, x), schedule=self.schedule, variance=self.variance,
            decoder=decoder, num_levels=self.num_levels,
        )

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array, *, labels: Array | None = None) -> Array:
        """Minus the discrete VLB, ``(b,)`` nats -- a single-sample estimate of a lower bound.

        ``"unit"`` data: a bound on ``log P(x)`` of the ``num_levels``-level image
        (discretized decoder); ``"identity"`` data: on the log-density of ``x``.
        """
        return -self.vlb(params, key, x, labels=labels)["total"]

    def vlb_bits_per_dim(self, params: Params, key: PRNGKeyArray, x: Array, *, labels: Array | None = None) -> Array:
        """The VLB in bits per dimension, ``total / (D ln 2)``, ``(b,)``."""
        return self.vlb(params, key, x, labels=labels)["total"] / (math.prod(self.data_shape) * math.log(2.0))

    def vp_score(self, params: Params):
        """The eps network read as a VP-SDE score in model space: ``(score_fn, sde)``.

        ``score(x, t) = -eps(x, T t - 1) / std(t)`` with ``std`` the marginal std of
        ``VPSDE(T beta_1, T beta_T)`` (``VPSDE(0.1, 20)`` for DDPM's linear schedule): step
        index ``i`` holds the marginal at ``t = (i + 1) / T``. Gives the DDPM a
        probability-flow ODE likelihood (``likelihood.ode_log_prob(key, score_fn, x, sde=sde)``),
        an estimate for a model that never saw continuous times.
        """
        betas = np.asarray(self.schedule.betas, np.float64)
        T = len(betas)
        sde = sch.VPSDE(beta_min=float(T * betas[0]), beta_max=float(T * betas[-1]))

        def score(x, t):
            _, std = sde.marginal(t)
            return -self.eps(params, x, T * t - 1.0) / std.reshape((-1,) + (1,) * (x.ndim - 1))

        return score, sde

    def denoise_trajectory(
        self, params: Params, key: PRNGKeyArray, x0: Array, *, num_frames: int = 8, labels: Array | None = None
    ) -> dict[str, Array]:
        """Noised data and the network's one-shot denoising at ``num_frames`` evenly spaced steps.

        Returns ``{"t": (F,) int, "x_t": (F, b, *d), "x0_hat": (F, b, *d)}`` in the data range
        (for a strip picture: row ``x_t`` above row ``x0_hat``).
        """
        x0 = _check_x(self, x0, "x0")
        num_frames = _checks.positive_int("num_frames", num_frames)
        _check_params(self, params)
        b = x0.shape[0]
        eps_fn = self.eps_fn(params, labels=self._labels(labels, b))
        ts = np.linspace(0, self.num_steps - 1, num_frames).round().astype(np.int32)
        xm = _to_model(self, x0)

        def frame(k, t_scalar):
            t = jnp.full((b,), t_scalar, jnp.int32)
            x_t, _ = obj.q_sample(k, xm, t, self.schedule)
            return x_t, obj.predict_x0(self.schedule, x_t, t, eps_fn(x_t, t))

        x_t, x0_hat = jax.vmap(frame)(jax.random.split(key, num_frames), jnp.asarray(ts))
        return {"t": jnp.asarray(ts), "x_t": _to_data(self, x_t), "x0_hat": _to_data(self, x0_hat)}


# ---------------------------------------------------------------------- NCSN
@dataclasses.dataclass(frozen=True, eq=False)
class NCSN:
    """Noise-conditional score network with annealed Langevin sampling.

    ``score(x, sigma) = network(x, c(sigma)) / sigma`` (the NCSNv2 parameterisation),
    with the noise level fed as ``c(sigma) = 999 log(sigma / sigma_min) /
    log(sigma_max / sigma_min)`` (0 for one level), so it spans the range of the
    time embedding like a DDPM step index. Training: ``objectives.dsm_loss``
    (``sigma^2``-weighted denoising score matching, level ``~ U``).

    ``log_prob`` is not available (``log_prob_kind = "none"``): the network is trained
    only at the discrete levels ``sigmas``, which define no density.

    Attributes:
      network: module ``(x, c (b,) float, y=None) -> (b, *data_shape)``.
      data_shape: one example's shape.
      sigmas: ``(L,)`` decreasing noise levels (``schedules.geometric_sigmas``).
      data_range: ``"unit"`` or ``"identity"``.
      steps_per_sigma, step_size: annealed Langevin defaults.
    """

    network: nn.Module
    data_shape: tuple[int, ...]
    sigmas: Array = dataclasses.field(repr=False)
    data_range: str = "identity"
    steps_per_sigma: int = 100
    step_size: float = 2e-5

    log_prob_kind = "none"

    def __post_init__(self):
        _init_common(self)
        sch.check_sigmas(self.sigmas)
        s = np.asarray(self.sigmas, np.float64)
        if s.shape[0] > 1 and not np.all(np.diff(s) < 0):
            raise ValueError("sigmas must be strictly decreasing (largest noise level first)")
        object.__setattr__(self, "sigmas", jnp.asarray(s, jnp.float32))
        _checks.positive_int("steps_per_sigma", self.steps_per_sigma)
        _checks.positive_float("step_size", self.step_size)

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite or out-of-range values."""
        _check_x(self, batch, name)

    def noise_input(self, sigma: Array) -> Array:
        """The network's conditioning scalar ``c(sigma)``, ``(b,)``."""
        s = np.asarray(self.sigmas)  # a constant, also under jit
        s_max, s_min = float(s[0]), float(s[-1])
        if s_max == s_min:
            return jnp.zeros_like(sigma)
        return TIME_SCALE * jnp.log(sigma / s_min) / math.log(s_max / s_min)

    def score(self, params: Params, x: Array, sigma: Array) -> Array:
        """``score(x, sigma)``, ``x (b, *d)`` in model space, ``sigma (b,)`` -> ``(b, *d)``."""
        out = self.network.apply(params, x, self.noise_input(sigma), None)
        return out / sch._bcast(sigma, x)

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        x = _check_x(self, batch, "batch")
        return self.network.init(key, jnp.asarray(x, jnp.float32), jnp.zeros((x.shape[0],), jnp.float32), None)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean denoising score-matching loss (``objectives.dsm_loss``) and ``{"loss", "dsm"}``."""
        x = _check_x(self, batch, "batch")
        _check_params(self, params)
        per_example = obj.dsm_loss(
            key, lambda xt, s: self.score(params, xt, s), _to_model(self, x), sigmas=self.sigmas
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, "dsm": loss}

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        sampler: str = "langevin",
        steps: int | None = None,
        step_size: float | None = None,
        denoise: bool = True,
        return_trajectory: bool = False,
    ):
        """Annealed Langevin samples ``(num, *data_shape)`` in the data range.

        ``steps`` is the number of Langevin steps per noise level (default
        ``steps_per_sigma``); ``denoise`` adds the final Tweedie step at ``sigma_L``.
        """
        _checks.one_of("sampler", sampler, NCSN_SAMPLERS)
        shape = _sample_shape(self, num)
        steps = _steps(steps, self.steps_per_sigma)
        step_size = self.step_size if step_size is None else _checks.positive_float("step_size", step_size)
        _check_params(self, params)
        out = smp.annealed_langevin_sample(
            key, lambda x, s: self.score(params, x, s), shape, sigmas=self.sigmas,
            steps_per_sigma=steps, step_size=step_size, denoise=denoise, return_trajectory=return_trajectory,
        )
        return _finish(self, out, return_trajectory)

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Always raises, like a GAN's: NCSN defines no density (``log_prob_kind = "none"``)."""
        raise ValueError(
            "NCSN defines no likelihood: its score is trained only at the discrete noise levels "
            "(log_prob_kind='none'). Use ScoreSDE with a VESDE for a probability-flow ODE likelihood "
            "or DDPM for a variational bound."
        )


# ---------------------------------------------------------------------- ScoreSDE
@dataclasses.dataclass(frozen=True, eq=False)
class ScoreSDE:
    """Continuous-time score model on a VP, sub-VP or VE SDE.

    Noise-prediction parameterisation: ``score(x, t) = -network(x, 999 t) / std(t)``
    with ``std(t)`` the marginal standard deviation of the SDE, so the network predicts
    the noise ``z`` of ``x_t = mean(t) x0 + std(t) z``. Training:
    ``objectives.score_sde_loss`` (``t ~ U(eps, 1)``; ``lambda = std^2`` or, with
    ``likelihood_weighting``, ``g^2``).

    ``log_prob`` is the probability-flow ODE ESTIMATE of ``likelihood.ode_log_prob``
    (``log_prob_kind = "ode_estimate"``): fixed-step RK4 from ``t = eps`` to 1 with a
    Hutchinson (default for more than 8 dimensions) or exact trace; it is the
    density of the model's ODE, not a bound, and carries discretisation and (for
    Hutchinson) Monte-Carlo error. For ``"unit"`` data the ``2 x - 1`` map's
    ``D log 2`` is added, so it is a density on ``[0, 1]^D``.

    Attributes:
      network: module ``(x, c (b,) float, y=None) -> (b, *data_shape)``.
      data_shape: one example's shape.
      sde: ``VPSDE``, ``SubVPSDE`` or ``VESDE``.
      likelihood_weighting: train with ``g^2`` weighting.
      eps: smallest time of training, sampling and likelihood.
      data_range: ``"unit"`` or ``"identity"``.
      default_sampler: ``"pc"`` (predictor-corrector) or ``"ode"`` (probability flow, RK4).
    """

    network: nn.Module
    data_shape: tuple[int, ...]
    sde: sch.SDE
    likelihood_weighting: bool = False
    eps: float = 1e-5
    data_range: str = "identity"
    default_sampler: str = "pc"

    log_prob_kind = "ode_estimate"

    def __post_init__(self):
        _init_common(self)
        if not isinstance(self.sde, (sch.VPSDE, sch.SubVPSDE, sch.VESDE)):
            raise ValueError(f"sde must be a VPSDE, SubVPSDE or VESDE, got {type(self.sde).__name__}")
        _checks.positive_float("eps", self.eps)
        if self.eps >= self.sde.T:
            raise ValueError(f"eps must be in (0, {self.sde.T}), got {self.eps}")
        _checks.one_of("default_sampler", self.default_sampler, SDE_SAMPLERS)

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite or out-of-range values."""
        _check_x(self, batch, name)

    def score(self, params: Params, x: Array, t: Array) -> Array:
        """``score(x, t) = -network(x, 999 t) / std(t)``; ``x (b, *d)`` model space, ``t (b,)``."""
        _, std = self.sde.marginal(t)
        out = self.network.apply(params, x, TIME_SCALE * t, None)
        return -out / sch._bcast(std, x)

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        x = _check_x(self, batch, "batch")
        return self.network.init(key, jnp.asarray(x, jnp.float32), jnp.zeros((x.shape[0],), jnp.float32), None)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean continuous denoising score-matching loss and ``{"loss", "dsm"}``."""
        x = _check_x(self, batch, "batch")
        _check_params(self, params)
        per_example = obj.score_sde_loss(
            key, lambda xt, t: self.score(params, xt, t), _to_model(self, x), sde=self.sde,
            likelihood_weighting=self.likelihood_weighting, eps=self.eps,
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, "dsm": loss}

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        snr: float = 0.16,
        corrector_steps: int = 1,
        denoise: bool = True,
        return_trajectory: bool = False,
    ):
        """Samples ``(num, *data_shape)`` in the data range.

        Args:
          sampler: ``"pc"`` (reverse-diffusion predictor + Langevin corrector, default
            1000 steps) or ``"ode"`` (probability-flow ODE, RK4, default 100 steps).
          steps: number of time steps.
          snr, corrector_steps, denoise: predictor-corrector settings.
        """
        sampler = _checks.one_of("sampler", self.default_sampler if sampler is None else sampler, SDE_SAMPLERS)
        shape = _sample_shape(self, num)
        _check_params(self, params)
        score_fn = lambda x, t: self.score(params, x, t)  # noqa: E731
        if sampler == "pc":
            out = smp.pc_sample(
                key, score_fn, shape, sde=self.sde, num_steps=_steps(steps, 1000), snr=snr,
                corrector_steps=corrector_steps, denoise=denoise, return_trajectory=return_trajectory,
            )
        else:
            out = smp.ode_sample(
                key, score_fn, shape, sde=self.sde, num_steps=_steps(steps, 100),
                return_trajectory=return_trajectory,
            )
        return _finish(self, out, return_trajectory)

    def log_prob(
        self,
        params: Params,
        key: PRNGKeyArray,
        x: Array,
        *,
        num_steps: int = 100,
        trace: str | None = None,
        num_probes: int = 1,
    ) -> Array:
        """Probability-flow ODE ESTIMATE of ``log p(x)``, ``(b,)`` nats (see the class docstring).

        Args:
          num_steps: RK4 steps from ``eps`` to 1.
          trace: ``"exact"`` or ``"hutchinson"``; default exact for ``D <= 8``.
          num_probes: Hutchinson probes.
        """
        x = _check_x(self, x, "x")
        d = math.prod(self.data_shape)
        trace = ("exact" if d <= 8 else "hutchinson") if trace is None else trace
        _checks.one_of("trace", trace, ("exact", "hutchinson"))
        _check_params(self, params)
        logp = lik.ode_log_prob(
            key, lambda xx, t: self.score(params, xx, t), _to_model(self, x), sde=self.sde,
            num_steps=_checks.positive_int("num_steps", num_steps), trace=trace,
            num_probes=_checks.positive_int("num_probes", num_probes), eps=self.eps,
        )
        return logp + d * math.log(2.0) if self.data_range == "unit" else logp


# ---------------------------------------------------------------------- constructors
def _discrete_schedule(schedule: str, T: int) -> sch.DiscreteSchedule:
    """``"linear"`` (DDPM's 1e-4..0.02 at T=1000, scaled by 1000/T so that abar_T stays
    small for short chains) or ``"cosine"``."""
    T = _checks.positive_int("T", T)
    _checks.one_of("schedule", schedule, ("linear", "cosine"))
    if schedule == "cosine":
        return sch.cosine_schedule(T)
    scale = 1000.0 / T
    return sch.linear_schedule(T, beta_min=min(1e-4 * scale, 0.5), beta_max=min(2e-2 * scale, 0.999))


def _make_sde(sde, *, ve_sigma_max: float):
    if not isinstance(sde, str):
        return sde
    _checks.one_of("sde", sde, ("vp", "subvp", "ve"))
    if sde == "vp":
        return sch.VPSDE()
    if sde == "subvp":
        return sch.SubVPSDE()
    return sch.VESDE(sigma_min=0.01, sigma_max=ve_sigma_max)


def _image_shape(data_shape, channel_mult) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C) for an image model, got {shape}")
    check_image_size(shape[0], shape[1], len(tuple(channel_mult)))
    return shape


def ddpm_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    T: int = 100,
    schedule: str = "linear",
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    default_sampler: str = "ddpm",
    variance: str = "beta",
) -> DDPM:
    """DDPM for toy 2-D (flat) data with a residual-MLP denoiser; data unscaled."""
    return DDPM(
        MLPDenoiser(tuple(hidden), emb_dim, num_classes),
        (_checks.positive_int("data_dim", data_dim),),
        _discrete_schedule(schedule, T),
        num_classes=num_classes,
        p_uncond=p_uncond,
        default_sampler=default_sampler,
        data_range="identity",
        variance=variance,
    )


def ddpm_image(
    data_shape: Sequence[int],
    *,
    base: int = 32,
    channel_mult: Sequence[int] = (1, 2, 2),
    num_res_blocks: int = 1,
    num_heads: int = 1,
    T: int = 1000,
    schedule: str = "linear",
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    default_sampler: str = "ddpm",
    variance: str = "beta",
) -> DDPM:
    """DDPM for ``(H, W, C)`` images in [0, 1] with a UNet (H, W divisible by
    ``2 ** (len(channel_mult) - 1)``)."""
    shape = _image_shape(data_shape, channel_mult)
    net = UNet(base, tuple(channel_mult), num_res_blocks, num_classes, None, num_heads)
    return DDPM(
        net, shape, _discrete_schedule(schedule, T), num_classes=num_classes, p_uncond=p_uncond,
        default_sampler=default_sampler, data_range="unit", variance=variance,
    )


def ncsn_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    sigma_max: float = 10.0,
    sigma_min: float = 0.01,
    num_sigmas: int = 20,
    steps_per_sigma: int = 100,
    step_size: float = 2e-5,
) -> NCSN:
    """NCSN for toy 2-D data: geometric noise levels ``sigma_max -> sigma_min``
    (``sigma_max`` about the data's diameter, Song & Ermon 2020's rule)."""
    return NCSN(
        MLPDenoiser(tuple(hidden), emb_dim),
        (_checks.positive_int("data_dim", data_dim),),
        sch.geometric_sigmas(sigma_max, sigma_min, num_sigmas),
        data_range="identity",
        steps_per_sigma=steps_per_sigma,
        step_size=step_size,
    )


def score_sde_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    sde="vp",
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    default_sampler: str = "pc",
) -> ScoreSDE:
    """Score SDE for toy 2-D data. ``sde``: ``"vp"``, ``"subvp"``, ``"ve"``
    (``sigma_max = 10``, about the diameter of the toy densities) or an SDE object."""
    return ScoreSDE(
        MLPDenoiser(tuple(hidden), emb_dim),
        (_checks.positive_int("data_dim", data_dim),),
        _make_sde(sde, ve_sigma_max=10.0),
        likelihood_weighting=likelihood_weighting,
        eps=eps,
        data_range="identity",
        default_sampler=default_sampler,
    )


def score_sde_image(
    data_shape: Sequence[int],
    *,
    base: int = 32,
    channel_mult: Sequence[int] = (1, 2, 2),
    num_res_blocks: int = 1,
    num_heads: int = 1,
    sde="vp",
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    default_sampler: str = "pc",
) -> ScoreSDE:
    """Score SDE for ``(H, W, C)`` images in [0, 1] with a UNet. ``sde``: ``"vp"``,
    ``"subvp"``, ``"ve"`` (``sigma_max = 50``) or an SDE object."""
    shape = _image_shape(data_shape, channel_mult)
    return ScoreSDE(
        UNet(base, tuple(channel_mult), num_res_blocks, None, None, num_heads),
        shape,
        _make_sde(sde, ve_sigma_max=50.0),
        likelihood_weighting=likelihood_weighting,
        eps=eps,
        data_range="unit",
        default_sampler=default_sampler,
    )
