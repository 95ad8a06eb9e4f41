"""Constructors of unCLIP's decoder (and the sizes of the prior).

The decoder is a DDPM conditioned on a CLIP image embedding (``cond_dim``): the embedding is
projected and added to the timestep embedding and projected into ``vector_tokens`` (the paper:
4) extra context tokens for the UNet's cross-attention; guidance by zeroing the embedding
(``p_uncond``, the paper: 10%). It works in the latent space of the latent diffusion model's
frozen autoencoder (a :class:`~genjax.ldm.LatentDiffusion` around it) or, without an
autoencoder, in pixels. DALL-E 2's decoder is a pixel model with two upsamplers; at 28x28 there
is nothing to upsample, and the latent space makes the two text-to-image systems differ only in
how they are conditioned (and is 3x cheaper a step on CPU).
"""

from __future__ import annotations

from typing import Any, Sequence

from genjax import _checks
from genjax.diffusion import constructors as dif_constructors
from genjax.diffusion.ddpm import DDPM
from genjax.ldm.autoencoder import Autoencoder
from genjax.ldm.models import LatentDiffusion
from genjax.nn.unet import UNet, check_image_size

#: The prior Transformer of each size (width, depth, heads). The decoder's UNet is the latent
#: diffusion model's of the same size (``genjax.ldm.constructors.SIZES``).
PRIOR_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"width": 16, "depth": 1, "heads": 2},
    "small": {"width": 128, "depth": 4, "heads": 4},
    "gpu": {"width": 256, "depth": 8, "heads": 8},
}


def embedding_decoder(
    embed_dim: int,
    *,
    autoencoder: Autoencoder | None = None,
    autoencoder_params=None,
    scale_factor: float = 1.0,
    data_shape: Sequence[int] | None = None,
    base: int = 64,
    channel_mult: Sequence[int] = (1,),
    num_res_blocks: int = 1,
    num_heads: int = 4,
    vector_tokens: int = 4,
    T: int = 1000,
    schedule: str = "linear",
    p_uncond: float = 0.1,
    default_sampler: str = "ddim",
):
    """unCLIP's decoder: a DDPM over the autoencoder's scaled latents (``autoencoder`` given: a
    :class:`LatentDiffusion`) or over ``data_shape`` images in [0, 1], conditioned on an
    ``embed_dim`` image embedding.

    Args:
      embed_dim: the CLIP embedding width (the condition's).
      autoencoder, autoencoder_params, scale_factor: the frozen stage-1 autoencoder and its
        latent scale (latent decoder); all ``None``/default for a pixel decoder.
      data_shape: the images' ``(H, W, C)`` of a pixel decoder (``None`` with an autoencoder).
      base, channel_mult, num_res_blocks, num_heads: the UNet's.
      vector_tokens: context tokens the embedding is projected into (the paper: 4).
      T, schedule, p_uncond, default_sampler: the DDPM's (``p_uncond``: the share of training
        examples whose embedding is zeroed).
    """
    _checks.positive_int("embed_dim", embed_dim)
    if (autoencoder is None) == (data_shape is None):
        raise ValueError("give an autoencoder (latent decoder) or data_shape (pixel decoder), exactly one")
    shape = tuple(autoencoder.latent_shape) if autoencoder is not None else tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C), got {shape}")
    check_image_size(shape[0], shape[1], len(tuple(channel_mult)))
    net = UNet(_checks.positive_int("base", base), tuple(channel_mult), _checks.positive_int("num_res_blocks", num_res_blocks),
               None, None, _checks.positive_int("num_heads", num_heads), cond_dim=int(embed_dim),
               vector_tokens=_checks.positive_int("vector_tokens", vector_tokens))
    ddpm = DDPM(net, shape, dif_constructors.discrete_schedule(schedule, T), p_uncond=p_uncond,
                default_sampler=default_sampler, data_range="identity" if autoencoder is not None else "unit",
                cond_dim=int(embed_dim))
    if autoencoder is None:
        return ddpm
    return LatentDiffusion(autoencoder, autoencoder_params, ddpm, float(scale_factor))
