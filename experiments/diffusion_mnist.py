"""DDPM on MNIST, and a fast version on the 8x8 digits (issue 5).

Setting (pinned in ``get_config(data)``): an unconditional ``ddpm_image`` (UNet,
eps prediction, T = 1000, DDPM's linear schedule 1e-4..2e-2), Adam with warmup then
cosine decay, seed 0, trained with ``genjax.train.fit`` (checkpoints under
``--workdir``; resumable: re-run the same command). Then:

* **samples**: a grid of 64 DDIM (eta = 0, 1000 steps) samples, ``<workdir>/samples.png``,
  and a denoising strip ``<workdir>/denoising.png`` (rows: x_t, then the one-shot x0 estimate).
* **test bits/dim by the VLB** (``DDPM.log_prob``): the discrete variational bound with the
  discretized-Gaussian decoder on the 256-level grid, one noise draw per step, on the first
  ``eval_examples`` test images snapped to the 8-bit grid (the registry's convention:
  a bound on -log P of the discrete image, ``bits/dim = nll / (D ln 2)``, no dequantization).
  For the digits (17 levels, k/16) the snap to k*16/255 is not exact, see ``vlb_note``.
* **test bits/dim by the ODE**, through the matching VP SDE: the eps network read as the
  score ``-eps(x, T t - 1) / std_VP(t)`` of ``DiscreteVPSDE.from_schedule`` (the VP SDE whose
  marginals are the chain's at ``t = (i + 1) / T``; ``beta(t)`` about ``T beta`` of the linear
  schedule, 0.1..20.2), probability-flow ODE (RK4, ``ode_steps`` on a geometric time grid from t = 1e-5, one Hutchinson probe) on test images
  dequantized ``k/(L-1) -> (k + u)/L`` (one draw each), ``+ D log 2`` for the ``2x - 1`` map,
  ``bits/dim = nll / (D ln 2) + log2 L`` (L = 17 digits, 256 MNIST). An ESTIMATE, not a bound.
* **DDIM steps-vs-quality** (eta = 0; 10, 20, 50, 100, 1000 steps): FID and KID of
  ``num_quality_samples`` samples against as many test images, on the features of the
  domain classifier (``genjax.metrics.features.get_classifier(data)``,
  ``genjax.metrics.sample_quality``), with the real-vs-real baseline at the same size.
  The VLB does not depend on the sampler; it is reported once.

Anchors for scale (GPU-scale, CIFAR-10): DDPM <= 3.75 bits/dim, score SDE 2.99.

Commands::

    # digits (fast version; CPU, writes experiments/results/diffusion_digits.json)
    nohup nice python experiments/diffusion_mnist.py --data digits > experiments/logs/diffusion_digits.log 2>&1 &
    # MNIST, CPU-sized pinned config (writes experiments/results/diffusion_mnist.json)
    GENJAX_DATA_DIR=/work/shared/data nohup nice python experiments/diffusion_mnist.py --data mnist \\
        > experiments/logs/diffusion_mnist.log 2>&1 &
    # MNIST, DDPM-paper-like size (--data mnist_gpu): a GPU job, not run here

Expected cost of each MNIST config on this 2-core CPU: ``MNIST_COST_NOTE`` (the CPU
config, measured: 94 min of training next to another job, 18 min of evaluation).
``--smoke`` is a seconds-long run (tiny UNet, T = 20, a few steps) for the tests.

Figures reached, digits (pinned config, 2000 steps, seed 0; ``experiments/results/diffusion_digits.json``)::

    nice python experiments/diffusion_mnist.py --data digits

    test bits/dim, VLB (8-bit grid)   5.21 +- 0.05   (100 test images)
    test bits/dim, ODE (L = 17)       2.45           (VP-SDE ODE estimate, 1 Hutchinson probe)

    DDIM steps    10     20     50     100    1000    real-vs-real
    FID          31.7   26.9   20.9   23.1   24.3    17.7
    KID           5.8    2.4    4.0    2.3    2.8    -0.2   (classifier feature units)
    precision    0.73   0.71   0.63   0.63   0.63    0.90
    recall       0.80   0.92   0.93   0.88   0.87    0.89
    (180 samples per point against 180 test images)

The two likelihoods are on different grids and conventions: the VLB bounds -log2 P of the
8-bit image (256 cells per pixel, of which the digits use 17); the ODE estimates the
density of the 17-level image uniformly dequantized over bins 1/17 wide, while a DDPM
trained on the 17 grid values concentrates its mass near them, so the dequantized density
pays for the spread (a model that knew the dequantization would score lower). Uniform
codes: 8 and 4.09 bits/dim. (An earlier evaluation reported ODE 1.20: it integrated the ODE
on a uniform time grid from t = 1e-5, which misses the ~D/t growth of the divergence near 0
and biases log q upwards; ``ode_log_prob`` now uses a geometric grid, converged to 1e-4
bits/dim between 50 and 100 steps on MNIST.) Quality rises steeply from 10 to 50 DDIM
steps and is flat after (differences beyond 50 steps are within the noise of 180 samples:
KID's std is 2-4). Cost: steps 0-500 took 34 min on the loaded CPU, before
``make_multi_step`` ran conv steps as a Python loop (3-7 s/step in a ``lax.scan``); the
resumed steps 500-2000 took 53 s (~28 steps/s); evaluation 72 s (VLB 17 s, ODE 21 s,
DDIM curve 35 s).
At step 500 (``diffusion_digits_steps500.json``) the evaluation gave VLB 6.08, ODE
2.20 bits/dim (uniform time grid) and DDIM-1000 FID 43.3: training past 500 steps halved the FID gap to the
real-vs-real baseline.

Figures reached, MNIST (``--data mnist``, the CPU-sized config: UNet base 16, mult 1,2,
177k params, batch 64, 6000 steps = 6.4 epochs, seed 0; ``experiments/results/diffusion_mnist.json``)::

    GENJAX_DATA_DIR=../shared/data nice python experiments/diffusion_mnist.py --data mnist

    test bits/dim, VLB (8-bit grid)   2.14 +- 0.03   (100 test images)
    test bits/dim, ODE (L = 256)      1.77           (VP-SDE ODE estimate, 1 Hutchinson probe; 1.766 read
                                                      as DiscreteVPSDE, 1.768 as the linear VPSDE before)

    DDIM steps    10     20     50     100    1000    real-vs-real
    FID          97.5   90.6   91.7   95.9   89.3    40.5
    KID          17.7   17.1   12.7   13.9   13.1     2.4   (classifier feature units)
    precision    0.71   0.63   0.60   0.56   0.59    0.91
    recall       0.69   0.80   0.81   0.78   0.79    0.88
    (200 samples per point against 200 test images)

Cost: 94 min of training in the first run (~1.1-1.6 steps/s, sharing the 2 cores with a flow
run; the committed JSON's 145 min sums the processes of an interrupted, resumed run),
evaluation 18 min on a quiet machine (VLB 234 s, ODE 138 s -- 427 s before ``ode_log_prob``
looped its RK4 steps from Python on CPU --, DDIM curve 694 s of which 574 s for the 1000-step
point; 59 min in the committed run, on cores shared with three other jobs). The samples
(``samples.png``) are stroke-like and about a third legible digits: 6.4 epochs of a 177k-param
UNet is far from the DDPM paper's budget; the likelihoods (VLB 2.14, ODE 1.77) are already
near the flows' (Glow 1.69, MAF 2.16 in ``flows_mnist.py``), because they reward the
background and stroke statistics more than digit shape. The DDIM curve is flat past 20 steps
within its noise (KID std 3-4). A GPU run of ``--data mnist_gpu`` (60k steps, base 64) is what
would make the samples digits; expected cost in ``MNIST_COST_NOTE``.

The anchors (CIFAR-10, GPU-scale: DDPM <= 3.75, score SDE 2.99 bits/dim) are on another data
set and grid; nothing here is comparable to them beyond the order of magnitude.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import viz
from genjax.data.images import load_digits, load_mnist
from genjax.data.pipeline import uniform_dequantize
from genjax.diffusion import likelihood as lik
from genjax.diffusion import models as dif
from genjax.metrics import features, sample_quality
from genjax.metrics.likelihood import bits_per_dim
from genjax.registry.diffusion import trajectory_strip
from genjax.results import write_result
from genjax.train import fit

HERE = pathlib.Path(__file__).resolve().parent

DATASETS = ("digits", "mnist", "mnist_gpu")
ANCHORS_BITS_PER_DIM = {"ddpm_cifar10": 3.75, "score_sde_cifar10": 2.99}
MNIST_COST_NOTE = (
    "mnist is the CPU-sized pinned config (UNet base 16, mult 1,2, batch 64, 6000 steps; the 28x28 step "
    "measured ~0.45 s on the idle 2-core CPU, benchmarks' mixed_precision entry at batch 32: 0.22 s). "
    "mnist_gpu is the DDPM-paper-like size (UNet base 64, mult 1,2,2, 2 res blocks, batch 128, 60k steps): "
    "~16x the conv cost per pixel and 2x the batch, i.e. several s/step, weeks for 60k steps on this CPU: a GPU job"
)


def get_config(data: str = "digits") -> dict:
    if data == "digits":
        return {
            "data": "digits",
            "seed": 0,
            "model": {"base": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "T": 1000, "schedule": "linear"},
            "batch_size": 64,
            "steps": 2000,
            "lr": 1e-3,
            "warmup_steps": 100,
            "checkpoint_every": 500,
            "eval_examples": 100,
            "ode_steps": 50,
            "ddim_steps": [10, 20, 50, 100, 1000],
            "num_quality_samples": 180,
            "kid_subset_size": 90,
            "classifier_overrides": {},
        }
    if data == "mnist":  # CPU-sized: what this project's 2-core machine can train in about an hour
        return {
            "data": "mnist",
            "seed": 0,
            "model": {"base": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "T": 1000, "schedule": "linear"},
            "batch_size": 64,
            "steps": 6000,
            "lr": 1e-3,
            "warmup_steps": 200,
            "checkpoint_every": 500,
            "eval_examples": 100,
            "ode_steps": 50,
            "ddim_steps": [10, 20, 50, 100, 1000],
            "num_quality_samples": 200,
            "kid_subset_size": 100,
            "classifier_overrides": {},
        }
    if data == "mnist_gpu":
        return {
            "data": "mnist_gpu",
            "seed": 0,
            "model": {"base": 64, "channel_mult": [1, 2, 2], "num_res_blocks": 2, "T": 1000, "schedule": "linear"},
            "batch_size": 128,
            "steps": 60_000,
            "lr": 2e-4,
            "warmup_steps": 1000,
            "checkpoint_every": 2000,
            "eval_examples": 1000,
            "ode_steps": 100,
            "ddim_steps": [10, 20, 50, 100, 1000],
            "num_quality_samples": 2000,
            "kid_subset_size": 1000,
            "classifier_overrides": {},
        }
    raise ValueError(f"data must be one of {', '.join(DATASETS)}, got {data!r}")


def smoke_config(data: str = "digits") -> dict:
    c = get_config(data)
    c.update(
        model={"base": 8, "channel_mult": [1], "num_res_blocks": 1, "T": 10, "schedule": "linear"},
        batch_size=8, steps=4, warmup_steps=1, checkpoint_every=2, eval_examples=8, ode_steps=2,
        ddim_steps=[2, 10], num_quality_samples=16, kid_subset_size=8,
        classifier_overrides={"steps": 5, "batch_size": 16},
        train_examples=64,
    )
    return c


def load(data: str):
    if data == "digits":
        tr, te = load_digits("train"), load_digits("test")
    else:  # mnist, mnist_gpu
        tr, te = load_mnist("train"), load_mnist("test")
    return np.asarray(tr.x), np.asarray(te.x), te.num_levels


def ddpm_as_vp_score(model: dif.DDPM, params):
    """The DDPM eps network as a VP-SDE score: ``(score_fn, sde)``; see ``DDPM.vp_score``."""
    return model.vp_score(params)


def dequantize(key, x: np.ndarray, num_levels: int) -> np.ndarray:
    """``k/(L-1) -> (k + u)/L``, ``u ~ U[0, 1)`` per element (``genjax.data.uniform_dequantize``)."""
    return np.asarray(uniform_dequantize(key, jnp.asarray(x, jnp.float32), num_levels=num_levels))


def _batched(f, params, x, key, batch):
    return np.concatenate(
        [np.asarray(f(params, jax.random.fold_in(key, i), jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
    ).astype(np.float64)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits", choices=DATASETS)
    ap.add_argument("--workdir", default=str(HERE / "checkpoints"))
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--steps", type=int, default=None,
                    help="stop training at this step (a shortened run; resumes from the pinned run's checkpoints)")
    ap.add_argument("--eval-examples", type=int, default=None, help="override: test images scored by VLB and ODE")
    ap.add_argument("--quality-samples", type=int, default=None, help="override: samples per DDIM point")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run with a tiny UNet (tests use it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    for opt in ("steps", "eval_examples", "quality_samples"):
        v = getattr(args, opt)
        if v is not None and v < (2 if opt != "steps" else 1):
            raise ValueError(f"--{opt.replace('_', '-')} must be a positive int (>= 2 for sample counts), got {v}")

    config = smoke_config(args.data) if args.smoke else get_config(args.data)
    name = f"diffusion_{args.data}" + ("_smoke" if args.smoke else "")
    run_name = name  # checkpoints: a shortened run shares the pinned run's directory and schedule
    overrides = {}
    if args.steps is not None:
        overrides["train_steps"] = args.steps
        name += f"_steps{args.steps}"
    if args.eval_examples is not None:
        overrides["eval_examples"] = config["eval_examples"] = args.eval_examples
    if args.quality_samples is not None:
        overrides["num_quality_samples"] = config["num_quality_samples"] = args.quality_samples
        config["kid_subset_size"] = min(config["kid_subset_size"], args.quality_samples)
    if args.eval_examples is not None or args.quality_samples is not None:
        name += "_smalleval"
    workdir = pathlib.Path(args.workdir) / run_name
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = "digits" if args.data == "digits" else "mnist"  # mnist_gpu: the same data, a bigger config
    x_train, x_test, num_levels = load(args.data)
    if "train_examples" in config:
        x_train = x_train[: config["train_examples"]]
    shape = x_train.shape[1:]
    D = int(np.prod(shape))
    mc = config["model"]
    model = dif.ddpm_image(shape, base=mc["base"], channel_mult=tuple(mc["channel_mult"]),
                           num_res_blocks=mc["num_res_blocks"], T=mc["T"], schedule=mc["schedule"])
    steps = config["steps"]
    lr = optax.warmup_cosine_decay_schedule(0.0, config["lr"], config["warmup_steps"], steps)

    # the learning-rate schedule is always the pinned one (so --steps stops the pinned run early)
    res = fit(model, x_train, num_steps=steps if args.steps is None else args.steps, batch_size=config["batch_size"], optimizer=optax.adam(lr),
              seed=config["seed"], out_dir=workdir / "run", log_every=max(1, steps // 30),
              eval_every=config["checkpoint_every"], checkpoint_every=config["checkpoint_every"],
              steps_per_dispatch=max(1, min(100, steps // 30)), resume=True, progress=not args.no_progress)
    train_time = res.train_time_s  # fit's: summed over resumed processes, a restore adds nothing
    params = res.state.params
    train_recs = [r for r in res.history if r.get("kind", "train") == "train" and "loss" in r]
    sec_per_step = train_time / max(1, steps - (res.resumed_from or 0)) if not res.resumed_from else None

    # ---------------------------------------------------------------- likelihoods
    t1 = time.time()
    n_eval = min(config["eval_examples"], len(x_test))
    xe = x_test[:n_eval]
    key = jax.random.PRNGKey(config["seed"] + 7)
    k_vlb, k_dq, k_ode, k_q, k_grid, k_den = jax.random.split(key, 6)
    x8 = (np.round(xe * 255.0) / 255.0).astype(np.float32)
    vlb_f = jax.jit(lambda p, k, x: model.log_prob(p, k, x))
    log_q_vlb = _batched(vlb_f, params, x8, k_vlb, 50)
    nll_vlb = float(-log_q_vlb.mean())
    bpd_vlb = float(bits_per_dim(nll_vlb, D))
    bpd_vlb_se = float(log_q_vlb.std(ddof=1) / math.sqrt(n_eval) / (D * math.log(2)))
    vlb_time = time.time() - t1

    t2 = time.time()
    _, sde = ddpm_as_vp_score(model, params)
    xdq = dequantize(k_dq, xe, num_levels)
    # not under jit: on CPU ode_log_prob then runs its RK4 steps as a Python loop of one
    # jitted step (loop="auto"), ~4x faster than its lax.scan for a conv network
    ode_f = lambda p, k, x: lik.ode_log_prob(  # noqa: E731
        k, ddpm_as_vp_score(model, p)[0], 2.0 * x - 1.0, sde=sde, num_steps=config["ode_steps"],
        trace="hutchinson", num_probes=1) + D * math.log(2.0)
    log_q_ode = _batched(ode_f, params, xdq, k_ode, 50)
    nll_ode = float(-log_q_ode.mean())
    bpd_ode = float(bits_per_dim(nll_ode, D, num_levels=num_levels))
    ode_time = time.time() - t2

    # ---------------------------------------------------------------- DDIM steps vs quality
    t3 = time.time()
    if args.smoke:  # a few classifier steps, nothing cached
        clf = features.train_classifier(dataset, progress=False, **config["classifier_overrides"])
    else:  # digits: cached in the workdir; MNIST: cached beside the data (the metrics module's default)
        clf = features.get_classifier(dataset, data_dir=workdir if dataset == "digits" else None, progress=False)
    n_q = min(config["num_quality_samples"], len(x_test))
    real = x_test[:n_q]
    qkw = dict(kid_subsets=50, kid_subset_size=min(config["kid_subset_size"], n_q), seed=0)
    baseline = sample_quality.real_vs_real_baseline(x_test[: 2 * n_q], clf, **qkw)
    curve = []
    grid_samples = None
    for s in config["ddim_steps"]:
        ts = time.time()
        f = jax.jit(lambda p, k, s=s: model.sample(p, k, n_q, sampler="ddim", steps=s, eta=0.0))
        xs = np.asarray(f(params, jax.random.fold_in(k_q, s)))
        q = sample_quality.sample_quality(real, xs, clf, **qkw)
        curve.append({
            "ddim_steps": s, "fid": q["fid"], "kid_mean": q["kid_mean"], "kid_std": q["kid_std"],
            "precision": q["precision"], "recall": q["recall"], "classifier_score": q["classifier_score"],
            "samples_finite": bool(np.all(np.isfinite(xs))), "time_s": round(time.time() - ts, 1),
        })
        print(json.dumps(curve[-1]), flush=True)
        if s == max(config["ddim_steps"]):
            grid_samples = xs
    quality_time = time.time() - t3

    scale = 4 if shape[0] <= 8 else 2
    viz.save_image_grid(workdir / "samples.png", grid_samples[:64], ncol=8, scale=scale)
    d = jax.jit(lambda p, k, x: model.denoise_trajectory(p, k, x))(params, k_den, jnp.asarray(x_test[:8]))
    both = np.concatenate([np.asarray(d["x_t"]), np.asarray(d["x0_hat"])], axis=1)
    trajectory_strip(both, num=16, scale=scale).save(workdir / "denoising.png")

    out = {
        "experiment": name,
        "script": "experiments/diffusion_mnist.py",
        "config": config,
        "overrides": overrides,
        "trained_steps": int(res.state.step),
        "data_shape": list(shape),
        "num_levels": int(num_levels),
        "train_examples": int(len(x_train)),
        "num_params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params))),
        "final_train_loss": float(train_recs[-1]["loss"]) if train_recs else None,
        "test_examples_scored": int(n_eval),
        "test_nll_vlb_nats": nll_vlb,
        "test_bits_per_dim_vlb": bpd_vlb,
        "test_bits_per_dim_vlb_stderr": bpd_vlb_se,
        "vlb_convention": "discrete VLB, discretized Gaussian decoder on the 256-level grid, one noise draw per step; "
                          "a bound on -log P(x) of the 8-bit image; bits/dim = nll/(D ln 2), no dequantization",
        "vlb_note": ("digits have 17 levels (k/16); they are snapped to the nearest 8-bit value, so the bound is "
                     "on those 8-bit images" if num_levels != 256 else "8-bit data: exact"),
        "test_nll_ode_nats": nll_ode,
        "test_bits_per_dim_ode": bpd_ode,
        "ode_convention": (f"DDPM eps network as the VP-SDE score ({type(sde).__name__}, beta(t) in "
                           f"[{sde.beta_min:.3g}, {sde.beta_max:.3g}], marginals = the chain's at t = (i+1)/T, "
                           f"t <-> step T t - 1); probability-flow ODE ESTIMATE, RK4 {config['ode_steps']} steps on a geometric time grid from t = 1e-5, "
                           "1 Hutchinson probe; uniform dequantization k/(L-1) -> (k+u)/L, one draw per image; "
                           f"bits/dim = nll/(D ln 2) + log2(L), L={num_levels}"),
        "ddim_curve": curve,
        "ddim_eta": 0.0,
        "quality_num_samples": int(n_q),
        "real_vs_real_baseline": {k: baseline[k] for k in ("fid", "kid_mean", "kid_std", "precision", "recall")},
        "classifier": {"dataset": clf.dataset, "test_accuracy": float(clf.test_accuracy), "config_hash": clf.config_hash},
        "anchors_bits_per_dim": ANCHORS_BITS_PER_DIM,
        "mnist_cost_note": MNIST_COST_NOTE,
        "figures": [str(workdir / "samples.png"), str(workdir / "denoising.png")],
        "train_wall_time_s": round(train_time, 1),
        "train_seconds_per_step": sec_per_step,
        "resumed_from_step": res.resumed_from,
        "eval_wall_time_s": {"vlb": round(vlb_time, 1), "ode": round(ode_time, 1), "quality": round(quality_time, 1)},
        "workdir": str(workdir),
    }
    write_result(pathlib.Path(args.results_dir) / f"{name}.json", out, program="experiments/diffusion_mnist.py",
                 argv=sys.argv[1:] if argv is None else argv)
    print(json.dumps({k: out[k] for k in ("test_bits_per_dim_vlb", "test_bits_per_dim_ode", "train_wall_time_s")}))
    return out


if __name__ == "__main__":
    main()
