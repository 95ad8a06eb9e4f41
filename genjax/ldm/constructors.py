"""Constructors of the text-to-image systems: the text-conditioned DDPM (pixel or latent space)
and the latent diffusion model around it."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from genjax import _checks
from genjax.diffusion import constructors as dif_constructors
from genjax.diffusion.ddpm import DDPM
from genjax.ldm.autoencoder import Autoencoder
from genjax.ldm.models import LatentDiffusion
from genjax.nn.unet import UNet, check_image_size
from genjax.types import Condition

#: The networks of each size: the UNet (base width, levels, residual blocks, heads) of the
#: latent model and of the pixel-space baseline (the same UNet class; at 28x28 three levels,
#: so a narrower base: its step already costs ~5x the latent one's on CPU), the autoencoder's
#: width, residual blocks per level (0 on CPU: 2.5x faster a step at equal quality per CPU
#: second) and latent channels. "small" trains on 2 CPU cores in about an hour; "tiny" is for tests.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"base": 16, "pixel_base": 8, "latent_mult": (1,), "pixel_mult": (1, 2), "res": 1, "heads": 2,
             "ae_width": 8, "ae_res": 0, "latent_channels": 2, "T": 50},
    "small": {"base": 64, "pixel_base": 32, "latent_mult": (1,), "pixel_mult": (1, 2, 2), "res": 1, "heads": 4,
              "ae_width": 32, "ae_res": 0, "latent_channels": 4, "T": 1000},
    "gpu": {"base": 128, "pixel_base": 128, "latent_mult": (1,), "pixel_mult": (1, 2, 2), "res": 2, "heads": 8,
            "ae_width": 64, "ae_res": 1, "latent_channels": 4, "T": 1000},
}


def text_ddpm(
    data_shape: Sequence[int],
    *,
    text_encoder: Callable,
    text_condition: Condition,
    null_tokens: Sequence[int],
    data_range: str,
    base: int = 64,
    channel_mult: Sequence[int] = (1,),
    num_res_blocks: int = 2,
    num_heads: int = 4,
    T: int = 1000,
    schedule: str = "linear",
    p_uncond: float = 0.1,
    default_sampler: str = "ddim",
) -> DDPM:
    """A DDPM whose UNet cross-attends to a frozen text encoder's token states.

    Args:
      data_shape: ``(H, W, C)``: an image (``data_range="unit"``) or a latent (``"identity"``).
      text_encoder: frozen ``tokens (b, L) -> states (b, L, D)``.
      text_condition: the tokens' ``Condition`` (kind ``"tokens"``).
      null_tokens: the empty caption's tokens (caption dropout, the unconditional branch).
      base, channel_mult, num_res_blocks, num_heads: the UNet's (cross-attention after every
        self-attention block, at the lowest level and in the middle).
      T, schedule: the discrete schedule (``genjax.diffusion.ddpm_image``'s).
      p_uncond: caption-drop probability in training (classifier-free guidance).
      default_sampler: ``"ddim"`` (50 steps) or ``"ddpm"``.
    """
    shape = tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C), got {shape}")
    check_image_size(shape[0], shape[1], len(tuple(channel_mult)))
    net = UNet(_checks.positive_int("base", base), tuple(channel_mult), _checks.positive_int("num_res_blocks", num_res_blocks),
               None, None, _checks.positive_int("num_heads", num_heads), use_context=True)
    return DDPM(
        net, shape, dif_constructors.discrete_schedule(schedule, T), p_uncond=p_uncond, default_sampler=default_sampler,
        data_range=data_range, text_encoder=text_encoder, text_condition=text_condition,
        null_tokens=tuple(int(t) for t in null_tokens),
    )


def latent_diffusion(
    autoencoder: Autoencoder,
    autoencoder_params,
    scale_factor: float,
    **text_ddpm_kwargs,
) -> LatentDiffusion:
    """:class:`LatentDiffusion` with a :func:`text_ddpm` on ``autoencoder``'s latents
    (``data_range="identity"``; the keyword arguments are :func:`text_ddpm`'s)."""
    ddpm = text_ddpm(autoencoder.latent_shape, data_range="identity", **text_ddpm_kwargs)
    return LatentDiffusion(autoencoder, autoencoder_params, ddpm, float(scale_factor))
