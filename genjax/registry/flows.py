"""CLI specs of the normalizing-flow family: ``realnvp``, ``realnvp-mlp``, ``glow``, ``maf``, ``nsf``.

Which constructor a name builds depends on the data:

    model        2-D toy density            image data (H, W, C)
    realnvp      realnvp_2d (MLP couplings) realnvp_image (multi-scale, conv couplings)
    realnvp-mlp  realnvp (MLP couplings)    realnvp on the flattened image (the flow flattens inside)
    glow         -- (error)                 glow, num_levels = largest <= 3 that H, W allow
    maf          maf(2)                     -- (error: use realnvp or glow)
    nsf          nsf_2d                     -- (error: use realnvp or glow)

Image flows get ``data_levels = DataBundle.num_levels`` (17 for digits, 256 for MNIST)
and dequantize uniformly inside ``loss``. Evaluation is the one path,
:func:`genjax.metrics.evaluation.evaluate`: the exact test NLL (``log_prob_kind: exact``); images add
bits/dim with the dequantization offset, toy densities with a closed-form ``log p`` add
the exact ``KL(p||q) = E_p[log p - log q]`` estimated on the test samples; then the
sample metrics.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.flows.constructors import PREPROCESS
from genjax.flows.coupling import SCALE_FNS
from genjax.metrics.evaluation import evaluate
from genjax.registry.core import (DataBundle, ModelSpec, Option, boolean, image_scale, int_tuple, no_transform, sample_in_chunks,
                                  unsupported)

#: Half-width of the square on which 2-D pictures are drawn (matches ``viz.scatter_2d``).
PLOT_LIM = 4.5
GRID = 200
DEQUANTIZATION_CONVENTION = (
    "uniform dequantization: grid value k/(L-1) -> (k+u)/L, u~U[0,1), one draw per test example; "
    "bits/dim = nll/(D ln 2) + log2(L) (an upper bound on the L-level data's bits/dim)"
)


def glow_levels(shape: tuple[int, ...], max_levels: int = 3) -> int:
    """The largest ``L <= max_levels`` with H and W divisible by ``2**L`` (at least 1)."""
    h, w = shape[0], shape[1]
    for lv in range(max_levels, 0, -1):
        if h % 2**lv == 0 and w % 2**lv == 0:
            return lv
    raise ValueError(f"glow needs image height and width divisible by 2; data shape is {shape}")


def _build(name: str):
    def build(data: DataBundle, opts: dict):
        from genjax import flows

        image = data.kind == "image"
        if not image and data.shape != (2,):
            raise unsupported(name, data, "flows here take 2-D toy densities or (H, W, C) images")
        if name == "realnvp":
            if image:
                f = flows.realnvp_image(
                    data.shape, num_scales=opts["num_scales"], features=opts["features"],
                    num_blocks=opts["num_blocks"], data_levels=data.num_levels, logit_alpha=opts["logit_alpha"],
                )
            else:
                f = flows.realnvp_2d(num_layers=opts["num_layers"], hidden=int_tuple(opts["hidden"]))
        elif name == "realnvp-mlp":
            # MLP couplings on the flattened example: the flow takes and returns data of its shape itself
            f = flows.realnvp(
                data.shape, num_layers=opts["num_layers"], hidden=int_tuple(opts["hidden"]), data_levels=data.num_levels,
                logit_alpha=opts["logit_alpha"] if image else None, name=name,
            )
        elif name == "glow":
            if not image:
                raise unsupported(name, data, "glow is an image flow (use realnvp, maf or nsf on 2-D data)")
            levels = opts["num_levels"] if opts["num_levels"] is not None else glow_levels(data.shape)
            f = flows.glow(
                data.shape, num_levels=levels, num_steps=opts["num_steps"], features=opts["features"],
                num_blocks=opts["num_blocks"], data_levels=data.num_levels, logit_alpha=opts["logit_alpha"],
                preprocess=opts["preprocess"], split_prior=opts["split_prior"], learn_top=opts["learn_top"],
                out_log_scale=opts["out_log_scale"], scale_fn=opts["scale_fn"],
            )
        elif name == "maf":
            if image:
                raise unsupported(name, data, "maf is built for 2-D toy densities here (use realnvp or glow on images)")
            f = flows.maf(2, num_layers=opts["num_layers"], hidden=int_tuple(opts["hidden"]), order=opts["order"])
        else:
            if image:
                raise unsupported(name, data, "nsf is built for 2-D toy densities here (use realnvp or glow on images)")
            f = flows.nsf_2d(
                num_layers=opts["num_layers"], hidden=int_tuple(opts["hidden"]), num_bins=opts["num_bins"],
                bound=opts["bound"],
            )
        return f

    return build


# ---------------------------------------------------------------------- evaluation
def log_likelihoods(model, params, x: np.ndarray, key, *, batch: int = 500) -> np.ndarray:
    """Per-example exact ``log p`` (nats) of ``x`` in batches; image data dequantized
    once per example (key folded with the batch index)."""
    f = jax.jit(lambda p, k, xb: model.log_prob(p, k, xb))
    return np.concatenate(
        [np.asarray(f(params, jax.random.fold_in(key, i), jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
    )


from genjax.metrics.toy import exact_kl  # noqa: E402,F401  (re-exported: experiments import it from here)

#: generated samples scored on images at most (``--num-samples`` above it is capped, and said)
IMAGE_GEN_MAX = 2000


def _evaluate(model, params, data: DataBundle, key, *, num_samples: int = 1000, max_examples: int | None = None,
              classifier=None, data_dir=None):
    """The one evaluation path (:func:`genjax.metrics.evaluation.evaluate`); ``num_samples`` is the
    number of generated samples (at most :data:`IMAGE_GEN_MAX` on images)."""
    n_gen = min(num_samples, IMAGE_GEN_MAX) if data.kind == "image" else num_samples
    out = evaluate(model, params, key, data, num_generated=n_gen, max_examples=max_examples, classifier=classifier,
                   data_dir=data_dir)
    if n_gen < num_samples:
        out["num_generated_note"] = f"--num-samples {num_samples} capped at {IMAGE_GEN_MAX} generated images"
    return out


# ---------------------------------------------------------------------- pictures
def grid_points(lim: float = PLOT_LIM, n: int = GRID) -> np.ndarray:
    """``(n*n, 2)`` grid over ``[-lim, lim]^2``, row-major with row 0 at the top (y = +lim)."""
    xs = np.linspace(-lim, lim, n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs[::-1])
    return np.stack([gx.ravel(), gy.ravel()], -1)


def log_density_grid(model, params, lim: float = PLOT_LIM, n: int = GRID) -> np.ndarray:
    pts = grid_points(lim, n)
    f = jax.jit(model.log_density)
    vals = np.concatenate([np.asarray(f(params, jnp.asarray(pts[i : i + 10000]))) for i in range(0, len(pts), 10000)])
    return vals.reshape(n, n)


def tempered_samples(model, params, key, num: int, temperatures) -> list[np.ndarray]:
    """``x = g^-1(T z)`` for each temperature ``T`` from the same ``z ~ N(0, I)`` (one
    compiled inverse; image samples clipped to [0, 1] as in ``Flow.sample``)."""
    inverse = jax.jit(lambda p, z: model.normalizing_bijector(p).inverse(z))
    z = jax.random.normal(key, (num, *model.data_shape))
    out = []
    for t in temperatures:
        x = np.asarray(inverse(params, float(t) * z))
        out.append(np.clip(x, 0.0, 1.0) if model.logit_alpha is not None else x)
    return out


def _artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    out_dir = pathlib.Path(out_dir)
    k1 = jax.random.split(key)[0]
    if data.kind == "image":
        scale = image_scale(data)
        for fname, x in zip(("samples.png", "samples_t0.7.png"), tempered_samples(model, params, k1, 64, (1.0, 0.7))):
            viz.save_image_grid(out_dir / fname, x.reshape(-1, *data.shape), ncol=8, scale=scale)
        return ["samples.png", "samples_t0.7.png"]
    written = []
    viz.density_heatmap(log_density_grid(model, params)).save(out_dir / "density.png")
    written.append("density.png")
    if data.toy is not None and data.toy.has_log_prob:
        true = np.asarray(data.toy.log_prob(jnp.asarray(grid_points()))).reshape(GRID, GRID)
        viz.density_heatmap(true).save(out_dir / "density_true.png")
        written.append("density_true.png")
    samples = np.asarray(model.sample(params, k1, 5000))
    modes = data.toy.modes if data.toy is not None else None
    viz.scatter_2d(samples, reference=data.test[:5000], marks=modes, lim=PLOT_LIM).save(out_dir / "samples.png")
    written.append("samples.png")
    return written


# ---------------------------------------------------------------------- specs
_IMAGE = {
    # 32, not 64: a quarter of the FLOPs (the default RealNVP step on 128 digits was 14 GFLOP, ~25 min
    # for the default 5000 steps on 2 cores; benchmarks/evaluation.py measures both side by side)
    "features": Option(int, 32, "image flows: channels of the coupling ResNets"),
    "num_blocks": Option(int, 1, "image flows: residual blocks per coupling network"),
    "logit_alpha": Option(float, 0.05, "image flows: logit pre-processing alpha"),
}
_VECTOR = {"hidden": Option(str, "64,64", "2-D flows: MLP hidden widths of each conditioner")}
_DEFAULTS = {"steps": 5000, "batch_size": 128, "lr": 1e-3}

_OPTIONS = {
    "realnvp": {
        "num_layers": Option(int, 8, "2-D: affine coupling layers"),
        **_VECTOR,
        "num_scales": Option(int, 2, "images: multi-scale levels (H, W divisible by 2**(num_scales-1))"),
        **_IMAGE,
    },
    "realnvp-mlp": {
        "num_layers": Option(int, 8, "affine coupling layers"),
        "hidden": Option(str, "128,128", "MLP hidden widths of each conditioner"),
        "logit_alpha": Option(float, 0.05, "images: logit pre-processing alpha"),
    },
    "glow": {
        "num_levels": Option(int, None, "levels (default: largest <= 3 with H, W divisible by 2**levels)"),
        "num_steps": Option(int, 4, "flow steps (ActNorm, 1x1 conv, coupling) per level"),
        **_IMAGE,
        "preprocess": Option(str, "center", "input convention: center (Glow's x - 0.5) or logit (uses logit_alpha)",
                             PREPROCESS),
        "split_prior": Option(boolean, True, "learned prior on each factored-out half (Glow)"),
        "learn_top": Option(boolean, True, "learned top prior (Glow)"),
        "out_log_scale": Option(boolean, True, "couplings' zero-initialised last conv with a learned log-scale (Glow)"),
        "scale_fn": Option(str, "sigmoid", "couplings' scale: sigmoid (Glow's sigmoid(h + 2)), sigmoid2 (2 sigmoid(h): "
                           "at most 2x per coupling; flows_mnist's) or tanh (exp(3 tanh(h / 3)))", SCALE_FNS),
    },
    "maf": {
        "num_layers": Option(int, 5, "MADE layers"),
        **_VECTOR,
        "order": Option(str, "reverse", "variable order between layers", ("reverse", "random")),
    },
    "nsf": {
        "num_layers": Option(int, 4, "rational-quadratic spline coupling layers"),
        **_VECTOR,
        "num_bins": Option(int, 8, "spline bins"),
        "bound": Option(float, 5.0, "splines act on [-bound, bound] (identity outside)"),
    },
}
_DESCRIPTIONS = {
    "realnvp": "RealNVP flow (affine couplings; multi-scale on images), exact likelihood",
    "realnvp-mlp": "RealNVP with MLP couplings on the flattened data (images too: cheap on CPU), exact likelihood",
    "glow": "Glow flow (ActNorm, 1x1 conv, affine coupling; multi-scale, learned priors) on images, exact likelihood",
    "maf": "masked autoregressive flow (stacked MADEs) on 2-D data, exact likelihood",
    "nsf": "neural spline flow (rational-quadratic couplings) on 2-D data, exact likelihood",
}

SPECS: dict[str, ModelSpec] = {
    n: ModelSpec(n, "flows", _DESCRIPTIONS[n], _OPTIONS[n], _build(n), no_transform, _artifacts, _evaluate, dict(_DEFAULTS),
                 sample=sample_in_chunks)
    for n in ("realnvp", "realnvp-mlp", "glow", "maf", "nsf")
}
