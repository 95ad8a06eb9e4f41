"""The argument checks at the public boundaries: shapes are asserted with chex (the design's
"chex-checked shapes"), and chex's AssertionError becomes a ValueError naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import _checks


@pytest.mark.parametrize("x, fragment", [
    (np.zeros((4, 3)), "rank 3"),
    (np.zeros((4, 3, 5)), "shape (batch, 3, 2)"),
    (np.zeros((0, 3, 2)), "empty batch"),
    (np.zeros((4, 3, 2), np.int32), "floating-point"),
])
def test_batch_shape_names_the_argument(x, fragment):
    with pytest.raises(ValueError, match="my_arg") as info:
        _checks.batch_shape("my_arg", x, (3, 2))
    assert fragment in str(info.value)


def test_shape_errors_come_from_chex():
    with pytest.raises(ValueError) as info:
        _checks.batch_shape("x", np.zeros((4, 3, 5)), (3, 2))
    assert isinstance(info.value.__cause__, AssertionError)
    assert str(info.value.__cause__).startswith("[Chex] Assertion assert_shape failed")


def test_batch_shape_runs_under_jit():
    @jax.jit
    def f(x):
        _checks.batch_shape("x", x, (2,))
        return x.sum()

    assert float(f(jnp.ones((3, 2)))) == 6.0
    with pytest.raises(ValueError, match="x must have shape"):
        f(jnp.ones((3, 4)))
