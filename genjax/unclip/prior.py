"""unCLIP's diffusion prior (Ramesh et al., 2022, sec. 2.1): caption -> CLIP image embedding.

* The prior diffuses CLIP image embeddings in *prior space*: a unit-norm ``d``-vector times
  ``sqrt(d)`` (:func:`to_prior_space`), so each coordinate has about unit variance, the scale the
  noise schedule assumes; :func:`from_prior_space` L2-normalises a sample back onto the sphere.
* :func:`prior_ddpm` is a DDPM over ``(d,)`` vectors (``data_range="identity"``) whose network,
  ``nn.PriorTransformer``, predicts the clean embedding (``prediction="x0"``, the MSE of the
  clean embedding is the loss, as in the paper) from a causal Transformer over the caption's
  token states, its CLIP text embedding, the timestep, the noised embedding and a final query.
  Classifier-free guidance: the caption is replaced by the empty caption with probability
  ``p_uncond`` in training.
* :func:`sample_prior` draws ``num_candidates`` embeddings per prompt and keeps, for each
  prompt, the one with the highest dot product with the prompt's text embedding
  (:func:`select_candidates`; the paper samples two).
* :func:`prior_training_data`: the CLIP image embeddings of a data set, in prior space, with the
  images' ``K`` captions (``{"x", "cond"}``; ``fit(..., transform=genjax.clip.pick_caption)``
  draws one caption per image per step).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._xla import chunked_map
from genjax.diffusion import constructors as dif_constructors
from genjax.diffusion.ddpm import DDPM
from genjax.nn.prior import NUM_EXTRA_TOKENS, PriorTransformer
from genjax.types import Array, Condition, Params, PRNGKeyArray


def embed_scale(d: int) -> float:
    """``sqrt(d)``: the factor from a unit-norm ``d``-vector to unit variance per coordinate."""
    return math.sqrt(_checks.positive_int("d", d))


def to_prior_space(emb):
    """``(n, d)`` unit-norm CLIP embeddings -> ``emb * sqrt(d)`` (numpy in, numpy out)."""
    if np.ndim(emb) < 1:
        raise ValueError(f"emb must have shape (..., d), got shape {np.shape(emb)}")
    return emb * embed_scale(int(np.shape(emb)[-1]))


def from_prior_space(z: Array, *, eps: float = 1e-6) -> Array:
    """``(n, d)`` prior-space vectors -> unit-norm embeddings ``z / max(||z||, eps)``."""
    norm = jnp.sqrt(jnp.sum(jnp.square(z), axis=-1, keepdims=True))
    return z / jnp.maximum(norm, eps)


def prior_ddpm(
    embed_dim: int,
    *,
    text_encoder: Callable,
    text_condition: Condition,
    null_tokens: Sequence[int],
    width: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    T: int = 1000,
    schedule: str = "cosine",
    p_uncond: float = 0.1,
) -> DDPM:
    """The diffusion prior: a DDPM over ``(embed_dim,)`` prior-space CLIP image embeddings.

    Args:
      embed_dim: the CLIP embedding width ``d``.
      text_encoder: frozen ``tokens (b, L) -> (states (b, L, w), text_emb (b, d_e))``, e.g.
        ``genjax.clip.FrozenTextEncoder(clip, params, with_embedding=True)``.
      text_condition: the captions' ``Condition(kind="tokens", ...)``; its ``max_len`` sizes
        the network's position table (``max_len + 4``).
      null_tokens: the empty caption's tokens (caption dropout, the unconditional branch).
      width, depth, num_heads: the ``PriorTransformer``'s.
      T, schedule: the discrete schedule (``"cosine"``, the paper's, or ``"linear"``).
      p_uncond: caption-drop probability in training (classifier-free guidance; paper: 0.1).

    Returns:
      a :class:`~genjax.diffusion.ddpm.DDPM` with ``prediction="x0"``, ``data_range="identity"``,
      default sampler DDIM; batches ``{"x": (b, embed_dim) prior-space embeddings, "cond":
      (b, L) tokens}``.

    Raises:
      ValueError: naming the argument (a text encoder built without ``with_embedding``, a
        condition without ``max_len``, a non-positive size).
      TypeError: a ``text_encoder`` that is not callable.
    """
    embed_dim = _checks.positive_int("embed_dim", embed_dim)
    if not callable(text_encoder):
        raise TypeError(f"text_encoder must be callable (tokens -> (states, text_emb)), got {type(text_encoder).__name__}")
    if getattr(text_encoder, "with_embedding", True) is False:
        raise ValueError("text_encoder must return (states, text_emb): build it as FrozenTextEncoder(clip, params, "
                         "with_embedding=True)")
    if not isinstance(text_condition, Condition) or text_condition.kind != "tokens" or text_condition.max_len is None:
        raise ValueError("text_condition must be a types.Condition(kind='tokens', ...) with a max_len (it sizes the "
                         f"prior's position table), got {text_condition!r}")
    net = PriorTransformer(_checks.positive_int("width", width), _checks.positive_int("depth", depth),
                           _checks.positive_int("num_heads", num_heads), max_len=text_condition.max_len + NUM_EXTRA_TOKENS)
    return DDPM(
        net, (embed_dim,), dif_constructors.discrete_schedule(schedule, T), p_uncond=p_uncond, default_sampler="ddim",
        data_range="identity", prediction="x0", text_encoder=text_encoder, text_condition=text_condition,
        null_tokens=tuple(null_tokens),
    )


def select_candidates(candidates: Array, text_emb: Array) -> Array:
    """For each prompt, the candidate with the highest dot product with its text embedding.

    Args:
      candidates: ``(n, k, d)``: ``k`` candidate image embeddings per prompt.
      text_emb: ``(n, d)``: each prompt's CLIP text embedding.

    Returns:
      ``(n, d)``: ``candidates[i, argmax_j <candidates[i, j], text_emb[i]>]``; a tie keeps the
      first of the tied candidates (``jnp.argmax``'s rule).

    Raises:
      ValueError: shapes that do not match.
    """
    if np.ndim(candidates) != 3:
        raise ValueError(f"candidates must have shape (n, k, d), got shape {np.shape(candidates)}")
    n, _, d = np.shape(candidates)
    if tuple(np.shape(text_emb)) != (n, d):
        raise ValueError(f"text_emb must have shape (n, d) = ({n}, {d}), got shape {np.shape(text_emb)}")
    scores = jnp.einsum("nkd,nd->nk", candidates, text_emb)
    best = jnp.argmax(scores, axis=1)
    return jnp.take_along_axis(candidates, best[:, None, None], axis=1)[:, 0]


def sample_prior(
    prior: DDPM,
    params: Params,
    key: PRNGKeyArray,
    tokens: Array,
    *,
    text_emb: Array | None = None,
    num_candidates: int = 2,
    guidance=None,
    **sampler,
) -> Array:
    """Unit-norm CLIP image embeddings for ``n`` captions, best of ``num_candidates`` each.

    One ``prior.sample`` call draws ``num_candidates`` embeddings for every caption (the
    captions repeated: row ``i * k + j`` is candidate ``j`` of caption ``i``), they are mapped
    back onto the sphere (:func:`from_prior_space`) and :func:`select_candidates` keeps the one
    closest to the caption's text embedding.

    Args:
      prior: a :func:`prior_ddpm`.
      params: its parameters.
      key: the sampler's key (the result is a function of it).
      tokens: ``(n, L)`` caption tokens.
      text_emb: ``(n, d)`` the captions' CLIP text embeddings (``None``: computed by the prior's
        text encoder).
      num_candidates: ``k``, candidates per caption (paper: 2; 1: no selection).
      guidance: classifier-free guidance weight (``None`` or 0: the plain conditional prior).
      **sampler: ``prior.sample``'s sampler keywords (``sampler``, ``steps``, ``eta``).

    Returns:
      ``(n, d)`` unit-norm image embeddings.

    Raises:
      ValueError: naming the argument, before any sampling.
    """
    k = _checks.positive_int("num_candidates", num_candidates)
    if np.ndim(tokens) != 2:
        raise ValueError(f"tokens must have shape (n, L), got shape {np.shape(tokens)}")
    n, d = int(np.shape(tokens)[0]), prior.data_shape[-1]
    if text_emb is None:
        text_emb = prior.text_encoder(tokens)[1]
    if tuple(np.shape(text_emb)) != (n, d):
        raise ValueError(f"text_emb must have shape (n, d) = ({n}, {d}), got shape {np.shape(text_emb)}")
    z = prior.sample(params, key, n * k, cond=jnp.repeat(jnp.asarray(tokens), k, axis=0), guidance=guidance, **sampler)
    return select_candidates(from_prior_space(z).reshape(n, k, d), jnp.asarray(text_emb))


def prior_training_data(clip, clip_params: Params, images, tokens_k, *, batch: int = 500) -> dict[str, np.ndarray]:
    """What the prior trains on: ``{"x": (n, d) prior-space CLIP image embeddings, "cond": tokens_k}``.

    Args:
      clip: a trained CLIP (anything with ``encode_image(params, images) -> (n, d)`` unit-norm).
      clip_params: its parameters.
      images: ``(n, H, W, C)`` the training images.
      tokens_k: ``(n, K, L)`` ``K`` caption tokens per image (or ``(n, L)``, one each); train with
        ``transform=genjax.clip.pick_caption``, which draws one per image per step.
      batch: images embedded per jitted call (the last chunk is padded: one compilation).

    Returns:
      host arrays ``{"x": to_prior_space(embeddings) float32, "cond": tokens_k int32}``.

    Raises:
      ValueError: ``tokens_k`` not ``(n, K, L)`` / ``(n, L)`` for the ``n`` images.
    """
    batch = _checks.positive_int("batch", batch)
    n = int(np.shape(images)[0]) if np.ndim(images) else 0
    if np.ndim(tokens_k) not in (2, 3) or np.shape(tokens_k)[0] != n:
        raise ValueError(f"tokens_k must have shape (n, K, L) or (n, L) for the n={n} images, got shape {np.shape(tokens_k)}")
    emb = chunked_map(clip.encode_image, clip_params, images, chunk=batch)
    return {"x": np.asarray(to_prior_space(emb), np.float32), "cond": np.asarray(tokens_k, np.int32)}
