"""``evaluation``: the likelihood evaluations of the CLI's image diffusion models on digits,
the former code path and the new one side by side in one run (issue 21, "Evaluation that a
user can wait for"), then sampling 64 digits from the UNet DDPM and the RealNVP train step.

- DDPM VLB bits/dim (``genjax train ddpm --data digits``: UNet, T = 1000) on the first
  ``N`` test digits. Former: ``jax.jit`` of ``model.log_prob`` made afresh per evaluation (so
  compiled on every call) with one network call per ``t`` (``t_chunk=1``: the former
  ``lax.scan``). New: :func:`genjax.metrics.evaluation.log_probs` (compiled once per model,
  reused) with ``t_chunk`` indices per call; and the stratified estimate from
  ``QUICK_VLB_TERMS`` terms (the end-of-run evaluation's).
- score-SDE ODE bits/dim (``genjax train score-sde --data digits``: UNet, VP SDE; 100 RK4
  steps, one Hutchinson probe). Former: the reverse-mode trace (``hutchinson_mode="vjp"``)
  in the jitted ``lax.scan``, compiled per call. New: the forward-mode trace (``"jvp"``),
  compiled once; and 25 RK4 steps (the end-of-run evaluation's).
- The RealNVP train step on digits at the CLI's defaults beside the former default width (64
  features: 14 GFLOP per step of 128 digits, about 3.4 steps/s on 2 cores, so the default
  5000 steps took ~25 min), with XLA's FLOP count of each step.
- The end-of-run evaluation's share of a default CLI run (goal <= 0.2): the quick evaluation
  ``genjax train`` runs after training, timed whole, over the default steps times the warm
  train-step time.

Each path is timed twice: ``first`` (a user's call: compilation included, a fresh function
for the former path) and ``warm`` (run only). Parameters are freshly initialised: the time
does not depend on what was learned, and each row's bits/dim shows the paths agree.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import EntryResult, Settings, Target, block, measure, ratio, time_once
from benchmarks.families import build, train_stepper
from genjax import registry
from genjax.metrics import evaluation
from genjax.registry import diffusion as dspec

NUM_EXAMPLES = 100
QUICK_EXAMPLES = 4
#: RK4 steps of the ODE estimate (the model's default)
ODE_STEPS = 100
#: --quick: a tiny UNet (the figures only show that it runs)
QUICK_UNET = {"base": 8, "channel_mult": "1"}
#: the RealNVP coupling width the CLI defaulted to before (14 GFLOP per step of 128 digits)
FORMER_REALNVP_FEATURES = 64


def _former(model, **kw):
    """The former evaluation's map: a fresh ``jax.jit`` per evaluation, batches of 100."""

    def run(params, key, x):
        f = jax.jit(lambda p, k, xb: model.log_prob(p, k, xb, **kw))
        return np.concatenate([np.asarray(f(params, jax.random.fold_in(key, i), jnp.asarray(x[s : s + 100])))
                               for i, s in enumerate(range(0, len(x), 100))])

    return run


def _new(model, **kw):
    return lambda params, key, x: evaluation.log_probs(model, params, key, x, batch=100, log_prob_kwargs=kw)


def _likelihood_rows(name: str, opts: dict, paths: dict, n: int) -> tuple[list[dict], dict]:
    data = registry.load_data("digits")
    model = registry.build_model(name, data, opts).model
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(data.train[:8]))
    x, offset = evaluation.likelihood_data(model, jax.random.PRNGKey(1), data.test[:n], data)
    d = int(np.prod(data.shape))
    rows, warm = [], {}
    for label, (make, kw) in paths.items():
        fn = make(model, **kw)
        first = time_once(lambda: fn(params, jax.random.PRNGKey(2), x))
        t0 = time.perf_counter()
        vals = fn(params, jax.random.PRNGKey(2), x)  # a host array: the work is done
        t0 = time.perf_counter() - t0
        bpd = float(-np.mean(vals) / (d * np.log(2)) + (np.log2(offset) if offset else 0.0))
        warm[label] = t0
        rows.append({"evaluation": f"{name} {label}", "examples": n, "first s": first, "warm s": t0,
                     "bits/dim": bpd, "vs former (warm)": None})
    for r, label in zip(rows, paths):
        r["vs former (warm)"] = ratio(warm["former"], warm[label])
    return rows, warm


def _end_of_run_share(name: str, opts: dict, settings: Settings) -> tuple[float, dict]:
    """The end-of-run evaluation of a CLI run (``spec.evaluate(quick=True)``, what ``genjax train``
    runs after training: compilation included, as a user pays it) against the training it follows
    at the CLI's default steps: the default train step's time (warm) times the default steps."""
    spec = registry.get_model_spec(name)
    data = registry.load_data("digits")
    built = registry.build_model(name, data, opts)
    model, steps = built.model, spec.defaults["steps"]
    batch = min(spec.defaults["batch_size"], 8) if settings.quick else spec.defaults["batch_size"]
    step_s = measure(train_stepper(model, data, built.optimizer, built.transform, batch), settings)["median_s"]
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(data.train[:8]))
    # the diffusion family's evaluation, as genjax train calls it after training (quick=True)
    t_eval = time_once(lambda: spec.evaluate(model, params, data, jax.random.PRNGKey(3),
                                             classifier=None if settings.quick else "auto", quick=True))
    train_s = step_s * steps
    share = t_eval / train_s
    return share, {"evaluation": f"{name} end-of-run evaluation (quick) vs {steps} default train steps",
                   "default steps": steps, "train s (projected)": train_s, "first s": t_eval,
                   "eval / train": share}


def _flops(stepper) -> float | None:
    """XLA's FLOP count of one compiled train step, in GFLOP (None where the backend gives none)."""
    try:
        cost = stepper.step.lower(stepper.state, stepper.batch).compile().cost_analysis()
    except Exception:  # noqa: BLE001 - the count is informative, never required
        return None
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    flops = cost.get("flops") if isinstance(cost, dict) else None
    return None if flops is None else float(flops) / 1e9


def run(settings: Settings) -> EntryResult:
    n = QUICK_EXAMPLES if settings.quick else NUM_EXAMPLES
    ode_steps = 5 if settings.quick else ODE_STEPS
    tiny = QUICK_UNET if settings.quick else {}
    rows, targets = [], []
    vlb_rows, vlb = _likelihood_rows("ddpm", {**tiny, **({"T": 60} if settings.quick else {})}, {
        "former": (_former, {"t_chunk": 1}),
        "new": (_new, {}),
        f"new, {dspec.QUICK_VLB_TERMS} strata": (_new, {"num_terms": dspec.QUICK_VLB_TERMS}),
    }, n)
    ode_rows, ode = _likelihood_rows("score-sde", {"sampler": "ode", **tiny}, {
        "former": (_former, {"hutchinson_mode": "vjp", "num_steps": ode_steps}),
        "new": (_new, {"num_steps": ode_steps}),
        f"new, {dspec.QUICK_ODE_STEPS} steps": (_new, {"num_steps": min(ode_steps, dspec.QUICK_ODE_STEPS)}),
    }, n)
    rows += vlb_rows + ode_rows
    targets.append(Target(f"DDPM VLB on {n} digits, former/new (same estimate)", ratio(vlb["former"], vlb["new"]), 10.0))
    targets.append(Target(f"score-SDE ODE on {n} digits, former/new (same estimate)", ratio(ode["former"], ode["new"]), 10.0))
    # the same-estimate paths do the same FLOPs (1000 UNet calls per digit for the bound): on CPU the
    # 10x is reached only by the cheaper estimates the end-of-run evaluation uses, said as such
    strata, short = f"new, {dspec.QUICK_VLB_TERMS} strata", f"new, {dspec.QUICK_ODE_STEPS} steps"
    targets.append(Target(f"DDPM VLB on {n} digits, former / {dspec.QUICK_VLB_TERMS}-term stratified estimate "
                          "(unbiased, not the same numbers)", ratio(vlb["former"], vlb[strata]), 10.0))
    targets.append(Target(f"score-SDE ODE on {n} digits, former / {min(ode_steps, dspec.QUICK_ODE_STEPS)}-step "
                          "estimate (not the same numbers)", ratio(ode["former"], ode[short]), 10.0))

    # sampling 64 digits from the UNet DDPM (its default ancestral sampler, 1000 steps) and the few-step solver
    data = registry.load_data("digits")
    model = registry.build_model("ddpm", data, {**tiny, **({"T": 60} if settings.quick else {})}).model
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(data.train[:8]))
    num = 8 if settings.quick else 64
    for sampler in ("ddpm", dspec.QUICK_SAMPLER):
        f = jax.jit(lambda p, k, s=sampler: model.sample(p, k, num, sampler=s))
        block(f(params, jax.random.PRNGKey(0)))
        t = time_once(lambda: f(params, jax.random.PRNGKey(1)))
        rows.append({"evaluation": f"ddpm sample {num} digits, {sampler} ({model.sampler_nfe(sampler)} NFE)",
                     "examples": num, "warm s": t})

    # the end-of-run evaluation of `genjax train ddpm|score-sde --data digits` against its training
    for name, opts in (("ddpm", {}), ("score-sde", {"sampler": "ode"})):
        share, row = _end_of_run_share(name, {**tiny, **opts, **({"T": 60} if settings.quick and name == "ddpm" else {})},
                                       settings)
        rows.append(row)
        targets.append(Target(f"{name} end-of-run evaluation / default training ({row['default steps']} steps)",
                              share, 0.2, unit="", higher_is_better=False))

    # the RealNVP train step on digits: the CLI's default model and batch, and the former default width
    model, data, tx, transform, batch = build("realnvp", {})
    batch = min(batch, 8) if settings.quick else batch
    former = registry.build_model("realnvp", data, {"features": FORMER_REALNVP_FEATURES})
    steps = {}
    for label, (m, o, tr) in {"default": (model, tx, transform),
                              f"features {FORMER_REALNVP_FEATURES} (former default)": (former.model, former.optimizer,
                                                                                      former.transform)}.items():
        stepper = train_stepper(m, data, o, tr, batch)
        flops = _flops(stepper)
        t = measure(stepper, settings)["median_s"]
        steps[label] = t
        rows.append({"evaluation": f"realnvp train step, digits, batch {batch}, {label}", "steps/s": 1.0 / t,
                     "warm s": t, "GFLOP/step": flops})
    former_s = steps[f"features {FORMER_REALNVP_FEATURES} (former default)"]
    targets.append(Target("realnvp step on digits, former default / default", ratio(former_s, steps["default"]), 2.0))
    notes = [f"UNet DDPM / score SDE at the CLI defaults on digits (8x8), params freshly initialised; {n} test digits; "
             "'first' includes compilation (the former path compiles on every evaluation), 'warm' does not",
             "the stratified VLB and the 25-step ODE are cheaper estimates (the end-of-run evaluation's), "
             "not the same numbers: their bits/dim show how far they land",
             "end-of-run share: the quick evaluation `genjax train` runs after training (compilation included) "
             "over the default steps times the warm train-step time (a projection: no full training is run)"]
    return EntryResult("evaluation", "likelihood evaluation: former vs new code path; DDPM sampling; RealNVP step",
                       rows, targets, notes)
