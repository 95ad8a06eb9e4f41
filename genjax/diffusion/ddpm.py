"""DDPM: discrete-time noise prediction (Ho et al., 2020) with ancestral and DDIM
sampling, optional classifier-free guidance (Ho & Salimans, 2022) and the discrete
variational bound as ``log_prob``."""

from __future__ import annotations

import dataclasses
import math
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.diffusion import objectives as obj
from genjax.diffusion import sampling as smp
from genjax.diffusion import schedules as sch
from genjax.diffusion._common import (
    DDPM_SAMPLERS,
    _check_params,
    _check_x,
    _finish,
    _init_common,
    _sample_shape,
    _steps,
    _to_data,
    _to_model,
)
from genjax.nn.embeddings import check_labels
from genjax.types import (
    NO_CONDITION,
    Array,
    Batch,
    Condition,
    Metrics,
    Params,
    PRNGKeyArray,
    check_cond,
    check_guidance,
)


@dataclasses.dataclass(frozen=True, eq=False)
class DDPM:
    """Discrete-time diffusion with an eps-prediction network.

    The network gets the step index ``t`` in ``{0..T-1}`` as a float (``c = t``) and
    predicts the noise: ``eps_hat = network(x_t, t, y)``. Training minimises DDPM's
    "simple" loss (``objectives.eps_matching_loss``, ``t ~ U{0..T-1}``).

    Classifier-free guidance (``num_classes`` set; ``condition`` is then class labels):
    batches are ``{"x": ..., "cond": labels}``; training replaces each label by the null
    label ``num_classes`` with probability ``p_uncond``; ``sample(..., cond=y,
    guidance=w)`` uses ``sampling.classifier_free_guidance``, ``(1 + w) eps(x, y) - w
    eps(x, null)`` (``w = 0`` or ``None``: the plain conditional model), and ``cond=None``
    the unconditional (null-label) model. (``labels=`` and a batch's ``"y"`` are
    deprecated aliases of ``cond``.)

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
    def condition(self) -> Condition:
        """Class labels in ``[0, num_classes)`` for a conditional model, else none."""
        return NO_CONDITION if self.num_classes is None else Condition("labels", num_classes=self.num_classes)

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
        key = "cond" if isinstance(batch, dict) and "cond" in batch else "y"  # "y": deprecated alias
        if not isinstance(batch, dict) or key not in batch:
            raise ValueError(
                f"{name}: a class-conditional DDPM (num_classes={self.num_classes}) needs a dict batch "
                "{'x': ..., 'cond': labels}"
            )
        return check_cond(self.condition, batch[key], b, name=f"{name}[{key!r}]")

    def _cond(self, cond, labels, num: int) -> Array | None:
        """The labels of a call: ``cond`` (checked by ``types.check_cond``) or the deprecated
        ``labels`` (which also accepts the null label); ``None``: null labels."""
        if labels is None:
            if cond is None:
                return None if self.num_classes is None else jnp.full((num,), self.num_classes, jnp.int32)
            return check_cond(self.condition, cond, num)
        if cond is not None:
            raise ValueError("give cond or its deprecated alias labels, not both")
        warnings.warn("labels= is deprecated; use cond=", DeprecationWarning, stacklevel=3)
        return self._labels(labels, num)

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

    def eps_fn(self, params: Params, *, cond: Array | None = None, guidance=0.0, labels: Array | None = None):
        """The sampler's ``eps_fn(x, t_int)``, closing over params, labels and guidance.

        ``cond``: labels ``(b,)`` (or ``None`` for the null label on a conditional model;
        ``labels`` is a deprecated alias). With ``guidance`` not ``None`` or the Python
        number 0 both the conditional and the null-label predictions are made (one batched
        call) and combined by ``sampling.classifier_free_guidance``.
        """
        labels = cond if labels is None else labels
        guidance = 0.0 if guidance is None else guidance
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
        cond: Array | int | None = None,
        guidance=None,
        return_trajectory: bool = False,
        labels: Array | int | None = None,
    ):
        """``num`` samples ``(num, *data_shape)`` in the data range.

        Args:
          sampler: ``"ddpm"`` (ancestral, all ``T`` steps; ``steps`` must be ``None`` or
            ``T``) or ``"ddim"`` (``steps <= T`` evenly spaced steps, default
            ``min(T, 50)``, stochasticity ``eta``); default ``default_sampler``.
          cond: class labels ``(num,)`` in ``[0, num_classes)`` or one int (conditional
            model, ``condition``); ``None``: the unconditional (null-label) model.
          guidance: classifier-free guidance weight ``w >= 0`` (``None`` or 0: plain
            conditional); needs ``cond``.
          labels: deprecated alias of ``cond`` (also takes the null label ``num_classes``).
          return_trajectory: also return the sampler's trajectory
            ``(frames, num, *data_shape)``, mapped to the data range.

        Raises:
          ValueError: unknown sampler, ``steps > T``, a bad ``cond`` or ``guidance``.
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
        y = self._cond(cond, labels, shape[0])
        if labels is None:
            guidance = check_guidance(guidance, self.condition, cond)
        eps_fn = self.eps_fn(params, cond=y, guidance=guidance)
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

    def vlb(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None
    ) -> dict[str, Array]:
        """``objectives.vlb_terms`` of ``x`` (data range), each ``(b,)`` nats; ``cond``: labels
        (``None``: the null-label model of a conditional DDPM)."""
        x = _check_x(self, x, "x")
        _check_params(self, params)
        eps_fn = self.eps_fn(params, cond=self._cond(cond, labels, x.shape[0]))
        decoder = "discretized" if self.data_range == "unit" else "gaussian"
        return obj.vlb_terms(
            key, eps_fn, _to_model(self, x), schedule=self.schedule, variance=self.variance,
            decoder=decoder, num_levels=self.num_levels,
        )

    def log_prob(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None
    ) -> Array:
        """Minus the discrete VLB, ``(b,)`` nats -- a single-sample estimate of a lower bound.

        ``"unit"`` data: a bound on ``log P(x)`` of the ``num_levels``-level image
        (discretized decoder); ``"identity"`` data: on the log-density of ``x``.
        """
        return -self.vlb(params, key, x, cond=cond, labels=labels)["total"]

    def vlb_bits_per_dim(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None
    ) -> Array:
        """The VLB in bits per dimension, ``total / (D ln 2)``, ``(b,)``."""
        return self.vlb(params, key, x, cond=cond, labels=labels)["total"] / (math.prod(self.data_shape) * math.log(2.0))

    def vp_score(self, params: Params):
        """The eps network read as a VP-SDE score in model space: ``(score_fn, sde)``.

        ``sde = schedules.DiscreteVPSDE.from_schedule(schedule)``: the VP-SDE whose marginals
        at ``t = (i + 1) / T`` are the chain's at step index ``i`` (exactly, for any ``T``);
        ``score(x, t) = -eps(x, T t - 1) / std(t)``. Gives the DDPM a probability-flow ODE
        likelihood (``likelihood.ode_log_prob(key, score_fn, x, sde=sde)``) and PC / ODE
        sampling, an estimate for a model that never saw continuous times.

        (Until issue 17 this read the chain as the linear ``VPSDE(T beta_1, T beta_T)``,
        whose marginal std is off by 41% at ``T = 100`` and 22% at ``T = 200``.)
        """
        sde = sch.DiscreteVPSDE.from_schedule(self.schedule)
        T = sde.num_steps

        def score(x, t):
            _, std = sde.marginal(t)
            return -self.eps(params, x, T * t - 1.0) / std.reshape((-1,) + (1,) * (x.ndim - 1))

        return score, sde

    def denoise_trajectory(
        self,
        params: Params,
        key: PRNGKeyArray,
        x0: Array,
        *,
        num_frames: int = 8,
        cond: Array | None = None,
        labels: Array | None = None,
    ) -> dict[str, Array]:
        """Noised data and the network's one-shot denoising at ``num_frames`` evenly spaced steps.

        Returns ``{"t": (F,) int, "x_t": (F, b, *d), "x0_hat": (F, b, *d)}`` in the data range
        (for a strip picture: row ``x_t`` above row ``x0_hat``).
        """
        x0 = _check_x(self, x0, "x0")
        num_frames = _checks.positive_int("num_frames", num_frames)
        _check_params(self, params)
        b = x0.shape[0]
        eps_fn = self.eps_fn(params, cond=self._cond(cond, labels, b))
        ts = np.linspace(0, self.num_steps - 1, num_frames).round().astype(np.int32)
        xm = _to_model(self, x0)

        def frame(k, t_scalar):
            t = jnp.full((b,), t_scalar, jnp.int32)
            x_t, _ = obj.q_sample(k, xm, t, self.schedule)
            return x_t, obj.predict_x0(self.schedule, x_t, t, eps_fn(x_t, t))

        x_t, x0_hat = jax.vmap(frame)(jax.random.split(key, num_frames), jnp.asarray(ts))
        return {"t": jnp.asarray(ts), "x_t": _to_data(self, x_t), "x0_hat": _to_data(self, x0_hat)}
