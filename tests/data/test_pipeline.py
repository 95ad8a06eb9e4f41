"""Batching by key and data transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.data import (
    BatchSampler,
    dynamic_binarize,
    iterate_batches,
    to_signed,
    to_unit,
    train_test_split,
    uniform_dequantize,
)

N, BS = 10, 3  # 3 steps per epoch, 1 example left over


# ---------------------------------------------------------------------- BatchSampler
def test_each_epoch_covers_distinct_indices(key):
    s = BatchSampler(key, N, BS)
    assert s.steps_per_epoch == 3
    for epoch in range(3):
        idx = np.concatenate([s.indices(epoch * 3 + i) for i in range(3)])
        assert idx.shape == (9,) and len(set(idx.tolist())) == 9
        assert set(idx.tolist()) <= set(range(N))
        # the epoch's batches are its permutation in order, minus the left-over
        np.testing.assert_array_equal(idx, s.permutation(epoch)[:9])
        assert sorted(s.permutation(epoch).tolist()) == list(range(N))


def test_order_is_a_function_of_key_and_step(key):
    a, b = BatchSampler(key, N, BS), BatchSampler(key, N, BS)
    steps = [7, 0, 4, 4, 1]  # any access order, with cache misses
    for s in steps:
        np.testing.assert_array_equal(a.indices(s), b.indices(s))
    other = BatchSampler(jax.random.fold_in(key, 1), 50, 5)
    same = BatchSampler(key, 50, 5)
    assert not np.array_equal(other.permutation(0), same.permutation(0))


def test_epochs_differ(key):
    s = BatchSampler(key, 50, 5)
    perms = [s.permutation(e).copy() for e in range(3)]
    assert not np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[1], perms[2])


def test_indices_for_equals_stacked_indices(key):
    s = BatchSampler(key, N, BS)
    got = s.indices_for(2, 5)  # crosses an epoch boundary
    assert got.shape == (5, BS)
    np.testing.assert_array_equal(got, np.stack([BatchSampler(key, N, BS).indices(t) for t in range(2, 7)]))


def test_iterate_batches_follows_the_sampler(key, rng):
    x = rng.standard_normal((N, 2))
    s = BatchSampler(key, N, BS)
    batches = list(iterate_batches(key, x, BS, num_steps=4, start=2))
    assert len(batches) == 4
    for i, b in enumerate(batches):
        np.testing.assert_array_equal(b, x[s.indices(2 + i)])


def test_sampler_bad_arguments(key):
    with pytest.raises(ValueError, match=r"batch_size=11 is larger than the data set \(10 examples\)"):
        BatchSampler(key, N, 11)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        BatchSampler(key, N, 0)
    with pytest.raises(ValueError, match=r"num_examples must be a positive integer"):
        BatchSampler(key, 0, 1)


# ---------------------------------------------------------------------- transforms
def test_dynamic_binarize_is_bernoulli(key):
    n = 20000
    p = jnp.array([0.0, 0.1, 0.5, 0.8, 1.0], jnp.float32)
    x = jnp.broadcast_to(p, (n, 5))
    b = np.asarray(jax.jit(dynamic_binarize)(key, x))
    assert b.shape == (n, 5) and b.dtype == np.float32
    assert set(np.unique(b)) <= {0.0, 1.0}
    mean = b.mean(axis=0)
    p64 = np.asarray(p, np.float64)
    tol = 5 * np.sqrt(p64 * (1 - p64) / n)  # 5 standard errors; exact at p = 0 and 1
    assert mean[0] == 0.0 and mean[-1] == 1.0
    assert np.all(np.abs(mean - p64) <= tol), (mean, p64, tol)
    # a fresh key gives a fresh draw
    b2 = np.asarray(jax.jit(dynamic_binarize)(jax.random.fold_in(key, 1), x))
    assert not np.array_equal(b, b2)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_uniform_dequantize_stays_in_its_bin(key, levels):
    k = np.arange(levels, dtype=np.float32)
    grid = np.tile(k / (levels - 1), (256, 1)).astype(np.float32)  # data on the grid k/(L-1)
    dequantize = jax.jit(uniform_dequantize, static_argnames="num_levels")
    y = np.asarray(dequantize(key, jnp.asarray(grid), num_levels=levels))
    assert y.shape == grid.shape and y.dtype == np.float32
    lo = (k / np.float32(levels)).astype(np.float32)
    hi = ((k + 1) / np.float32(levels)).astype(np.float32)
    assert np.all(y >= lo) and np.all(y < hi)  # half-open bins [k/L, (k+1)/L), bounds in float32
    offsets = (y * levels - k).astype(np.float64)  # u ~ U[0, 1) within each bin
    n = offsets.size
    assert abs(offsets.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(offsets.var() - 1 / 12) < 0.02


def test_uniform_dequantize_bad_levels(key):
    with pytest.raises(ValueError, match=r"num_levels must be a positive integer, got 0"):
        uniform_dequantize(key, jnp.zeros(3), num_levels=0)


def test_signed_unit_round_trip(rng):
    x = rng.uniform(size=(4, 3)).astype(np.float32)
    s = np.asarray(to_signed(x))
    assert s.min() >= -1 and s.max() <= 1
    np.testing.assert_allclose(s, 2 * x - 1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_unit(s), x, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- splits
@pytest.mark.parametrize("n,fraction", [(10, 0.2), (97, 0.33), (5, 0.5)])
def test_train_test_split_disjoint_and_covering(key, n, fraction):
    train, test = train_test_split(key, n, test_fraction=fraction)
    assert len(test) == int(round(n * fraction))
    assert set(train.tolist()).isdisjoint(test.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted
    again = train_test_split(key, n, test_fraction=fraction)
    np.testing.assert_array_equal(again[1], test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_test_split_bad_fraction(key, fraction):
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        train_test_split(key, 10, test_fraction=fraction)
