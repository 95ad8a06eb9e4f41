"""Data: toy 2-D densities, image sets (bundled digits, MNIST family from files or a
checksummed download), captioned image sets with measured attributes and their word-level
tokenizer, transforms and key-driven batching. Imports nothing else of genjax but the
bottom floor."""

from genjax.data.attributes import ATTRIBUTES, brightness, measure, size, skeleton, slant, thickness
from genjax.data.captions import (
    CAPTIONED_DATASETS,
    HELD_OUT_PAIRS,
    CaptionedData,
    attribute_bins,
    attribute_prompts,
    class_prompts,
    load_captioned,
    pair_prompts,
)
from genjax.data.download import ChecksumError, DownloadError, data_dir, fetch
from genjax.data.images import (
    IMAGE_DATASETS,
    ImageData,
    load_binarized_mnist,
    load_digits,
    load_fashion_mnist,
    load_image_dataset,
    load_mnist,
)
from genjax.data.pipeline import (
    BatchSampler,
    dynamic_binarize,
    iterate_batches,
    to_signed,
    to_unit,
    train_test_split,
    uniform_dequantize,
)
from genjax.data.synthetic import EXACT_LOG_PROB_DENSITIES, TOY_DENSITIES, ToyDensity, get_toy_density
from genjax.data.tokenizer import Tokenizer, caption_tokenizer


def __getattr__(name: str):
    """``VOCAB`` and ``MAX_CAPTION_TOKENS`` of :mod:`genjax.data.captions`, computed on first use."""
    if name in ("VOCAB", "MAX_CAPTION_TOKENS"):
        from genjax.data import captions

        return getattr(captions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTRIBUTES",
    "BatchSampler",
    "CAPTIONED_DATASETS",
    "CaptionedData",
    "ChecksumError",
    "DownloadError",
    "EXACT_LOG_PROB_DENSITIES",
    "HELD_OUT_PAIRS",
    "IMAGE_DATASETS",
    "ImageData",
    "MAX_CAPTION_TOKENS",
    "TOY_DENSITIES",
    "Tokenizer",
    "ToyDensity",
    "VOCAB",
    "attribute_bins",
    "attribute_prompts",
    "brightness",
    "caption_tokenizer",
    "class_prompts",
    "data_dir",
    "dynamic_binarize",
    "fetch",
    "get_toy_density",
    "iterate_batches",
    "load_binarized_mnist",
    "load_captioned",
    "load_digits",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_mnist",
    "measure",
    "pair_prompts",
    "size",
    "skeleton",
    "slant",
    "thickness",
    "to_signed",
    "to_unit",
    "train_test_split",
    "uniform_dequantize",
]
