"""Type aliases and the model API every genjax family implements.

The contract (see ``docs/architecture.md``)::

    params         = model.init(key, example_batch)
    loss, metrics  = model.loss(params, key, batch)     # scalar to minimise
    samples        = model.sample(params, key, num, *, cond=None, guidance=None)
    log_px         = model.log_prob(params, key, x)     # (batch,), see log_prob_kind

A batch is an array ``(b, *data_shape)`` or a dict ``{"x": ..., "cond": ...}``. Every
model says what condition it takes in ``model.condition`` (a :class:`Condition`: none,
class labels, a vector or a token sequence) and rejects a wrong one with
:func:`check_cond` (in ``sample``) and :func:`batch_cond` (in ``loss``/``init``).

Argument order everywhere: ``params`` first where there are params, then ``key``,
then data, then keyword-only hyper-parameters. Every method is a pure function
that ``jax.jit``, ``jax.grad`` and ``jax.vmap`` take as is.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Literal, Mapping, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks

Array = jax.Array
PRNGKeyArray = jax.Array
Params = Any  # a pytree of arrays
Batch = Any  # an array, or a dict {"x": ..., "cond": ...}
Metrics = Mapping[str, Array]
LossFn = Callable[[Params, PRNGKeyArray, Batch], "tuple[Array, Metrics]"]

#: Which quantity ``log_prob`` returns; printed in every report.
LogProbKind = Literal["exact", "iwae_bound", "elbo", "vlb", "ode_estimate", "none"]


#: What condition a model takes (``model.condition.kind``).
CondKind = Literal["none", "labels", "vector", "tokens"]
COND_KINDS = ("none", "labels", "vector", "tokens")


@dataclasses.dataclass(frozen=True)
class Condition:
    """What condition a model takes: its ``model.condition``.

    * ``"none"``: no condition; ``cond`` must be ``None``.
    * ``"labels"``: class labels, ``(num,)`` ints in ``[0, num_classes)`` (or one int for
      all ``num`` samples).
    * ``"vector"``: ``(num, dim)`` floats (e.g. an embedding).
    * ``"tokens"``: a token sequence, ``(num, L)`` ints in ``[0, vocab_size)`` with
      ``L <= max_len``; positions holding ``pad_id`` are padding (``token_mask``) and
      never change the output (a model attends only to the unmasked positions).

    Attributes:
      kind: one of ``COND_KINDS``.
      num_classes: ``"labels"``: the number of classes.
      dim: ``"vector"``: the vector's width.
      vocab_size, max_len, pad_id: ``"tokens"``: the vocabulary, the longest sequence
        (``None``: any) and the padding id.
    """

    kind: CondKind = "none"
    num_classes: int | None = None
    dim: int | None = None
    vocab_size: int | None = None
    max_len: int | None = None
    pad_id: int = 0

    def __post_init__(self):
        _checks.one_of("condition kind", self.kind, COND_KINDS)
        need = {"labels": ("num_classes",), "vector": ("dim",), "tokens": ("vocab_size",)}.get(self.kind, ())
        for name in need:
            _checks.positive_int(f"Condition(kind={self.kind!r}).{name}", getattr(self, name))
        if self.max_len is not None:
            _checks.positive_int("Condition.max_len", self.max_len)
        if self.kind == "tokens" and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"Condition.pad_id must lie in [0, vocab_size={self.vocab_size}), got {self.pad_id}")

    def describe(self, num="num") -> str:
        """What a ``cond`` of ``num`` examples must be, in words (for error messages)."""
        if self.kind == "none":
            return "None (this model takes no condition)"
        if self.kind == "labels":
            return f"int class labels in [0, {self.num_classes}) of shape ({num},), or one int"
        if self.kind == "vector":
            return f"a float array of shape ({num}, {self.dim})"
        longest = "" if self.max_len is None else f", L <= {self.max_len}"
        return (f"int tokens in [0, {self.vocab_size}) of shape ({num}, L){longest}, "
                f"padded with pad_id={self.pad_id}")


#: The condition of an unconditional model.
NO_CONDITION = Condition()


def check_cond(condition: Condition, cond, num: int, *, name: str = "cond"):
    """Checks (and normalises) a condition for ``num`` examples against ``condition``.

    Returns ``None`` for ``cond=None`` (every model can run without its condition: a
    conditional model then uses its unconditional, "null", path), else a ``jnp`` array:
    labels ``(num,)`` int32 (one int broadcast), vectors ``(num, dim)`` float, tokens
    ``(num, L)`` int32. Shapes and dtypes are static checks; value ranges are checked
    on concrete arrays only.

    Raises:
      ValueError: naming ``name`` and what was expected, e.g. ``"cond: this model takes
        no condition"`` or ``"cond must be int class labels in [0, 10) of shape (4,)"``.
    """
    if cond is None:
        return None
    if condition.kind == "none":
        raise ValueError(f"{name}: this model takes no condition (condition kind 'none'), got {_what(cond)}")
    expected = f"{name} must be {condition.describe(num)}"
    if condition.kind == "labels":
        if isinstance(cond, numbers.Integral) and not isinstance(cond, bool):
            cond = np.full((num,), int(cond), np.int32)
        _shape_dtype(cond, (num,), jnp.integer, expected)
        _range(cond, 0, condition.num_classes, expected)
        return jnp.asarray(cond, jnp.int32)
    if condition.kind == "vector":
        _shape_dtype(cond, (num, condition.dim), jnp.floating, expected)
        _checks.finite(name, cond)
        return jnp.asarray(cond)
    shape = tuple(np.shape(cond))
    if len(shape) != 2 or shape[0] != num or shape[1] < 1 or (condition.max_len is not None and shape[1] > condition.max_len):
        raise ValueError(f"{expected}, got {_what(cond)}")
    _shape_dtype(cond, shape, jnp.integer, expected)
    _range(cond, 0, condition.vocab_size, expected)
    return jnp.asarray(cond, jnp.int32)


def token_mask(condition: Condition, tokens) -> jax.Array:
    """``(num, L)`` bool: True at real tokens, False at padding (``tokens == pad_id``)."""
    if condition.kind != "tokens":
        raise ValueError(f"token_mask needs a 'tokens' condition, got kind {condition.kind!r}")
    return jnp.asarray(tokens) != condition.pad_id


def check_guidance(guidance, condition: Condition, cond) -> float | jax.Array:
    """Classifier-free guidance weight ``w >= 0``: ``None`` -> 0. Raises for guidance on a
    model without a condition or without a ``cond`` to guide towards."""
    if guidance is None:
        return 0.0
    if condition.kind == "none":
        raise ValueError("guidance: this model takes no condition, so there is nothing to guide towards")
    if cond is None:
        raise ValueError("guidance needs a cond to guide towards (got cond=None)")
    if isinstance(guidance, (numbers.Real, np.ndarray, jax.Array)) and not isinstance(guidance, bool):
        if np.ndim(guidance) == 0:
            if _checks.is_concrete(guidance) and not (np.isfinite(float(guidance)) and float(guidance) >= 0):
                raise ValueError(f"guidance must be a finite number >= 0, got {float(guidance)!r}")
            return guidance
    raise ValueError(f"guidance must be a finite number >= 0 (a scalar), got {_what(guidance)}")


def check_sample_args(condition: Condition, num, cond, guidance) -> tuple[int, jax.Array | None, float | jax.Array]:
    """What every model's ``sample`` checks first, before any work: ``num`` a positive int,
    ``cond`` as ``condition`` says (:func:`check_cond`) and ``guidance`` (:func:`check_guidance`).

    Returns:
      ``(num, cond, guidance)``, normalised as those functions return them.

    Raises:
      ValueError: naming ``num``, ``cond`` or ``guidance`` and what was expected.
    """
    num = _checks.positive_int("num", num)
    return num, check_cond(condition, cond, num), check_guidance(guidance, condition, cond)


def batch_cond(condition: Condition, batch: Batch, b: int, *, name: str = "batch", required: bool = True):
    """The checked condition of a training batch: ``batch["cond"]`` of a dict batch.

    Returns ``None`` for a model without a condition (a ``cond`` in the batch is then an
    error) or for a batch without one when ``required`` is False.

    Raises:
      ValueError: a conditional model given a bare array (when ``required``), or a bad ``cond``.
    """
    cond = batch.get("cond") if isinstance(batch, dict) else None
    if condition.kind == "none":
        if cond is not None:
            check_cond(condition, cond, b, name=f"{name}['cond']")
        return None
    if cond is None:
        if required:
            raise ValueError(
                f"{name}: a model conditioned on {condition.kind} needs a dict batch "
                f"{{'x': ..., 'cond': {condition.describe('batch')}}}"
            )
        return None
    return check_cond(condition, cond, b, name=f"{name}['cond']")


def _what(v) -> str:
    if isinstance(v, (numbers.Number, str)):
        return repr(v)
    return f"shape {tuple(np.shape(v))} dtype {jnp.result_type(v)}" if hasattr(v, "shape") else type(v).__name__


def _shape_dtype(v, shape, kind, expected: str) -> None:
    if tuple(np.shape(v)) != tuple(shape) or not jnp.issubdtype(jnp.result_type(v), kind):
        raise ValueError(f"{expected}, got {_what(v)}")


def _range(v, lo: int, hi: int, expected: str) -> None:
    if _checks.is_concrete(v):
        a = np.asarray(v)
        if a.size and (a.min() < lo or a.max() >= hi):
            raise ValueError(f"{expected}, got values in [{a.min()}, {a.max()}]")


@runtime_checkable
class GenerativeModel(Protocol):
    """The model API. Families (``vae``, ``flows``, ``diffusion``) implement it.

    A model is a frozen dataclass of hyper-parameters and Flax modules; it holds
    no parameters and no state. Adversarial models (``gan``) replace ``loss``
    with ``d_loss``/``g_loss`` and are described in ``AdversarialModel``.
    """

    #: what ``log_prob`` returns: "exact", "iwae_bound", "elbo", "vlb",
    #: "ode_estimate" or "none".
    log_prob_kind: LogProbKind

    #: what condition ``sample``'s ``cond`` (and a batch's ``"cond"``) must be;
    #: ``NO_CONDITION`` for an unconditional model.
    condition: Condition

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Initialises parameters from an example batch."""
        ...

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Scalar objective to minimise, and a dict of scalar metrics."""
        ...

    def sample(self, params: Params, key: PRNGKeyArray, num: int, *, cond=None, guidance=None) -> Array:
        """Draws ``num`` samples, shape ``(num, *data_shape)``; ``cond`` as ``condition``
        says (``check_cond``), ``guidance`` a classifier-free guidance weight (``None``: off)."""
        ...

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Per-example log-density (exact, bound or estimate: see ``log_prob_kind``)."""
        ...


@runtime_checkable
class AdversarialModel(Protocol):
    """Two-player models: params are ``{"generator": ..., "discriminator": ...}``.

    Optional (see :func:`genjax.train.adversarial.make_adversarial_step`): ``n_critic``,
    ``split_critic_batch``, ``clip``, ``update_stats``, and ``share_fakes`` with
    ``train_fakes(params, key, batch)`` and a ``fakes=`` keyword on both losses.
    """

    log_prob_kind: LogProbKind

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params: ...

    def d_loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]: ...

    def g_loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]: ...

    def sample(self, params: Params, key: PRNGKeyArray, num: int) -> Array: ...
