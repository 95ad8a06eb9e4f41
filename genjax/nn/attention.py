"""Multi-head cross-attention: queries from image (or any) features, keys and values from a
condition sequence (e.g. text tokens' embeddings), with a mask for padding.

* ``dot_product_attention(q, k, v, mask)``: ``softmax(q k^T / sqrt(d) + log mask) v`` per
  head, ``q (b, N, H, d)``, ``k, v (b, L, H, d)``, ``mask (b, L)`` bool (True: a real
  position). Masked positions get weight exactly 0, so padding never changes the output; a
  row whose positions are all masked attends to nothing and gives 0. ``causal=True`` (self-
  attention, ``N == L``) also masks the keys after each query: query ``i`` sees keys ``<= i``.
* ``CrossAttention``: dense projections ``q = Dense(x)``, ``k = Dense(context)``,
  ``v = Dense(context)`` split into ``num_heads`` heads, the attention above, heads
  concatenated and a dense output projection to ``x``'s width. With ``context = x`` it is
  self-attention (``causal=True``: causal self-attention, as in a text transformer).
* ``CrossAttentionBlock``: residual ``x + CrossAttention(GroupNorm(x), context)`` over the
  ``H * W`` positions of an NHWC feature map (the UNet's block, as in latent diffusion),
  optionally with a learned position embedding on the queries.

The softmax runs in float32 whatever ``dtype`` the projections compute in.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def check_context(context, mask, batch: int, *, name: str = "context") -> None:
    """Raises ``ValueError`` unless ``context`` is ``(batch, L, D)`` floating and ``mask``
    ``None`` or ``(batch, L)`` (static checks)."""
    shape = tuple(np.shape(context))
    if len(shape) != 3 or shape[0] != batch or shape[1] < 1:
        raise ValueError(f"{name} must have shape (batch, L, D) = ({batch}, L, D) with L >= 1, got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(context), jnp.floating):
        raise ValueError(f"{name} must be a floating-point array (token embeddings), got dtype {jnp.result_type(context)}")
    if mask is not None and tuple(np.shape(mask)) != shape[:2]:
        raise ValueError(f"{name}_mask must have shape (batch, L) = {shape[:2]}, got shape {tuple(np.shape(mask))}")


def dot_product_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, *, causal: bool = False
) -> jax.Array:
    """Multi-head scaled dot-product attention with a key mask.

    Args:
      q: ``(b, N, H, d)`` queries.
      k, v: ``(b, L, H, d)`` keys and values.
      mask: ``(b, L)`` bool, True at real (attended) positions; ``None``: all.
      causal: also mask the keys after each query (query ``i`` attends to keys ``j <= i``);
        self-attention only, so ``N == L``.

    Returns:
      ``(b, N, H, d)``: per head ``softmax(q k^T / sqrt(d))`` over the unmasked keys, times
      ``v``; rows with no unmasked key give 0.

    Raises:
      ValueError: ``causal=True`` with ``N != L``.
    """
    d = q.shape[-1]
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    m = None if mask is None else jnp.asarray(mask, bool)[:, None, None, :]
    if causal:
        n, length = q.shape[1], k.shape[1]
        if n != length:
            raise ValueError(f"causal attention needs as many queries as keys (self-attention), got N={n}, L={length}")
        tri = jnp.tril(jnp.ones((n, length), bool))[None, None]
        m = tri if m is None else m & tri
    if m is None:
        w = jax.nn.softmax(logits, axis=-1)
    else:
        logits = jnp.where(m, logits, jnp.finfo(logits.dtype).min)
        w = jax.nn.softmax(logits, axis=-1)
        w = jnp.where(m, w, 0.0)  # exactly 0 at padding, and 0 everywhere for an all-padding row
    return jnp.einsum("bhqk,bkhd->bqhd", w.astype(v.dtype), v)


class CrossAttention(nn.Module):
    """``x (b, N, C)``, ``context (b, L, D)``, ``mask (b, L)`` -> ``(b, N, out_features or C)``.

    Attributes:
      num_heads: attention heads.
      head_dim: width per head (default ``C // num_heads``).
      out_features: output width (default ``C``).
      dtype: computation dtype of the projections (``None``: params' dtype).
      causal: causal self-attention (pass ``context = x``): position ``i`` attends to
        ``j <= i`` only.
    """

    num_heads: int = 1
    head_dim: int | None = None
    out_features: int | None = None
    dtype: Any = None
    causal: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        if np.ndim(x) != 3:
            raise ValueError(f"CrossAttention: x must have shape (batch, N, C), got shape {np.shape(x)}")
        b, n, c = np.shape(x)
        check_context(context, mask, b)
        if self.head_dim is None and c % self.num_heads:
            raise ValueError(f"CrossAttention: channels {c} not divisible by num_heads={self.num_heads}")
        dh = self.head_dim if self.head_dim is not None else c // self.num_heads
        inner, dt = self.num_heads * dh, self.dtype
        q = nn.Dense(inner, dtype=dt, name="q")(x).reshape(b, n, self.num_heads, dh)
        k = nn.Dense(inner, dtype=dt, name="k")(context).reshape(b, -1, self.num_heads, dh)
        v = nn.Dense(inner, dtype=dt, name="v")(context).reshape(b, -1, self.num_heads, dh)
        out = dot_product_attention(q, k, v, mask, causal=self.causal).reshape(b, n, inner)
        return nn.Dense(self.out_features or c, dtype=dt, name="out")(out)


class CrossAttentionBlock(nn.Module):
    """Residual cross-attention over the ``H * W`` positions: ``(b, H, W, C) -> same``,
    ``x + CrossAttention(GroupNorm(x) [+ P], context, mask)``.

    ``query_positions``: add a learned ``(H, W, C)`` position embedding ``P`` (initialised
    N(0, 0.02^2), as ViT's) to the queries' input only, so each position can ask for the
    part of the condition that belongs there ("a 3 on the left and a 7 on the right"); the
    keys and values (the condition) are unchanged.
    """

    num_heads: int = 1
    num_groups: int = 8
    dtype: Any = None
    query_positions: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        b, hgt, wid, c = x.shape
        h = nn.GroupNorm(num_groups=math.gcd(c, self.num_groups), epsilon=1e-6, dtype=self.dtype, name="norm")(x)
        if self.query_positions:
            pos = self.param("query_pos", nn.initializers.normal(0.02), (hgt, wid, c), jnp.float32)
            h = h + pos.astype(h.dtype)
        out = CrossAttention(self.num_heads, dtype=self.dtype, name="attn")(h.reshape(b, hgt * wid, c), context, mask)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        return x + out.reshape(b, hgt, wid, c)
