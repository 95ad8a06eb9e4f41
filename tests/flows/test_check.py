"""check_bijector catches broken bijectors and names the property that failed."""

from __future__ import annotations

import distrax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.flows as F


class _Scale(distrax.Bijector):
    """y = 2 x, with log-det and inverse that can be broken on purpose."""

    def __init__(self, *, fwd_offset=0.0, inv_offset=0.0, bad_inverse=False, python_side_effect=False, sum_batch=False):
        super().__init__(event_ndims_in=1)
        self.fwd_offset, self.inv_offset = fwd_offset, inv_offset
        self.bad_inverse, self.python_side_effect = bad_inverse, python_side_effect
        self.sum_batch = sum_batch

    def forward_and_log_det(self, x):
        if self.python_side_effect and float(jnp.sum(x)) > -1e9:  # needs a concrete x: not jittable
            pass
        ld = jnp.full(x.shape[:-1], x.shape[-1] * np.log(2.0) + self.fwd_offset, x.dtype)
        return 2.0 * x, (jnp.sum(ld) if self.sum_batch else ld)

    def inverse_and_log_det(self, y):
        ld = jnp.full(y.shape[:-1], -y.shape[-1] * np.log(2.0) - self.inv_offset, y.dtype)
        return (y / 2.0 + (0.1 if self.bad_inverse else 0.0)), ld


@pytest.fixture
def x(rng):
    return jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)


def test_correct_bijector_passes(x):
    report = F.check_bijector(_Scale(), x, atol=1e-5, rtol=1e-5)
    assert report["forward log-det vs slogdet(jacfwd)"] <= 1e-5
    assert report["round trip"] <= 1e-6


def test_logdet_off_by_a_constant_in_both_directions(x):
    """Consistent forward/inverse log-dets, both wrong by 0.5: only the Jacobian test sees it."""
    with pytest.raises(ValueError, match=r"forward log-det vs slogdet\(jacfwd\): max discrepancy 0.5") as e:
        F.check_bijector(_Scale(fwd_offset=0.5, inv_offset=0.5), x, atol=1e-4, rtol=1e-4)
    assert "log-det symmetry" not in str(e.value) and "round trip" not in str(e.value)
    assert "inverse log-det vs slogdet(jacfwd): max discrepancy 0.5" in str(e.value)


def test_logdet_off_in_one_direction(x):
    with pytest.raises(ValueError, match=r"log-det symmetry: max discrepancy 0.3"):
        F.check_bijector(_Scale(fwd_offset=0.3), x, atol=1e-4, rtol=1e-4)


def test_wrong_inverse(x):
    with pytest.raises(ValueError, match=r"round trip: max discrepancy 0.1"):
        F.check_bijector(_Scale(bad_inverse=True), x, atol=1e-4, rtol=1e-4)


def test_not_jittable(x):
    with pytest.raises(ValueError, match=r"jit: the bijector is not jittable"):
        F.check_bijector(_Scale(python_side_effect=True), x)


def test_logdet_summed_over_the_batch(x):
    with pytest.raises(ValueError, match=r"log-det shape: forward log-det has shape \(\), expected batch shape \(3,\)"):
        F.check_bijector(_Scale(sum_batch=True), x)


def test_rank_too_small():
    with pytest.raises(ValueError, match="event_ndims_in=3"):
        F.check_bijector(F.Squeeze(), jnp.zeros((4, 4)))
