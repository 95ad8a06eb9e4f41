"""Small convolutional encoders and decoders for ``(H, W, C)`` images (NHWC)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn.mlp import get_activation


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions (one per entry of ``features``, stride 2), then a dense head.

    Input ``(b, H, W, C)`` -> ``(b, out_dim)``. ``dtype``: computation dtype of the
    layers (e.g. ``jnp.bfloat16`` for mixed precision; parameters stay float32 and
    the output is cast back to at least float32); ``None`` (default) computes in the
    parameters' dtype.
    """

    features: Sequence[int] = (32, 64)
    out_dim: int = 32
    hidden: int = 256
    activation: str = "relu"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        out_dtype = jnp.promote_types(jnp.result_type(x), jnp.float32)
        for i, f in enumerate(self.features):
            x = act(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype, name=f"conv_{i}")(x))
        x = x.reshape(x.shape[0], -1)
        x = act(nn.Dense(self.hidden, dtype=self.dtype, name="dense")(x))
        out = nn.Dense(self.out_dim, dtype=self.dtype, name="out")(x)
        return out if self.dtype is None else out.astype(out_dtype)


class ConvDecoder(nn.Module):
    """Dense to a ``(H/2^L, W/2^L, features[0])`` map, then stride-2 transposed convolutions.

    ``L = len(features)``; ``H`` and ``W`` must be divisible by ``2**L``.
    Input ``(b, d)`` -> ``(b, H, W, out_channels)``. ``dtype``: computation dtype, as
    for :class:`ConvEncoder` (output cast back to at least float32).
    """

    out_shape: tuple[int, int, int]  # (H, W, out_channels)
    features: Sequence[int] = (64, 32)
    hidden: int = 256
    activation: str = "relu"
    dtype: Any = None

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        h, w, c = self.out_shape
        scale = 2 ** len(self.features)
        if h % scale or w % scale:
            raise ValueError(
                f"ConvDecoder out_shape {self.out_shape}: height and width must be divisible by "
                f"2**len(features) = {scale}"
            )
        h0, w0 = h // scale, w // scale
        out_dtype = jnp.promote_types(jnp.result_type(z), jnp.float32)
        x = act(nn.Dense(self.hidden, dtype=self.dtype, name="dense")(z))
        x = act(nn.Dense(h0 * w0 * self.features[0], dtype=self.dtype, name="project")(x))
        x = x.reshape(z.shape[0], h0, w0, self.features[0])
        for i, f in enumerate(self.features):
            x = act(nn.ConvTranspose(f, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype, name=f"deconv_{i}")(x))
        out = nn.Conv(c, (3, 3), padding="SAME", dtype=self.dtype, name="out")(x)
        return out if self.dtype is None else out.astype(out_dtype)


def num_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
