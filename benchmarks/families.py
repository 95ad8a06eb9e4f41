"""``families``: every registered model's train step at its CLI default size (the
options, batch size, learning rate and optimizer ``genjax train <model>`` uses, on
the CLI's default data ``digits``, or ``two-moons`` for the 2-D-only models), one
jitted step per dispatch; samples/s = batch / step time. For spotting regressions.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, block, measure
from genjax import registry
from genjax.train import TrainState, make_step

DATA = ("digits", "two-moons")
QUICK_NAMES = ("vae", "gan", "maf", "ncsn")  # one cheap model per family: --quick only checks that it runs


def build(name: str, data_cache: dict):
    """``(model, data, optimizer, transform, batch_size)`` as ``genjax train <name>`` builds them."""
    spec = registry.get_model_spec(name)
    opts = registry.resolve_options(spec, {})
    last = None
    for d in DATA:
        data = data_cache.setdefault(d, registry.load_data(d))
        try:
            model = spec.build(data, opts)
        except (ValueError, KeyError) as e:  # a model built for the other kind of data
            last = e
            continue
        config = {"model": name, "data": d, "lr": spec.defaults["lr"], "options": opts, **spec.defaults}
        tx = spec.make_optimizer(config) if spec.make_optimizer is not None else optax.adam(spec.defaults["lr"])
        return model, data, tx, spec.transform(model, data), spec.defaults["batch_size"]
    raise ValueError(f"model {name!r} builds on none of {DATA}: {last}")


def train_stepper(model, data, tx, transform, batch: int) -> Stepper:
    # the step fit trains with (the two-player step for GANs), jitted with the state donated
    step = jax.jit(make_step(model, tx, transform=transform), donate_argnums=0)
    x = block(jax.device_put(np.asarray(data.train[:batch], np.float32)))
    k_init, k_train = jax.random.split(jax.random.PRNGKey(0))
    return Stepper(step, TrainState.create(model.init(k_init, x), tx, k_train), x)


def run(settings: Settings, *, names: tuple[str, ...] | None = None) -> EntryResult:
    """``names``: a subset of the registry (default: all of it; ``QUICK_NAMES`` with ``quick``,
    whose batch is then 8: compiling all 14 default models takes minutes)."""
    if names is None:
        names = QUICK_NAMES if settings.quick else tuple(registry.MODELS)
    rows, cache = [], {}
    for name in names:
        model, data, tx, transform, batch = build(name, cache)
        batch = min(batch, 8) if settings.quick else batch
        t = measure(train_stepper(model, data, tx, transform, batch), settings)["median_s"]
        rows.append({
            "model": name, "family": registry.get_model_spec(name).family, "data": data.name,
            "shape": "x".join(map(str, data.shape)), "batch": batch, "ms/step": 1e3 * t, "samples/s": batch / t,
        })
    return EntryResult("families", "every family's default train step (one jitted step per dispatch)", rows)
