"""Type aliases and the model API every genjax family implements.

The contract (see ``docs/architecture.md``)::

    params         = model.init(key, example_batch)
    loss, metrics  = model.loss(params, key, batch)     # scalar to minimise
    samples        = model.sample(params, key, num)
    log_px         = model.log_prob(params, key, x)     # (batch,), see log_prob_kind

Argument order everywhere: ``params`` first where there are params, then ``key``,
then data, then keyword-only hyper-parameters. Every method is a pure function
that ``jax.jit``, ``jax.grad`` and ``jax.vmap`` take as is.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, Protocol, runtime_checkable

import jax

Array = jax.Array
PRNGKeyArray = jax.Array
Params = Any  # a pytree of arrays
Batch = Any  # an array, or a pytree of arrays (e.g. {"x": ..., "y": ...})
Metrics = Mapping[str, Array]
LossFn = Callable[[Params, PRNGKeyArray, Batch], "tuple[Array, Metrics]"]

#: Which quantity ``log_prob`` returns; printed in every report.
LogProbKind = Literal["exact", "iwae_bound", "elbo", "vlb", "ode_estimate", "none"]


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

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Initialises parameters from an example batch."""
        ...

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Scalar objective to minimise, and a dict of scalar metrics."""
        ...

    def sample(self, params: Params, key: PRNGKeyArray, num: int) -> Array:
        """Draws ``num`` samples, shape ``(num, *data_shape)``."""
        ...

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Per-example log-density (exact, bound or estimate: see ``log_prob_kind``)."""
        ...


@runtime_checkable
class AdversarialModel(Protocol):
    """Two-player models: params are ``{"generator": ..., "discriminator": ...}``."""

    log_prob_kind: LogProbKind

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params: ...

    def d_loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]: ...

    def g_loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]: ...

    def sample(self, params: Params, key: PRNGKeyArray, num: int) -> Array: ...
