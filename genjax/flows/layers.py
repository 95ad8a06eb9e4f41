"""Flow layers: recipes that turn a slice of the params pytree into a distrax bijector.

A flow is a tuple of layers applied in the normalizing direction (data -> base).
Each layer is a frozen dataclass (static hyper-parameters and linen modules) with

    params    = layer.init(key, x)         # x: (batch, *event), the layer's input batch
    bijector  = layer.bijector(params)     # a distrax.Bijector, forward = x -> z

so bijectors are rebuilt inside pure functions from ``params`` and never stored.
``init`` sees the activations that reach the layer, which is how ActNorm gets its
data-dependent initialisation: :func:`init_layers` pushes the example batch
through the layers one after the other.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.flows import bijectors as bj
from genjax.flows import coupling as cp
from genjax.types import Array, Params, PRNGKeyArray

MASK_TYPES = ("alternating", "checkerboard", "channel")


class FlowLayer(abc.ABC):
    """One layer of a flow (see the module docstring)."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, x: Array) -> Params:
        """Parameters from a key and the batch ``(b, *event)`` reaching this layer."""

    @abc.abstractmethod
    def bijector(self, params: Params) -> distrax.Bijector:
        """The layer as a bijector in the normalizing direction."""


def init_layers(layers: Sequence[FlowLayer], key: PRNGKeyArray, x: Array) -> tuple[dict, Array]:
    """Initialises ``layers`` in order on the batch ``x``; returns ``(params, z)``.

    ``params`` maps ``"layer_<i>"`` to the params of layer ``i`` (parameter-free layers
    have no entry); ``z`` is the batch after the last layer.
    """
    params = {}
    keys = jax.random.split(key, max(len(layers), 1))
    h = x
    for i, (layer, k) in enumerate(zip(layers, keys)):
        p = layer.init(k, h)
        h = layer.bijector(p).forward(h)
        if jax.tree_util.tree_leaves(p):
            params[f"layer_{i}"] = p
    return params, h


def chain_layers(layers: Sequence[FlowLayer], params: Params) -> distrax.Bijector:
    """``distrax.Chain`` applying ``layers`` in order (``Chain`` applies its list last-first)."""
    bijectors = [layer.bijector(params.get(f"layer_{i}", {})) for i, layer in enumerate(layers)]
    return distrax.Chain(bijectors[::-1])


def _apply(module: nn.Module, params: Params):
    return lambda h: module.apply(params, h)


# ---------------------------------------------------------------------- couplings
@dataclasses.dataclass(frozen=True)
class AffineCouplingLayer(FlowLayer):
    """:class:`~genjax.flows.coupling.AffineCoupling` with a linen conditioner.

    Attributes:
      conditioner: ``(b, *event) -> (b, *event[:-1], 2 C)``.
      event_shape: shape of one event, e.g. ``(2,)`` or ``(H, W, C)``.
      mask_type: "alternating" (vectors), "checkerboard" or "channel" (images).
      parity: which half of the mask is kept (0 or 1).
      scale_fn, scale_bound: see :func:`~genjax.flows.coupling.bounded_log_scale`.
    """

    conditioner: nn.Module
    event_shape: tuple[int, ...]
    mask_type: str
    parity: int = 0
    scale_fn: str = "tanh"
    scale_bound: float = 3.0

    def mask(self):
        if self.mask_type == "alternating":
            return cp.alternating_mask(self.event_shape[-1], self.parity)
        if self.mask_type == "checkerboard":
            return cp.checkerboard_mask(self.event_shape, self.parity)
        if self.mask_type == "channel":
            return cp.channel_mask(self.event_shape, self.parity)
        raise ValueError(f"unknown mask_type {self.mask_type!r}; valid choices: {', '.join(MASK_TYPES)}")

    def init(self, key, x):
        return self.conditioner.init(key, x)

    def bijector(self, params):
        return cp.AffineCoupling(
            self.mask(),
            _apply(self.conditioner, params),
            event_ndims=len(self.event_shape),
            scale_fn=self.scale_fn,
            scale_bound=self.scale_bound,
        )


@dataclasses.dataclass(frozen=True)
class SplineCouplingLayer(FlowLayer):
    """Rational-quadratic spline coupling on vectors ``(D,)`` with an alternating mask.

    Attributes:
      conditioner: ``(b, D) -> (b, D * (3 num_bins + 1))``.
      dim: D.
      num_bins: K.
      bound: the spline acts on ``[-bound, bound]``, identity outside.
      parity: 0 or 1.
    """

    conditioner: nn.Module
    dim: int
    num_bins: int
    bound: float = 4.0
    parity: int = 0

    def init(self, key, x):
        return self.conditioner.init(key, x)

    def bijector(self, params):
        k = 3 * self.num_bins + 1
        cond = lambda h: self.conditioner.apply(params, h).reshape(*h.shape, k)
        return cp.spline_coupling(cp.alternating_mask(self.dim, self.parity), cond, bound=self.bound, event_ndims=1)


@dataclasses.dataclass(frozen=True)
class MAFLayer(FlowLayer):
    """:class:`~genjax.flows.coupling.MaskedAutoregressive` with a MADE conditioner.

    Attributes:
      made: ``genjax.nn.made.MADE`` with ``num_params=2`` (shift, raw log-scale).
      scale_bound: the log-scale is ``scale_bound * tanh(raw / scale_bound)``.
    """

    made: nn.Module
    scale_bound: float = 3.0

    def init(self, key, x):
        return self.made.init(key, x)

    def bijector(self, params):
        def conditioner(x):
            out = self.made.apply(params, x)
            return out[..., 0], cp.bounded_log_scale(out[..., 1], scale_fn="tanh", bound=self.scale_bound)

        return cp.MaskedAutoregressive(conditioner)


# ---------------------------------------------------------------------- Glow pieces
@dataclasses.dataclass(frozen=True)
class ActNormLayer(FlowLayer):
    """:class:`~genjax.flows.bijectors.ActNorm`, initialised from the batch that reaches it."""

    event_ndims: int = 3

    def init(self, key, x):
        del key
        return bj.actnorm_init(x)

    def bijector(self, params):
        return bj.ActNorm(params["log_scale"], params["bias"], event_ndims=self.event_ndims)


@dataclasses.dataclass(frozen=True)
class Conv1x1Layer(FlowLayer):
    """:class:`~genjax.flows.bijectors.InvertibleConv1x1` starting at a random rotation.

    The rotation, hence the fixed permutation and signs of its LU factors, is drawn
    from ``seed`` (numpy, at trace time), not from the init key: the permutation
    and signs are not trained, so they cannot live in params, and ``init`` must
    start from factors with the same permutation and signs.
    """

    channels: int
    seed: int = 0
    event_ndims: int = 3

    def init(self, key, x):
        del key
        bj._check_channels("Conv1x1Layer", x, self.channels)
        params, _, _ = bj.conv1x1_lu_init(self.channels, seed=self.seed)
        return {k: jnp.asarray(v) for k, v in params.items()}

    def bijector(self, params):
        _, perm, sign = bj.conv1x1_lu_init(self.channels, seed=self.seed)
        return bj.InvertibleConv1x1(
            params["lower"], params["upper"], params["log_s"], permutation=perm, sign=sign, event_ndims=self.event_ndims
        )


@dataclasses.dataclass(frozen=True)
class SqueezeLayer(FlowLayer):
    """:class:`~genjax.flows.bijectors.Squeeze` (or, with ``inverse=True``, the un-squeeze)."""

    factor: int = 2
    inverse: bool = False

    def init(self, key, x):
        del key, x
        return {}

    def bijector(self, params):
        sq = bj.Squeeze(self.factor)
        return distrax.Inverse(sq) if self.inverse else sq


@dataclasses.dataclass(frozen=True)
class FactorOutLayer(FlowLayer):
    """:class:`~genjax.flows.bijectors.FactorOut`: the first ``num_factored`` channels leave
    the flow; ``layers`` act on the rest (and must keep its shape)."""

    num_factored: int
    layers: tuple[FlowLayer, ...]

    def init(self, key, x):
        params, _ = init_layers(self.layers, key, x[..., self.num_factored :])
        return params

    def bijector(self, params):
        return bj.FactorOut(chain_layers(self.layers, params), self.num_factored)


@dataclasses.dataclass(frozen=True)
class LearnedPriorLayer(FlowLayer):
    """:class:`~genjax.flows.bijectors.LearnedPrior`: Glow's learned prior on the first
    ``num_factored`` channels, from ``net`` of the rest (a split) or of zeros (the top
    prior, ``num_factored`` = all channels). ``net`` is zero-initialised (Glow's
    ``Conv2dZeros``, :class:`~genjax.nn.conditioners.ZeroConv`), so the prior starts at ``N(0, I)``."""

    num_factored: int
    net: nn.Module

    def _cond(self, x):
        k = self.num_factored
        return x[..., k:] if x.shape[-1] > k else jnp.zeros((*x.shape[:-1], 1), x.dtype)

    def init(self, key, x):
        return self.net.init(key, self._cond(x))

    def bijector(self, params):
        return bj.LearnedPrior(_apply(self.net, params), self.num_factored)


@dataclasses.dataclass(frozen=True)
class ShiftLayer(FlowLayer):
    """``y = x + shift`` on events of rank ``event_ndims`` (log-det 0): Glow's ``x - 0.5``."""

    shift: float
    event_ndims: int = 3

    def init(self, key, x):
        del key, x
        return {}

    def bijector(self, params):
        return distrax.Block(distrax.ScalarAffine(shift=jnp.asarray(self.shift)), self.event_ndims)
