"""CLIP: a contrastive image-text model (Radford et al. 2021), trained from scratch.

An image encoder and a text encoder (any Flax modules: ``images (b, H, W, C) -> (b, w_i)``
and ``tokens (b, L) -> (states (b, L, w_t), pooled (b, w_t))``), each followed by a linear
projection to a shared ``embed_dim`` space and L2 normalisation; a learned log-temperature;
the symmetric InfoNCE over a batch (:mod:`genjax.clip.objectives`).

The model holds no parameters. ``params`` is one dict: ``image_encoder``, ``text_encoder``,
``image_proj``, ``text_proj`` and the scalar ``log_scale``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.clip import objectives
from genjax._checks import batch_x
from genjax.types import Array, Batch, Condition, Metrics, Params, PRNGKeyArray, batch_cond, check_cond


class CLIPNet(nn.Module):
    """The two towers, their projections and the log-scale, as one linen module."""

    image_encoder: nn.Module
    text_encoder: nn.Module
    embed_dim: int
    init_log_scale: float

    def setup(self):
        self.image_proj = nn.Dense(self.embed_dim, use_bias=False)
        self.text_proj = nn.Dense(self.embed_dim, use_bias=False)
        self.log_scale = self.param("log_scale", nn.initializers.constant(self.init_log_scale), ())

    def encode_image(self, x: Array) -> Array:
        return objectives.l2_normalize(self.image_proj(self.image_encoder(x)))

    def text_states(self, tokens: Array) -> Array:
        return self.text_encoder(tokens)[0]

    def encode_text(self, tokens: Array) -> Array:
        return self.text_features(tokens)[1]

    def text_features(self, tokens: Array) -> tuple[Array, Array]:
        states, pooled = self.text_encoder(tokens)
        return states, objectives.l2_normalize(self.text_proj(pooled))

    def __call__(self, x: Array, tokens: Array) -> tuple[Array, Array, Array]:
        return self.encode_image(x), self.encode_text(tokens), self.log_scale


def _mesh_agnostic(fn):
    """``fn`` run with the compiler choosing every sharding when traced under an explicit-sharding
    mesh (``fit(..., mesh=)``), its outputs replicated; ``fn`` itself elsewhere.

    Under explicit sharding an embedding lookup of batch-sharded tokens (``nn.Embed``) or a
    per-row gather has no unambiguous output sharding and is a trace error; the towers are
    any modules, so the model lets the compiler place them (the batch stays split for the
    convolutions; the ``(b, b)`` logits need the gathered embeddings anyway).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not mesh.explicit_axes:
        return fn
    return jax.sharding.auto_axes(fn, axes=mesh.explicit_axes, out_sharding=jax.sharding.PartitionSpec())


def prompt_ensemble(text_emb: Array, owner, num_classes: int) -> Array:
    """CLIP's prompt ensemble: the mean of each class's L2-normalised prompt embeddings,
    renormalised. ``text_emb (N, d)``, ``owner (N,)`` class of each prompt -> ``(C, d)``."""
    total = jax.ops.segment_sum(objectives.l2_normalize(text_emb), jnp.asarray(owner), num_segments=num_classes)
    return objectives.l2_normalize(total)


def pick_caption(key: PRNGKeyArray, batch: Batch) -> Batch:
    """The training transform: one of the ``K`` captions of each image, uniformly at random.

    ``batch = {"x": (b, H, W, C), "cond": (b, K, L)}`` -> ``{"x": ..., "cond": (b, L)}``
    (a ``(b, L)`` cond is one caption per image already and is returned as is). Use it as
    ``fit(model, {"x": images, "cond": tokens_k}, transform=pick_caption, ...)``: every step
    sees a fresh caption draw, from the step's key.
    """
    if not isinstance(batch, dict) or "cond" not in batch:
        raise ValueError("pick_caption needs a dict batch {'x': images, 'cond': tokens (b, K, L)}")
    cond = batch["cond"]
    if cond.ndim == 2:
        return batch
    if cond.ndim != 3:
        raise ValueError(f"batch['cond'] must be tokens (b, L) or K captions per image (b, K, L), got shape {cond.shape}")
    b, k, _ = cond.shape
    pick = jax.random.randint(key, (b,), 0, k)
    take = _mesh_agnostic(lambda c, i: jnp.take_along_axis(c, i[:, None, None], axis=1)[:, 0])
    return {**batch, "cond": take(cond, pick)}


@dataclasses.dataclass(frozen=True)
class CLIP:
    """A CLIP model: ``init``, ``loss`` of the model API and the CLIP API.

    Attributes:
      image_encoder: linen module ``(b, *image_shape) -> (b, w_i)``.
      text_encoder: linen module ``tokens (b, L) int -> (states (b, L, w_t), pooled (b, w_t))``
        (e.g. :class:`genjax.nn.transformer.TextTransformer`); padding handled inside it.
      image_shape: ``(H, W, C)`` of the images it takes.
      condition: a ``Condition(kind="tokens", vocab_size, max_len, pad_id)``: the captions.
      embed_dim: width of the shared embedding space.
      init_temperature: the temperature the log-scale starts at (CLIP: 0.07).
      max_logit_scale: the cap on the logit scale (CLIP: 100), see
        :func:`genjax.clip.objectives.logit_scale`.
      tokenizer: optional; any object with ``encode(list[str]) -> (n, L) int`` so that
        ``zero_shot_classify`` and ``tokenize`` take strings.

    ``log_prob_kind = "none"``, and ``sample`` / ``log_prob`` raise: CLIP scores image-text
    pairs, it is not a density and draws nothing.
    """

    image_encoder: nn.Module
    text_encoder: nn.Module
    image_shape: tuple[int, ...]
    condition: Condition
    embed_dim: int = 64
    init_temperature: float = objectives.INIT_TEMPERATURE
    max_logit_scale: float = objectives.MAX_LOGIT_SCALE
    tokenizer: Any = dataclasses.field(default=None, compare=False)

    log_prob_kind = "none"

    def __post_init__(self):
        if not isinstance(self.condition, Condition) or self.condition.kind != "tokens":
            raise ValueError(f"condition must be a Condition(kind='tokens', vocab_size=..., ...), got {self.condition!r}")
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {self.image_shape}")
        for d in self.image_shape:
            _checks.positive_int("image_shape entries", d)
        _checks.positive_int("embed_dim", self.embed_dim)
        _checks.positive_float("init_temperature", self.init_temperature)
        _checks.positive_float("max_logit_scale", self.max_logit_scale)
        if self.tokenizer is not None and not callable(getattr(self.tokenizer, "encode", None)):
            raise ValueError(f"tokenizer must have encode(list[str]) -> tokens, got {type(self.tokenizer).__name__}")

    @property
    def net(self) -> CLIPNet:
        return CLIPNet(self.image_encoder, self.text_encoder, self.embed_dim,
                       objectives.init_log_scale(self.init_temperature))

    # ------------------------------------------------------------------ checks
    def check_images(self, x, *, name: str = "x") -> None:
        """Raises ``ValueError`` naming ``name`` unless ``x`` is ``(n, *image_shape)`` floats
        (finite, when concrete)."""
        _checks.batch_shape(name, x, self.image_shape)
        _checks.finite(name, x)

    def check_tokens(self, tokens, *, name: str = "tokens") -> Array:
        """``tokens`` as ``(n, L)`` int32, checked against ``condition`` (``ValueError``
        naming ``name`` otherwise)."""
        return check_cond(self.condition, tokens, int(np.shape(tokens)[0]) if np.ndim(tokens) else -1, name=name)

    def check_batch(self, batch: Batch, *, name: str = "batch") -> None:
        """Raises ``ValueError`` unless ``batch`` is ``{"x": (b, *image_shape), "cond": (b, L) tokens}``."""
        x = batch_x(batch)
        self.check_images(x, name=f"{name}['x']" if isinstance(batch, dict) else name)
        batch_cond(self.condition, batch, x.shape[0], name=name)

    # ------------------------------------------------------------------ model API
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Parameters from an example batch ``{"x": images, "cond": tokens}``; ``cond`` may
        also hold ``K`` captions per image, ``(b, K, L)``, as training data before
        :func:`pick_caption` does (only shapes are used)."""
        if isinstance(batch, dict) and np.ndim(batch.get("cond")) == 3:
            batch = {**batch, "cond": batch["cond"][:, 0]}
        self.check_batch(batch, name="batch")
        x, tokens = jnp.asarray(batch["x"][:1]), jnp.asarray(batch["cond"][:1], jnp.int32)
        return self.net.init(key, x, tokens)["params"]

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Symmetric InfoNCE of the batch's ``b`` image-caption pairs (mean over pairs).

        Metrics: ``loss``, ``logit_scale``, and the in-batch top-1 accuracies
        ``image_to_text_acc`` / ``text_to_image_acc`` (chance ``1/b``).
        """
        del key  # deterministic: no dropout
        self.check_batch(batch, name="batch")
        img, txt, log_scale = _mesh_agnostic(self.net.apply)({"params": params}, batch["x"], batch["cond"])
        logits = objectives.clip_logits(img, txt, log_scale, max_scale=self.max_logit_scale)
        loss = jnp.mean(objectives.symmetric_info_nce(logits))
        target = jnp.arange(logits.shape[0])
        return loss, {
            "loss": loss,
            "logit_scale": objectives.logit_scale(log_scale, max_scale=self.max_logit_scale),
            "image_to_text_acc": jnp.mean(jnp.argmax(logits, axis=1) == target),
            "text_to_image_acc": jnp.mean(jnp.argmax(logits, axis=0) == target),
        }

    def sample(self, params: Params, key: PRNGKeyArray, num: int, *, cond=None, guidance=None) -> Array:
        """Not defined: CLIP scores image-text pairs and draws nothing (raises ``TypeError``)."""
        raise TypeError("CLIP does not sample: it embeds images and captions (encode_image, encode_text, "
                        "zero_shot_classify); text-to-image generation conditions another model on it")

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Not defined (``log_prob_kind = "none"``): raises ``TypeError``."""
        raise TypeError("CLIP has no density (log_prob_kind='none')")

    # ------------------------------------------------------------------ CLIP API
    def encode_image(self, params: Params, x: Array) -> Array:
        """``(n, *image_shape)`` -> ``(n, embed_dim)`` L2-normalised image embeddings."""
        self.check_images(x)
        return self.net.apply({"params": params}, x, method=CLIPNet.encode_image)

    def encode_text(self, params: Params, tokens: Array) -> Array:
        """``(n, L)`` tokens -> ``(n, embed_dim)`` L2-normalised caption embeddings."""
        tokens = self.check_tokens(tokens)
        return self.net.apply({"params": params}, tokens, method=CLIPNet.encode_text)

    def text_states(self, params: Params, tokens: Array) -> Array:
        """``(n, L)`` tokens -> ``(n, L, w_t)``: the text encoder's token states (before the
        projection), the sequence a text-to-image model attends to."""
        tokens = self.check_tokens(tokens)
        return self.net.apply({"params": params}, tokens, method=CLIPNet.text_states)

    def text_features(self, params: Params, tokens: Array) -> tuple[Array, Array]:
        """``(n, L)`` tokens -> ``(text_states (n, L, w_t), encode_text (n, embed_dim))`` from
        one pass of the text tower."""
        tokens = self.check_tokens(tokens)
        return self.net.apply({"params": params}, tokens, method=CLIPNet.text_features)

    def similarity(self, params: Params, x: Array, tokens: Array) -> Array:
        """``(n, m)`` cosine similarities of ``n`` images and ``m`` captions, in ``[-1, 1]``
        (the training logits are these times the logit scale)."""
        return self.encode_image(params, x) @ self.encode_text(params, tokens).T

    def tokenize(self, texts: Sequence[str]) -> Array:
        """Captions -> ``(n, L)`` tokens with the model's ``tokenizer``."""
        if self.tokenizer is None:
            raise ValueError("this CLIP has no tokenizer: pass token ids (n, L) instead of strings")
        return jnp.asarray(self.tokenizer.encode(list(texts)), jnp.int32)

    def class_embeddings(self, params: Params, class_prompts) -> Array:
        """Prompt-ensembled class embeddings ``(C, embed_dim)`` (CLIP, Section 3.1.4).

        Each class's prompts are embedded, L2-normalised, averaged and the mean renormalised.

        Args:
          class_prompts: ``(C, P, L)`` token ids (``P`` prompts per class), or (with a
            ``tokenizer``) a list of ``C`` lists of prompt strings (lengths may differ).
        """
        tokens, owner, num_classes = self.prompt_tokens(class_prompts)
        return prompt_ensemble(self.encode_text(params, tokens), owner, num_classes)

    def zero_shot_classify(self, params: Params, images: Array, class_prompts) -> Array:
        """Zero-shot labels ``(n,)`` int32: the class whose prompt-ensembled embedding is the
        most similar to each image (no classifier head; see :meth:`class_embeddings`).

        The scores themselves are ``encode_image(params, images) @ class_embeddings(params,
        class_prompts).T``.
        """
        scores = self.encode_image(params, images) @ self.class_embeddings(params, class_prompts).T
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)

    def prompt_tokens(self, class_prompts) -> tuple[Array, np.ndarray, int]:
        """Class prompts (as :meth:`class_embeddings` takes them) as flat ``(N, L)`` tokens,
        the class of each (``(N,)``) and the number of classes ``C``: embed the tokens in
        batches of your own and finish with :func:`prompt_ensemble`."""
        if isinstance(class_prompts, (list, tuple)) and class_prompts and all(
            isinstance(c, (list, tuple)) and c and all(isinstance(p, str) for p in c) for c in class_prompts
        ):
            if self.tokenizer is None:
                raise ValueError("class_prompts are strings but this CLIP has no tokenizer: pass (C, P, L) token ids")
            owner = np.concatenate([np.full(len(c), i, np.int32) for i, c in enumerate(class_prompts)])
            return self.tokenize([p for c in class_prompts for p in c]), owner, len(class_prompts)
        if isinstance(class_prompts, (list, tuple)) and not all(isinstance(c, (list, tuple, np.ndarray, jax.Array)) for c in class_prompts):
            raise ValueError("class_prompts must be (C, P, L) token ids or a list of C non-empty lists of strings")
        shape = np.shape(class_prompts)
        if len(shape) != 3 or 0 in shape:
            raise ValueError(f"class_prompts must be (C, P, L) token ids (P prompts per class) or a list of C lists "
                             f"of strings, got shape {shape}")
        c, p, length = shape
        owner = np.repeat(np.arange(c, dtype=np.int32), p)
        return jnp.reshape(jnp.asarray(class_prompts), (c * p, length)), owner, c


@dataclasses.dataclass(frozen=True, eq=False)
class FrozenTextEncoder:
    """A trained CLIP's text tower as a diffusion model's frozen ``text_encoder``; it keeps the
    CLIP, whose image tower scores the samples (CLIP score, R-precision).

    ``__call__(tokens (b, L))`` returns the token states ``(b, L, w_t)`` (what latent diffusion's
    UNet cross-attends to) or, ``with_embedding=True``, ``(states, text_emb (b, embed_dim))``
    with the unit-norm CLIP text embedding too (what unCLIP's diffusion prior reads), both from
    one pass of the text tower.

    Attributes:
      clip: the CLIP model.
      params: its trained parameters.
      with_embedding: also return the CLIP text embedding.
    """

    clip: CLIP
    params: Any = dataclasses.field(repr=False)
    with_embedding: bool = False

    def __call__(self, tokens: Array) -> Array | tuple[Array, Array]:
        if self.with_embedding:
            return self.clip.text_features(self.params, tokens)
        return self.clip.text_states(self.params, tokens)
