"""``compare``: the chapter's comparison table of VAE, GAN, flow and diffusion, measured.

The seed chapter rates the four families on density p(x), quality, diversity,
stability and complexity as opinions. :func:`compare` trains one model per family on
the same data with the same budget, ``S`` seeds at once, and scores every family with
one evaluation path. This module is the experiment and its report: the registry builds
every model (:func:`genjax.registry.build_model`; :data:`MODELS` holds only compare's option
overrides of the registry's defaults).

* **Budget** = training examples seen (``steps * batch_size``, the same batch size for
  every family, so the same number of optimizer steps; a GAN step is one discriminator
  and one generator update on one batch of real examples). Examples seen is a property
  of the run, not of the machine: wall-clock budgets on a shared, loaded CPU would give
  each family whatever the other jobs left it. Steps and wall time are both recorded.
* **Seeds**: ``S`` seeds trained at once by the one trainer, :func:`genjax.train.fit`
  with ``seeds`` (train states stacked on a leading axis, the step under ``jax.vmap``).
  Seed ``i`` uses the key ``fold_in(PRNGKey(seed), i)``, so it equals that seed trained alone. A seed
  *diverged* when any step's loss or gradient was non-finite or its final parameters
  are; every metric is mean ± std (population) over the other seeds.
* **Likelihood** in nats and bits/dim on the same test examples, labelled by kind:
  exact (flow), IWAE bound (VAE), VLB (DDPM), ODE estimate (score SDE), none (GAN).
  Continuous densities are scored on uniformly dequantized data ``k/(L-1) -> (k+u)/L``
  (one draw per example, the same draw for every model; flows with ``data_levels`` do
  this draw inside ``log_prob`` with the same formula) and report
  ``bits/dim = nll/(D ln 2) + log2 L``; the DDPM VLB is a discrete likelihood of the
  grid image (``nll/(D ln 2)``). Both are upper bounds on the bits/dim of the L-level
  data, so the column compares like with like (see
  ``genjax.metrics.evaluation.likelihood_convention``: compare scores every family with the
  one evaluation path's parts, ``likelihood``, ``draw_samples`` and ``sample_metrics``).
* **Sample quality** on the domain classifier's features
  (:func:`genjax.metrics.get_classifier`): FID, KID, precision/recall, density/coverage,
  classifier score, class histogram; ``n`` samples against ``n`` test images, and a
  real-vs-real baseline of ``n`` vs ``n`` disjoint real images (test and train).
* **Complexity**: parameter count, training wall time, time per 1000 samples (compiled,
  seeds after the first), network evaluations per sample.

Writes ``report.md``, ``report.json``, ``samples_<family>.png``, ``samples_all.png`` and
``curves_<family>.png`` (the training curves of every seed, beside the samples in the report).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time
from typing import Any, Callable

import jax
import numpy as np

from genjax import _checks, registry
from genjax.nn.conv import num_params
from genjax.registry import network_evaluations
from genjax.results import write_result
from genjax.train import seed_keys

FAMILIES = ("vae", "gan", "flow", "diffusion")
FAMILY_TYPE = {"vae": "explicit", "gan": "implicit", "flow": "explicit", "diffusion": "hybrid"}
#: the model each family trains unless ``models`` says otherwise
DEFAULT_MODELS = {"vae": "vae", "gan": "gan", "flow": "realnvp-mlp", "diffusion": "ddpm-mlp"}
#: default budget (training examples seen per family) and evaluation sizes per data set
DEFAULT_BUDGET = {"digits": 256_000, "mnist": 1_920_000, "fashion-mnist": 1_920_000}
DEFAULT_NUM_SAMPLES = {"digits": 1000, "mnist": 2000, "fashion-mnist": 2000}
COMPARE_DATA = ("digits", "mnist", "fashion-mnist")


#: the registry's models compare may train (``models``), each with compare's option overrides
#: of the registry's defaults (``options`` goes over these)
MODELS: dict[str, dict] = {
    # a Gaussian decoder with learned variance, trained on dequantized data (the registry's
    # transform for a continuous decoder on images): a density on the same continuous space
    # as the flow's (a Bernoulli decoder would score binarized images, another quantity)
    "vae": {"likelihood": "gaussian_learned", "hidden": "256,128", "latent_dim": 16},
    "iwae": {"likelihood": "gaussian_learned", "hidden": "256,128", "latent_dim": 16},
    "gan": {},
    "dcgan": {},
    "wgan-gp": {},
    "realnvp": {},
    "glow": {},
    "ddpm": {"T": 200},
    "score-sde": {"sampler": "ode"},
    # MLP versions on flattened images: XLA:CPU convolutions made the conv flow and UNet
    # cost ~1 s per step of 64 8x8 digits on the shared 2-core machine
    "realnvp-mlp": {},
    "ddpm-mlp": {},
}
#: compare's family of each registry family
_FAMILY_OF_SPEC = {"vae": "vae", "gan": "gan", "flows": "flow", "diffusion": "diffusion"}


def family_of(name: str) -> str:
    """The family (one of :data:`FAMILIES`) of the model ``name`` of :data:`MODELS`."""
    return _FAMILY_OF_SPEC[registry.get_model_spec(name).family]


# ---------------------------------------------------------------------- training S seeds
def train_seeds(
    model,
    train_data: np.ndarray,
    keys,
    *,
    num_steps: int,
    batch_size: int,
    optimizer,
    transform=None,
    steps_per_dispatch: int = 100,
    on_chunk: Callable[[int], None] | None = None,
    history: list | None = None,
):
    """Trains one copy of ``model`` per key in ``keys`` at once: the one trainer,
    :func:`genjax.train.fit` with ``seeds=keys`` (states stacked, the step vmapped; seed
    ``i`` equals ``fit`` on ``keys[i]``), chunks of ``steps_per_dispatch`` steps, nothing
    written, non-finite updates applied and flagged per seed (``on_nonfinite="continue"``).

    ``history``, when given, is extended with ``fit``'s records (one per seed and chunk:
    mean loss and gradient norm of the chunk), what the report's curves are drawn from.

    Returns:
      ``(states, finite (S,) bool, losses (S, num_steps))``: the stacked final
      ``TrainState``; ``finite[i]`` is False when a step of seed ``i`` had a non-finite
      loss or gradient, or its final parameters are non-finite.
    """
    from genjax.train import fit

    losses, done = [], [0]

    def chunk(step, metrics):
        losses.append(np.asarray(metrics["loss"]))  # (K, S)
        if on_chunk is not None:
            on_chunk(step - done[0])
        done[0] = step

    result = fit(model, train_data, seeds=list(keys), num_steps=num_steps, batch_size=batch_size, optimizer=optimizer,
                 transform=transform, steps_per_dispatch=steps_per_dispatch, log_every=steps_per_dispatch,
                 checkpoint_every=None, on_nonfinite="continue", progress=False, on_chunk=chunk)
    if history is not None:
        history.extend(result.history)
    return result.state, ~np.asarray(result.diverged), np.concatenate(losses, axis=0).T


def seed_params(states, i: int):
    return jax.tree_util.tree_map(lambda a: a[i], states.params)


# ---------------------------------------------------------------------- evaluation
def _mean_std(values) -> dict:
    v = np.asarray([np.nan if x is None else x for x in values], np.float64)
    f = v[np.isfinite(v)]
    if not f.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(f.mean()), "std": float(f.std()), "n": int(f.size)}


SAMPLE_METRICS = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "classifier_score",
                  "classes_covered", "class_kl_to_uniform")


def _flatten_quality(q: dict) -> dict:
    """The report's metrics from a ``sample_quality`` dict or from
    :func:`genjax.metrics.evaluation.sample_metrics` (flat ``classes_covered``)."""
    hist = q.get("class_histogram")
    return {
        **{k: float(q[k]) for k in ("fid", "kid_mean", "precision", "recall", "density", "coverage", "classifier_score")},
        "classes_covered": float(hist["classes_covered"] if isinstance(hist, dict) else q["classes_covered"]),
        "class_kl_to_uniform": float(hist["kl_to_uniform"] if isinstance(hist, dict) else q["class_kl_to_uniform"]),
    }


def kid_description(n: int, *, subsets: int, subset_size: int = 1000) -> str:
    """What KID is in the report: ``subsets`` subsets of ``min(subset_size, n)``, or one
    value when those subsets would all be the whole ``n`` vs ``n`` sets."""
    m = min(subset_size, n)
    if m >= n:
        return (f"cubic polynomial kernel, unbiased MMD^2; one value on all {n} samples vs {n} test images "
                f"(subsets of min({subset_size}, n) = {n} would all be the whole sets, so there is no spread over "
                "subsets; the ± is over seeds)")
    return f"cubic polynomial kernel, unbiased MMD^2; mean over {subsets} random subsets of {m} of each set"


# ---------------------------------------------------------------------- compare
def _check_args(data, budget, seeds, families, models, batch_size, num_samples, iwae_samples, steps_per_dispatch):
    if data not in COMPARE_DATA:
        raise ValueError(f"data must be an image data set with a feature classifier, one of {list(COMPARE_DATA)}; got {data!r}")
    budget = _checks.positive_int("budget", budget)
    seeds = _checks.positive_int("seeds", seeds)
    batch_size = _checks.positive_int("batch_size", batch_size)
    if budget < batch_size:
        raise ValueError(f"budget must be at least one batch ({batch_size} examples), got {budget}")
    num_samples = _checks.positive_int("num_samples", num_samples)
    if num_samples < 8:
        raise ValueError(f"num_samples must be at least 8 (nearest-neighbour metrics), got {num_samples}")
    _checks.positive_int("iwae_samples", iwae_samples)
    _checks.positive_int("steps_per_dispatch", steps_per_dispatch)
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families:
        raise ValueError(f"families must name at least one of {list(FAMILIES)}")
    for f in families:
        if f not in FAMILIES:
            raise ValueError(f"unknown family {f!r} in families; valid choices: {', '.join(FAMILIES)}")
    if len(set(families)) != len(families):
        raise ValueError(f"families has duplicates: {list(families)}")
    chosen = dict(DEFAULT_MODELS)
    for fam, name in (models or {}).items():
        if fam not in FAMILIES:
            raise ValueError(f"models: unknown family {fam!r}; valid choices: {', '.join(FAMILIES)}")
        if name not in MODELS:
            raise ValueError(f"models: unknown model {name!r}; valid choices: {', '.join(sorted(MODELS))}")
        if family_of(name) != fam:
            raise ValueError(f"models: {name!r} is a {family_of(name)} model, not a {fam} model")
        chosen[fam] = name
    return budget, seeds, families, {f: chosen[f] for f in families}, batch_size, num_samples


def compare(
    data: str = "digits",
    *,
    budget: int | None = None,
    seeds: int = 3,
    out_dir: str | os.PathLike = "runs/compare-digits",
    families=FAMILIES,
    models: dict | None = None,
    options: dict | None = None,
    batch_size: int = 64,
    num_samples: int | None = None,
    iwae_samples: int = 1000,
    steps_per_dispatch: int = 200,
    seed: int = 0,
    data_dir=None,
    classifier_overrides: dict | None = None,
    kid_subsets: int = 100,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Trains one model per family on ``data`` with the same budget and scores them alike.

    Args:
      data: ``digits`` (default), ``mnist`` or ``fashion-mnist``.
      budget: training examples seen per family (default :data:`DEFAULT_BUDGET`);
        every family runs ``budget // batch_size`` steps of ``batch_size``.
      seeds: ``S`` seeds trained at once with ``jax.vmap``.
      out_dir: where ``report.md``, ``report.json`` and the PNGs go.
      families: subset of ``("vae", "gan", "flow", "diffusion")``.
      models: ``{family: model name}`` overriding :data:`DEFAULT_MODELS` (names in :data:`MODELS`).
      options: ``{model name: {option: value}}`` model options over compare's defaults.
      batch_size: examples per step for every family.
      num_samples: ``n`` generated samples per seed scored against ``n`` test images
        (capped at the test split's size; default :data:`DEFAULT_NUM_SAMPLES`).
      iwae_samples: importance samples of the VAE's likelihood bound.
      steps_per_dispatch: steps fused in one jitted chunk.
      seed: base seed (seed ``i`` trains from ``fold_in(PRNGKey(seed), i)``).
      data_dir: data / classifier cache directory.
      classifier_overrides: settings of the feature classifier (tests use tiny ones).
      kid_subsets: subsets of KID.
      progress: tqdm progress bar on stderr.
      command: the command line recorded at the top of the report.

    Returns:
      The report dict also written to ``report.json``.

    Raises:
      ValueError: bad arguments (before any training).
    """
    from genjax.metrics import features as feats
    from genjax.metrics.evaluation import draw_samples, likelihood, likelihood_convention, sample_metrics
    from genjax.metrics.sample_quality import real_vs_real_baseline

    budget = DEFAULT_BUDGET.get(data, 256_000) if budget is None else budget
    num_samples = DEFAULT_NUM_SAMPLES.get(data, 1000) if num_samples is None else num_samples
    budget, seeds, families, chosen, batch_size, num_samples = _check_args(
        data, budget, seeds, families, models, batch_size, num_samples, iwae_samples, steps_per_dispatch
    )
    for name in (options or {}):
        if name not in MODELS:
            raise ValueError(f"options: unknown model {name!r}; valid choices: {', '.join(sorted(MODELS))}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    cpu_all = time.process_time()

    bundle = registry.load_data(data, data_dir=data_dir, seed=seed)
    # the registry builds every model (errors before any work), with compare's overrides under ``options``
    built = {f: registry.build_model(chosen[f], bundle, {**MODELS[chosen[f]], **(options or {}).get(chosen[f], {})})
             for f in families}
    num_steps = budget // batch_size
    n_eval = min(num_samples, len(bundle.test), len(bundle.train))
    clf = feats.get_classifier(data, data_dir=data_dir, progress=progress, **(classifier_overrides or {}))
    real = bundle.test[:n_eval]
    q_settings = dict(kid_subsets=kid_subsets, kid_subset_size=1000, seed=seed)
    baseline = real_vs_real_baseline(np.concatenate([bundle.test[:n_eval], bundle.train[:n_eval]]), clf, **q_settings)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps * len(families), unit="step", dynamic_ncols=True, desc="compare")
    keys = seed_keys(seed, seeds)
    rows: dict[str, dict] = {}
    grids = {}
    curves: dict[str, list] = {}
    try:
        for fi, fam in enumerate(families):
            b = built[fam]
            if bar is not None:
                bar.set_description(f"train {b.spec.name} ({seeds} seeds)")
            t0 = time.perf_counter()
            curves[fam] = []
            states, finite, losses = train_seeds(
                b.model, bundle.train, keys, num_steps=num_steps, batch_size=batch_size, optimizer=b.optimizer,
                transform=b.transform, steps_per_dispatch=steps_per_dispatch,
                on_chunk=(lambda c: bar.update(c)) if bar is not None else None, history=curves[fam],
            )
            train_time = time.perf_counter() - t0
            if bar is not None:
                bar.set_description(f"evaluate {b.spec.name}")
            per_seed = []
            cache: dict = {}
            sample_times = []
            k_eval = jax.random.fold_in(jax.random.PRNGKey(seed), 10_000 + fi)
            for i in range(seeds):
                p = seed_params(states, i)
                rec: dict[str, Any] = {"seed": i, "diverged": not bool(finite[i]), "final_loss": float(losses[i, -1])}
                if finite[i]:
                    k_s, k_l = jax.random.split(jax.random.fold_in(k_eval, i))
                    ts = time.perf_counter()
                    x = draw_samples(b.model, p, k_s, n_eval, cache=cache)
                    dt = time.perf_counter() - ts
                    if i > 0 or seeds == 1:  # seed 0 pays the compilation
                        if seeds == 1:
                            ts = time.perf_counter()
                            draw_samples(b.model, p, k_s, n_eval, cache=cache)
                            dt = time.perf_counter() - ts
                        sample_times.append(1000.0 * dt / n_eval)
                    x = np.asarray(x, np.float32).reshape(n_eval, *bundle.shape)
                    # the one evaluation path's sample metrics, against the first n_eval test images
                    q = sample_metrics(x, bundle, classifier=clf, num_reference=n_eval, **q_settings)
                    rec["samples_finite"] = q["samples_finite"]
                    rec["fraction_outside_unit"] = q["fraction_outside_unit"]
                    if i == 0:
                        grids[fam] = np.clip(np.nan_to_num(x[:64], nan=0.0), 0.0, 1.0)
                    rec["quality"] = _flatten_quality(q)
                    rec["class_histogram"] = q["class_counts"]
                    # the same dequantization key for every family: fold_in(seed key, 1)
                    rec["likelihood"] = likelihood(
                        b.model, p, jax.random.fold_in(jax.random.PRNGKey(seed), 20_000 + i), bundle.test[:n_eval],
                        bundle, iwae_samples=iwae_samples,
                    )
                per_seed.append(rec)
            ok = [r for r in per_seed if not r["diverged"]]
            nfe, nfe_how = network_evaluations(b.model)
            lk = likelihood_convention(b.model, bundle)
            row = {
                "family": fam,
                "type": FAMILY_TYPE[fam],
                "model": b.spec.name,
                "options": b.options,
                "num_params": num_params(seed_params(states, 0)),
                "steps": num_steps,
                "batch_size": batch_size,
                "examples_seen": num_steps * batch_size,
                "train_time_s": round(train_time, 2),
                "train_time_per_seed_s": round(train_time / seeds, 2),
                "ms_per_1000_samples": None,
                "time_per_1000_samples_s": _mean_std(sample_times)["mean"],
                "network_evaluations_per_sample": nfe,
                "network_evaluations_how": nfe_how,
                "num_seeds": seeds,
                "diverged_seeds": int(sum(r["diverged"] for r in per_seed)),
                "likelihood_kind": lk[0],
                "likelihood_convention": lk[1],
                "nll_nats": _mean_std([r["likelihood"]["nll_nats"] for r in ok]) if lk[0] != "none" else "n/a",
                "bits_per_dim": _mean_std([r["likelihood"]["bits_per_dim"] for r in ok]) if lk[0] != "none" else "n/a",
                "likelihood_na_reason": lk[1] if lk[0] == "none" else None,
                "quality": {m: _mean_std([r["quality"][m] for r in ok]) for m in SAMPLE_METRICS},
                "per_seed": per_seed,
            }
            del row["ms_per_1000_samples"]
            rows[fam] = row
    finally:
        if bar is not None:
            bar.close()

    base_row = _flatten_quality(baseline)
    report = {
        "command": command or f"genjax.compare.compare({data!r}, budget={budget}, seeds={seeds})",
        "data": data,
        "data_shape": list(bundle.shape),
        "num_levels": bundle.num_levels,
        "num_train": int(len(bundle.train)),
        "budget": {
            "definition": "training examples seen per family (steps x batch_size, the same batch size for every "
            "family; a GAN step = one discriminator + one generator update on one real batch)",
            "examples": num_steps * batch_size,
            "steps": num_steps,
            "batch_size": batch_size,
            "why": "examples seen is a property of the run; a wall-clock budget on a shared, loaded CPU would "
            "depend on the other jobs. Wall time is recorded per family.",
        },
        "seeds": seeds,
        "seed": seed,
        "evaluation": {
            "num_samples": n_eval,
            "real_reference": f"the first {n_eval} test images",
            "baseline": f"real_vs_real_baseline: two disjoint random halves ({n_eval} each) of the first {n_eval} "
            f"test + first {n_eval} train images",
            "classifier": {"dataset": clf.dataset, "test_accuracy": float(clf.test_accuracy), "config_hash": clf.config_hash,
                           "feature_dim": clf.feature_dim},
            "kid": kid_description(n_eval, subsets=kid_subsets),
            "precision_recall_k": 3,
            "density_coverage_k": 5,
            "samples": "VAE: decoder mean E[x|z]; others: the model's default sampler; clipped to [0, 1] "
            "(fraction outside recorded per seed)",
            "iwae_samples": iwae_samples,
        },
        "families": rows,
        "baseline": {**base_row, "class_histogram": baseline["class_histogram"]["counts"]},
        "wall_time_s": round(time.perf_counter() - t_all, 1),
        "process_cpu_time_s": round(time.process_time() - cpu_all, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    report["files"] = _write_pictures(out, grids, bundle, real[:64], curves)
    # the one writer of results: adds "run" (command, commit, machine, library versions), atomically
    written = write_result(out / "report.json", json.loads(json.dumps(report, default=_json_default)), program="genjax",
                           argv=report["command"].split()[1:] if report["command"].startswith("genjax ") else None)
    report["run"] = written["run"]
    (out / "report.md").write_text(render_markdown(report))
    report["files"] += ["report.json", "report.md"]
    return report


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


# ---------------------------------------------------------------------- pictures
def _write_pictures(out: pathlib.Path, grids: dict, bundle, real: np.ndarray, curves: dict | None = None) -> list[str]:
    from PIL import Image, ImageDraw

    from genjax import viz
    scale = registry.image_scale(bundle)
    written, panels = [], []
    for name, x in [("real (test)", real)] + [(f, grids[f]) for f in grids]:
        img = viz.image_grid(x, ncol=8, scale=max(1, scale // 2))
        if name in grids:
            viz.save_image_grid(out / f"samples_{name}.png", x, ncol=8, scale=scale)
            written.append(f"samples_{name}.png")
        panels.append((name, img))
    if panels:
        w = sum(p.width for _, p in panels) + 10 * (len(panels) + 1)
        h = max(p.height for _, p in panels) + 30
        canvas = Image.new("RGB", (w, h), "white")
        draw = ImageDraw.Draw(canvas)
        x0 = 10
        for name, p in panels:
            draw.text((x0, 8), name, fill=(0, 0, 0))
            canvas.paste(p.convert("RGB"), (x0, 24))
            x0 += p.width + 10
        canvas.save(out / "samples_all.png")
        written.append("samples_all.png")
    for fam, records in (curves or {}).items():  # training curves, one line per seed (what fit draws)
        if records:
            viz.save_curves(out / f"curves_{fam}.png", records)
            written.append(f"curves_{fam}.png")
    return written


# ---------------------------------------------------------------------- markdown
def _pm(d, fmt="{:.3g}") -> str:
    if not isinstance(d, dict) or d.get("mean") is None:
        return "n/a"
    return f"{fmt.format(d['mean'])} ± {fmt.format(d['std'])}"


def render_markdown(r: dict) -> str:
    fams = r["families"]
    L = []
    L.append(f"# genjax compare — {r['data']} {tuple(r['data_shape'])}, {r['seeds']} seeds per family\n")
    L.append("Command:\n\n```\n" + r["command"] + "\n```\n")
    L.append(
        f"Budget: {r['budget']['examples']} training examples seen per family ({r['budget']['steps']} steps of "
        f"{r['budget']['batch_size']}). Wall time {r['wall_time_s']} s, CPU time of the process "
        f"{r['process_cpu_time_s']} s ({r['machine']}, {r['date']}).\n"
    )
    L.append("## The chapter's table, measured\n")
    L.append("Cells are mean ± std over the non-diverged seeds. Density: test bits/dim (lower is better) and its kind. "
             "Quality: FID on the digit classifier's features (lower is better) and precision. Diversity: recall, "
             "coverage, classes covered of 10. Stability: diverged seeds, std of FID across seeds. "
             "Complexity: parameters, training time (all seeds at once), time per 1000 samples, network "
             "evaluations per sample.\n")
    L.append("| Method | Type | Density p(x) | Quality | Diversity | Stability | Complexity |")
    L.append("|---|---|---|---|---|---|---|")
    b = r["baseline"]
    for f, row in fams.items():
        q = row["quality"]
        dens = "✗ none (GAN: no density)" if row["likelihood_kind"] == "none" else f"{_pm(row['bits_per_dim'], '{:.3f}')} bits/dim ({row['likelihood_kind']})"
        qual = f"FID {_pm(q['fid'])}; precision {_pm(q['precision'], '{:.2f}')}"
        div = f"recall {_pm(q['recall'], '{:.2f}')}; coverage {_pm(q['coverage'], '{:.2f}')}; classes {_pm(q['classes_covered'], '{:.1f}')}"
        fid_std = q["fid"]["std"]
        stab = f"{row['diverged_seeds']}/{row['num_seeds']} diverged; FID std {fid_std:.3g}" if fid_std is not None else f"{row['diverged_seeds']}/{row['num_seeds']} diverged"
        t1k = row["time_per_1000_samples_s"]
        comp = (f"{row['num_params']:,} params; train {row['train_time_s']:.0f} s; "
                f"{'n/a' if t1k is None else f'{t1k:.3g} s'} /1000 samples; {row['network_evaluations_per_sample']} NFE/sample")
        L.append(f"| **{f}** ({row['model']}) | {row['type']} | {dens} | {qual} | {div} | {stab} | {comp} |")
    L.append(f"| *real vs real* | data | — | FID {b['fid']:.3g}; precision {b['precision']:.2f} | recall {b['recall']:.2f}; "
             f"coverage {b['coverage']:.2f}; classes {b['classes_covered']:.0f} | — | — |")
    L.append("")
    L.append("## Every metric (mean ± std over seeds)\n")
    cols = ["nll (nats)", "bits/dim", *SAMPLE_METRICS]
    L.append("| row | " + " | ".join(cols) + " |")
    L.append("|---|" + "---|" * len(cols))
    for f, row in fams.items():
        q = row["quality"]
        L.append(f"| {f} ({row['model']}) | {_pm(row['nll_nats'], '{:.2f}')} | {_pm(row['bits_per_dim'], '{:.3f}')} | "
                 + " | ".join(_pm(q[m], '{:.4g}') for m in SAMPLE_METRICS) + " |")
    L.append("| real vs real | — | — | " + " | ".join(f"{b[m]:.4g}" for m in SAMPLE_METRICS) + " |")
    L.append("")
    L.append("| row | likelihood kind | params | steps | train s (all seeds) | s / 1000 samples | NFE / sample | diverged |")
    L.append("|---|---|---|---|---|---|---|---|")
    for f, row in fams.items():
        t1k = row["time_per_1000_samples_s"]
        L.append(f"| {f} ({row['model']}) | {row['likelihood_kind']} | {row['num_params']:,} | {row['steps']} | "
                 f"{row['train_time_s']:.1f} | {'n/a' if t1k is None else f'{t1k:.3g}'} | "
                 f"{row['network_evaluations_per_sample']} ({row['network_evaluations_how']}) | "
                 f"{row['diverged_seeds']}/{row['num_seeds']} |")
    L.append("")
    L.append("## How measured\n")
    ev = r["evaluation"]
    L.append(f"- **Budget**: {r['budget']['definition']}. Why: {r['budget']['why']}")
    L.append(f"- **Seeds**: {r['seeds']} train states stacked and trained under `jax.vmap` in one jitted `lax.scan` "
             "chunk; seed i starts from `fold_in(PRNGKey(seed), i)` exactly as `genjax.train.fit(seed=key)` would. "
             "Diverged = a non-finite loss/gradient at any step or non-finite final parameters.")
    L.append("- **Likelihood** (same test images for every family):")
    for f, row in fams.items():
        L.append(f"  - {f} ({row['model']}): {row['likelihood_kind']} — {row['likelihood_convention']}")
    L.append(f"- **Sample quality**: {ev['num_samples']} samples per seed vs {ev['real_reference']}, on the "
             f"penultimate features ({ev['classifier']['feature_dim']}-d) of the {ev['classifier']['dataset']} classifier "
             f"(test accuracy {ev['classifier']['test_accuracy']:.4f}, config {ev['classifier']['config_hash']}). "
             f"FID; KID ({ev['kid']}); precision/recall (k={ev['precision_recall_k']}); density/coverage "
             f"(k={ev['density_coverage_k']}); classifier score (Inception-score analogue, max 10); class histogram "
             f"(classes covered, KL to uniform). Samples: {ev['samples']}.")
    L.append(f"- **Baseline**: {ev['baseline']} — what 'as good as the data' looks like at this sample size.")
    L.append("- **Complexity**: parameters of one seed; training time = wall time of the vmapped run of all seeds to "
             "the reported (final) step, compilation included; sampling time per 1000 samples measured on compiled "
             "samplers (seeds after the first); network evaluations per sample of the default sampler.")
    L.append("- Models and options:")
    for f, row in fams.items():
        L.append(f"  - {f}: `{row['model']}` {json.dumps(row['options'], default=str)}")
    files = set(r.get("files", []))
    if any(f"samples_{f}.png" in files or f"curves_{f}.png" in files for f in fams):
        L.append("\n## Samples and training curves\n")
        L.append("Seed 0's samples beside every seed's training curves (loss and gradient norm per chunk, one line "
                 "per seed).\n")
        L.append("| family | samples | curves |\n| --- | --- | --- |")
        for f, row in fams.items():
            cell = lambda name, alt: f"![{alt}]({name})" if name in files else "—"
            L.append(f"| {f} ({row['model']}) | {cell(f'samples_{f}.png', f + ' samples')} | "
                     f"{cell(f'curves_{f}.png', f + ' curves')} |")
    return "\n".join(L) + "\n"
