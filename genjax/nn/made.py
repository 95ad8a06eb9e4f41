"""MADE: masked autoencoder for distribution estimation (Germain et al., 2015).

A MADE is an MLP whose weight matrices are multiplied by binary masks so that
output ``i`` depends only on the inputs that precede ``i`` in a chosen order.
Each input variable ``d`` gets the degree ``m(d) = 1 + position of d in order``;
hidden unit ``k`` gets a degree ``m(k)`` in ``[1, D - 1]`` (assigned cyclically,
so it is deterministic); a hidden weight ``k' <- k`` is kept when
``m(k') >= m(k)`` and an output weight ``d <- k`` when ``m(d) > m(k)``. Hence
``d out[..., i, :] / d x[..., j] = 0`` unless ``m(j) < m(i)``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.nn.mlp import get_activation


def made_degrees(order: Sequence[int], hidden: Sequence[int]) -> list[np.ndarray]:
    """Degrees of the input layer and of each hidden layer.

    Args:
      order: a permutation of ``range(D)``: the variables in autoregressive order
        (``order[0]`` depends on nothing).
      hidden: widths of the hidden layers.

    Returns:
      ``[input degrees (D,), hidden degrees (hidden[0],), ...]`` as int arrays.
    """
    order = np.asarray(order)
    d = order.size
    if sorted(order.tolist()) != list(range(d)):
        raise ValueError(f"order must be a permutation of range({d}), got {order.tolist()}")
    inp = np.empty(d, np.int64)
    inp[order] = np.arange(1, d + 1)
    degrees = [inp]
    for width in hidden:
        degrees.append(np.arange(width) % max(d - 1, 1) + 1 if d > 1 else np.zeros(width, np.int64))
    return degrees


def made_masks(order: Sequence[int], hidden: Sequence[int], num_params: int) -> list[np.ndarray]:
    """Binary masks ``(fan_in, fan_out)`` of each layer; the output layer's is ``(h, D * num_params)``.

    Output unit ``d * num_params + p`` (parameter ``p`` of variable ``d``) has degree ``m(d)``.
    """
    degrees = made_degrees(order, hidden)
    masks = [(d_out[None, :] >= d_in[:, None]) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out_deg = np.repeat(degrees[0], num_params)
    masks.append(out_deg[None, :] > degrees[-1][:, None])
    return [m.astype(np.float32) for m in masks]


class MADE(nn.Module):
    """Autoregressive MLP ``(..., D) -> (..., D, num_params)``.

    Attributes:
      hidden: hidden widths (at least one layer).
      num_params: parameters per variable (e.g. 2 for a shift and a log-scale).
      order: variables in autoregressive order; ``None`` is ``range(D)``.
      activation: hidden nonlinearity (see ``genjax.nn.mlp.ACTIVATIONS``).
      zero_init_out: zero-initialise the output layer (flows then start at identity).
    """

    hidden: Sequence[int]
    num_params: int
    order: Sequence[int] | None = None
    activation: str = "relu"
    zero_init_out: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not self.hidden:
            raise ValueError("MADE needs at least one hidden layer (hidden=())")
        d = x.shape[-1]
        order = tuple(range(d)) if self.order is None else tuple(self.order)
        if len(order) != d:
            raise ValueError(f"MADE order has {len(order)} entries but the input has {d} features")
        masks = made_masks(order, self.hidden, self.num_params)
        act = get_activation(self.activation)
        h = x
        for i, (width, mask) in enumerate(zip(self.hidden, masks[:-1])):
            h = act(_masked_dense(self, h, width, mask, f"hidden_{i}", nn.initializers.lecun_normal()))
        init = nn.initializers.zeros if self.zero_init_out else nn.initializers.lecun_normal()
        out = _masked_dense(self, h, d * self.num_params, masks[-1], "out", init)
        return out.reshape(*x.shape[:-1], d, self.num_params)


def _masked_dense(module: nn.Module, x, features: int, mask: np.ndarray, name: str, kernel_init):
    kernel = module.param(f"{name}_kernel", kernel_init, (x.shape[-1], features), jnp.float32)
    bias = module.param(f"{name}_bias", nn.initializers.zeros, (features,), jnp.float32)
    return x @ (kernel * jnp.asarray(mask, kernel.dtype)) + bias
