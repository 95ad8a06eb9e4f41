"""Every model the registry builds follows the one model API (issue 17, D): it declares the
condition it takes (``model.condition``), its ``sample`` takes ``cond=`` / ``guidance=``, and an
unconditional model rejects a condition or a guidance weight with an error naming the argument."""

from __future__ import annotations

import functools
import inspect

import jax
import numpy as np
import pytest

from genjax import registry, types


def _untrained_pipeline(spec):
    """The last model of a staged spec (tiny), built on the untrained parameters of its earlier
    stages (the model API does not depend on training)."""
    data = registry.load_data("digits-captions")
    tiny = {"size": "tiny", "feature_weight": 0.0}
    opts = registry.resolve_options(spec, {k: v for k, v in tiny.items() if k in spec.options})
    stages = spec.stages(data, {"steps": 2, "batch_size": 4, "lr": 1e-3, "ema_decay": None, "options": opts})
    train, frozen = spec.train_data(data, opts, 4), {}
    for stage in stages:
        model = stage.model if hasattr(stage.model, "init") else stage.model(dict(frozen))
        batch = train if stage.data is None else stage.data(frozen, train)
        transform = stage.fit_kwargs.get("transform")
        frozen[stage.name] = model.init(jax.random.PRNGKey(0), batch if transform is None else transform(jax.random.PRNGKey(0), batch))
    return model, data


@functools.lru_cache(maxsize=None)
def _model(name: str):
    spec = registry.get_model_spec(name)
    if spec.stages is not None:
        return _untrained_pipeline(spec)
    for data_name in ("8gaussians", "digits"):
        data = registry.load_data(data_name)
        try:
            opts = registry.resolve_options(spec, {})
            return spec.build(data, opts), data
        except (ValueError, KeyError):
            continue
    pytest.fail(f"{name} builds on neither 8gaussians nor digits")


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_model_declares_its_condition_and_takes_cond(name):
    model, _ = _model(name)
    assert isinstance(model.condition, types.Condition), f"{name}: no `condition` attribute"
    params = inspect.signature(model.sample).parameters
    for kw in ("cond", "guidance"):
        assert kw in params and params[kw].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}.sample lacks {kw}="
        assert params[kw].default is None


def _unconditional_names() -> list[str]:
    """The registry's models that take no condition as built by default (read at collection,
    so a conditional model is left out of the parametrization rather than skipped)."""
    return [n for n in sorted(registry.MODELS) if _model(n)[0].condition.kind == "none"]


def test_most_registered_models_are_unconditional_by_default():
    # guards the parametrization below against silently emptying
    assert len(_unconditional_names()) >= len(registry.MODELS) - 4  # clip, ldm, ddpm-text, unclip take text


@pytest.mark.parametrize("name", _unconditional_names())
def test_unconditional_models_reject_a_condition(name):
    model, data = _model(name)
    params = model.init(jax.random.PRNGKey(0), jax.numpy.asarray(data.train[:4]))
    with pytest.raises(ValueError, match="cond: this model takes no condition"):
        model.sample(params, jax.random.PRNGKey(0), 2, cond=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="guidance"):
        model.sample(params, jax.random.PRNGKey(0), 2, guidance=2.0)
    with pytest.raises(ValueError, match="num must be a positive integer"):  # types.check_sample_args, before any work
        model.sample(params, jax.random.PRNGKey(0), 0)


def test_check_sample_args_is_the_sample_preamble():
    assert types.check_sample_args(types.NO_CONDITION, 3, None, None) == (3, None, 0.0)
    labels = types.Condition(kind="labels", num_classes=10)
    num, cond, w = types.check_sample_args(labels, 3, 7, 1.5)
    assert num == 3 and w == 1.5 and np.asarray(cond).tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="num must be a positive integer, got 2.5"):
        types.check_sample_args(labels, 2.5, 7, None)
    with pytest.raises(ValueError, match=r"cond must be int class labels in \[0, 10\)"):
        types.check_sample_args(labels, 3, 12, None)
    with pytest.raises(ValueError, match="guidance needs a cond"):
        types.check_sample_args(labels, 3, None, 2.0)
