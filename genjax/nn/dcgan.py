"""DCGAN networks (Radford et al., 2016) for ``(H, W, C)`` images, NHWC.

Generator: ``z -> Dense -> (H/2^k, W/2^k, f_0)`` then ``k`` stride-2 4x4 transposed
convolutions (the last one to ``C`` channels), normalisation + ReLU between them and
``tanh`` at the end, so images live in ``[-1, 1]``. Discriminator: ``k'`` stride-2 4x4
convolutions with LeakyReLU(0.2) (no normalisation on the first), then a dense logit.

Normalisation (a decision, written down here): DCGAN uses batch norm in both players.
Linen's ``BatchNorm`` keeps running averages in a mutable ``batch_stats`` collection,
which would make the generator stateful. The generator instead uses
:class:`BatchStatNorm`: batch norm *always in training mode* (statistics of the
current batch, learned scale and shift, no running averages), so it stays a pure
function of ``(params, z)``; sampling draws all ``num`` images as one batch, as the
DCGAN reference code samples in train mode. The discriminator uses per-example layer
norm by default: batch statistics would couple the real and fake examples of a
batch and break the per-example gradients that the gradient penalty (WGAN-GP) and R1
are defined with (the WGAN-GP paper makes the same substitution).

Initialisation (``weight_init``): ``"dcgan"`` (the default, the paper's) draws every conv,
transposed-conv and dense weight from ``N(0, 0.02^2)`` and every batch-norm scale from
``N(1, 0.02^2)`` (biases 0); ``"lecun"`` keeps linen's defaults (LeCun-normal weights,
unit scales).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("batch", "layer", "none")
INITS = ("dcgan", "lecun")
DCGAN_STD = 0.02


def _scale_around_one(std: float):
    def init(key, shape, dtype=jnp.float32):
        return 1.0 + std * jax.random.normal(key, shape, dtype)

    return init


def _init_kwargs(init: str, *, scale: bool = False) -> dict:
    """Linen initialiser keywords for ``init`` (see the module docstring)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid choices: {', '.join(INITS)}")
    if init == "lecun":
        return {}
    if scale:
        return {"scale_init": _scale_around_one(DCGAN_STD)}
    return {"kernel_init": nn.initializers.normal(DCGAN_STD)}


class BatchStatNorm(nn.Module):
    """Batch norm in training mode only: ``scale * (x - mean_B) / sqrt(var_B + eps) + bias``.

    Statistics are over every axis but the last (batch and space), per channel; no
    running averages, no mutable state. Input ``(b, ..., C)`` -> same shape.
    """

    epsilon: float = 1e-5
    scale_init: nn.initializers.Initializer = nn.initializers.ones

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
        c = x.shape[-1]
        scale = self.param("scale", self.scale_init, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


def make_norm(kind: str, name: str, *, init: str = "lecun") -> nn.Module | None:
    """``"batch"`` -> :class:`BatchStatNorm`, ``"layer"`` -> per-example LayerNorm over
    (H, W, C), ``"none"`` -> None; ``init="dcgan"`` draws the scales from ``N(1, 0.02^2)``."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; valid choices: {', '.join(NORMS)}")
    scale = _init_kwargs(init, scale=True)
    if kind == "batch":
        return BatchStatNorm(name=name, **scale)
    if kind == "layer":
        return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1, name=name, **scale)
    return None


def check_resolution(out_shape: Sequence[int], num_upsamplings: int, *, what: str = "generator") -> tuple[int, int]:
    """The base resolution ``(H / 2^k, W / 2^k)``; raises if the image size is unreachable."""
    if len(tuple(out_shape)) != 3:
        raise ValueError(f"{what} out_shape must be (H, W, C), got {tuple(out_shape)}")
    h, w, _ = out_shape
    s = 2**num_upsamplings
    if h % s or w % s:
        raise ValueError(
            f"the {what} cannot produce {h}x{w} images with {num_upsamplings} stride-2 upsamplings: "
            f"height and width must be divisible by 2**{num_upsamplings} = {s} "
            "(choose features/channels with fewer stages, or another image size)"
        )
    return h // s, w // s


def default_stages(h: int, w: int, *, max_stages: int = 3) -> int:
    """The most stride-2 stages (at most ``max_stages``) that keep a base of >= 2 pixels:
    28 -> 2 (7x7 base), 32 -> 3 (4x4), 8 -> 2 (2x2)."""
    k = 0
    while k < max_stages and h % 2 ** (k + 1) == 0 and w % 2 ** (k + 1) == 0 and min(h, w) // 2 ** (k + 1) >= 2:
        k += 1
    if k == 0:
        raise ValueError(f"a DCGAN needs even image sizes of at least 4 pixels, got {h}x{w}")
    return k


def dcgan_features(h: int, w: int, width: int) -> tuple[int, ...]:
    """Generator widths ``(width * 2^(k-1), ..., width)`` for ``k = default_stages(h, w)``."""
    k = default_stages(h, w)
    return tuple(width * 2 ** (k - 1 - i) for i in range(k))


class DCGANGenerator(nn.Module):
    """``(b, latent_dim) -> (b, H, W, C)`` in ``[-1, 1]``.

    ``len(features) = k`` stride-2 transposed convolutions: the projection is reshaped
    to ``(H/2^k, W/2^k, features[0])``; the i-th deconvolution outputs ``features[i+1]``
    channels, the last one ``C``.
    """

    out_shape: tuple[int, int, int]
    features: Sequence[int] = (128, 64)
    norm: str = "batch"
    weight_init: str = "dcgan"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        k = len(self.features)
        h0, w0 = check_resolution(self.out_shape, k, what="DCGAN generator")
        c = self.out_shape[-1]
        kw = _init_kwargs(self.weight_init)
        x = nn.Dense(h0 * w0 * self.features[0], name="project", **kw)(z)
        x = x.reshape(z.shape[0], h0, w0, self.features[0])
        outs = list(self.features[1:]) + [c]
        for i, f in enumerate(outs):
            norm = make_norm(self.norm, f"norm_{i}", init=self.weight_init)
            x = nn.relu(norm(x) if norm is not None else x)
            x = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding="SAME", name=f"deconv_{i}", **kw)(x)
        return jnp.tanh(x)


class DCGANDiscriminator(nn.Module):
    """``(b, H, W, C) -> (b,)`` logits: stride-2 4x4 convolutions, LeakyReLU(0.2), dense.

    ``patch=True`` makes it a PatchGAN discriminator (Isola et al., 2017; the latent
    diffusion autoencoder's): the dense head is replaced by a 1-channel 3x3 convolution,
    so it gives one logit per patch, ``(b, H / 2^k, W / 2^k)`` for ``k = len(features)``
    (the receptive field of each is a patch of the image). ``patch=False`` (default) is
    the DCGAN discriminator, parameter-identical to before the option existed.
    """

    features: Sequence[int] = (64, 128)
    norm: str = "layer"
    patch: bool = False
    weight_init: str = "dcgan"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = _init_kwargs(self.weight_init)
        for i, f in enumerate(self.features):
            x = nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME", name=f"conv_{i}", **kw)(x)
            norm = make_norm(self.norm, f"norm_{i}", init=self.weight_init) if i > 0 else None
            x = nn.leaky_relu(norm(x) if norm is not None else x, negative_slope=0.2)
        if self.patch:
            return nn.Conv(1, (3, 3), padding="SAME", name="out", **kw)(x)[..., 0]
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1, name="out", **kw)(x)[:, 0]
