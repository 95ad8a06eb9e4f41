"""Data: toy 2-D densities, image sets (bundled digits, MNIST family from files or a
checksummed download), transforms and key-driven batching. Imports nothing else of genjax."""

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

__all__ = [
    "BatchSampler",
    "ChecksumError",
    "DownloadError",
    "EXACT_LOG_PROB_DENSITIES",
    "IMAGE_DATASETS",
    "ImageData",
    "TOY_DENSITIES",
    "ToyDensity",
    "data_dir",
    "dynamic_binarize",
    "fetch",
    "get_toy_density",
    "iterate_batches",
    "load_binarized_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_mnist",
    "to_signed",
    "to_unit",
    "train_test_split",
    "uniform_dequantize",
]
