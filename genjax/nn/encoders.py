"""Image encoders that pool globally, so one network takes any image size (28x28, 28x56)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.mlp import get_activation


class PooledConvEncoder(nn.Module):
    """A small CNN with global average pooling: ``(b, H, W, C) -> (b, out_dim)``.

    Each entry ``f`` of ``features`` is one stage: a 3x3 convolution with ``f`` channels,
    then a stride-2 3x3 convolution with ``f`` channels (each followed by GroupNorm and
    ``activation``). The last map is averaged over its spatial positions, layer-normalised
    and mapped by a dense layer to ``out_dim``. Because of the global pool the parameters do
    not depend on ``H`` and ``W``: the same encoder embeds 28x28 digits and 28x56 pairs
    (the pool loses where things are, so for layouts that matter - "a 3 to the left of a 5" -
    set ``pool_grid=(gh, gw)``: the map is average-pooled to a ``gh x gw`` grid and
    flattened instead, which again fixes the parameter count for any input size).

    ``dtype``: computation dtype of the layers (``None``: the parameters' dtype); the
    output is cast back to at least float32.
    """

    features: Sequence[int] = (32, 64, 128)
    out_dim: int = 128
    activation: str = "gelu"
    groups: int = 8
    pool_grid: tuple[int, int] | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"PooledConvEncoder takes images (b, H, W, C), got shape {tuple(x.shape)}")
        act = get_activation(self.activation)
        out_dtype = jnp.promote_types(jnp.result_type(x), jnp.float32)
        for i, f in enumerate(self.features):
            for j, stride in enumerate((1, 2)):
                x = nn.Conv(f, (3, 3), strides=(stride, stride), padding="SAME", dtype=self.dtype, name=f"conv_{i}_{j}")(x)
                x = act(nn.GroupNorm(num_groups=min(self.groups, f), dtype=self.dtype, name=f"norm_{i}_{j}")(x))
        if self.pool_grid is None:
            h = jnp.mean(x, axis=(1, 2))
        else:
            h = _grid_pool(x, self.pool_grid)
        h = nn.LayerNorm(dtype=self.dtype, name="pool_norm")(h)
        out = nn.Dense(self.out_dim, dtype=self.dtype, name="out")(h)
        return out if self.dtype is None else out.astype(out_dtype)


def _grid_pool(x: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """Average-pools ``(b, h, w, c)`` to a ``grid`` of cells (edges split as evenly as
    integer bounds allow) and flattens to ``(b, gh * gw * c)``."""
    b, h, w, c = x.shape
    gh, gw = grid
    if h < gh or w < gw:
        raise ValueError(f"pool_grid {grid} is finer than the final feature map ({h}, {w})")
    rows = [(i * h // gh, (i + 1) * h // gh) for i in range(gh)]
    cols = [(j * w // gw, (j + 1) * w // gw) for j in range(gw)]
    cells = [jnp.mean(x[:, r0:r1, c0:c1], axis=(1, 2)) for r0, r1 in rows for c0, c1 in cols]
    return jnp.concatenate(cells, axis=-1)
