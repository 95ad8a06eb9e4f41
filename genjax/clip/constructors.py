"""CLIP constructors: a CPU-sized model and a bigger ``size="gpu"`` one."""

from __future__ import annotations

from typing import Any, Sequence

from genjax import _checks
from genjax.clip.models import CLIP
from genjax.nn.encoders import PooledConvEncoder
from genjax.nn.transformer import TextTransformer
from genjax.types import Condition

#: The networks of each size: image CNN stages, text Transformer width / depth / heads, the
#: shared embedding width. "small" trains on 2 CPU cores in minutes; "gpu" is ~16x the compute;
#: "tiny" is for tests and smoke runs (compiles in seconds).
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"features": (8,), "image_width": 16, "text_width": 16, "depth": 1, "num_heads": 2, "embed_dim": 16},
    "small": {"features": (16, 32, 64), "image_width": 128, "text_width": 64, "depth": 2, "num_heads": 4, "embed_dim": 64},
    "gpu": {"features": (64, 128, 256), "image_width": 512, "text_width": 256, "depth": 4, "num_heads": 8, "embed_dim": 256},
}


def clip_model(
    image_shape: Sequence[int],
    *,
    vocab_size: int,
    max_len: int,
    pad_id: int = 0,
    eos_id: int = 2,
    size: str = "small",
    pool_grid: tuple[int, int] | None = None,
    causal: bool = False,
    pooling: str | None = None,
    tokenizer: Any = None,
    init_temperature: float = 0.07,
    max_logit_scale: float = 100.0,
) -> CLIP:
    """A CLIP of a named ``size`` (``SIZES``): pooled CNN image tower, Transformer text tower.

    Args:
      image_shape: ``(H, W, C)`` of the images.
      vocab_size, max_len, pad_id, eos_id: the tokenizer's (e.g. ``genjax.data.tokenizer``'s
        ``caption_tokenizer()``: pad 0, bos 1, eos 2).
      size: ``"small"`` (CPU), ``"gpu"`` or ``"tiny"`` (tests).
      pool_grid: ``None`` pools the image features globally (any image size); ``(gh, gw)``
        keeps a coarse layout (``(1, 2)`` for side-by-side pairs: "a 3 to the left of a 5").
      causal, pooling: the text Transformer's mask and pooled output (its defaults when
        ``pooling`` is None).
      tokenizer: optional, lets ``zero_shot_classify`` take prompt strings.

    Examples:
      >>> m = clip_model((28, 28, 1), vocab_size=40, max_len=12)
      >>> m.condition.kind, m.embed_dim
      ('tokens', 64)
    """
    _checks.one_of("size", size, tuple(SIZES))
    s = SIZES[size]
    _checks.positive_int("vocab_size", vocab_size)
    _checks.positive_int("max_len", max_len)
    text_kw = {} if pooling is None else {"pooling": pooling}
    return CLIP(
        image_encoder=PooledConvEncoder(features=s["features"], out_dim=s["image_width"], pool_grid=pool_grid),
        text_encoder=TextTransformer(vocab_size=vocab_size, max_len=max_len, width=s["text_width"], depth=s["depth"],
                                     num_heads=s["num_heads"], causal=causal, pad_id=pad_id, eos_id=eos_id, **text_kw),
        image_shape=tuple(image_shape),
        condition=Condition(kind="tokens", vocab_size=vocab_size, max_len=max_len, pad_id=pad_id),
        embed_dim=s["embed_dim"],
        init_temperature=init_temperature,
        max_logit_scale=max_logit_scale,
        tokenizer=tokenizer,
    )


def clip_small(image_shape: Sequence[int], **kwargs) -> CLIP:
    """``clip_model(image_shape, size="small", ...)``: trains on a CPU in minutes."""
    return clip_model(image_shape, size="small", **kwargs)


def clip_gpu(image_shape: Sequence[int], **kwargs) -> CLIP:
    """``clip_model(image_shape, size="gpu", ...)``: the accelerator config."""
    return clip_model(image_shape, size="gpu", **kwargs)
