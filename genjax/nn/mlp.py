"""Multi-layer perceptrons, and the families' MLP networks built on :class:`MLP`.

Each network names its MLP ``"mlp"``, so its parameters are ``{"params": {"mlp": {"dense_<i>",
"out"}}}`` (what saved checkpoints hold): the VAE's encoder and decoder, and the GAN's
generator and discriminator (the flows' conditioners are in ``conditioners.py``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


class MLPEncoder(nn.Module):
    """VAE encoder: flattens ``(b, *data_shape)`` and maps it to ``(b, 2 * latent_dim)`` (mu, logvar)."""

    hidden: Sequence[int]
    latent_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return MLP(tuple(self.hidden), 2 * self.latent_dim, self.activation, name="mlp")(x.reshape(x.shape[0], -1))


class MLPDecoder(nn.Module):
    """VAE decoder: maps ``(b, latent_dim)`` to ``(b, out_features)`` decoder parameters."""

    hidden: Sequence[int]
    out_features: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        return MLP(tuple(self.hidden), self.out_features, self.activation, name="mlp")(z)


class MLPGenerator(nn.Module):
    """GAN generator ``(b, latent_dim) -> (b, *out_shape)``: dense layers (ReLU), then ``tanh`` or linear.

    With ``hidden=(128, 256)`` and ``tanh`` this is the seed chapter's generator.
    """

    out_shape: tuple[int, ...]
    hidden: Sequence[int] = (128, 256)
    activation: str = "relu"
    output: str = "tanh"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = MLP(tuple(self.hidden), int(np.prod(self.out_shape)), self.activation, name="mlp")(z)
        x = jnp.tanh(x) if self.output == "tanh" else x
        return x.reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """GAN discriminator ``(b, *data_shape) -> (b,)`` logits: flatten, dense layers (LeakyReLU 0.2), dense 1.

    With ``hidden=(256, 128)`` this is the seed chapter's discriminator without its final
    sigmoid (the losses take logits).
    """

    hidden: Sequence[int] = (256, 128)
    activation: str = "leaky_relu"
    #: each row's score depends on that row only (no batch statistics): the GAN may score
    #: real and fake rows in one call (``GAN.d_loss``)
    rowwise = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return MLP(tuple(self.hidden), 1, self.activation, name="mlp")(x.reshape(x.shape[0], -1))[:, 0]

