"""Explicit name -> constructor registries for data sets and models: the one place that builds
a model by name for given data and options (:func:`build_model`; the CLI and ``compare``).

Nothing registers itself on import: each family's specs are a dict written in
``genjax/registry/<family>.py`` and merged here by name, and an unknown name is an
error that lists the valid ones.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, NamedTuple

from genjax.data import images as image_data
from genjax.data import synthetic
from genjax.data.captions import CAPTIONED_DATASETS
from genjax.registry import clip as _clip
from genjax.registry import diffusion as _diffusion
from genjax.registry import flows as _flows
from genjax.registry import gan as _gan
from genjax.registry import ldm as _ldm
from genjax.registry import unclip as _unclip
from genjax.registry import vae as _vae
from genjax.registry.core import (Built, DataBundle, ModelSpec, Option, dataset_names, image_scale, int_tuple, load_data,
                                  network_evaluations, write_run_config)

MODELS: dict[str, ModelSpec] = {**_vae.SPECS, **_gan.SPECS, **_flows.SPECS, **_diffusion.SPECS, **_clip.SPECS,
                              **_ldm.SPECS, **_unclip.SPECS}

__all__ = ["Built", "DataBundle", "MODELS", "ModelSpec", "Option", "RestoredRun", "build_model", "dataset_names",
           "describe", "get_model_spec", "image_scale", "int_tuple", "load_data", "network_evaluations",
           "read_run_config", "resolve_options", "restore_run", "train_data", "write_run_config"]


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid choices: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def resolve_options(spec: ModelSpec, given: dict) -> dict:
    """The spec's defaults updated with ``given``; unknown keys and bad choices are errors."""
    unknown = set(given) - set(spec.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for model {spec.name!r}; valid: {sorted(spec.options)}"
        )
    opts = {k: o.default for k, o in spec.options.items()}
    opts.update({k: v for k, v in given.items() if v is not None})
    for k, o in spec.options.items():
        if o.choices is not None and opts[k] is not None and opts[k] not in o.choices:
            raise ValueError(f"unknown {k} {opts[k]!r} for model {spec.name!r}; valid choices: {', '.join(o.choices)}")
    return opts


def build_model(name: str, data: DataBundle, options: dict | None = None) -> Built:
    """The model ``name`` for ``data`` with its spec's defaults updated by ``options``, and what
    training it needs: the optimizer at the spec's default learning rate and the data transform.

    Raises:
      ValueError: an unknown name or option, or data the model cannot take (before any work).
    """
    spec = get_model_spec(name)
    opts = resolve_options(spec, options or {})
    model = spec.build(data, opts)
    optimizer = spec.optimizer({"model": name, "lr": spec.defaults["lr"], "options": opts})
    return Built(spec, model, opts, optimizer, spec.transform(model, data))


class RestoredRun(NamedTuple):
    """A trained run as :func:`restore_run` gives it back: its ``config.json``, the model spec, its
    data set, the model (a staged pipeline's last stage), the parameters it samples with (EMA
    where kept) and the step they are of."""

    config: dict
    spec: ModelSpec
    data: DataBundle
    model: Any
    params: Any
    step: int


def train_data(spec: ModelSpec, data: DataBundle, options: dict, num: int | None = None):
    """What ``fit`` trains ``spec``'s model on (its first ``num`` examples): the spec's
    ``train_data`` (e.g. images with their captions) or the images ``data.train``."""
    if spec.train_data is not None:
        return spec.train_data(data, options, num)
    return data.train if num is None else data.train[:num]


def read_run_config(run_dir) -> dict:
    """``run_dir/config.json`` (written by ``genjax train`` or an experiment through
    ``write_run_config``), checked to name a model and a data set.

    Raises:
      FileNotFoundError: ``run_dir`` does not exist or holds no ``config.json``.
      ValueError: the file cannot be read or is not a genjax run configuration.
    """
    rd = pathlib.Path(run_dir)
    if not rd.exists():
        raise FileNotFoundError(f"run directory {str(rd)!r} does not exist (`genjax runs` lists the runs under runs/)")
    path = rd / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"run directory {str(rd)!r} has no config.json: not a genjax run directory")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"run directory {str(rd)!r} has an unreadable config.json ({type(e).__name__}: {e})") from e
    missing = [k for k in ("model", "data") if k not in config] if isinstance(config, dict) else ["(not a JSON object)"]
    if missing:
        raise ValueError(f"run directory {str(rd)!r} has a config.json without {missing}: not a genjax run configuration")
    return config


def restore_run(run_dir, data: DataBundle | None = None, *, data_dir=None) -> RestoredRun:
    """The trained model of ``run_dir`` (a ``genjax train`` run, or a staged pipeline an
    experiment trained and recorded with ``write_run_config``), restored, never trained:
    what ``genjax sample`` / ``eval`` / ``serve`` and the experiments that reuse a run load.
    ``data``: the run's data set if already loaded (default: ``load_data`` of the one its
    config names, from ``data_dir``).

    Raises:
      FileNotFoundError: no such run, or a stage not trained to its ``num_steps``.
      ValueError: ``data`` is not the data set the run was trained on.
    """
    from genjax.train import fit_stages, restore_params

    rd = pathlib.Path(run_dir)
    config = read_run_config(rd)
    spec = get_model_spec(config["model"])
    if data is None:
        data = load_data(config["data"], data_dir=data_dir, seed=config["seed"])
    elif data.name != config["data"]:
        raise ValueError(f"data: the run {str(rd)!r} was trained on {config['data']!r}, got {data.name!r}")
    options = config["options"]
    if spec.stages is not None:  # the pipeline, restored stage by stage
        stages = spec.stages(data, config, run_dir=rd, data_dir=data_dir)
        result = fit_stages(stages, train_data(spec, data, options), seed=config["seed"], out_dir=rd, train=False, progress=False)
        last = stages[-1].name
        return RestoredRun(config, spec, data, result.models[last], result.params[last], int(stages[-1].num_steps))
    model = spec.build(data, options)
    state = restore_params(rd, model, train_data(spec, data, options, 2), optimizer=spec.optimizer(config),
                           ema=config.get("ema_decay") is not None, transform=spec.transform(model, data))
    params = state.ema_params if state.ema_params is not None else state.params
    return RestoredRun(config, spec, data, model, params, int(state.step))


def describe() -> str:
    lines = ["models:"]
    lines += [f"  {n:<10} {s.description}" for n, s in sorted(MODELS.items())]
    lines.append("data sets:")
    exact = set(synthetic.EXACT_LOG_PROB_DENSITIES)
    for n in dataset_names():
        kind = "image" if n in image_data.IMAGE_DATASETS else ("toy 2-D, exact log p(x)" if n in exact else "toy 2-D")
        kind = "captioned images" if n in CAPTIONED_DATASETS else kind
        lines.append(f"  {n:<16} {kind}")
    return "\n".join(lines)
