"""``genjax`` command line: ``train``, ``sample``, ``eval``, ``compare``, ``list``.

    genjax train vae                       # VAE on the bundled 8x8 digits
    genjax train vae --data mnist --steps 20000 --latent-dim 32
    genjax sample runs/vae-digits --num 64
    genjax eval runs/vae-digits --num-samples 5000
    genjax compare --data digits           # VAE, GAN, flow, diffusion on the same data

A run directory holds ``config.json`` (everything needed to rebuild the model and
the data), ``metrics.jsonl``, ``checkpoints/`` and the pictures. Errors are
printed as one line (``genjax: error: ...``) with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

DEFAULT_DATA = "digits"


def _optimizer(config: dict):
    from genjax import registry

    spec = registry.get_model_spec(config["model"])
    if spec.make_optimizer is not None:
        return spec.make_optimizer(config)
    import optax

    return optax.adam(config["lr"])


def _add_model_options(p: argparse.ArgumentParser, spec) -> None:
    g = p.add_argument_group(f"{spec.name} options")
    for name, o in spec.options.items():
        flag = "--" + name.replace("_", "-")
        kw = dict(dest=f"opt_{name}", default=None, help=f"{o.help} (default: {o.default})")
        if o.choices:
            kw["choices"] = o.choices
        g.add_argument(flag, type=o.type, **kw)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``genjax: error: ...``), exit status 2, like every other error."""

    def error(self, message):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""  # e.g. "train vae: "
        self.exit(2, f"genjax: error: {where}{' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from genjax import registry

    parser = _Parser(prog="genjax", description="Deep generative models as pure JAX functions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,eval,compare,list}", parser_class=_Parser)

    train = sub.add_parser("train", help="train a model; writes runs/<name>/")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL", help=", ".join(sorted(registry.MODELS)),
                                  parser_class=_Parser)
    for name, spec in sorted(registry.MODELS.items()):
        p = models.add_parser(name, help=spec.description, description=spec.description)
        p.add_argument("--data", default=DEFAULT_DATA, help=f"data set (default {DEFAULT_DATA}); `genjax list` shows all")
        p.add_argument("--data-dir", default=None, help="directory holding data files (default: $GENJAX_DATA_DIR or the cache)")
        p.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {spec.defaults['steps']})")
        p.add_argument("--batch-size", type=int, default=None, help=f"default {spec.defaults['batch_size']}")
        p.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {spec.defaults['lr']})")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default="runs", help="parent directory of run directories (default runs)")
        p.add_argument("--name", default=None, help="run name (default <model>-<data>, made unique)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out/--name from its last checkpoint, with the settings in its config.json")
        p.add_argument("--checkpoint-every", type=int, default=1000)
        p.add_argument("--log-every", type=int, default=250)
        p.add_argument("--steps-per-dispatch", type=int, default=250, help="steps fused in one lax.scan")
        p.add_argument("--ema-decay", type=float, default=None)
        p.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise",
                       help="a NaN/Inf loss or gradient stops the run (raise, default; the last checkpoint stays "
                       "the last good one) or its update is dropped and counted (skip)")
        p.add_argument("--eval-samples", type=int, default=1000, help="importance samples of the final test estimate")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument("--devices", type=int, default=None,
                       help="data-parallel training on the first N devices (batch split along a mesh axis 'data'; "
                       "--batch-size must be divisible by N; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
        p.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default=None,
                       help="bfloat16: mixed precision, float32 params (conv VAE and UNet models; saved with the run)")
        _add_model_options(p, spec)

    s = sub.add_parser("sample", help="draw samples from a trained run and write a picture")
    s.add_argument("run_dir")
    s.add_argument("--num", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="output PNG (default RUN_DIR/samples-<seed>.png); .npy saves the array")

    e = sub.add_parser("eval", help="evaluate a trained run on its test split; writes RUN_DIR/eval.json")
    e.add_argument("run_dir")
    e.add_argument("--num-samples", type=int, default=5000, help="importance samples per example (VAE)")
    e.add_argument("--max-examples", type=int, default=None, help="evaluate the first N test examples only")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--data-dir", default=None)

    c = sub.add_parser("compare", help="train one model per family on the same data and budget; writes a report")
    c.add_argument("--data", default=DEFAULT_DATA, help=f"image data set with a feature classifier (default {DEFAULT_DATA})")
    c.add_argument("--data-dir", default=None, help="directory holding data files and the classifier cache")
    c.add_argument("--budget", type=int, default=None, help="training examples seen per family (default: 256000 on digits)")
    c.add_argument("--batch-size", type=int, default=64, help="examples per step, the same for every family (default 64)")
    c.add_argument("--seeds", type=int, default=3, help="seeds per family, trained at once with jax.vmap (default 3)")
    c.add_argument("--families", nargs="+", default=None, metavar="FAMILY", help="subset of vae gan flow diffusion (default all)")
    c.add_argument("--models", nargs="+", default=None, metavar="FAMILY=MODEL", help="e.g. gan=dcgan flow=realnvp")
    c.add_argument("--options", default=None, help='JSON {model: {option: value}}, e.g. \'{"vae": {"latent_dim": 8}}\'')
    c.add_argument("--num-samples", type=int, default=None, help="samples per seed scored against as many test images")
    c.add_argument("--iwae-samples", type=int, default=1000, help="importance samples of the VAE likelihood bound")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=None, help="output directory (default runs/compare-<data>)")
    c.add_argument("--no-progress", action="store_true")

    sub.add_parser("list", help="list models and data sets")
    return parser


#: Loop settings saved in config.json; a resumed run uses the saved values, so it makes the
#: same chunks, log records and checkpoints as the uninterrupted run.
LOOP_SETTINGS = ("log_every", "checkpoint_every", "steps_per_dispatch", "eval_samples", "on_nonfinite")


def _write_json_atomic(path: pathlib.Path, obj) -> None:
    """Writes ``obj`` to ``path`` via a temporary file and a rename: a kill never leaves a torn file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_config(run_dir: pathlib.Path) -> dict:
    path = run_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"run directory {str(run_dir)!r} has an unreadable config.json ({type(e).__name__}: {e})") from e
    missing = [k for k in ("model", "data") if k not in config] if isinstance(config, dict) else ["(not a JSON object)"]
    if missing:
        raise ValueError(f"run directory {str(run_dir)!r} has a config.json without {missing}: not a genjax run configuration")
    return config


def _unique_dir(parent: pathlib.Path, name: str) -> pathlib.Path:
    d, i = parent / name, 2
    while d.exists():
        d, i = parent / f"{name}-{i}", i + 1
    return d


def cmd_train(args) -> int:
    from genjax import _checks, registry
    from genjax.train import fit
    from genjax.train import with_compute_dtype
    from genjax.train.sharding import check_batch_size, data_mesh

    spec = registry.get_model_spec(args.model)
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}
    opts = registry.resolve_options(spec, given)
    config = {
        "model": args.model,
        "data": args.data,
        "steps": args.steps if args.steps is not None else spec.defaults["steps"],
        "batch_size": args.batch_size if args.batch_size is not None else spec.defaults["batch_size"],
        "lr": args.lr if args.lr is not None else spec.defaults["lr"],
        "seed": args.seed,
        "ema_decay": args.ema_decay,
        "options": opts,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "steps_per_dispatch": args.steps_per_dispatch,
        "eval_samples": args.eval_samples,
        "on_nonfinite": args.on_nonfinite,
        "compute_dtype": args.compute_dtype,
    }
    _checks.positive_int("--steps", config["steps"])
    _checks.positive_int("--batch-size", config["batch_size"])
    _checks.positive_float("--lr", config["lr"])
    _checks.positive_int("--eval-samples", args.eval_samples)
    _checks.positive_int("--log-every", args.log_every)
    _checks.positive_int("--checkpoint-every", args.checkpoint_every)
    _checks.positive_int("--steps-per-dispatch", args.steps_per_dispatch)
    if args.ema_decay is not None and not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema-decay must be in [0, 1), got {args.ema_decay!r}")
    mesh = None if args.devices is None else data_mesh(args.devices, name="--devices")
    if mesh is not None:
        check_batch_size(config["batch_size"], mesh, name="--batch-size")
    if args.data not in registry.dataset_names():
        raise ValueError(f"unknown data set {args.data!r}; valid choices: {', '.join(registry.dataset_names())}")

    parent = pathlib.Path(args.out)
    name = args.name or f"{args.model}-{args.data}"
    if args.resume:
        run_dir = parent / name
        if (run_dir / "config.json").exists():
            saved = _read_config(run_dir)
            if saved.get("model") != args.model or saved.get("data") != args.data:
                raise ValueError(
                    f"--resume: run directory {str(run_dir)!r} holds model {saved.get('model')!r} on "
                    f"{saved.get('data')!r}, not {args.model!r} on {args.data!r}"
                )
            # resume with the run's own config; runs written before the loop settings were
            # saved keep the flags given now
            config = {**saved, **{k: config[k] for k in LOOP_SETTINGS if k not in saved}}
    else:
        run_dir = parent / name if args.name and not (parent / name).exists() else _unique_dir(parent, name)
        if args.name and (parent / name).exists():
            raise ValueError(f"--name: run directory {str(parent / name)!r} already exists; pass --resume or another name")

    data = registry.load_data(config["data"], data_dir=args.data_dir, seed=config["seed"])
    model = spec.build(data, config["options"])
    transform = spec.transform(model, data)
    with_compute_dtype(model, config.get("compute_dtype"))  # a model without bf16 networks fails before the run dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.json").exists():  # a resumed run keeps its file untouched
        _write_json_atomic(run_dir / "config.json", config)
    print(f"genjax: training {args.model} on {config['data']} {data.shape} for {config['steps']} steps -> {run_dir}", file=sys.stderr)

    import jax

    def eval_fn(params, key):
        return {k: v for k, v in spec.evaluate(model, params, data, key, num_samples=config["eval_samples"]).items() if not isinstance(v, str)}

    t0 = time.perf_counter()
    result = fit(
        model,
        data.train,
        num_steps=config["steps"],
        batch_size=config["batch_size"],
        optimizer=_optimizer(config),
        seed=config["seed"],
        out_dir=run_dir,
        transform=transform,
        eval_fn=eval_fn,
        log_every=config["log_every"],
        checkpoint_every=config["checkpoint_every"],
        steps_per_dispatch=config["steps_per_dispatch"],
        ema_decay=config["ema_decay"],
        on_nonfinite=config["on_nonfinite"],
        resume=args.resume,
        progress=not args.no_progress,
        mesh=mesh,
        compute_dtype=config.get("compute_dtype"),
    )
    params = result.state.ema_params if result.state.ema_params is not None else result.state.params
    written = spec.artifacts(model, params, data, run_dir, jax.random.PRNGKey(config["seed"] + 1))
    final = [r for r in result.history if r["kind"] == "eval"]
    summary = {
        "run_dir": str(run_dir),
        "steps": int(result.state.step),
        "final_train_loss": next((r["loss"] for r in reversed(result.history) if r["kind"] == "train"), None),
        **(final[-1] if final else {}),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "files": ["config.json", "metrics.jsonl", "checkpoints/"] + written,
    }
    summary.pop("kind", None)
    summary.pop("step", None)
    print(json.dumps(summary, indent=2))
    return 0


def _load_run(run_dir: str, data_dir=None):
    from genjax import registry
    from genjax.train import restore_params

    rd = pathlib.Path(run_dir)
    if not (rd / "config.json").exists():
        raise FileNotFoundError(f"run_dir {str(rd)!r} has no config.json: not a genjax run directory")
    config = _read_config(rd)
    spec = registry.get_model_spec(config["model"])
    data = registry.load_data(config["data"], data_dir=data_dir, seed=config["seed"])
    model = spec.build(data, config["options"])
    state = restore_params(rd, model, data.train[:2], optimizer=_optimizer(config), ema=config.get("ema_decay") is not None)
    params = state.ema_params if state.ema_params is not None else state.params
    return rd, config, spec, data, model, params, int(state.step)


def cmd_sample(args) -> int:
    import jax
    import numpy as np

    from genjax import _checks, viz

    _checks.positive_int("--num", args.num)
    rd, config, spec, data, model, params, step = _load_run(args.run_dir)
    key = jax.random.PRNGKey(args.seed)
    out = pathlib.Path(args.out) if args.out else rd / f"samples-{args.seed}.png"
    custom = getattr(spec, "sample", None)  # a family's own `genjax sample` (ModelSpec.sample), if any
    if custom is not None:
        draw = lambda **kw: np.asarray(custom(model, params, key, args.num, data))
    else:
        draw = lambda **kw: np.asarray(model.sample(params, key, args.num, **kw))
    if out.suffix == ".npy":
        np.save(out, draw())
    elif data.kind == "image":
        x = draw().reshape(-1, *data.shape)  # a model samples in its data space (an image VAE: E[x|z])
        viz.save_image_grid(out, x, scale=max(1, 128 // data.shape[0]))
    else:
        viz.scatter_2d(draw(), reference=data.test, marks=data.toy.modes if data.toy else None).save(out)
    print(f"wrote {args.num} samples of {config['model']} (step {step}) to {out}")
    return 0


def cmd_eval(args) -> int:
    import jax

    from genjax import _checks

    _checks.positive_int("--num-samples", args.num_samples)
    if args.max_examples is not None:
        _checks.positive_int("--max-examples", args.max_examples)
    rd, config, spec, data, model, params, step = _load_run(args.run_dir, args.data_dir)
    t0 = time.perf_counter()
    # the one evaluation path (genjax.metrics.evaluation.evaluate) with the domain classifier on images
    metrics = spec.evaluate(model, params, data, jax.random.PRNGKey(args.seed), num_samples=args.num_samples,
                            max_examples=args.max_examples, classifier="auto", data_dir=args.data_dir)
    metrics = {"model": config["model"], "data": config["data"], "step": step, **metrics, "eval_time_s": round(time.perf_counter() - t0, 2)}
    (rd / "eval.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_compare(args, argv=None) -> int:
    from genjax import _checks
    from genjax import compare as cmp

    families = tuple(args.families) if args.families else cmp.FAMILIES
    models = {}
    for item in args.models or ():
        fam, sep, name = item.partition("=")
        if not sep or not fam or not name:
            raise ValueError(f"--models takes FAMILY=MODEL items such as gan=dcgan, got {item!r}")
        models[fam] = name
    options = None
    if args.options is not None:
        try:
            options = json.loads(args.options)
        except ValueError as e:
            raise ValueError(f"--options must be a JSON object such as '{{\"vae\": {{\"latent_dim\": 8}}}}': {e}") from None
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ValueError("--options must be a JSON object of objects, {model: {option: value}}")
    if args.budget is not None:
        _checks.positive_int("--budget", args.budget)
    _checks.positive_int("--seeds", args.seeds)
    _checks.positive_int("--batch-size", args.batch_size)
    if args.num_samples is not None:
        _checks.positive_int("--num-samples", args.num_samples)
    _checks.positive_int("--iwae-samples", args.iwae_samples)
    out = args.out or f"runs/compare-{args.data}"
    command = "genjax " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    report = cmp.compare(
        args.data, budget=args.budget, seeds=args.seeds, out_dir=out, families=families, models=models or None,
        options=options, batch_size=args.batch_size, num_samples=args.num_samples, iwae_samples=args.iwae_samples,
        seed=args.seed, data_dir=args.data_dir, progress=not args.no_progress, command=command,
    )
    summary = {
        "out": out,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "families": {
            f: {"model": r["model"], "bits_per_dim": r["bits_per_dim"], "fid": r["quality"]["fid"], "diverged_seeds": r["diverged_seeds"]}
            for f, r in report["families"].items()
        },
        "baseline_fid": report["baseline"]["fid"],
        "files": report["files"],
    }
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            from genjax import registry

            print(registry.describe())
            return 0
        if args.command == "compare":
            return cmd_compare(args, argv)
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval}[args.command](args)
    except KeyboardInterrupt:
        print("genjax: interrupted (the last checkpoint is intact; resume with --resume)", file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError, RuntimeError) as e:
        msg = " ".join(str(e).split())
        print(f"genjax: error: {msg}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else: still one line, the traceback only on request
        if os.environ.get("GENJAX_DEBUG"):
            raise
        msg = " ".join(str(e).split())
        print(f"genjax: error: {type(e).__name__}: {msg} (set GENJAX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
