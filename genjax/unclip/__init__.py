"""DALL-E 2 in miniature (unCLIP, Ramesh et al., 2022): a diffusion prior from a caption to a
CLIP image embedding, and a decoder from that embedding to an image.

A system, not a family: it composes the families' parts. The prior (``prior.py``) is the
diffusion family's DDPM over CLIP image embeddings (scaled to unit variance per coordinate),
predicting the clean embedding with ``nn.PriorTransformer``, conditioned on a frozen CLIP's
caption token states and text embedding (``genjax.clip.FrozenTextEncoder(..., with_embedding=True)``,
injected: this package never imports ``genjax.clip``).
"""

from genjax.unclip.prior import (
    embed_scale,
    from_prior_space,
    prior_ddpm,
    prior_training_data,
    sample_prior,
    select_candidates,
    to_prior_space,
)

__all__ = [
    "embed_scale",
    "from_prior_space",
    "prior_ddpm",
    "prior_training_data",
    "sample_prior",
    "select_candidates",
    "to_prior_space",
]
