"""Few-step samplers on MNIST: FID against network evaluations (issue 21, "Samplers").

Setting: two trained models, restored from their experiments' work directories (never
retrained here; run those experiments first):

* the pixel DDPM of ``experiments/diffusion_mnist.py --data mnist`` (UNet, T = 1000, linear
  schedule; its checkpoints in ``<workdir>/diffusion_mnist/run``), unconditional;
* the latent diffusion model of ``experiments/ldm_mnist.py`` (the ``ldm`` pipeline on
  mnist-captions, its stages in ``<ldm-workdir>/ldm-mnist-captions``; the text encoder from
  ``<ldm-workdir>/clip-mnist-captions``), sampled on the 10 digit prompts at guidance 3 (a
  guided evaluation is one network call on the batch ``[cond; null]`` and counts once).

For each solver of ``genjax.diffusion.sampling`` (``"dpm++2m"``, ``"dpm2"``, ``"dpm3"``,
``"euler"``, ``"heun"``, each on its own default time schedule, and DDIM) the steps are the
most whose network evaluations (``solver_nfe``: Heun ``2 n - 1``, DPM-Solver-3 ``3 n - 2``)
stay within each budget of ``nfe`` (5, 10, 20, 50); the reference is ancestral DDPM sampling
with all 1000 steps. Each point: FID of ``num_samples`` (>= 2000) samples against as many
test images on the features of the MNIST domain classifier (``genjax.metrics.features``,
``sample_quality``), the same key for every sampler. Written: JSON by
``genjax.results.write_result`` (``experiments/results/samplers_mnist.json``) and the plot
of FID against NFE per model (``<results>/samplers_mnist_<model>.png``).

Anchor (the same EDM model on CIFAR-10 at NFE 10: Euler 15.69, DPM-Solver++(3M) 3.00,
UniPC-3 2.89; converged 1.97). Goals (issue 21): at 10 NFE the best solver is within 1.5x of
the 1000-step FID and >= 3x better than DDIM at 10 NFE; ``genjax sample`` and ``compare``
then default to the best solver at a stated NFE.

Command (after both experiments have trained). Cost: about 5 CPU hours per model on 2 cores
(2000 samples of the 1000-step reference alone are 2 M network calls, ~6 ms each for the MNIST
UNet on XLA:CPU as diffusion_mnist.py measured), so run it in the background over sessions::

    GENJAX_DATA_DIR=../shared/data nohup nice python experiments/samplers_mnist.py > samplers_mnist.log 2>&1 &

Resumable: every finished point is appended to ``<workdir>/samplers_mnist_points.jsonl`` (keyed
by the model, a hash of its parameters, the sampler, steps, sample count and seed), and within a
point every finished chunk of samples to ``<workdir>/samplers_mnist_points/<hash>/`` (the 1000-step
reference is hours on CPU); re-run the same command after an interruption and it goes on from the
last finished chunk.
``--models ddpm`` / ``--models ldm`` runs one model; ``--smoke`` trains two tiny models on
the 8x8 digits in the work dir and runs in seconds (the tests use it).

Figures reached: to be filled from the committed JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time

import jax
import numpy as np
import optax

from genjax import registry, viz
from genjax.diffusion import models as dif
from genjax.diffusion.sampling import FAST_SAMPLERS, solver_nfe
from genjax.metrics import features, sample_quality
from genjax.metrics import text_to_image as t2i
from genjax.metrics.evaluation import draw_samples
from genjax.registry import ldm as ldm_registry
from genjax.results import config_digest, params_fingerprint, write_result
from genjax.train import fit, fit_stages, restore_params

HERE = pathlib.Path(__file__).resolve().parent
MODELS = ("ddpm", "ldm")
ANCHOR = {"model": "EDM, CIFAR-10", "nfe": 10, "fid": {"euler": 15.69, "dpm++3m": 3.00, "unipc3": 2.89},
          "converged_fid": 1.97}


def get_config() -> dict:
    return {
        "seed": 0,
        "nfe": [5, 10, 20, 50],
        "solvers": [*FAST_SAMPLERS, "ddim"],
        "reference": {"sampler": "ddpm", "steps": None},  # ancestral, all T (= 1000) steps
        "num_samples": 2000,
        "chunk": 500,
        # experiments/diffusion_mnist.py get_config("mnist"): the model it trains
        "ddpm": {"run": "diffusion_mnist/run", "base": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "T": 1000,
                 "schedule": "linear", "data": "mnist"},
        # experiments/ldm_mnist.py's ldm pipeline on mnist-captions: restored from its run directory,
        # sampled on the 10 digit prompts at its default guidance
        "ldm": {"run": "ldm-mnist-captions", "guidance": 3.0},
    }


def smoke_config() -> dict:
    c = get_config()
    c.update(nfe=[3, 5], num_samples=16, chunk=16)
    c["ddpm"].update(run="ddpm_smoke/run", base=8, channel_mult=[1], T=10, data="digits", train_steps=3)
    c["ldm"].update(run="ldm-smoke", data="digits-captions", size="tiny", captions_per_image=8, ae_steps=3, steps=3,
                    batch_size=8, lr=1e-3, ema_decay=0.995)
    return c


def steps_for(sampler: str, nfe: int) -> int | None:
    """The most steps of ``sampler`` within ``nfe`` network evaluations (``None``: not even one step)."""
    if sampler == "ddim":
        return nfe
    fits = [n for n in range(1, nfe + 1) if solver_nfe(sampler, n) <= nfe]
    return max(fits) if fits else None


def _like_optimizer():
    """An optimizer of diffusion_mnist.py's state structure (adam on a learning-rate schedule): it
    only shapes the restored state."""
    return optax.adam(lambda step: 1e-3)


def load_ddpm(c: dict, workdir: pathlib.Path, smoke: bool):
    """The pixel DDPM and its parameters from ``workdir / c["run"]`` (trained only by ``--smoke``)."""
    data = registry.load_data(c["data"])
    model = dif.ddpm_image(data.shape, base=c["base"], channel_mult=tuple(c["channel_mult"]),
                           num_res_blocks=c["num_res_blocks"], T=c["T"], schedule=c["schedule"])
    run = workdir / c["run"]
    if smoke:
        fit(model, np.asarray(data.train[:64]), num_steps=c["train_steps"], batch_size=8, seed=0, out_dir=run,
            optimizer=_like_optimizer(), resume=True, progress=False, log_every=1)
    elif not (run / "checkpoints").exists():
        raise FileNotFoundError(f"no DDPM run in {str(run)!r}: run experiments/diffusion_mnist.py --data mnist first "
                                "(this script restores it, never trains it)")
    state = restore_params(run, model, np.asarray(data.train[:2]), optimizer=_like_optimizer())
    return model, state.params, data


def load_ldm(c: dict, workdir: pathlib.Path, smoke: bool):
    """The latent diffusion model of ``experiments/ldm_mnist.py``, restored from its run directory
    (``<ldm-workdir>/ldm-mnist-captions``, whose ``config.json`` says how it was trained) by
    ``registry.restore_run``, never trained here (``--smoke``: a tiny pipeline, its CLIP stage
    included, trained here first and recorded the same way)."""
    out = workdir / c["run"]
    if smoke:
        spec = registry.get_model_spec("ldm")
        data = registry.load_data(c["data"], seed=0)
        opts = registry.resolve_options(spec, {"size": c["size"], "captions_per_image": c["captions_per_image"],
                                               "ae_steps": c["ae_steps"], "clip_steps": 3})
        run_config = {"steps": c["steps"], "batch_size": c["batch_size"], "lr": c["lr"], "ema_decay": c["ema_decay"],
                      "options": opts, "log_every": 1, "checkpoint_every": c["steps"], "steps_per_dispatch": 1}
        fit_stages(spec.stages(data, run_config, run_dir=out), registry.train_data(spec, data, opts), seed=0,
                   out_dir=out, resume=True, progress=False)
        registry.write_run_config(out, "ldm", data.name, 0, run_config)
    elif not (out / "config.json").exists():
        raise FileNotFoundError(f"no latent diffusion run in {str(out)!r}: run experiments/ldm_mnist.py first "
                                "(this script restores it, never trains it)")
    run = registry.restore_run(out)
    return run.model, run.params, run.data


def _point_fields(name: str, sampler: str, steps, config: dict, fingerprint: str) -> list:
    """What one point's samples depend on: its key in ``points.jsonl`` is their JSON, the folder
    of its sample chunks their :func:`~genjax.results.config_digest`."""
    return [name, fingerprint, sampler, steps, config["num_samples"], config["seed"], config["chunk"]]


def load_points(path: pathlib.Path) -> dict:
    """The points a cut-off run finished (``points.jsonl``: one ``{"key", "row"}`` per line; a torn
    last line, from a kill mid-write, is ignored and recomputed)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["key"]] = rec["row"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def fid_curve(name: str, model, params, data, real: np.ndarray, clf, config: dict, *, cond=None, guidance=None,
              points: pathlib.Path | None = None) -> dict:
    """FID of every (solver, NFE budget) and of the reference sampler, the same key for all.
    ``points``: a ``.jsonl`` file each finished point is appended to, and taken from on a re-run
    (an interrupted run resumes at the first point it had not finished)."""
    n, key = config["num_samples"], jax.random.PRNGKey(config["seed"] + 21)
    cache: dict = {}
    done = load_points(points) if points is not None else {}
    fingerprint = params_fingerprint(params)

    def fid_of(sampler: str, steps: int | None) -> dict:
        fields = _point_fields(name, sampler, steps, config, fingerprint)
        pk = json.dumps(fields)
        if pk in done:
            print(json.dumps({"model": name, "resumed": True, **done[pk]}), flush=True)
            return done[pk]
        t0 = time.perf_counter()
        kw = {"sampler": sampler, "steps": steps, **({"guidance": guidance} if guidance is not None else {})}
        chunks = None if points is None else points.with_suffix("") / config_digest(fields, length=16)
        x = draw_samples(model, params, key, n, chunk=config["chunk"], cache=cache, cond=cond, sample_kwargs=kw,
                         resume_dir=chunks)
        q = sample_quality.sample_quality(real, x, clf, kid_subsets=10, kid_subset_size=min(500, n), seed=0)
        nfe = model.diffusion.sampler_nfe(sampler, steps) if hasattr(model, "diffusion") else model.sampler_nfe(sampler, steps)
        row = {"sampler": sampler, "steps": nfe if steps is None else steps, "nfe": nfe, "fid": q["fid"], "kid_mean": q["kid_mean"],
               "precision": q["precision"], "recall": q["recall"], "finite": bool(np.isfinite(x).all()),
               "time_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps({"model": name, **row}), flush=True)
        if points is not None:
            with open(points, "a") as f:  # one whole line per point, flushed: a kill leaves at most a torn last line
                f.write(("\n" if points.exists() and points.stat().st_size and not points.read_bytes().endswith(b"\n") else "")
                        + json.dumps({"key": pk, "row": row}) + "\n")
                f.flush()
            shutil.rmtree(chunks, ignore_errors=True)  # the point is recorded: its chunks are not needed again
        return row

    rows = [fid_of(s, steps) for s in config["solvers"] for b in config["nfe"]
            if (steps := steps_for(s, b)) is not None]
    ref = fid_of(config["reference"]["sampler"], config["reference"]["steps"])
    return {"rows": rows, "reference": ref, "summary": summary(rows, ref, config["nfe"])}


def summary(rows: list[dict], ref: dict, budgets) -> dict:
    """Per budget: the best solver and its FID, DDIM's, and the goal ratios (at 10 NFE in the issue)."""
    out = {}
    for b in budgets:
        within = [r for r in rows if r["nfe"] <= b and r["sampler"] != "ddim" and np.isfinite(r["fid"])]
        best = min(within, key=lambda r: r["fid"]) if within else None
        ddim = next((r for r in rows if r["sampler"] == "ddim" and r["nfe"] == b), None)
        out[str(b)] = {
            "best_solver": None if best is None else best["sampler"],
            "best_fid": None if best is None else best["fid"],
            "ddim_fid": None if ddim is None else ddim["fid"],
            "best_over_reference": None if best is None else best["fid"] / ref["fid"],
            "ddim_over_best": None if best is None or ddim is None else ddim["fid"] / best["fid"],
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(HERE / "checkpoints"), help="where diffusion_mnist.py keeps its run")
    ap.add_argument("--ldm-workdir", default=str(HERE / "checkpoints" / "ldm_mnist"), help="ldm_mnist.py's --workdir")
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: ddpm, ldm")
    ap.add_argument("--num-samples", type=int, default=None, help="override: samples per point (>= 2000 for the figures)")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run with tiny models on the digits (tests use it)")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"--models must name some of {', '.join(MODELS)}, got {args.models!r}")
    config = smoke_config() if args.smoke else get_config()
    if args.num_samples is not None:
        if args.num_samples < 2:
            raise ValueError(f"--num-samples must be an int >= 2, got {args.num_samples}")
        config["num_samples"] = args.num_samples
    name = "samplers_mnist" + ("_smoke" if args.smoke else "")
    results_dir = pathlib.Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    payload: dict = {"config": config, "anchor": ANCHOR, "models": {}, "figures": []}
    for m in models:
        c = config[m]
        if m == "ddpm":
            model, params, data = load_ddpm(c, pathlib.Path(args.workdir), args.smoke)
            cond = guidance = None
        else:
            model, params, data = load_ldm(c, pathlib.Path(args.ldm_workdir), args.smoke)
            ps = t2i.prompt_set(data.name, per_digit=-(-config["num_samples"] // 10), per_attribute=1, per_pair=1)
            digits = np.flatnonzero([a is None for a in ps.attribute])[: config["num_samples"]]
            cond, guidance = ldm_registry.prompt_tokens(model, [ps.prompts[i] for i in digits]), c["guidance"]
        dataset = "digits" if data.shape[0] == 8 else "mnist"
        clf = (features.train_classifier(dataset, progress=False, steps=5, batch_size=16) if args.smoke
               else features.get_classifier(dataset, progress=False))
        real = np.asarray(data.test)[: config["num_samples"]]
        curve = fid_curve(m, model, params, data, real, clf, config, cond=cond, guidance=guidance,
                          points=pathlib.Path(args.workdir) / f"{name}_points.jsonl")
        series = {s: ([r["nfe"] for r in curve["rows"] if r["sampler"] == s], [r["fid"] for r in curve["rows"] if r["sampler"] == s])
                  for s in config["solvers"]}
        series[f"{config['reference']['sampler']} {curve['reference']['steps']}"] = (
            [curve["reference"]["nfe"]], [curve["reference"]["fid"]])
        png = results_dir / f"{name}_{m}.png"
        viz.series_plot(series, png, title=f"{m}: FID vs network evaluations", xlabel="NFE", ylabel="FID")
        payload["models"][m] = {**curve, "data": data.name, "classifier": {"dataset": clf.dataset,
                                "test_accuracy": float(clf.test_accuracy)}, "guidance": guidance}
        payload["figures"].append(png.name)
    write_result(results_dir / f"{name}.json", payload, program="experiments/samplers_mnist.py",
                 argv=sys.argv[1:] if argv is None else argv)
    print(json.dumps({m: v["summary"] for m, v in payload["models"].items()}, indent=1), flush=True)
    return payload


if __name__ == "__main__":
    main()
