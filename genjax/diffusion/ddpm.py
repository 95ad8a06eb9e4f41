"""DDPM: discrete-time noise prediction (Ho et al., 2020) with ancestral and DDIM
sampling, optional classifier-free guidance (Ho & Salimans, 2022) and the discrete
variational bound as ``log_prob``."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable
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
    FAST_SAMPLERS,
    SDE_SAMPLERS,
    _check_params,
    _check_x,
    _fast_steps,
    _finish,
    _init_common,
    _nfe,
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
    token_mask,
)

#: what ``DDPM.sample`` accepts: the chain samplers, through ``vp_score`` the SDE samplers, and
#: the few-step solvers (``sampling.solver_sample`` on the chain read as its DiscreteVPSDE)
SAMPLERS = DDPM_SAMPLERS + SDE_SAMPLERS + FAST_SAMPLERS


@dataclasses.dataclass(frozen=True, eq=False)
class DDPM:
    """Discrete-time diffusion with an eps-prediction network.

    The network gets the step index ``t`` in ``{0..T-1}`` as a float (``c = t``) and
    predicts the noise: ``eps_hat = network(x_t, t, y)``. Training minimises DDPM's
    "simple" loss (``objectives.eps_matching_loss``, ``t ~ U{0..T-1}``).

    Conditioning with classifier-free guidance (Ho & Salimans, 2022), on class labels
    (``num_classes``) or on a token sequence through a frozen text encoder
    (``text_encoder``; Stable Diffusion's). Either way batches are ``{"x": ..., "cond": c}``;
    training replaces each example's condition by the *null condition* with probability
    ``p_uncond`` (:meth:`drop_cond`); ``sample(..., cond=c, guidance=w)`` uses
    ``sampling.classifier_free_guidance``, ``(1 + w) eps(x, c) - w eps(x, null)`` (``w = 0``
    or ``None``: the plain conditional model) from one batched network call, and
    ``cond=None`` the unconditional (null-condition) model. The null condition is the label
    ``num_classes`` or the empty caption ``null_tokens`` padded with ``pad_id``
    (:meth:`null_cond`). (``labels=`` and a batch's ``"y"`` are deprecated aliases of ``cond``.)

    Token conditioning: ``text_encoder(tokens (b, L) int32) -> (b, L, D)`` token states (e.g. a
    trained CLIP's ``text_states`` with its params closed over), frozen (its output goes
    through ``jax.lax.stop_gradient``); the network is called ``network.apply(params, x, t,
    None, context=states, context_mask=types.token_mask(condition, tokens))``, so padding never
    changes the prediction (``nn.UNet(use_context=True)``).

    Sampling: ancestral (``"ddpm"``), DDIM (``"ddim"``) or, with the eps read as a VP-SDE score
    (:meth:`vp_score`), predictor-corrector (``"pc"``) and the probability-flow ODE (``"ode"``),
    each under any condition and guidance. :meth:`edit` (image-to-image, SDEdit) and
    :meth:`inpaint` run the chain samplers from a given image.

    ``log_prob`` is minus the discrete variational bound ``objectives.vlb_terms``
    (``log_prob_kind = "vlb"``, a lower bound on log-likelihood, one noise draw per
    step, ``T`` network calls): for ``"unit"`` (image) data the discretized-Gaussian
    decoder on the 256-level grid, i.e. a bound on ``log P(x)`` of the 8-bit image;
    for ``"identity"`` data the Gaussian decoder, a bound on the log-density of ``x``.
    (The probability-flow ODE would need the continuous SDE matching the schedule;
    the discrete bound is the likelihood the DDPM paper reports, so we use it.)

    Attributes:
      network: module ``(x (b, *data_shape), t (b,) float, y (b,) int | None) -> (b, *data_shape)``
        (with ``text_encoder``: also ``context=``, ``context_mask=`` keywords).
      data_shape: one example's shape, e.g. ``(2,)`` or ``(28, 28, 1)``.
      schedule: the ``T``-step ``DiscreteSchedule``.
      num_classes: label conditioning with classifier-free guidance (``None``: off).
      p_uncond: condition-drop probability in training.
      default_sampler: ``"ddpm"`` (ancestral, all ``T`` steps) or ``"ddim"``.
      data_range: ``"unit"`` (images in [0, 1]) or ``"identity"``.
      variance: reverse-step variance, ``"beta"`` or ``"posterior"`` (beta-tilde).
      num_levels: grid size of the discretized decoder of the image VLB.
      text_encoder: token conditioning: frozen ``tokens (b, L) -> states (b, L, D)``
        (``None``: off; exclusive with ``num_classes``).
      text_condition: the tokens' ``types.Condition`` (kind ``"tokens"``: vocab_size,
        max_len, pad_id); required with ``text_encoder``.
      null_tokens: the empty caption's tokens, e.g. ``(bos, eos)``; required with
        ``text_encoder``.
      prediction: what the network predicts: ``"eps"`` (the noise; DDPM's "simple" loss) or
        ``"x0"`` (the clean sample; loss ``mean (x0_hat - x0)^2``, metric ``"x0_mse"``, as the
        unCLIP prior). :meth:`eps` converts an x0 prediction to the noise it implies, so every
        sampler, guidance, editing and the VLB work unchanged.
      cond_dim: vector conditioning (``Condition(kind="vector", dim=cond_dim)``, e.g. a CLIP
        image embedding, unCLIP's decoder): the network gets ``y (b, cond_dim)`` floats; the
        null condition is the zero vector (the paper's "zeroing the embedding"). Exclusive with
        ``num_classes`` and ``text_encoder``.
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
    text_encoder: Callable[[Array], Array] | None = dataclasses.field(default=None, repr=False)
    text_condition: Condition | None = None
    null_tokens: tuple[int, ...] | None = None
    prediction: str = "eps"
    cond_dim: int | None = None

    log_prob_kind = "vlb"

    def __post_init__(self):
        _init_common(self)
        if not isinstance(self.schedule, sch.DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule, got {type(self.schedule).__name__}")
        if self.num_classes is not None:
            _checks.positive_int("num_classes", self.num_classes)
        if not (isinstance(self.p_uncond, (int, float)) and 0.0 <= self.p_uncond <= 1.0):
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {self.p_uncond!r}")
        _checks.one_of("default_sampler", self.default_sampler, DDPM_SAMPLERS + FAST_SAMPLERS)
        _checks.one_of("variance", self.variance, ("beta", "posterior"))
        _checks.positive_int("num_levels", self.num_levels)
        _checks.one_of("prediction", self.prediction, obj.PREDICTIONS)
        if self.cond_dim is not None:
            _checks.positive_int("cond_dim", self.cond_dim)
            if self.num_classes is not None or self.text_encoder is not None:
                raise ValueError("cond_dim (vector conditioning) is exclusive with num_classes and text_encoder")
        if (self.text_encoder, self.text_condition, self.null_tokens) != (None, None, None):
            self._check_text()

    def _check_text(self) -> None:
        if self.text_encoder is None:
            raise ValueError("text_condition and null_tokens need a text_encoder (tokens (b, L) -> states (b, L, D))")
        if not callable(self.text_encoder):
            raise TypeError(f"text_encoder must be callable (tokens -> states), got {type(self.text_encoder).__name__}")
        if self.num_classes is not None:
            raise ValueError("num_classes and text_encoder are exclusive: a DDPM is conditioned on labels or on tokens")
        c = self.text_condition
        if not isinstance(c, Condition) or c.kind != "tokens":
            raise ValueError(
                "text_condition must be a types.Condition(kind='tokens', vocab_size=..., max_len=..., pad_id=...) "
                f"when text_encoder is set, got {c!r}"
            )
        null = self.null_tokens
        ok = isinstance(null, (tuple, list)) and len(null) > 0 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < c.vocab_size for v in null
        )
        if not ok or (c.max_len is not None and len(null) > c.max_len) or all(v == c.pad_id for v in null):
            raise ValueError(
                f"null_tokens must be the empty caption's tokens, e.g. (bos, eos): 1 to {c.max_len or 'max_len'} ints in "
                f"[0, {c.vocab_size}), not all pad_id={c.pad_id}, got {null!r}"
            )
        object.__setattr__(self, "null_tokens", tuple(int(v) for v in null))

    @property
    def num_steps(self) -> int:
        """``T``."""
        return self.schedule.num_steps

    @property
    def condition(self) -> Condition:
        """``text_condition`` (tokens), class labels in ``[0, num_classes)``, or none."""
        if self.text_encoder is not None:
            return self.text_condition
        if self.cond_dim is not None:
            return Condition("vector", dim=self.cond_dim)
        return NO_CONDITION if self.num_classes is None else Condition("labels", num_classes=self.num_classes)

    @property
    def null_label(self) -> int | None:
        """The unconditional label ``num_classes`` (``None`` for a model without labels)."""
        return self.num_classes

    # ------------------------------------------------------------------ the null condition
    def null_cond(self, num: int, length: int | None = None) -> Array | None:
        """The null condition of ``num`` examples: ``(num,)`` null labels ``num_classes``,
        ``(num, length)`` tokens (``null_tokens`` padded with ``pad_id``; ``length`` default
        ``len(null_tokens)``) or ``(num, cond_dim)`` zeros; ``None`` for an unconditional model."""
        kind = self.condition.kind
        if kind == "labels":
            return jnp.full((num,), self.num_classes, jnp.int32)
        if kind == "vector":
            return jnp.zeros((num, self.cond_dim), jnp.float32)
        if kind != "tokens":
            return None
        length = len(self.null_tokens) if length is None else length
        row = np.full((length,), self.condition.pad_id, np.int32)
        row[: len(self.null_tokens)] = self.null_tokens
        return jnp.broadcast_to(jnp.asarray(row), (num, length))

    def _with_null(self, cond: Array, negative: Array | None = None) -> tuple[Array, Array]:
        """``(cond, null)`` of one shape, for a batched call or a ``where``: tokens are padded
        with ``pad_id`` to the longer of the caption and ``null_tokens``. ``negative`` (a
        negative prompt's condition, ``(b, ...)``) takes the null condition's place."""
        b = cond.shape[0]
        if self.condition.kind != "tokens":
            return cond, self.null_cond(b) if negative is None else negative
        other = self.null_cond(b) if negative is None else negative
        length = max(cond.shape[1], other.shape[1])
        pad = lambda a: jnp.pad(a, ((0, 0), (0, length - a.shape[1])), constant_values=self.condition.pad_id)
        return pad(cond), pad(other)

    def drop_cond(self, key: PRNGKeyArray, cond: Array) -> Array:
        """Replaces each example's condition (labels ``(b,)``, tokens ``(b, L)`` or vectors
        ``(b, cond_dim)``) by the null condition with probability ``p_uncond`` (caption dropout;
        a vector is zeroed)."""
        b = cond.shape[0]
        drop = jax.random.bernoulli(key, self.p_uncond, (b,))
        cond, null = self._with_null(cond)
        dtype = cond.dtype if self.condition.kind == "vector" else jnp.int32
        return jnp.where(drop.reshape((b,) + (1,) * (cond.ndim - 1)), null.astype(dtype), cond).astype(dtype)

    def drop_labels(self, key: PRNGKeyArray, y: Array) -> Array:
        """Replaces each label by the null label with probability ``p_uncond``, ``(b,)``
        (:meth:`drop_cond` for labels)."""
        return self.drop_cond(key, y)

    # ------------------------------------------------------------------ checks
    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite values,
        ``"unit"`` data outside [0, 1], or (conditional model) a missing / bad condition."""
        x = _check_x(self, batch, name)
        self._batch_cond(batch, x.shape[0], name)

    def _batch_cond(self, batch: Batch, b: int, name: str, *, required: bool = True) -> Array | None:
        kind = self.condition.kind
        if kind == "none":
            return None  # a condition in the batch is rejected by _check_x
        key = "cond" if kind in ("tokens", "vector") or (isinstance(batch, dict) and "cond" in batch) else "y"  # "y": deprecated
        if not isinstance(batch, dict) or key not in batch:
            if not required:
                return None
            what = {"labels": f"class-conditional DDPM (num_classes={self.num_classes})",
                    "vector": f"vector-conditional DDPM (cond_dim={self.cond_dim})"}.get(kind, "text-conditional DDPM")
            raise ValueError(f"{name}: a {what} needs a dict batch {{'x': ..., 'cond': {self.condition.describe('batch')}}}")
        return check_cond(self.condition, batch[key], b, name=f"{name}[{key!r}]")

    def _cond(self, cond, labels, num: int) -> Array | None:
        """The condition of a call: ``cond`` (checked by ``types.check_cond``) or the deprecated
        ``labels`` (which also accepts the null label); ``None``: the null condition."""
        if labels is None:
            return self.null_cond(num) if cond is None else check_cond(self.condition, cond, num)
        if cond is not None:
            raise ValueError("give cond or its deprecated alias labels, not both")
        warnings.warn("labels= is deprecated; use cond=", DeprecationWarning, stacklevel=3)
        if self.condition.kind != "labels":
            kind = self.condition.kind
            what = "unconditional (num_classes=None)" if kind == "none" else f"conditioned on {kind}, not class labels"
            raise ValueError(f"labels given, but the model is {what}; use cond=")
        if np.ndim(labels) == 0:
            labels = jnp.full((num,), labels, jnp.int32)
        check_labels(labels, num, self.num_classes, name="labels", allow_null=True)
        return jnp.asarray(labels, jnp.int32)

    # ------------------------------------------------------------------ networks
    def _call_network(self, fn, x: Array, t: Array, y: Array | None):
        """``fn(x, t, y)``, or for a text-conditional model ``fn(x, t, None, context=states,
        context_mask=mask)`` with the frozen encoder's output for ``y`` (``None``: null tokens;
        ``states`` is whatever the encoder returns, an array or a pytree of arrays, passed to the
        network as it is). A vector-conditional model's ``y=None`` is the zero vector."""
        kind = self.condition.kind
        if kind == "vector" and y is None:
            y = self.null_cond(x.shape[0])
        if kind != "tokens":
            return fn(x, t, y)
        tokens = self.null_cond(x.shape[0]) if y is None else y
        states = jax.lax.stop_gradient(self.text_encoder(tokens))
        return fn(x, t, None, context=states, context_mask=token_mask(self.condition, tokens))

    def eps(self, params: Params, x: Array, t: Array, y: Array | None = None) -> Array:
        """Network noise prediction in model space: ``x (b, *d)``, ``t (b,)`` -> ``(b, *d)``;
        ``y``: labels ``(b,)``, tokens ``(b, L)`` or vectors ``(b, cond_dim)`` (``None``: the null
        condition). With ``prediction="x0"`` the network's clean-sample prediction is converted
        (``objectives.eps_from_x0``)."""
        out = self._raw(params, x, t, y)
        if self.prediction == "x0":
            out = obj.eps_from_x0(x, out, jnp.asarray(t).astype(jnp.int32), self.schedule)
        return out

    def predict_x0(self, params: Params, x: Array, t: Array, y: Array | None = None) -> Array:
        """The clean-sample prediction ``x0_hat`` in model space (``prediction="x0"``: the
        network's output; ``"eps"``: ``(x - sqrt(1 - abar) eps_hat) / sqrt(abar)``)."""
        out = self._raw(params, x, t, y)
        if self.prediction == "x0":
            return out
        abar = self.schedule.alphas_cumprod[jnp.asarray(t).astype(jnp.int32)].reshape((-1,) + (1,) * (x.ndim - 1))
        return (x - jnp.sqrt(1.0 - abar) * out) / jnp.sqrt(abar)

    def _raw(self, params: Params, x: Array, t: Array, y: Array | None) -> Array:
        """The network's output (``prediction``'s quantity)."""
        return self._call_network(functools.partial(self.network.apply, params), x, jnp.asarray(t, jnp.float32), y)

    def eps_fn(self, params: Params, *, cond: Array | None = None, guidance=0.0, labels: Array | None = None,
               negative_cond: Array | None = None):
        """The sampler's ``eps_fn(x, t)``, closing over params, the condition and guidance.

        ``cond``: labels ``(b,)`` or tokens ``(b, L)`` as ``types.check_cond`` returns them
        (``None``: the null condition; ``labels`` is a deprecated alias). With ``guidance`` not ``None`` or the Python
        number 0 both the conditional and the null-condition predictions are made (one
        batched call on ``[cond; null]``) and combined by ``sampling.classifier_free_guidance``.
        ``negative_cond`` (``(b, ...)``, a negative prompt's condition) replaces the null
        condition there: ``(1 + w) eps(x, cond) - w eps(x, negative_cond)``.
        """
        cond = cond if labels is None else labels
        guidance = 0.0 if guidance is None else guidance
        static_zero = isinstance(guidance, (int, float)) and guidance == 0
        if cond is None or static_zero:
            return lambda x, t: self.eps(params, x, t, cond)
        both = jnp.concatenate(self._with_null(cond, negative_cond))

        def guided(x, t):
            b = x.shape[0]
            out = self.eps(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]), both)
            return smp.classifier_free_guidance(out[:b], out[b:], guidance)

        return guided

    # ------------------------------------------------------------------ model API
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Network parameters from an example batch."""
        x = _check_x(self, batch, "batch")
        b = x.shape[0]
        y = self._batch_cond(batch, b, "batch", required=False)
        if y is None and self.condition.kind == "labels":
            y = jnp.zeros((b,), jnp.int32)
        if y is not None and self.condition.kind == "vector":
            y = jnp.asarray(y, jnp.float32)
        return self._call_network(
            functools.partial(self.network.init, key), jnp.asarray(x, jnp.float32), jnp.zeros((b,), jnp.float32), y
        )

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean denoising loss (per-dimension squared error of ``prediction``'s target: the
        noise or the clean sample) and ``{"loss", "eps_mse"}`` (``"x0_mse"`` for ``"x0"``)."""
        x = _check_x(self, batch, "batch")
        y = self._batch_cond(batch, x.shape[0], "batch")
        _check_params(self, params)
        k_drop, k_loss = jax.random.split(key)
        if y is not None:
            y = self.drop_cond(k_drop, y)
        per_example, metrics = obj.denoising_loss(
            k_loss, lambda xt, t: self._raw(params, xt, t, y), _to_model(self, x), schedule=self.schedule,
            target=self.prediction,
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, **metrics}

    def _sampler(self, sampler, steps, allowed=SAMPLERS) -> tuple[str, int]:
        """The sampler (default ``default_sampler``) and its number of steps, checked."""
        sampler = _checks.one_of("sampler", self.default_sampler if sampler is None else sampler, allowed)
        T = self.num_steps
        if sampler in FAST_SAMPLERS:
            return sampler, _fast_steps(sampler, steps)
        steps = _steps(steps, {"ddpm": T, "ddim": min(T, 50), "pc": T, "ode": min(T, 100)}[sampler])
        if sampler == "ddpm" and steps != T:
            raise ValueError(f"the 'ddpm' sampler runs all T={T} steps, got steps={steps}; use sampler='ddim'")
        if sampler == "ddim" and steps > T:
            raise ValueError(f"steps must be <= T={T} for DDIM, got steps={steps}")
        return sampler, steps

    def sampler_nfe(self, sampler: str | None = None, steps: int | None = None) -> int:
        """Network evaluations per sample of :meth:`sample` with ``sampler`` and ``steps`` (defaults
        as there): ``T`` (``"ddpm"``), ``steps`` (``"ddim"``), ``2 steps`` (``"pc"``), ``4 steps``
        (``"ode"``) or ``sampling.solver_nfe`` (the few-step solvers); a guided evaluation (one
        batched call on ``[cond; null]``) counts once."""
        return _nfe(*self._sampler(sampler, steps))

    def _cond_and_guidance(self, params, num: int, cond, guidance, labels=None):
        """Checks params, then the condition of ``num`` examples (``None``: null) and ``guidance``."""
        _check_params(self, params)
        y = self._cond(cond, labels, num)
        if labels is None:
            guidance = check_guidance(guidance, self.condition, cond)
        return y, guidance

    def _negative(self, negative_cond, num: int, cond, guidance) -> Array | None:
        """``negative_cond`` checked (``num`` rows, or one row for every sample) and broadcast
        to ``num`` rows; it needs a ``cond`` and a ``guidance`` to take the null condition's place."""
        if negative_cond is None:
            return None
        if cond is None or guidance is None or (isinstance(guidance, (int, float)) and guidance == 0):
            raise ValueError("negative_cond takes the null condition's place in classifier-free guidance: "
                             "it needs cond and guidance > 0")
        rows = 1 if np.ndim(negative_cond) > 0 and np.shape(negative_cond)[0] == 1 else num
        neg = check_cond(self.condition, negative_cond, rows, name="negative_cond")
        return jnp.broadcast_to(neg, (num, *neg.shape[1:]))

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
        time_schedule: str | None = None,
        negative_cond: Array | int | None = None,
    ):
        """``num`` samples ``(num, *data_shape)`` in the data range.

        Args:
          sampler: ``"ddpm"`` (ancestral, all ``T`` steps; ``steps`` must be ``None`` or
            ``T``), ``"ddim"`` (``steps <= T`` evenly spaced steps, default ``min(T, 50)``,
            stochasticity ``eta``), ``"pc"`` (predictor-corrector on :meth:`vp_score`,
            ``steps`` predictor steps, default ``T``, one Langevin corrector step each) or
            ``"ode"`` (probability-flow ODE on :meth:`vp_score`, ``steps`` RK4 steps, default
            ``min(T, 100)``); the SDE samplers end at ``t = 1 / T``, the chain's step 0 (noise
            std ``sqrt(beta_1)``). Or a few-step solver of ``sampling.solver_sample`` on the chain
            read as its ``DiscreteVPSDE``: ``"dpm++2m"``, ``"dpm2"``, ``"dpm3"``, ``"euler"``,
            ``"heun"`` (default steps ``_common.FAST_DEFAULT_STEPS``, about 20 network
            evaluations; :meth:`sampler_nfe` counts them), ending at the clean data like DDIM.
            Default ``default_sampler``.
          time_schedule: the few-step solvers' time steps (``sampling.TIME_SCHEDULES``; default
            the solver's own, ``sampling.DEFAULT_TIME_SCHEDULE``).
          cond: class labels ``(num,)`` in ``[0, num_classes)`` or one int, tokens
            ``(num, L)`` or vectors ``(num, cond_dim)`` (as ``condition`` says); ``None``: the
            unconditional (null) model.
          guidance: classifier-free guidance weight ``w >= 0`` (``None`` or 0: plain
            conditional); needs ``cond``.
          labels: deprecated alias of ``cond`` (also takes the null label ``num_classes``).
          negative_cond: a negative prompt's condition (as ``cond``: ``num`` rows, or one row for
            all), in the null condition's place: ``(1 + w) eps(cond) - w eps(negative_cond)``;
            needs ``cond`` and ``guidance``.
          return_trajectory: also return the sampler's trajectory
            ``(frames, num, *data_shape)``, mapped to the data range.

        Raises:
          ValueError: unknown sampler, ``steps > T``, a bad ``cond`` or ``guidance``.
        """
        sampler, steps = self._sampler(sampler, steps)
        shape = _sample_shape(self, num)
        y, guidance = self._cond_and_guidance(params, shape[0], cond, guidance, labels)
        neg = self._negative(negative_cond, shape[0], y, guidance)
        if sampler in FAST_SAMPLERS:
            out = smp.solver_sample(
                key, shape, sampler=sampler, steps=steps, eps_fn=self.eps_fn(params, cond=y, guidance=guidance,
                                                                             negative_cond=neg),
                schedule=self.schedule, time_schedule=time_schedule, return_trajectory=return_trajectory,
            )
            return _finish(self, out, return_trajectory)
        if time_schedule is not None:
            raise ValueError(f"time_schedule is for the few-step solvers {FAST_SAMPLERS}, not sampler={sampler!r}")
        if sampler in SDE_SAMPLERS:
            score_fn, sde = self.vp_score(params, cond=y, guidance=guidance, negative_cond=neg)
            run = smp.pc_sample if sampler == "pc" else smp.ode_sample
            out = run(key, score_fn, shape, sde=sde, num_steps=steps, eps=1.0 / self.num_steps,
                      return_trajectory=return_trajectory)
            return _finish(self, out, return_trajectory)
        eps_fn = self.eps_fn(params, cond=y, guidance=guidance, negative_cond=neg)
        if sampler == "ddpm":
            out = smp.ddpm_sample(
                key, eps_fn, shape, schedule=self.schedule, variance=self.variance,
                clip_denoised=self._clip, return_trajectory=return_trajectory,
            )
        else:
            out = smp.ddim_sample(
                key, eps_fn, shape, schedule=self.schedule, num_steps=steps, eta=eta,
                return_trajectory=return_trajectory,
            )
        return _finish(self, out, return_trajectory)

    @property
    def _clip(self) -> tuple[float, float] | None:
        """The ancestral sampler's bound on ``x0_hat``: ``(-1, 1)`` for images."""
        return (-1.0, 1.0) if self.data_range == "unit" else None

    # ------------------------------------------------------------------ editing
    def edit(
        self,
        params: Params,
        key: PRNGKeyArray,
        x0: Array,
        *,
        strength: float,
        cond: Array | int | None = None,
        guidance=None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float = 0.0,
    ) -> Array:
        """Image-to-image (SDEdit; Stable Diffusion's img2img) in the data range.

        ``x0`` is noised (``q_sample``) to the index where the last ``round(strength * n)``
        of the sampler's ``n`` steps begin, and those steps run under ``cond`` / ``guidance``
        (``sampling.edit_sample``). ``strength = 0`` returns ``x0`` itself (no step);
        ``strength = 1`` runs every step from ``x0`` noised to the top index.

        Args:
          x0: ``(b, *data_shape)`` images in the data range.
          strength: a number in ``[0, 1]``.
          cond, guidance: as in :meth:`sample`, for ``b`` examples.
          sampler: ``"ddpm"`` or ``"ddim"`` (default ``default_sampler``); steps, eta: as in
            :meth:`sample`.

        Returns:
          ``(b, *data_shape)`` edited images in the data range.

        Raises:
          ValueError: bad ``x0``, ``strength`` outside ``[0, 1]``, a sampler other than
            ``"ddpm"``/``"ddim"``, a bad ``cond`` or ``guidance``.
        """
        x0 = _check_x(self, x0, "x0")
        eps_fn, chain = self._chain(params, x0.shape[0], sampler, steps, eta, cond, guidance)
        if smp.edit_steps(strength, chain["num_steps"]) == 0:
            return jnp.asarray(x0)
        return _to_data(self, smp.edit_sample(key, eps_fn, _to_model(self, x0), strength=strength, **chain))

    def inpaint(
        self,
        params: Params,
        key: PRNGKeyArray,
        x0: Array,
        mask: Array,
        *,
        cond: Array | int | None = None,
        guidance=None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float = 0.0,
    ) -> Array:
        """Inpainting in the data range: the known region (``mask`` True) of ``x0`` is kept
        exactly, the rest is sampled to fit it (``sampling.inpaint_sample``: the known region
        replaced by ``q_sample(x0, t)`` after each step, RePaint without resampling).

        Args:
          x0: ``(b, *data_shape)`` images in the data range.
          mask: bool or 0/1, broadcastable to ``x0``; True: known.
          cond, guidance, sampler, steps, eta: as in :meth:`edit`.

        Returns:
          ``(b, *data_shape)`` images equal to ``x0`` (bit for bit) where ``mask``.

        Raises:
          ValueError: bad ``x0`` or ``mask``, a sampler other than ``"ddpm"``/``"ddim"``, a
            bad ``cond`` or ``guidance``.
        """
        x0 = jnp.asarray(_check_x(self, x0, "x0"))
        mask = smp.check_mask(mask, x0.shape)
        eps_fn, chain = self._chain(params, x0.shape[0], sampler, steps, eta, cond, guidance)
        out = smp.inpaint_sample(key, eps_fn, _to_model(self, x0), mask, **chain)
        return jnp.where(mask, x0, _to_data(self, out))

    def _chain(self, params, num: int, sampler, steps, eta, cond, guidance) -> tuple[smp.EpsFn, dict]:
        """What an edit runs (all checked before any work): the guided ``eps_fn`` of ``num``
        examples and the chain sampler's keywords (schedule, sampler, num_steps, eta, variance,
        clip_denoised)."""
        if sampler is None and self.default_sampler not in smp.CHAIN_SAMPLERS:
            sampler = "ddim"  # a few-step solver is the default: edits run DDIM
        sampler, steps = self._sampler(sampler, steps, smp.CHAIN_SAMPLERS)
        smp.check_eta(eta)
        y, guidance = self._cond_and_guidance(params, num, cond, guidance)
        chain = dict(schedule=self.schedule, sampler=sampler, num_steps=steps, eta=eta, variance=self.variance,
                     clip_denoised=self._clip)
        return self.eps_fn(params, cond=y, guidance=guidance), chain

    def vlb(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None,
        num_terms: int | None = None, t_chunk: int = 8,
    ) -> dict[str, Array]:
        """``objectives.vlb_terms`` of ``x`` (data range), each ``(b,)`` nats; ``cond``: labels
        (``None``: the null-label model of a conditional DDPM); ``num_terms``: ``None`` (all ``T``
        terms) or the stratified estimate from that many terms; ``t_chunk``: indices ``t`` per
        network call."""
        x = _check_x(self, x, "x")
        _check_params(self, params)
        eps_fn = self.eps_fn(params, cond=self._cond(cond, labels, x.shape[0]))
        decoder = "discretized" if self.data_range == "unit" else "gaussian"
        return obj.vlb_terms(
            key, eps_fn, _to_model(self, x), schedule=self.schedule, variance=self.variance,
            decoder=decoder, num_levels=self.num_levels, num_terms=num_terms, t_chunk=t_chunk,
        )

    def log_prob(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None,
        num_terms: int | None = None, t_chunk: int = 8,
    ) -> Array:
        """Minus the discrete VLB, ``(b,)`` nats -- a single-sample estimate of a lower bound.

        ``"unit"`` data: a bound on ``log P(x)`` of the ``num_levels``-level image
        (discretized decoder); ``"identity"`` data: on the log-density of ``x``. ``num_terms``,
        ``t_chunk``: as in :meth:`vlb`.
        """
        return -self.vlb(params, key, x, cond=cond, labels=labels, num_terms=num_terms, t_chunk=t_chunk)["total"]

    def vlb_bits_per_dim(
        self, params: Params, key: PRNGKeyArray, x: Array, *, cond: Array | None = None, labels: Array | None = None,
        num_terms: int | None = None, t_chunk: int = 8,
    ) -> Array:
        """The VLB in bits per dimension, ``total / (D ln 2)``, ``(b,)``."""
        vlb = self.vlb(params, key, x, cond=cond, labels=labels, num_terms=num_terms, t_chunk=t_chunk)
        return vlb["total"] / (math.prod(self.data_shape) * math.log(2.0))

    def vp_score(self, params: Params, *, cond: Array | None = None, guidance=None, negative_cond: Array | None = None):
        """The (guided) eps read as a VP-SDE score in model space: ``(score_fn, sde)``.

        ``sde = schedules.DiscreteVPSDE.from_schedule(schedule)``: the VP-SDE whose marginals
        at ``t = (i + 1) / T`` are the chain's at step index ``i`` (exactly, for any ``T``);
        ``score(x, t) = -eps(x, T t - 1) / std(t)`` with ``eps`` the :meth:`eps_fn` of ``cond``
        (an array for the ``b`` examples the score is called on; ``None``: the null condition)
        and ``guidance`` (and ``negative_cond``, as there). Gives the DDPM a probability-flow ODE
        likelihood (``likelihood.ode_log_prob(key, score_fn, x, sde=sde)``) and PC / ODE
        sampling, an estimate for a model that never saw continuous times.

        (Until issue 17 this read the chain as the linear ``VPSDE(T beta_1, T beta_T)``,
        whose marginal std is off by 41% at ``T = 100`` and 22% at ``T = 200``.)
        """
        if cond is not None:
            if np.ndim(cond) == 0:
                raise ValueError(f"cond must be {self.condition.describe('b')} without the one-int form: vp_score has no batch size")
            cond = check_cond(self.condition, cond, int(np.shape(cond)[0]))
        eps_fn = self.eps_fn(params, cond=cond, guidance=guidance, negative_cond=negative_cond)
        sde = sch.DiscreteVPSDE.from_schedule(self.schedule)
        T = sde.num_steps

        def score(x, t):
            _, std = sde.marginal(t)
            return -eps_fn(x, T * t - 1.0) / std.reshape((-1,) + (1,) * (x.ndim - 1))

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
