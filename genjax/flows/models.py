"""Normalizing flows (seed chapter §19.1) as a frozen dataclass of layers.

A flow is an invertible map ``g`` (data ``x`` -> base ``z``) built from layers; with
``z ~ N(0, I)`` the change of variables gives the exact density

    log p(x) = log N(g(x); 0, I) + log|det dg/dx (x)|.

The generative direction is ``x = g^-1(z)``; as a distrax object the model is
``distrax.Transformed(N(0, I), distrax.Inverse(g))`` (:meth:`Flow.distribution`).

Image data (``data_levels=L``): the data are on the grid ``k / (L - 1)`` in [0, 1]. The
loss dequantizes them uniformly (``(k + u) / L``, ``u ~ U[0, 1)``, key-driven), then
maps [0, 1] to R with ``logit(alpha + (1 - 2 alpha) x)`` whose Jacobian is part of
``g``. Densities are then on the continuous [0, 1]^D scale, and bits/dim of the
L-level data are ``nll / (D ln 2) + log2 L`` (a variational upper bound, Theis et
al. 2016) -- the convention of :func:`genjax.metrics.bits_per_dim` with
``num_levels=L``.

Flat layers on shaped data (``flatten=True``): the layers (an MLP RealNVP, say) act on
vectors ``(D,)`` while the model takes and returns data of ``data_shape`` (e.g. images
``(H, W, C)``): every method flattens on the way in and reshapes on the way out, so the
model owns its data space and callers need no wrapper.
"""

from __future__ import annotations

import dataclasses
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._checks import batch_x
from genjax._units import bits_per_dim
from genjax.flows import objectives as obj
from genjax.flows.bijectors import Logit
from genjax.flows.layers import FlowLayer, chain_layers, init_layers
from genjax.types import NO_CONDITION, Array, Batch, Metrics, Params, PRNGKeyArray, check_sample_args


@dataclasses.dataclass(frozen=True)
class Flow:
    """A normalizing flow over data of shape ``data_shape`` (see the module docstring).

    Attributes:
      layers: the flow ``g`` in the normalizing direction (data -> base), each a
        :class:`~genjax.flows.layers.FlowLayer`; each layer keeps the event shape
        overall (multi-scale levels squeeze and un-squeeze).
      data_shape: shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``.
      name: family name for reports ("realnvp", "glow", "maf", "nsf").
      data_levels: L for data on ``L`` levels in [0, 1] (images): the loss then
        dequantizes and ``bits_per_dim`` is reported; ``None`` for continuous data.
      logit_alpha: if set, ``Logit(alpha)`` is the first layer (data must be in [0, 1]).
      flatten: the layers act on flat vectors ``(D,)``, ``D = prod(data_shape)``; data
        of ``data_shape`` are flattened in and samples reshaped out.
    """

    layers: tuple[FlowLayer, ...]
    data_shape: tuple[int, ...]
    name: str = "flow"
    data_levels: int | None = None
    logit_alpha: float | None = None
    flatten: bool = False

    log_prob_kind = "exact"
    condition = NO_CONDITION  # unconditional: sample's ``cond`` must be None

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "data_shape", tuple(int(d) for d in self.data_shape))
        for d in self.data_shape:
            _checks.positive_int("data_shape entries", d)
        if not self.data_shape:
            raise ValueError("data_shape must have at least one dimension")
        for layer in self.layers:
            if not isinstance(layer, FlowLayer):
                raise ValueError(f"layers must be FlowLayer instances, got {type(layer).__name__}")
        if self.data_levels is not None and (_checks.positive_int("data_levels", self.data_levels) < 2):
            raise ValueError(f"data_levels must be >= 2, got {self.data_levels}")
        if not isinstance(self.flatten, bool):
            raise ValueError(f"flatten must be True or False, got {self.flatten!r}")
        if self.logit_alpha is not None and not (
            isinstance(self.logit_alpha, (int, float)) and 0.0 <= self.logit_alpha < 0.5
        ):
            raise ValueError(f"logit_alpha must be in [0, 0.5) or None, got {self.logit_alpha!r}")

    # ------------------------------------------------------------------ checks
    @property
    def event_ndims(self) -> int:
        return len(self.data_shape)

    @property
    def num_dims(self) -> int:
        """D, the number of scalars in one example."""
        return math.prod(self.data_shape)

    @property
    def layer_shape(self) -> tuple[int, ...]:
        """The event shape the layers act on: ``(D,)`` with ``flatten``, else ``data_shape``."""
        return (self.num_dims,) if self.flatten else self.data_shape

    def _to_layers(self, x: Array) -> Array:
        return jnp.reshape(x, (x.shape[0], *self.layer_shape)) if self.flatten else x

    def _to_data(self, x: Array) -> Array:
        return jnp.reshape(x, (x.shape[0], *self.data_shape)) if self.flatten else x

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` if ``batch`` is not ``(b, *data_shape)`` float data this flow scores.

        Shape and dtype always (also under jit); finiteness and, with a logit
        pre-processing or quantized data (``data_levels``), the range [0, 1] when the
        batch is concrete.
        """
        x = batch_x(batch)
        _checks.batch_shape(name, x, self.data_shape)
        _checks.finite(name, x)
        if (self.logit_alpha is not None or self.data_levels is not None) and _checks.is_concrete(x):
            a = np.asarray(x)
            if a.min() < 0.0 or a.max() > 1.0:
                why = "logit pre-processing" if self.logit_alpha is not None else f"{self.data_levels} levels in [0, 1]"
                raise ValueError(
                    f"{name} must lie in [0, 1] for this image flow ({why}); got values in "
                    f"[{a.min():.3g}, {a.max():.3g}]"
                )

    def check_params(self, params: Params, *, name: str = "params", batch_size: int = 2) -> None:
        """Raises ``ValueError`` unless ``params`` has this flow's ``layer_<i>`` tree and shapes.

        Compares tree paths and leaf shapes with ``jax.eval_shape(self.init, ...)``
        (computed once per flow; static, so free under jit): params of a flow with
        more or fewer layers, or other widths, fail with a message naming the first
        mismatching layer instead of silently ignoring or missing layers.
        """
        expected = _checks.expected_params(self, jax.ShapeDtypeStruct((batch_size, *self.data_shape), jnp.float32))
        _checks.check_params(
            name, params, expected,
            model=f"this {len(self.layers)}-layer {self.name} flow (data_shape={self.data_shape})",
        )

    # ------------------------------------------------------------------ bijectors
    def normalizing_bijector(self, params: Params) -> distrax.Bijector:
        """``g``: data ``(..., *data_shape)`` -> base ``(..., *data_shape)``, logit first if set.

        With ``flatten`` the layers run on the flattened event (reshapes in and out are
        volume-preserving). Raises ``ValueError`` for params of another flow
        (:meth:`check_params`).
        """
        self.check_params(params)
        inner = self._layer_bijector(params)
        if not self.flatten:
            return inner
        return distrax.Chain([_Reshape(self.layer_shape, self.data_shape), inner, _Reshape(self.data_shape, self.layer_shape)])

    def _layer_bijector(self, params: Params) -> distrax.Bijector:
        """``g`` on the layers' event shape (:attr:`layer_shape`), logit first if set."""
        chain = chain_layers(self.layers, params)
        if self.logit_alpha is None:
            return chain
        return distrax.Chain([chain, Logit(self.logit_alpha, event_ndims=len(self.layer_shape))])

    def bijector(self, params: Params) -> distrax.Bijector:
        """The generative map ``g^-1`` (base -> data), as distrax's ``Transformed`` expects."""
        return distrax.Inverse(self.normalizing_bijector(params))

    def base_distribution(self) -> distrax.Distribution:
        """``N(0, I)`` over ``data_shape``."""
        zeros = jnp.zeros(self.data_shape)
        return distrax.Independent(distrax.Normal(zeros, jnp.ones(self.data_shape)), self.event_ndims)

    def distribution(self, params: Params) -> distrax.Transformed:
        """The flow as a distrax distribution over (continuous) data."""
        return distrax.Transformed(self.base_distribution(), self.bijector(params))

    # ------------------------------------------------------------------ model API
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Parameters from an example batch (data-dependent: ActNorm layers see it).

        Image data are dequantized (with ``key``) and logit-transformed first, as in
        ``loss``. Returns ``{"layer_<i>": ...}`` for the layers that have parameters.
        """
        x = batch_x(batch)
        self.check_batch(x, name="batch")
        return jax.jit(self._init)(key, x)  # one compiled graph: far cheaper than op-by-op

    def _init(self, key: PRNGKeyArray, x: Array) -> Params:
        k_deq, k_init = jax.random.split(key)
        x = self._dequantize(k_deq, self._to_layers(x))
        if self.logit_alpha is not None:
            x = Logit(self.logit_alpha, event_ndims=len(self.layer_shape)).forward(x)
        params, _ = init_layers(self.layers, k_init, x)
        return params

    def _dequantize(self, key: PRNGKeyArray, x: Array) -> Array:
        return obj.dequantize(key, x, num_levels=self.data_levels)

    def _forward(self, params: Params, x: Array) -> tuple[Array, Array]:
        """``z = g(x)`` and ``log|det dg/dx|`` of continuous ``x`` in the layers' shape."""
        self.check_params(params)
        return self._layer_bijector(params).forward_and_log_det(x)

    def log_density(self, params: Params, x: Array) -> Array:
        """Exact ``log p(x)`` of continuous ``x`` ``(b, *data_shape)`` -> ``(b,)`` (no dequantization)."""
        z, log_det = self._forward(params, self._to_layers(x))
        return obj.log_likelihood(z, log_det, event_ndims=len(self.layer_shape))

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array, *, dequantize: bool = True) -> Array:
        """Per-example exact log-density, ``(b, *data_shape)`` -> ``(b,)`` in nats.

        Continuous data (``data_levels=None``): ``log p(x)``; ``key`` is unused.
        Image data: with ``dequantize=True`` ``x`` is on the L-level grid and the value
        is ``log p(x + u / L)`` for one uniform draw (``key``), the density of the
        dequantized point on the [0, 1]^D scale: its negation over ``D ln 2`` plus
        ``log2 L`` is the bits/dim of the discrete data (an upper bound in
        expectation). With ``dequantize=False`` ``x`` is taken as already continuous.
        """
        self.check_batch(x)
        x = self._to_layers(x)  # dequantize in the layers' shape: the same draw as on flat data
        if dequantize:
            x = self._dequantize(key, x)
        return self.log_density(params, x)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean negative log-likelihood (nats per example) of the (dequantized) batch: the mean of
        :func:`genjax.flows.objectives.negative_log_likelihood`.

        Metrics: ``loss``, ``nll`` (both nats per example) and, for image data,
        ``bits_per_dim`` (with the ``log2 L`` dequantization offset).
        """
        x = batch_x(batch)
        self.check_batch(x, name="batch")
        z, log_det = self._forward(params, self._dequantize(key, self._to_layers(x)))
        nll = jnp.mean(obj.negative_log_likelihood(z, log_det, event_ndims=len(self.layer_shape)))
        metrics = {"loss": nll, "nll": nll}
        if self.data_levels is not None:
            metrics["bits_per_dim"] = bits_per_dim(
                nll, self.num_dims, num_levels=self.data_levels, allow_nonfinite=True  # NaN shows, not raises
            )
        return nll, metrics

    def sample(self, params: Params, key: PRNGKeyArray, num: int, *, temperature: float = 1.0, cond=None,
               guidance=None) -> Array:
        """``num`` draws ``x = g^-1(T z)``, ``z ~ N(0, I)``: shape ``(num, *data_shape)``.

        ``temperature`` T < 1 trades diversity for quality (Glow). Image samples are
        clipped to [0, 1]. ``cond`` and ``guidance`` (the model API's) must be ``None``:
        this flow takes no condition.
        """
        num = check_sample_args(self.condition, num, cond, guidance)[0]  # no condition: cond, guidance must be None
        temperature = _checks.positive_float("temperature", temperature)
        self.check_params(params)
        z = temperature * jax.random.normal(key, (num, *self.layer_shape))
        x = self._to_data(self._layer_bijector(params).inverse(z))
        return jnp.clip(x, 0.0, 1.0) if self.logit_alpha is not None or self.data_levels is not None else x


class _Reshape(distrax.Bijector):
    """Reshapes the event ``in_shape -> out_shape`` (same size); log-det 0."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__(event_ndims_in=len(in_shape), event_ndims_out=len(out_shape), is_constant_jacobian=True)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def _reshape(self, x, src, dst):
        return jnp.reshape(x, x.shape[: x.ndim - len(src)] + dst)

    def forward_and_log_det(self, x):
        y = self._reshape(x, self.in_shape, self.out_shape)
        return y, jnp.zeros(x.shape[: x.ndim - len(self.in_shape)], x.dtype)

    def inverse_and_log_det(self, y):
        x = self._reshape(y, self.out_shape, self.in_shape)
        return x, jnp.zeros(y.shape[: y.ndim - len(self.out_shape)], y.dtype)
