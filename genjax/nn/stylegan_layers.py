"""StyleGAN2's building blocks (Karras et al., 2020), NHWC: equalized learning rate,
the ``[1, 3, 3, 1]`` FIR resampling filter and the minibatch standard deviation.

* Equalized learning rate (ProGAN, Karras et al., 2018): weights are *stored* as
  ``N(0, 1) / lr_mul`` and *used* multiplied by ``lr_mul / sqrt(fan_in)``; biases are
  stored divided by ``lr_mul`` and used multiplied by it. The forward pass equals a plain
  layer with the scaled weights, but Adam's per-parameter step (about ``lr`` in the stored
  units) moves every layer at the same relative speed, and ``lr_mul = 0.01`` makes the
  mapping network learn 100x slower than the synthesis network, as in the paper.
* :func:`upsample_2x` / :func:`downsample_2x`: ``upfirdn2d`` with the separable filter
  ``[1, 3, 3, 1]`` (normalised to sum 1 per axis, times 2 per axis when upsampling) and
  the reference code's padding, so a constant image stays constant away from the border.
* :func:`minibatch_stddev`: groups of ``G`` examples; per group, the standard deviation
  of each feature over the group, averaged over features and pixels, appended as
  ``num_channels`` extra channels (the discriminator then sees how varied a batch is,
  which penalises a generator that collapses to few modes).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

BLUR_FILTER = (1.0, 3.0, 3.0, 1.0)


class EqualDense(nn.Module):
    """Dense layer with equalized learning rate (see the module docstring).

    ``y = x @ (kernel * lr_mul / sqrt(fan_in)) + bias * lr_mul``; ``kernel`` is stored
    ``N(0, 1 / lr_mul^2)`` and ``bias`` starts at ``bias_init / lr_mul`` (so the used
    bias starts at ``bias_init``).
    """

    features: int
    lr_mul: float = 1.0
    bias_init: float = 0.0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul), (fan_in, self.features))
        y = x @ (kernel * (self.lr_mul / math.sqrt(fan_in))).astype(x.dtype)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul), (self.features,))
            y = y + bias * self.lr_mul
        return y


class EqualConv(nn.Module):
    """``k x k`` convolution ('SAME') with equalized learning rate: weights stored ``N(0, 1)``,
    used times ``1 / sqrt(k * k * C_in)``; bias initialised to 0."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, c_in = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, c_in, self.features))
        y = jax.lax.conv_general_dilated(
            x, (kernel / math.sqrt(k * k * c_in)).astype(x.dtype), (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


def dense(features: int, *, equalized: bool, name: str, lr_mul: float = 1.0, bias_init: float = 0.0) -> nn.Module:
    """An :class:`EqualDense` or, with ``equalized=False``, a plain ``nn.Dense`` (LeCun
    init, ``lr_mul`` ignored) with the same bias start."""
    if equalized:
        return EqualDense(features, lr_mul=lr_mul, bias_init=bias_init, name=name)
    return nn.Dense(features, bias_init=nn.initializers.constant(bias_init), name=name)


def conv(features: int, kernel_size: int, *, equalized: bool, name: str, use_bias: bool = True) -> nn.Module:
    """An :class:`EqualConv` or, with ``equalized=False``, a plain 'SAME' ``nn.Conv``."""
    if equalized:
        return EqualConv(features, kernel_size, use_bias=use_bias, name=name)
    return nn.Conv(features, (kernel_size, kernel_size), padding="SAME", use_bias=use_bias, name=name)


def _fir_1d(x: jax.Array, axis: int, taps: np.ndarray, pad: tuple[int, int], stride: int) -> jax.Array:
    """Zero-pad ``axis`` by ``pad``, correlate with ``taps`` (symmetric), keep every ``stride``-th."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    xp = jnp.pad(x, widths)
    n_out = xp.shape[axis] - len(taps) + 1
    out = sum(float(t) * jax.lax.slice_in_dim(xp, i, i + n_out, axis=axis) for i, t in enumerate(taps))
    return jax.lax.slice_in_dim(out, 0, n_out, stride=stride, axis=axis)


def upsample_2x(x: jax.Array, *, blur: bool = True) -> jax.Array:
    """``(b, H, W, C) -> (b, 2H, 2W, C)``: zeros inserted after each pixel, then the
    ``[1, 3, 3, 1] / 4`` filter per axis (``upfirdn2d(up=2)``, padding ``(2, 1)``): output
    ``2i`` is ``(x[i-1] + 3 x[i]) / 4``, output ``2i+1`` is ``(3 x[i] + x[i+1]) / 4``
    (zeros beyond the border). ``blur=False``: nearest neighbour."""
    if not blur:
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    taps = 2.0 * np.asarray(BLUR_FILTER) / np.sum(BLUR_FILTER)
    for axis in (1, 2):
        z = jnp.stack([x, jnp.zeros_like(x)], axis=axis + 1)
        shape = list(x.shape)
        shape[axis] *= 2
        x = _fir_1d(z.reshape(shape), axis, taps, (2, 1), 1)
    return x


def downsample_2x(x: jax.Array, *, blur: bool = True) -> jax.Array:
    """``(b, H, W, C) -> (b, H/2, W/2, C)``: the ``[1, 3, 3, 1] / 8`` filter per axis, then
    every other pixel (``upfirdn2d(down=2)``, padding ``(1, 1)``): output ``i`` is
    ``(x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8``. ``blur=False``: 2x2 average pooling."""
    if not blur:
        return nn.avg_pool(x, (2, 2), strides=(2, 2))
    taps = np.asarray(BLUR_FILTER) / np.sum(BLUR_FILTER)
    for axis in (1, 2):
        x = _fir_1d(x, axis, taps, (1, 1), 2)
    return x


def stddev_group(batch: int, group_size: int) -> int:
    """The group size used for a batch: the largest divisor of ``batch`` that is at most
    ``group_size`` (the reference code's ``min(group_size, batch)`` when that divides)."""
    g = max(1, min(group_size, batch))
    while batch % g:
        g -= 1
    return g


def minibatch_stddev(x: jax.Array, *, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> jax.Array:
    """Minibatch standard deviation (see the module docstring), ``(b, H, W, C) -> (b, H, W, C + F)``.

    Example ``i`` belongs to group ``i mod (b / G)`` (the reference code's
    ``reshape(G, -1, ...)``); the ``C`` channels are split into ``F = num_channels``
    consecutive slices, and channel ``C + f`` of every example of a group holds
    ``mean over (slice f, H, W) of sqrt(Var_group + eps)`` (population variance).

    Raises:
      ValueError: ``C`` not divisible by ``num_channels``.
    """
    b, h, w, c = x.shape
    f = num_channels
    if c % f:
        raise ValueError(f"minibatch_stddev: the {c} channels are not divisible by num_channels={f}")
    g = stddev_group(b, group_size)
    y = x.reshape(g, b // g, h, w, f, c // f).astype(jnp.float32)
    y = jnp.sqrt(jnp.var(y, axis=0) + eps)  # (n, H, W, F, c)
    y = jnp.mean(y, axis=(1, 2, 4))  # (n, F)
    y = jnp.tile(y, (g, 1)).astype(x.dtype)  # example i -> group i mod n
    return jnp.concatenate([x, jnp.broadcast_to(y[:, None, None, :], (b, h, w, f))], axis=-1)
