"""The latent diffusion paper's convolutional autoencoder networks (Rombach et al., 2022), small.

:class:`AEEncoder` maps ``(b, H, W, C)`` images (model space, ``[-1, 1]``) to
``(b, H/f, W/f, 2 * latent_channels)`` latent moments (mean, log-variance) and
:class:`AEDecoder` maps ``(b, H/f, W/f, latent_channels)`` latents back to ``(b, H, W, C)``,
with ``f = 2 ** (len(channels) - 1)``. Level ``i`` works at resolution ``H / 2^i`` with
``channels[i]`` features: ``num_res_blocks`` (or ``num_res_blocks[i]``) residual blocks
(GroupNorm -> SiLU -> 3x3 conv, twice, plus a skip), then a stride-2 3x3 convolution to the
next level (the encoder) or a nearest-neighbour 2x upsampling and a 3x3 convolution (the
decoder, mirrored). One residual block at the lowest resolution (``mid``), and both end in
GroupNorm -> SiLU -> 3x3 conv. No attention (the paper's KL-f4 has none either).

The residual blocks take no time embedding (:class:`genjax.nn.unet.ResBlock` does), so they
are their own small module here.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax


def _norm(channels: int, groups: int, name: str) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    return nn.GroupNorm(num_groups=math.gcd(channels, groups), epsilon=1e-6, name=name)


class AEResBlock(nn.Module):
    """``(b, H, W, C_in) -> (b, H, W, features)``: ``skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))``."""

    features: int
    groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Conv(self.features, (3, 3), padding="SAME", name="conv_0")(nn.silu(_norm(x.shape[-1], self.groups, "norm_0")(x)))
        h = nn.Conv(self.features, (3, 3), padding="SAME", name="conv_1")(nn.silu(_norm(self.features, self.groups, "norm_1")(h)))
        skip = x if x.shape[-1] == self.features else nn.Conv(self.features, (1, 1), name="skip")(x)
        return skip + h


def res_blocks_per_level(num_res_blocks: int | Sequence[int], channels: Sequence[int]) -> tuple[int, ...]:
    """``num_res_blocks`` (one int for every level, or one per level) as a tuple per level;
    ``ValueError`` naming it unless non-negative ints, one per entry of ``channels``."""
    per = (num_res_blocks,) * len(channels) if isinstance(num_res_blocks, int) else tuple(num_res_blocks)
    if not channels or len(per) != len(channels) or not all(isinstance(n, int) and n >= 0 for n in per):
        raise ValueError(f"num_res_blocks must be a non-negative int or one per level of channels {tuple(channels)} "
                         f"(non-empty), got {num_res_blocks!r}")
    return per


def _check_input(x: jax.Array, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} takes (b, H, W, C) arrays, got shape {tuple(x.shape)}")


class AEEncoder(nn.Module):
    """``(b, H, W, C) -> (b, H/f, W/f, 2 * latent_channels)``: latent mean and log-variance,
    concatenated on the channel axis, ``f = 2 ** (len(channels) - 1)`` (H and W must be
    divisible by ``f``; the model checks that with a clear error)."""

    latent_channels: int = 4
    channels: Sequence[int] = (32, 32, 64)
    num_res_blocks: int | Sequence[int] = 1
    groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        _check_input(x, "AEEncoder")
        blocks = res_blocks_per_level(self.num_res_blocks, self.channels)
        x = nn.Conv(self.channels[0], (3, 3), padding="SAME", name="conv_in")(x)
        for i, c in enumerate(self.channels):
            for j in range(blocks[i]):
                x = AEResBlock(c, self.groups, name=f"res_{i}_{j}")(x)
            if i + 1 < len(self.channels):
                x = nn.Conv(self.channels[i + 1], (3, 3), strides=(2, 2), padding="SAME", name=f"down_{i}")(x)
        x = AEResBlock(self.channels[-1], self.groups, name="mid")(x)
        x = nn.silu(_norm(self.channels[-1], self.groups, "norm_out")(x))
        return nn.Conv(2 * self.latent_channels, (3, 3), padding="SAME", name="conv_out")(x)


class AEDecoder(nn.Module):
    """``(b, h, w, latent_channels) -> (b, h f, w f, out_channels)`` in model space (unbounded;
    the model maps it to ``[0, 1]``), the encoder mirrored: ``channels`` are listed from the
    full-resolution level down, as for :class:`AEEncoder`."""

    out_channels: int = 1
    channels: Sequence[int] = (32, 32, 64)
    num_res_blocks: int | Sequence[int] = 1
    groups: int = 8

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        _check_input(z, "AEDecoder")
        blocks = res_blocks_per_level(self.num_res_blocks, self.channels)
        x = nn.Conv(self.channels[-1], (3, 3), padding="SAME", name="conv_in")(z)
        x = AEResBlock(self.channels[-1], self.groups, name="mid")(x)
        for i in reversed(range(len(self.channels))):
            for j in range(blocks[i]):
                x = AEResBlock(self.channels[i], self.groups, name=f"res_{i}_{j}")(x)
            if i > 0:
                x = x.repeat(2, axis=1).repeat(2, axis=2)  # nearest-neighbour 2x
                x = nn.Conv(self.channels[i - 1], (3, 3), padding="SAME", name=f"up_{i}")(x)
        x = nn.silu(_norm(self.channels[0], self.groups, "norm_out")(x))
        return nn.Conv(self.out_channels, (3, 3), padding="SAME", name="conv_out")(x)
