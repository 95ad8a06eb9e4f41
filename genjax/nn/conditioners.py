"""Conditioner networks of the flows' coupling layers (linen modules, last layer zero-initialised).

A zero last layer makes every coupling start as the identity (RealNVP/Glow
practice), so an untrained flow is the base distribution (up to ActNorm).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from genjax.nn.mlp import MLP, get_activation


class MLPConditioner(MLP):
    """``(..., d_in) -> (..., out_dim)``: ``hidden`` dense layers, then a zero-initialised dense layer."""

    zero_out: bool = True


class ConvConditioner(nn.Module):
    """Small ResNet ``(..., H, W, C) -> (..., H, W, out_channels)``, 'SAME' padding.

    3x3 conv to ``features``, ``num_blocks`` residual blocks ``h + conv3(act(conv3(act(h))))``,
    then a zero-initialised 3x3 conv. Any number of leading batch axes (including
    none) is accepted.
    """

    features: int
    out_channels: int
    num_blocks: int = 2
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        lead, event = x.shape[:-3], x.shape[-3:]
        h = x.reshape((-1, *event))
        h = nn.Conv(self.features, (3, 3), padding="SAME", name="conv_in")(h)
        for i in range(self.num_blocks):
            r = nn.Conv(self.features, (3, 3), padding="SAME", name=f"block_{i}_a")(act(h))
            r = nn.Conv(self.features, (3, 3), padding="SAME", name=f"block_{i}_b")(act(r))
            h = h + r
        out = nn.Conv(
            self.out_channels, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="conv_out"
        )(act(h))
        return out.reshape(*lead, *out.shape[1:])
