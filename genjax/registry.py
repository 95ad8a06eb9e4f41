"""Explicit name -> constructor registries for data sets and models (used by the CLI).

Nothing registers itself on import: every entry is written here, and an unknown
name is an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.data import images as image_data
from genjax.data import synthetic
from genjax.data.pipeline import dynamic_binarize
from genjax.metrics.likelihood import bits_per_dim


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
    return sorted(image_data.IMAGE_DATASETS) + sorted(synthetic.TOY_DENSITIES)


def load_data(name: str, *, data_dir=None, download: bool = True, seed: int = 0) -> DataBundle:
    """Loads a data set by name: an image set (``digits``, ``mnist``, ...) or a toy 2-D density.

    Image test splits: ``test`` (binarized-mnist: ``test``; its ``valid`` split is unused here).
    Toy densities: 20000 train and 5000 test samples drawn from fixed keys derived from ``seed``.
    """
    if name in image_data.IMAGE_DATASETS:
        if name == "digits":
            train, test = image_data.load_digits("train", seed=seed), image_data.load_digits("test", seed=seed)
        else:
            train = image_data.load_image_dataset(name, "train", data_dir=data_dir, download=download)
            test = image_data.load_image_dataset(name, "test", data_dir=data_dir, download=download)
        return DataBundle(name, "image", np.asarray(train.x), np.asarray(test.x), train.num_levels)
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
    evaluate: Callable[..., dict]  # (model, params, data, key, *, num_samples, max_examples) -> metrics
    defaults: dict = dataclasses.field(default_factory=dict)  # training defaults (steps, batch_size, lr)


def _int_tuple(s: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in str(s).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers such as '256,128', got {s!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"expected positive comma-separated integers such as '256,128', got {s!r}")
    return vals


def _vae_build(data: DataBundle, opts: dict):
    from genjax import vae

    likelihood = opts["likelihood"] or ("bernoulli" if data.kind == "image" else "gaussian_learned")
    common = dict(
        latent_dim=opts["latent_dim"],
        likelihood=likelihood,
        obs_std=opts["obs_std"],
        beta=opts["beta"],
        num_samples=opts["num_samples"],
    )
    if opts["arch"] == "conv":
        if len(data.shape) != 3:
            raise ValueError(f"--arch conv needs image data (H, W, C); data {data.name!r} has shape {data.shape}")
        return vae.conv_vae(data.shape, **common)
    return vae.mlp_vae(
        data_shape=data.shape, hidden=_int_tuple(opts["hidden"]), activation=opts["activation"], **common
    )


def _vae_transform(model, data: DataBundle):
    if model.likelihood == "bernoulli" and not data.binary:
        return dynamic_binarize
    return None


def _eval_batch(model, data: DataBundle, x: np.ndarray, key) -> np.ndarray:
    """Test data in the form the model scores: binarized once (fixed key) for a
    Bernoulli decoder on grey-level data."""
    if model.likelihood == "bernoulli" and not data.binary:
        return np.asarray(jax.random.bernoulli(key, x), np.float32)
    return x


def _vae_evaluate(model, params, data: DataBundle, key, *, num_samples: int = 5000, max_examples: int | None = None):
    k_bin, k_eval = jax.random.split(key)
    x = data.test if max_examples is None else data.test[:max_examples]
    x = _eval_batch(model, data, x, k_bin)
    f = jax.jit(lambda p, k, xb: model.log_prob(p, k, xb, num_samples=num_samples, chunk_size=min(num_samples, 250)))
    batch = max(1, min(len(x), 200_000 // max(1, min(num_samples, 250))))
    vals = np.concatenate(
        [np.asarray(f(params, jax.random.fold_in(k_eval, i), x[i : i + batch])) for i in range(0, len(x), batch)]
    )
    nll = float(-vals.mean())
    out = {
        "test_nll_nats": nll,
        "log_prob_kind": f"{model.log_prob_kind} (K={num_samples} importance samples)",
        "num_test_examples": int(len(x)),
    }
    if data.kind == "image":
        if data.binary or model.likelihood == "bernoulli":
            out["test_bits_per_dim"] = float(bits_per_dim(nll, data.num_dims))
            out["bits_per_dim_convention"] = "binary data (no dequantization): nll / (D ln 2)"
        else:
            out["test_bits_per_dim"] = float(bits_per_dim(nll, data.num_dims))
            out["bits_per_dim_convention"] = "continuous density on [0,1] data, no dequantization offset"
    return out


def _vae_artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    k_s, k_r, k_b = jax.random.split(key, 3)
    out_dir = pathlib.Path(out_dir)
    written = []
    if data.kind == "image":
        samples = np.asarray(model.sample(params, k_s, 64, mean=True))
        viz.save_image_grid(out_dir / "samples.png", samples.reshape(-1, *data.shape), ncol=8, scale=_scale(data))
        x = _eval_batch(model, data, data.test[:32], k_b)
        rec = np.asarray(model.reconstruct(params, k_r, jnp.asarray(x), mean=True))
        rows = []
        for i in range(0, 32, 8):  # originals above their reconstructions
            rows += [x[i : i + 8], rec[i : i + 8]]
        viz.save_image_grid(out_dir / "reconstructions.png", np.concatenate(rows).reshape(-1, *data.shape), ncol=8, scale=_scale(data))
        written += ["samples.png", "reconstructions.png"]
    else:
        samples = np.asarray(model.sample(params, k_s, 5000))
        modes = data.toy.modes if data.toy is not None else None
        viz.scatter_2d(samples, reference=data.test[:5000], marks=modes).save(out_dir / "samples.png")
        rec = np.asarray(model.reconstruct(params, k_r, jnp.asarray(data.test[:2000]), mean=True))
        viz.scatter_2d(rec, reference=data.test[:2000]).save(out_dir / "reconstructions.png")
        written += ["samples.png", "reconstructions.png"]
    return written


def _scale(data: DataBundle) -> int:
    return max(1, 128 // max(data.shape[0], 1)) if data.kind == "image" else 1


_VAE_OPTIONS = {
    "arch": Option(str, "mlp", "network: mlp or conv", ("mlp", "conv")),
    "latent_dim": Option(int, 16, "latent dimension"),
    "hidden": Option(str, "256,128", "MLP hidden widths of the encoder (decoder mirrors them)"),
    "activation": Option(str, "relu", "MLP activation", ("relu", "tanh", "gelu", "silu", "elu", "leaky_relu", "softplus")),
    "likelihood": Option(str, None, "decoder: bernoulli (default for images), gaussian, gaussian_learned (default for 2-D)", ("bernoulli", "gaussian", "gaussian_learned")),
    "obs_std": Option(float, 0.1, "decoder std for likelihood=gaussian"),
    "beta": Option(float, 1.0, "KL weight (beta-VAE)"),
    "num_samples": Option(int, 1, "importance samples of the training objective (k > 1: IWAE)"),
}

MODELS: dict[str, ModelSpec] = {
    "vae": ModelSpec(
        "vae",
        "vae",
        "VAE trained on the ELBO (seed §19.2); --num-samples k > 1 trains the IWAE bound",
        _VAE_OPTIONS,
        _vae_build,
        _vae_transform,
        _vae_artifacts,
        _vae_evaluate,
        {"steps": 8000, "batch_size": 64, "lr": 1e-3},
    ),
    "iwae": ModelSpec(
        "iwae",
        "vae",
        "VAE trained on the importance-weighted bound (Burda et al. 2016), k=5 by default",
        {**_VAE_OPTIONS, "num_samples": Option(int, 5, "importance samples of the training objective")},
        _vae_build,
        _vae_transform,
        _vae_artifacts,
        _vae_evaluate,
        {"steps": 8000, "batch_size": 64, "lr": 1e-3},
    ),
}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def resolve_options(spec: ModelSpec, given: dict) -> dict:
    """The spec's defaults updated with ``given``; unknown keys and bad choices are errors."""
    unknown = set(given) - set(spec.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for model {spec.name!r}; valid: {sorted(spec.options)}"
        )
    opts = {k: o.default for k, o in spec.options.items()}
    opts.update({k: v for k, v in given.items() if v is not None})
    for k, o in spec.options.items():
        if o.choices is not None and opts[k] is not None and opts[k] not in o.choices:
            raise ValueError(f"unknown {k} {opts[k]!r} for model {spec.name!r}; valid choices: {', '.join(o.choices)}")
    return opts


def describe() -> str:
    lines = ["models:"]
    lines += [f"  {n:<10} {s.description}" for n, s in sorted(MODELS.items())]
    lines.append("data sets:")
    exact = set(synthetic.EXACT_LOG_PROB_DENSITIES)
    for n in dataset_names():
        kind = "image" if n in image_data.IMAGE_DATASETS else ("toy 2-D, exact log p(x)" if n in exact else "toy 2-D")
        lines.append(f"  {n:<16} {kind}")
    return "\n".join(lines)
