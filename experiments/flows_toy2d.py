"""RealNVP, MAF and NSF on 2-D toy densities with the exact KL(p||q) (issue 3).

Setting (pinned in ``get_config``): for each density in {8gaussians, checkerboard,
rings} and each flow in {realnvp, maf, nsf}, train on 200k samples from the density
(fixed key), Adam with a cosine-decayed learning rate, batch 256, seed 0; then

    KL(p||q) = E_p[log p(x) - log q(x)]

on 20k fresh test samples, with ``log p`` in closed form
(``genjax.data.synthetic.exact_log_prob``): ``ToyDensity.log_prob`` for 8gaussians and
checkerboard; for rings ``synthetic.rings_log_prob``, derived from how
``synthetic._rings_sample`` draws (ring k uniformly, angle theta ~ U[0, 2 pi), signed
radius r = R_k + sigma * eps, point r (cos theta, sin theta)):
the polar radius |r| has density (1/K) sum_k [N(rho; R_k, sigma) + N(-rho; R_k, sigma)]
(the second term is a negative r flipped through the origin) and the polar angle is
uniform and independent, so p(x) = f(rho) / (2 pi rho) exactly. The reported KL is a
Monte-Carlo estimate (standard error also reported). Goal (issue 3): <= 0.02 nats for
the best flow on each density.

Command (21 min wall on the shared 2-core CPU at load 7-15, 2026-12-06: 1.2-2 min per
realnvp/maf run, 3.4-3.9 min per nsf run, 20 min of training in all; writes
``experiments/results/flows_toy2d.json`` with ``genjax.results.write_result`` after every
finished run, and PNGs under ``--workdir``,
default ``experiments/checkpoints/flows_toy2d/``, gitignored; each finished (density,
flow) is also kept there as ``<density>_<flow>.result.json`` with its config, so the same
command re-run after an interruption trains only what is missing)::

    mkdir -p experiments/logs
    nohup python experiments/flows_toy2d.py > experiments/logs/flows_toy2d.log 2>&1 &

``--densities`` / ``--flows`` restrict the grid (then the JSON is ``flows_toy2d_partial``),
``--steps`` overrides every flow's steps (recorded), ``--smoke`` is a seconds-long run for
the tests. Pictures per (density, flow): ``<workdir>/<density>_<flow>_density.png`` (model
density heat map on [-4.5, 4.5]^2, dark = high), ``..._samples.png`` (5000 samples, blue,
over the test data, grey), and ``<density>_true.png``.

Figures reached (KL nats, this config, seed 0, CPU; the committed JSON is one run of the
command above, 2026-12-06, whose ``run`` key records the commit, machine and versions):

    density       nsf      realnvp   maf
    8gaussians    0.0050   2.75      2.09
    checkerboard  0.0175   0.123     0.161
    rings         0.0124   0.473     0.422

The re-run reproduced every KL of the first, 2026-11-25 JSON to the last digit; that JSON
had been assembled from three invocations, its nsf/checkerboard figure (0.0175) from a
tuning trial: the re-run shows the trial was this pinned config (issue 17, A5).
NSF meets the <= 0.02 goal on all three (MC standard errors ~0.001). The affine flows
cannot make the 8gaussians modes (std 0.02) sharp enough with bounded scales at this
depth. Tuning: NSF with 16 bins / 8000 steps gave 0.009 / 0.023 / 0.022.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import jax
import numpy as np
import optax

from genjax import flows, viz
from genjax.data import synthetic
from genjax.registry import flows as flow_specs
from genjax.results import shown_path, write_result
from genjax.train import fit

HERE = pathlib.Path(__file__).resolve().parent

DENSITIES = ("8gaussians", "checkerboard", "rings")
FLOWS = ("realnvp", "maf", "nsf")


def get_config() -> dict:
    return {
        "seed": 0,
        "train_samples": 200_000,
        "test_samples": 20_000,
        "batch_size": 256,
        "steps": 8000,
        "lr": 2e-3,
        "lr_schedule": "cosine decay to 0 with 200 warmup steps",
        "flows": {
            "realnvp": {"num_layers": 10, "hidden": [128, 128]},
            "maf": {"num_layers": 10, "hidden": [128, 128]},
            # trials: 16 bins / 8000 steps gave checkerboard 0.023, rings 0.022 nats
            "nsf": {"num_layers": 6, "hidden": [128, 128], "num_bins": 32, "bound": 5.0, "steps": 10000},
        },
    }


def smoke_config() -> dict:
    c = get_config()
    c.update(train_samples=2000, test_samples=500, batch_size=64, steps=20)
    c["flows"] = {
        "realnvp": {"num_layers": 2, "hidden": [8]},
        "maf": {"num_layers": 2, "hidden": [8]},
        "nsf": {"num_layers": 2, "hidden": [8], "num_bins": 4, "bound": 5.0, "steps": 20},
    }
    return c


def build(name: str, cfg: dict) -> flows.Flow:
    c = dict(cfg)
    c["hidden"] = tuple(c["hidden"])
    if name == "realnvp":
        return flows.realnvp_2d(**c)
    if name == "maf":
        return flows.maf(2, **c)
    return flows.nsf_2d(**c)


def run_one(density: str, flow_name: str, config: dict, workdir: pathlib.Path, progress: bool) -> dict:
    """Trains one flow on one density and measures its KL; pictures under ``workdir``.

    The result is also kept in ``<workdir>/<density>_<flow>.result.json`` with the config it
    was made with: re-running the same command after an interruption reuses finished runs
    (only when their config is the same) instead of training them again.
    """
    done = workdir / f"{density}_{flow_name}.result.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == config:
            return saved["result"]
    toy = synthetic.get_toy_density(density)
    k_train, k_test = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config["seed"]), 2025))
    x_train = np.asarray(toy.sample(k_train, config["train_samples"]))
    x_test = np.asarray(toy.sample(k_test, config["test_samples"]))
    fcfg = dict(config["flows"][flow_name])
    steps = fcfg.pop("steps", config["steps"])  # per-flow steps override the shared default
    model = build(flow_name, fcfg)
    sched = optax.warmup_cosine_decay_schedule(0.0, config["lr"], min(200, steps // 10 + 1), steps)
    t0 = time.perf_counter()
    res = fit(model, x_train, num_steps=steps, batch_size=config["batch_size"], optimizer=optax.adam(sched),
              seed=config["seed"], log_every=max(1, steps // 10), checkpoint_every=None,
              steps_per_dispatch=max(1, min(500, steps // 10)), progress=progress)
    train_s = time.perf_counter() - t0
    params = res.state.params
    log_q = flow_specs.log_likelihoods(model, params, x_test, jax.random.PRNGKey(0), batch=5000).astype(np.float64)
    log_p = synthetic.exact_log_prob(toy, x_test)
    d = log_p - log_q
    out = {
        "density": density,
        "flow": flow_name,
        "steps": steps,
        "kl_nats": float(d.mean()),
        "kl_stderr_nats": float(d.std(ddof=1) / math.sqrt(len(d))),
        "test_nll_nats": float(-log_q.mean()),
        "true_entropy_nats": float(-log_p.mean()),
        "final_train_loss": float(res.history[-1]["loss"]) if res.history else None,
        "train_time_s": round(train_s, 1),
        "num_params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params))),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    viz.density_heatmap(flow_specs.log_density_grid(model, params)).save(workdir / f"{density}_{flow_name}_density.png")
    samples = np.asarray(jax.jit(lambda p, k: model.sample(p, k, 5000))(params, jax.random.PRNGKey(1)))
    viz.scatter_2d(samples, reference=x_test[:5000], marks=toy.modes).save(workdir / f"{density}_{flow_name}_samples.png")
    done.write_text(json.dumps({"config": config, "result": out}, indent=2) + "\n")
    return out


def _summary(results, densities, names, config, args, t0, workdir) -> dict:
    best = {}
    for d in densities:
        rs = [r for r in results if r["density"] == d]
        if rs:
            b = min(rs, key=lambda r: r["kl_nats"])
            best[d] = {"flow": b["flow"], "kl_nats": b["kl_nats"], "meets_goal_0.02": b["kl_nats"] <= 0.02}
    return {
        "experiment": "flows_toy2d",
        "complete": len(results) == len(densities) * len(names),
        "config": config,
        "steps_overridden": args.steps is not None,
        "kl_definition": "KL(p||q) = E_p[log p - log q], mean over test samples, closed-form log p "
                         "(genjax.data.synthetic.exact_log_prob; rings: the exact radial form rings_log_prob)",
        "goal": "best flow per density <= 0.02 nats",
        "results": results,
        "best": best,
        "total_train_time_s": round(sum(r["train_time_s"] for r in results), 1),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "workdir": shown_path(workdir, HERE.parent),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--densities", default=",".join(DENSITIES))
    ap.add_argument("--flows", default=",".join(FLOWS))
    ap.add_argument("--steps", type=int, default=None, help="override the pinned steps (recorded in the JSON)")
    ap.add_argument("--workdir", default=str(HERE / "checkpoints" / "flows_toy2d"))
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--smoke", action="store_true", help="seconds-long run with tiny flows (tests use it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    config = smoke_config() if args.smoke else get_config()
    if args.steps is not None:
        config["steps"] = args.steps
        for f in config["flows"].values():
            f.pop("steps", None)
    densities = [d for d in args.densities.split(",") if d]
    names = [f for f in args.flows.split(",") if f]
    for d in densities:
        if d not in DENSITIES:
            raise ValueError(f"unknown density {d!r}; valid: {DENSITIES}")
    for f in names:
        if f not in FLOWS:
            raise ValueError(f"unknown flow {f!r}; valid: {FLOWS}")
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    name = "flows_toy2d"
    if args.smoke:
        name += "_smoke"
    elif set(densities) != set(DENSITIES) or set(names) != set(FLOWS) or args.steps is not None:
        name += "_partial"
    rd = pathlib.Path(args.results_dir)
    rd.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    for d in densities:
        toy = synthetic.get_toy_density(d)
        g = flow_specs.grid_points()
        viz.density_heatmap(synthetic.exact_log_prob(toy, g).reshape(flow_specs.GRID, flow_specs.GRID)).save(workdir / f"{d}_true.png")
    results = []
    # NSF first over all densities (expected best), then the others; the JSON is
    # rewritten after every run so an interrupted run keeps what it finished.
    for f in sorted(names, key=lambda n: n != "nsf"):
        for d in densities:
            r = run_one(d, f, config, workdir, not args.no_progress)
            print(json.dumps(r), flush=True)
            results.append(r)
            out = _summary(results, densities, names, config, args, t0, workdir)
            write_result(rd / f"{name}.json", out, program="experiments/flows_toy2d.py",
                         argv=sys.argv[1:] if argv is None else argv)
    best = out["best"]
    print(json.dumps(best, indent=2))
    return out


if __name__ == "__main__":
    main()
