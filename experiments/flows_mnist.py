"""RealNVP and Glow (multi-scale) on MNIST with uniform dequantization; MAF for comparison (issue 3).

Setting (pinned in ``get_config``): MNIST 28x28x1 (60k train, 10k test), 256 levels
scaled to [0, 1]; each training batch is uniformly dequantized inside the flow's
loss (grid value k/255 -> (k + u)/256, u ~ U[0, 1), fresh per step) and mapped to
R by ``logit(alpha + (1 - 2 alpha) x)``, alpha = 0.05 (Jacobian included) for all three;
Glow has its learned split and top priors and zero-initialised coupling outputs with a
learned log-scale, and couplings that expand by at most 2x (``GLOW_PIECES``, issue 22; the
paper's ``x - 0.5`` input and the released code's ``sigmoid(h + 2)`` scale are options of
``flows.glow``, not used here: see ``GLOW_PIECES`` for what each measured). Test
bits/dim = NLL / (784 ln 2) + log2(256) on all 10k test images, one dequantization
draw per image (an upper bound on the discrete data's bits/dim, Theis et al. 2016).

Two pinned sizes (``--size``), same data, objective and schedule shape (Adam, linear
warmup, cosine decay, lr 1e-3, batch 64, seed 0):

  ========  ==========================================  =============================================
  model     ``--size cpu`` (default; 5000 steps)        ``--size gpu`` (100k steps)
  ========  ==========================================  =============================================
  realnvp   3 scales (28->14->7), 32 features x 1 block  3 scales, ResNet couplings 64 features x 4 blocks
  glow      2 levels x 16 steps, 32 features           2 levels x 16 steps, 256 features
  maf       5 MADEs of one 1024-unit layer (the MAF paper's MNIST size), flattened image, both sizes
  ========  ==========================================  =============================================

Anchors (FFJORD paper, Table 2, MNIST bits/dim): MADE 2.04, MAF 1.89, RealNVP 1.06,
Glow 1.05, FFJORD 0.99.

Commands (resumable: checkpoints under ``--workdir``; re-run to continue)::

    GENJAX_DATA_DIR=../shared/data nohup nice python experiments/flows_mnist.py > experiments/logs/flows_mnist.log 2>&1 &
    GENJAX_DATA_DIR=../shared/data python experiments/flows_mnist.py --size gpu     # a GPU job

``--models realnvp`` runs a subset, ``--steps N`` shortens the schedule (recorded in
the JSON, results file suffixed ``_steps<N>``), ``--smoke`` is a seconds-long run on
256 images with tiny flows (tests use it). Writes ``experiments/results/flows_mnist.json``
(``flows_mnist_gpu.json`` for ``--size gpu``) and sample grids
``<workdir>/<name>/<model>-<digest>/samples.png`` (T = 1 and T = 0.7); the digest is of the
model's config and the training settings, so a changed config never resumes an old run.

Cost. ``--size cpu``, one jitted Adam step at batch 64, timed side by side in the run that
writes the JSON (``step_s_side_by_side``, same load for the three): realnvp 0.679 s,
glow 0.687 s, maf 0.135 s; so RealNVP and Glow train at the same CPU budget.

Figures reached (``--size cpu``, all 10k test images; ``train_wall_time_s`` is fit's
recorded training time, summed over resumed processes, under whatever else ran)::

    GENJAX_DATA_DIR=../shared/data python experiments/flows_mnist.py     (JSON at commit 041fd28)
    -> glow (2 levels x 16 steps, 32 features, GLOW_PIECES with the 2 sigmoid(h) scale):
       1.435 test bits/dim (median 1.463; train 1.440), 0.76M params, 0 skipped updates:
       below RealNVP at the same budget, the Glow paper's ordering (anchor: Glow 1.05 after
       full GPU training). Before issue 22: 1.691 (2 x 4 steps, 64 features, sigmoid(h + 2),
       N(0, I) priors); with the pieces at 2 x 8 x 48 and the tanh scale: 1.486; the
       scales tried on the way are in ``GLOW_PIECES``'s comment
    -> realnvp (ActNorm + tanh couplings): 1.441 (median 1.468; train 1.447), 0.35M params,
       0 skipped updates (anchor: RealNVP 1.06)
    -> maf: 2.265 (median 2.171; train 2.134), 12.1M params (an earlier run of the same
       config: 2.158; loss spikes in the 500-step windows at 500-1000 and 2000-2500 this
       time; anchors: MAF 1.89, MADE 2.04)
    (5000 steps each; the three were trained by ``--models NAME`` runs beside other jobs,
    then the command above restored them and wrote the JSON.)
``--size gpu``: measured on the loaded 2-core CPU: realnvp 24.5 s/step after a 67 s
compile (4.8M params), glow 43 s/step after a 57 s compile (39M params), maf 0.34 s/step
(12.1M params): weeks on this CPU. A GPU run needs one accelerator with >= 16 GB (batch
64 at 28x28 with these widths uses a few GB); at the ~10-50 ms/step such conv flows
should take on a modern GPU (an estimate, not measured here: no GPU was available),
100k steps is ~0.5-1.5 h per model plus ~1 min for the 10k-image test pass. Expect
RealNVP/Glow near 1.05-1.1 and MAF near 1.9 bits/dim after full training (the anchors);
the CPU size and shorter runs land higher.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import numpy as np
import optax

from genjax import flows, viz
from genjax.data.images import load_mnist
from genjax.metrics.likelihood import bits_per_dim
from genjax.registry.flows import DEQUANTIZATION_CONVENTION, log_likelihoods, tempered_samples
from genjax.results import config_digest, write_result
from genjax.train import fit, side_by_side_step_times

HERE = pathlib.Path(__file__).resolve().parent

MODELS = ("realnvp", "glow", "maf")
ANCHORS_BPD = {"MADE": 2.04, "MAF": 1.89, "RealNVP": 1.06, "Glow": 1.05, "FFJORD": 0.99}


SIZES = ("cpu", "gpu")


# Glow's pieces (issue 22): learned split and top priors, zero-initialised coupling output
# conv with a learned log-scale, the logit input, and the couplings' scale 2 sigmoid(h) (in
# (0, 2), the identity at h = 0). Measured on the pinned schedule (train bits/dim of the
# 500-step windows; test bits/dim on all 10k images):
# - exp(3 tanh(h / 3)) (the paper's s = exp(log s) with RealNVP's bound) trains fastest, but
#   at 2 levels x 16 steps of 32 features its expansions (up to e^3 per coupling) compound on
#   a test image with a few faint stray pixels (image 6420, an ordinary 9): activations 6.2e3
#   at the split (typical 5.7), 1.45e17 at the top, log q = -inf; the other 9999 images 1.432,
#   and 8 training batches dropped as non-finite. At 2 x 8 x 48 it is finite (1.486, image
#   6420 2.81) but above RealNVP; 2 x 12 x 40 also blew up in training (step 500 window 2.7e9).
# - Glow's released sigmoid(h + 2) (scale in (0, 1), slope 0.12 at the start) is robust
#   (image 6420 within 0.2 of the typical image) but slow: 1.644 at step 2500 (RealNVP 1.558).
# - 2 sigmoid(h) caps each coupling's expansion at 2x and has slope 1/2 at the start: it
#   trains like the tanh scale without a dropped batch (1.583 at step 2500).
# The paper's x - 0.5 input trained far slower (3.98 at steps 250-500, 2.56 with logit, at
# 2 x 4 x 64): MNIST's near-constant background needs a large expansion that logit's
# Jacobian gives for free.
GLOW_PIECES = {"preprocess": "logit", "scale_fn": "sigmoid2", "split_prior": True, "learn_top": True, "out_log_scale": True}


def get_config(size: str = "cpu") -> dict:
    """The pinned config. ``cpu``: sized for this project's 2-core CPU (about an hour for
    the three models); ``gpu``: the published architectures' scale (100k steps, GPU job)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    common = {
        "seed": 0,
        "size": size,
        "data": "mnist (28x28x1, 256 levels)",
        "data_levels": 256,
        "logit_alpha": 0.05,
        "batch_size": 64,
        "lr": 1e-3,
        "lr_schedule": "linear warmup then cosine decay to 0",
        "grad_clip_norm": 100.0,
        "train_examples": 60000,
        "test_examples": 10000,
    }
    if size == "cpu":
        return {
            **common,
            "steps": 5000,
            "warmup_steps": 200,
            "models": {
                "realnvp": {"num_scales": 3, "features": 32, "num_blocks": 1, "actnorm": True},
                # 2 levels x 16 steps of 32 features: 0.687 s per step side by side (RealNVP 0.679);
                # deeper beat wider (2 x 8 x 48: 1.486 test bits/dim with the tanh scale)
                "glow": {"num_levels": 2, "num_steps": 16, "features": 32, "num_blocks": 1, **GLOW_PIECES},
                "maf": {"num_layers": 5, "hidden": [1024]},
            },
        }
    return {
        **common,
        "steps": 100_000,
        "warmup_steps": 1000,
        "models": {
            "realnvp": {"num_scales": 3, "features": 64, "num_blocks": 4, "actnorm": True},
            "glow": {"num_levels": 2, "num_steps": 16, "features": 256, "num_blocks": 1, **GLOW_PIECES},
            "maf": {"num_layers": 5, "hidden": [1024]},
        },
    }


def smoke_config() -> dict:
    c = get_config()
    c.update(batch_size=16, steps=2, warmup_steps=1, train_examples=256, test_examples=32)
    c["models"] = {
        "realnvp": {"num_scales": 1, "features": 4, "num_blocks": 0},
        "glow": {"num_levels": 1, "num_steps": 1, "features": 4, "num_blocks": 0},
        "maf": {"num_layers": 1, "hidden": [8]},
    }
    return c


def build(name: str, config: dict) -> flows.Flow:
    c = dict(config["models"][name])
    lv, alpha = config["data_levels"], config["logit_alpha"]
    if name == "realnvp":
        return flows.realnvp_image((28, 28, 1), data_levels=lv, logit_alpha=alpha, **c)
    if name == "glow":
        return flows.glow((28, 28, 1), data_levels=lv, logit_alpha=alpha, **c)
    base = flows.maf(784, num_layers=c["num_layers"], hidden=tuple(c["hidden"]))
    return flows.Flow(base.layers, (784,), name="maf", data_levels=lv, logit_alpha=alpha)


def run_dir(workdir: pathlib.Path, name: str, config: dict) -> pathlib.Path:
    """``<workdir>/<model>-<digest>``: the digest covers the model's config and the training
    settings, so a changed config starts a new run instead of resuming one trained under
    another (the test-set size is left out: it changes the evaluation, not the training)."""
    key = {"model": name, "model_config": config["models"][name],
           **{k: v for k, v in config.items() if k not in ("models", "test_examples")}}
    return workdir / f"{name}-{config_digest(key, length=10)}"


def run_one(name: str, config: dict, train: np.ndarray, test: np.ndarray, workdir: pathlib.Path,
            progress: bool) -> tuple[dict, tuple]:
    """Trains (or restores) one flow and evaluates it; returns its results record and the
    ``(model, optimizer, state, batch)`` its train step is timed with."""
    model = build(name, config)
    flat = model.data_shape == (784,)
    x_train = train.reshape(len(train), -1) if flat else train
    x_test = test.reshape(len(test), -1) if flat else test
    steps = config["steps"]
    sched = optax.warmup_cosine_decay_schedule(0.0, config["lr"], config["warmup_steps"], steps)
    tx = optax.chain(optax.clip_by_global_norm(config["grad_clip_norm"]), optax.adam(sched))
    wd = run_dir(workdir, name, config)
    res = fit(model, x_train, num_steps=steps, batch_size=config["batch_size"], optimizer=tx, seed=config["seed"],
              out_dir=wd, log_every=max(1, min(500, steps)), checkpoint_every=max(1, min(5000, steps // 10)),
              steps_per_dispatch=max(1, min(100, steps)), resume=True, progress=progress,
              on_nonfinite="skip")
    params = res.state.params
    t1 = time.perf_counter()
    log_q = log_likelihoods(model, params, x_test, jax.random.PRNGKey(7), batch=500)
    nll = float(-np.mean(log_q))
    nll_median = float(-np.median(log_q))
    eval_s = time.perf_counter() - t1
    for fname, s in zip(("samples.png", "samples_t0.7.png"),
                        tempered_samples(model, params, jax.random.PRNGKey(1), 64, (1.0, 0.7))):
        viz.save_image_grid(wd / fname, s.reshape(-1, 28, 28, 1), ncol=8, scale=2)
    train_recs = [r for r in res.history if r["kind"] == "train"]
    timed = (model, tx, res.state, x_train[: config["batch_size"]])
    return {
        "model": name,
        "test_nll_nats": nll,
        "test_bits_per_dim": float(bits_per_dim(nll, 784, num_levels=config["data_levels"])),
        # the median is robust to a few test images with a huge NLL (tanh-coupling flows
        # can expand a rare pixel pattern by up to e^3 per coupling)
        "test_bits_per_dim_median": float(bits_per_dim(nll_median, 784, num_levels=config["data_levels"])),
        "final_train_bits_per_dim": train_recs[-1].get("bits_per_dim") if train_recs else None,
        # updates dropped because the loss or a gradient was not finite (fit(on_nonfinite="skip"))
        "skipped_updates": train_recs[-1].get("skipped_updates", 0) if train_recs else 0,
        "steps": int(res.state.step),
        "num_params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params))),
        "train_wall_time_s": round(res.train_time_s, 1),  # fit's: summed over resumes, a restore adds nothing
        "eval_wall_time_s": round(eval_s, 1),
        "resumed_from_step": res.resumed_from,
        "samples": [str(wd / "samples.png"), str(wd / "samples_t0.7.png")],
    }, timed


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", default="cpu", choices=SIZES, help="pinned config: cpu (default, ~1 h here) or gpu (100k steps)")
    ap.add_argument("--steps", type=int, default=None, help="override the pinned number of steps (recorded)")
    ap.add_argument("--workdir", default=str(HERE / "checkpoints" / "flows_mnist"))
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--smoke", action="store_true", help="seconds-long run on 256 images with tiny flows")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    config = smoke_config() if args.smoke else get_config(args.size)
    if args.steps is not None:
        if args.steps < 1:
            ap.error(f"--steps must be positive, got {args.steps}")
        config["steps"] = args.steps
        config["warmup_steps"] = min(config["warmup_steps"], max(1, args.steps // 10))
    names = [m for m in args.models.split(",") if m]
    for m in names:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; valid: {', '.join(MODELS)}")
    name = "flows_mnist" + ("_gpu" if args.size == "gpu" and not args.smoke else "") + ("_smoke" if args.smoke else f"_steps{args.steps}" if args.steps is not None else "")
    workdir = pathlib.Path(args.workdir) / name

    train = np.asarray(load_mnist("train").x)[: config["train_examples"]]
    test = np.asarray(load_mnist("test").x)[: config["test_examples"]]
    runs = {m: run_one(m, config, train, test, workdir, not args.no_progress) for m in names}
    results = {m: r for m, (r, _) in runs.items()}
    # the CPU budget of each model: its train step timed side by side with the others' (same
    # load), since the runs' wall-clock times depend on what else the machine ran
    for m, t in zip(names, side_by_side_step_times([timed for _, timed in runs.values()])):
        results[m]["step_s_side_by_side"] = round(t, 4)
    out = {
        "script": "experiments/flows_mnist.py",
        "config": config,
        "full_schedule": not args.smoke and args.steps is None,
        "bits_per_dim_convention": f"{DEQUANTIZATION_CONVENTION}; L={config['data_levels']}, D=784",
        "anchors_bits_per_dim": {"source": "FFJORD paper (Grathwohl et al. 2019), Table 2, MNIST", **ANCHORS_BPD},
        "results": results,
    }
    write_result(pathlib.Path(args.results_dir) / f"{name}.json", out, program="experiments/flows_mnist.py",
                 argv=sys.argv[1:] if argv is None else argv)
    print(json.dumps({m: r["test_bits_per_dim"] for m, r in results.items()}, indent=2))
    return out


if __name__ == "__main__":
    main()
