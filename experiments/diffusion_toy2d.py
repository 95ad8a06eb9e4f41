"""DDPM and score-SDE (VP) on 2-D toy densities with the exact KL(p||q) (issue 5).

Setting (pinned in ``get_config``): for each density in {8gaussians, checkerboard,
rings} and each model in {ddpm, score_sde}, train on ``train_samples`` draws from the
density (fixed key, the same draws as ``flows_toy2d.py``), Adam with a warmup-cosine
learning rate, seed 0, with ``genjax.train.fit`` (checkpoints under ``--workdir``,
resumable: re-run the same command). Both models use the residual-MLP denoiser
(``genjax.nn.denoiser.MLPDenoiser``) and the same VP noise scale: ``ddpm`` is
``ddpm_2d`` with T = 1000 and the linear schedule 1e-4..2e-2, whose ``T beta`` runs over
0.1..20, i.e. about the discretisation of ``score_sde``'s ``VPSDE(0.1, 20)``; the DDPM's ODE
estimate reads it as ``DiscreteVPSDE.from_schedule`` (the VP SDE with the chain's marginals).

Then, on ``test_samples`` fresh test draws,

    KL(p||q) = E_p[log p(x) - log q(x)]

with ``log p`` in closed form (rings: the exact radial form of
``genjax.data.synthetic.rings_log_prob``) and ``log q`` from

* ``score_sde``: ``ScoreSDE.log_prob`` -- the probability-flow ODE ESTIMATE, RK4 with
  ``ode_steps`` steps from t = 1e-5 to 1 and the exact trace (2-D). Not a bound: it carries
  the RK4 and prior-mismatch error (``kl_nats``).
* ``ddpm``: ``DDPM.log_prob`` -- minus the discrete variational bound (one noise draw per
  step), so ``kl_vlb_upper_bound_nats`` is an UPPER BOUND on the KL of the DDPM's discrete
  chain (in expectation). Also ``kl_ode_nats``: the same eps network read as a VP-SDE
  score, ``score(x, t) = -eps(x, T t - 1) / std_VP(t)`` (the step index of the marginal with
  ``alpha_bar_i ~ exp(-int_0^{(i+1)/T} beta)``), pushed through the same probability-flow
  ODE with the exact trace: an ODE estimate for a model that never saw continuous times.

Samples: ``ddpm`` ancestral (all T steps), ``score_sde`` predictor-corrector
(``pc_steps``); pictures per (density, model) under ``--workdir``:
``<density>_<model>_samples.png`` (2000 samples, blue, over test data, grey),
``<density>_<model>_trajectory.png`` (six panels noise -> data of 1000 sampler paths).

Command (resumable; writes ``experiments/results/diffusion_toy2d.json``; ``--smoke`` is a
seconds-long run for the tests, ``--densities`` / ``--models`` restrict the grid, then the
JSON is ``diffusion_toy2d_partial``)::

    mkdir -p experiments/logs
    nohup nice python experiments/diffusion_toy2d.py > experiments/logs/diffusion_toy2d.log 2>&1 &

Cost: 33 min wall for the six runs from scratch on the shared, heavily loaded 2-core CPU
(load 15-24; 50-250 s of training per model, 1-6.5 min of evaluation + sampling each). The
committed JSON is one run of the command above (2026-12-06; its ``run`` key records the
commit, machine and versions) that reused the finished score-SDE runs and the DDPMs' final
checkpoints of the from-scratch run in its ``--workdir`` and re-evaluated the DDPMs: since
issue 17 (A6) a DDPM is read as ``DiscreteVPSDE`` (exact marginals at the chain's steps), not
as the linear ``VPSDE(0.1, 20)``, which was off by up to 5% in marginal std at T = 1000. The
DDPM's ODE KLs moved from 0.0558 / 0.1840 / 0.8869 to 0.0572 / 0.1841 / 0.8870; every other
figure is unchanged.

Figures reached (KL nats +- MC standard error, this config, seed 0, CPU). The last column
is not this experiment's: it is the best flow's KL on the same densities from
``experiments/results/flows_toy2d.json`` (issue 3), which a run prints beside its own at
the end (it is not copied into this JSON):

    density       score_sde (ODE)   ddpm (VP-SDE ODE)   ddpm (VLB bound)   NSF flow (flows_toy2d)
    8gaussians     0.059 +- 0.007    0.057 +- 0.007     0.413 +- 0.036     0.0050
    checkerboard   0.176 +- 0.010    0.184 +- 0.010     0.483 +- 0.049     0.0175
    rings          0.898 +- 0.017    0.887 +- 0.017     1.128 +- 0.050     0.0124

score_sde with 400 RK4 steps (``kl_nats_ode_steps_check``, first 500 test samples; the
100-step value on the same samples in brackets): 8gaussians 0.054 (0.054), checkerboard
0.179 (0.178), rings 0.955 (0.954): the estimate has converged in the step count.

How diffusion compares with the flows (KL 0.005-0.018): at this budget (5000 steps, about
half the flows' 8000-10000) the score SDE and the DDPM are 10x worse than NSF on 8gaussians
and checkerboard and 70x worse on rings. The first evaluation integrated the ODE on a
uniform time grid from t = 1e-5, which cannot follow the ~1/t growth of the divergence near
0 for the std-0.02 modes: it overestimated log q and gave NEGATIVE KLs on 8gaussians
(-0.097 score_sde, -0.035 ddpm); the broad densities barely moved.
The samples agree with the numbers: 8gaussians and checkerboard samples sit on the modes
(checkerboard: 90% / 88% inside the support), rings samples are smeared between the rings
(mean data log p of samples -8.0 vs -2.9 for data). The DDPM's VLB is a loose upper
bound (0.3-0.5 nats above its ODE estimate), as expected of a T = 1000-term bound with one
noise draw per term. Nothing was tuned; longer training (``--steps 15000``) is the first
thing to try.
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
from genjax.data import synthetic
from genjax.diffusion import likelihood as lik
from genjax.diffusion import models as dif
from genjax.registry import diffusion as dif_specs
from genjax.results import shown_path, write_result
from genjax.train import fit

HERE = pathlib.Path(__file__).resolve().parent
#: where the flows' KLs on the same densities live (shown beside these at the end of a run, not copied)
FLOWS_RESULT = HERE / "results" / "flows_toy2d.json"

DENSITIES = ("8gaussians", "checkerboard", "rings")
MODELS = ("ddpm", "score_sde")


def get_config() -> dict:
    return {
        "seed": 0,
        "train_samples": 100_000,
        "test_samples": 2000,
        "batch_size": 256,
        "steps": 5000,
        "lr": 2e-3,
        "lr_schedule": "warmup (200 steps) then cosine decay to 0",
        "checkpoint_every": 1000,
        "models": {
            "ddpm": {"hidden": [128, 128, 128], "emb_dim": 64, "T": 1000, "schedule": "linear"},
            "score_sde": {"hidden": [128, 128, 128], "emb_dim": 64, "sde": "vp", "eps": 1e-5},
        },
        "ode_steps": 100,
        "ode_steps_check": 400,  # score_sde: the ODE estimate again with 4x the RK4 steps ...
        "ode_check_samples": 500,  # ... on the first 500 test samples (paired with the 100-step one)
        "pc_steps": 500,
        "num_plot_samples": 2000,
        "eval_batch": 1000,
    }


def smoke_config() -> dict:
    c = get_config()
    c.update(train_samples=2000, test_samples=64, batch_size=64, steps=20, checkpoint_every=10, ode_steps=2,
             ode_steps_check=4, ode_check_samples=32, pc_steps=4, num_plot_samples=64, eval_batch=64)
    c["models"] = {
        "ddpm": {"hidden": [16, 16], "emb_dim": 8, "T": 16, "schedule": "linear"},
        "score_sde": {"hidden": [16, 16], "emb_dim": 8, "sde": "vp", "eps": 1e-5},
    }
    return c


def build(name: str, cfg: dict):
    c = dict(cfg)
    c["hidden"] = tuple(c["hidden"])
    if name == "ddpm":
        return dif.ddpm_2d(**c)
    return dif.score_sde_2d(**c)


def ddpm_as_vp_score(model: dif.DDPM, params):
    """The DDPM eps network as a VP-SDE score: ``(score_fn, sde)``; see ``DDPM.vp_score``."""
    return model.vp_score(params)


def _batched(f, params, x, key, batch):
    return np.concatenate(
        [np.asarray(f(params, jax.random.fold_in(key, i), jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)]
    ).astype(np.float64)


def _kl(log_p, log_q) -> tuple[float, float]:
    d = log_p - log_q
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def run_one(density: str, name: str, config: dict, workdir: pathlib.Path, progress: bool) -> dict:
    run_dir = workdir / f"{density}_{name}"
    done = run_dir / "result.json"
    if done.is_file():  # finished earlier (an interrupted sweep re-run): keep its numbers
        return json.loads(done.read_text())
    toy = synthetic.get_toy_density(density)
    k_train, k_test = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config["seed"]), 2025))
    x_train = np.asarray(toy.sample(k_train, config["train_samples"]))
    x_test = np.asarray(toy.sample(k_test, config["test_samples"]))
    model = build(name, config["models"][name])
    steps = config["steps"]
    sched = optax.warmup_cosine_decay_schedule(0.0, config["lr"], min(200, steps // 10 + 1), steps)
    res = fit(model, x_train, num_steps=steps, batch_size=config["batch_size"], optimizer=optax.adam(sched),
              seed=config["seed"], out_dir=run_dir, log_every=max(1, steps // 20),
              checkpoint_every=config["checkpoint_every"], steps_per_dispatch=max(1, min(500, steps // 20)),
              resume=True, progress=progress)
    params = res.state.params
    train_records = [r for r in res.history if r.get("kind", "train") == "train" and "loss" in r]
    t0 = time.perf_counter()
    log_p = synthetic.exact_log_prob(toy, x_test)
    key = jax.random.PRNGKey(config["seed"] + 17)
    eb = config["eval_batch"]
    out = {"density": density, "model": name, "steps": steps}
    if name == "score_sde":
        f = jax.jit(lambda p, k, x: model.log_prob(p, k, x, num_steps=config["ode_steps"], trace="exact"))
        log_q = _batched(f, params, x_test, key, eb)
        out["kl_nats"], out["kl_stderr_nats"] = _kl(log_p, log_q)
        out["kl_kind"] = "probability-flow ODE estimate (RK4, exact trace)"
        out["test_nll_nats"] = float(-log_q.mean())
        # discretisation check: the same estimate with more RK4 steps (sharp modes need them)
        n2 = config["ode_steps_check"]
        f2 = jax.jit(lambda p, k, x: model.log_prob(p, k, x, num_steps=n2, trace="exact"))
        m = config["ode_check_samples"]
        out["kl_nats_ode_steps_check"], _ = _kl(log_p[:m], _batched(f2, params, x_test[:m], key, eb))
        out["kl_nats_same_samples"], _ = _kl(log_p[:m], log_q[:m])
        out["ode_steps_check"], out["ode_check_samples"] = n2, m
    else:
        f = jax.jit(lambda p, k, x: model.log_prob(p, k, x))
        log_q = _batched(f, params, x_test, key, eb)
        out["kl_vlb_upper_bound_nats"], out["kl_vlb_stderr_nats"] = _kl(log_p, log_q)
        out["test_nll_vlb_nats"] = float(-log_q.mean())
        score, sde = ddpm_as_vp_score(model, params)
        g = jax.jit(lambda p, k, x: lik.ode_log_prob(k, ddpm_as_vp_score(model, p)[0], x, sde=sde,
                                                     num_steps=config["ode_steps"], trace="exact"))
        log_q_ode = _batched(g, params, x_test, key, eb)
        out["kl_ode_nats"], out["kl_ode_stderr_nats"] = _kl(log_p, log_q_ode)
        out["kl_nats"], out["kl_stderr_nats"] = out["kl_ode_nats"], out["kl_ode_stderr_nats"]
        out["kl_kind"] = "VP-SDE probability-flow ODE estimate of the DDPM network (see ddpm_as_vp_score)"
        out["test_nll_nats"] = float(-log_q_ode.mean())
    out["true_entropy_nats"] = float(-log_p.mean())
    out["eval_time_s"] = round(time.perf_counter() - t0, 1)

    # samples and pictures
    t1 = time.perf_counter()
    sample_kw = {"steps": config["pc_steps"]} if name == "score_sde" else {}
    n_plot = config["num_plot_samples"]
    smp = jax.jit(lambda p, k: model.sample(p, k, n_plot, return_trajectory=True, **sample_kw))
    samples, traj = smp(params, jax.random.PRNGKey(1))
    samples, traj = np.asarray(samples), np.asarray(traj)
    lp_s = synthetic.exact_log_prob(toy, samples)
    inside = np.isfinite(lp_s)
    out["samples_finite"] = bool(np.all(np.isfinite(samples)))
    out["sampler"] = f"pc ({config['pc_steps']} steps)" if name == "score_sde" else f"ddpm ancestral ({model.num_steps} steps)"
    out["fraction_samples_in_support"] = float(inside.mean())
    out["data_log_prob_of_samples"] = float(lp_s[inside].mean()) if inside.any() else None
    out["data_log_prob_of_test"] = float(log_p.mean())
    out["sample_time_s"] = round(time.perf_counter() - t1, 1)
    workdir.mkdir(parents=True, exist_ok=True)
    viz.scatter_2d(samples, reference=x_test[:n_plot], marks=toy.modes).save(workdir / f"{density}_{name}_samples.png")
    dif_specs.trajectory_panels(traj[:, :1000], reference=x_test[:1000], marks=toy.modes).save(
        workdir / f"{density}_{name}_trajectory.png")
    out.update(
        final_train_loss=float(train_records[-1]["loss"]) if train_records else None,
        train_time_s=round(res.wall_time_s, 1),
        resumed_from_step=res.resumed_from,
        num_params=int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params))),
    )
    done.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _summary(results, densities, names, config, t0, workdir, smoke) -> dict:
    best = {}
    for d in densities:
        rs = [r for r in results if r["density"] == d]
        if rs:
            b = min(rs, key=lambda r: r["kl_nats"])
            best[d] = {"model": b["model"], "kl_nats": b["kl_nats"]}
    return {
        "experiment": "diffusion_toy2d",
        "script": "experiments/diffusion_toy2d.py",
        "complete": len(results) == len(densities) * len(names),
        "config": config,
        "kl_definition": "KL(p||q) = E_p[log p - log q], mean over test samples, closed-form log p "
                         "(genjax.data.synthetic.exact_log_prob; rings: the exact radial form rings_log_prob)",
        "log_q_conventions": {
            "score_sde.kl_nats": "ScoreSDE.log_prob: probability-flow ODE estimate, RK4, exact trace",
            "ddpm.kl_vlb_upper_bound_nats": "DDPM.log_prob = -VLB (one noise draw per step): upper bound on "
                                            "the KL of the discrete chain",
            "ddpm.kl_ode_nats": "DDPM eps network read as a VP-SDE score, probability-flow ODE estimate",
        },
        "results": results,
        "best": best,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "workdir": shown_path(workdir, HERE.parent),
    }


def flows_comparison(best: dict, path: pathlib.Path = FLOWS_RESULT) -> str:
    """A table of this run's best KL per density beside the best flow's, read from ``path``.

    Printed at the end of a run, never written into this experiment's JSON (each result
    file holds only what its own command measured). Says so when ``path`` is missing.
    """
    if not path.is_file():
        return f"(no flows result at {shown_path(path, HERE.parent)}: run python experiments/flows_toy2d.py to compare)"
    flows_best = json.loads(path.read_text()).get("best", {})
    lines = [f"best KL (nats): diffusion (this run) vs flows (from {shown_path(path, HERE.parent)})"]
    for d, b in best.items():
        f = flows_best.get(d)
        flow = f"{f['kl_nats']:.4f} ({f['flow']})" if f else "-"
        lines.append(f"  {d:<13} {b['kl_nats']:.4f} ({b['model']})   {flow}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--densities", default=",".join(DENSITIES))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--workdir", default=str(HERE / "checkpoints" / "diffusion_toy2d"))
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--steps", type=int, default=None,
                    help="override the pinned training steps (JSON diffusion_toy2d_steps<N>, workdir <workdir>_steps<N>)")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run with tiny nets (tests use it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive int, got {args.steps}")

    densities = [d for d in args.densities.split(",") if d]
    names = [m for m in args.models.split(",") if m]
    for d in densities:
        if d not in DENSITIES:
            raise ValueError(f"--densities: unknown density {d!r}; valid: {DENSITIES}")
    for m in names:
        if m not in MODELS:
            raise ValueError(f"--models: unknown model {m!r}; valid: {MODELS}")
    config = smoke_config() if args.smoke else get_config()
    name = "diffusion_toy2d"
    workdir = pathlib.Path(args.workdir)
    if args.steps is not None:
        config["steps"] = args.steps
        name += f"_steps{args.steps}"
        workdir = workdir.with_name(workdir.name + f"_steps{args.steps}")
    if args.smoke:
        name += "_smoke"
    elif set(densities) != set(DENSITIES) or set(names) != set(MODELS):
        name += "_partial"
    workdir.mkdir(parents=True, exist_ok=True)
    rd = pathlib.Path(args.results_dir)
    rd.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    results = []
    # score_sde first (its ODE likelihood is the headline), then ddpm; the JSON is rewritten
    # after every run so an interrupted sweep keeps what it finished
    for m in sorted(names, key=lambda n: n != "score_sde"):
        for d in densities:
            r = run_one(d, m, config, workdir, not args.no_progress)
            print(json.dumps(r), flush=True)
            results.append(r)
            out = _summary(results, densities, names, config, t0, workdir, args.smoke)
            write_result(rd / f"{name}.json", out, program="experiments/diffusion_toy2d.py",
                         argv=sys.argv[1:] if argv is None else argv)
    print(json.dumps(out["best"], indent=2))
    print(flows_comparison(out["best"]))
    return out


if __name__ == "__main__":
    main()
