"""DALL-E 2 in miniature on captioned MNIST (issue 20): unCLIP, a diffusion prior and a decoder.

Setting (pinned in ``get_config``), every part from the library (``genjax train unclip`` runs
the same stages):

1. **CLIP and the autoencoder** are the latent diffusion experiment's (``experiments/ldm_mnist.py``,
   same work dir): ``--ldm-run`` takes them from its ``ldm-<data>`` runs, so unCLIP and latent
   diffusion differ only in how they are conditioned. Where that experiment has not run, the
   pipeline trains its own CLIP and autoencoder stages first (same settings).
2. **Diffusion prior**: caption -> CLIP image embedding (64-d, diffused as ``sqrt(64) * emb``):
   a causal Transformer (width 128, depth 4) over [caption token states, CLIP text embedding,
   timestep, noised embedding, query], predicting the clean embedding (MSE), T = 1000 cosine
   schedule, caption dropped with p = 0.1; sampled with DDIM (64 steps), 2 candidates per caption,
   the one with the higher dot product with the text embedding kept; 10000 steps of 256.
3. **Decoder**: the latent DDPM (the same UNet and schedule as the latent diffusion model: 7x7x4
   latents, base 64, scaled_linear) conditioned on the CLIP image embedding (added to the timestep
   embedding and projected into 4 context tokens for cross-attention), embedding zeroed with
   p = 0.1; 5000 steps of 128 at 1e-3, EMA 0.995 (the latent model's budget). No upsampler: 28x28
   is the final size.

Measured (``experiments/results/unclip_mnist.json``; samples in ``unclip_mnist_samples.npz`` and
``unclip_mnist_pair_samples.npz`` as the latent diffusion experiment writes them), at decoder
guidance 3 and prior guidance 1 with 50 DDIM decoder steps, 100 samples per digit prompt and 20
per (digit, attribute) prompt: prompt, attribute and held-out pair accuracy, FID / precision /
recall on the domain classifier, CLIP score and R-precision; the **prior ablation** on the digit
and attribute prompts: decoder fed by the prior, by the caption's CLIP text embedding directly, and
by the CLIP embedding of a real test image that matches the prompt (the ceiling); **variations** of
100 test images (10 per digit, 8 each): the share keeping the source digit and their diversity
(mean pairwise distance of the classifier's features among one image's variations, over the same
among real test images of that digit); **text diffs** "a thin D" -> "a thick D" of thin test images
(the measured thickness at each amount, and the share that thickened and kept the digit);
interpolation and text-diff pictures in the work dir; time per sample and network evaluations.

Goals (issue 20): prompt accuracy >= 97%, attribute accuracy >= 80%, held-out pairs >= 80% (as
latent diffusion); variations keep the digit >= 95%.

Command (resumable; after ``experiments/ldm_mnist.py``, whose CLIP and autoencoder it shares)::

    GENJAX_DATA_DIR=../shared/data nohup python experiments/unclip_mnist.py > unclip_mnist.log 2>&1 &

(``--only singles`` / ``--only pairs`` train one part and stop, as in the latent diffusion
experiment; each part of the results step is saved when done in
``<workdir>/unclip_mnist_results_parts/``, keyed by the parameters' fingerprint and the config, so
a cut-off results step resumes too.) ``--smoke`` runs the whole script on digits-captions with
tiny networks (a few minutes on CPU; run by hand, not in the test suite).

Figures reached: to be filled from the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax import registry, viz
from genjax.data import attributes
from genjax.data.captions import source_dataset
from genjax.data.tokenizer import caption_tokenizer
from genjax.compare_t2i import network_evaluations as t2i_network_evaluations
from genjax.metrics import features
from genjax.metrics import text_to_image as t2i
from genjax.metrics.evaluation import draw_samples
from genjax.registry import ldm as ldm_registry
from genjax.registry import write_run_config
from genjax.results import ResultParts, params_fingerprint, write_result, write_samples
from genjax.train import Stage, fit_stages

HERE = pathlib.Path(__file__).resolve().parent


def get_config(size: str = "cpu") -> dict:
    cpu = size == "cpu"
    return {
        "seed": 0,
        "size": "small" if cpu else "gpu",
        "captions_per_image": 8,
        # the decoder: the latent diffusion model's UNet, budget and learning rate (experiments/ldm_mnist.py)
        "singles": {"prior_steps": 10000 if cpu else 50000, "steps": 5000 if cpu else 100000, "eval_every": 500 if cpu else 5000},
        "pairs": {"prior_steps": 6000 if cpu else 50000, "steps": 6000 if cpu else 100000, "eval_every": None},
        "prior_batch": 256,
        "prior_lr": 3e-4,
        "batch_size": 128,
        "lr": 1e-3,
        "ema_decay": 0.995,
        "clip_steps": 1500 if cpu else 6000,
        "ae_steps": 3000 if cpu else 20000,
        "guidance": 3.0,
        "prior_guidance": 1.0,
        "num_candidates": 2,
        "sampler": {"sampler": "ddim", "steps": 50},
        "curve_per_digit": 50,
        "per_digit": 100,
        "per_attribute": 20,
        "per_pair": 20,
        "ablation_per_digit": 50,
        "ablation_per_attribute": 10,
        "variation_sources_per_digit": 10,
        "variations_per_source": 8,
        "text_diff_sources": 20,
        "text_diff_amounts": [0.0, 0.25, 0.5],
        "timing_samples": 500,
    }


def smoke_config() -> dict:
    c = get_config("cpu")
    c.update(size="tiny", clip_steps=10, ae_steps=10, prior_batch=16, batch_size=16, curve_per_digit=1, per_digit=2,
             per_attribute=1, per_pair=1, ablation_per_digit=1, ablation_per_attribute=1, variation_sources_per_digit=1,
             variations_per_source=2, text_diff_sources=2, timing_samples=10, sampler={"sampler": "ddim", "steps": 5})
    c["singles"].update(prior_steps=10, steps=10, eval_every=5)
    c["pairs"].update(prior_steps=10, steps=10)
    return c


def _ldm_run(workdir: pathlib.Path, name: str) -> pathlib.Path | None:
    """The latent diffusion experiment's run on ``name`` when its autoencoder stage is finished."""
    run = workdir / f"ldm-{name}"
    steps = [json.loads(line).get("step", 0) for line in (run / "autoencoder" / "metrics.jsonl").read_text().splitlines()
             if line.strip()] if (run / "autoencoder" / "metrics.jsonl").is_file() else []
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
    if config is None or not steps or max(steps) < config["options"]["ae_steps"]:
        return None
    return run


def _digit_prompts(data, per_digit: int, per_attribute: int = 1, attributes_too: bool = False):
    ps = t2i.prompt_set(data.name, per_digit=per_digit, per_attribute=per_attribute, per_pair=1)
    return ps if attributes_too else ps.subset(np.array([a is None for a in ps.attribute]))


def _draw(model, params, ps, key, config, **kw) -> np.ndarray:
    tokens = ldm_registry.prompt_tokens(model, ps.prompts)
    return draw_samples(model, params, key, len(tokens), cond=tokens, chunk=500,
                        sample_kwargs={"guidance": config["guidance"], **config["sampler"], **kw})


def train(name: str, part: dict, config: dict, workdir: pathlib.Path, progress: bool, *, curve: bool) -> dict:
    """Trains (or resumes) the unCLIP pipeline on ``name``; with ``curve`` the decoder stage reports
    the 500-sample FID and prompt accuracy every ``eval_every`` steps."""
    spec = registry.get_model_spec("unclip")
    data = registry.load_data(name, seed=config["seed"])
    ldm_run = _ldm_run(workdir, name)
    given = {"size": config["size"], "captions_per_image": config["captions_per_image"], "clip_steps": config["clip_steps"],
             "ae_steps": config["ae_steps"], "prior_steps": part["prior_steps"], "prior_batch": config["prior_batch"],
             "prior_lr": config["prior_lr"], "prior_guidance": config["prior_guidance"],
             "num_candidates": config["num_candidates"], "ldm_run": "" if ldm_run is None else str(ldm_run)}
    opts = registry.resolve_options(spec, given)
    run_config = {"steps": part["steps"], "batch_size": config["batch_size"], "lr": config["lr"],
                  "ema_decay": config["ema_decay"], "options": opts, "log_every": 250, "checkpoint_every": 500,
                  "steps_per_dispatch": 250, "on_nonfinite": "raise"}
    out = workdir / f"unclip-{name}"
    write_run_config(out, "unclip", name, config["seed"], run_config)  # genjax sample / eval read it
    stages = spec.stages(data, run_config, run_dir=out)
    clf = features.get_classifier(source_dataset(name), progress=False)
    if curve:
        last, built, ps = stages[-1], {}, _digit_prompts(data, config["curve_per_digit"])

        def model_fn(frozen, build=last.model):
            built["model"] = build(frozen)
            return built["model"]

        def curve_eval(params, key):
            t0 = time.perf_counter()
            x = _draw(built["model"], params, ps, jax.random.PRNGKey(7), config)
            s = ldm_registry.score_samples(built["model"], data, ps, x, jax.random.PRNGKey(7), classifier=clf)
            return {"fid": s["fid"], "prompt_acc": s["prompt_acc"], "num_samples": len(x),
                    "eval_time_s": time.perf_counter() - t0}

        stages[-1] = Stage(last.name, model_fn, num_steps=last.num_steps, data=last.data,
                           **{**last.fit_kwargs, "eval_fn": curve_eval, "eval_every": part["eval_every"]})
    result = fit_stages(stages, spec.train_data(data, opts), seed=config["seed"], out_dir=out, resume=True,
                        progress=progress)
    records = [json.loads(line) for line in (out / "decoder" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in records if r.get("kind") == "eval" and "fid" in r]
    times = {s.name: round(result.results[s.name].train_time_s, 1) for s in stages}
    return {"data": data, "model": result.models["decoder"], "params": result.params["decoder"], "clf": clf,
            "ldm_run": None if ldm_run is None else ldm_run.name, "stage_train_time_s": times,
            "curve": [{"step": e["step"], "fid": e["fid"], "prompt_acc": e["prompt_acc"]} for e in evals]}


def _matching_test_images(data, ps, rng: np.random.Generator) -> np.ndarray:
    """For each prompt a random test image whose digit (and asked attribute tercile) it names, and
    the number of prompts whose (digit, tercile) has no test image (those take the digit alone)."""
    _, test = data.captioned
    picks, missing = [], 0
    for label, attr, b in zip(ps.labels, ps.attribute, ps.bin):
        ok = test.labels == label
        if attr is not None and np.any(ok & (test.bins[attr] == b)):
            ok &= test.bins[attr] == b
        elif attr is not None:
            missing += 1
        picks.append(rng.choice(np.flatnonzero(ok)))
    return np.asarray(test.images[np.asarray(picks)]), missing


def prior_ablation(p: dict, config: dict) -> dict:
    """The decoder fed by the prior, by the caption's text embedding, and by a matching real
    image's embedding (the ceiling), on the same digit and attribute prompts and noise."""
    model, params, data = p["model"], p["params"], p["data"]
    ps = _digit_prompts(data, config["ablation_per_digit"], config["ablation_per_attribute"], attributes_too=True)
    tokens = ldm_registry.prompt_tokens(model, ps.prompts)
    key = jax.random.PRNGKey(21)
    out = {}
    for source in ("prior", "text"):
        x = draw_samples(model, params, key, len(tokens), cond=tokens, chunk=500,
                         sample_kwargs={"guidance": config["guidance"], "embedding": source, **config["sampler"]})
        out[source] = ldm_registry.score_samples(model, data, ps, x, jax.random.PRNGKey(22), classifier=p["clf"])
    images, missing = _matching_test_images(data, ps, np.random.default_rng(0))
    emb = model.image_embedding(jnp.asarray(images))
    decode = jax.jit(lambda prm, k, e: model.decode(prm, k, e, guidance=config["guidance"], **config["sampler"]))
    x = np.concatenate([np.asarray(decode(params, jax.random.fold_in(key, i), emb[i : i + 500]))
                        for i in range(0, len(emb), 500)])
    out["true_image"] = ldm_registry.score_samples(model, data, ps, x, jax.random.PRNGKey(22), classifier=p["clf"])
    keep = ("prompt_acc", "attribute_acc", "fid", "precision", "recall", "clip_score", "r_precision")
    return {src: {k: s.get(k) for k in keep} for src, s in out.items()} | {
        "num_prompts": len(ps), "true_image_prompts_without_matching_tercile": missing}


def variations(p: dict, config: dict, workdir: pathlib.Path, name: str) -> dict:
    """Variations of real test images: the share keeping the digit, and their diversity."""
    model, params, data, clf = p["model"], p["params"], p["data"], p["clf"]
    _, test = data.captioned
    rng = np.random.default_rng(1)
    per, k = config["variation_sources_per_digit"], config["variations_per_source"]
    src = np.concatenate([rng.choice(np.flatnonzero(test.labels == d), per, replace=False) for d in range(10)])
    fn = jax.jit(lambda prm, key, x: model.variations(prm, key, x, num=k, guidance=config["guidance"], **config["sampler"]))
    v = np.concatenate([np.asarray(fn(params, jax.random.PRNGKey(31 + i), jnp.asarray(test.images[src[i : i + 50]])))
                        for i in range(0, len(src), 50)])  # (n, k, H, W, C)
    n = len(src)
    pred = np.argmax(clf.logits(v.reshape(n * k, *v.shape[2:])), axis=-1).reshape(n, k)
    keep = pred == test.labels[src][:, None]
    feats = clf.features(v.reshape(n * k, *v.shape[2:])).reshape(n, k, -1)

    def mean_pairwise(f):
        d = np.sqrt(np.maximum(((f[:, None] - f[None]) ** 2).sum(-1), 0))
        return d[np.triu_indices(len(f), 1)].mean()

    within = np.mean([mean_pairwise(f) for f in feats])
    real = np.mean([mean_pairwise(clf.features(test.images[rng.choice(np.flatnonzero(test.labels == d), k, replace=False)]))
                    for d in range(10) for _ in range(per)])
    viz.save_image_grid(workdir / f"{name}_variations.png",
                        np.concatenate([test.images[src[::per]][:, None], v[::per]], axis=1).reshape(-1, *v.shape[2:]),
                        ncol=k + 1, scale=4)
    return {"keep_digit": float(keep.mean()), "num_sources": int(n), "per_source": int(k),
            "diversity": float(within), "real_diversity": float(real), "diversity_ratio": float(within / real),
            "convention": "diversity: mean pairwise L2 distance of the domain classifier's features among one source's "
                          "variations; real: the same among k random test images of the source's digit"}


def text_diffs(p: dict, config: dict, workdir: pathlib.Path, name: str) -> dict:
    """"a thin D" -> "a thick D" on thin test images: thickness per amount, share thickened with the digit kept."""
    model, params, data, clf = p["model"], p["params"], p["data"], p["clf"]
    _, test = data.captioned
    rng = np.random.default_rng(2)
    thin = np.flatnonzero(test.bins["thickness"] == 0)
    src = rng.choice(thin, config["text_diff_sources"], replace=False)
    amounts = config["text_diff_amounts"]
    tok = caption_tokenizer()
    fn = jax.jit(lambda prm, key, img, a, b: model.text_diff(prm, key, img, a, b, amounts=amounts,
                                                             guidance=config["guidance"], **config["sampler"]))
    frames = []
    for i, j in enumerate(src):
        a, b = np.asarray(tok.encode([f"a thin {int(test.labels[j])}", f"a thick {int(test.labels[j])}"]))
        frames.append(np.asarray(fn(params, jax.random.PRNGKey(41 + i), jnp.asarray(test.images[j]), a[None], b[None])))
    f = np.stack(frames)  # (n, A, H, W, C)
    thick = attributes.thickness(f.reshape(-1, *f.shape[2:])).reshape(len(src), len(amounts))
    digit = np.argmax(clf.logits(f[:, -1]), axis=-1) == test.labels[src]
    viz.save_image_grid(workdir / f"{name}_text_diffs.png", f.reshape(-1, *f.shape[2:]), ncol=len(amounts), scale=4)
    ia, ib = (test.images[src[0]], test.images[src[1]])
    viz.save_image_grid(workdir / f"{name}_interpolation.png",
                        np.asarray(model.interpolate(params, jax.random.PRNGKey(51), ia, ib, num_frames=8,
                                                     guidance=config["guidance"], **config["sampler"])), ncol=8, scale=4)
    return {"amounts": amounts, "mean_thickness": [float(t) for t in thick.mean(0)],
            "thickened_and_kept_digit": float(np.mean((thick[:, -1] > thick[:, 0]) & digit)),
            "num_sources": int(len(src)), "source_mean_thickness": float(attributes.thickness(test.images[src]).mean())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--workdir", default=str(HERE / "checkpoints" / "ldm_mnist"),
                    help="the latent diffusion experiment's work dir (its CLIP and autoencoder are shared)")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="a minutes-long run of the whole script on digits-captions with tiny networks")
    ap.add_argument("--only", choices=("singles", "pairs"), default=None)
    args = ap.parse_args(argv)

    config = smoke_config() if args.smoke else get_config(args.size)
    name = ("unclip_mnist" if args.size == "cpu" else "unclip_mnist_gpu") + ("_smoke" if args.smoke else "")
    singles = "digits-captions" if args.smoke else "mnist-captions"
    pairs = "digits-captions" if args.smoke else "mnist-pairs"
    workdir = pathlib.Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    if args.only == "pairs":
        train(pairs, config["pairs"], config, workdir, progress, curve=False)
        return {}
    single = train(singles, config["singles"], config, workdir, progress, curve=True)
    if args.only == "singles":
        return {}
    model, params, data = single["model"], single["params"], single["data"]
    g = config["guidance"]

    # every part of the results below is saved in the work dir when done (keyed by the parameters'
    # fingerprint and the config), so a results step cut off part-way resumes at the next part
    parts = ResultParts(workdir / f"{name}_results_parts", config)
    fp = params_fingerprint(params)

    def main_part():
        ps, x = ldm_registry.generate_for_prompts(model, params, data, jax.random.PRNGKey(11), guidance=g,
                                                  per_digit=config["per_digit"], per_attribute=config["per_attribute"],
                                                  **config["sampler"])
        return ps, np.asarray(x), ldm_registry.score_samples(model, data, ps, x, jax.random.PRNGKey(12),
                                                             classifier=single["clf"])

    ps, x, main_scores = parts("main", fp, fn=main_part)
    ablation = parts("prior_ablation", fp, fn=lambda: prior_ablation(single, config))
    var = parts("variations", fp, fn=lambda: variations(single, config, workdir, name))
    diffs = parts("text_diffs", fp, fn=lambda: text_diffs(single, config, workdir, name))

    def timing():
        timing_ps = _digit_prompts(data, max(1, config["timing_samples"] // 10))
        _draw(model, params, timing_ps, jax.random.PRNGKey(0), config)  # compile
        t0 = time.perf_counter()
        n_timed = len(_draw(model, params, timing_ps, jax.random.PRNGKey(1), config))
        return (time.perf_counter() - t0) / n_timed

    per_sample = parts("timing", fp, fn=timing)
    nfe, nfe_rule = t2i_network_evaluations(model, {"sampler_steps": config["sampler"]["steps"]})
    cost = {"sample_s_per_image": round(per_sample, 5), "network_evaluations": nfe, "nfe_convention": nfe_rule,
            "convention": "compiled sampler, prior and decoder, over the digit prompts; network evaluations counted "
                          "as the text-to-image table counts them (genjax.compare_t2i)"}

    pair = train(pairs, config["pairs"], config, workdir, progress, curve=False) if pairs != singles else single

    def pair_part():
        pair_ps, pair_x = ldm_registry.generate_for_prompts(pair["model"], pair["params"], pair["data"],
                                                            jax.random.PRNGKey(14), guidance=g,
                                                            per_pair=config["per_pair"], per_digit=1, per_attribute=1,
                                                            **config["sampler"])
        return pair_ps, np.asarray(pair_x), ldm_registry.score_samples(pair["model"], pair["data"], pair_ps, pair_x,
                                                                       jax.random.PRNGKey(15), classifier=pair["clf"])

    pair_ps, pair_x, pair_scores = parts("pairs", params_fingerprint(pair["params"]), fn=pair_part)

    results_dir = pathlib.Path(args.results_dir)
    as_uint8 = lambda a: np.round(np.clip(np.asarray(a)[..., 0], 0, 1) * 255).astype(np.uint8)
    write_samples(results_dir / f"{name}_samples.npz", as_uint8(x), list(ps.prompts), np.asarray(ps.labels),
                  **ps.extra_fields(), guidance=np.float32(g))
    write_samples(results_dir / f"{name}_pair_samples.npz", as_uint8(pair_x), list(pair_ps.prompts),
                  np.asarray(pair_ps.labels), **pair_ps.extra_fields(), guidance=np.float32(g))
    payload = {
        "config": config,
        "shared_with_ldm": {"singles": single["ldm_run"], "pairs": pair["ldm_run"]},
        "unclip": {**main_scores, "curve": single["curve"], "stage_train_time_s": single["stage_train_time_s"]},
        "prior_ablation": ablation,
        "variations": var,
        "text_diffs": diffs,
        "cost": cost,
        "pairs": {**pair_scores, "stage_train_time_s": pair["stage_train_time_s"]},
        "samples_files": [f"{name}_samples.npz", f"{name}_pair_samples.npz"],
        "full_schedule": not args.smoke,
    }
    write_result(results_dir / f"{name}.json", payload)
    print(json.dumps({k: v for k, v in payload.items() if k != "config"}, indent=1, default=str), flush=True)
    return payload


if __name__ == "__main__":
    main()
