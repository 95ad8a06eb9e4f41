"""``genjax compare --data mnist-captions``: the text-to-image table, measured.

Three ways to draw a digit from words, trained on the same captioned data with the same
budget and scored by the same functions:

* **class-conditional pixel DDPM with CFG** (the registry's ``ddpm --num-classes 10``): the
  baseline; its condition is the prompt's digit label, so it has no attribute or pair figures.
* **latent diffusion** (``ldm``): the text-conditioned DDPM on the autoencoder's latents,
  cross-attending to the frozen CLIP's token states.
* **unCLIP** (``unclip``): the diffusion prior (caption -> CLIP image embedding) and the latent
  decoder conditioned on that embedding.

The CLIP and the autoencoder are trained **once** (the ``ldm`` spec's front stages,
:func:`genjax.registry.ldm.front_stages`) and shared by every model and seed: ``ldm`` and
``unclip`` are built on them (``spec.stages(..., front=...)``), the baseline is scored by that
CLIP. Each model's *generative* stages are trained ``S`` times (seeds
``fold_in(PRNGKey(seed), i)``) with :func:`genjax.train.fit_stages` (the baseline with
:func:`genjax.train.fit`), so every figure is mean ± std over seeds.

* **Budget** = training examples seen by each model's image diffusion network (steps x batch
  size, the same for all three: the baseline's UNet, ldm's UNet, unCLIP's decoder); unCLIP's prior
  trains as many steps of the same batch size on (caption, image embedding) pairs besides.
* **Figures** (:func:`genjax.registry.ldm.score_samples`): on the attribute-free digit prompts
  FID / precision / recall on the domain classifier's features, prompt accuracy, CLIP score and
  R-precision (by the shared CLIP); attribute accuracy on the attribute prompts; held-out pair
  accuracy on ``mnist-pairs`` (a second shared CLIP and autoencoder, the same models and
  seeds on 28x56 pairs; ``pairs=False`` skips it and the cell says why).
* **Complexity**: parameters (trained / total with the frozen CLIP and autoencoder), training
  time of the generative stages per seed, time per sample (compiled samplers), network
  evaluations per sample (a guided call counts 2: the conditional and the null branch).

Writes ``report.md``, ``report.json`` (:func:`genjax.results.write_result`) and
``samples_prompts.png`` (the same prompts, one row per model) to ``out_dir``.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time
from typing import Any

import jax
import numpy as np

from genjax import _checks, registry, viz
from genjax.compare import _json_default, _mean_std
from genjax.data import captions as caption_data
from genjax.metrics import features as feats
from genjax.metrics import text_to_image as t2i
from genjax.metrics.evaluation import draw_samples
from genjax.nn.conv import num_params
from genjax.registry import ldm as ldm_registry
from genjax.results import write_result
from genjax.train import fit, fit_stages, seed_keys

#: the captioned data sets the table takes, and the pairs set of each (held-out pair accuracy)
T2I_DATA = ("digits-captions", "mnist-captions", "fashion-mnist-captions")
PAIRS = {"mnist-captions": "mnist-pairs"}
ROWS = ("ddpm-cfg", "ldm", "unclip")
ROW_TITLE = {"ddpm-cfg": "class-conditional pixel DDPM + CFG (labels)", "ldm": "latent diffusion (ldm)",
             "unclip": "unCLIP (prior + decoder)"}
#: the default run of each data set: what a user can wait for on 2 CPU cores (README). ``steps``
#: of batch ``batch_size`` for each model's diffusion network; the front (CLIP, autoencoder)
#: trained once; evaluation prompts per digit / per (digit, attribute, bin) / per pair; DDIM steps.
SETTINGS: dict[str, dict[str, Any]] = {
    "digits-captions": dict(size="small", steps=400, batch_size=64, clip_steps=400, ae_steps=600, per_digit=30,
                            per_attribute=5, per_pair=10, sampler_steps=25, guidance=3.0, feature_weight=1.0),
    "mnist-captions": dict(size="small", steps=400, batch_size=64, clip_steps=500, ae_steps=800, per_digit=30,
                           per_attribute=5, per_pair=10, sampler_steps=25, guidance=3.0, feature_weight=1.0),
    "fashion-mnist-captions": dict(size="small", steps=400, batch_size=64, clip_steps=500, ae_steps=800, per_digit=30,
                                   per_attribute=5, per_pair=10, sampler_steps=25, guidance=3.0, feature_weight=1.0),
}
DEFAULT_SEEDS = 2
#: EMA of every model's generative stages (as the latent diffusion experiment trains)
EMA_DECAY = 0.995
_CHUNK = 250


def _check_args(data, budget, seeds, batch_size, settings: dict, pairs: bool) -> dict:
    if data == "mnist-pairs":
        raise ValueError("data: mnist-pairs is the pairs part of mnist-captions' table (held-out pair accuracy): "
                         "use --data mnist-captions")
    if data not in T2I_DATA:
        raise ValueError(f"data must be a captioned image set for the text-to-image table, one of {list(T2I_DATA)}; "
                         f"got {data!r} (it has no captions)")
    unknown = sorted(set(settings) - set(SETTINGS[data]))
    if unknown:
        raise ValueError(f"settings: unknown keys {unknown}; known: {sorted(SETTINGS[data])}")
    s = {**SETTINGS[data], **settings}
    if batch_size is not None:
        s["batch_size"] = _checks.positive_int("batch_size", batch_size)
    if budget is not None:
        budget = _checks.positive_int("budget", budget)
        if budget < s["batch_size"]:
            raise ValueError(f"budget must be at least one batch ({s['batch_size']} examples), got {budget}")
        s["steps"] = budget // s["batch_size"]
    s["seeds"] = _checks.positive_int("seeds", seeds)
    for k in ("steps", "batch_size", "clip_steps", "ae_steps", "per_digit", "per_pair", "sampler_steps"):
        _checks.positive_int(k, s[k])
    _checks.nonneg_int("per_attribute", s["per_attribute"])
    _checks.one_of("size", s["size"], tuple(ldm_registry.SIZES))
    if not isinstance(pairs, bool):
        raise TypeError(f"pairs must be a bool, got {pairs!r}")
    return s


# ---------------------------------------------------------------------- training
def _opts(spec, s: dict, **extra) -> dict:
    given = {"size": s["size"], "clip_steps": s["clip_steps"], "ae_steps": s["ae_steps"],
             "feature_weight": s["feature_weight"], **extra}
    return registry.resolve_options(spec, {k: v for k, v in given.items() if k in spec.options})


def _config(opts: dict, s: dict) -> dict:
    """A ``genjax train``-style config of a staged spec: the budget, the shared EMA, no checkpoints."""
    k = min(100, s["steps"])
    return {"steps": s["steps"], "batch_size": s["batch_size"], "lr": 3e-4, "ema_decay": EMA_DECAY, "options": opts,
            "log_every": k, "steps_per_dispatch": k, "on_nonfinite": "continue"}


def train_front(data, s: dict, *, seed: int, data_dir=None, progress: bool = False) -> tuple[ldm_registry.Front, float]:
    """The shared CLIP and autoencoder of ``data`` (the ``ldm`` spec's front stages, trained once):
    ``(Front with their parameters, seconds)``."""
    spec = registry.get_model_spec("ldm")
    opts = _opts(spec, s)
    front = ldm_registry.front_stages(data, _config(opts, s), data_dir=data_dir, latent=True)
    t0 = time.perf_counter()
    res = fit_stages(front.stages, spec.train_data(data, opts), seed=seed, progress=progress)
    return (ldm_registry.Front([], front.clip_model, res.params["clip"], front.autoencoder, res.params["autoencoder"]),
            time.perf_counter() - t0)


def train_staged(name: str, data, front, s: dict, key, *, data_dir=None, progress: bool = False) -> dict:
    """One seed of ``name``'s (``ldm`` / ``unclip``) generative stages on the shared ``front``."""
    spec = registry.get_model_spec(name)
    extra = {"prior_steps": s["steps"], "prior_batch": s["batch_size"]} if name == "unclip" else {}
    opts = _opts(spec, s, **extra)
    stages = spec.stages(data, _config(opts, s), data_dir=data_dir, front=front)
    res = fit_stages(stages, spec.train_data(data, opts), seed=key, progress=progress)
    last = stages[-1].name
    trained = sum(num_params(res.params[st.name]) for st in stages)
    fits = [res.results[st.name] for st in stages]
    return {"model": res.models[last], "params": res.params[last], "trained_params": trained,
            "train_time_s": sum(r.train_time_s for r in fits), "diverged": any(bool(r.diverged) for r in fits),
            "final_loss": _last_loss(fits[-1].history)}


def train_baseline(data, s: dict, key, *, progress: bool = False) -> dict:
    """One seed of the class-conditional pixel DDPM (the registry's ``ddpm --num-classes 10``, the
    pixel UNet of the pipelines' size), trained by :func:`genjax.train.fit`."""
    spec = registry.get_model_spec("ddpm")
    size = ldm_registry.SIZES[s["size"]]
    opts = {"num_classes": 10, "base": size["pixel_base"], "channel_mult": ",".join(map(str, size["pixel_mult"])),
            "num_res_blocks": size["res"], "T": size["T"], "sampler": "ddim"}
    b = registry.build_model("ddpm", data, opts)
    k = min(100, s["steps"])
    r = fit(b.model, spec.train_data(data, b.options), num_steps=s["steps"], batch_size=s["batch_size"],
            optimizer=ldm_registry._optimizer({"steps": s["steps"], "lr": 3e-4}), seed=key, transform=b.transform,
            ema_decay=EMA_DECAY, steps_per_dispatch=k, log_every=k, checkpoint_every=None, on_nonfinite="continue",
            progress=progress)
    params = r.state.ema_params if r.state.ema_params is not None else r.state.params
    return {"model": b.model, "params": params, "trained_params": num_params(params), "train_time_s": r.train_time_s,
            "diverged": bool(r.diverged), "final_loss": _last_loss(r.history)}


def _last_loss(history) -> float | None:
    losses = [h["loss"] for h in history if h.get("kind") == "train"]
    return float(losses[-1]) if losses else None


# ---------------------------------------------------------------------- sampling and scoring
def _cond(model, ps) -> np.ndarray:
    """The condition of each prompt: caption tokens, or the prompt's label for a label model."""
    if model.condition.kind == "labels":
        return np.asarray(ps.labels, np.int32)
    return ldm_registry.prompt_tokens(model, ps.prompts)


def draw_timed(model, params, ps, key, sample_kwargs: dict, *, chunk: int = _CHUNK) -> tuple[np.ndarray, float]:
    """One sample per prompt of ``ps`` in [0, 1] and the seconds per sample of the compiled sampler
    (timed on the full chunks after the first, which compiles; with one chunk, on a redraw of it)."""
    cond, cache, n = _cond(model, ps), {}, len(ps)
    draw = lambda lo, hi: draw_samples(model, params, jax.random.fold_in(key, lo), hi - lo, cond=cond[lo:hi],
                                       chunk=chunk, cache=cache, sample_kwargs=sample_kwargs)
    first = min(chunk, n)
    parts = [draw(0, first)]
    full = first + (n - first) // chunk * chunk
    t0 = time.perf_counter()
    if full > first:
        parts.append(draw(first, full))
        per = (time.perf_counter() - t0) / (full - first)
    else:
        draw(0, first)
        per = (time.perf_counter() - t0) / first
    if full < n:
        parts.append(draw(full, n))
    return np.clip(np.nan_to_num(np.concatenate(parts).astype(np.float32), nan=0.0), 0.0, 1.0), per


def network_evaluations(model, s: dict) -> tuple[int, str]:
    """Network evaluations per sample at the table's sampler (DDIM ``sampler_steps``, guided: each
    guided step counts 2, the conditional and the null branch of one batched call)."""
    steps = s["sampler_steps"]
    if hasattr(model, "prior"):  # unCLIP: the prior's candidates, then the decoder
        ps_ = model.prior_sampler
        prior_steps = model.prior.sampler_nfe(ps_.get("sampler"), ps_.get("steps"))
        g = 2 if model.prior_guidance else 1
        dec = model.decoder.diffusion.sampler_nfe("ddim", steps)
        n = prior_steps * model.num_candidates * g + 2 * dec
        return n, (f"prior {prior_steps} DDIM steps x {model.num_candidates} candidates x {g} + decoder {dec} DDIM "
                   "steps x 2 (guided), then one autoencoder decode")
    diffusion = getattr(model, "diffusion", model)
    dec = diffusion.sampler_nfe("ddim", steps)
    tail = ", then one autoencoder decode" if diffusion is not model else ""
    return 2 * dec, f"{dec} DDIM steps x 2 (guided){tail}"


def score_seed(row: str, model, params, data, s: dict, key, *, clf, clip) -> dict:
    """The figures of one trained model on ``data``'s digit and attribute prompts."""
    ps = t2i.prompt_set(data.name, per_digit=s["per_digit"], per_attribute=s["per_attribute"])
    kw = {"guidance": s["guidance"], "sampler": "ddim", "steps": s["sampler_steps"]}
    k_draw, k_d, k_a = jax.random.split(key, 3)
    x, per_sample = draw_timed(model, params, ps, k_draw, kw)
    plain = np.array([a is None for a in ps.attribute])
    digits = ldm_registry.score_samples(model, data, ps.subset(plain), x[plain], k_d, classifier=clf, clip=clip)
    out = {k: digits.get(k) for k in ("fid", "precision", "recall", "prompt_acc", "clip_score", "r_precision")}
    out["time_per_sample_s"] = per_sample
    out["attribute_acc"] = None
    if row != "ddpm-cfg" and (~plain).any():
        attr = ldm_registry.score_samples(model, data, ps.subset(~plain), x[~plain], k_a, classifier=clf, clip=clip)
        out["attribute_acc"] = attr["attribute_acc"]
    return {"scores": out, "picture": x[np.flatnonzero(plain)[:: s["per_digit"]]]}


def score_pairs(model, params, data, s: dict, key, *, clf) -> float | None:
    """Held-out pair accuracy: both digits right and in order, on the 10 never-seen ordered pairs."""
    ps = t2i.prompt_set(data.name, per_pair=s["per_pair"], seen_pairs=False)
    kw = {"guidance": s["guidance"], "sampler": "ddim", "steps": s["sampler_steps"]}
    k_draw, k_s = jax.random.split(key)
    x, _ = draw_timed(model, params, ps, k_draw, kw)
    return ldm_registry.score_samples(model, data, ps, x, k_s, classifier=clf)["held_out_acc"]


# ---------------------------------------------------------------------- the table
def compare_t2i(
    data: str = "mnist-captions",
    *,
    budget: int | None = None,
    seeds: int = DEFAULT_SEEDS,
    batch_size: int | None = None,
    out_dir=None,
    pairs: bool = True,
    seed: int = 0,
    data_dir=None,
    settings: dict | None = None,
    classifier_overrides: dict | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Trains the three text-to-image rows on ``data`` and writes the table.

    Args:
      data: a captioned image set (:data:`T2I_DATA`).
      budget: training examples seen by each model's diffusion network (steps = budget //
        batch size; default: :data:`SETTINGS`' steps).
      seeds: seeds of every model's generative stages (the CLIP and autoencoder: one, shared).
      batch_size: examples per step, the same for every model (default :data:`SETTINGS`').
      out_dir: where ``report.md``, ``report.json`` and the picture go (default
        ``runs/compare-<data>``).
      pairs: also train on the pairs set (:data:`PAIRS`) for held-out pair accuracy.
      seed: first seed.
      data_dir: data files and the classifier cache.
      settings: overrides of :data:`SETTINGS` (size, step counts, evaluation prompts; tests).
      classifier_overrides: settings of the domain classifier that scores (tests use tiny ones).
      progress: progress bars of the training runs.
      command: the command line recorded in the report.

    Returns:
      The report (as written to ``report.json``).

    Raises:
      ValueError: data without captions, a bad budget / seeds / batch size / setting (before any work).
    """
    s = _check_args(data, budget, seeds, batch_size, dict(settings or {}), pairs)
    seeds = s["seeds"]
    out = pathlib.Path(out_dir if out_dir is not None else f"runs/compare-{data}")
    out.mkdir(parents=True, exist_ok=True)
    t_all, cpu_all = time.perf_counter(), time.process_time()
    bundle = registry.load_data(data, data_dir=data_dir, seed=seed)
    clf = feats.get_classifier(caption_data.source_dataset(data), data_dir=data_dir, progress=False,
                               **(classifier_overrides or {}))
    keys = seed_keys(seed, seeds)
    front, front_s = train_front(bundle, s, seed=seed, data_dir=data_dir, progress=progress)
    clip = (front.clip_model, front.clip_params)
    frozen_params = num_params(front.clip_params) + num_params(front.ae_params)
    pairs_name = PAIRS.get(data) if pairs else None
    pairs_front = pairs_bundle = None
    if pairs_name is not None:
        pairs_bundle = registry.load_data(pairs_name, data_dir=data_dir, seed=seed)
        pairs_front, pairs_front_s = train_front(pairs_bundle, s, seed=seed, data_dir=data_dir, progress=progress)
    rows: dict[str, dict] = {}
    pictures: dict[str, np.ndarray] = {}
    for row in ROWS:
        per_seed = []
        for i, key in enumerate(keys):
            t = (train_baseline(bundle, s, key, progress=progress) if row == "ddpm-cfg"
                 else train_staged(row, bundle, front, s, key, data_dir=data_dir, progress=progress))
            rec: dict[str, Any] = {"seed": i, "diverged": t["diverged"], "train_time_s": t["train_time_s"],
                                   "final_loss": t["final_loss"]}
            if not t["diverged"]:
                sc = score_seed(row, t["model"], t["params"], bundle, s, jax.random.fold_in(keys[i], 10_000),
                                clf=clf, clip=clip)
                rec.update(sc["scores"])
                if i == 0:
                    pictures[row] = sc["picture"]
                if row != "ddpm-cfg" and pairs_front is not None:
                    p = train_staged(row, pairs_bundle, pairs_front, s, key, data_dir=data_dir, progress=progress)
                    rec["pairs_train_time_s"] = p["train_time_s"]
                    rec["held_out_pair_acc"] = (None if p["diverged"] else
                                                score_pairs(p["model"], p["params"], pairs_bundle, s,
                                                            jax.random.fold_in(keys[i], 20_000), clf=clf))
            per_seed.append(rec)
        nfe, how = network_evaluations(t["model"], s)
        frozen = 0 if row == "ddpm-cfg" else frozen_params
        rows[row] = {
            "title": ROW_TITLE[row],
            "model": "ddpm --num-classes 10" if row == "ddpm-cfg" else row,
            "params_trained": t["trained_params"],
            "params_total": t["trained_params"] + frozen,
            "network_evaluations_per_sample": nfe,
            "network_evaluations_how": how,
            "num_seeds": seeds,
            "diverged_seeds": int(sum(r["diverged"] for r in per_seed)),
            "figures": {m: _mean_std([r.get(m) for r in per_seed if not r["diverged"]]) for m in FIGURES},
            "na": _na(row, pairs_name, data, pairs),
            "per_seed": per_seed,
        }
    report = {
        "command": command or f"genjax.compare_t2i.compare_t2i({data!r}, seeds={seeds})",
        "data": data,
        "data_shape": list(bundle.shape),
        "pairs_data": pairs_name,
        "seeds": seeds,
        "seed": seed,
        "settings": s,
        "budget": {"examples": s["steps"] * s["batch_size"], "steps": s["steps"], "batch_size": s["batch_size"],
                   "definition": "training examples seen by each model's image diffusion network (the baseline's "
                                 "UNet, ldm's UNet, unCLIP's decoder); unCLIP's prior trains as many steps of the "
                                 "same batch size on (caption, CLIP image embedding) pairs besides"},
        "shared": {"definition": "the CLIP (text and image towers) and the KL autoencoder are trained once per data "
                                 "set (the ldm spec's front stages) and shared by every model and seed; the baseline "
                                 "does not use them to sample, only its CLIP score is the shared CLIP's",
                   "train_time_s": round(front_s, 2),
                   "pairs_train_time_s": round(pairs_front_s, 2) if pairs_name else None,
                   "clip_params": num_params(front.clip_params), "autoencoder_params": num_params(front.ae_params)},
        "evaluation": {
            "prompts": f"{s['per_digit']} attribute-free prompts per digit (FID, precision, recall, prompt accuracy, "
                       f"CLIP score, R-precision), {s['per_attribute']} per (digit, attribute, outer tercile) "
                       f"(attribute accuracy), {s['per_pair']} per held-out pair (pairs); "
                       "genjax.metrics.text_to_image.prompt_set",
            "sampler": f"DDIM, {s['sampler_steps']} steps, classifier-free guidance {s['guidance']} (unCLIP's prior: "
                       "its own DDIM steps, 2 candidates)",
            "classifier": {"dataset": clf.dataset, "test_accuracy": float(clf.test_accuracy)},
            "fid_reference": "the test split, on the domain classifier's features",
        },
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - t_all, 1),
        "process_cpu_time_s": round(time.process_time() - cpu_all, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    viz.labelled_rows([(ROW_TITLE[r], pictures[r]) for r in ROWS if r in pictures], out / "samples_prompts.png",
                      col_labels=_first_prompts(data, s), scale=max(1, registry.image_scale(bundle) // 2), label_width=270)
    report["files"] = ["samples_prompts.png", "report.json", "report.md"]
    written = write_result(out / "report.json", json.loads(json.dumps(report, default=_json_default)), program="genjax",
                           argv=report["command"].split()[1:] if report["command"].startswith("genjax ") else None)
    report["run"] = written["run"]
    (out / "report.md").write_text(render_markdown(report))
    return report


#: the table's figures (mean ± std over the non-diverged seeds)
FIGURES = ("fid", "precision", "recall", "prompt_acc", "attribute_acc", "held_out_pair_acc", "clip_score",
           "r_precision", "train_time_s", "time_per_sample_s")


def _first_prompts(data: str, s: dict) -> list[str]:
    """The picture's column titles: the first digit prompt of each class (what was drawn)."""
    ps = t2i.prompt_set(data, per_digit=s["per_digit"], per_attribute=0)
    return list(ps.prompts[:: s["per_digit"]])


def _na(row: str, pairs_name, data: str, pairs: bool) -> dict:
    """Why a cell is empty."""
    na = {}
    if row == "ddpm-cfg":
        na["attribute_acc"] = "its condition is the digit label: a prompt's attribute cannot be asked"
        na["held_out_pair_acc"] = "its condition is one digit label: a pair of digits cannot be asked"
    elif not pairs:
        na["held_out_pair_acc"] = "not measured: pairs=False (--no-pairs)"
    elif pairs_name is None:
        na["held_out_pair_acc"] = f"{data} has no pairs set (mnist-pairs pairs MNIST digits: --data mnist-captions)"
    return na


def _cell(row: dict, m: str, fmt: str = "{:.3g}") -> str:
    if m in row["na"]:
        return "n/a"
    d = row["figures"][m]
    return "n/a" if d["mean"] is None else f"{fmt.format(d['mean'])} ± {fmt.format(d['std'])}"


def render_markdown(r: dict) -> str:
    """``report.md``: the table, the n/a reasons, how it was measured."""
    L = [f"# genjax compare — text-to-image on {r['data']} {tuple(r['data_shape'])}, {r['seeds']} seeds per model\n",
         "Command:\n\n```\n" + r["command"] + "\n```\n",
         f"Budget: {r['budget']['examples']} training examples ({r['budget']['steps']} steps of "
         f"{r['budget']['batch_size']}) per model; {r['budget']['definition']}. Wall time {r['wall_time_s']} s, CPU "
         f"time {r['process_cpu_time_s']} s ({r['machine']}, {r['date']}).\n",
         "## The table\n",
         "Cells are mean ± std over the non-diverged seeds of the generative stages (stability over seeds: the std, "
         "and the diverged count). FID on the domain classifier's features (lower is better); accuracies by the "
         "domain classifier; CLIP score by the shared CLIP (cosine). Parameters: trained / total with the frozen, "
         "shared CLIP and autoencoder. Training time: the generative stages of one seed. NFE: network evaluations "
         "per sample.\n",
         "| Model | FID | prompt acc | attribute acc | held-out pair acc | CLIP score | R-precision | params (trained / "
         "total) | train s / seed | s / sample | NFE | diverged |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        L.append(f"| **{row['title']}** | {_cell(row, 'fid')} | {_cell(row, 'prompt_acc', '{:.2f}')} | "
                 f"{_cell(row, 'attribute_acc', '{:.2f}')} | {_cell(row, 'held_out_pair_acc', '{:.2f}')} | "
                 f"{_cell(row, 'clip_score', '{:.3f}')} | {_cell(row, 'r_precision', '{:.2f}')} | "
                 f"{row['params_trained']:,} / {row['params_total']:,} | {_cell(row, 'train_time_s', '{:.0f}')} | "
                 f"{_cell(row, 'time_per_sample_s', '{:.2g}')} | {row['network_evaluations_per_sample']} | "
                 f"{row['diverged_seeds']}/{row['num_seeds']} |")
    L.append("")
    reasons = [(row["title"], m, why) for row in r["rows"].values() for m, why in row["na"].items()]
    if reasons:
        L.append("n/a cells:\n")
        L += [f"- {title}, {m}: {why}" for title, m, why in reasons]
        L.append("")
    L.append("![the same prompts, one row per model (seed 0)](samples_prompts.png)\n")
    L.append("## How measured\n")
    sh = r["shared"]
    L.append(f"- **Shared parts**: {sh['definition']}. CLIP {sh['clip_params']:,} parameters, autoencoder "
             f"{sh['autoencoder_params']:,}; trained in {sh['train_time_s']:.0f} s"
             + (f" (pairs: {sh['pairs_train_time_s']:.0f} s)" if sh["pairs_train_time_s"] is not None else "") + ".")
    ev = r["evaluation"]
    L.append(f"- **Prompts**: {ev['prompts']}. **Sampler**: {ev['sampler']}. FID reference: {ev['fid_reference']} "
             f"({ev['classifier']['dataset']} classifier, test accuracy {ev['classifier']['test_accuracy']:.4f}).")
    L.append("- **Seeds**: seed i of a model trains its generative stages from `fold_in(PRNGKey(seed), i)`; a seed "
             "diverged when a stage's loss or gradient was non-finite (it is not scored).")
    L.append("- **NFE** per sample:")
    L += [f"  - {row['title']}: {row['network_evaluations_per_sample']} ({row['network_evaluations_how']})"
          for row in r["rows"].values()]
    L.append("- **Time per sample**: the compiled sampler, timed after its first (compiling) chunk.")
    return "\n".join(L) + "\n"
