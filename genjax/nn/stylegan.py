"""A small StyleGAN2 generator and residual discriminator (Karras et al., 2019; 2020), NHWC.

Generator:

* mapping network ``w = MLP(normalize(z))``, ``mapping_layers`` (paper: 8) equalized-lr
  dense layers with LeakyReLU(0.2) * sqrt(2) and learning-rate multiplier
  ``mapping_lr_mul`` (paper: 0.01), ``(b, latent) -> (b, w_dim)``;
* ``w_avg``, the running mean of ``w`` used by truncation: a ``"stats"`` variable
  ``(w_dim,)`` (not a trained parameter; ``w_avg_beta`` = 0.995 per training step, updated
  by the GAN's ``update_stats``, see ``genjax.gan.GAN``);
* a learned constant ``(H/2^k, W/2^k, channels[0])`` input;
* modulated + demodulated 3x3 convolutions: style ``s = A(w)`` (an equalized dense layer,
  bias initialised to 1) scales the input channels; with demodulation each output channel
  is divided by ``sigma_o = sqrt(sum_{u,v,i} (W_{u,v,i,o} s_i)^2 + eps)``, so unit-variance
  i.i.d. inputs give unit-variance outputs whatever the style;
* per-layer noise inputs ``B * n``, ``n ~ N(0, 1)`` per pixel drawn from the linen rng
  stream ``"noise"`` with a learned per-layer strength ``B`` (initialised to 0);
* ``[1, 3, 3, 1]`` FIR x2 upsampling (``blur``; nearest without), two style blocks per
  stage, and ``architecture="skip"`` (paper): a modulated (not demodulated) 1x1 ``to_rgb``
  at every resolution whose images are upsampled and summed; ``"orig"``: one ``to_rgb`` at
  the end.

There are ``num_layers = 2 k + 2`` style inputs (one per style block plus the last
``to_rgb``; as in the reference code, the ``to_rgb`` of a coarser stage shares its ``w``
with the next stage's first block). ``synthesis`` takes one ``w`` per layer,
``(b, num_layers, w_dim)``. Style mixing and truncation are applied in ``__call__`` from
explicit arguments; the randomness that drives them is drawn by the caller from a key
(``genjax.gan.GAN``), so this module stays a pure function.

Still simplified against the paper: ``tanh`` on the output image (the data's range);
upsampling is FIR-upsample-then-3x3-conv rather than a fused transposed convolution
followed by the filter; no mixed precision, no conv clamping.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.nn.dcgan import check_resolution
from genjax.nn.stylegan_layers import conv, dense, downsample_2x, minibatch_stddev, upsample_2x

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


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, negative_slope=0.2) * _LRELU_GAIN


class MappingNetwork(nn.Module):
    """``z -> w``: pixel-normalised ``z`` through ``num_layers`` dense layers, LeakyReLU(0.2) * sqrt(2).

    With ``equalized`` (default) each layer is an :class:`~genjax.nn.stylegan_layers.EqualDense` with ``lr_mul``
    (the paper: 8 layers, ``lr_mul = 0.01``).
    """

    w_dim: int = 64
    num_layers: int = 8
    lr_mul: float = 0.01
    equalized: bool = True

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        x = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
        for i in range(self.num_layers):
            x = _lrelu(dense(self.w_dim, equalized=self.equalized, lr_mul=self.lr_mul, name=f"dense_{i}")(x))
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
    equalized: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        self.sow("intermediates", "w", w)
        c_in, k = x.shape[-1], self.kernel_size
        s = dense(c_in, equalized=self.equalized, bias_init=1.0, name="affine")(w)  # (b, C_in)
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
    equalized: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array, noise: bool = True) -> jax.Array:
        y = ModulatedConv(self.features, equalized=self.equalized, name="conv")(x, w)
        strength = self.param("noise_strength", nn.initializers.zeros, ())
        if noise:
            n = jax.random.normal(self.make_rng("noise"), (*y.shape[:-1], 1), y.dtype)
            y = y + strength * n
        y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return _lrelu(y)


ARCHITECTURES = ("skip", "orig")


class StyleGenerator(nn.Module):
    """``(b, latent_dim) -> (b, H, W, C)`` in ``[-1, 1]`` (see the module docstring).

    Attributes:
      out_shape: ``(H, W, C)``; H and W divisible by ``2**(len(channels) - 1)``.
      w_dim: dimension of the intermediate latent ``w``.
      mapping_layers: depth of the mapping MLP (paper: 8).
      channels: feature maps per resolution, coarse to fine; ``len(channels) - 1``
        upsampling stages.
      mapping_lr_mul: the mapping network's learning-rate multiplier (paper: 0.01).
      equalized_lr: equalized learning rate in the mapping and affine layers (paper: on).
      architecture: ``"skip"`` (paper) or ``"orig"`` (see the module docstring).
      blur: ``[1, 3, 3, 1]`` FIR upsampling (paper) or nearest neighbour.
      w_avg_beta: decay of the running mean ``w_avg`` (paper: 0.995); None keeps no
        ``"stats"`` variable (truncation then needs an explicit ``w_avg``).
    """

    out_shape: tuple[int, int, int]
    w_dim: int = 64
    mapping_layers: int = 8
    channels: Sequence[int] = (64, 32)
    mapping_lr_mul: float = 0.01
    equalized_lr: bool = True
    architecture: str = "skip"
    blur: bool = True
    w_avg_beta: float | None = 0.995

    @property
    def num_layers(self) -> int:
        """Style inputs: one conv at the base, two per upsampling stage, and ``to_rgb``."""
        return 2 * (len(self.channels) - 1) + 2

    def setup(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        self.base = check_resolution(self.out_shape, len(self.channels) - 1, what="StyleGAN generator")
        self.mapping_net = MappingNetwork(self.w_dim, self.mapping_layers, self.mapping_lr_mul, self.equalized_lr)
        self.const = self.param("const", nn.initializers.normal(1.0), (*self.base, self.channels[0]))
        widths = [self.channels[0]] + [c for c in self.channels[1:] for _ in range(2)]
        self.blocks = [StyleBlock(c, self.equalized_lr, name=f"block_{i}") for i, c in enumerate(widths)]
        c = self.out_shape[-1]
        rgb = lambda name: ModulatedConv(c, kernel_size=1, demodulate=False, equalized=self.equalized_lr, name=name)
        if self.architecture == "skip":  # one to_rgb per resolution, the finest named as in "orig"
            n = len(self.channels)
            self.to_rgbs = [rgb(f"to_rgb_{i}") for i in range(n - 1)] + [rgb("to_rgb")]
            names = [f"rgb_bias_{i}" for i in range(n - 1)] + ["rgb_bias"]
            self.rgb_biases = [self.param(name, nn.initializers.zeros, (c,)) for name in names]
        else:
            self.to_rgbs = [rgb("to_rgb")]
            self.rgb_biases = [self.param("rgb_bias", nn.initializers.zeros, (c,))]
        if self.w_avg_beta is not None:
            self.w_avg = self.variable("stats", "w_avg", jnp.zeros, (self.w_dim,))

    def mapping(self, z: jax.Array) -> jax.Array:
        """``(b, latent_dim) -> (b, w_dim)``."""
        return self.mapping_net(z)

    def tracked_w_avg(self) -> jax.Array:
        """The running mean ``w_avg`` kept in the ``"stats"`` collection, ``(w_dim,)``."""
        if self.w_avg_beta is None:
            raise ValueError("this StyleGenerator keeps no running w_avg (w_avg_beta=None): pass w_avg")
        return jax.lax.stop_gradient(self.w_avg.value)

    def _rgb(self, i: int, x: jax.Array, w: jax.Array) -> jax.Array:
        return self.to_rgbs[i](x, w) + self.rgb_biases[i]

    def synthesis(self, ws: jax.Array, noise: bool = True) -> jax.Array:
        """``ws (b, num_layers, w_dim) -> (b, H, W, C)``; ``noise=False`` zeroes the noise inputs."""
        if ws.ndim != 3 or ws.shape[1] != self.num_layers or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"ws must have shape (batch, {self.num_layers}, {self.w_dim}) (one w per style layer), "
                f"got {ws.shape}"
            )
        b, skip = ws.shape[0], self.architecture == "skip"
        x = jnp.broadcast_to(self.const[None], (b, *self.const.shape)).astype(ws.dtype)
        x = self.blocks[0](x, ws[:, 0], noise)
        img = None
        for stage in range(len(self.channels) - 1):
            i = 1 + 2 * stage
            if skip:  # this resolution's to_rgb, fed the next block's w (the reference's sharing)
                img = self._rgb(stage, x, ws[:, i]) if img is None else upsample_2x(img, blur=self.blur) + self._rgb(stage, x, ws[:, i])
            x = upsample_2x(x, blur=self.blur)
            x = self.blocks[i](x, ws[:, i], noise)
            x = self.blocks[i + 1](x, ws[:, i + 1], noise)
        out = self._rgb(-1, x, ws[:, -1])
        if img is not None:
            out = out + upsample_2x(img, blur=self.blur)
        return jnp.tanh(out)

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
          psi: truncation ``w <- w_avg + psi (w - w_avg)``.
          w_avg: ``(w_dim,)``; default the tracked running mean (``w_avg_beta``).
          noise: draw the per-layer noise inputs (rng stream ``"noise"``) or zero them.
        """
        w = self.mapping(z)
        if psi is not None:
            if w_avg is None:
                if self.w_avg_beta is None:
                    raise ValueError("truncation (psi) needs w_avg, the mean of w over many z")
                w_avg = self.tracked_w_avg()
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
    """StyleGAN2's residual discriminator, ``(b, H, W, C) -> (b,)`` logits.

    ``from_rgb`` 1x1 conv, then per entry of ``channels`` a residual block
    ``(conv3x3, lrelu, conv3x3, lrelu, down) + (down, conv1x1)`` scaled by ``1/sqrt(2)``
    (``down``: the ``[1, 3, 3, 1]`` FIR downsampling with ``blur``, else 2x2 average
    pooling); then the epilogue: minibatch standard deviation (``mbstd_group_size``,
    ``mbstd_channels``; group size 0 turns it off), conv3x3, lrelu, dense, lrelu, dense.
    Every layer uses equalized learning rate with ``equalized_lr`` (paper). No
    normalisation; the minibatch-stddev channel couples the examples of a group, as in
    the paper (its R1 penalty is the gradient of the summed logits, as here).
    """

    channels: Sequence[int] = (32, 64)
    hidden: int = 64
    equalized_lr: bool = True
    blur: bool = True
    mbstd_group_size: int = 4
    mbstd_channels: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        eq = self.equalized_lr
        down = lambda v: downsample_2x(v, blur=self.blur)
        x = _lrelu(conv(self.channels[0], 1, equalized=eq, name="from_rgb")(x))
        for i, c in enumerate(self.channels):
            y = _lrelu(conv(x.shape[-1], 3, equalized=eq, name=f"res_{i}_conv0")(x))
            y = down(_lrelu(conv(c, 3, equalized=eq, name=f"res_{i}_conv1")(y)))
            skip = conv(c, 1, equalized=eq, use_bias=False, name=f"res_{i}_skip")(down(x))
            x = (y + skip) / math.sqrt(2.0)
        if self.mbstd_group_size > 0:
            x = minibatch_stddev(x, group_size=self.mbstd_group_size, num_channels=self.mbstd_channels)
        x = _lrelu(conv(self.channels[-1], 3, equalized=eq, name="epilogue_conv")(x))
        x = _lrelu(dense(self.hidden, equalized=eq, name="dense")(x.reshape(x.shape[0], -1)))
        return dense(1, equalized=eq, name="out")(x)[:, 0]
