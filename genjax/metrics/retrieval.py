"""Retrieval metrics on embeddings (CLIP-style image/text evaluation).

* ``similarity(a, b)``: the cosine-similarity matrix ``(n, m)`` of two embedding sets.
* ``recall_at_k(sim, k, targets=...)``: the share of query rows whose target column is among
  their ``k`` most similar columns. Rows are queries, columns candidates: image->text is
  ``sim``, text->image is ``sim.T`` (with the targets of that direction).
* ``zero_shot_accuracy(image_emb, class_emb, labels)``: the share of images whose most
  similar class embedding is their label's.
* ``r_precision(key, sim, num_candidates=R)``: CLIP R-precision: each query ranks its target
  among ``R`` candidates (the target and ``R - 1`` random other columns); the share ranked first.

**Ties count against the query** (a pessimistic rank): the target is among the top ``k`` iff
fewer than ``k`` non-target columns score *at least as high* as it. So a constant similarity
matrix retrieves nothing at ``k < m``, and a collapsed encoder cannot score by luck of the
sort order. All functions are jax-traceable and return a float32 scalar array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks


def _matrix(name: str, x) -> None:
    if np.ndim(x) != 2 or 0 in np.shape(x):
        raise ValueError(f"{name} must be a non-empty matrix (rows, columns), got shape {np.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {jnp.result_type(x)}")


def similarity(a: jax.Array, b: jax.Array, *, eps: float = 1e-12) -> jax.Array:
    """Cosine similarity of every row of ``a`` with every row of ``b``.

    Args:
      a: ``(n, d)`` embeddings.
      b: ``(m, d)`` embeddings.
      eps: floor of the norms (a zero row has similarity 0 with everything).

    Returns:
      ``(n, m)``: ``<a_i, b_j> / (|a_i| |b_j|)``, in ``[-1, 1]``.

    Raises:
      ValueError: naming ``a`` or ``b`` for a wrong rank, dtype or width.
    """
    _matrix("a", a)
    _matrix("b", b)
    if np.shape(a)[1] != np.shape(b)[1]:
        raise ValueError(f"a and b must have the same width d, got a {np.shape(a)} and b {np.shape(b)}")
    a, b = jnp.asarray(a), jnp.asarray(b)
    a = a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), eps)
    b = b / jnp.maximum(jnp.linalg.norm(b, axis=1, keepdims=True), eps)
    return a @ b.T


def _relevance(sim_shape: tuple[int, int], targets, name: str = "targets") -> jax.Array:
    """``(n, m)`` bool relevance matrix from ``None`` (the diagonal, needs ``n <= m``), per-row
    target indices ``(n,)`` or a bool matrix ``(n, m)`` (every row with a True)."""
    n, m = sim_shape
    if targets is None:
        if n > m:
            raise ValueError(f"{name}=None means the diagonal, which needs rows <= columns; sim has shape {sim_shape}")
        return jnp.eye(n, m, dtype=bool)
    shape = tuple(np.shape(targets))
    dtype = jnp.result_type(targets)
    if shape == (n, m) and dtype == jnp.bool_:
        if _checks.is_concrete(targets) and not np.asarray(targets).any(axis=1).all():
            rows = np.flatnonzero(~np.asarray(targets).any(axis=1))
            raise ValueError(f"{name}: rows {rows[:10].tolist()} have no relevant column (recall is undefined there)")
        return jnp.asarray(targets)
    if shape == (n,) and jnp.issubdtype(dtype, jnp.integer):
        if _checks.is_concrete(targets):
            t = np.asarray(targets)
            if t.size and (t.min() < 0 or t.max() >= m):
                raise ValueError(f"{name} must be column indices in [0, {m}), got values in [{t.min()}, {t.max()}]")
        return jnp.arange(m)[None, :] == jnp.asarray(targets)[:, None]
    raise ValueError(
        f"{name} must be None (the diagonal), int indices of shape ({n},) or a bool relevance "
        f"matrix of shape {sim_shape}; got shape {shape} and dtype {dtype}"
    )


def _rank(sim: jax.Array, relevant: jax.Array) -> jax.Array:
    """``(n,)`` pessimistic 0-based rank of each row's best relevant column: the number of
    non-relevant columns scoring at least as high as it."""
    best = jnp.max(jnp.where(relevant, sim, -jnp.inf), axis=1, keepdims=True)
    return jnp.sum((sim >= best) & ~relevant, axis=1)


def _hit_rate(sim: jax.Array, relevant: jax.Array, k: int) -> jax.Array:
    """The mean over rows of ``rank < k`` (see :func:`_rank`): hits / rows, so that all hits
    give exactly 1."""
    return jnp.sum(_rank(sim, relevant) < k).astype(jnp.float32) / sim.shape[0]


def recall_at_k(sim: jax.Array, k: int, *, targets=None) -> jax.Array:
    """The share of query rows whose target is among their ``k`` most similar columns.

    Args:
      sim: ``(n, m)`` similarities; rows are queries, columns candidates.
      k: how many top columns count as retrieved (``k >= m``: every row is a hit).
      targets: ``None``: row ``i``'s target is column ``i`` (paired sets); ``(n,)`` int: the
        target column of each row (e.g. text->image with several captions per image:
        ``sim.T`` with ``targets = image index of each caption``); ``(n, m)`` bool: a
        relevance matrix (many-to-many, e.g. image->text with several captions per image);
        a row is a hit if any relevant column is among its top ``k``.

    Returns:
      A float32 scalar: the mean hit rate. Ties count against the query: a row is a hit iff
      fewer than ``k`` non-relevant columns score at least as high as its best relevant one.

    Raises:
      ValueError: naming ``sim``, ``k`` or ``targets``.
    """
    _matrix("sim", sim)
    _checks.positive_int("k", k)
    sim = jnp.asarray(sim)
    return _hit_rate(sim, _relevance(sim.shape, targets), k)


def zero_shot_accuracy(image_emb: jax.Array, class_emb: jax.Array, labels) -> jax.Array:
    """Zero-shot classification accuracy: each image's class is the argmax over classes of the
    cosine similarity to the class embeddings (e.g. CLIP's prompt embeddings).

    Args:
      image_emb: ``(n, d)`` image embeddings.
      class_emb: ``(C, d)`` one embedding per class.
      labels: ``(n,)`` int true classes in ``[0, C)``.

    Returns:
      A float32 scalar: the share of images whose label's class is the most similar; a tie
      with another class counts as wrong (``recall_at_k(similarity(...), 1, targets=labels)``).

    Raises:
      ValueError: naming the argument.
    """
    sim = similarity(image_emb, class_emb)
    if np.shape(labels) != (sim.shape[0],) or not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"labels must be int class indices of shape ({sim.shape[0]},), got shape "
                         f"{np.shape(labels)} and dtype {jnp.result_type(labels)}")
    return _hit_rate(sim, _relevance(sim.shape, labels, name="labels"), 1)


def r_precision(key: jax.Array, sim: jax.Array, *, num_candidates: int, targets=None) -> jax.Array:
    """CLIP R-precision: for each query row, its target column and ``R - 1`` other columns drawn
    uniformly without replacement form the candidates; a hit if the target scores strictly
    highest among them (ties count against the query). With ``R = m`` it is ``recall@1``.

    Args:
      key: draws the ``R - 1`` negatives of each row (independently per row).
      sim: ``(n, m)`` similarities (rows: images, columns: one caption per image).
      num_candidates: ``R``, in ``[2, m]``.
      targets: ``None`` (the diagonal) or ``(n,)`` int target columns. Negatives are drawn
        from every other column, so ``sim`` should hold one caption per image.

    Returns:
      A float32 scalar: the share of rows whose target ranks first among its ``R``.

    Raises:
      ValueError: naming ``sim``, ``num_candidates`` or ``targets``.
    """
    _matrix("sim", sim)
    n, m = np.shape(sim)
    r = _checks.positive_int("num_candidates", num_candidates)
    if not 2 <= r <= m:
        raise ValueError(f"num_candidates must be in [2, {m}] (the number of columns of sim), got {r}")
    if targets is not None and jnp.result_type(targets) == jnp.bool_:
        raise ValueError(f"targets must be None or int indices of shape ({n},) for r_precision, got a bool matrix")
    sim = jnp.asarray(sim)
    relevant = _relevance((n, m), targets)
    # R - 1 negatives per row: the columns with the smallest uniform scores among the non-targets
    u = jnp.where(relevant, jnp.inf, jax.random.uniform(key, (n, m)))
    drawn = jnp.zeros((n, m), bool).at[jnp.arange(n)[:, None], jnp.argsort(u, axis=1)[:, : r - 1]].set(True)
    return _hit_rate(jnp.where(drawn | relevant, sim, -jnp.inf), relevant, 1)
