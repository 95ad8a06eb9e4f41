"""``fit_stages``: a linear autoencoder, then a Gaussian on its frozen codes. Stage 2 sees
stage 1's final parameters; an interrupted pipeline resumed ends bit-identical to an
uninterrupted one; a finished stage is not retrained."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.train import Stage, fit, fit_stages

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")


class LinearAE:
    log_prob_kind = "none"

    def init(self, key, batch):
        return {"enc": 0.5 * jax.random.normal(key, (4, 2))}

    def loss(self, params, key, batch):
        w = params["enc"]
        noisy = batch + 0.05 * jax.random.normal(key, batch.shape)
        loss = jnp.mean((noisy @ w @ w.T - batch) ** 2)
        return loss, {}


class GaussianOnCodes:
    """A diagonal Gaussian fitted by maximum likelihood to ``(n, 2)`` codes."""

    log_prob_kind = "exact"

    def init(self, key, batch):
        return {"mu": jnp.zeros(2), "log_std": jnp.zeros(2)}

    def loss(self, params, key, batch):
        z = (batch - params["mu"]) * jnp.exp(-params["log_std"])
        nll = jnp.mean(jnp.sum(0.5 * z**2 + params["log_std"], axis=-1))
        return nll, {}


def encode(frozen, x):
    return np.asarray(x @ frozen["ae"]["enc"])


DATA = np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32) * np.array([2.0, 1.0, 0.3, 0.1], np.float32)
LOOP = dict(batch_size=8, log_every=2, steps_per_dispatch=2, checkpoint_every=2)


def pipeline(ae_steps=8, prior_steps=6):
    seen = {}

    def prior_model(frozen):
        seen["frozen"] = frozen
        return GaussianOnCodes()

    return seen, [
        Stage("ae", LinearAE(), num_steps=ae_steps, optimizer=optax.adam(0.05), ema_decay=0.5, **LOOP),
        Stage("prior", prior_model, num_steps=prior_steps, data=encode, optimizer=optax.adam(0.1), **LOOP),
    ]


def leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(jax.device_get(tree))]


def test_stage_two_trains_on_stage_one_final_params(tmp_path):
    seen, stages = pipeline()
    res = fit_stages(stages, DATA, seed=3, out_dir=tmp_path / "run", progress=False)
    ae = res.results["ae"].state
    # stage 2 was built from stage 1's final (EMA) parameters ...
    np.testing.assert_array_equal(seen["frozen"]["ae"]["enc"], ae.ema_params["enc"])
    assert not np.array_equal(ae.ema_params["enc"], ae.params["enc"])
    # ... and equals fit on those codes, with the pipeline's stage-1 key
    alone = fit(GaussianOnCodes(), encode({"ae": ae.ema_params}, DATA), num_steps=6, optimizer=optax.adam(0.1),
                seed=jax.random.fold_in(jax.random.PRNGKey(3), 1), progress=False, **LOOP)
    for a, b in zip(leaves(res.results["prior"].state), leaves(alone.state)):
        np.testing.assert_array_equal(a, b)
    assert set(res.params) == {"ae", "prior"}
    for name in ("ae", "prior"):
        assert (tmp_path / "run" / name / "checkpoints").is_dir()
        assert (tmp_path / "run" / name / "metrics.jsonl").exists()
        assert (tmp_path / "run" / name / "curves.png").exists()


def test_interrupted_pipeline_resumes_bit_identical(tmp_path):
    _, stages = pipeline()
    ref = fit_stages(stages, DATA, seed=3, out_dir=tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    # killed in stage 1 after its checkpoint at 4
    _, short = pipeline(ae_steps=4)
    fit_stages(short[:1], DATA, seed=3, out_dir=out, progress=False)
    # killed in stage 2 after its checkpoint at 2 (stage 1 resumed to its end)
    _, mid = pipeline(prior_steps=2)
    first = fit_stages(mid, DATA, seed=3, out_dir=out, resume=True, progress=False)
    assert first.results["ae"].resumed_from == 4
    ae_log = (out / "ae" / "metrics.jsonl").read_text()
    _, stages = pipeline()
    res = fit_stages(stages, DATA, seed=3, out_dir=out, resume=True, progress=False)
    assert res.results["ae"].resumed_from == 8  # finished: restored, not trained again
    assert (out / "ae" / "metrics.jsonl").read_text() == ae_log
    assert res.results["prior"].resumed_from == 2
    for name in ("ae", "prior"):
        for a, b in zip(leaves(res.results[name].state), leaves(ref.results[name].state)):
            np.testing.assert_array_equal(a, b)
        assert (out / name / "metrics.jsonl").read_text() == (tmp_path / "ref" / name / "metrics.jsonl").read_text()


def test_resuming_a_stage_whose_inputs_changed_is_an_error(tmp_path):
    _, stages = pipeline()
    fit_stages(stages, DATA, seed=3, out_dir=tmp_path / "run", progress=False)
    _, longer = pipeline(ae_steps=10)  # stage 1 trains further: stage 2's frozen input changes
    with pytest.raises(ValueError, match=r"stage 'prior' .* other parameters of the earlier stages \['ae'\]"):
        fit_stages(longer, DATA, seed=3, out_dir=tmp_path / "run", resume=True, progress=False)
    assert json.loads((tmp_path / "run" / "prior" / "frozen.json").read_text())  # the record is kept


@pytest.mark.parametrize("bad, match", [
    ([], "non-empty sequence of Stage"),
    ([Stage("a b", LinearAE(), num_steps=1)], "directory name"),
    ([Stage("a", LinearAE(), num_steps=1), Stage("a", LinearAE(), num_steps=1)], "unique"),
    ([Stage("a", LinearAE(), num_steps=1, seed=2)], r"\['seed'\] are set by fit_stages"),
])
def test_bad_stages(bad, match):
    with pytest.raises(ValueError, match=match):
        fit_stages(bad, DATA)
