"""CLI specs of the diffusion family: ``ddpm``, ``ddpm-mlp``, ``ncsn``, ``score-sde``.

    model      2-D toy density                   image data (H, W, C) in [0, 1]
    ddpm       ddpm_2d (residual-MLP denoiser)   ddpm_image (UNet)
    ddpm-mlp   ddpm_mlp (residual-MLP denoiser)  ddpm_mlp (the denoiser flattens the image)
    ncsn       ncsn_2d (annealed Langevin)       -- (error: use ddpm or score-sde)
    score-sde  score_sde_2d (VP/sub-VP/VE SDE)   score_sde_image (UNet)

Evaluation (the one path, :func:`genjax.metrics.evaluation.evaluate`) reports the likelihood each
model has, labelled by kind:

* ``ddpm``, ``ddpm-mlp``: the discrete variational bound (``log_prob_kind: vlb``; T network calls
  per example). On images the bound is on the 8-bit image's ``log P(x)`` through the
  discretized Gaussian decoder, so bits/dim need no dequantization offset.
* ``score-sde``: the probability-flow ODE estimate (``ode_estimate``; RK4, exact trace
  on 2-D data, one Hutchinson probe on images). Images are dequantized uniformly once
  per example and reported with ``+ log2 L`` like the flows.
* ``ncsn``: no likelihood (``none``); sample statistics only.

``ddpm --num-classes 10`` on a captioned image set (``mnist-captions``, ...) is the
class-conditional DDPM with classifier-free guidance (labels dropped with p = 0.1): it trains on
``{"x": images, "cond": digit labels}`` (``model.sample(..., cond=3, guidance=2.0)``); the
text-to-image table's baseline (``genjax compare --data mnist-captions``).

On toy densities with a closed-form ``log p`` the KL(p||q) = E_p[log p - log q] is
reported with ``q`` the model's (bound or estimated) density, so for ``ddpm`` it is an
upper bound on the KL.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.data.pipeline import uniform_dequantize
from genjax.diffusion.constructors import SCHEDULES
from genjax.diffusion.sampling import FAST_SAMPLERS
from genjax.metrics.evaluation import evaluate
from genjax.registry.core import (DataBundle, ModelSpec, Option, image_scale, int_tuple, no_transform, sample_in_chunks,
                                  unsupported)

PLOT_LIM = 4.5
#: test examples scored for a likelihood on image data unless ``max_examples`` says otherwise
IMAGE_EVAL_MAX = 500
TOY_EVAL_MAX = 2000


def _check_shape(name: str, data: DataBundle) -> bool:
    image = data.kind == "image"
    if not image and len(data.shape) != 1:
        raise unsupported(name, data, "diffusion models here take flat toy data or (H, W, C) images")
    return image


def _build(name: str):
    def build(data: DataBundle, opts: dict):
        from genjax.diffusion import models as dif

        image = _check_shape(name, data)
        mult = int_tuple(opts["channel_mult"]) if image and "channel_mult" in opts else None
        if name == "ddpm":
            T = opts["T"] if opts["T"] is not None else (1000 if image else 100)
            if image:
                m = dif.ddpm_image(
                    data.shape, base=opts["base"], channel_mult=mult, num_res_blocks=opts["num_res_blocks"], T=T,
                    schedule=opts["schedule"], default_sampler=opts["sampler"], num_classes=opts["num_classes"],
                )
            else:
                if opts["num_classes"] is not None:
                    raise unsupported(name, data, "--num-classes needs a captioned image set (its digit labels)")
                m = dif.ddpm_2d(
                    data_dim=data.shape[0], hidden=int_tuple(opts["hidden"]), T=T, schedule=opts["schedule"],
                    default_sampler=opts["sampler"],
                )
        elif name == "ddpm-mlp":
            # the residual-MLP denoiser flattens (b, H, W, C) itself, so the DDPM takes and returns images
            m = dif.ddpm_mlp(
                data.shape, hidden=int_tuple(opts["hidden"]), emb_dim=opts["emb_dim"], T=opts["T"],
                schedule=opts["schedule"], default_sampler=opts["sampler"],
                data_range="unit" if image else "identity", num_levels=data.num_levels or 256,
            )
        elif name == "ncsn":
            if image:
                raise unsupported(name, data, "ncsn is built for 2-D toy densities here (use ddpm or score-sde on images)")
            m = dif.ncsn_2d(
                data_dim=data.shape[0], hidden=int_tuple(opts["hidden"]), sigma_max=opts["sigma_max"],
                sigma_min=opts["sigma_min"], num_sigmas=opts["num_sigmas"], steps_per_sigma=opts["steps_per_sigma"],
                step_size=opts["step_size"],
            )
        else:
            if image:
                m = dif.score_sde_image(
                    data.shape, base=opts["base"], channel_mult=mult, num_res_blocks=opts["num_res_blocks"],
                    sde=opts["sde"], default_sampler=opts["sampler"],
                )
            else:
                m = dif.score_sde_2d(
                    data_dim=data.shape[0], hidden=int_tuple(opts["hidden"]), sde=opts["sde"],
                    default_sampler=opts["sampler"],
                )
        return m

    return build


def _labelled_train_data(data: DataBundle, opts: dict, num: int | None = None):
    """``ddpm`` trains on the images, or with ``num_classes`` on ``{"x", "cond"}``: the images and
    the class labels of a captioned image set (``data.captioned``)."""
    x = data.train if num is None else data.train[:num]
    if opts.get("num_classes") is None:
        return x
    if data.captioned is None or data.kind != "image" or np.ndim(data.captioned[0].labels) != 1:
        raise ValueError(f"--num-classes: a class-conditional DDPM trains on labelled images; data {data.name!r} has no "
                         "single-class labels (use a captioned set such as mnist-captions)")
    labels = np.asarray(data.captioned[0].labels, np.int32)
    if int(labels.max()) >= opts["num_classes"]:
        raise ValueError(f"--num-classes must exceed the largest label of {data.name!r} ({int(labels.max())}), "
                         f"got {opts['num_classes']}")
    return {"x": x, "cond": labels if num is None else labels[:num]}


# ---------------------------------------------------------------------- evaluation
def dequantize(key, x: np.ndarray, num_levels: int) -> np.ndarray:
    """``k/(L-1) -> (k + u)/L`` with ``u ~ U[0, 1)``, one draw per element (host array)."""
    return np.asarray(uniform_dequantize(key, jnp.asarray(x, jnp.float32), num_levels=num_levels))


#: the end-of-run evaluation of a CLI run (``quick=True``) on images: test examples scored, samples
#: drawn (with the few-step solver) and the cheaper estimators, so that it costs a fraction of training
QUICK_EXAMPLES = 50
QUICK_SAMPLES = 64
QUICK_SAMPLER = "dpm++2m"
QUICK_VLB_TERMS = 50
QUICK_ODE_STEPS = 25


def _quick_estimator(model) -> dict:
    """``log_prob`` keywords of the cheaper likelihood estimate: the DDPM bound from
    :data:`QUICK_VLB_TERMS` stratified terms, the ODE estimate with :data:`QUICK_ODE_STEPS` RK4 steps."""
    if model.log_prob_kind == "vlb":
        return {"num_terms": QUICK_VLB_TERMS}
    if model.log_prob_kind == "ode_estimate":
        return {"num_steps": QUICK_ODE_STEPS}
    return {}


def _evaluate(model, params, data: DataBundle, key, *, num_samples: int = 2000, max_examples: int | None = None,
              classifier=None, data_dir=None, quick: bool = False, progress: bool = False):
    """The one evaluation path (:func:`genjax.metrics.evaluation.evaluate`). The likelihood scores the
    first :data:`IMAGE_EVAL_MAX` (images: T network calls per example) or
    :data:`TOY_EVAL_MAX` test examples unless ``max_examples`` says otherwise;
    ``num_samples`` is the number of generated samples (at most 2000 on images, and with
    ``max_examples`` at most ``max(max_examples, 64)``: as many as the reference images).

    ``quick`` (the end-of-run evaluation of ``genjax train``): on images, the first
    :data:`QUICK_EXAMPLES` test examples (unless ``max_examples``) by the cheaper estimator of
    :func:`_quick_estimator`, and at most :data:`QUICK_SAMPLES` samples by :data:`QUICK_SAMPLER`;
    the result's ``evaluation`` says so. ``progress``: tqdm bars."""
    image = data.kind == "image"
    limit = IMAGE_EVAL_MAX if image else TOY_EVAL_MAX
    n_gen = min(num_samples, 2000) if image else num_samples
    quick = quick and image
    estimator, sample_kwargs = {}, None
    if quick:
        limit, n_gen, estimator = QUICK_EXAMPLES, min(n_gen, QUICK_SAMPLES), _quick_estimator(model)
        sample_kwargs = {"sampler": QUICK_SAMPLER} if model.log_prob_kind in ("vlb", "ode_estimate") else None
    elif image and max_examples is not None:
        n_gen = min(n_gen, max(max_examples, 64))
    out = evaluate(model, params, key, data, num_generated=n_gen, max_examples=limit if max_examples is None else max_examples,
                   classifier=classifier, data_dir=data_dir, batch=100 if image else 500, log_prob_kwargs=estimator,
                   sample_kwargs=sample_kwargs, progress=progress)
    if n_gen < min(num_samples, 2000) and not quick:
        out["num_generated_note"] = f"--num-samples {num_samples} capped at {n_gen} generated images (max(--max-examples, 64))"
    elif n_gen < num_samples and not quick:
        out["num_generated_note"] = f"--num-samples {num_samples} capped at 2000 generated images"
    if quick:
        est = ", ".join(f"{k}={v}" for k, v in estimator.items()) or "the model's"
        out["evaluation"] = (f"quick: {out.get('num_test_examples', 0)} test examples (estimator: {est}), "
                             f"{n_gen} samples ({QUICK_SAMPLER})")
    return out


# ---------------------------------------------------------------------- pictures
def trajectory_strip(frames: np.ndarray, *, num: int = 8, scale: int = 1):
    """Images ``(F, b, H, W, C)`` -> a picture with one row per example and one column per frame."""
    f = np.asarray(frames)[:, :num]
    rows = np.swapaxes(f, 0, 1).reshape(-1, *f.shape[2:])
    return viz.image_grid(np.clip(rows, 0.0, 1.0), ncol=f.shape[0], scale=scale)


def trajectory_panels(traj: np.ndarray, *, num_panels: int = 6, lim: float = PLOT_LIM, reference=None, marks=None):
    """2-D trajectory ``(F, b, 2)`` -> ``num_panels`` scatter plots side by side (noise -> data)."""
    from PIL import Image

    idx = np.linspace(0, len(traj) - 1, num_panels).round().astype(int)
    panels = [viz.scatter_2d(traj[i], lim=lim, size=240, reference=reference if i == idx[-1] else None, marks=marks) for i in idx]
    out = Image.new("RGB", (240 * len(panels) + 4 * (len(panels) - 1), 240), "white")
    for j, p in enumerate(panels):
        out.paste(p, (j * 244, 0))
    return out


def _artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    out_dir = pathlib.Path(out_dir)
    k1, k2, k3 = jax.random.split(key, 3)
    written = []
    if data.kind == "image":
        scale = image_scale(data)
        viz.save_image_grid(out_dir / "samples.png", sample_in_chunks(model, params, k1, 64), ncol=8, scale=scale)
        written.append("samples.png")
        _, traj = jax.jit(lambda p, k: model.sample(p, k, 8, return_trajectory=True))(params, k2)
        traj = np.asarray(traj)
        keep = np.linspace(0, len(traj) - 1, 10).round().astype(int)
        trajectory_strip(traj[keep], scale=max(1, scale // 2)).save(out_dir / "sampling_trajectory.png")
        written.append("sampling_trajectory.png")
        if hasattr(model, "denoise_trajectory"):
            d = jax.jit(lambda p, k, x: model.denoise_trajectory(p, k, x))(params, k3, jnp.asarray(data.test[:8]))
            both = np.concatenate([np.asarray(d["x_t"]), np.asarray(d["x0_hat"])], axis=1)  # (F, 16, ...)
            trajectory_strip(both, num=16, scale=max(1, scale // 2)).save(out_dir / "denoising.png")
            written.append("denoising.png")
        return written
    marks = data.toy.modes if data.toy is not None else None
    samples, traj = jax.jit(lambda p, k: model.sample(p, k, 2000, return_trajectory=True))(params, k1)
    viz.scatter_2d(np.asarray(samples), reference=data.test[:2000], marks=marks, lim=PLOT_LIM).save(out_dir / "samples.png")
    written.append("samples.png")
    trajectory_panels(np.asarray(traj)[:, :1000], reference=data.test[:1000], marks=marks).save(out_dir / "trajectory.png")
    written.append("trajectory.png")
    return written


# ---------------------------------------------------------------------- specs
_FAST = FAST_SAMPLERS
_DDPM_SAMPLER_HELP = "default sampler (ddim: 50 steps; dpm++2m/dpm2/dpm3/euler/heun: few-step solvers, about 20 network calls)"
_VECTOR = {"hidden": Option(str, "128,128,128", "2-D: residual-MLP denoiser widths")}
_IMAGE = {
    "base": Option(int, 32, "images: UNet base channels"),
    "channel_mult": Option(str, "1,2,2", "images: UNet channel multipliers per resolution"),
    "num_res_blocks": Option(int, 1, "images: residual blocks per resolution"),
}
_OPTIONS = {
    "ddpm": {
        "T": Option(int, None, "diffusion steps (default 100 on 2-D data, 1000 on images)"),
        "schedule": Option(str, "linear", "beta schedule", SCHEDULES),
        "sampler": Option(str, "ddpm", _DDPM_SAMPLER_HELP, ("ddpm", "ddim", *_FAST)),
        "num_classes": Option(int, None, "images: class-conditional with classifier-free guidance on a captioned set's "
                                         "labels (e.g. 10 on mnist-captions; default: unconditional)"),
        **_VECTOR,
        **_IMAGE,
    },
    "ddpm-mlp": {
        "T": Option(int, 200, "diffusion steps"),
        "schedule": Option(str, "linear", "beta schedule", SCHEDULES),
        "sampler": Option(str, "ddpm", _DDPM_SAMPLER_HELP, ("ddpm", "ddim", *_FAST)),
        "hidden": Option(str, "256,256,256", "residual-MLP denoiser widths"),
        "emb_dim": Option(int, 64, "time-embedding dimension"),
    },
    "ncsn": {
        **_VECTOR,
        "sigma_max": Option(float, 10.0, "largest noise level (about the data diameter)"),
        "sigma_min": Option(float, 0.01, "smallest noise level"),
        "num_sigmas": Option(int, 20, "geometric noise levels"),
        "steps_per_sigma": Option(int, 100, "Langevin steps per noise level"),
        "step_size": Option(float, 2e-5, "Langevin step size at sigma_min (scaled by sigma^2/sigma_min^2)"),
    },
    "score-sde": {
        "sde": Option(str, "vp", "forward SDE", ("vp", "subvp", "ve")),
        "sampler": Option(str, "pc", "default sampler (pc: 1000 predictor-corrector steps; ode: 100 RK4 steps; "
                          "dpm++2m/dpm2/dpm3/euler/heun: few-step solvers, about 20 network calls)", ("pc", "ode", *_FAST)),
        **_VECTOR,
        **_IMAGE,
    },
}
_DESCRIPTIONS = {
    "ddpm": "DDPM (eps prediction; ancestral or DDIM sampling), variational-bound likelihood",
    "ddpm-mlp": "DDPM with a residual-MLP denoiser on the flattened data (images too: cheap on CPU)",
    "ncsn": "noise-conditional score network with annealed Langevin dynamics (2-D data)",
    "score-sde": "score SDE (VP/sub-VP/VE; predictor-corrector or ODE sampling), ODE likelihood estimate",
}
_DEFAULTS = {
    "ddpm": {"steps": 5000, "batch_size": 128, "lr": 1e-3},
    "ddpm-mlp": {"steps": 5000, "batch_size": 128, "lr": 1e-3},
    "ncsn": {"steps": 5000, "batch_size": 128, "lr": 1e-3},
    "score-sde": {"steps": 5000, "batch_size": 128, "lr": 1e-3},
}

SPECS: dict[str, ModelSpec] = {
    n: ModelSpec(
        n, "diffusion", _DESCRIPTIONS[n], _OPTIONS[n], _build(n), no_transform, _artifacts, _evaluate,
        dict(_DEFAULTS[n]), sample=sample_in_chunks, train_data=_labelled_train_data if n == "ddpm" else None,
    )
    for n in ("ddpm", "ddpm-mlp", "ncsn", "score-sde")
}
