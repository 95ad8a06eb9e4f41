"""CLI specs of the VAE family: build, transform, pictures, evaluation."""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.data.pipeline import dynamic_binarize, uniform_dequantize
from genjax.metrics.evaluation import evaluate
from genjax.registry.core import DataBundle, ModelSpec, Option, image_scale, int_tuple


def _vae_build(data: DataBundle, opts: dict):
    from genjax import vae

    likelihood = opts["likelihood"] or ("bernoulli" if data.kind == "image" else "gaussian_learned")
    common = dict(
        latent_dim=opts["latent_dim"],
        likelihood=likelihood,
        obs_std=opts["obs_std"],
        beta=opts["beta"],
        num_samples=opts["num_samples"],
        sample_mean=data.kind == "image",  # image samples are pictured and scored as E[x|z]
    )
    if opts["arch"] == "conv":
        if len(data.shape) != 3:
            raise ValueError(f"--arch conv needs image data (H, W, C); data {data.name!r} has shape {data.shape}")
        return vae.conv_vae(data.shape, **common)
    return vae.mlp_vae(
        data_shape=data.shape, hidden=int_tuple(opts["hidden"]), activation=opts["activation"], **common
    )


def _vae_transform(model, data: DataBundle):
    """Training data in the decoder's space: dynamically binarized for a Bernoulli decoder
    on grey levels; uniformly dequantized ``(k+u)/L`` for a continuous decoder on L-level
    images (the space its density is evaluated in: a density trained on the grid points
    themselves piles its mass on them and scores badly on dequantized data)."""
    if model.likelihood == "bernoulli":
        return None if data.binary else dynamic_binarize
    if data.kind == "image" and data.num_levels is not None:
        return functools.partial(uniform_dequantize, num_levels=data.num_levels)
    return None


def _eval_batch(model, data: DataBundle, x: np.ndarray, key) -> np.ndarray:
    """Test data in the form the model scores (for the reconstruction picture): binarized
    once (fixed key) for a Bernoulli decoder on grey-level data."""
    if model.likelihood == "bernoulli" and not data.binary:
        return np.asarray(jax.random.bernoulli(key, x), np.float32)
    return x


def _vae_evaluate(model, params, data: DataBundle, key, *, num_samples: int = 5000, max_examples: int | None = None,
                  classifier=None, data_dir=None):
    """The one evaluation path (:func:`genjax.metrics.evaluation.evaluate`); ``num_samples`` is K,
    the importance samples per example of the IWAE bound."""
    return evaluate(model, params, key, data, iwae_samples=num_samples, max_examples=max_examples,
                    classifier=classifier, data_dir=data_dir)


def _vae_artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    k_s, k_r, k_b = jax.random.split(key, 3)
    out_dir = pathlib.Path(out_dir)
    written = []
    if data.kind == "image":
        samples = np.asarray(model.sample(params, k_s, 64))
        viz.save_image_grid(out_dir / "samples.png", samples.reshape(-1, *data.shape), ncol=8, scale=image_scale(data))
        x = _eval_batch(model, data, data.test[:32], k_b)
        rec = np.asarray(model.reconstruct(params, k_r, jnp.asarray(x), mean=True))
        rows = []
        for i in range(0, 32, 8):  # originals above their reconstructions
            rows += [x[i : i + 8], rec[i : i + 8]]
        viz.save_image_grid(out_dir / "reconstructions.png", np.concatenate(rows).reshape(-1, *data.shape), ncol=8, scale=image_scale(data))
        written += ["samples.png", "reconstructions.png"]
    else:
        samples = np.asarray(model.sample(params, k_s, 5000))
        modes = data.toy.modes if data.toy is not None else None
        viz.scatter_2d(samples, reference=data.test[:5000], marks=modes).save(out_dir / "samples.png")
        rec = np.asarray(model.reconstruct(params, k_r, jnp.asarray(data.test[:2000]), mean=True))
        viz.scatter_2d(rec, reference=data.test[:2000]).save(out_dir / "reconstructions.png")
        written += ["samples.png", "reconstructions.png"]
    return written


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


def _spec(name: str, description: str, options: dict) -> ModelSpec:
    """A VAE's spec (``vae`` and ``iwae`` differ only in their default importance samples)."""
    return ModelSpec(name, "vae", description, options, _vae_build, _vae_transform, _vae_artifacts, _vae_evaluate,
                     {"steps": 8000, "batch_size": 64, "lr": 1e-3})


SPECS: dict[str, ModelSpec] = {
    "vae": _spec("vae", "VAE trained on the ELBO (seed §19.2); --num-samples k > 1 trains the IWAE bound", _VAE_OPTIONS),
    "iwae": _spec(
        "iwae",
        "VAE trained on the importance-weighted bound (Burda et al. 2016), k=5 by default",
        {**_VAE_OPTIONS, "num_samples": Option(int, 5, "importance samples of the training objective")},
    ),
}
