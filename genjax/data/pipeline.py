"""Batching by key and data transforms (pure functions of a key).

Data order is a function of ``(key, step)`` only: epoch ``e = step // steps_per_epoch``
uses the permutation ``jax.random.permutation(fold_in(key, e), n)``, so a run
resumed at any step sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import operator
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._units import uniform_dequantize  # noqa: F401  (its public home is genjax.data)
from genjax.types import Array, PRNGKeyArray


# ---------------------------------------------------------------------- transforms
def _rbg_key(key: PRNGKeyArray) -> jax.Array:
    """An ``rbg`` generator key derived deterministically from a threefry key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return jax.random.wrap_key_data(jax.random.split(key, 2).reshape(4), impl="rbg")


def dynamic_binarize(key: PRNGKeyArray, x: Array) -> Array:
    """Resamples binary data ``b ~ Bernoulli(x)`` (x in [0, 1]), same shape and dtype.

    Used with a fresh key per minibatch, as in the IWAE paper's "dynamically
    binarized MNIST". The uniforms come from XLA's ``rbg`` bit generator seeded
    from ``key`` (deterministic for a given key and backend): for image-sized
    draws it is about twice as fast as threefry on CPU, where threefry made
    binarization half the cost of a small VAE step.

    Raises:
      ValueError: a concrete ``x`` with values outside [0, 1] (or NaN); traced
        inputs are not value-checked.
    """
    if _checks.is_concrete(x):
        a = np.asarray(x)
        bad = ~((a >= 0) & (a <= 1))  # NaN is bad too
        if bad.any():
            raise ValueError(
                f"x must hold probabilities in [0, 1] for dynamic_binarize; {int(bad.sum())} values are "
                f"outside (e.g. {a[bad].flat[0]!r}); rescale it to [0, 1] first"
            )
    return jax.random.bernoulli(_rbg_key(key), x).astype(x.dtype)


def to_signed(x: Array) -> Array:
    """[0, 1] -> [-1, 1]."""
    return 2.0 * x - 1.0


def to_unit(x: Array) -> Array:
    """[-1, 1] -> [0, 1]."""
    return 0.5 * (x + 1.0)


TRANSFORMS = ("none", "binarize", "dequantize", "signed")


# ---------------------------------------------------------------------- batching
def _index(name: str, value) -> int:
    """A non-negative integer (Python, numpy or a concrete 0-d jax integer)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from None
    if v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v}")
    return v


class BatchSampler:
    """Deterministic minibatch indices from a key: ``indices(step) -> (batch_size,)``.

    Each epoch is a fresh permutation (``fold_in(key, epoch)``) of the ``n``
    examples; the ``n % batch_size`` left-over examples of an epoch are skipped
    (they come first in another epoch's order).
    """

    def __init__(self, key: PRNGKeyArray, num_examples: int, batch_size: int):
        self.num_examples = _checks.positive_int("num_examples", num_examples)
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        if batch_size > num_examples:
            raise ValueError(f"batch_size={batch_size} is larger than the data set ({num_examples} examples)")
        self.key = key
        self.steps_per_epoch = num_examples // batch_size
        self._cache: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            perm = jax.random.permutation(jax.random.fold_in(self.key, epoch), self.num_examples)
            self._cache = (epoch, np.asarray(perm))
        return self._cache[1]

    def indices(self, step: int) -> np.ndarray:
        """Indices of the batch at ``step`` (a non-negative integer), ``(batch_size,)``."""
        step = _index("step", step)
        epoch, i = divmod(step, self.steps_per_epoch)
        b = self.batch_size
        return self.permutation(epoch)[i * b : (i + 1) * b]

    def indices_for(self, start: int, count: int) -> np.ndarray:
        """Indices of ``count`` consecutive steps from ``start``: ``(count, batch_size)``."""
        start = _index("start", start)
        _checks.positive_int("count", count)
        return np.stack([self.indices(s) for s in range(start, start + count)])


def iterate_batches(
    key: PRNGKeyArray, x: np.ndarray, batch_size: int, *, num_steps: int | None = None, start: int = 0
) -> Iterator[np.ndarray]:
    """Yields ``x[indices(step)]`` for ``step = start, start + 1, ...`` (forever if ``num_steps`` is None)."""
    sampler = BatchSampler(key, len(x), batch_size)
    step = start
    while num_steps is None or step < start + num_steps:
        yield x[sampler.indices(step)]
        step += 1


def train_test_split(key: PRNGKeyArray, n: int, *, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted index sets (train, test) from one permutation drawn with ``key``."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    perm = np.asarray(jax.random.permutation(key, n))
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
