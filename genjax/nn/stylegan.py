"""A small StyleGAN2-style generator and an R1-friendly residual discriminator (NHWC).

Generator (Karras et al., 2019; 2020), at small scale:

* mapping network ``w = MLP(normalize(z))`` (LeakyReLU 0.2), ``(b, latent) -> (b, w_dim)``;
* a learned constant ``(H/2^k, W/2^k, channels[0])`` input;
* modulated + demodulated 3x3 convolutions: style ``s = A(w)`` (a dense layer, bias
  initialised to 1) scales the input channels; with demodulation each output channel
  is divided by ``sigma_o = sqrt(sum_{u,v,i} (W_{u,v,i,o} s_i)^2 + eps)``, so unit-variance
  i.i.d. inputs give unit-variance outputs whatever the style;
* per-layer noise inputs ``B * n``, ``n ~ N(0, 1)`` per pixel drawn from the linen rng
  stream ``"noise"`` with a learned per-layer strength ``B`` (initialised to 0);
* nearest-neighbour x2 upsampling between stages, two style blocks per stage, and a
  modulated (not demodulated) 1x1 ``to_rgb`` with ``tanh`` so images lie in ``[-1, 1]``.

There are ``num_layers = 2 k + 2`` style inputs (one per style block plus ``to_rgb``);
``synthesis`` takes one ``w`` per layer, ``(b, num_layers, w_dim)``. Style mixing and
truncation are applied in ``__call__`` from explicit arguments; the randomness that
drives them (which examples mix, the crossover layer) is drawn by the caller from a
key (``genjax.gan.GAN``), so this module stays a pure function.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.dcgan import check_resolution

_LRELU_GAIN = math.sqrt(2.0)


def mix_styles(w1: jax.Array, w2: jax.Array, crossover: jax.Array, num_layers: int) -> jax.Array:
    """Per-layer styles: layer ``l`` gets ``w1`` if ``l < crossover`` else ``w2``.

    Args:
      w1, w2: ``(b, w_dim)``.
      crossover: ``(b,)`` integers in ``[0, num_layers]`` (``num_layers`` = no mixing).
      num_layers: number of style inputs.

    Returns:
      ``(b, num_layers, w_dim)``.
    """
    first = jnp.arange(num_layers)[None, :, None] < crossover[:, None, None]
    return jnp.where(first, w1[:, None, :], w2[:, None, :])


def style_mixing_crossover(key: jax.Array, num: int, *, prob: float, num_layers: int) -> jax.Array:
    """Crossover layers for style-mixing regularisation, ``(num,)`` ints.

    With probability ``prob`` an example mixes: its crossover is uniform in
    ``1..num_layers-1`` (both styles used); otherwise it is ``num_layers`` (``w1`` only).
    """
    k_coin, k_layer = jax.random.split(key)
    mix = jax.random.bernoulli(k_coin, prob, (num,))
    return jnp.where(mix, jax.random.randint(k_layer, (num,), 1, num_layers), num_layers)


class MappingNetwork(nn.Module):
    """``z -> w``: pixel-normalised ``z`` through ``num_layers`` dense layers, LeakyReLU(0.2)."""

    w_dim: int = 64
    num_layers: int = 4

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
        for i in range(self.num_layers):
            x = nn.leaky_relu(nn.Dense(self.w_dim, name=f"dense_{i}")(x), negative_slope=0.2)
        return x


class ModulatedConv(nn.Module):
    """Modulated (and optionally demodulated) ``k x k`` convolution, no bias.

    ``y_o = d_o * sum_{u,v,i} W_{u,v,i,o} s_i x_i``, with ``s = A(w)`` and
    ``d_o = 1 / sqrt(sum_{u,v,i} (W_{u,v,i,o} s_i)^2 + eps)`` (``1/sqrt(k^2 C_in)`` without
    demodulation). Computed as a shared convolution of ``x * s`` scaled by ``d``, which
    equals the per-example convolution with the modulated weights.

    Input ``x (b, H, W, C_in)``, ``w (b, w_dim)`` -> ``(b, H, W, features)``. The received
    ``w`` is sown to ``intermediates/w`` for inspection.
    """

    features: int
    kernel_size: int = 3
    demodulate: bool = True
    epsilon: float = 1e-8

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        self.sow("intermediates", "w", w)
        c_in, k = x.shape[-1], self.kernel_size
        s = nn.Dense(c_in, bias_init=nn.initializers.ones, name="affine")(w)  # (b, C_in)
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, c_in, self.features))
        y = jax.lax.conv_general_dilated(
            x * s[:, None, None, :], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        if self.demodulate:
            sigma2 = jnp.einsum("uvio,bi->bo", jnp.square(kernel), jnp.square(s))
            return y * jax.lax.rsqrt(sigma2 + self.epsilon)[:, None, None, :]
        return y / math.sqrt(k * k * c_in)


class StyleBlock(nn.Module):
    """Modulated 3x3 conv, + noise * strength, + bias, LeakyReLU(0.2) * sqrt(2)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise: bool = True) -> jax.Array:
        y = ModulatedConv(self.features, name="conv")(x, w)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        if noise:
            n = jax.random.normal(self.make_rng("noise"), (*y.shape[:-1], 1), y.dtype)
            y = y + strength * n
        y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return nn.leaky_relu(y, negative_slope=0.2) * _LRELU_GAIN


class StyleGenerator(nn.Module):
    """``(b, latent_dim) -> (b, H, W, C)`` in ``[-1, 1]`` (see the module docstring).

    Attributes:
      out_shape: ``(H, W, C)``; H and W divisible by ``2**(len(channels) - 1)``.
      w_dim: dimension of the intermediate latent ``w``.
      mapping_layers: depth of the mapping MLP.
      channels: feature maps per resolution, coarse to fine; ``len(channels) - 1``
        upsampling stages.
    """

    out_shape: tuple[int, int, int]
    w_dim: int = 64
    mapping_layers: int = 4
    channels: Sequence[int] = (64, 32)

    @property
    def num_layers(self) -> int:
        """Style inputs: one conv at the base, two per upsampling stage, and ``to_rgb``."""
        return 2 * (len(self.channels) - 1) + 2

    def setup(self):
        self.base = check_resolution(self.out_shape, len(self.channels) - 1, what="StyleGAN generator")
        self.mapping_net = MappingNetwork(self.w_dim, self.mapping_layers)
        self.const = self.param("const", nn.initializers.normal(1.0), (*self.base, self.channels[0]))
        widths = [self.channels[0]] + [c for c in self.channels[1:] for _ in range(2)]
        self.blocks = [StyleBlock(c, name=f"block_{i}") for i, c in enumerate(widths)]
        self.to_rgb = ModulatedConv(self.out_shape[-1], kernel_size=1, demodulate=False)
        self.rgb_bias = self.param("rgb_bias", nn.initializers.zeros, (self.out_shape[-1],))

    def mapping(self, z: jax.Array) -> jax.Array:
        """``(b, latent_dim) -> (b, w_dim)``."""
        return self.mapping_net(z)

    def synthesis(self, ws: jax.Array, noise: bool = True) -> jax.Array:
        """``ws (b, num_layers, w_dim) -> (b, H, W, C)``; ``noise=False`` zeroes the noise inputs."""
        if ws.ndim != 3 or ws.shape[1] != self.num_layers or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"ws must have shape (batch, {self.num_layers}, {self.w_dim}) (one w per style layer), "
                f"got {ws.shape}"
            )
        b = ws.shape[0]
        x = jnp.broadcast_to(self.const[None], (b, *self.const.shape)).astype(ws.dtype)
        x = self.blocks[0](x, ws[:, 0], noise)
        for stage in range(len(self.channels) - 1):
            h, w = x.shape[1:3]
            x = jax.image.resize(x, (b, 2 * h, 2 * w, x.shape[-1]), method="nearest")
            i = 1 + 2 * stage
            x = self.blocks[i](x, ws[:, i], noise)
            x = self.blocks[i + 1](x, ws[:, i + 1], noise)
        return jnp.tanh(self.to_rgb(x, ws[:, -1]) + self.rgb_bias)

    def __call__(
        self,
        z: jax.Array,
        *,
        mix_z: jax.Array | None = None,
        crossover: jax.Array | None = None,
        psi: float | jax.Array | None = None,
        w_avg: jax.Array | None = None,
        noise: bool = True,
    ) -> jax.Array:
        """``z (b, latent_dim) -> (b, H, W, C)``.

        Args:
          z: latents.
          mix_z: optional second latents ``(b, latent_dim)`` for style mixing.
          crossover: ``(b,)`` ints; layers ``l < crossover`` use ``w(z)``, the rest
            ``w(mix_z)``. Required with ``mix_z``.
          psi: truncation ``w <- w_avg + psi (w - w_avg)``; needs ``w_avg (w_dim,)``.
          noise: draw the per-layer noise inputs (rng stream ``"noise"``) or zero them.
        """
        w = self.mapping(z)
        if psi is not None:
            if w_avg is None:
                raise ValueError("truncation (psi) needs w_avg, the mean of w over many z")
            w = w_avg + psi * (w - w_avg)
        if mix_z is None:
            ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], self.num_layers, self.w_dim))
        else:
            if crossover is None:
                raise ValueError("style mixing (mix_z) needs crossover, the first layer fed w(mix_z)")
            w2 = self.mapping(mix_z)
            if psi is not None:
                w2 = w_avg + psi * (w2 - w_avg)
            ws = mix_styles(w, w2, crossover, self.num_layers)
        return self.synthesis(ws, noise)


class ResidualDiscriminator(nn.Module):
    """StyleGAN2-style residual discriminator, ``(b, H, W, C) -> (b,)`` logits.

    ``from_rgb`` 1x1 conv, then per entry of ``channels`` a residual block
    ``(conv3x3, lrelu, conv3x3, lrelu, avgpool2) + (avgpool2, conv1x1)`` scaled by
    ``1/sqrt(2)``, then dense, lrelu, dense. No normalisation (examples stay
    independent, as the R1 penalty assumes).
    """

    channels: Sequence[int] = (32, 64)
    hidden: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = lambda v: nn.leaky_relu(v, negative_slope=0.2) * _LRELU_GAIN
        pool = lambda v: nn.avg_pool(v, (2, 2), strides=(2, 2))
        x = act(nn.Conv(self.channels[0], (1, 1), name="from_rgb")(x))
        for i, c in enumerate(self.channels):
            y = act(nn.Conv(x.shape[-1], (3, 3), padding="SAME", name=f"res_{i}_conv0")(x))
            y = pool(act(nn.Conv(c, (3, 3), padding="SAME", name=f"res_{i}_conv1")(y)))
            skip = nn.Conv(c, (1, 1), use_bias=False, name=f"res_{i}_skip")(pool(x))
            x = (y + skip) / math.sqrt(2.0)
        x = act(nn.Dense(self.hidden, name="dense")(x.reshape(x.shape[0], -1)))
        return nn.Dense(1, name="out")(x)[:, 0]
