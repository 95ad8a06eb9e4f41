"""Retrieval metrics (issue 18): hand-made embeddings whose answers are known, ties counted
against the query, and a brute-force NumPy loop on random matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.metrics import r_precision, recall_at_k, similarity, zero_shot_accuracy


def _brute_recall(sim, k, relevant):
    """Per row: sort the columns by descending similarity; a hit if a relevant column is among
    the first k (random floats: no ties)."""
    hits = [relevant[i, np.argsort(-sim[i])[:k]].any() for i in range(sim.shape[0])]
    return float(np.mean(hits))


def test_similarity_is_cosine(rng):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    ref = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(np.asarray(similarity(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))),
                               ref, rtol=1e-5, atol=1e-6)
    # scale-free, and a zero row is similar to nothing
    np.testing.assert_allclose(np.asarray(similarity(3.0 * a, 0.5 * b)), ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(similarity(np.zeros((1, 3)), b)) == 0.0)


def test_recall_on_identity_with_one_swapped_pair():
    n = 6
    images = np.eye(n)
    perm = np.array([1, 0, 2, 3, 4, 5])  # captions 0 and 1 describe each other's image ...
    captions = images[perm] + 0.5 * images  # ... and a little of their own (no ties)
    sim = similarity(images, captions)
    assert float(recall_at_k(sim, 1)) == pytest.approx((n - 2) / n)
    assert float(recall_at_k(sim, 2)) == 1.0
    assert float(recall_at_k(sim.T, 1)) == pytest.approx((n - 2) / n)  # the other direction
    assert float(recall_at_k(sim.T, 2)) == 1.0
    assert float(recall_at_k(sim, 1, targets=perm)) == 1.0
    # pure one-hot swaps: the targets of rows 0 and 1 tie at 0 with four columns -> misses up to k = 5
    onehot = similarity(images, images[perm])
    assert [float(recall_at_k(onehot, k)) for k in (1, 2, 5, 6)] == pytest.approx([4 / 6, 4 / 6, 4 / 6, 1.0])


def test_ties_count_against_the_query():
    sim = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.2, 0.9]], np.float32)
    # row 0: target tied with one column -> rank 1; row 1: tied with two -> rank 2; row 2: rank 0
    assert float(recall_at_k(sim, 1)) == pytest.approx(1 / 3)
    assert float(recall_at_k(sim, 2)) == pytest.approx(2 / 3)
    assert float(recall_at_k(sim, 3)) == 1.0
    assert float(recall_at_k(np.zeros((4, 4), np.float32), 3)) == 0.0  # a collapsed encoder scores nothing
    # relevance matrix: two relevant columns tied with each other do not push each other down
    rel = np.array([[True, True, False], [False, False, True], [False, False, True]])
    assert float(recall_at_k(sim, 1, targets=rel)) == pytest.approx(2 / 3)


def test_recall_matches_brute_force(rng):
    for n, m in ((7, 7), (5, 9), (9, 4)):
        sim = rng.normal(size=(n, m)).astype(np.float32)
        targets = rng.integers(0, m, size=n)
        rel = rng.random((n, m)) < 0.3
        rel[np.arange(n), targets] = True
        for k in (1, 2, 3, m):
            got = float(recall_at_k(sim, k, targets=targets))
            assert got == pytest.approx(_brute_recall(sim, k, np.arange(m)[None] == targets[:, None]))
            assert float(recall_at_k(sim, k, targets=rel)) == pytest.approx(_brute_recall(sim, k, rel))
            if n <= m:
                assert float(recall_at_k(sim, k)) == pytest.approx(_brute_recall(sim, k, np.eye(n, m, dtype=bool)))
    square = sim[:4]
    jitted = jax.jit(recall_at_k, static_argnums=1)(jnp.asarray(square), 2)  # traceable
    assert float(jitted) == pytest.approx(_brute_recall(square, 2, np.eye(4, dtype=bool)))


def test_zero_shot_accuracy_is_argmax_over_classes(rng):
    classes = np.eye(3, 4)  # 3 classes in 4-d
    images = np.array([[2, 0.1, 0, 0], [0, 1, 0.2, 0], [0.1, 0, 5, 1], [1, 1, 0, 0]], np.float32)
    labels = np.array([0, 1, 1, 0])  # image 2 is wrong (class 2), image 3 ties classes 0 and 1 (a miss)
    assert float(zero_shot_accuracy(images, classes, labels)) == pytest.approx(0.5)
    x, c = rng.normal(size=(20, 5)), rng.normal(size=(4, 5))
    y = rng.integers(0, 4, size=20)
    pred = np.argmax(x @ c.T / np.linalg.norm(c, axis=1), axis=1)
    assert float(zero_shot_accuracy(x, c, y)) == pytest.approx(np.mean(pred == y))


def test_r_precision(key, rng):
    sim = rng.normal(size=(8, 8)).astype(np.float32)
    # R = m: every other column is a candidate, so it is recall@1
    assert float(r_precision(key, sim, num_candidates=8)) == pytest.approx(float(recall_at_k(sim, 1)))
    assert float(r_precision(key, np.eye(8, dtype=np.float32), num_candidates=3)) == 1.0
    assert float(r_precision(key, -np.eye(8, dtype=np.float32), num_candidates=2)) == 0.0
    # each target is beaten by exactly one of the n - 1 others: a hit iff that one is not drawn,
    # P = 1 - (R - 1) / (n - 1) = 0.75 for n = 41, R = 11 (50 keys x 41 rows: sd 0.01)
    n, r = 41, 11
    beaten = np.eye(n, dtype=np.float32) + 2.0 * np.eye(n, k=1, dtype=np.float32) + 2.0 * np.eye(n, k=1 - n, dtype=np.float32)
    keys = jax.random.split(key, 50)
    rates = jax.vmap(lambda k: r_precision(k, beaten, num_candidates=r))(keys)
    assert float(rates.mean()) == pytest.approx(1 - (r - 1) / (n - 1), abs=0.05)
    targets = np.roll(np.arange(n), -1)  # the beating column as target: always first
    assert float(r_precision(key, beaten, num_candidates=r, targets=targets)) == 1.0


def test_errors_name_the_argument():
    sim = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"sim must be a non-empty matrix"):
        recall_at_k(np.zeros(3, np.float32), 1)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        recall_at_k(sim, 0)
    with pytest.raises(ValueError, match=r"targets must be column indices in \[0, 4\)"):
        recall_at_k(sim, 1, targets=np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"targets must be None \(the diagonal\), int indices of shape \(3,\)"):
        recall_at_k(sim, 1, targets=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets: rows \[1\] have no relevant column"):
        recall_at_k(sim, 1, targets=np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], bool))
    with pytest.raises(ValueError, match="targets=None means the diagonal, which needs rows <= columns"):
        recall_at_k(sim.T, 1)
    with pytest.raises(ValueError, match=r"a and b must have the same width d"):
        similarity(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"labels must be int class indices of shape \(2,\)"):
        zero_shot_accuracy(np.ones((2, 3)), np.ones((4, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must be column indices in \[0, 4\)"):
        zero_shot_accuracy(np.ones((2, 3)), np.ones((4, 3)), np.array([0, 4]))
    with pytest.raises(ValueError, match=r"num_candidates must be in \[2, 4\]"):
        r_precision(jax.random.PRNGKey(0), sim, num_candidates=5)
