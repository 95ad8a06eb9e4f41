"""The domain feature extractor: a small CNN classifier trained per data set.

FID, KID, precision/recall, density/coverage and the classifier score
(:mod:`genjax.metrics.sample_quality`) need a feature space. Inception-v3 features
mean nothing on 8x8 or 28x28 greyscale digits, so every image data set gets its own
classifier, trained once with a fixed seed and cached *beside the data*::

    <data_dir()>/classifiers/<name>-<config hash>.msgpack   # flax.serialization params
    <data_dir()>/classifiers/<name>-<config hash>.json      # accuracy, seed, config, hashes

The features are the ReLU activations of the penultimate dense layer
(``feature_dim`` = 128 by default), the analogue of Inception's pool3 features.

Defaults (:data:`DEFAULT_CONFIGS`) and what they reached here with seed 0, measured
on the 2 shared CPU cores of the development machine while other jobs kept its load
average at 12-14 (so wall times are several times what an idle machine takes):

================= ======= ======= =============== ==========================================
dataset            steps   batch   test accuracy   time of ``train_classifier``
================= ======= ======= =============== ==========================================
``digits``          800     64     0.9889          25 s wall (12 s of it training incl.
                                                   compilation); 14 s CPU for the process
``mnist``          3000    128     0.9916          426 s wall, niced; the step costs ~0.023 s
                                                   of CPU, so ~70 s CPU for 3000 steps
``fashion-mnist``  3000    128     0.9046          415 s wall, niced (same step cost)
================= ======= ======= =============== ==========================================

Two cached classifiers are interchangeable only when their config hash matches: the
hash covers the data set, the seed, every training setting and :data:`FORMAT_VERSION`,
so FID numbers computed with different hashes must not be compared.

``binarized-mnist`` has no labels; use the ``mnist`` classifier for it (same 28x28
shape, and binary images are in ``[0, 1]``).

Examples:
  >>> clf = get_classifier("digits")                      # doctest: +SKIP
  >>> clf.features(images).shape                          # doctest: +SKIP
  (n, 128)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import sys
import time
import warnings
from typing import Any, Sequence

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import _checks
from genjax.data import download as _dl
from genjax.data import images as _images
from genjax.results import atomic_write

__all__ = [
    "CLASSIFIER_DATASETS",
    "DEFAULT_CONFIGS",
    "FORMAT_VERSION",
    "Classifier",
    "CorruptClassifierError",
    "FeatureClassifier",
    "conv3x3_patches",
    "cache_path",
    "classifier_config",
    "config_hash",
    "get_classifier",
    "load",
    "train_classifier",
]

#: Bumped whenever the network, the training loop or the file layout changes, so old
#: cache files get a different hash and are not reused.
FORMAT_VERSION = 1

#: Data sets with labels that a classifier can be trained on.
CLASSIFIER_DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")

_COMMON = {
    "features": (32, 64),
    "strides": (2, 2),
    "feature_dim": 128,
    "learning_rate": 1e-3,
    "shift": 1,
    "eval_batch_size": 500,
}

#: Training settings per data set (``get_classifier(name, **overrides)`` replaces any).
#:
#: ``features`` / ``strides``: channels and strides of the 3x3 convolutions;
#: ``feature_dim``: width of the penultimate (feature) layer; ``steps`` / ``batch_size``
#: / ``learning_rate``: Adam with a cosine decay to 0; ``shift``: random translation
#: of each training image by up to ``shift`` pixels (zero padded; 0 disables it);
#: ``eval_batch_size``: images per call when computing logits/features.
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "digits": {**_COMMON, "strides": (1, 2), "steps": 800, "batch_size": 64},
    "mnist": {**_COMMON, "steps": 3000, "batch_size": 128},
    "fashion-mnist": {**_COMMON, "steps": 3000, "batch_size": 128},
}

_INPUT_SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "fashion-mnist": (28, 28, 1)}
_NUM_CLASSES = 10
#: Pixel values may leave ``[0, 1]`` by this much (float round-off of a decoder) before
#: the classifier refuses them.
RANGE_ATOL = 1e-4


class CorruptClassifierError(ValueError):
    """A saved classifier (``.msgpack`` + ``.json``) is unreadable or inconsistent."""


# --------------------------------------------------------------------------- network


def conv3x3_patches(x: jax.Array, stride: int) -> jax.Array:
    """The 3x3 patches of ``x`` ``(b, H, W, C)`` at stride ``stride`` (zero padding 1):
    ``(b, (H - 1) // stride + 1, (W - 1) // stride + 1, 9 C)``, channel index
    ``(3 i + j) C + c`` for the offset ``(i, j)`` in the window.

    Built from nine strided slices, so its gradient is slicing too (no convolution).
    """
    _, h, w, _ = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    cols = [
        xp[:, i : i + (ho - 1) * stride + 1 : stride, j : j + (wo - 1) * stride + 1 : stride, :]
        for i in range(3)
        for j in range(3)
    ]
    return jnp.concatenate(cols, axis=-1)


class FeatureClassifier(nn.Module):
    """Small CNN for ``(H, W, 1)`` images: convolutions, a feature layer, logits.

    Layer ``conv_i`` is a 3x3 convolution with ``features[i]`` channels at stride
    ``strides[i]`` (zero padding 1) and a ReLU; then the map is flattened into a dense
    ReLU layer of width ``feature_dim`` (the features) and a dense layer of
    ``num_classes`` logits. Sizes: 28x28 with strides ``(2, 2)`` -> 14 -> 7; 8x8 with
    ``(1, 2)`` -> 8 -> 4.

    The convolutions are computed as patches (:func:`conv3x3_patches`) times a dense
    kernel ``(9 C_in, C_out)``: on XLA:CPU, for these shapes, a training step of
    ``nn.Conv`` was 20-40x slower (MNIST, batch 128, channels (32, 64): 0.54 s vs
    0.023 s of CPU time per step with strides (2, 2); 5.1 s vs 0.12 s with (1, 2)).

    ``__call__(x)`` with ``x`` of shape ``(b, H, W, C)`` returns
    ``(logits (b, num_classes), features (b, feature_dim))``.
    """

    features: Sequence[int] = (32, 64)
    strides: Sequence[int] = (2, 2)
    feature_dim: int = 128
    num_classes: int = _NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if len(self.strides) != len(self.features):
            raise ValueError(
                f"strides {tuple(self.strides)} must have one entry per conv layer, features {tuple(self.features)}"
            )
        for i, (f, s) in enumerate(zip(self.features, self.strides)):
            x = nn.relu(nn.Dense(f, name=f"conv_{i}")(conv3x3_patches(x, s)))
        x = x.reshape(x.shape[0], -1)
        feats = nn.relu(nn.Dense(self.feature_dim, name="features")(x))
        logits = nn.Dense(self.num_classes, name="logits")(feats)
        return logits, feats


# --------------------------------------------------------------------------- config


def _check_name(name: str) -> str:
    if name == "binarized-mnist":
        raise ValueError(
            "name='binarized-mnist' has no labels to train a classifier on; use the 'mnist' "
            "classifier for it (same 28x28 shape, binary images are in [0, 1])"
        )
    if name not in CLASSIFIER_DATASETS:
        raise ValueError(f"unknown name={name!r}; valid choices: {list(CLASSIFIER_DATASETS)}")
    return name


def classifier_config(name: str, **overrides) -> dict[str, Any]:
    """The training settings for ``name``: :data:`DEFAULT_CONFIGS` with ``overrides``.

    Returns:
      A new dict with JSON-friendly values (``features`` as a list of ints).

    Raises:
      ValueError: unknown ``name``, an unknown override, or a bad value.
    """
    _check_name(name)
    config = dict(DEFAULT_CONFIGS[name])
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(f"unknown classifier setting(s) {unknown}; valid settings: {sorted(config)}")
    config.update(overrides)
    feats = config["features"]
    if isinstance(feats, (int, str)) or not feats or not all(
        isinstance(f, (int, np.integer)) and not isinstance(f, bool) and f > 0 for f in feats
    ):
        raise ValueError(f"features must be a non-empty sequence of positive ints, got {feats!r}")
    config["features"] = [int(f) for f in feats]
    strides = config["strides"]
    if isinstance(strides, (int, str)) or len(strides) != len(feats) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in strides
    ):
        raise ValueError(
            f"strides must be a sequence of positive ints, one per entry of features={list(feats)}, got {strides!r}"
        )
    config["strides"] = [int(v) for v in strides]
    for k in ("feature_dim", "steps", "batch_size", "eval_batch_size"):
        config[k] = _checks.positive_int(k, config[k])
    config["shift"] = _checks.nonneg_int("shift", config["shift"])
    config["learning_rate"] = _checks.positive_float("learning_rate", config["learning_rate"])
    return config


def config_hash(name: str, seed: int, config: dict[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the canonical JSON of everything that
    determines the trained parameters: ``name``, ``seed``, ``config`` and
    :data:`FORMAT_VERSION` (``eval_batch_size`` is left out: it does not change them)."""
    payload = {
        "name": name,
        "seed": int(seed),
        "format_version": FORMAT_VERSION,
        "config": {k: v for k, v in sorted(config.items()) if k != "eval_batch_size"},
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def cache_path(name: str, *, data_dir=None, seed: int = 0, **overrides) -> pathlib.Path:
    """``<data_dir()>/classifiers/<name>-<config hash>.msgpack`` for these settings."""
    config = classifier_config(name, **overrides)
    root = _dl.data_dir(data_dir)
    return root / "classifiers" / f"{name}-{config_hash(name, seed, config)}.msgpack"


def fallback_cache_dir() -> pathlib.Path:
    """Where classifiers are cached when the data directory is read-only (a shared data
    set): ``$XDG_CACHE_HOME/genjax/classifiers`` or ``~/.cache/genjax/classifiers``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else pathlib.Path.home() / ".cache"
    return base / "genjax" / "classifiers"


def _writable(directory: pathlib.Path) -> bool:
    """Whether ``directory`` exists writable or could be created (its nearest existing
    ancestor is writable)."""
    d = pathlib.Path(directory)
    while not d.exists():
        if d.parent == d:
            return False
        d = d.parent
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


# --------------------------------------------------------------------------- classifier


def _check_images(name: str, x, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as float32 ``(n, *input_shape)`` in ``[0, 1]`` (clear errors otherwise)."""
    x = np.asarray(x)
    _checks.batch_shape(name, x, tuple(input_shape))
    _checks.finite(name, x)
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_ATOL or hi > 1.0 + RANGE_ATOL:
        raise ValueError(
            f"{name} must hold pixel values in [0, 1] (the classifier's training range), got values "
            f"in [{lo:.4g}, {hi:.4g}]; map [-1, 1] data with genjax.data.to_unit, or clip"
        )
    return np.clip(x, 0.0, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)  # identity equality: params are arrays
class Classifier:
    """A trained :class:`FeatureClassifier` with its parameters and provenance.

    Attributes:
      module: the linen module.
      params: its parameters (``{"params": ...}`` as from ``module.init``).
      dataset: data set it was trained on.
      test_accuracy: accuracy on the data set's test split, in ``[0, 1]``.
      input_shape: ``(H, W, 1)`` of the images it takes.
      seed: training seed.
      config: training settings (:func:`classifier_config`).
      config_hash: :func:`config_hash` of ``(dataset, seed, config)``.

    ``logits(x)`` / ``features(x)`` / ``embed(x)`` take ``x`` of shape
    ``(n, *input_shape)`` with values in ``[0, 1]`` (NumPy or JAX), run a jitted
    forward pass in batches of ``config["eval_batch_size"]`` (the last one padded, so
    one compilation serves every ``n``) and return float32 NumPy arrays
    ``(n, 10)`` / ``(n, feature_dim)``.
    """

    module: FeatureClassifier
    params: Any
    dataset: str
    test_accuracy: float
    input_shape: tuple[int, ...]
    seed: int = 0
    config: dict = dataclasses.field(default_factory=dict)
    config_hash: str = ""
    _apply: Any = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "_apply", jax.jit(self.module.apply))

    @property
    def feature_dim(self) -> int:
        return int(self.module.feature_dim)

    def embed(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(features (n, feature_dim), logits (n, 10))`` of images ``x`` in one pass.

        Raises:
          ValueError: ``x`` is not ``(n, *input_shape)``, not finite, or outside [0, 1].
        """
        x = _check_images("x", x, self.input_shape)
        bs = int(self.config.get("eval_batch_size", 500))
        n = x.shape[0]
        bs = min(bs, n)
        feats, logits = [], []
        for i in range(0, n, bs):
            chunk = x[i : i + bs]
            m = chunk.shape[0]
            if m < bs:
                chunk = np.concatenate([chunk, np.zeros((bs - m, *chunk.shape[1:]), chunk.dtype)])
            lg, ft = self._apply(self.params, jnp.asarray(chunk))
            logits.append(np.asarray(lg)[:m])
            feats.append(np.asarray(ft)[:m])
        return np.concatenate(feats), np.concatenate(logits)

    def logits(self, x) -> np.ndarray:
        """Class logits ``(n, 10)`` of images ``x`` ``(n, *input_shape)``."""
        return self.embed(x)[1]

    def features(self, x) -> np.ndarray:
        """Penultimate-layer features ``(n, feature_dim)`` of images ``x``."""
        return self.embed(x)[0]

    def save(self, path) -> pathlib.Path:
        """Write ``path`` (msgpack params) and ``path.with_suffix(".json")`` (metadata).

        Each file is written to a temporary file in the same directory, fsynced, then
        moved into place with ``os.replace``; the params file goes first, and the JSON
        records its sha256, so a half-written pair is detected by :func:`load`.

        Returns:
          ``path`` as a ``pathlib.Path``.
        """
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = flax.serialization.to_bytes(self.params)
        meta = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "seed": int(self.seed),
            "config": self.config,
            "config_hash": self.config_hash,
            "test_accuracy": float(self.test_accuracy),
            "input_shape": list(self.input_shape),
            "params_sha256": hashlib.sha256(blob).hexdigest(),
        }
        atomic_write(path, blob)
        atomic_write(_sidecar(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
        return path


def _sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_suffix(".json")


def _build(name: str, config: dict) -> tuple[FeatureClassifier, tuple[int, ...]]:
    module = FeatureClassifier(
        features=tuple(config["features"]), strides=tuple(config["strides"]), feature_dim=config["feature_dim"]
    )
    return module, _INPUT_SHAPES[name]


def load(path) -> Classifier:
    """Load a classifier written by :meth:`Classifier.save`.

    Args:
      path: the ``.msgpack`` file; its metadata is ``path.with_suffix(".json")``.

    Returns:
      The :class:`Classifier`.

    Raises:
      FileNotFoundError: either file is missing.
      CorruptClassifierError: unreadable JSON or msgpack, a params sha256 that differs
        from the recorded one, a config hash that does not match the recorded config,
        or parameters whose tree or shapes do not match the network.
    """
    path = pathlib.Path(path)
    side = _sidecar(path)
    for p in (path, side):
        if not p.is_file():
            raise FileNotFoundError(f"classifier file {p} not found")
    try:
        meta = json.loads(side.read_text())
        name, seed, config = meta["dataset"], int(meta["seed"]), meta["config"]
        recorded_hash, accuracy = meta["config_hash"], float(meta["test_accuracy"])
        sha = meta["params_sha256"]
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptClassifierError(f"classifier metadata {side} is unreadable: {e!r}") from e
    if version != FORMAT_VERSION:
        raise CorruptClassifierError(f"classifier {path} has format_version {version}, expected {FORMAT_VERSION}")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha:
        raise CorruptClassifierError(
            f"classifier params {path} do not match the sha256 recorded in {side.name} "
            "(truncated or overwritten file)"
        )
    try:
        config = classifier_config(name, **config)
    except ValueError as e:
        raise CorruptClassifierError(f"classifier metadata {side} has a bad config: {e}") from e
    if config_hash(name, seed, config) != recorded_hash:
        raise CorruptClassifierError(f"classifier metadata {side}: config_hash does not match its config")
    module, input_shape = _build(name, config)
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, *input_shape), jnp.float32))
    try:
        params = flax.serialization.from_bytes(template, blob)
    except Exception as e:  # msgpack raises its own exception types
        raise CorruptClassifierError(f"classifier params {path} are unreadable: {e!r}") from e
    t_leaves, t_def = jax.tree_util.tree_flatten(template)
    leaves, p_def = jax.tree_util.tree_flatten(params)
    if t_def != p_def or any(np.shape(a) != b.shape for a, b in zip(leaves, t_leaves)):
        raise CorruptClassifierError(f"classifier params {path} do not match the network of its config")
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return Classifier(module, params, name, accuracy, input_shape, seed, config, recorded_hash)


# --------------------------------------------------------------------------- training


def _shift_images(key: jax.Array, x: jax.Array, shift: int) -> jax.Array:
    """Translate each image of ``x`` ``(b, H, W, C)`` by a random integer offset in
    ``[-shift, shift]`` per axis, filling with zeros."""
    if shift == 0:
        return x
    b, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * shift + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


@dataclasses.dataclass(frozen=True)
class _ClassifierTraining:
    """The classifier as a model ``fit`` trains: batches ``{"x", "y"}``, softmax
    cross-entropy on images shifted by up to ``shift`` pixels with the step key."""

    module: FeatureClassifier
    input_shape: tuple
    shift: int
    log_prob_kind = "none"

    def init(self, key, batch):
        return self.module.init(key, jnp.zeros((1, *self.input_shape), jnp.float32))

    def loss(self, params, key, batch):
        logits, _ = self.module.apply(params, _shift_images(key, batch["x"], self.shift))
        return optax.softmax_cross_entropy_with_integer_labels(logits=logits, labels=batch["y"]).mean(), {}


class _EpochPermutations:
    """The classifier's batch order: whole batches from per-epoch permutations drawn with
    ``numpy.random.default_rng(seed)``, ``steps`` batches in all (``fit``'s ``sampler``)."""

    def __init__(self, seed: int, n: int, batch_size: int, steps: int):
        rng = np.random.default_rng(seed)
        per_epoch = n // batch_size
        epochs = math.ceil(steps / per_epoch)
        idx = np.concatenate([rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size) for _ in range(epochs)])
        self.idx = idx[:steps].astype(np.int32)

    def indices(self, step: int) -> np.ndarray:
        return self.idx[step]

    def indices_for(self, start: int, count: int) -> np.ndarray:
        return self.idx[start : start + count]


def train_classifier(
    name: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    data_dir=None,
    progress: bool = True,
    **overrides,
) -> Classifier:
    """Train the feature classifier of data set ``name`` on its train split.

    Adam with a cosine learning-rate decay to 0 over ``steps`` steps, softmax
    cross-entropy, minibatches drawn epoch by epoch from a permutation seeded by
    ``seed`` (``numpy.random.default_rng(seed)``), random shifts of up to ``shift``
    pixels; init and augmentation keys come from ``jax.random.PRNGKey(seed)``. So the
    same ``(name, seed, settings)`` gives the same classifier on the same machine.
    Trained by :func:`genjax.train.fit` (100 steps per dispatch; a non-finite loss
    raises ``NonFiniteError``, a ``FloatingPointError``). Then evaluates the accuracy on
    the test split.

    Args:
      name: one of :data:`CLASSIFIER_DATASETS`.
      seed: training seed.
      steps: Adam steps (default: the data set's entry in :data:`DEFAULT_CONFIGS`).
      batch_size: images per step (default: as ``steps``).
      data_dir: root data directory (see :func:`genjax.data.data_dir`).
      progress: print the running loss to stderr about ten times.
      **overrides: other settings of :data:`DEFAULT_CONFIGS` to replace
        (``learning_rate``, ``features``, ``strides``, ``feature_dim``, ``shift``,
        ``eval_batch_size``).

    Returns:
      The trained :class:`Classifier` (not saved; see :func:`get_classifier`).

    Raises:
      ValueError: unknown ``name`` or setting, or a bad setting value.
    """
    if steps is not None:
        overrides["steps"] = steps
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    config = classifier_config(name, **overrides)
    seed = _checks.nonneg_int("seed", seed)
    train = _images.load_image_dataset(name, "train", data_dir=data_dir)
    test = _images.load_image_dataset(name, "test", data_dir=data_dir)
    module, input_shape = _build(name, config)
    if train.shape != input_shape:
        raise ValueError(f"dataset {name!r} has images of shape {train.shape}, expected {input_shape}")

    steps, bs = config["steps"], config["batch_size"]
    n = len(train)
    if bs > n:
        raise ValueError(f"batch_size={bs} exceeds the {n} training images of {name!r}")
    # init and augmentation keys from PRNGKey(seed); the step-s shift key is fit's
    # fold_in(aug_key, s), which is split(aug_key, steps)[s] (the key this training drew
    # before it ran through fit; threefry's split is fold-in-like): the same weights
    init_key, aug_key = jax.random.split(jax.random.PRNGKey(seed))
    from genjax.train import fit

    start = time.perf_counter()
    result = fit(
        _ClassifierTraining(module, tuple(input_shape), config["shift"]),
        {"x": train.x, "y": np.asarray(train.y)},
        num_steps=steps,
        batch_size=bs,
        optimizer=optax.adam(optax.cosine_decay_schedule(config["learning_rate"], steps)),
        seed={"init": init_key, "data": init_key, "train": aug_key, "eval": init_key},
        sampler=_EpochPermutations(seed, n, bs, steps),
        log_every=steps,
        checkpoint_every=None,
        steps_per_dispatch=100,
        progress=progress,
    )
    params = result.state.params
    if progress:
        print(f"[genjax.metrics] {name} classifier: {steps} steps, final loss {result.history[-1]['loss']:.4f} "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    h = config_hash(name, seed, config)
    clf = Classifier(module, params, name, 0.0, input_shape, seed, config, h)
    pred = np.argmax(clf.logits(test.x), axis=-1)
    accuracy = float(np.mean(pred == np.asarray(test.y)))
    if progress:
        print(
            f"[genjax.metrics] {name} classifier: test accuracy {accuracy:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return dataclasses.replace(clf, test_accuracy=accuracy)


def get_classifier(
    name: str,
    *,
    data_dir=None,
    seed: int = 0,
    retrain: bool = False,
    progress: bool = True,
    **overrides,
) -> Classifier:
    """The cached feature classifier of ``name``, training and saving it if needed.

    Looks for :func:`cache_path` (``<data_dir()>/classifiers/<name>-<hash>.msgpack``, or the
    same name under :func:`fallback_cache_dir` when the data directory is read-only);
    loads it when present and its recorded config matches, else trains with
    :func:`train_classifier` and saves it there (atomically). A cache file that fails
    to load (truncated, edited, wrong network) is reported with a warning and
    replaced by a freshly trained classifier; it is never used.

    Args:
      name: one of :data:`CLASSIFIER_DATASETS`.
      data_dir: root data directory; the cache lives in its ``classifiers/``.
      seed: training seed (part of the hash).
      retrain: train and overwrite even if a valid cache file exists.
      progress: print training progress to stderr.
      **overrides: training settings (see :data:`DEFAULT_CONFIGS`).

    Returns:
      The :class:`Classifier`.

    Raises:
      ValueError: unknown ``name`` or setting.
    """
    config = classifier_config(name, **overrides)
    seed = _checks.nonneg_int("seed", seed)
    primary = cache_path(name, data_dir=data_dir, seed=seed, **overrides)
    fallback = fallback_cache_dir() / primary.name
    # a read-only data directory (e.g. a shared, checksummed copy) keeps its classifier in
    # the user cache instead; a file already in the data directory is still used
    path = primary if primary.is_file() or _writable(primary.parent) else fallback
    h = config_hash(name, seed, config)
    if not retrain and path.is_file():
        try:
            clf = load(path)
        except FileNotFoundError:
            clf = None
        except CorruptClassifierError as e:
            warnings.warn(f"ignoring unusable cached classifier ({e}); retraining", RuntimeWarning, stacklevel=2)
            clf = None
        if clf is not None:
            if clf.dataset == name and clf.seed == seed and clf.config_hash == h:
                # eval_batch_size is not part of the hash: honour the one asked for
                return dataclasses.replace(clf, config={**clf.config, "eval_batch_size": config["eval_batch_size"]})
            warnings.warn(
                f"cached classifier {path} was trained with other settings; retraining", RuntimeWarning, stacklevel=2
            )
    clf = train_classifier(name, seed=seed, data_dir=data_dir, progress=progress, **overrides)
    clf.save(path)
    return clf
