"""Shared pieces of the registries: data bundles, model specs and their options."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable

import jax
import numpy as np
import optax

from genjax.data import captions as caption_data
from genjax.data import images as image_data
from genjax.data import synthetic
from genjax.metrics.evaluation import draw_samples


# ---------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class DataBundle:
    """A train/test pair of host arrays and what is known about them."""

    name: str
    kind: str  # "image" or "toy"
    train: np.ndarray  # (n, *shape) float32
    test: np.ndarray
    num_levels: int | None  # discrete intensity levels of image data (2 = binary)
    toy: synthetic.ToyDensity | None = None
    # captioned image sets (genjax.data.captions): the train and test CaptionedData, whose
    # images are ``train`` / ``test`` (labels, attributes, captions); None otherwise
    captioned: tuple[caption_data.CaptionedData, caption_data.CaptionedData] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def binary(self) -> bool:
        return self.num_levels == 2

    @property
    def num_dims(self) -> int:
        return int(np.prod(self.shape))


TOY_TRAIN_SIZE, TOY_TEST_SIZE = 20000, 5000


def dataset_names() -> list[str]:
    return sorted(image_data.IMAGE_DATASETS) + sorted(caption_data.CAPTIONED_DATASETS) + sorted(synthetic.TOY_DENSITIES)


#: Intensity levels of the captioned sets' images (the bundled digits: 17; MNIST's: 256).
_CAPTION_LEVELS = {"digits-captions": 17}


def load_data(name: str, *, data_dir=None, download: bool = True, seed: int = 0) -> DataBundle:
    """Loads a data set by name: an image set (``digits``, ``mnist``, ...) or a toy 2-D density.

    Image test splits: ``test`` (binarized-mnist: ``test``; its ``valid`` split is unused here).
    Toy densities: 20000 train and 5000 test samples drawn from fixed keys derived from ``seed``.
    Captioned sets (``mnist-captions``, ``mnist-pairs``, ...): the images as ``train`` / ``test``
    and both splits' :class:`~genjax.data.captions.CaptionedData` as ``captioned``.
    """
    if name in image_data.IMAGE_DATASETS:
        if name == "digits":
            train, test = image_data.load_digits("train", seed=seed), image_data.load_digits("test", seed=seed)
        else:
            train = image_data.load_image_dataset(name, "train", data_dir=data_dir, download=download)
            test = image_data.load_image_dataset(name, "test", data_dir=data_dir, download=download)
        return DataBundle(name, "image", np.asarray(train.x), np.asarray(test.x), train.num_levels)
    if name in caption_data.CAPTIONED_DATASETS:
        train, test = (caption_data.load_captioned(name, split, data_dir=data_dir, download=download, seed=seed)
                       for split in ("train", "test"))
        return DataBundle(name, "image", train.images, test.images, _CAPTION_LEVELS.get(name, 256), captioned=(train, test))
    if name in synthetic.TOY_DENSITIES:
        toy = synthetic.get_toy_density(name)
        k_train, k_test = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 2024))
        return DataBundle(
            name,
            "toy",
            np.asarray(toy.sample(k_train, TOY_TRAIN_SIZE)),
            np.asarray(toy.sample(k_test, TOY_TEST_SIZE)),
            None,
            toy,
        )
    raise ValueError(f"unknown data set {name!r}; valid choices: {', '.join(dataset_names())}")


# ---------------------------------------------------------------------- models
def boolean(text: str | bool) -> bool:
    """An on/off option's parser (``Option(boolean, True, ...)``): true/false, yes/no, on/off, 1/0.

    ``bool`` itself cannot parse a flag (``bool("false")`` is True).
    """
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false (yes/no, on/off, 1/0), got {text!r}")


@dataclasses.dataclass(frozen=True)
class Option:
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How the CLI builds, trains, pictures and evaluates one model name."""

    name: str
    family: str
    description: str
    options: dict[str, Option]
    build: Callable[[DataBundle, dict], Any]  # (data, options) -> model
    transform: Callable[[Any, DataBundle], Any]  # (model, data) -> transform or None
    artifacts: Callable[..., list[str]]  # (model, params, data, out_dir, key) -> written files
    # (model, params, data, key, *, num_samples, max_examples, classifier, data_dir) -> metrics: each family's
    # call of the one evaluation path, genjax.metrics.evaluation (num_samples: the VAE's importance samples,
    # the others' generated samples)
    evaluate: Callable[..., dict]
    defaults: dict = dataclasses.field(default_factory=dict)  # training defaults (steps, batch_size, lr)
    make_optimizer: Callable[[dict], Any] | None = None  # (run config) -> optimizer; default optax.adam(lr)
    # (model, params, key, num, data) -> (num, *data.shape) host array for `genjax sample`;
    # default model.sample(params, key, num) (a model samples in its own data space)
    sample: Callable[..., Any] | None = None
    # (data, options, num) -> what fit trains on, for the first ``num`` examples (None: all);
    # default: the images ``data.train`` (a model of image-text pairs trains on a dict)
    train_data: Callable[..., Any] | None = None
    # a model trained as stages (genjax.train.fit_stages): (data, config, *, run_dir, data_dir) -> the
    # pipeline's Stages, every option checked before any training; `genjax train` runs them in
    # RUN/<stage>/ and the last stage's model and parameters are the run's. ``build`` then only checks
    # the data (there is no model before the earlier stages are trained) and returns None.
    stages: Callable[..., list] | None = None

    def optimizer(self, config: dict):
        """The optimizer of a run ``config`` (``{"lr", "options", ...}``): the spec's
        ``make_optimizer``, else ``optax.adam(config["lr"])``."""
        if self.make_optimizer is not None:
            return self.make_optimizer(config)
        return optax.adam(config["lr"])


@dataclasses.dataclass(frozen=True)
class Built:
    """What training one model name on one data set needs (:func:`genjax.registry.build_model`)."""

    spec: ModelSpec
    model: Any
    options: dict  # the spec's options, resolved (defaults updated by the caller's)
    optimizer: Any
    transform: Any  # (key, x) -> x inside the step, or None


def no_transform(model, data: DataBundle):
    """A :class:`ModelSpec`'s ``transform`` for a model that maps data to its networks' space
    itself inside its loss (flows dequantize, diffusion and GANs rescale): none."""
    return None


def unsupported(name: str, data: DataBundle, hint: str) -> ValueError:
    """The error of a spec's ``build`` for data its model does not take (``hint``: what to use)."""
    return ValueError(f"model {name!r} does not support {data.kind} data {data.name!r} of shape {data.shape}; {hint}")


def int_tuple(s) -> tuple[int, ...]:
    """``"256,128"`` (a CLI option) or a sequence of ints (``[256, 128]`` from JSON) -> ``(256, 128)``."""
    items = s if isinstance(s, (tuple, list)) else str(s).split(",")
    try:
        vals = tuple(int(v) for v in items if str(v).strip())
    except (TypeError, ValueError):
        raise ValueError(f"expected comma-separated integers such as '256,128', got {s!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"expected positive comma-separated integers such as '256,128', got {s!r}")
    return vals


def sample_in_chunks(model, params, key, num: int, data: DataBundle | None = None, *, chunk: int = 1000,
                     **sampler) -> np.ndarray:
    """A :class:`ModelSpec`'s ``sample`` (``genjax sample``): the evaluation path's
    :func:`~genjax.metrics.evaluation.draw_samples`, ``chunk`` samples per compiled graph
    (op-by-op dispatch of a deep flow's inverse or a sampler's loop is several times slower
    on CPU); ``data`` is unused; ``sampler``: the model's sampler keywords (``sampler``, ``steps``)."""
    return draw_samples(model, params, key, num, chunk=chunk, sample_kwargs=sampler or None)


def network_evaluations(model) -> tuple[int, str]:
    """Network evaluations per sample of ``model``'s default sampler, and how they are counted
    (read from the model API: ``log_prob_kind``, a flow's layers, a diffusion model's sampler)."""
    kind = model.log_prob_kind
    if kind in ("iwae_bound", "elbo"):
        return 1, "one decoder pass"
    if kind == "none":  # a GAN (no density; one G(z) per sample)
        return 1, "one generator pass"
    if kind == "exact":
        n = len(getattr(model, "layers", ()))
        return 1, f"one inverse pass through the flow ({n} layers, each conditioner once)"
    if kind in ("vlb", "ode_estimate"):  # a DDPM or score SDE: its sampler counts (DDPM.sampler_nfe)
        sampler, steps = model._sampler(None, None)
        n = model.sampler_nfe()
        how = {"ddpm": f"ancestral sampling, T={steps} denoiser calls", "ddim": f"DDIM, {steps} denoiser calls",
               "ode": f"probability-flow ODE, {steps} RK4 steps x 4 calls",
               "pc": f"predictor-corrector, {steps} steps x (predictor + corrector)"}
        return n, how.get(sampler, f"{sampler}, {steps} steps, {n} denoiser calls")
    return 1, "one network pass"


def image_scale(data: DataBundle) -> int:
    """Pixel magnification for pictures of ``data`` (about 128 px per image side)."""
    return max(1, 128 // max(data.shape[0], 1)) if data.kind == "image" else 1


def write_run_config(run_dir, model: str, data: str, seed: int, config: dict) -> pathlib.Path:
    """Records a run trained outside ``genjax train`` (an experiment's staged pipeline) the way
    ``genjax train`` does: ``RUN/config.json`` with ``model``, ``data``, ``seed`` and the run
    ``config`` (steps, batch_size, lr, ema_decay, options, loop settings), so ``genjax sample`` /
    ``eval`` and ``--ldm-run`` read it. Written once, atomically; an existing file is kept (a
    resumed run keeps the record it started with)."""
    from genjax.results import atomic_write

    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": model, "data": data, "seed": int(seed), **config}
        atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())
    return path
