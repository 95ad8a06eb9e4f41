"""Image data sets as NumPy arrays: digits, MNIST, Fashion-MNIST, binarized MNIST.

Every loader returns an :class:`ImageData` whose ``x`` is a read-only float32 array of
shape ``(N, H, W, 1)`` (channels last) with values in ``[0, 1]``, and whose ``y`` is a
read-only int32 label array of shape ``(N,)`` (or ``None`` for binarized MNIST).

Data sets and fixed splits:

=================== ======= =========================== ========== ==========
name                H x W   splits (N)                  raw levels x values
=================== ======= =========================== ========== ==========
``digits``          8 x 8   train 1437, test 360        17         k/16
``mnist``           28 x 28 train 60000, test 10000     256        k/255
``fashion-mnist``   28 x 28 train 60000, test 10000     256        k/255
``binarized-mnist`` 28 x 28 train 50000, valid 10000,   2          0 or 1
                            test 10000
=================== ======= =========================== ========== ==========

* ``digits`` is scikit-learn's bundled copy of the UCI optical digits (1797 images,
  no download). Its train/test split is drawn with
  ``jax.random.permutation(jax.random.key(seed), 1797)``: the first
  ``ceil(test_fraction * 1797)`` permuted indices are the test set, the rest the
  train set, both in permutation order (``seed=0``, ``test_fraction=0.2`` by default).
* ``mnist`` / ``fashion-mnist`` use the canonical IDX files and their official
  train/test split, in file order.
* ``binarized-mnist`` is the fixed binarization of Larochelle & Murray (2011) with its
  official 50000/10000/10000 train/valid/test split, in file order. It has no labels.

Raw files are located (and, if allowed, downloaded and verified) by
:func:`genjax.data.download.fetch`; see :func:`genjax.data.download.data_dir` for
where they are looked up. Parsed arrays are cached per process, keyed on
``(name, split, resolved data dir)``; that is why they are returned read-only (copy
them, e.g. ``np.array(data.x)``, to modify).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import os
import pathlib
import threading
import zlib

import numpy as np

import genjax.data.download as _dl

__all__ = [
    "IMAGE_DATASETS",
    "ImageData",
    "clear_cache",
    "load_binarized_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_mnist",
    "read_amat",
    "read_idx",
]

IMAGE_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "binarized-mnist")

SPLITS: dict[str, tuple[str, ...]] = {
    "digits": ("train", "test"),
    "mnist": ("train", "test"),
    "fashion-mnist": ("train", "test"),
    "binarized-mnist": ("train", "valid", "test"),
}

_DIGITS_N = 1797

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_BINARIZED_ROWS = {"train": 50000, "valid": 10000, "test": 10000}

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
_AMAT_PIXELS = 784
_AMAT_LINE = 2 * _AMAT_PIXELS  # 784 digits, 783 spaces, 1 newline = 1568 bytes


@dataclasses.dataclass(frozen=True)
class ImageData:
    """One split of an image data set.

    Attributes:
        name: Data set name, one of :data:`IMAGE_DATASETS`.
        split: ``"train"``, ``"test"`` or (binarized MNIST only) ``"valid"``.
        x: float32 array of shape ``(N, H, W, 1)``, values in ``[0, 1]``; read-only.
        y: int32 labels of shape ``(N,)`` in ``0..9``, or ``None`` (binarized MNIST);
            read-only.
        num_levels: Number of distinct intensity levels of the raw data (digits 17,
            MNIST/Fashion-MNIST 256, binarized MNIST 2); ``x`` takes values
            ``k / (num_levels - 1)``.
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray | None
    num_levels: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, ``(H, W, 1)``."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------- parsing


def _read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file, gunzipping it when its name ends in ``.gz``."""
    path = pathlib.Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"malformed gzip file {path}: {e}") from e
    return path.read_bytes()


def read_idx(path: str | os.PathLike, *, expected_magic: int | None = None) -> np.ndarray:
    """Parse an unsigned-byte IDX file (``.gz`` or uncompressed).

    The header is big-endian: a magic number ``0x000008DD`` (``08`` = unsigned byte,
    ``DD`` = number of dimensions; 2051 for image files, 2049 for label files), then
    one uint32 size per dimension, then the data in C order.

    Args:
        path: The file.
        expected_magic: If given, the magic number the file must have.

    Returns:
        A uint8 array with the shape from the header.

    Raises:
        ValueError: Bad gzip stream, wrong magic number, or a data length that does
            not match the header.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"malformed IDX file {path}: {len(data)} bytes, too short for a header")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(
            f"malformed IDX file {path}: magic number {magic} (0x{magic:08x}), "
            f"expected {expected_magic} (0x{expected_magic:08x})"
        )
    if magic >> 8 != 0x08:
        raise ValueError(
            f"malformed IDX file {path}: magic number 0x{magic:08x} is not an unsigned-byte IDX file"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"malformed IDX file {path}: truncated header ({len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(data) != expected:
        raise ValueError(
            f"malformed IDX file {path}: header says shape {dims} ({expected} bytes in all), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_amat(path: str | os.PathLike) -> np.ndarray:
    """Parse a binarized-MNIST ``.amat`` file (``.gz`` or uncompressed).

    Each line is 784 characters ``0``/``1`` separated by single spaces and ends in
    ``\\n`` (1568 bytes per line), i.e. one 28x28 image in row-major order.

    Args:
        path: The file.

    Returns:
        A uint8 array of shape ``(rows, 784)`` with values 0 and 1.

    Raises:
        ValueError: The file is not a whole number of 1568-byte lines, the separators
            are not single spaces/newlines, or a value is not ``0`` or ``1``.
    """
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % _AMAT_LINE:
        raise ValueError(
            f"malformed .amat file {path}: {len(data)} bytes is not a positive multiple of "
            f"the {_AMAT_LINE}-byte line (784 values '0'/'1', single spaces, '\\n')"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, _AMAT_LINE)
    seps = raw[:, 1::2]
    if not ((seps[:, :-1] == ord(" ")).all() and (seps[:, -1] == ord("\n")).all()):
        bad = int(np.flatnonzero(~((seps[:, :-1] == ord(" ")).all(1) & (seps[:, -1] == ord("\n"))))[0])
        raise ValueError(
            f"malformed .amat file {path}: line {bad + 1} is not 784 values separated by "
            "single spaces and ending in '\\n'"
        )
    values = raw[:, 0::2] - np.uint8(ord("0"))  # wraps below '0', so >1 catches all others
    if (values > 1).any():
        bad = int(np.flatnonzero((values > 1).any(1))[0])
        raise ValueError(f"malformed .amat file {path}: line {bad + 1} has a value other than 0/1")
    return values


# --------------------------------------------------------------------------- loaders


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS[name]:
        raise ValueError(
            f"unknown split={split!r} for dataset {name!r}; valid choices: {list(SPLITS[name])}"
        )


@functools.lru_cache(maxsize=None)
def _digits_split(split: str, seed: int, test_fraction: float) -> ImageData:
    import jax
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.asarray(bunch.images)
    if images.shape != (_DIGITS_N, 8, 8):
        raise ValueError(f"unexpected scikit-learn digits shape {images.shape}")
    perm = np.asarray(jax.random.permutation(jax.random.key(seed), _DIGITS_N))
    n_test = math.ceil(test_fraction * _DIGITS_N)
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    x = (images[idx] / 16.0).astype(np.float32)[..., None]
    y = np.asarray(bunch.target)[idx].astype(np.int32)
    return ImageData("digits", split, _readonly(x), _readonly(y), 17)


def load_digits(split: str = "train", *, seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """scikit-learn's bundled 8x8 digits (1797 images, intensities 0..16), no download.

    The split is fixed by ``seed``: ``perm = jax.random.permutation(jax.random.key(seed),
    1797)``; the test set is ``perm[:ceil(test_fraction * 1797)]`` and the train set the
    rest, both in permutation order. With the defaults that is 1437 train / 360 test.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: Seed of the split permutation.
        test_fraction: Fraction of the 1797 images in the test split, in ``(0, 1)``.

    Returns:
        ``ImageData`` with ``x`` float32 ``(N, 8, 8, 1)`` = intensity / 16 in ``[0, 1]``
        (17 levels), ``y`` int32 ``(N,)`` in ``0..9``.

    Raises:
        ValueError: Unknown split or ``test_fraction`` outside ``(0, 1)``.
    """
    _check_split("digits", split)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} must be in (0, 1)")
    return _digits_split(split, int(seed), float(test_fraction))


_CACHE: dict[tuple[str, str, str], ImageData] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Drop the in-process cache of parsed data sets."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _digits_split.cache_clear()


def _cached(name: str, split: str, data_dir, build) -> ImageData:
    root = _dl.data_dir(data_dir).resolve()
    key = (name, split, str(root))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    data = build(root)
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, data)


def _load_idx(name: str, split: str, data_dir, download: bool) -> ImageData:
    _check_split(name, split)
    images_file, labels_file, n = _IDX_FILES[split]

    def build(root: pathlib.Path) -> ImageData:
        images_path = _dl.fetch(name, images_file, data_dir=root, download=download)
        labels_path = _dl.fetch(name, labels_file, data_dir=root, download=download)
        images = read_idx(images_path, expected_magic=_IDX_IMAGES_MAGIC)
        labels = read_idx(labels_path, expected_magic=_IDX_LABELS_MAGIC)
        if images.shape != (n, 28, 28):
            raise ValueError(f"malformed IDX file {images_path}: shape {images.shape}, expected {(n, 28, 28)}")
        if labels.shape != (n,):
            raise ValueError(f"malformed IDX file {labels_path}: shape {labels.shape}, expected {(n,)}")
        if labels.max() > 9:
            raise ValueError(f"malformed IDX file {labels_path}: label {labels.max()} > 9")
        x = images.astype(np.float32)[..., None]
        x /= np.float32(255.0)
        return ImageData(name, split, _readonly(x), _readonly(labels.astype(np.int32)), 256)

    return _cached(name, split, data_dir, build)


def load_mnist(split: str = "train", *, data_dir=None, download: bool = True) -> ImageData:
    """MNIST (LeCun et al.) from the canonical IDX ``.gz`` files.

    Files: ``<data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``,
    checked against their recorded sha256 (downloaded when missing and ``download``).

    Args:
        split: ``"train"`` (60000 images) or ``"test"`` (10000), the official split.
        data_dir: Root data directory; see :func:`genjax.data.download.data_dir`.
        download: Download missing files (else raise ``FileNotFoundError``).

    Returns:
        ``ImageData`` with ``x`` float32 ``(N, 28, 28, 1)`` = intensity / 255 in
        ``[0, 1]`` (256 levels) and ``y`` int32 ``(N,)`` in ``0..9``, in file order.

    Raises:
        ValueError: Unknown split or malformed file.
    """
    return _load_idx("mnist", split, data_dir, download)


def load_fashion_mnist(split: str = "train", *, data_dir=None, download: bool = True) -> ImageData:
    """Fashion-MNIST (Xiao et al., 2017) from the canonical IDX ``.gz`` files.

    Files: ``<data_dir>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
    Labels 0..9: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker,
    Bag, Ankle boot.

    Args:
        split: ``"train"`` (60000 images) or ``"test"`` (10000), the official split.
        data_dir: Root data directory; see :func:`genjax.data.download.data_dir`.
        download: Download missing files (else raise ``FileNotFoundError``).

    Returns:
        ``ImageData`` with ``x`` float32 ``(N, 28, 28, 1)`` = intensity / 255 in
        ``[0, 1]`` (256 levels) and ``y`` int32 ``(N,)`` in ``0..9``, in file order.

    Raises:
        ValueError: Unknown split or malformed file.
    """
    return _load_idx("fashion-mnist", split, data_dir, download)


def load_binarized_mnist(split: str = "train", *, data_dir=None, download: bool = True) -> ImageData:
    """Binarized MNIST with the fixed binarization of Larochelle & Murray (2011).

    Looks for ``<data_dir>/binarized-mnist/binarized_mnist_<split>.amat.gz`` (checked
    against the recorded ``.gz`` sha256), then ``binarized_mnist_<split>.amat``
    (checked against the uncompressed sha256); if neither exists and ``download``,
    downloads the uncompressed ``.amat`` from the recorded mirror.

    Args:
        split: ``"train"`` (50000), ``"valid"`` (10000) or ``"test"`` (10000), the
            official split.
        data_dir: Root data directory; see :func:`genjax.data.download.data_dir`.
        download: Download a missing file (else raise ``FileNotFoundError``).

    Returns:
        ``ImageData`` with ``x`` float32 ``(N, 28, 28, 1)`` in ``{0, 1}`` (2 levels),
        in file order, and ``y=None`` (the data set has no labels).

    Raises:
        ValueError: Unknown split or malformed file.
    """
    name = "binarized-mnist"
    _check_split(name, split)
    n = _BINARIZED_ROWS[split]

    def build(root: pathlib.Path) -> ImageData:
        stem = f"binarized_mnist_{split}.amat"
        folder = root / name
        if (folder / (stem + ".gz")).is_file():
            path = _dl.fetch(name, stem + ".gz", data_dir=root, download=False)
        else:
            path = _dl.fetch(name, stem, data_dir=root, download=download)
        values = read_amat(path)
        if values.shape[0] != n:
            raise ValueError(f"malformed .amat file {path}: {values.shape[0]} rows, expected {n}")
        x = values.reshape(n, 28, 28, 1).astype(np.float32)
        return ImageData(name, split, _readonly(x), None, 2)

    return _cached(name, split, data_dir, build)


_LOADERS = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "binarized-mnist": load_binarized_mnist,
}


def load_image_dataset(
    name: str, split: str = "train", *, data_dir=None, download: bool = True
) -> ImageData:
    """Load one split of an image data set by name.

    Args:
        name: One of :data:`IMAGE_DATASETS`: ``"digits"``, ``"mnist"``,
            ``"fashion-mnist"``, ``"binarized-mnist"``.
        split: ``"train"`` / ``"test"``, plus ``"valid"`` for ``"binarized-mnist"``.
        data_dir: Root data directory (ignored for ``"digits"``, which is bundled).
        download: Download missing files (ignored for ``"digits"``).

    Returns:
        ``ImageData``; see the module docstring for shapes, ranges and splits.

    Raises:
        ValueError: Unknown ``name`` or ``split`` (the message lists valid choices).
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown name={name!r}; valid choices: {list(IMAGE_DATASETS)}")
    _check_split(name, split)
    if name == "digits":
        return load_digits(split)
    return _LOADERS[name](split, data_dir=data_dir, download=download)
