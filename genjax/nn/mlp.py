"""Multi-layer perceptrons."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.2),
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
    "softplus": nn.softplus,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid choices: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """``hidden`` dense layers with ``activation``, then a linear layer of ``out_dim``.

    Input ``(..., d_in)`` -> output ``(..., out_dim)``. With ``zero_out`` the last
    layer starts at zero (a residual / coupling conditioner then starts as identity).
    """

    hidden: Sequence[int]
    out_dim: int
    activation: str = "relu"
    zero_out: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        for i, width in enumerate(self.hidden):
            x = act(nn.Dense(width, name=f"dense_{i}")(x))
        init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
        return nn.Dense(self.out_dim, kernel_init=init, name="out")(x)
