"""Conditioner networks of the flows' coupling layers (linen modules, last layer zero-initialised).

A zero last layer makes every coupling start as the identity (RealNVP/Glow
practice), so an untrained flow is the base distribution (up to ActNorm). Glow's
zero-initialised last convolution also learns a per-channel output scale
(:class:`ZeroConv`, ``ConvConditioner(out_log_scale=True)``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.mlp import MLP, get_activation


class MLPConditioner(MLP):
    """``(..., d_in) -> (..., out_dim)``: ``hidden`` dense layers, then a zero-initialised dense layer."""

    zero_out: bool = True


class ZeroConv(nn.Module):
    """Glow's ``Conv2dZeros``: ``(conv3x3(x) + b) * exp(logscale_factor * logs)``, 'SAME' padding.

    Kernel, bias and the per-channel ``logs`` all start at 0 (so the output starts at 0);
    ``logscale_factor`` (3 in Glow) makes the learned output scale move faster.
    Input ``(b, H, W, C)`` -> ``(b, H, W, features)``.
    """

    features: int
    logscale_factor: float = 3.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.features, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="conv")(x)
        logs = self.param("logs", nn.initializers.zeros, (self.features,))
        return y * jnp.exp(self.logscale_factor * logs).astype(y.dtype)


class ConvConditioner(nn.Module):
    """Small ResNet ``(..., H, W, C) -> (..., H, W, out_channels)``, 'SAME' padding.

    3x3 conv to ``features``, ``num_blocks`` residual blocks ``h + conv3(act(conv3(act(h))))``,
    then a zero-initialised 3x3 conv; with ``out_log_scale`` that last conv is Glow's
    :class:`ZeroConv` (a learned per-channel output scale ``exp(3 logs)``). Any number of
    leading batch axes (including none) is accepted.
    """

    features: int
    out_channels: int
    num_blocks: int = 2
    activation: str = "relu"
    out_log_scale: bool = False

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
        if self.out_log_scale:
            out = ZeroConv(self.out_channels, name="conv_out")(act(h))
        else:
            out = nn.Conv(
                self.out_channels, (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="conv_out"
            )(act(h))
        return out.reshape(*lead, *out.shape[1:])
