"""Explicit name -> constructor registries for data sets and models: the one place that builds
a model by name for given data and options (:func:`build_model`; the CLI and ``compare``).

Nothing registers itself on import: each family's specs are a dict written in
``genjax/registry/<family>.py`` and merged here by name, and an unknown name is an
error that lists the valid ones.
"""

from __future__ import annotations

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
                                  network_evaluations)

MODELS: dict[str, ModelSpec] = {**_vae.SPECS, **_gan.SPECS, **_flows.SPECS, **_diffusion.SPECS, **_clip.SPECS,
                              **_ldm.SPECS, **_unclip.SPECS}

__all__ = ["Built", "DataBundle", "MODELS", "ModelSpec", "Option", "build_model", "dataset_names", "describe",
           "get_model_spec", "image_scale", "int_tuple", "load_data", "network_evaluations", "resolve_options"]


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
