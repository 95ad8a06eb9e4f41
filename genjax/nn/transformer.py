"""A small text transformer (the text encoder of CLIP and of the text-to-image models).

* ``TransformerBlock``: pre-norm residual block,
  ``x + MHSA(LayerNorm(x), mask)`` then ``x + MLP(LayerNorm(x))`` (GELU, ``mlp_ratio * width``
  hidden units). The attention is ``nn/attention.py``'s masked ``CrossAttention`` with
  ``context = x`` (optionally causal): padding keys get weight exactly 0.
* ``TextTransformer``: token embedding + learned position embedding, ``depth`` blocks, a final
  LayerNorm. Returns the per-token states ``(b, L, width)`` (zero at padding) and a pooled
  vector ``(b, width)``: the state at the first EOS token (CLIP's choice; with a causal mask
  that token has seen the whole caption) or the mean over the real tokens.

Padding (``tokens == pad_id``) never changes the real positions' states nor the pooled vector,
so a batch may be padded to any length ``L <= max_len``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks, types
from genjax.nn.attention import CrossAttention

POOLINGS = ("eos", "mean")


def _check_heads(name: str, width, num_heads) -> None:
    _checks.positive_int(f"{name}.width", width)
    _checks.positive_int(f"{name}.num_heads", num_heads)
    if width % num_heads:
        raise ValueError(f"{name}: width={width} must be divisible by num_heads={num_heads}")


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x (b, L, width)``, ``mask (b, L)`` bool -> ``(b, L, width)``.

    ``h = x + Attention(LayerNorm(x), mask)``; ``out = h + Dense(GELU(Dense(LayerNorm(h))))``.

    Attributes:
      width: the model width (channels of ``x``).
      num_heads: attention heads (``width`` must be divisible by it).
      mlp_ratio: hidden units of the MLP per channel.
      causal: position ``i`` attends only to positions ``<= i``.
      dtype: computation dtype (``None``: params' dtype); softmax runs in float32.
    """

    width: int
    num_heads: int
    mlp_ratio: int = 4
    causal: bool = False
    dtype: Any = None

    def __post_init__(self):
        _check_heads("TransformerBlock", self.width, self.num_heads)
        _checks.positive_int("TransformerBlock.mlp_ratio", self.mlp_ratio)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Args: ``x (b, L, width)`` float; ``mask (b, L)`` bool, True at real tokens
        (``None``: all). Returns ``(b, L, width)``."""
        if np.ndim(x) != 3 or np.shape(x)[-1] != self.width:
            raise ValueError(f"TransformerBlock: x must have shape (batch, L, {self.width}), got shape {np.shape(x)}")
        if self.dtype is not None:
            x = x.astype(self.dtype)
        h = nn.LayerNorm(dtype=self.dtype, name="norm_attn")(x)
        x = x + CrossAttention(self.num_heads, dtype=self.dtype, causal=self.causal, name="attn")(h, h, mask)
        h = nn.LayerNorm(dtype=self.dtype, name="norm_mlp")(x)
        h = nn.gelu(nn.Dense(self.mlp_ratio * self.width, dtype=self.dtype, name="mlp_in")(h), approximate=False)
        return x + nn.Dense(self.width, dtype=self.dtype, name="mlp_out")(h)


class TextTransformer(nn.Module):
    """Text encoder: ``tokens (b, L)`` int -> ``(states (b, L, width), pooled (b, width))``.

    Attributes:
      vocab_size: token ids lie in ``[0, vocab_size)``.
      max_len: the longest sequence (size of the position table); ``L <= max_len``.
      width, depth, num_heads: model width, number of blocks, attention heads.
      causal: causal self-attention (GPT/CLIP style) instead of bidirectional.
      pad_id: the padding id; the padding mask is ``tokens != pad_id``.
      eos_id: the end-of-sequence id, read by ``pooling="eos"``.
      pooling: ``"eos"``: the state at the first ``eos_id`` token (a row without one uses its
        last real token, an all-padding row gives 0); ``"mean"``: the mean state over the
        real tokens (0 for an all-padding row).
      use_positions: add the learned position embedding (``False``: the encoder is
        permutation-equivariant without ``causal``, so ``"mean"`` pooling is
        permutation-invariant).
      mlp_ratio: hidden units of each block's MLP per channel.
      dtype: computation dtype (``None``: params' dtype).

    The states at padding positions are 0; the real positions' states and the pooled vector
    do not depend on how much padding follows (or what the padding ids' embeddings are).

    Examples:
      >>> enc = TextTransformer(vocab_size=10, max_len=8, width=16, depth=1, num_heads=2)
      >>> tokens = jnp.array([[1, 5, 6, 2, 0, 0]])
      >>> params = enc.init(jax.random.PRNGKey(0), tokens)
      >>> states, pooled = enc.apply(params, tokens)
      >>> states.shape, pooled.shape
      ((1, 6, 16), (1, 16))
    """

    vocab_size: int
    max_len: int
    width: int = 128
    depth: int = 4
    num_heads: int = 4
    causal: bool = False
    pad_id: int = 0
    eos_id: int = 2
    pooling: str = "eos"
    use_positions: bool = True
    mlp_ratio: int = 4
    dtype: Any = None

    def __post_init__(self):
        _check_heads("TextTransformer", self.width, self.num_heads)
        _checks.positive_int("TextTransformer.depth", self.depth)
        _checks.one_of("TextTransformer.pooling", self.pooling, POOLINGS)
        cond = self.condition  # checks vocab_size, max_len and pad_id
        if isinstance(self.eos_id, bool) or not isinstance(self.eos_id, int) or not 0 <= self.eos_id < cond.vocab_size:
            raise ValueError(f"TextTransformer.eos_id must be an int in [0, {self.vocab_size}), got {self.eos_id!r}")
        if self.eos_id == self.pad_id:
            raise ValueError(f"TextTransformer.eos_id must differ from pad_id, both are {self.pad_id}")
        super().__post_init__()

    @property
    def condition(self) -> types.Condition:
        """The token condition this encoder reads (``types.Condition(kind="tokens")``)."""
        return types.Condition(kind="tokens", vocab_size=self.vocab_size, max_len=self.max_len, pad_id=self.pad_id)

    @nn.compact
    def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Args: ``tokens (b, L)`` int ids in ``[0, vocab_size)``, ``1 <= L <= max_len``.

        Returns:
          ``states (b, L, width)`` (0 at padding) and ``pooled (b, width)``.

        Raises:
          ValueError: naming ``tokens``, for a wrong rank, dtype, length or (concrete) ids.
        """
        num = np.shape(tokens)[0] if np.ndim(tokens) else 1
        tokens = types.check_cond(self.condition, tokens, num, name="tokens")
        length = tokens.shape[1]
        mask = tokens != self.pad_id
        x = nn.Embed(self.vocab_size, self.width, embedding_init=nn.initializers.normal(0.02),
                     dtype=self.dtype, name="token_embed")(tokens)
        if self.use_positions:
            pos = self.param("pos_embed", nn.initializers.normal(0.01), (self.max_len, self.width))
            x = x + pos[:length].astype(x.dtype)
        for i in range(self.depth):
            x = TransformerBlock(self.width, self.num_heads, self.mlp_ratio, self.causal, self.dtype, name=f"block_{i}")(x, mask)
        x = nn.LayerNorm(dtype=self.dtype, name="norm_out")(x)
        states = jnp.where(mask[..., None], x, 0.0).astype(x.dtype)
        return states, pool(states, tokens, mask, kind=self.pooling, eos_id=self.eos_id)


def pool(states: jax.Array, tokens: jax.Array, mask: jax.Array, *, kind: str, eos_id: int) -> jax.Array:
    """``(b, L, w)`` states (0 at padding) -> ``(b, w)``: ``kind="eos"``: the state at the first
    ``eos_id`` token (else the last real token; 0 for an all-padding row); ``"mean"``: the mean
    over ``mask``."""
    if kind == "mean":
        count = jnp.maximum(mask.sum(axis=1, keepdims=True), 1).astype(states.dtype)
        return states.sum(axis=1) / count
    length = tokens.shape[1]
    is_eos = tokens == eos_id
    last_real = length - 1 - jnp.argmax(mask[:, ::-1], axis=1)  # an all-padding row: L - 1, a zero state
    idx = jnp.where(is_eos.any(axis=1), jnp.argmax(is_eos, axis=1), last_real)
    return jnp.take_along_axis(states, idx[:, None, None], axis=1)[:, 0]
