"""``genjax`` command line: ``train``, ``sample``, ``eval``, ``runs``, ``compare``, ``serve``, ``list``.

    genjax train vae                       # VAE on the bundled 8x8 digits
    genjax train vae --data mnist --steps 20000 --latent-dim 32
    genjax sample runs/vae-digits --num 64
    genjax eval runs/vae-digits --num-samples 5000
    genjax runs                            # the runs under runs/: model, data, step, main figure
    genjax serve runs/ldm runs/unclip      # a local page to prompt text-to-image runs (pip install -e ".[serve]")
    genjax compare --data digits           # VAE, GAN, flow, diffusion on the same data
    genjax compare --data mnist-captions   # text-to-image: class-conditional DDPM, ldm, unCLIP

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
import threading
import time

DEFAULT_DATA = "digits"


def _optimizer(config: dict):
    from genjax import registry

    return registry.get_model_spec(config["model"]).optimizer(config)


def _read_config(run_dir) -> dict:
    """``registry.read_run_config`` (the registry imported on use: ``genjax --help`` stays fast)."""
    from genjax import registry

    return registry.read_run_config(run_dir)


def _train_data(spec, data, options: dict, num: int | None = None):
    """``registry.train_data``: what ``fit`` trains on (its first ``num`` examples)."""
    from genjax import registry

    return registry.train_data(spec, data, options, num)


def _flag(option_name: str) -> str:
    return "--" + option_name.replace("_", "-")


def _add_model_options(p: argparse.ArgumentParser, spec) -> None:
    g = p.add_argument_group(f"{spec.name} options")
    for name, o in spec.options.items():
        # a None default is data-dependent: the option's help says what it resolves to
        help_ = o.help if o.default is None else f"{o.help} (default: {o.default})"
        kw = dict(dest=f"opt_{name}", default=None, help=help_, metavar=name.upper())
        if o.choices:
            kw["choices"] = o.choices
            kw.pop("metavar")  # argparse shows {a,b,c}
        g.add_argument(_flag(name), type=o.type, **kw)


#: What ``train --eval-samples`` means to each family's end-of-run evaluation.
_EVAL_SAMPLES_HELP = {
    "vae": "importance samples per test example of the end-of-run likelihood estimate (default 1000)",
    "diffusion": "samples drawn for the end-of-run sample statistics (default 1000; at most 2000 on images)",
    "flows": "not used by flows: their likelihood is exact",
    "gan": "not used by GANs: their end-of-run evaluation draws a fixed number of samples",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``genjax: error: ...``), exit status 2, like every other error."""

    def error(self, message):
        where = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""  # e.g. "train vae: "
        self.exit(2, f"genjax: error: {where}{' '.join(message.split())} (see {self.prog} --help)\n")


_DATA_DIR_HELP = ("directory holding the data files, e.g. DIR/mnist/*.gz (default: $GENJAX_DATA_DIR, "
                  "else ~/.cache/genjax; missing files are downloaded there)")


def build_parser() -> argparse.ArgumentParser:
    from genjax import registry

    parser = _Parser(prog="genjax", description="Deep generative models as pure JAX functions.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,eval,runs,plot,compare,serve,list}", parser_class=_Parser)

    train = sub.add_parser("train", help="train a model; writes runs/<name>/")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL", help=", ".join(sorted(registry.MODELS)),
                                  parser_class=_Parser)
    for name, spec in sorted(registry.MODELS.items()):
        p = models.add_parser(name, help=spec.description, description=spec.description)
        p.add_argument("--data", default=DEFAULT_DATA, help=f"data set (default {DEFAULT_DATA}); `genjax list` shows all")
        p.add_argument("--data-dir", default=None, metavar="DIR", help=_DATA_DIR_HELP)
        p.add_argument("--steps", type=int, default=None, metavar="N", help=f"optimizer steps (default {spec.defaults['steps']})")
        p.add_argument("--batch-size", type=int, default=None, metavar="N",
                       help=f"examples per step (default {spec.defaults['batch_size']})")
        p.add_argument("--lr", type=float, default=None, help=f"learning rate (default {spec.defaults['lr']})")
        p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the run: initialisation, batches, noise (default 0)")
        p.add_argument("--out", default="runs", metavar="DIR", help="parent directory of run directories (default runs)")
        p.add_argument("--name", default=None, help="run name (default <model>-<data>, made unique)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out/--name from its last checkpoint, with the settings in its config.json")
        p.add_argument("--checkpoint-every", type=int, default=1000, metavar="N", help="steps between checkpoints (default 1000; one is always written at the end)")
        p.add_argument("--log-every", type=int, default=250, metavar="N", help="steps between records of metrics.jsonl (default 250)")
        p.add_argument("--steps-per-dispatch", type=int, default=250, metavar="N", help="steps fused in one lax.scan (default 250)")
        p.add_argument("--ema-decay", type=float, default=None, metavar="D",
                       help="keep an exponential moving average of the parameters with this decay in [0, 1), "
                       "used for sampling and evaluation (default: none)")
        p.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise",
                       help="a NaN/Inf loss or gradient stops the run (raise, default; the last checkpoint stays "
                       "the last good one) or its update is dropped and counted (skip)")
        p.add_argument("--eval-samples", type=int, default=1000, metavar="N", help=_EVAL_SAMPLES_HELP.get(spec.family, "evaluation samples (default 1000)"))
        p.add_argument("--eval-examples", type=int, default=None, metavar="N",
                       help="evaluate on the first N test examples only (default: the family's evaluation size)")
        p.add_argument("--no-eval", action="store_true", help="skip the end-of-run evaluation on the test split")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--devices", type=int, default=None, metavar="N",
                       help="data-parallel training on the first N devices (batch split along a mesh axis 'data'; "
                       "--batch-size must be divisible by N; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
        p.add_argument("--compute-dtype", choices=("float32", "bfloat16"), default=None,
                       help="bfloat16: mixed precision, float32 params (conv VAE and UNet models; saved with the run)")
        p.add_argument("--num-processes", type=int, default=None, metavar="N",
                       help="train one run data-parallel on N processes (hosts), each started with the same command "
                       "and its own --process-id (default $JAX_NUM_PROCESSES, else 1)")
        p.add_argument("--process-id", type=int, default=None, metavar="I",
                       help="this process's index in 0..N-1 (default $JAX_PROCESS_ID); process 0 writes the run's files")
        p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="address of process 0, the same for every process (default $JAX_COORDINATOR_ADDRESS)")
        p.add_argument("--heartbeat-timeout", type=int, default=100, metavar="S",
                       help="with --num-processes: seconds without news after which a process counts as dead "
                       "and the others stop with an error (default 100)")
        _add_model_options(p, spec)

    s = sub.add_parser("sample", help="draw samples from a trained run and write a picture")
    s.add_argument("run_dir", help="a run directory written by genjax train")
    s.add_argument("--num", type=int, default=64, metavar="N", help="number of samples (default 64)")
    s.add_argument("--seed", type=int, default=0, metavar="N", help="sampling seed (default 0)")
    s.add_argument("--out", default=None, help="output PNG (default RUN_DIR/samples-<seed>.png); .npy saves the array")
    s.add_argument("--data-dir", default=None, metavar="DIR", help=_DATA_DIR_HELP)
    s.add_argument("--prompt", default=None, help='text-to-image models (ldm, ddpm-text, unclip): the caption to draw, e.g. "a thick 7"')
    s.add_argument("--negative-prompt", default=None, metavar="TEXT",
                   help="ldm, ddpm-text: guide away from this caption instead of the empty one (needs --prompt and --guidance)")
    s.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance weight w >= 0 (with --prompt or --variations-of; default: none)")
    s.add_argument("--sampler", default=None, metavar="NAME",
                   help="diffusion models: the sampler (ddpm, ddim, pc, ode, dpm++2m, dpm2, dpm3, euler, heun; "
                        "default: the model's)")
    s.add_argument("--steps", type=int, default=None, metavar="N", help="diffusion models: the sampler's steps")
    s.add_argument("--variations-of", default=None, metavar="IMAGE",
                   help="unclip: new images from this image's CLIP embedding (.png, .npy (H, W[, 1]) or (n, H, W[, 1]) "
                        "in [0, 1], or test:N for the N-th test image); --num of them per image")
    s.add_argument("--init-image", default=None, metavar="FILE",
                   help="image-to-image / inpainting: start from this image (.npy (H, W[, 1]) or (n, H, W[, 1]) in [0, 1], or .png)")
    s.add_argument("--strength", type=float, default=None, metavar="S",
                   help="with --init-image: noise its latent to strength S in [0, 1] and denoise under --prompt (image-to-image)")
    s.add_argument("--keep", choices=("left", "right", "top", "bottom"), default=None,
                   help="with --init-image: inpainting: keep this half of the image, draw the rest under --prompt")

    sv = sub.add_parser("serve", help="a local web page to prompt text-to-image runs (ldm, ddpm-text, unclip) and browse them")
    sv.add_argument("run_dirs", nargs="+", metavar="RUN", help="run directories written by genjax train")
    sv.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    sv.add_argument("--data-dir", default=None, metavar="DIR", help=_DATA_DIR_HELP)
    sv.add_argument("--max-batch", type=int, default=4, metavar="N",
                    help="the most requests drawn by one compiled sampler call (a power of two; default 4)")

    e = sub.add_parser("eval", help="evaluate a trained run on its test split; writes RUN_DIR/eval.json")
    e.add_argument("run_dir", help="a run directory written by genjax train")
    e.add_argument("--num-samples", type=int, default=5000, metavar="N", help="importance samples per example (VAE)")
    e.add_argument("--max-examples", type=int, default=None, metavar="N", help="evaluate the first N test examples only")
    e.add_argument("--seed", type=int, default=0, metavar="N", help="evaluation seed (default 0)")
    e.add_argument("--data-dir", default=None, metavar="DIR", help=_DATA_DIR_HELP)
    e.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("runs", help="list the runs in a directory: model, data, step and main figure")
    r.add_argument("dir", nargs="?", default="runs", help="parent directory of run directories (default runs)")

    c = sub.add_parser("compare", help="train one model per family on the same data and budget; writes a report")
    c.add_argument("--data", default=DEFAULT_DATA, help=f"image data set with a feature classifier (default {DEFAULT_DATA})")
    c.add_argument("--data-dir", default=None, metavar="DIR", help="directory holding data files and the classifier cache")
    c.add_argument("--budget", type=int, default=None, help="training examples seen per family (default: 256000 on digits; "
                   "captioned data: per text-to-image model, 25600)")
    c.add_argument("--batch-size", type=int, default=None, help="examples per step, the same for every family (default 64)")
    c.add_argument("--seeds", type=int, default=None, help="seeds per family, trained at once with jax.vmap (default 3; "
                   "captioned data: seeds of each model's generative stages, default 2)")
    c.add_argument("--families", nargs="+", default=None, metavar="FAMILY", help="subset of vae gan flow diffusion (default all)")
    c.add_argument("--models", nargs="+", default=None, metavar="FAMILY=MODEL", help="e.g. gan=dcgan flow=realnvp")
    c.add_argument("--options", default=None, help='JSON {model: {option: value}}, e.g. \'{"vae": {"latent_dim": 8}}\'')
    c.add_argument("--num-samples", type=int, default=None, help="samples per seed scored against as many test images")
    c.add_argument("--iwae-samples", type=int, default=None, help="importance samples of the VAE likelihood bound (default 1000)")
    c.add_argument("--seed", type=int, default=0, metavar="N", help="first seed (default 0)")
    c.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/compare-<data>)")
    c.add_argument("--no-pairs", action="store_true", help="captioned data: skip the mnist-pairs runs (held-out pair "
                   "accuracy n/a)")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")

    pl = sub.add_parser("plot", help="draw a run's curves (loss, gradient norm, evaluation metrics) from its metrics.jsonl")
    pl.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `genjax train` (holds metrics.jsonl)")
    pl.add_argument("--out", default=None, metavar="PNG", help="output PNG (default: RUN_DIR/curves.png)")

    sub.add_parser("list", help="list models and data sets")
    return parser


#: Loop settings saved in config.json; a resumed run uses the saved values, so it makes the
#: same chunks, log records and checkpoints as the uninterrupted run.
LOOP_SETTINGS = ("log_every", "checkpoint_every", "steps_per_dispatch", "eval_samples", "eval_examples", "no_eval", "on_nonfinite")


def _write_json_atomic(path: pathlib.Path, obj) -> None:
    """Writes ``obj`` to ``path`` through :func:`genjax.results.atomic_write` (a temporary file and a
    rename): a kill never leaves a torn file."""
    from genjax.results import atomic_write

    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def _unique_dir(parent: pathlib.Path, name: str) -> pathlib.Path:
    d, i = parent / name, 2
    while d.exists():
        d, i = parent / f"{name}-{i}", i + 1
    return d


def _load_data(name: str, data_dir, seed: int):
    """``registry.load_data`` with a data-not-found error phrased for the command line."""
    from genjax import registry
    from genjax.data import download as dl

    try:
        return registry.load_data(name, data_dir=data_dir, seed=seed)
    except dl.DataNotFoundError as e:
        if data_dir is not None:
            source = "given by --data-dir"
        elif os.environ.get(dl.ENV_VAR):
            source = f"from ${dl.ENV_VAR}"
        else:
            source = f"the default: neither --data-dir nor ${dl.ENV_VAR} is set"
        if (e.root / e.file).is_file():  # pointed at the data set's own folder
            fix = f"it holds the {e.dataset} files itself, so pass its parent: --data-dir {e.root.parent}"
        else:
            fix = (f"pass --data-dir DIR or set {dl.ENV_VAR}=DIR, where DIR/{e.dataset}/ holds the {e.dataset} files; "
                   f"or retry online to download them into {e.root / e.dataset}/")
        raise DataNotFoundError(
            f"data set {name!r} not found: no file {e.path}, and could not download it "
            f"({'; '.join(e.reasons)}). Data directory: {e.root} ({source}). Fix: {fix}."
        ) from None


class DataNotFoundError(OSError):
    """The command line's data-not-found error (one message, flags named)."""


def _check_int_lists(opts: dict, spec) -> None:
    """Options given as comma-separated integers (``--hidden 256,128``) parse, else the flag is named."""
    from genjax import registry

    for name, o in spec.options.items():
        default, value = o.default, opts.get(name)
        if isinstance(default, str) and default.replace(",", "").isdigit() and value is not None:
            try:
                registry.int_tuple(value)
            except ValueError as e:
                raise ValueError(f"{_flag(name)}: {e}") from None


def _preflight(model, data, transform, config: dict, first=None) -> None:
    """The checks ``fit`` makes before any work, made before the run directory exists.

    A run directory is created only for a run that can start: a failed check leaves
    nothing behind, so the corrected command can reuse the name.
    """
    import jax
    import jax.numpy as jnp

    n, batch = len(data.train), config["batch_size"]
    if batch > n:
        raise ValueError(f"--batch-size {batch} is larger than the training split of {data.name!r} ({n} examples)")
    if config["options"].get("likelihood") == "bernoulli":
        lo, hi = float(data.train.min()), float(data.train.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"--likelihood bernoulli needs data in [0, 1], but {data.name!r} ranges over [{lo:.3g}, {hi:.3g}]; "
                "use --likelihood gaussian_learned (or gaussian) for real-valued data"
            )
    first = jax.tree_util.tree_map(jnp.asarray, data.train[:batch] if first is None else first)
    checked = transform(jax.random.PRNGKey(0), first) if transform is not None else first
    if hasattr(model, "check_batch"):
        model.check_batch(checked, name="train_data")
    jax.eval_shape(model.init, jax.random.PRNGKey(0), checked)  # a model that cannot take this data fails here


def _checkpoint_steps(run_dir: pathlib.Path) -> list[int]:
    from genjax.train import Checkpointer

    if not (run_dir / "checkpoints").is_dir():
        return []
    ckpt = Checkpointer(run_dir / "checkpoints")
    try:
        return ckpt.steps()
    finally:
        ckpt.close()


def _metric_records(run_dir: pathlib.Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # a torn last line of a killed run
    return records


def _remove_unstarted_run(run_dir: pathlib.Path) -> None:
    """Removes a run directory this command created when the run failed before training anything."""
    if _checkpoint_steps(run_dir) or _metric_records(run_dir):
        return
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def _join_processes(args):
    """``--num-processes/--process-id/--coordinator`` (or ``$JAX_*``) checked, and this
    process joined to the others before any JAX work; the group, or None for one process."""
    from genjax.train import distributed

    group = distributed.process_group(args.num_processes, args.process_id, args.coordinator,
                                      names=("--num-processes", "--process-id", "--coordinator"))
    if group is None:
        return None
    if not args.name:
        raise ValueError(f"--num-processes {group.num_processes}: give the run a --name, the same in every process "
                         "(each process must find the same run directory)")
    distributed.initialize(group, heartbeat_timeout_s=args.heartbeat_timeout)
    return group


def cmd_train(args) -> int:
    from genjax import _checks, registry
    from genjax.train import distributed, fit
    from genjax.train import with_compute_dtype
    from genjax.train.sharding import check_batch_size, data_mesh

    _checks.positive_int("--heartbeat-timeout", args.heartbeat_timeout)
    group = _join_processes(args)
    primary = distributed.is_primary()
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
        "eval_examples": args.eval_examples,
        "no_eval": args.no_eval,
        "on_nonfinite": args.on_nonfinite,
        "compute_dtype": args.compute_dtype,
    }
    _checks.positive_int("--steps", config["steps"])
    _checks.positive_int("--batch-size", config["batch_size"])
    _checks.positive_float("--lr", config["lr"])
    _checks.positive_int("--eval-samples", args.eval_samples)
    if args.eval_examples is not None:
        _checks.positive_int("--eval-examples", args.eval_examples)
    _checks.positive_int("--log-every", args.log_every)
    _checks.positive_int("--checkpoint-every", args.checkpoint_every)
    _checks.positive_int("--steps-per-dispatch", args.steps_per_dispatch)
    if args.ema_decay is not None and not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema-decay must be in [0, 1), got {args.ema_decay!r}")
    mesh = None if args.devices is None and group is None else data_mesh(args.devices, name="--devices")
    if group is not None:
        distributed.check_mesh_processes(mesh, name="--devices")
    if mesh is not None:
        check_batch_size(config["batch_size"], mesh, name="--batch-size")
    if args.data not in registry.dataset_names():
        raise ValueError(f"unknown data set {args.data!r}; valid choices: {', '.join(registry.dataset_names())}")
    _check_int_lists(opts, spec)

    parent = pathlib.Path(args.out)
    name = args.name or f"{args.model}-{args.data}"
    resumed_from = None
    if args.resume:
        run_dir = parent / name
        if not (run_dir / "config.json").exists():
            what = "does not exist" if not run_dir.exists() else "has no config.json"
            raise FileNotFoundError(
                f"--resume: run directory {str(run_dir)!r} {what}: there is no run {name!r} to resume "
                f"in {str(parent)!r} (check --name and --out, or drop --resume to start a new run)"
            )
        saved = _read_config(run_dir)
        if saved.get("model") != args.model or saved.get("data") != args.data:
            raise ValueError(
                f"--resume: run directory {str(run_dir)!r} holds model {saved.get('model')!r} on "
                f"{saved.get('data')!r}, not {args.model!r} on {args.data!r}"
            )
        # resume with the run's own config; runs written before the loop settings were
        # saved keep the flags given now
        config = {**saved, **{k: config[k] for k in LOOP_SETTINGS if k not in saved}}
        steps = _checkpoint_steps(run_dir)
        resumed_from = steps[-1] if steps else None
    else:
        if args.name and (parent / name).exists():
            raise ValueError(f"--name: run directory {str(parent / name)!r} already exists; pass --resume or another name")
        run_dir = parent / name if args.name else _unique_dir(parent, name)

    # everything is checked before the run directory exists: data, model, batch size, precision
    data = _load_data(config["data"], args.data_dir, config["seed"])
    model = spec.build(data, config["options"])
    stages = None
    if spec.stages is not None:  # a pipeline: every option checked and the first stage's data checked here
        if args.devices is not None or group is not None or config.get("compute_dtype") is not None:
            raise ValueError(f"--devices / --num-processes / --compute-dtype: model {args.model!r} trains as stages, "
                             "which take none of them")
        stages = spec.stages(data, config, run_dir=run_dir, data_dir=args.data_dir)
        first = stages[0]
        if hasattr(first.model, "init"):
            _preflight(first.model, data, first.fit_kwargs.get("transform"),
                       {**config, "batch_size": first.fit_kwargs.get("batch_size", config["batch_size"])},
                       _train_data(spec, data, config["options"], first.fit_kwargs.get("batch_size", config["batch_size"])))
    else:
        transform = spec.transform(model, data)
        with_compute_dtype(model, config.get("compute_dtype"))
        _preflight(model, data, transform, config,
                   None if spec.train_data is None else _train_data(spec, data, config["options"], config["batch_size"]))
    distributed.barrier("genjax-train-checked")  # every process has checked the run directory before any creates it
    created = not run_dir.exists() and primary
    run_dir.mkdir(parents=True, exist_ok=True)
    args.run_dir_created = run_dir  # for the interrupt message
    if primary and not (run_dir / "config.json").exists():  # a resumed run keeps its file untouched
        _write_json_atomic(run_dir / "config.json", config)
    where = f" on {mesh.size} devices" if mesh is not None and mesh.size > 1 else ""
    if group is not None:
        where += f" of {group.num_processes} processes"
    resuming = f", resuming from step {resumed_from}" if resumed_from is not None else ""
    if primary:
        print(f"genjax: training {args.model} on {config['data']} {data.shape} for {config['steps']} steps{where}"
              f"{resuming} -> {run_dir}", file=sys.stderr)
    try:
        if stages is not None:
            return _train_stages(args, config, spec, data, stages, run_dir)
        return _train_run(args, config, spec, data, model, transform, run_dir, mesh, fit)
    except Exception:  # (an interrupted run keeps its directory: the interrupt message says --resume)
        if created:
            _remove_unstarted_run(run_dir)
        raise


def _evaluate_kwargs(spec, **kw) -> dict:
    """The keywords in ``kw`` that ``spec.evaluate`` takes (``quick``, ``progress``: not every
    family's evaluation has them)."""
    import inspect

    taken = inspect.signature(spec.evaluate).parameters
    return {k: v for k, v in kw.items() if k in taken}


def _train_run(args, config, spec, data, model, transform, run_dir, mesh, fit) -> int:
    import jax

    from genjax.train.sharding import to_local

    notes, eval_times = [], []

    def eval_fn(params, key):
        t = time.perf_counter()
        metrics = spec.evaluate(model, params, data, key, num_samples=config["eval_samples"],
                                max_examples=config.get("eval_examples"),
                                **_evaluate_kwargs(spec, quick=True, progress=not args.no_progress))
        # the evaluation's seconds go to the summary, not metrics.jsonl: a run's log stays the
        # same bytes for the same seed (tests/reliability compares them)
        eval_times.append(round(time.perf_counter() - t, 2))
        if isinstance(metrics.get("evaluation"), str):
            notes.append(metrics["evaluation"])
        return {k: v for k, v in metrics.items() if not isinstance(v, str)}

    t0 = time.perf_counter()
    result = fit(
        model,
        _train_data(spec, data, config["options"]),
        num_steps=config["steps"],
        batch_size=config["batch_size"],
        optimizer=_optimizer(config),
        seed=config["seed"],
        out_dir=run_dir,
        transform=transform,
        eval_fn=None if config.get("no_eval") else eval_fn,
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
    if jax.process_index() != 0:  # the other processes trained; process 0 writes the pictures and the summary
        return 0
    params = result.state.ema_params if result.state.ema_params is not None else result.state.params
    if mesh is not None:  # host copies of the replicated parameters, for single-device sampling
        params = jax.tree_util.tree_map(jax.numpy.asarray, to_local(params))
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
    if eval_times:
        summary["eval_time_s"] = eval_times[-1]
    if notes:
        summary["evaluation"] = notes[-1]
    print(json.dumps(summary, indent=2))
    if notes:
        print(f"genjax: the end-of-run evaluation was {notes[-1]}; the full one: genjax eval {run_dir}", file=sys.stderr)
    return 0


def _train_stages(args, config, spec, data, stages, run_dir: pathlib.Path) -> int:
    """``genjax train`` of a staged model: ``fit_stages`` in ``RUN/<stage>/`` (each stage resumable),
    then the pictures and (unless ``--no-eval``) the evaluation of the last stage's model."""
    import jax

    from genjax.train import fit_stages

    if not (run_dir / "stages.json").exists():
        _write_json_atomic(run_dir / "stages.json", [{"name": s.name, "steps": s.num_steps} for s in stages])
    t0 = time.perf_counter()
    result = fit_stages(stages, _train_data(spec, data, config["options"]), seed=config["seed"], out_dir=run_dir,
                        resume=args.resume, progress=not args.no_progress)
    last = stages[-1].name
    model, params = result.models[last], result.params[last]
    written = spec.artifacts(model, params, data, run_dir, jax.random.PRNGKey(config["seed"] + 1))
    summary = {"run_dir": str(run_dir), "stages": {}}
    for s in stages:
        r = result.results[s.name]
        loss = next((h["loss"] for h in reversed(r.history) if h["kind"] == "train" and "loss" in h), None)
        summary["stages"][s.name] = {"steps": int(r.state.step), "final_train_loss": loss,
                                     "train_time_s": getattr(r, "train_time_s", None)}
    if not config.get("no_eval"):
        metrics = spec.evaluate(model, params, data, jax.random.PRNGKey(config["seed"] + 2),
                                num_samples=config["eval_samples"], max_examples=config.get("eval_examples"),
                                data_dir=args.data_dir)
        metrics = {"model": config["model"], "data": config["data"], "step": int(result.results[last].state.step), **metrics}
        _write_json_atomic(run_dir / "eval.json", metrics)
        summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        written.append("eval.json")
    summary.update(wall_time_s=round(time.perf_counter() - t0, 1),
                   files=["config.json", "stages.json"] + [f"{s.name}/" for s in stages] + written)
    print(json.dumps(summary, indent=2))
    return 0


def _stage_names(run_dir: pathlib.Path) -> list[str]:
    """The stages of a staged run, in order (``stages.json``); [] for a single run."""
    path = run_dir / "stages.json"
    if not path.is_file():
        return []
    try:
        return [s["name"] for s in json.loads(path.read_text())]
    except (ValueError, KeyError, TypeError):
        return []


def _load_run(run_dir: str, data_dir=None):
    """``registry.restore_run`` of ``run_dir``, its data loaded with the command line's
    data-not-found message: ``(run_dir, config, spec, data, model, params, step)``."""
    from genjax import registry

    config = registry.read_run_config(run_dir)
    data = _load_data(config["data"], data_dir, config["seed"])
    run = registry.restore_run(run_dir, data, data_dir=data_dir)
    return pathlib.Path(run_dir), run.config, run.spec, data, run.model, run.params, run.step


def cmd_sample(args) -> int:
    import jax
    import numpy as np

    from genjax import _checks, viz

    _checks.positive_int("--num", args.num)
    text = {k: v for k, v in (("prompt", args.prompt), ("guidance", args.guidance),
                              ("negative_prompt", args.negative_prompt)) if v is not None}
    if args.negative_prompt is not None and (args.prompt is None or args.guidance is None or args.init_image):
        raise ValueError("--negative-prompt takes the empty caption's place in classifier-free guidance: "
                         "it needs --prompt and --guidance (and no --init-image)")
    if args.guidance is not None and args.prompt is None and args.variations_of is None:
        raise ValueError("--guidance needs --prompt (the caption to guide towards) or --variations-of")
    if args.variations_of is not None and (args.prompt is not None or args.init_image is not None):
        raise ValueError("--variations-of draws from an image's embedding: it takes no --prompt or --init-image")
    if (args.strength is not None or args.keep is not None) == (args.init_image is None):
        raise ValueError("--init-image goes with one of --strength (image-to-image) or --keep (inpainting)")
    if args.strength is not None and args.keep is not None:
        raise ValueError("--strength (image-to-image) and --keep (inpainting) exclude each other")
    rd, config, spec, data, model, params, step = _load_run(args.run_dir, args.data_dir)
    if (text or args.init_image) and model.condition.kind != "tokens":
        raise ValueError(f"--prompt/--guidance/--init-image: model {config['model']!r} takes no text "
                         f"(it takes {model.condition.describe()}); use a text-to-image model (ldm, ddpm-text)")
    key = jax.random.PRNGKey(args.seed)
    out = pathlib.Path(args.out) if args.out else rd / f"samples-{args.seed}.png"
    args.sampler_kw = {k: v for k, v in (("sampler", args.sampler), ("steps", args.steps)) if v is not None}
    if args.sampler_kw and not _takes_sampler(model):
        raise ValueError(f"--sampler/--steps: model {config['model']!r} has no sampler to choose (diffusion models do)")
    custom = getattr(spec, "sample", None)  # a family's own `genjax sample` (ModelSpec.sample), if any
    if args.variations_of is not None:
        if not callable(getattr(model, "variations", None)):
            raise ValueError(f"--variations-of: model {config['model']!r} cannot make variations of an image "
                             "(unclip can: it decodes from the image's CLIP embedding)")
        draw = lambda **kw: _variations(model, params, key, args, data)
    elif args.init_image is not None:
        draw = lambda **kw: _edit(model, params, key, args, data)
    elif custom is not None:
        draw = lambda **kw: np.asarray(custom(model, params, key, args.num, data, **text, **args.sampler_kw))
    else:
        draw = lambda **kw: np.asarray(model.sample(params, key, args.num, **args.sampler_kw))
    if out.suffix == ".npy":
        np.save(out, draw())
    elif data.kind == "image":
        x = draw().reshape(-1, *data.shape)  # a model samples in its data space (an image VAE: E[x|z])
        viz.save_image_grid(out, x, scale=max(1, 128 // data.shape[0]))
    else:
        viz.scatter_2d(draw(), reference=data.test, marks=data.toy.modes if data.toy else None).save(out)
    print(f"wrote {args.num} samples of {config['model']} (step {step}) to {out}")
    return 0


def _read_image(path: str, shape, flag: str = "--init-image", data=None) -> "np.ndarray":
    """``--init-image`` / ``--variations-of``: ``(n, *shape)`` float32 in [0, 1] from a .npy or a
    .png, or (with ``data``) ``test:N``, the N-th test image."""
    import numpy as np

    if data is not None and path.startswith("test:"):
        index = path[len("test:"):]
        test = data.test.images if hasattr(data.test, "images") else data.test
        if not index.isdigit() or int(index) >= len(test):
            raise ValueError(f"{flag}: test:N needs an index N in [0, {len(test)}), got {path!r}")
        return np.asarray(test[int(index)][None], np.float32)
    p = pathlib.Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{flag}: no file {str(p)!r}")
    if p.suffix == ".npy":
        x = np.load(p).astype(np.float32)
    else:
        from PIL import Image

        x = np.asarray(Image.open(p).convert("L"), np.float32) / 255.0
    if x.ndim == len(shape) - 1:
        x = x[..., None]
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape) or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"{flag} must hold images of shape {tuple(shape)} (or {tuple(shape[:-1])}) in [0, 1], "
                         f"got shape {x.shape[1:]} in [{x.min():.3g}, {x.max():.3g}]")
    return x


def _takes_sampler(model) -> bool:
    """Whether ``model.sample`` takes sampler keywords (a diffusion model, or a system around one)."""
    import inspect

    params = inspect.signature(model.sample).parameters
    return "sampler" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _variations(model, params, key, args, data):
    """``genjax sample --variations-of``: ``--num`` new images per given image, decoded from its
    CLIP image embedding at ``--guidance``."""
    import numpy as np

    x = _read_image(args.variations_of, data.shape, "--variations-of", data)
    return np.asarray(model.variations(params, key, x, num=args.num, guidance=args.guidance, **args.sampler_kw)
                      ).reshape(-1, *data.shape)


def _edit(model, params, key, args, data):
    """``genjax sample --init-image``: image-to-image (``--strength``) or inpainting (``--keep``)
    of the image(s) tiled to ``--num``, under ``--prompt`` at ``--guidance``."""
    import numpy as np

    from genjax.registry.ldm import prompt_tokens

    x = _read_image(args.init_image, data.shape)
    x = np.resize(x, (args.num, *data.shape)) if len(x) != args.num else x
    cond = None if args.prompt is None else prompt_tokens(model, [args.prompt] * args.num)
    if args.keep is None:
        return np.asarray(model.edit(params, key, x, strength=args.strength, cond=cond, guidance=args.guidance,
                                     **args.sampler_kw))
    h, w = data.shape[:2]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    known = {"left": cols < w // 2, "right": cols >= w // 2, "top": rows < h // 2, "bottom": rows >= h // 2}[args.keep]
    mask = np.broadcast_to(known, (args.num, h, w))
    return np.asarray(model.inpaint(params, key, x, mask if hasattr(model, "latent_mask") else mask[..., None],
                                    cond=cond, guidance=args.guidance, **args.sampler_kw))


def cmd_serve(args) -> int:
    """``genjax serve RUN [RUN ...]``: each run restored once (as ``genjax sample`` restores it),
    then served on one page until Ctrl-C (:mod:`genjax.serve`)."""
    import tempfile

    from genjax import serve

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in [1, 65535], got {args.port}")
    runs = []
    for rd in args.run_dirs:
        name = pathlib.Path(rd).resolve().name
        while name in {r.name for r in runs}:
            name += "+"
        runs.append(serve.ServedRun.from_loaded(name, _load_run(rd, args.data_dir)))
        print(f"loaded {rd} as {name!r} ({runs[-1].config['model']}, step {runs[-1].step})")
    engine = serve.Engine(runs, max_batch=args.max_batch, upload_dir=tempfile.mkdtemp(prefix="genjax-serve-"))
    print(f"genjax serve: http://{args.host}:{args.port}/ (Ctrl-C stops)")
    serve.run_server(engine, host=args.host, port=args.port)
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
                            max_examples=args.max_examples, classifier="auto", data_dir=args.data_dir,
                            **_evaluate_kwargs(spec, progress=not args.no_progress))
    metrics = {"model": config["model"], "data": config["data"], "step": step, **metrics, "eval_time_s": round(time.perf_counter() - t0, 2)}
    (rd / "eval.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


#: The headline figure of a run, first present wins: likelihood, then toy KL, then sample quality.
MAIN_FIGURES = ("test_bits_per_dim", "test_kl_nats", "test_nll_nats", "fid", "kid", "mean_error", "pixel_histogram_tv")


def _main_figure(metrics: dict) -> str:
    if all(isinstance(metrics.get(k), (int, float)) for k in ("hq_fraction", "modes_captured", "num_modes")):
        # a mode-coverage evaluation: quality first, then the modes it reaches
        return f"high quality {metrics['hq_fraction']:.1%}, modes {metrics['modes_captured']}/{metrics['num_modes']}"
    k = next((k for k in MAIN_FIGURES if isinstance(metrics.get(k), (int, float))), None)
    return "-" if k is None else f"{k} {metrics[k]:.4g}"


def _run_row(run_dir: pathlib.Path) -> dict | None:
    """One row of ``genjax runs``; None for a directory that is not a run."""
    try:
        config = _read_config(run_dir)
    except (ValueError, FileNotFoundError):
        return None
    stages = _stage_names(run_dir)
    records = _metric_records(run_dir / stages[-1] if stages else run_dir)
    evals = [r for r in records if r.get("kind") == "eval"]
    evaluated = None
    if (run_dir / "eval.json").is_file():
        try:
            evaluated = json.loads((run_dir / "eval.json").read_text())
        except ValueError:
            pass
    source, metrics = (("eval.json", evaluated) if isinstance(evaluated, dict)
                       else ("metrics.jsonl", evals[-1]) if evals else (None, {}))
    trained = max((r.get("step", 0) for r in records if r.get("kind") == "train"), default=0)
    return {
        "name": run_dir.name,
        "model": config["model"],
        "data": config["data"],
        "step": f"{trained}/{config.get('steps', '?')}",
        "figure": _main_figure(metrics),
        "from": source or "-",
    }


def cmd_runs(args) -> int:
    parent = pathlib.Path(args.dir)
    if not parent.is_dir():
        raise FileNotFoundError(f"runs directory {str(parent)!r} does not exist (runs are written to --out, default runs)")
    rows = [r for d in sorted(parent.iterdir()) if d.is_dir() and (r := _run_row(d)) is not None]
    if not rows:
        print(f"no runs in {str(parent)!r}", file=sys.stderr)
        return 0
    heads = {"name": "RUN", "model": "MODEL", "data": "DATA", "step": "STEP", "figure": "MAIN FIGURE", "from": "FROM"}
    widths = {k: max(len(h), *(len(str(r[k])) for r in rows)) for k, h in heads.items()}
    for r in [heads, *rows]:
        print("  ".join(str(r[k]).ljust(widths[k]) for k in heads).rstrip())
    return 0


def cmd_compare_t2i(args, argv=None) -> int:
    """``genjax compare --data mnist-captions``: the text-to-image table (genjax.compare_t2i)."""
    from genjax import _checks
    from genjax import compare_t2i as t2i

    for flag, given in (("--families", args.families), ("--models", args.models), ("--options", args.options),
                        ("--num-samples", args.num_samples), ("--iwae-samples", args.iwae_samples)):
        if given is not None:
            raise ValueError(f"{flag}: the text-to-image table (--data {args.data}) has fixed rows (ddpm-cfg, ldm, "
                             "unclip) and takes --budget, --batch-size, --seeds, --no-pairs")
    for flag, v in (("--budget", args.budget), ("--batch-size", args.batch_size), ("--seeds", args.seeds)):
        if v is not None:
            _checks.positive_int(flag, v)
    out = args.out or f"runs/compare-{args.data}"
    command = "genjax " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    report = t2i.compare_t2i(args.data, budget=args.budget, seeds=args.seeds or t2i.DEFAULT_SEEDS,
                             batch_size=args.batch_size, out_dir=out, pairs=not args.no_pairs, seed=args.seed,
                             data_dir=args.data_dir, progress=not args.no_progress, command=command)
    summary = {"out": out, "wall_time_s": round(time.perf_counter() - t0, 1),
               "rows": {k: {"fid": r["figures"]["fid"], "prompt_acc": r["figures"]["prompt_acc"],
                            "diverged_seeds": r["diverged_seeds"]} for k, r in report["rows"].items()},
               "files": report["files"]}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_compare(args, argv=None) -> int:
    from genjax import _checks
    from genjax import compare as cmp
    from genjax.data.captions import CAPTIONED_DATASETS

    if args.data in CAPTIONED_DATASETS:  # the text-to-image table
        return cmd_compare_t2i(args, argv)
    if args.no_pairs:
        raise ValueError(f"--no-pairs: only the text-to-image table (captioned data such as mnist-captions) has pairs "
                         f"runs; --data {args.data} has no captions")
    args.seeds = 3 if args.seeds is None else args.seeds
    args.batch_size = 64 if args.batch_size is None else args.batch_size
    args.iwae_samples = 1000 if args.iwae_samples is None else args.iwae_samples

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


def _interruptible(fn, *args):
    """Runs ``fn(*args)`` in a worker thread so that Ctrl-C ends the command at once.

    A SIGINT reaches Python only between bytecodes, so one long XLA computation (an
    evaluation's importance-sampling batch, a sampler's scan) would delay it until the
    computation ends, which can be minutes. The main thread waits here instead and
    leaves with ``os._exit`` on Ctrl-C: for commands that write their result only at the
    end (``eval``, ``sample``) there is nothing to clean up.
    """
    result: dict = {}

    def work():
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # re-raised in the main thread
            result["error"] = e

    worker = threading.Thread(target=work, name=f"genjax-{fn.__name__}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in result:
        raise result["error"]
    return result["value"]


def _interrupted(args) -> int:
    """The Ctrl-C message of each command; says what survives and how to go on."""
    run_dir = getattr(args, "run_dir_created", None)
    if args.command == "train" and run_dir is not None:
        how = f"genjax train {args.model} --out {run_dir.parent} --name {run_dir.name} --resume"
        print(f"genjax: interrupted; the run's last checkpoint is intact: continue it with `{how}`", file=sys.stderr)
    elif args.command in ("eval", "sample"):
        print(f"genjax: {args.command} interrupted; nothing was written", file=sys.stderr)
    elif args.command == "train":
        print("genjax: train interrupted before the run started; nothing was written", file=sys.stderr)
    else:
        print(f"genjax: {args.command} interrupted", file=sys.stderr)
    return 130


def cmd_plot(args) -> int:
    """Redraws ``RUN_DIR/curves.png`` (what ``fit`` draws at the end) from ``RUN_DIR/metrics.jsonl``."""
    from genjax import viz
    from genjax.train import CURVES_FILE

    run = pathlib.Path(args.run_dir)
    if not run.is_dir():
        raise ValueError(f"run directory {str(run)!r} does not exist")
    log = run / "metrics.jsonl"
    if not log.exists():
        raise ValueError(f"{str(run)!r} has no metrics.jsonl (not a run directory of `genjax train` / genjax.train.fit?)")
    out = pathlib.Path(args.out) if args.out else run / CURVES_FILE
    data = viz.save_curves(out, viz.read_metrics(log))
    seeds = sorted({s for curves in data.values() for s in curves})
    print(f"wrote {out}: {', '.join(data)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
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
        if args.command == "runs":
            return cmd_runs(args)
        if args.command in ("eval", "sample") and threading.current_thread() is threading.main_thread():
            try:
                return _interruptible({"sample": cmd_sample, "eval": cmd_eval}[args.command], args)
            except KeyboardInterrupt:
                rc = _interrupted(args)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)  # the worker may be inside an XLA computation that cannot be stopped
        return {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "plot": cmd_plot,
                "serve": cmd_serve}[args.command](args)
    except KeyboardInterrupt:
        return _interrupted(args)
    except BrokenPipeError:  # `genjax list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError, FloatingPointError, RuntimeError, ImportError) as e:
        msg = " ".join(str(e).split())
        print(f"genjax: error: {msg}", file=sys.stderr)
        dist = sys.modules.get("genjax.train.distributed")
        if dist is not None and isinstance(e, dist.DistributedError):  # the other processes are gone:
            sys.stdout.flush()                                        # exit now, not after jax.distributed's
            sys.stderr.flush()                                        # shutdown barrier times out
            os._exit(1)
        return 1
    except Exception as e:  # anything else: still one line, the traceback only on request
        if os.environ.get("GENJAX_DEBUG"):
            raise
        msg = " ".join(str(e).split())
        print(f"genjax: error: {type(e).__name__}: {msg} (set GENJAX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
