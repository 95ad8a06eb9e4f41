"""A small DDPM-style UNet for NHWC images (Ho et al., 2020, at small scale).

``UNet(...)(x, t, y=None, context=None, context_mask=None)``: ``x (b, H, W, C)``, ``t (b,)``
float conditioning scalar, ``y (b,)`` int labels or ``None``, ``context (b, L, D)`` a condition
sequence (token embeddings) with ``context_mask (b, L)`` (True: a real token) for a UNet built
with ``use_context=True`` -> ``(b, H, W, out_channels or C)``.

* embedding ``emb = TimeEmbedding(t) [+ LabelEmbedding(y)]`` of width ``4 * base``; with
  ``cond_dim`` the condition is a float vector ``y (b, cond_dim)`` (e.g. a CLIP image
  embedding, unCLIP's decoder): ``emb = TimeEmbedding(t) + Dense(y)``, and with
  ``vector_tokens = K`` it is also projected into ``K`` extra context tokens that the
  cross-attention blocks attend to (after the ``context`` sequence when there is one);
* a 3x3 input conv to ``base`` channels;
* down path: per level ``i`` (channels ``base * channel_mult[i]``) ``num_res_blocks``
  residual blocks (GroupNorm -> SiLU -> conv, + Dense(SiLU(emb)) per channel, GroupNorm
  -> SiLU -> conv, 1x1 conv on the skip when the width changes), then a stride-2 3x3
  conv, except at the last level; self-attention after each block of the lowest level;
* middle: residual block, self-attention, residual block;
* with ``use_context``: a residual cross-attention block
  (``genjax.nn.attention.CrossAttentionBlock``: queries from the feature map plus a learned
  position embedding, keys and values from ``context``, padding masked) after every
  self-attention block (off by default: the network and its parameters are then exactly
  the plain UNet's);
* up path: per level (reversed) ``num_res_blocks + 1`` residual blocks on the
  concatenation with the stored down-path activations, then nearest-neighbour x2
  upsampling + 3x3 conv, except at the top level;
* GroupNorm -> SiLU -> 3x3 conv to the output channels, initialised at zero (the
  network starts as the zero function).

H and W must be divisible by ``2 ** (len(channel_mult) - 1)``: 8x8, 28x28 and 32x32
all work with ``channel_mult`` of length 3 (28 -> 14 -> 7).

Mixed precision: ``dtype=jnp.bfloat16`` computes the convolutions, dense layers and
attention in bfloat16 while the parameters stay float32 (GroupNorm statistics and the
attention softmax are computed in float32); the output is cast back to at least
float32. ``dtype=None`` (default) computes in the parameters' dtype.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn.attention import CrossAttentionBlock, check_context
from genjax.nn.embeddings import LabelEmbedding, TimeEmbedding, check_labels, check_time, null_label


def _group_norm(channels: int, groups: int, name: str, dtype: Any = None) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    return nn.GroupNorm(num_groups=math.gcd(channels, groups), epsilon=1e-6, dtype=dtype, name=name)


def check_image_size(height: int, width: int, num_levels: int) -> None:
    """Raises ``ValueError`` unless H and W are divisible by ``2 ** (num_levels - 1)``."""
    f = 2 ** (num_levels - 1)
    if height % f or width % f:
        raise ValueError(
            f"UNet: image size {height}x{width} must be divisible by 2**(len(channel_mult) - 1) = {f}; "
            "pad the images or use a shorter channel_mult"
        )


class ResBlock(nn.Module):
    """``(b, H, W, C_in), (b, E) -> (b, H, W, features)`` residual block with time shift."""

    features: int
    num_groups: int = 8
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        dt = self.dtype
        h = nn.silu(_group_norm(x.shape[-1], self.num_groups, "norm_0", dt)(x))
        h = nn.Conv(self.features, (3, 3), padding="SAME", dtype=dt, name="conv_0")(h)
        h = h + nn.Dense(self.features, dtype=dt, name="emb")(nn.silu(emb))[:, None, None, :]
        h = nn.silu(_group_norm(self.features, self.num_groups, "norm_1", dt)(h))
        h = nn.Conv(self.features, (3, 3), padding="SAME", dtype=dt, name="conv_1")(h)
        skip = x if x.shape[-1] == self.features else nn.Conv(self.features, (1, 1), dtype=dt, name="skip")(x)
        if dt is not None:
            skip = skip.astype(dt)
        return skip + h


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the H*W positions, ``(b, H, W, C) -> same``.

    ``out = x + P(softmax(Q K^T / sqrt(d_head)) V)`` with ``Q, K, V`` dense projections
    of ``GroupNorm(x)`` (heads split along channels, ``d_head = C / num_heads``) and
    ``P`` a dense output projection.
    """

    num_heads: int = 1
    num_groups: int = 8
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, hgt, wid, c = x.shape
        if c % self.num_heads:
            raise ValueError(f"AttentionBlock: channels {c} not divisible by num_heads={self.num_heads}")
        dh, dt = c // self.num_heads, self.dtype
        h = _group_norm(c, self.num_groups, "norm", dt)(x).reshape(b, hgt * wid, c)
        q = nn.Dense(c, dtype=dt, name="q")(h).reshape(b, -1, self.num_heads, dh)
        k = nn.Dense(c, dtype=dt, name="k")(h).reshape(b, -1, self.num_heads, dh)
        v = nn.Dense(c, dtype=dt, name="v")(h).reshape(b, -1, self.num_heads, dh)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
        if dt is None:
            w = jax.nn.softmax(logits, axis=-1)
        else:  # the softmax in float32, the weighted sum back in the compute dtype
            w = jax.nn.softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1).astype(dt)
        out = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, hgt * wid, c)
        out = nn.Dense(c, dtype=dt, name="proj")(out)
        if dt is not None:
            x = x.astype(dt)
        return x + out.reshape(b, hgt, wid, c)


class UNet(nn.Module):
    """Time- (and optionally class-) conditional UNet, ``(b, H, W, C) -> (b, H, W, C_out)``.

    Attributes:
      base: channels of the first level.
      channel_mult: per-level channel multipliers; ``len(channel_mult) - 1`` halvings.
      num_res_blocks: residual blocks per level on the way down (``+ 1`` on the way up).
      num_classes: label conditioning (``None``: unconditional). Labels lie in
        ``[0, num_classes]``; ``num_classes`` is the null label, used when ``y=None``.
      out_channels: output channels (default: the input's).
      num_heads: attention heads at the lowest resolution.
      num_groups: GroupNorm groups (reduced to a divisor of each width).
      dtype: computation dtype (``jnp.bfloat16`` for mixed precision; params stay
        float32, the output is cast back to at least float32); ``None``: params' dtype.
      use_context: attend to a condition sequence ``context`` (cross-attention after each
        self-attention block, ``num_heads`` heads); ``False``: the plain UNet.
      cond_dim: vector conditioning ``y (b, cond_dim)`` added to the time embedding through a
        Dense layer (exclusive with ``num_classes``; ``y=None``: the zero vector).
      vector_tokens: with ``cond_dim``, the number of context tokens the vector is projected to
        (unCLIP: 4); any > 0 turns the cross-attention blocks on.
      query_positions: the cross-attention blocks add a learned position embedding to their
        queries (default on; no effect without cross-attention). Not in Stable Diffusion,
        whose deep multi-level UNet gets absolute position from its convolutions' padding;
        a one-level 7x7 latent UNet hardly does, and without it the two-digit model drew the
        same digit on both sides ("1 and 6" -> "1 1"; 24% of the seen pairs right).
    """

    base: int = 32
    channel_mult: Sequence[int] = (1, 2, 2)
    num_res_blocks: int = 1
    num_classes: int | None = None
    out_channels: int | None = None
    num_heads: int = 1
    num_groups: int = 8
    dtype: Any = None
    use_context: bool = False
    cond_dim: int | None = None
    vector_tokens: int = 0
    query_positions: bool = True

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        y: jax.Array | None = None,
        context: jax.Array | None = None,
        context_mask: jax.Array | None = None,
    ) -> jax.Array:
        if np.ndim(x) != 4:
            raise ValueError(f"UNet: x must have shape (batch, H, W, C) (NHWC), got shape {np.shape(x)}")
        b, hgt, wid, c = np.shape(x)
        levels = len(self.channel_mult)
        if levels < 1:
            raise ValueError("UNet: channel_mult must have at least one entry")
        check_image_size(hgt, wid, levels)
        check_time(t, b)
        if self.cond_dim is not None:
            if self.num_classes is not None:
                raise ValueError("UNet: cond_dim (vector conditioning) and num_classes are exclusive")
            if y is None:
                y = np.zeros((b, self.cond_dim), np.float32)
            if np.shape(y) != (b, self.cond_dim) or not jnp.issubdtype(jnp.result_type(y), jnp.floating):
                raise ValueError(f"UNet: y must be a float vector condition of shape ({b}, {self.cond_dim}), "
                                 f"got {jnp.result_type(y)} of shape {np.shape(y)}")
        elif self.vector_tokens:
            raise ValueError("UNet: vector_tokens needs cond_dim (the width of the vector condition)")
        elif y is not None:
            check_labels(y, b, self.num_classes)
        if self.use_context:
            if context is None:
                raise ValueError("UNet(use_context=True) needs context (batch, L, D) (token embeddings)")
            check_context(context, context_mask, b)
        elif context is not None or context_mask is not None:
            raise ValueError("UNet: context given, but the UNet was built without use_context=True")
        emb_dim = 4 * self.base
        emb = TimeEmbedding(emb_dim, dim=self.base + self.base % 2, name="time_emb")(t)
        if self.num_classes is not None:
            if y is None:
                y = np.full((b,), null_label(self.num_classes), np.int32)
            emb = emb + LabelEmbedding(self.num_classes, emb_dim, name="label_emb")(y)
        if self.cond_dim is not None:
            emb = emb + nn.Dense(emb_dim, name="vector_emb")(y)
            if self.vector_tokens:
                k = int(self.vector_tokens)
                tokens = nn.Dense(k * emb_dim, name="vector_tokens")(y).reshape(b, k, emb_dim)
                if context is None:
                    context, context_mask = tokens, None
                else:
                    if context.shape[-1] != emb_dim:
                        context = nn.Dense(emb_dim, name="context_proj")(context)
                    mask = jnp.ones(context.shape[:2], bool) if context_mask is None else context_mask
                    context = jnp.concatenate([context, tokens.astype(context.dtype)], axis=1)
                    context_mask = jnp.concatenate([mask, jnp.ones((b, k), bool)], axis=1)
        cross = self.use_context or bool(self.cond_dim is not None and self.vector_tokens)

        g, dt = self.num_groups, self.dtype

        def attend(h, name):  # self-attention ``name``, then (use_context) cross-attention to the context
            h = AttentionBlock(self.num_heads, g, dt, name=name)(h)
            if cross:
                h = CrossAttentionBlock(self.num_heads, g, dt, self.query_positions,
                                        name=name.replace("attn", "xattn"))(h, context, context_mask)
            return h

        out_dtype = jnp.promote_types(jnp.result_type(x), jnp.float32)
        h = nn.Conv(self.base, (3, 3), padding="SAME", dtype=dt, name="conv_in")(x)
        stack = [h]
        for i, mult in enumerate(self.channel_mult):
            for j in range(self.num_res_blocks):
                h = ResBlock(self.base * mult, g, dt, name=f"down_{i}_res_{j}")(h, emb)
                if i == levels - 1:
                    h = attend(h, f"down_{i}_attn_{j}")
                stack.append(h)
            if i < levels - 1:
                h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), padding="SAME", dtype=dt, name=f"down_{i}_downsample")(h)
                stack.append(h)

        h = ResBlock(h.shape[-1], g, dt, name="mid_res_0")(h, emb)
        h = attend(h, "mid_attn")
        h = ResBlock(h.shape[-1], g, dt, name="mid_res_1")(h, emb)

        for i in reversed(range(levels)):
            for j in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, stack.pop()], axis=-1)
                h = ResBlock(self.base * self.channel_mult[i], g, dt, name=f"up_{i}_res_{j}")(h, emb)
                if i == levels - 1:
                    h = attend(h, f"up_{i}_attn_{j}")
            if i > 0:
                bb, hh, ww, cc = h.shape
                h = jax.image.resize(h, (bb, 2 * hh, 2 * ww, cc), method="nearest")
                h = nn.Conv(cc, (3, 3), padding="SAME", dtype=dt, name=f"up_{i}_upsample")(h)

        h = nn.silu(_group_norm(h.shape[-1], g, "norm_out", dt)(h))
        out_c = self.out_channels if self.out_channels is not None else c
        out = nn.Conv(out_c, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, dtype=dt, name="conv_out")(h)
        return out if dt is None else out.astype(out_dtype)
