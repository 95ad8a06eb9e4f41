"""``genjax.train.side_by_side_step_times``: what it runs and how it rejects bad input (no
assertion on the times themselves: tests never time things)."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from genjax.train import TrainState, side_by_side_step_times
from genjax.vae import mlp_vae


def _run(hidden, key):
    model = mlp_vae(data_shape=(6,), latent_dim=2, hidden=(hidden,))
    x = np.random.default_rng(0).random((8, 6)).astype(np.float32)
    tx = optax.adam(1e-3)
    return model, tx, TrainState.create(model.init(key, x[:2]), tx, key), x


def test_side_by_side_step_times_one_figure_per_run_of_its_own_step(key):
    runs = [_run(4, key), _run(8, key)]
    times = side_by_side_step_times(runs, steps=2, rounds=2)
    assert len(times) == 2 and all(isinstance(t, float) and t > 0 for t in times)
    # it runs each model's own train step on its batch: a batch the model rejects fails it
    model, tx, state, batch = runs[0]
    with pytest.raises(ValueError):
        side_by_side_step_times([(model, tx, state, batch[:, :5])], steps=1, rounds=1)
    # step_kwargs reach make_step: the step applies the given batch transform
    class Marker(Exception):
        pass

    def transform(key, x):
        raise Marker("the transform ran")

    with pytest.raises(Marker):
        side_by_side_step_times(runs[:1], steps=1, rounds=1, step_kwargs=[{"transform": transform}])


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must be a positive int"),
    ({"rounds": 1.5}, "rounds must be a positive int"),
    ({"step_kwargs": [{}, {}]}, "step_kwargs has 2 entries for 1 runs"),
])
def test_side_by_side_step_times_bad_input(key, kwargs, match):
    with pytest.raises(ValueError, match=match):
        side_by_side_step_times([_run(4, key)], **kwargs)
    with pytest.raises(ValueError, match="runs is empty"):
        side_by_side_step_times([])
