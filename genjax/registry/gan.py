"""CLI specs of the GAN family: ``gan``, ``dcgan``, ``wgan``, ``wgan-gp``, ``stylegan``.

Data space. The CLI keeps every array in the data set's own space (images in
``[0, 1]``), so ``genjax sample`` writes pictures and ``.npy`` arrays that compare
with the data directly. The :class:`~genjax.gan.GAN` owns the map (as diffusion's
``data_range`` does): image GANs are built with ``data_range="unit"`` (``[0, 1]`` onto
the tanh range ``[-1, 1]`` inside the losses, samples mapped back); 2-D data are
unbounded, so their generators get a linear output and ``input_scale = 1 / max|x|``
(the networks see about ``[-1, 1]``, as the WGAN-GP toy code rescales its mixtures).

Defaults on 2-D data. ``gan`` takes what ``experiments/gan_mixture.py`` learned: both
players 128,128,128, a critic on random Fourier features (precision on narrow modes) that
judges packs of ``TOY_PACK`` examples (PacGAN: coverage). Measured with the default
``genjax train gan --data 8gaussians`` (10k steps, batch 128, ``--seed`` 0-3): 8 of 8
modes on every seed at 90.2 / 90.3 / 70.2 / 93.6% high quality (mean 86.1%), where the
seed's networks gave 8 modes at 83.1 / 95.2 / 73.7 / 55.5% (mean 76.9%). At this batch
pack 8 (16 packs per batch) gave 78% on seed 0, and the Fourier critic unpacked
collapsed to 2 modes (at 97.5%).

Evaluation. A GAN has no density (``log_prob_kind: none``). On Gaussian mixtures
(``8gaussians``, ``25gaussians``) ``evaluate`` reports the mode diagnostics of 2500
samples (modes captured, high-quality fraction within 3 std, KL of the mode histogram
to uniform); on other 2-D data, sample moments and the mean true log-density of the
samples; on images, sample statistics against the test split (no classifier yet: the
class histogram and FID come with the evaluation issue).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import _checks, viz
from genjax.gan.constructors import R1_GAMMA
from genjax.nn.stylegan import ARCHITECTURES
from genjax.registry.core import DataBundle, ModelSpec, Option, image_scale, int_tuple, no_transform, sample_in_chunks

#: Samples scored on Gaussian mixtures (the PacGAN protocol).
MIXTURE_EVAL_SAMPLES = 2500
#: Cap on the images compared by the image statistics (test examples and samples).
#: The seed's MLP widths (§19.3).
SEED_G_HIDDEN, SEED_D_HIDDEN = "128,256", "256,128"
#: 2-D data defaults of ``genjax train gan`` (``experiments/gan_mixture.py``'s networks: both
#: players 128,128,128, a Fourier-feature critic on PacGAN packs).
TOY_HIDDEN = "128,128,128"
TOY_PACK = 4
TOY_FOURIER_FEATURES = 64


# ---------------------------------------------------------------------- building
GAN_LOSSES = ("non_saturating", "minimax", "hinge")  # the --loss choices of gan and dcgan
ARCHS = ("auto", "mlp", "dcgan")
OUTPUTS = ("auto", "tanh", "linear")


def _choice(model: str, name: str, value, choices) -> str:
    if value not in choices:
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"unknown {flag} {value!r} for model {model!r}; valid choices: {', '.join(choices)}")
    return value


def _need_images(model: str, data: DataBundle) -> tuple[int, int, int]:
    if data.kind != "image" or len(data.shape) != 3:
        raise ValueError(
            f"{model} needs image data (H, W, C) such as --data digits or mnist; {data.name!r} has shape {data.shape}"
        )
    return data.shape


def _data_space(data: DataBundle, output: str) -> dict:
    """The GAN's data-space options: ``data_range="unit"`` for a tanh generator on images
    in ``[0, 1]``; for 2-D data ``input_scale = 1 / max|x|`` (the linear-output generator's
    initial spread, about one unit, then already covers the data)."""
    if output == "tanh":
        if data.kind != "image":
            raise ValueError(f"--output tanh needs image data in [0, 1]; {data.name!r} is unbounded 2-D data (use --output linear)")
        return {"data_range": "unit"}
    extent = float(np.max(np.abs(data.train)))
    return {"input_scale": 1.0 / extent if extent > 0 else 1.0}


def _latent(opts: dict, data: DataBundle) -> int:
    """``--latent-dim``, default 100 for images (the seed's) and 2 for 2-D data (PacGAN's)."""
    if opts["latent_dim"] is not None:
        return opts["latent_dim"]
    return 100 if data.kind == "image" else 2


def _mlp_kwargs(opts: dict, data: DataBundle, spec_name: str) -> dict:
    """The MLP networks' options, the data space, and the 2-D defaults (``_toy_defaults``)."""
    output = _choice(spec_name, "output", opts.get("output", "auto"), OUTPUTS)
    if output == "auto":
        output = "tanh" if data.kind == "image" else "linear"
    toy = len(data.shape) == 1
    g_hidden = opts["g_hidden"] if opts["g_hidden"] is not None else (TOY_HIDDEN if toy else SEED_G_HIDDEN)
    d_hidden = opts["d_hidden"] if opts["d_hidden"] is not None else (TOY_HIDDEN if toy else SEED_D_HIDDEN)
    return dict(
        latent_dim=_latent(opts, data),
        g_hidden=int_tuple(g_hidden),
        d_hidden=int_tuple(d_hidden),
        output=output,
        **_data_space(data, output),
        **_toy_defaults(opts, data),
    )


def _toy_defaults(opts: dict, data: DataBundle) -> dict:
    """``--pack`` and ``--fourier-features`` (when the spec has them), resolved: what
    ``experiments/gan_mixture.py`` found for 2-D mixtures (a Fourier-feature critic for
    precision, PacGAN packing for mode coverage) is the default on vector data; images get
    neither."""
    out = {}
    if "pack" in opts:
        pack = opts["pack"]
        if pack is None:
            pack = TOY_PACK if len(data.shape) == 1 else 1
        out["pack"] = _checks.positive_int("--pack", pack)
    if "fourier_features" in opts:
        nf = opts["fourier_features"]
        if nf is None:
            nf = TOY_FOURIER_FEATURES if len(data.shape) == 1 else 0
        nf = _checks.nonneg_int("--fourier-features", nf)
        if nf and len(data.shape) != 1:
            raise ValueError(f"--fourier-features needs vector data; {data.name!r} has shape {data.shape} (pass 0)")
        out.update(fourier_features=nf, fourier_sigma=_checks.positive_float("--fourier-sigma", opts["fourier_sigma"]))
    return out


def _arch(opts: dict, data: DataBundle, spec_name: str) -> str:
    arch = _choice(spec_name, "arch", opts["arch"], ARCHS)
    if arch == "auto":
        arch = "dcgan" if data.kind == "image" else "mlp"
    if arch == "dcgan":
        _need_images(spec_name, data)
    return arch


def _arch_kwargs(opts: dict, data: DataBundle, spec_name: str) -> dict:
    arch = _arch(opts, data, spec_name)
    if arch == "mlp":
        return dict(arch="mlp", **_mlp_kwargs(opts, data, spec_name))
    return dict(arch="dcgan", latent_dim=_latent(opts, data), width=opts["width"], data_range="unit")


def _gan_build(data: DataBundle, opts: dict):
    from genjax import gan

    loss = _choice("gan", "loss", opts["loss"], GAN_LOSSES)
    return gan.mlp_gan(data.shape, loss_kind=loss, n_critic=opts["n_critic"], **_mlp_kwargs(opts, data, "gan"))


def _dcgan_build(data: DataBundle, opts: dict):
    from genjax import gan

    shape = _need_images("dcgan", data)
    loss = _choice("dcgan", "loss", opts["loss"], GAN_LOSSES)
    model = gan.dcgan(
        shape, latent_dim=opts["latent_dim"], width=opts["width"], g_norm=opts["g_norm"], d_norm=opts["d_norm"], loss_kind=loss,
        data_range="unit",
    )
    return model


def _wgan_build(data: DataBundle, opts: dict):
    from genjax import gan

    _choice("wgan", "optimizer", opts["optimizer"], ("rmsprop", "adam"))  # used by _wgan_optimizer

    return gan.wgan(data.shape, clip=opts["clip"], n_critic=opts["n_critic"], **_arch_kwargs(opts, data, "wgan"))


def _wgan_gp_build(data: DataBundle, opts: dict):
    from genjax import gan

    return gan.wgan_gp(data.shape, gp_weight=opts["gp_weight"], n_critic=opts["n_critic"], **_arch_kwargs(opts, data, "wgan-gp"))


def _stylegan_build(data: DataBundle, opts: dict):
    from genjax import gan

    shape = _need_images("stylegan", data)
    model = gan.stylegan(
        shape,
        latent_dim=opts["latent_dim"],
        w_dim=opts["w_dim"],
        mapping_layers=opts["mapping_layers"],
        mapping_lr_mul=opts["mapping_lr_mul"],
        width=opts["width"],
        architecture=opts["architecture"],
        mbstd_group_size=opts["mbstd_group_size"],
        style_mixing_prob=opts["style_mixing_prob"],
        r1_weight=opts["r1_weight"],
        r1_interval=opts["r1_interval"],
        pl_weight=opts["pl_weight"],
        pl_interval=opts["pl_interval"],
        data_range="unit",
    )
    return model


# ---------------------------------------------------------------------- optimizers
def _adam_pair(config: dict, *, b1: float, b2: float):
    from genjax.gan import gan_adam

    return gan_adam(config["lr"], d_learning_rate=config["options"].get("d_lr"), b1=b1, b2=b2)


def _gan_optimizer(config: dict):
    o = config["options"]
    return _adam_pair(config, b1=o["beta1"], b2=o["beta2"])


def _wgan_optimizer(config: dict):
    from genjax.gan import GANOptimizer

    o = config["options"]
    kind = _choice("wgan", "optimizer", o["optimizer"], ("rmsprop", "adam"))
    if kind == "adam":
        return _adam_pair(config, b1=0.5, b2=0.9)
    g_lr = _checks.positive_float("--lr", config["lr"])
    d_lr = g_lr if o.get("d_lr") is None else _checks.positive_float("--d-lr", o["d_lr"])
    return GANOptimizer(generator=optax.rmsprop(g_lr), discriminator=optax.rmsprop(d_lr))


# ---------------------------------------------------------------------- evaluation
def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = jnp.asarray(a.reshape(len(a), -1))
    b = jnp.asarray(b.reshape(len(b), -1))
    d = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return np.maximum(np.asarray(d), 0.0)


def image_sample_statistics(samples: np.ndarray, test: np.ndarray, train: np.ndarray) -> dict:
    """Classifier-free statistics of image samples against held-out data (all in [0, 1]).

    * ``mean_image_rmse``: RMS difference of the mean sample and the mean test image.
    * ``pixel_std_ratio``: mean per-pixel std over samples / the same over test images
      (well below 1: too little variety).
    * ``diversity_ratio``: mean pairwise distance between samples / between test images
      (mode collapse drives it to 0).
    * ``nn_distance_ratio``: mean distance from each sample to its nearest training
      image / the same for test images (about 1: as close to the data as held-out
      data; well above 1: off the data manifold; well below 1: copying training images).
    * ``pixel_histogram_tv``: total-variation distance of the 20-bin intensity histograms.
    """
    n = len(samples)
    s, t = samples.reshape(n, -1), test.reshape(len(test), -1)
    pair = lambda x: float(np.sqrt(_sq_dists(x[:500], x[:500]))[np.triu_indices(min(len(x), 500), 1)].mean())
    nn = lambda x: float(np.sqrt(_sq_dists(x, train).min(axis=1)).mean())
    h_s = np.histogram(s, bins=20, range=(0.0, 1.0))[0] / s.size
    h_t = np.histogram(t, bins=20, range=(0.0, 1.0))[0] / t.size
    return {
        "mean_image_rmse": float(np.sqrt(np.mean((s.mean(0) - t.mean(0)) ** 2))),
        "pixel_std_ratio": float(s.std(0).mean() / max(t.std(0).mean(), 1e-12)),
        "diversity_ratio": pair(s) / max(pair(t), 1e-12),
        "nn_distance_ratio": nn(s) / max(nn(t), 1e-12),
        "pixel_histogram_tv": float(0.5 * np.abs(h_s - h_t).sum()),
    }


def _gan_evaluate(model, params, data: DataBundle, key, *, num_samples: int = MIXTURE_EVAL_SAMPLES,
                  max_examples: int | None = None, classifier=None, data_dir=None):
    """The one evaluation path (:func:`genjax.metrics.evaluation.evaluate`; a GAN has no density, so
    sample metrics only) on ``num_samples`` generated samples; on images also the
    classifier-free :func:`image_sample_statistics` against the first ``max_examples``
    test images (all of them by default)."""
    from genjax.metrics.evaluation import draw_samples, evaluate

    out = evaluate(model, params, key, data, num_generated=num_samples, max_examples=max_examples,
                   classifier=classifier, data_dir=data_dir, sample_chunk=500)
    if data.kind == "image":
        test = data.test if max_examples is None else data.test[:max_examples]
        x = np.clip(np.nan_to_num(draw_samples(model, params, jax.random.split(key)[1], num_samples, chunk=500)), 0.0, 1.0)
        out.update(image_sample_statistics(x, test, data.train[:2000]), num_test_examples=int(len(test)))
    return out


#: The figures a GAN summary leads with: sample quality first (PacGAN's high-quality
#: fraction), then coverage.
LEAD_METRICS = ("hq_fraction", "modes_captured", "num_modes")


def _evaluate_quality_first(model, params, data: DataBundle, key, **kwargs) -> dict:
    """:func:`_gan_evaluate` with its quality figures first (the order ``genjax train``
    and ``genjax eval`` print them in): 8 modes with 2% of samples near them is a spray,
    not a success, so the high-quality fraction is read before the mode count."""
    out = _gan_evaluate(model, params, data, key, **kwargs)
    lead = [k for k in LEAD_METRICS if k in out]
    return {**{k: out[k] for k in lead}, **{k: v for k, v in out.items() if k not in lead}}


# ---------------------------------------------------------------------- pictures
def _gan_artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    from genjax.gan import plots

    out_dir = pathlib.Path(out_dir)
    k_s, k_m, k_t = jax.random.split(key, 3)
    if data.kind != "image":
        x = sample_in_chunks(model, params, k_s, MIXTURE_EVAL_SAMPLES, chunk=MIXTURE_EVAL_SAMPLES)
        marks = data.toy.modes if data.toy is not None else None
        lim = max(4.5, 1.1 * float(np.abs(data.test).max())) if marks is None else 1.15 * float(np.abs(marks).max()) + 0.5
        viz.scatter_2d(x, lim=lim, reference=data.test[:MIXTURE_EVAL_SAMPLES], marks=marks).save(out_dir / "samples.png")
        return ["samples.png"]
    scale = image_scale(data)
    x = np.asarray(model.sample(params, k_s, 64))  # one batch of 64 (data space, [0, 1])
    viz.save_image_grid(out_dir / "samples.png", x.reshape(-1, *data.shape), ncol=8, scale=scale)
    written = ["samples.png"]
    if model.is_style:
        imgs, ncol = plots.style_mixing_grid(model, params, k_m)
        viz.save_image_grid(out_dir / "style_mixing.png", imgs, ncol=ncol, scale=scale)
        imgs, ncol = plots.truncation_strip(model, params, k_t)
        viz.save_image_grid(out_dir / "truncation.png", imgs, ncol=ncol, scale=scale)
        written += ["style_mixing.png", "truncation.png"]
    return written


# ---------------------------------------------------------------------- specs
def _opt(type_, default, help_, choices=None):
    """An option whose choices are checked when the model is built (one-line CLI errors)."""
    if choices is not None:
        help_ = f"{help_}; one of {', '.join(choices)}"
    return Option(type_, default, help_)


_COMMON = {
    "d_lr": _opt(float, None, "discriminator learning rate (default: the same as --lr)"),
}
_MLP = {
    "latent_dim": _opt(int, None, "latent dimension (default: 100 for images, 2 for 2-D data)"),
    "g_hidden": _opt(str, "128,256", "generator MLP widths (the seed's 128,256)"),
    "d_hidden": _opt(str, "256,128", "discriminator MLP widths (the seed's 256,128)"),
    "output": _opt(str, "auto", "generator output: tanh (images, data rescaled to [-1, 1]) or linear (2-D data)", OUTPUTS),
}
_ADAM = {
    "beta1": _opt(float, 0.5, "Adam b1 of both players"),
    "beta2": _opt(float, 0.999, "Adam b2 of both players"),
}
_WIDTH = {"width": _opt(int, 32, "DCGAN base width (the widest layer is width * 2^(stages-1)); 64 is the paper's")}

def _spec(name: str, description: str, options: dict, build, defaults: dict, optimizer=_gan_optimizer) -> ModelSpec:
    """A GAN's spec: its data-space losses need no transform; every GAN shares the pictures,
    the evaluation (quality first) and the model's own ``sample``."""
    return ModelSpec(name, "gan", description, options, build, no_transform, _gan_artifacts, _evaluate_quality_first,
                     defaults, optimizer)


SPECS: dict[str, ModelSpec] = {
    "gan": _spec(
        "gan",
        "the seed's MLP GAN (§19.3): G z->128->256 (tanh), D 256->128 LeakyReLU; on 2-D data gan_mixture's "
        "networks (128,128,128 each, linear G, Fourier-feature D on packs of 4)",
        {
            **_MLP,
            "g_hidden": _opt(str, None, f"generator MLP widths (images: the seed's {SEED_G_HIDDEN}; 2-D data: {TOY_HIDDEN})"),
            "d_hidden": _opt(str, None, f"discriminator MLP widths (images: the seed's {SEED_D_HIDDEN}; 2-D data: {TOY_HIDDEN})"),
            "loss": _opt(str, "non_saturating", "generator objective", GAN_LOSSES),
            "n_critic": _opt(int, 1, "discriminator updates per generator update"),
            "pack": _opt(int, None, f"PacGAN: the discriminator judges packs of this many examples (2-D data: {TOY_PACK}; images: 1)"),
            "fourier_features": _opt(
                int, None, f"random Fourier features of each example before the discriminator MLP (2-D data: {TOY_FOURIER_FEATURES}; images: 0, none)"
            ),
            "fourier_sigma": _opt(float, 2.0, "std of the Fourier frequencies, in the networks' units (data scaled to about [-1, 1])"),
            **_ADAM,
            **_COMMON,
        },
        _gan_build,
        {"steps": 10000, "batch_size": 128, "lr": 5e-4},
    ),
    "dcgan": _spec(
        "dcgan",
        "DCGAN (Radford et al. 2016): transposed-conv G with batch norm, strided-conv D; images only",
        {
            "latent_dim": _opt(int, 100, "latent dimension"),
            **_WIDTH,
            "g_norm": _opt(str, "batch", "generator normalisation", ("batch", "layer", "none")),
            "d_norm": _opt(str, "layer", "discriminator normalisation", ("layer", "none", "batch")),
            "loss": _opt(str, "non_saturating", "generator objective", GAN_LOSSES),
            **_ADAM,
            **_COMMON,
        },
        _dcgan_build,
        {"steps": 2000, "batch_size": 64, "lr": 2e-4},
    ),
    "wgan": _spec(
        "wgan",
        "WGAN (Arjovsky et al. 2017): weight-clipped critic, n_critic updates, RMSProp",
        {
            "arch": _opt(str, "auto", "networks: mlp, dcgan, or auto (dcgan for images, mlp for 2-D data)", ARCHS),
            **_MLP,
            **_WIDTH,
            "clip": _opt(float, 0.01, "critic weight clipping"),
            "n_critic": _opt(int, 5, "critic updates per generator update"),
            "optimizer": _opt(str, "rmsprop", "optimizer of both players (the paper: rmsprop)", ("rmsprop", "adam")),
            **_COMMON,
        },
        _wgan_build,
        {"steps": 3000, "batch_size": 64, "lr": 5e-5},
        _wgan_optimizer,
    ),
    "wgan-gp": _spec(
        "wgan-gp",
        "WGAN-GP (Gulrajani et al. 2017): gradient-penalty critic, n_critic updates, Adam(b1=0.5, b2=0.9)",
        {
            "arch": _opt(str, "auto", "networks: mlp, dcgan, or auto (dcgan for images, mlp for 2-D data)", ARCHS),
            **_MLP,
            **_WIDTH,
            "gp_weight": _opt(float, 10.0, "gradient-penalty weight"),
            "n_critic": _opt(int, 5, "critic updates per generator update"),
            "beta1": _opt(float, 0.5, "Adam b1 of both players"),
            "beta2": _opt(float, 0.9, "Adam b2 of both players"),
            **_COMMON,
        },
        _wgan_gp_build,
        {"steps": 3000, "batch_size": 64, "lr": 1e-4},
    ),
    "stylegan": _spec(
        "stylegan",
        "StyleGAN2 G (8-layer mapping net, modulated convs, noise, skip outputs, style mixing, path length) "
        "vs a residual minibatch-stddev D with lazy R1; equalized lr; images only",
        {
            "latent_dim": _opt(int, 64, "latent dimension"),
            "w_dim": _opt(int, 64, "intermediate latent (w) dimension"),
            "mapping_layers": _opt(int, 8, "depth of the mapping network (StyleGAN: 8)"),
            "mapping_lr_mul": _opt(float, 0.01, "learning-rate multiplier of the mapping network (StyleGAN: 0.01)"),
            "width": _opt(int, 32, "base width (channels double per coarser stage)"),
            "architecture": _opt(str, "skip", "generator output architecture (StyleGAN2: skip)", ARCHITECTURES),
            "mbstd_group_size": _opt(int, 4, "minibatch-stddev group size of the discriminator (0: off)"),
            "style_mixing_prob": _opt(float, 0.9, "probability of style mixing per generated training example"),
            "r1_weight": _opt(float, R1_GAMMA, "R1 penalty gamma"),
            "r1_interval": _opt(int, 16, "lazy R1: every this many steps, weight rescaled by it (StyleGAN2: 16)"),
            "pl_weight": _opt(float, 2.0, "path-length penalty weight (StyleGAN2: 2; 0: off)"),
            "pl_interval": _opt(int, 4, "lazy path-length penalty interval (StyleGAN2: 4)"),
            "beta1": _opt(float, 0.0, "Adam b1 of both players (StyleGAN2: 0)"),
            "beta2": _opt(float, 0.99, "Adam b2 of both players (StyleGAN2: 0.99)"),
            **_COMMON,
        },
        _stylegan_build,
        {"steps": 2000, "batch_size": 32, "lr": 1e-3},
    ),
}
