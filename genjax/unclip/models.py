"""unCLIP (Ramesh et al., 2022, "DALL-E 2"): text -> CLIP image embedding (a diffusion prior)
-> image (a diffusion decoder conditioned on that embedding).

``UnCLIP(clip, clip_params, prior, prior_params, decoder)`` is the model API over images whose
trained parameters are the decoder's (the prior and CLIP are frozen, trained in earlier stages):

* ``loss``: the decoder's loss on ``{"x": images, "cond": CLIP image embeddings}`` (frozen
  CLIP, no gradient; the decoder zeroes the embedding with its ``p_uncond`` for guidance); the
  embeddings are computed once for a data set by :meth:`UnCLIP.decoder_training_data` (the
  batch's ``"image_emb"``), or per batch from the images;
* ``sample``: caption tokens -> ``num_candidates`` prior samples per caption, the one with the
  higher dot product with the caption's CLIP text embedding kept (the paper's k = 2) -> decoded
  under classifier-free guidance on the embedding. ``embedding="text"`` feeds the caption's
  CLIP *text* embedding to the decoder directly (the paper's prior ablation);
* what unCLIP can do that latent diffusion cannot: :meth:`variations` (decode new images from a
  real image's CLIP embedding), :meth:`interpolate` (slerp between two images' embeddings) and
  :meth:`text_diff` (move an image's embedding along the normalised difference of two captions'
  text embeddings, e.g. "a thin 7" -> "a thick 7"). Interpolations and text diffs decode every
  frame from the same noise (one key, deterministic DDIM), as the paper does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.clip import CLIP
from genjax.clip.objectives import l2_normalize
from genjax.diffusion.ddpm import DDPM
from genjax.types import Array, Batch, Condition, Metrics, Params, PRNGKeyArray, check_sample_args
from genjax.unclip.prior import sample_prior

#: where ``UnCLIP.sample`` takes the image embedding from
EMBEDDINGS = ("prior", "text")


def slerp(a: Array, b: Array, w) -> Array:
    """Spherical interpolation of unit vectors: ``a (d,)``, ``b (d,)``, weights ``w (n,)`` in
    [0, 1] -> ``(n, d)`` unit vectors (``w = 0``: ``a``; ``w = 1``: ``b``; the straight line,
    renormalised, where ``a`` and ``b`` are (anti)parallel)."""
    a, b = l2_normalize(jnp.asarray(a)), l2_normalize(jnp.asarray(b))
    w = jnp.asarray(w, jnp.float32)[:, None]
    omega = jnp.arccos(jnp.clip(jnp.dot(a, b), -1.0, 1.0))
    so = jnp.sin(omega)
    safe = so > 1e-6
    lin = l2_normalize((1.0 - w) * a + w * b)
    sph = (jnp.sin((1.0 - w) * omega) * a + jnp.sin(w * omega) * b) / jnp.where(safe, so, 1.0)
    return jnp.where(safe, sph, lin)


@dataclasses.dataclass(frozen=True, eq=False)
class UnCLIP:
    """DALL-E 2 in miniature over ``data_shape`` images in ``[0, 1]``.

    Attributes:
      clip: the frozen :class:`~genjax.clip.CLIP` (its text embedding conditions the prior and
        ranks the prior's candidates; its image embedding is what the decoder is trained on).
      clip_params: its parameters.
      prior: the diffusion prior, a :class:`~genjax.diffusion.DDPM` over the ``(embed_dim,)``
        image embeddings in prior space (:func:`genjax.unclip.prior.prior_ddpm`).
      prior_params: its trained parameters (frozen).
      decoder: a model with a vector condition of width ``clip.embed_dim`` (a DDPM with
        ``cond_dim``, or a :class:`~genjax.ldm.LatentDiffusion` around one:
        :func:`genjax.unclip.constructors.embedding_decoder`).
      num_candidates: prior samples drawn per caption, the best kept (the paper: 2).
      prior_guidance: the prior's classifier-free guidance weight (``None``: none).
      prior_sampler: the prior's sampler keywords (default: DDIM, ``min(64, T)`` steps: the paper's 64).
    """

    clip: CLIP
    clip_params: Any = dataclasses.field(repr=False)
    prior: DDPM = dataclasses.field(repr=False)
    prior_params: Any = dataclasses.field(repr=False)
    decoder: Any = dataclasses.field(repr=False)
    num_candidates: int = 2
    prior_guidance: float | None = None
    prior_sampler: dict | None = None

    log_prob_kind = "none"

    def __post_init__(self):
        if not isinstance(self.clip, CLIP):
            raise ValueError(f"clip must be a genjax.clip.CLIP, got {type(self.clip).__name__}")
        if not isinstance(self.prior, DDPM) or tuple(self.prior.data_shape) != (self.clip.embed_dim,):
            raise ValueError(f"prior must be a DDPM over the ({self.clip.embed_dim},) CLIP image embeddings, got "
                             f"{type(self.prior).__name__} over {getattr(self.prior, 'data_shape', None)}")
        if self.prior.condition != self.clip.condition:
            raise ValueError(f"prior must take the CLIP's captions ({self.clip.condition.describe()}), "
                             f"it takes {self.prior.condition.describe()}")
        cond = getattr(self.decoder, "condition", None)
        if not isinstance(cond, Condition) or cond.kind != "vector" or cond.dim != self.clip.embed_dim:
            raise ValueError(f"decoder must be conditioned on a vector of width clip.embed_dim={self.clip.embed_dim} "
                             f"(the image embedding), got condition {cond!r}")
        _checks.positive_int("num_candidates", self.num_candidates)
        if self.prior_sampler is None:
            object.__setattr__(self, "prior_sampler", {"sampler": "ddim", "steps": min(64, self.prior.num_steps)})
        elif not isinstance(self.prior_sampler, dict):
            raise ValueError(f"prior_sampler must be a dict of the prior's sampler keywords, got {self.prior_sampler!r}")
        g = self.prior_guidance
        if g is not None and not (isinstance(g, (int, float)) and not isinstance(g, bool) and g >= 0):
            raise ValueError(f"prior_guidance must be a number >= 0 or None, got {g!r}")

    # ------------------------------------------------------------------ properties
    @property
    def data_shape(self) -> tuple[int, ...]:
        """One image's shape ``(H, W, C)`` (the decoder's)."""
        return tuple(self.decoder.data_shape)

    @property
    def condition(self) -> Condition:
        """What ``sample`` takes: the CLIP's caption tokens."""
        return self.clip.condition

    @property
    def embed_dim(self) -> int:
        return int(self.clip.embed_dim)

    # ------------------------------------------------------------------ embeddings
    def image_embedding(self, x: Array) -> Array:
        """Images ``(n, *data_shape)`` -> their unit-norm CLIP image embeddings ``(n, d)`` (no gradient)."""
        return jax.lax.stop_gradient(self.clip.encode_image(self.clip_params, x))

    def text_embedding(self, tokens: Array) -> Array:
        """Caption tokens ``(n, L)`` -> unit-norm CLIP text embeddings ``(n, d)``."""
        return jax.lax.stop_gradient(self.clip.encode_text(self.clip_params, tokens))

    def prior_embedding(self, key: PRNGKeyArray, tokens: Array, *, guidance=None, num_candidates: int | None = None,
                        **sampler) -> Array:
        """Image embeddings ``(n, d)`` the prior draws for ``tokens (n, L)``: the best of
        ``num_candidates`` by the dot product with the caption's text embedding."""
        sampler = {**self.prior_sampler, **sampler}
        g = self.prior_guidance if guidance is None else guidance
        k = self.num_candidates if num_candidates is None else _checks.positive_int("num_candidates", num_candidates)
        return sample_prior(self.prior, self.prior_params, key, tokens, text_emb=self.text_embedding(tokens),
                            num_candidates=k, guidance=g, **sampler)

    def _tokens(self, num: int, cond) -> Array:
        return self.prior.null_cond(num) if cond is None else cond

    # ------------------------------------------------------------------ model API
    def _decoder_batch(self, batch: Batch) -> dict:
        if isinstance(batch, dict) and "image_emb" in batch:
            return {"x": batch["x"], "cond": jax.lax.stop_gradient(jnp.asarray(batch["image_emb"], jnp.float32))}
        x = batch["x"] if isinstance(batch, dict) else batch
        return {"x": x, "cond": self.image_embedding(x)}

    def decoder_training_data(self, images, *, chunk: int = 500) -> dict[str, np.ndarray]:
        """``{"x": images, "image_emb": their CLIP image embeddings}`` (host arrays): the decoder's
        training data with the frozen CLIP's embeddings computed once, not at every step
        (:meth:`loss` takes them from ``"image_emb"``; the same values, the CLIP tower off the
        step's critical path)."""
        from genjax._xla import chunked_map

        x = np.asarray(images, np.float32)
        self.clip.check_images(x, name="images")
        return {"x": x, "image_emb": np.asarray(chunked_map(self.clip.encode_image, self.clip_params, x, chunk=chunk),
                                                np.float32)}

    def check_batch(self, batch: Batch, *, name: str = "batch") -> None:
        """The decoder trains on images (a dict batch's captions, if any, are not used): checked
        as the CLIP's image tower takes them; a dict's ``"image_emb"`` (precomputed CLIP image
        embeddings, :meth:`decoder_training_data`) must be ``(b, embed_dim)``."""
        x = batch["x"] if isinstance(batch, dict) else batch
        self.clip.check_images(x, name=f"{name}['x']" if isinstance(batch, dict) else name)
        if isinstance(batch, dict) and "image_emb" in batch:
            shape = tuple(np.shape(batch["image_emb"]))
            if shape != (np.shape(x)[0], self.embed_dim):
                raise ValueError(f"{name}['image_emb'] must be the images' CLIP embeddings of shape "
                                 f"({np.shape(x)[0]}, {self.embed_dim}), got shape {shape}")

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """The decoder's parameters (the only trained ones), from an example batch of images."""
        self.check_batch(batch)
        return self.decoder.init(key, self._decoder_batch(batch))

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """The decoder's loss on the batch's images under their (frozen) CLIP image embeddings."""
        self.check_batch(batch)
        return self.decoder.loss(params, key, self._decoder_batch(batch))

    def decode(self, params: Params, key: PRNGKeyArray, emb: Array, *, guidance=None, **sampler) -> Array:
        """Images ``(n, *data_shape)`` from image embeddings ``emb (n, d)`` (renormalised) under
        classifier-free guidance ``guidance`` on the embedding; ``sampler``: the decoder's."""
        emb = jnp.asarray(emb, jnp.float32)
        if emb.ndim != 2 or emb.shape[1] != self.embed_dim:
            raise ValueError(f"emb must be image embeddings of shape (n, {self.embed_dim}), got shape {emb.shape}")
        return self.decoder.sample(params, key, emb.shape[0], cond=l2_normalize(emb), guidance=guidance, **sampler)

    def sample(self, params: Params, key: PRNGKeyArray, num: int, *, cond=None, guidance=None,
               embedding: str = "prior", prior_guidance=None, **sampler) -> Array:
        """``num`` images of the captions ``cond`` (tokens ``(num, L)``; ``None``: the empty
        caption) in [0, 1].

        Args:
          guidance: the decoder's classifier-free guidance weight (on the image embedding).
          embedding: ``"prior"`` (the diffusion prior's, best of ``num_candidates``) or ``"text"``
            (the caption's CLIP text embedding fed to the decoder directly: the ablation).
          prior_guidance: the prior's guidance weight (default ``self.prior_guidance``).
          sampler: the decoder's ``sampler``, ``steps``, ``eta``.
        """
        num, cond, guidance = check_sample_args(self.condition, num, cond, guidance)
        _checks.one_of("embedding", embedding, EMBEDDINGS)
        k_prior, k_dec = jax.random.split(key)
        tokens = self._tokens(num, cond)
        if embedding == "prior":
            emb = self.prior_embedding(k_prior, tokens, guidance=prior_guidance)
        else:
            emb = self.text_embedding(tokens)
        return self.decode(params, k_dec, emb, guidance=guidance, **sampler)

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Not defined (``log_prob_kind = "none"``)."""
        raise TypeError("UnCLIP has no density of images (log_prob_kind='none')")

    # ------------------------------------------------------------------ what the embedding allows
    def variations(self, params: Params, key: PRNGKeyArray, images: Array, *, num: int = 8, guidance=None,
                   **sampler) -> Array:
        """``num`` new images ``(n, num, *data_shape)`` from each of ``images``' CLIP image
        embedding (the image itself is never seen by the decoder)."""
        _checks.positive_int("num", num)
        self.clip.check_images(images, name="images")
        emb = jnp.repeat(self.image_embedding(jnp.asarray(images, jnp.float32)), num, axis=0)
        out = self.decode(params, key, emb, guidance=guidance, **sampler)
        return out.reshape(len(images), num, *self.data_shape)

    def decode_same_noise(self, params: Params, key: PRNGKeyArray, emb: Array, *, guidance=None, **sampler) -> Array:
        """Each embedding of ``emb (n, d)`` decoded from the same noise (``key``): the frames of an
        interpolation differ only in the embedding."""
        return jax.vmap(lambda e: self.decode(params, key, e[None], guidance=guidance, **sampler)[0])(jnp.asarray(emb))

    def interpolate(self, params: Params, key: PRNGKeyArray, image_a: Array, image_b: Array, *, num_frames: int = 8,
                    guidance=None, **sampler) -> Array:
        """``num_frames`` images ``(num_frames, *data_shape)`` along the slerp from ``image_a``'s
        CLIP embedding to ``image_b``'s (one image each, ``(*data_shape)``), decoded from one noise."""
        _checks.positive_int("num_frames", num_frames)
        x = jnp.stack([jnp.asarray(image_a, jnp.float32), jnp.asarray(image_b, jnp.float32)])
        self.clip.check_images(x, name="image_a, image_b")
        ea, eb = self.image_embedding(x)
        return self.decode_same_noise(params, key, slerp(ea, eb, jnp.linspace(0.0, 1.0, num_frames)),
                                      guidance=guidance, **sampler)

    def text_diff(self, params: Params, key: PRNGKeyArray, image: Array, source: Array, target: Array, *,
                  amounts: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), guidance=None, **sampler) -> Array:
        """The paper's text diffs: ``image``'s embedding ``z_i`` moved towards ``z_d =
        normalize(z_t(target) - z_t(source))`` (``source``, ``target``: one caption's tokens
        ``(1, L)`` each) by ``slerp(z_i, z_d, theta)`` for each ``theta`` of ``amounts``; one image
        ``(len(amounts), *data_shape)`` per amount, decoded from one noise."""
        x = jnp.asarray(image, jnp.float32)[None]
        self.clip.check_images(x, name="image")
        src, tgt = self.clip.check_tokens(source, name="source"), self.clip.check_tokens(target, name="target")
        if src.shape[0] != 1 or tgt.shape[0] != 1:
            raise ValueError(f"source and target must be one caption's tokens (1, L), got {src.shape} and {tgt.shape}")
        amounts = np.asarray(amounts, np.float32)
        if amounts.ndim != 1 or amounts.size == 0 or np.any((amounts < 0) | (amounts > 1)):
            raise ValueError(f"amounts must be a non-empty sequence of weights in [0, 1], got {amounts.tolist()}")
        z_d = l2_normalize(self.text_embedding(tgt)[0] - self.text_embedding(src)[0])
        return self.decode_same_noise(params, key, slerp(self.image_embedding(x)[0], z_d, amounts),
                                      guidance=guidance, **sampler)
