"""Stages: a model made of parts trained one after another.

E.g. an autoencoder, then a diffusion model on its frozen latents. Each stage is one
:func:`genjax.train.fit` run in its own directory ``out_dir/<stage name>/`` (its
checkpoints, ``metrics.jsonl`` and ``curves.png``), built from the final parameters of the
stages before it, which it reads frozen::

    stages = [
        Stage("autoencoder", lambda frozen: ae, num_steps=5000, batch_size=64),
        Stage("prior", lambda frozen: PriorOnCodes(), num_steps=5000, batch_size=64,
              data=lambda frozen, x: encode(frozen["autoencoder"], x)),
    ]
    result = fit_stages(stages, x_train, out_dir="runs/ldm", seed=0)
    result.params["prior"], result.params["autoencoder"]

Resume (``resume=True``): a finished stage is not trained again (its final checkpoint is
restored), an interrupted one resumes from its last checkpoint, later ones then start, so
an interrupted pipeline ends bit-identical to an uninterrupted one. Each stage records a
digest of the frozen parameters it was built from (``frozen.json``); resuming a stage
whose earlier stages have since changed is an error, not a silent mix.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from genjax.train.checkpoint import Checkpointer, state_digest
from genjax.train.loop import FitResult, fit, restore_params
from genjax.train.state import raw_key
from genjax.types import Params

Frozen = Mapping[str, Params]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: ``fit`` arguments a stage may not set (``fit_stages`` sets them per stage).
_RESERVED = {"num_steps", "seed", "out_dir", "resume", "seeds", "progress"}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One part of a pipeline.

    Attributes:
      name: the stage's name: its key in ``frozen`` / ``StagesResult.params`` and its
        sub-directory of ``out_dir`` (letters, digits, ``_ . -``).
      model: ``model(frozen) -> model`` with the model API, where ``frozen`` maps every
        earlier stage's name to its final parameters (its EMA parameters when it kept an
        EMA); or a model itself.
      num_steps: optimizer steps of the stage.
      data: ``data(frozen, train_data) -> this stage's train data`` (e.g. the codes of the
        frozen encoder); default: the pipeline's ``train_data``.
      fit_kwargs: further :func:`genjax.train.fit` arguments (``batch_size``,
        ``optimizer``, ``ema_decay``, ``transform``, ``eval_fn``, ``log_every``, ...).
    """

    name: str
    model: Any
    num_steps: int
    data: Callable[[Frozen, np.ndarray], np.ndarray] | None = None
    fit_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __init__(self, name, model, *, num_steps, data=None, **fit_kwargs):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "num_steps", num_steps)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "fit_kwargs", dict(fit_kwargs))


@dataclasses.dataclass
class StagesResult:
    """``results[name]``: each stage's :class:`FitResult` (``None`` for a stage restored by
    ``fit_stages(train=False)``); ``params[name]``: the parameters later stages saw (EMA where
    kept), i.e. the trained pipeline; ``models[name]``: the model each stage trained (the last
    one, with ``params`` of the last stage, is the pipeline's model)."""

    results: dict[str, FitResult | None]
    params: dict[str, Params]
    models: dict[str, Any] = dataclasses.field(default_factory=dict)


def stage_params(result: FitResult) -> Params:
    """The parameters a stage hands on: its EMA parameters when it kept an EMA, else its parameters."""
    return result.state.ema_params if result.state.ema_params is not None else result.state.params


def _check_stages(stages) -> list[Stage]:
    if isinstance(stages, Stage) or not isinstance(stages, Sequence) or not stages:
        raise ValueError(f"stages must be a non-empty sequence of Stage, got {stages!r}")
    seen = set()
    for i, s in enumerate(stages):
        if not isinstance(s, Stage):
            raise ValueError(f"stages[{i}] must be a Stage, got {type(s).__name__}")
        if not isinstance(s.name, str) or not _NAME.match(s.name):
            raise ValueError(f"stages[{i}].name must be a directory name (letters, digits, _ . -), got {s.name!r}")
        if s.name in seen:
            raise ValueError(f"stage names must be unique: {s.name!r} appears twice")
        seen.add(s.name)
        bad = sorted(_RESERVED & set(s.fit_kwargs))
        if bad:
            raise ValueError(f"stage {s.name!r}: {bad} are set by fit_stages, not per stage")
    return list(stages)


def _frozen_digest(frozen: Frozen) -> dict[str, str]:
    return {name: state_digest(p) for name, p in frozen.items()}


def fit_stages(
    stages: Sequence[Stage],
    train_data: np.ndarray,
    *,
    seed: int | jax.Array = 0,
    out_dir=None,
    resume: bool = False,
    progress: bool = True,
    train: bool = True,
) -> StagesResult:
    """Trains ``stages`` one after another, each with :func:`genjax.train.fit`.

    Stage ``i`` trains with the run key ``fold_in(PRNGKey(seed), i)`` (``fold_in(seed, i)``
    for a key) on ``stage.data(frozen, train_data)`` (or ``train_data``), its model
    ``stage.model(frozen)``, where ``frozen`` holds the final parameters of stages
    ``0..i-1``; it writes to ``out_dir/<name>/``.

    Args:
      stages: the pipeline, in training order.
      train_data: the pipeline's data (the first stage's, unless it has ``data``).
      seed: int seed or key of the pipeline.
      out_dir: parent of the stages' run directories; None keeps everything in memory.
      resume: continue an interrupted pipeline in ``out_dir``: finished stages are
        restored, not retrained; the interrupted one resumes from its last checkpoint.
      progress: progress bars.
      train: ``False`` restores a trained pipeline from ``out_dir`` without training (for
        sampling and evaluation): every stage must have its final checkpoint; ``stage.data``
        is then called on the first 2 examples of ``train_data`` only (an example batch).

    Raises:
      ValueError: bad stages (before any training); a stage to resume whose earlier
        stages changed since it was trained (its ``frozen.json`` differs).
      FileNotFoundError: ``train=False`` and a stage is not trained to its ``num_steps``.
    """
    if not train and out_dir is None:
        raise ValueError("fit_stages(train=False) restores a pipeline from out_dir: give out_dir")
    stages = _check_stages(stages)
    base = jax.random.PRNGKey(int(seed)) if isinstance(seed, (int, np.integer)) else raw_key(seed)
    out = pathlib.Path(out_dir) if out_dir is not None else None
    results: dict[str, FitResult | None] = {}
    frozen: dict[str, Params] = {}
    models: dict[str, Any] = {}
    for i, stage in enumerate(stages):
        model = stage.model(dict(frozen)) if callable(stage.model) and not hasattr(stage.model, "init") else stage.model
        # (restoring needs only an example batch: a stage's data is then made from 2 examples)
        source = train_data if train else jax.tree_util.tree_map(lambda a: a[:2] if np.ndim(a) else a, train_data)
        data = source if stage.data is None else stage.data(dict(frozen), source)
        stage_dir = None
        if out is not None:
            stage_dir = out / stage.name
            digest = _frozen_digest(frozen)
            record = stage_dir / "frozen.json"
            trained = (stage_dir / "checkpoints").is_dir() and any((stage_dir / "checkpoints").iterdir())
            if trained and record.exists() and (resume or not train):
                before = json.loads(record.read_text())
                if before != digest:
                    changed = sorted(k for k in set(before) | set(digest) if before.get(k) != digest.get(k))
                    raise ValueError(
                        f"stage {stage.name!r} in {str(stage_dir)!r} was trained on other parameters of the earlier "
                        f"stages {changed} than they have now; delete {str(stage_dir)!r} to retrain it, or use another out_dir"
                    )
            if not trained and train:  # (a trained stage without resume: fit refuses it below, its record untouched)
                stage_dir.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps(digest, indent=1, sort_keys=True) + "\n")
        models[stage.name] = model
        if not train:
            results[stage.name] = None
            frozen[stage.name] = _restore_stage(stage, model, data, stage_dir)
            continue
        result = fit(
            model, data, num_steps=stage.num_steps, seed=jax.random.fold_in(base, i), out_dir=stage_dir,
            resume=resume, progress=progress, **stage.fit_kwargs,
        )
        results[stage.name] = result
        frozen[stage.name] = stage_params(result)
    return StagesResult(results, frozen, models)


def _restore_stage(stage: Stage, model, data, stage_dir: pathlib.Path) -> Params:
    """The parameters a finished stage hands on, restored from its final checkpoint."""
    ckpt = Checkpointer(stage_dir / "checkpoints")
    try:
        steps = ckpt.steps()
    finally:
        ckpt.close()
    if not steps or max(steps) < stage.num_steps:
        done = f"trained to step {max(steps)}" if steps else "not started"
        raise FileNotFoundError(
            f"stage {stage.name!r} in {str(stage_dir)!r} is {done} of {stage.num_steps}: finish the pipeline "
            "(resume its training) before sampling from it"
        )
    example = jax.tree_util.tree_map(lambda a: np.asarray(a[:2]), data)  # (fit initialises on an untransformed batch)
    kw = stage.fit_kwargs
    state = restore_params(stage_dir, model, example, optimizer=kw.get("optimizer"), ema=kw.get("ema_decay") is not None,
                           transform=kw.get("transform"))
    return state.ema_params if state.ema_params is not None else state.params
