"""The CLIP objective as free pure functions (Radford et al. 2021, Figure 3).

Notation: ``u_i`` the L2-normalised embedding of image ``i``, ``v_j`` that of caption ``j``
(caption ``i`` belongs to image ``i``), ``t`` the learned log-temperature and
``s = min(exp(t), max_scale)`` the logit scale. The logits of a batch are one matmul,
``S = s U V^T``, and the loss is the symmetric InfoNCE: the mean of the cross-entropy of each
row (image -> its caption among the batch's captions) and of each column (caption -> its image)
with the diagonal as targets.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax.types import Array

#: CLIP's initial temperature, 0.07: the log-scale starts at ``log(1 / 0.07)``.
INIT_TEMPERATURE = 0.07
#: CLIP's cap on the logit scale ("clipped to prevent scaling the logits by more than 100").
MAX_LOGIT_SCALE = 100.0


def init_log_scale(temperature: float = INIT_TEMPERATURE) -> float:
    """The initial learned log-scale ``t = log(1 / temperature)`` (2.659 for 0.07)."""
    return math.log(1.0 / temperature)


def logit_scale(log_scale: Array, *, max_scale: float = MAX_LOGIT_SCALE) -> Array:
    """``s = exp(min(t, log max_scale))``: the learned scale, capped at ``max_scale``.

    The cap is a clamp of the value: past it the scale is exactly ``max_scale`` and the
    gradient with respect to ``t`` is zero (as CLIP's in-place clamp of the parameter,
    written as a pure function). Below it, ``ds/dt = s``.
    """
    return jnp.exp(jnp.minimum(log_scale, math.log(max_scale)))


def l2_normalize(x: Array, *, eps: float = 1e-6) -> Array:
    """``x / max(||x||, eps)`` over the last axis (a zero vector stays zero, never NaN)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def clip_logits(image_emb: Array, text_emb: Array, log_scale: Array, *, max_scale: float = MAX_LOGIT_SCALE) -> Array:
    """``logits[i, j] = s <u_i, v_j>``: one matmul over the batch.

    Args:
      image_emb: ``(b, d)`` L2-normalised image embeddings.
      text_emb: ``(b', d)`` L2-normalised text embeddings.
      log_scale: scalar learned log-scale ``t`` (see :func:`logit_scale`).

    Returns:
      ``(b, b')`` logits.
    """
    return logit_scale(log_scale, max_scale=max_scale) * (image_emb @ text_emb.T)


def symmetric_info_nce(logits: Array) -> Array:
    """Per-pair symmetric InfoNCE of a square ``(b, b)`` logit matrix.

    ``l_i = (CE(row i, target i) + CE(column i, target i)) / 2`` with
    ``CE(row i) = logsumexp_j S_ij - S_ii`` and ``CE(column i) = logsumexp_j S_ji - S_ii``;
    the mean over ``i`` is CLIP's loss. It is 0 only when every pair outscores the rest of
    its row and column infinitely; with ``b`` indistinguishable pairs it is ``log b``.

    Args:
      logits: ``(b, b)``, rows images, columns captions; pair ``i`` on the diagonal.

    Returns:
      ``(b,)`` per-pair losses in nats.
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"logits must be a square (b, b) matrix with the pairs on its diagonal, got shape {logits.shape}")
    diag = jnp.diagonal(logits)
    image_to_text = jax.nn.logsumexp(logits, axis=1) - diag
    text_to_image = jax.nn.logsumexp(logits, axis=0) - diag
    return 0.5 * (image_to_text + text_to_image)
