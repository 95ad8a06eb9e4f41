"""Latent diffusion (Rombach et al., 2022): the DDPM on a frozen autoencoder's scaled latents.

``LatentDiffusion(autoencoder, autoencoder_params, diffusion, scale_factor)``: the model API
over images, whose only trained parameters are the diffusion network's:

* ``loss``: ``z = scale_factor * encode(x)`` (a posterior sample of the frozen encoder, no
  gradient), then the DDPM's loss on ``{"x": z, "cond": tokens}`` (caption dropout, when
  the DDPM is text-conditioned, is the DDPM's);
* ``sample``: the DDPM samples latents with any of its samplers (``"ddpm"``, ``"ddim"``,
  ``"pc"``, ``"ode"``) and classifier-free guidance, then ``decode(z / scale_factor)``;
* ``edit`` (image-to-image): encode, noise the latent to ``strength``, denoise under a new
  caption, decode; ``inpaint``: the known region is kept in latent space (a latent cell is
  known when every pixel of its ``f x f`` patch is), the rest sampled under the caption.

The text encoder (a trained CLIP's token states) lives inside the DDPM as a frozen function;
this model only adds the autoencoder around it, so the pixel-space text-to-image DDPM (the
cost baseline) is the same DDPM without this wrapper's encoder and decoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.diffusion.ddpm import DDPM
from genjax.ldm.autoencoder import Autoencoder
from genjax.types import Array, Batch, Condition, Metrics, Params, PRNGKeyArray, check_sample_args


@dataclasses.dataclass(frozen=True, eq=False)
class LatentDiffusion:
    """Text-to-image latent diffusion over ``data_shape`` images in ``[0, 1]``.

    Attributes:
      autoencoder: the stage-1 :class:`~genjax.ldm.autoencoder.Autoencoder`.
      autoencoder_params: its trained parameters (frozen: never updated, never differentiated).
      diffusion: a :class:`~genjax.diffusion.DDPM` with ``data_shape == autoencoder.latent_shape``
        and ``data_range="identity"``, text-conditioned or not.
      scale_factor: the latents are ``scale_factor * z`` (``1 / std`` of the training latents,
        :func:`~genjax.ldm.autoencoder.latent_scale`), so the DDPM sees unit-variance data.
    """

    autoencoder: Autoencoder
    autoencoder_params: Any = dataclasses.field(repr=False)
    diffusion: DDPM = dataclasses.field(repr=False)
    scale_factor: float = 1.0

    log_prob_kind = "none"

    def __post_init__(self):
        if not isinstance(self.autoencoder, Autoencoder):
            raise ValueError(f"autoencoder must be a genjax.ldm.Autoencoder, got {type(self.autoencoder).__name__}")
        if not isinstance(self.diffusion, DDPM):
            raise ValueError(f"diffusion must be a genjax.diffusion.DDPM, got {type(self.diffusion).__name__}")
        if tuple(self.diffusion.data_shape) != tuple(self.autoencoder.latent_shape):
            raise ValueError(
                f"diffusion.data_shape {tuple(self.diffusion.data_shape)} must be the autoencoder's latent shape "
                f"{tuple(self.autoencoder.latent_shape)}"
            )
        if self.diffusion.data_range != "identity":
            raise ValueError(f"diffusion.data_range must be 'identity' (latents are unbounded), got {self.diffusion.data_range!r}")
        _checks.positive_float("scale_factor", self.scale_factor)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """One image's shape ``(H, W, C)``."""
        return tuple(self.autoencoder.data_shape)

    @property
    def condition(self) -> Condition:
        """The DDPM's condition (caption tokens for the text-to-image model)."""
        return self.diffusion.condition

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.autoencoder.latent_shape)

    # ------------------------------------------------------------------ latents
    def to_latent(self, x: Array, key: PRNGKeyArray | None = None) -> Array:
        """Images ``(b, *data_shape)`` in [0, 1] -> scaled latents ``(b, *latent_shape)``: the
        posterior mean (``key=None``) or a posterior sample, times ``scale_factor``; no gradient."""
        z = self.autoencoder.encode_latent(self.autoencoder_params, key, x)
        return jax.lax.stop_gradient(z * self.scale_factor)

    def from_latent(self, z: Array) -> Array:
        """Scaled latents -> images in [0, 1] (the frozen decoder)."""
        return self.autoencoder.decode(self.autoencoder_params, z / self.scale_factor)

    def _latent_batch(self, key: PRNGKeyArray | None, batch: Batch) -> Batch:
        x = batch["x"] if isinstance(batch, dict) else batch
        z = self.to_latent(x, key)
        return {**batch, "x": z} if isinstance(batch, dict) else z

    # ------------------------------------------------------------------ model API
    def check_batch(self, batch: Batch, *, name: str = "batch") -> None:
        """The autoencoder's checks of the images, the DDPM's of the condition."""
        x = batch["x"] if isinstance(batch, dict) else batch
        self.autoencoder.check_batch(x, name=name)
        z = np.zeros((np.shape(x)[0], *self.latent_shape), np.float32)  # (the latents' shape: the DDPM checks the rest)
        self.diffusion.check_batch({**batch, "x": z} if isinstance(batch, dict) else z, name=name)

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """The DDPM's parameters (the only trained ones), from an example batch of images."""
        return self.diffusion.init(key, self._latent_batch(None, batch))

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """The DDPM's loss on the scaled latents of a posterior sample of the batch's images."""
        k_enc, k_loss = jax.random.split(key)
        return self.diffusion.loss(params, k_loss, self._latent_batch(k_enc, batch))

    def sample(self, params: Params, key: PRNGKeyArray, num: int, *, cond=None, guidance=None, negative_cond=None,
               **sampler) -> Array:
        """``num`` images ``(num, *data_shape)`` in [0, 1]: latents from the DDPM (``cond``:
        caption tokens ``(num, L)``; ``guidance``: classifier-free guidance weight;
        ``negative_cond``: a negative prompt's tokens in the empty caption's place; ``sampler``:
        the DDPM's ``sampler``, ``steps``, ``eta``), decoded."""
        num, _, _ = check_sample_args(self.condition, num, cond, guidance)
        z = self.diffusion.sample(params, key, num, cond=cond, guidance=guidance, negative_cond=negative_cond, **sampler)
        return self.from_latent(z)

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Not defined (``log_prob_kind = "none"``): the DDPM's bound is on latents, not images."""
        raise TypeError("LatentDiffusion has no density of images (log_prob_kind='none'); the DDPM's "
                        "bound would be on the latents")

    # ------------------------------------------------------------------ editing
    def edit(self, params: Params, key: PRNGKeyArray, x: Array, *, strength: float, cond=None, guidance=None,
             **sampler) -> Array:
        """Image-to-image: ``x``'s latent noised to ``strength`` in [0, 1] and denoised under
        ``cond``, decoded. ``strength=0`` gives ``x``'s reconstruction (its latent unchanged)."""
        self.autoencoder.check_batch(x, name="x")
        z = self.diffusion.edit(params, key, self.to_latent(x), strength=strength, cond=cond, guidance=guidance, **sampler)
        return self.from_latent(z)

    def latent_mask(self, mask) -> Array:
        """A pixel mask ``(b, H, W)`` or ``(b, H, W, C)`` (True: known) -> the latent mask
        ``(b, h, w, 1)``: a latent cell is known when every pixel of its ``f x f`` patch is."""
        m = np.asarray(mask)
        h, w = self.data_shape[:2]
        if m.ndim == 4:
            m = m.all(axis=-1)
        if m.ndim != 3 or m.shape[1:] != (h, w):
            raise ValueError(f"mask must have shape (batch, {h}, {w}) (True where the image is known), got {np.shape(mask)}")
        f = self.autoencoder.downsample
        cells = m.astype(bool).reshape(m.shape[0], h // f, f, w // f, f).all(axis=(2, 4))
        return jnp.asarray(cells[..., None])

    def inpaint_latent(self, params: Params, key: PRNGKeyArray, x: Array, mask, *, cond=None, guidance=None,
                       **sampler) -> Array:
        """The scaled latents of :meth:`inpaint` (before decoding): ``to_latent(x)`` exactly at
        the known cells of :meth:`latent_mask`, sampled under ``cond`` elsewhere."""
        self.autoencoder.check_batch(x, name="x")
        m = self.latent_mask(mask)
        if m.shape[0] != np.shape(x)[0]:
            raise ValueError(f"mask must have one row per image: {np.shape(x)[0]}, got {m.shape[0]}")
        return self.diffusion.inpaint(params, key, self.to_latent(x), m, cond=cond, guidance=guidance, **sampler)

    def inpaint(self, params: Params, key: PRNGKeyArray, x: Array, mask, *, cond=None, guidance=None, **sampler) -> Array:
        """Inpainting: the latents of ``x`` where ``mask`` (pixels ``(b, H, W)``, True: known)
        covers whole latent cells are kept exactly; the rest is sampled under ``cond``; decoded."""
        return self.from_latent(self.inpaint_latent(params, key, x, mask, cond=cond, guidance=guidance, **sampler))
