"""Tests of genjax.data.images (CPU, no internet; real-data tests skip without the data)."""

from __future__ import annotations

import gzip
import os
import pathlib
import shutil

import numpy as np
import pytest

from genjax.data import download as dl
from genjax.data import images as im


def _real_data_dir() -> pathlib.Path:
    env = os.environ.get("GENJAX_DATA_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


REAL = _real_data_dir()


def _require(dataset: str, *files: str) -> pathlib.Path:
    missing = [f for f in files if not (REAL / dataset / f).is_file()]
    if missing:
        pytest.skip(f"{dataset} data not found under {REAL} (set GENJAX_DATA_DIR): {missing}")
    return REAL


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_range_levels():
    train, test = im.load_digits("train"), im.load_digits("test")
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1437, 360)
    for d in (train, test):
        assert d.name == "digits" and d.num_levels == 17
        assert d.shape == (8, 8, 1) and d.x.shape == (len(d), 8, 8, 1)
        assert d.x.dtype == np.float32 and d.y.dtype == np.int32
        assert d.x.min() == 0.0 and d.x.max() == 1.0
        assert set(np.unique(d.y)) == set(range(10))
    levels = np.unique(np.concatenate([train.x.ravel(), test.x.ravel()]))
    np.testing.assert_array_equal(levels, np.arange(17, dtype=np.float32) / 16)


def test_digits_split_disjoint_and_deterministic():
    from sklearn.datasets import load_digits as sk

    ref = sk().images.reshape(1797, -1) / 16.0
    train, test = im.load_digits("train"), im.load_digits("test")

    # The documented recipe: test = perm[:360], train = perm[360:], in permutation order.
    import jax

    perm = np.asarray(jax.random.permutation(jax.random.key(0), 1797))
    np.testing.assert_array_equal(test.x.reshape(360, -1), ref[perm[:360]].astype(np.float32))
    np.testing.assert_array_equal(train.x.reshape(1437, -1), ref[perm[360:]].astype(np.float32))
    np.testing.assert_array_equal(test.y, sk().target[perm[:360]])
    # Disjoint index sets that cover all 1797 images.
    assert set(perm[:360].tolist()).isdisjoint(perm[360:].tolist())
    assert sorted(perm.tolist()) == list(range(1797))

    # Same seed -> same split, across a cache clear; another seed -> another split.
    im.clear_cache()
    again = im.load_digits("test")
    np.testing.assert_array_equal(again.x, test.x)
    np.testing.assert_array_equal(again.y, test.y)
    other = im.load_digits("test", seed=1)
    assert not np.array_equal(other.y, test.y)
    assert len(im.load_digits("test", test_fraction=0.5)) == 899


def test_digits_bad_args():
    with pytest.raises(ValueError, match=r"split='valid'.*\['train', 'test'\]"):
        im.load_digits("valid")
    with pytest.raises(ValueError, match="test_fraction"):
        im.load_digits("train", test_fraction=1.0)


def test_arrays_are_read_only_and_cached():
    d = im.load_image_dataset("digits", "train")
    assert d is im.load_digits("train")
    assert not d.x.flags.writeable and not d.y.flags.writeable
    with pytest.raises(ValueError):
        d.x[0, 0, 0, 0] = 1.0


# ----------------------------------------------------------------------------- errors


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match=r"name='cifar'.*digits.*mnist.*fashion-mnist.*binarized-mnist"):
        im.load_image_dataset("cifar")
    with pytest.raises(ValueError, match=r"split='valid'.*'mnist'.*\['train', 'test'\]"):
        im.load_image_dataset("mnist", "valid")
    with pytest.raises(ValueError, match=r"split='dev'.*\['train', 'valid', 'test'\]"):
        im.load_image_dataset("binarized-mnist", "dev")
    with pytest.raises(ValueError, match="split='val'"):
        im.load_fashion_mnist("val")
    assert im.IMAGE_DATASETS == ("digits", "mnist", "fashion-mnist", "binarized-mnist")


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + payload


def test_read_idx_good_and_malformed(tmp_path):
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx(2051, (2, 2, 3), bytes(range(12)))))
    arr = im.read_idx(good, expected_magic=2051)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8 and arr[1, 1, 2] == 11

    cases = {
        "short.gz": (gzip.compress(_idx(2051, (2, 2, 3), bytes(range(11)))), "header says shape"),
        "long.gz": (gzip.compress(_idx(2051, (2, 2, 3), bytes(range(13)))), "header says shape"),
        "magic.gz": (gzip.compress(_idx(2049, (12,), bytes(12))), "magic number 2049"),
        "tiny.gz": (gzip.compress(b"\x00\x00"), "too short"),
        "nogzip.gz": (b"this is not gzip data", "malformed gzip"),
        "header.gz": (gzip.compress((2051).to_bytes(4, "big") + b"\x00\x00"), "truncated header"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=match) as info:
            im.read_idx(path, expected_magic=2051)
        assert name in str(info.value)


def test_malformed_idx_in_data_dir(tmp_path, monkeypatch):
    """A file whose checksum is recorded but whose content is malformed -> ValueError."""
    bad = gzip.compress(_idx(2051, (10, 28, 28), bytes(10 * 28 * 28 - 1)))
    labels = gzip.compress(_idx(2049, (10,), bytes(10)))
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(bad)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    import hashlib

    monkeypatch.setitem(
        dl.FILES,
        "mnist",
        {
            "t10k-images-idx3-ubyte.gz": hashlib.sha256(bad).hexdigest(),
            "t10k-labels-idx1-ubyte.gz": hashlib.sha256(labels).hexdigest(),
        },
    )
    with pytest.raises(ValueError, match="malformed IDX file"):
        im.load_mnist("test", data_dir=tmp_path, download=False)


def test_read_amat_good_and_malformed(tmp_path):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(3, 784))
    text = "".join(" ".join(map(str, row)) + "\n" for row in bits).encode()
    assert len(text) == 3 * 1568
    for name, content in [("a.amat", text), ("a.amat.gz", gzip.compress(text))]:
        (tmp_path / name).write_bytes(content)
        np.testing.assert_array_equal(im.read_amat(tmp_path / name), bits)

    bad_len = text[:-1]
    bad_val = bytearray(text)
    bad_val[1568 + 10] = ord("2")
    bad_sep = bytearray(text)
    bad_sep[1] = ord(",")
    crlf = text.replace(b"\n", b"\r\n")
    for name, content, match in [
        ("len.amat", bad_len, "multiple"),
        ("val.amat", bytes(bad_val), "line 2 has a value"),
        ("sep.amat", bytes(bad_sep), "line 1 is not"),
        ("crlf.amat", crlf, "multiple"),
        ("empty.amat", b"", "multiple"),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=match):
            im.read_amat(tmp_path / name)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="GENJAX_DATA_DIR"):
        im.load_mnist("test", data_dir=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match=r"binarized_mnist_valid\.amat"):
        im.load_binarized_mnist("valid", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- real data

MNIST_TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_test_split():
    root = _require("mnist", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    d = im.load_image_dataset("mnist", "test", data_dir=root, download=False)
    assert d.name == "mnist" and d.split == "test" and d.num_levels == 256
    assert d.x.shape == (10000, 28, 28, 1) and d.shape == (28, 28, 1)
    assert d.x.dtype == np.float32 and d.y.dtype == np.int32
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    np.testing.assert_array_equal(np.unique(d.x[:100]) * 255, np.round(np.unique(d.x[:100]) * 255))
    assert np.bincount(d.y, minlength=10).tolist() == MNIST_TEST_HISTOGRAM
    assert not d.x.flags.writeable
    assert im.load_mnist("test", data_dir=root, download=False) is d


def test_fashion_mnist_test_split():
    root = _require("fashion-mnist", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    d = im.load_fashion_mnist("test", data_dir=root, download=False)
    assert d.x.shape == (10000, 28, 28, 1) and d.num_levels == 256
    assert 0.0 <= d.x.min() and d.x.max() == 1.0
    assert np.bincount(d.y, minlength=10).tolist() == [1000] * 10


def test_binarized_mnist_test_split():
    root = _require("binarized-mnist", "binarized_mnist_test.amat.gz")
    d = im.load_image_dataset("binarized-mnist", "test", data_dir=root, download=False)
    assert d.x.shape == (10000, 28, 28, 1) and d.y is None and d.num_levels == 2
    assert set(np.unique(d.x).tolist()) == {0.0, 1.0}
    assert d.x.mean(dtype=np.float64) == pytest.approx(0.13251, abs=5e-6)


def test_binarized_mnist_uncompressed_amat(tmp_path):
    """A local uncompressed .amat (as the public mirror serves it) is accepted."""
    root = _require("binarized-mnist", "binarized_mnist_test.amat.gz")
    folder = tmp_path / "binarized-mnist"
    folder.mkdir()
    with gzip.open(root / "binarized-mnist" / "binarized_mnist_test.amat.gz", "rb") as src:
        with open(folder / "binarized_mnist_test.amat", "wb") as dst:
            shutil.copyfileobj(src, dst)
    d = im.load_binarized_mnist("test", data_dir=tmp_path, download=False)
    ref = im.load_binarized_mnist("test", data_dir=root, download=False)
    assert d is not ref
    np.testing.assert_array_equal(d.x, ref.x)
