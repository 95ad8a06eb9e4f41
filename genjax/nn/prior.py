"""The diffusion prior's network (DALL-E 2, Ramesh et al. 2022, sec. 2.1): a decoder-only
causal Transformer that predicts a clean CLIP image embedding from a noised one and the text.

``PriorTransformer(...)(x, t, y=None, context=(states, text_emb), context_mask=mask)``:

* the sequence is ``[caption token states (L tokens, Dense to width), the CLIP text embedding
  (Dense, 1 token), the timestep embedding (TimeEmbedding, 1 token), the noised image embedding
  x_t (Dense, 1 token), a learned final query (1 token)]`` plus learned position embeddings;
* ``depth`` pre-norm ``TransformerBlock(causal=True)``: position ``i`` attends to the positions
  ``<= i``; the caption's padding keys (``context_mask`` False) get weight exactly 0;
* a final LayerNorm, and a Dense on the final query's state gives the prediction ``(b, d)``
  (zero-initialised: the network starts at ``x0_hat = 0``, the mean of the data).

The position table has ``max_len`` rows: caption position ``j`` uses row ``j`` and the four
tokens after the caption always use the last four rows, so padding a caption longer (more
masked keys before them) never changes the prediction.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.nn.attention import check_context
from genjax.nn.embeddings import TimeEmbedding, check_time
from genjax.nn.transformer import TransformerBlock, _check_heads

#: Tokens after the caption: text embedding, timestep, noised embedding, final query.
NUM_EXTRA_TOKENS = 4


class PriorTransformer(nn.Module):
    """Causal Transformer prior: ``x (b, d)``, ``t (b,)``, text -> ``x0_hat (b, d)``.

    Attributes:
      width: the model width.
      depth: number of causal Transformer blocks.
      num_heads: attention heads (``width`` must be divisible by it).
      max_len: rows of the position table: the longest caption plus
        ``NUM_EXTRA_TOKENS`` (4).
      mlp_ratio: hidden units of each block's MLP per channel.
      dtype: computation dtype (``None``: params' dtype); the output is at least float32.

    Examples:
      >>> net = PriorTransformer(width=16, depth=1, num_heads=2, max_len=10)
      >>> x, t = jnp.zeros((2, 8)), jnp.zeros((2,))
      >>> ctx = (jnp.zeros((2, 6, 12)), jnp.zeros((2, 8)))
      >>> mask = jnp.ones((2, 6), bool)
      >>> params = net.init(jax.random.PRNGKey(0), x, t, context=ctx, context_mask=mask)
      >>> net.apply(params, x, t, context=ctx, context_mask=mask).shape
      (2, 8)
    """

    width: int
    depth: int
    num_heads: int
    max_len: int
    mlp_ratio: int = 4
    dtype: Any = None

    def __post_init__(self):
        _check_heads("PriorTransformer", self.width, self.num_heads)
        _checks.positive_int("PriorTransformer.depth", self.depth)
        _checks.positive_int("PriorTransformer.mlp_ratio", self.mlp_ratio)
        if _checks.positive_int("PriorTransformer.max_len", self.max_len) <= NUM_EXTRA_TOKENS:
            raise ValueError(f"PriorTransformer.max_len must exceed {NUM_EXTRA_TOKENS} (the caption length + "
                             f"{NUM_EXTRA_TOKENS}), got {self.max_len}")
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        y: jax.Array | None = None,
        context: tuple[jax.Array, jax.Array] | None = None,
        context_mask: jax.Array | None = None,
        *,
        return_states: bool = False,
    ) -> jax.Array:
        """Args:
          x: ``(b, d)`` noised image embeddings.
          t: ``(b,)`` float timesteps (a DDPM's step index).
          y: must be ``None`` (the prior is conditioned on text, not labels).
          context: ``(states (b, L, w), text_emb (b, d_e))``: the caption's token states and
            its CLIP text embedding (``FrozenTextEncoder(..., with_embedding=True)``'s output).
          context_mask: ``(b, L)`` bool, True at real caption tokens (``None``: all).
          return_states: return every position's final state ``(b, L + 4, width)`` (after the
            final LayerNorm) instead of the prediction.

        Returns:
          ``(b, d)``: the predicted clean embedding.

        Raises:
          ValueError: naming the argument, for a wrong shape or a ``y``.
        """
        if y is not None:
            raise ValueError("PriorTransformer: y must be None (the prior is conditioned on text through context, "
                             "not on class labels)")
        if np.ndim(x) != 2 or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise ValueError(f"PriorTransformer: x must be a float array of shape (batch, d), got shape {np.shape(x)} "
                             f"dtype {jnp.result_type(x)}")
        b, d = np.shape(x)
        check_time(t, b)
        if not (isinstance(context, (tuple, list)) and len(context) == 2):
            raise ValueError("PriorTransformer: context must be (states (batch, L, w), text_emb (batch, d_e)); "
                             "build the text encoder with with_embedding=True")
        states, text_emb = context
        check_context(states, None, b, name="context[0] (caption states)")
        length = np.shape(states)[1]
        if context_mask is not None and tuple(np.shape(context_mask)) != (b, length):
            raise ValueError(f"PriorTransformer: context_mask must have shape (batch, L) = ({b}, {length}), "
                             f"got shape {tuple(np.shape(context_mask))}")
        if np.ndim(text_emb) != 2 or np.shape(text_emb)[0] != b or not jnp.issubdtype(jnp.result_type(text_emb), jnp.floating):
            raise ValueError(f"PriorTransformer: context[1] (text embedding) must be a float array of shape "
                             f"(batch, d_e) = ({b}, d_e), got shape {np.shape(text_emb)}")
        if length + NUM_EXTRA_TOKENS > self.max_len:
            raise ValueError(f"PriorTransformer: the caption has L={length} tokens, but max_len={self.max_len} holds "
                             f"at most {self.max_len - NUM_EXTRA_TOKENS} (L + {NUM_EXTRA_TOKENS} <= max_len)")
        mask = jnp.ones((b, length), bool) if context_mask is None else jnp.asarray(context_mask, bool)

        dt, w = self.dtype, self.width
        query = self.param("final_query", nn.initializers.normal(0.02), (w,))
        tokens = [
            nn.Dense(w, dtype=dt, name="caption_proj")(states),
            nn.Dense(w, dtype=dt, name="text_emb_proj")(text_emb)[:, None],
            TimeEmbedding(w, name="time_emb")(t)[:, None],
            nn.Dense(w, dtype=dt, name="x_proj")(x)[:, None],
            jnp.broadcast_to(query, (b, 1, w)),
        ]
        dtype = dt if dt is not None else jnp.result_type(tokens[0])
        h = jnp.concatenate([a.astype(dtype) for a in tokens], axis=1)
        pos = self.param("pos_embed", nn.initializers.normal(0.01), (self.max_len, w))
        rows = np.concatenate([np.arange(length), np.arange(self.max_len - NUM_EXTRA_TOKENS, self.max_len)])
        h = h + pos[rows].astype(dtype)
        mask = jnp.concatenate([mask, jnp.ones((b, NUM_EXTRA_TOKENS), bool)], axis=1)
        for i in range(self.depth):
            h = TransformerBlock(w, self.num_heads, self.mlp_ratio, causal=True, dtype=dt, name=f"block_{i}")(h, mask)
        h = nn.LayerNorm(dtype=dt, name="norm_out")(h)
        if return_states:
            return h
        out = nn.Dense(d, dtype=dt, kernel_init=nn.initializers.zeros, name="out")(h[:, -1])
        return out.astype(jnp.promote_types(out.dtype, jnp.float32))
