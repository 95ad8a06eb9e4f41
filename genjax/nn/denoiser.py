"""A residual-MLP denoiser for flat data (toy 2-D densities, flattened vectors).

``MLPDenoiser()(x, t, y=None)``: ``x (b, d)`` or ``(b, *event)`` (e.g. ``(b, H, W, C)``
images: flattened to ``(b, prod(event))`` inside, the output reshaped back, so the
parameters and the function are those of the flat ``(b, d)`` network), ``t (b,)`` float
(the conditioning scalar: a DDPM step index, ``999 * t``, a scaled noise level), ``y (b,)``
int labels or ``None`` -> ``x``'s shape (noise or score prediction, whatever the model
trains).

Architecture: ``emb = TimeEmbedding(t) [+ LabelEmbedding(y)]``; ``h = Dense(x)``;
per entry of ``hidden`` a pre-activation residual block
``h <- h + Dense(act(Dense(act(h)) + Dense(act(emb))))`` (a projection on the skip
when the width changes), then ``Dense(d)`` on ``act(LayerNorm(h))``.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn.embeddings import LabelEmbedding, TimeEmbedding, check_labels, check_time, null_label
from genjax.nn.mlp import get_activation


class MLPDenoiser(nn.Module):
    """Time- (and optionally class-) conditional residual MLP, ``(b, *event) -> (b, *event)``
    (the event flattened inside).

    Attributes:
      hidden: widths of the residual blocks.
      emb_dim: width of the time / label embedding.
      num_classes: number of classes for label conditioning (``None``: unconditional).
        Labels lie in ``[0, num_classes]``; ``num_classes`` is the null label, and a
        conditional network called with ``y=None`` uses it.
      activation: name from ``genjax.nn.mlp.ACTIVATIONS``.
      zero_out: start the output layer at zero.
    """

    hidden: Sequence[int] = (128, 128, 128)
    emb_dim: int = 64
    num_classes: int | None = None
    activation: str = "silu"
    zero_out: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None) -> jax.Array:
        if np.ndim(x) < 2:
            raise ValueError(f"MLPDenoiser: x must have shape (batch, dim) or (batch, *event), got shape {np.shape(x)}")
        shape = tuple(np.shape(x))
        b, d = shape[0], math.prod(shape[1:])
        x = jnp.reshape(x, (b, d))
        check_time(t, b)
        act = get_activation(self.activation)
        emb = TimeEmbedding(self.emb_dim, name="time_emb")(t)
        if y is not None:
            check_labels(y, b, self.num_classes)
        if self.num_classes is not None:
            if y is None:
                y = np.full((b,), null_label(self.num_classes), np.int32)
            emb = emb + LabelEmbedding(self.num_classes, self.emb_dim, name="label_emb")(y)
        emb = act(emb)
        h = nn.Dense(self.hidden[0], name="in")(x)
        for i, width in enumerate(self.hidden):
            skip = h if h.shape[-1] == width else nn.Dense(width, name=f"skip_{i}")(h)
            r = nn.Dense(width, name=f"block_{i}_dense_0")(act(h))
            r = r + nn.Dense(width, name=f"block_{i}_emb")(emb)
            r = nn.Dense(width, name=f"block_{i}_dense_1")(act(r))
            h = skip + r
        h = act(nn.LayerNorm(name="out_norm")(h))
        init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
        return jnp.reshape(nn.Dense(d, kernel_init=init, name="out")(h), shape)
