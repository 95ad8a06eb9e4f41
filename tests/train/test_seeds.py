"""``fit(..., seeds=S)``: S runs at once under ``jax.vmap``. Seed i equals ``fit`` on seed i
alone (the keys, batches and chunks of that run); resume is bit-identical; non-finite steps
are handled per seed; the curves are drawn one line per seed."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import genjax.gan as gan
from genjax import viz
from genjax.cli import main as cli_main
from genjax.train import CURVES_FILE, NonFiniteError, fit, restore_params, seed_keys

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")


class NoisyLinearAE:
    """A 4 -> 2 -> 4 linear autoencoder fed noisy inputs (the key matters), with an
    ``init`` that depends on its key: the smallest model on which seeds differ."""

    log_prob_kind = "none"

    def init(self, key, batch):
        k1, k2 = jax.random.split(key)
        return {"enc": 0.5 * jax.random.normal(k1, (4, 2)), "dec": 0.5 * jax.random.normal(k2, (2, 4))}

    def loss(self, params, key, batch):
        noisy = batch + 0.1 * jax.random.normal(key, batch.shape)
        recon = noisy @ params["enc"] @ params["dec"]
        loss = jnp.mean((recon - batch) ** 2)
        return loss, {"mse": loss}


class SqrtOfInit:
    """loss = sqrt(a) * |x|^2 with ``a = N(0, 1)`` drawn from the init key: NaN from step 0
    for a seed whose ``a < 0``, finite for the others."""

    log_prob_kind = "none"

    def init(self, key, batch):
        return {"a": jax.random.normal(key, ()), "b": jnp.zeros(())}

    def loss(self, params, key, batch):
        loss = jnp.sqrt(params["a"]) * jnp.mean(batch ** 2) + params["b"] ** 2
        return loss, {}


DATA = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
KW = dict(num_steps=10, batch_size=8, log_every=4, steps_per_dispatch=3, optimizer=optax.adam(0.05), progress=False)


def _seed(tree, i):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[i], tree)


def _assert_close(a, b, atol=1e-6):
    la, ta = jax.tree_util.tree_flatten(jax.device_get(a))
    lb, tb = jax.tree_util.tree_flatten(jax.device_get(b))
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def _records(history, seed):
    return [{k: v for k, v in r.items() if k != "seed"} for r in history if r.get("seed") == seed]


@pytest.fixture(scope="module")
def three_seeds():
    return fit(NoisyLinearAE(), DATA, seed=7, seeds=3, ema_decay=0.8, eval_fn=lambda p, k: {"enc_sum": jnp.sum(p["enc"])}, **KW)


def test_seed_i_equals_fit_on_seed_i(three_seeds):
    many = three_seeds
    assert many.num_seeds == 3 and many.state.params["enc"].shape == (3, 4, 2)
    assert not np.allclose(many.state.params["enc"][0], many.state.params["enc"][1])  # seeds differ
    for i, key in enumerate(seed_keys(7, 3)):
        alone = fit(NoisyLinearAE(), DATA, seed=key, ema_decay=0.8, eval_fn=lambda p, k: {"enc_sum": jnp.sum(p["enc"])}, **KW)
        _assert_close(many.seed_state(i), alone.state)  # params, optimizer state, EMA, key, step
        mine, ref = _records(many.history, i), alone.history
        assert [(r["step"], r["kind"]) for r in mine] == [(r["step"], r["kind"]) for r in ref] == [
            (4, "train"), (8, "train"), (10, "train"), (10, "eval")]
        for a, b in zip(mine, ref):
            assert a.keys() == b.keys()
            assert a["kind"] == b["kind"]
            for k in a.keys() - {"kind"}:
                np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(many.diverged, [False, False, False])


def test_a_sequence_of_seeds_and_keys():
    many = fit(NoisyLinearAE(), DATA, seeds=[5, jax.random.PRNGKey(9)], **KW)
    for i, s in enumerate([5, jax.random.PRNGKey(9)]):
        _assert_close(many.seed_state(i).params, fit(NoisyLinearAE(), DATA, seed=s, **KW).state.params)


def test_gan_seeds_equal_gans_alone_with_ema():
    """The two-player step (n_critic 2, EMA) under vmap: seed i equals that GAN alone."""
    model = gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), loss_kind="wgan_gp", n_critic=2)
    data = np.random.default_rng(1).uniform(-0.9, 0.9, (32, 2)).astype(np.float32)
    kw = dict(KW, optimizer=gan.gan_adam(1e-2), num_steps=4, ema_decay=0.5)
    many = fit(model, data, seed=1, seeds=2, **kw)
    for i, key in enumerate(seed_keys(1, 2)):
        _assert_close(many.seed_state(i), fit(model, data, seed=key, **kw).state, atol=1e-5)


def test_seeds_resume_is_bit_identical(tmp_path):
    kw = dict(KW, checkpoint_every=4, ema_decay=0.8)
    ref = fit(NoisyLinearAE(), DATA, seeds=2, out_dir=tmp_path / "ref", **kw)
    out = tmp_path / "run"
    fit(NoisyLinearAE(), DATA, seeds=2, out_dir=out, **dict(kw, num_steps=4))
    with open(out / "metrics.jsonl", "a") as f:  # "killed" after its checkpoint at 4, having logged more
        f.write(json.dumps({"step": 6, "kind": "train", "seed": 0, "loss": 1.0}) + "\n" + '{"step": 6, "ki')
    resumed = fit(NoisyLinearAE(), DATA, seeds=2, out_dir=out, resume=True, **kw)
    assert resumed.resumed_from == 4
    for a, b in zip(jax.tree_util.tree_leaves(resumed.state), jax.tree_util.tree_leaves(ref.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()
    restored = restore_params(out, NoisyLinearAE(), DATA[:8], optimizer=kw["optimizer"], ema=True, seeds=2)
    np.testing.assert_array_equal(restored.params["enc"], resumed.state.params["enc"])


# seeds 0..3 of seed_keys(0, 4): which ones draw a < 0 (NaN from the first step)
SQRT_SEEDS = seed_keys(0, 4)
NEGATIVE = [bool(jax.random.normal(jax.random.split(k, 4)[0], ()) < 0) for k in SQRT_SEEDS]


def test_nonfinite_is_per_seed():
    assert any(NEGATIVE) and not all(NEGATIVE), NEGATIVE  # the test needs both kinds
    bad = NEGATIVE.index(True)
    kw = dict(KW, optimizer=optax.sgd(0.01))
    with pytest.raises(NonFiniteError, match=rf"non-finite value at step 0 of seed {bad}: .*loss"):
        fit(SqrtOfInit(), DATA, seeds=4, **kw)
    skipped = fit(SqrtOfInit(), DATA, seeds=4, on_nonfinite="skip", **kw)
    last = {r["seed"]: r["skipped_updates"] for r in skipped.history if r["step"] == 10}
    assert last == {i: (10 if neg else 0) for i, neg in enumerate(NEGATIVE)}
    np.testing.assert_array_equal(skipped.diverged, [False] * 4)  # dropped updates: params stay finite
    went_on = fit(SqrtOfInit(), DATA, seeds=4, on_nonfinite="continue", **kw)
    np.testing.assert_array_equal(went_on.diverged, NEGATIVE)
    good = NEGATIVE.index(False)
    assert np.isfinite(went_on.state.params["a"][good])


def test_bad_seeds_argument():
    for bad in (0, [], "abc", [1, "x"]):
        with pytest.raises(ValueError, match="seeds"):
            fit(NoisyLinearAE(), DATA, seeds=bad, **KW)


def test_curves_one_line_per_seed_and_genjax_plot(tmp_path, three_seeds, capsys):
    out = tmp_path / "run"
    result = fit(NoisyLinearAE(), DATA, seeds=3, out_dir=out, eval_fn=lambda p, k: {"enc_sum": jnp.sum(p["enc"])},
                 eval_every=4, **KW)
    png = out / CURVES_FILE
    assert png.exists()
    img = np.asarray(Image.open(png).convert("RGB"))
    data = viz.curve_data(result.history)
    assert list(data) == ["loss", "grad_norm", "eval enc_sum"]
    for curves in data.values():
        assert sorted(curves) == [0, 1, 2]
        np.testing.assert_array_equal(curves[1][0], [4, 8, 10])
    np.testing.assert_allclose(data["loss"][2][1], [r["loss"] for r in result.history if r.get("seed") == 2 and r["kind"] == "train"])
    for s in range(3):  # every seed's colour is drawn
        assert (img == np.array(viz.SEED_COLOURS[s], np.uint8)).all(axis=-1).sum() > 20
    assert not (img == np.array(viz.SEED_COLOURS[3], np.uint8)).all(axis=-1).any()  # no fourth line
    # `genjax plot RUN` redraws the same picture from metrics.jsonl
    png.unlink()
    assert cli_main(["plot", str(out)]) == 0
    assert "loss, grad_norm, eval enc_sum (3 seeds)" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), img)
    assert cli_main(["plot", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def _sample_blobs(key, num):
    """A jax-traceable sampling function: fresh data at every step."""
    k1, k2 = jax.random.split(key)
    centres = jnp.array([[2.0, 0.0, 0.0, 0.0], [0.0, -2.0, 1.0, 0.0]])
    return centres[jax.random.randint(k1, (num,), 0, 2)] + 0.3 * jax.random.normal(k2, (num, 4))


def test_sampled_data_stream_seeds_and_resume(tmp_path):
    """train_data as a sampling function: step s draws sample(fold_in(data_key, s), b), so
    seed i equals its run alone and a resumed run equals the uninterrupted one."""
    kw = dict(KW, checkpoint_every=4)
    many = fit(NoisyLinearAE(), _sample_blobs, seed=2, seeds=2, out_dir=tmp_path / "many", **kw)
    for i, key in enumerate(seed_keys(2, 2)):
        _assert_close(many.seed_state(i).params, fit(NoisyLinearAE(), _sample_blobs, seed=key, **kw).state.params)
    out = tmp_path / "run"
    fit(NoisyLinearAE(), _sample_blobs, seed=2, seeds=2, out_dir=out, **dict(kw, num_steps=4))
    resumed = fit(NoisyLinearAE(), _sample_blobs, seed=2, seeds=2, out_dir=out, resume=True, **kw)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.state), jax.tree_util.tree_leaves(many.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the batches: step 3 of seed 1 is the sample drawn with fold_in(its data key, 3)
    from genjax.train import split_run_key
    from genjax.train.loop import _make_draw

    k = split_run_key(seed_keys(2, 2)[1])["data"]
    drawn = _make_draw(_sample_blobs, 8)(jnp.stack([k]), 3, 1)[0, 0]
    np.testing.assert_allclose(drawn, _sample_blobs(jax.random.fold_in(k, 3), 8), rtol=0, atol=1e-6)


def test_on_chunk_sees_every_step_of_every_seed():
    seen = []
    res = fit(NoisyLinearAE(), DATA, seed=7, seeds=3, ema_decay=0.8, on_chunk=lambda s, m: seen.append((s, m)), **KW)
    assert [s for s, _ in seen] == [3, 4, 6, 8, 9, 10]  # chunk ends: steps_per_dispatch 3 and log_every 4
    loss = np.concatenate([m["loss"] for _, m in seen])
    assert loss.shape == (10, 3) and np.concatenate([m["finite"] for _, m in seen]).all()
    for i in range(3):  # the train records are the means of those per-step losses
        recs = [r["loss"] for r in res.history if r.get("seed") == i and r["kind"] == "train"]
        np.testing.assert_allclose(recs, [loss[0:4, i].mean(), loss[4:8, i].mean(), loss[8:10, i].mean()], rtol=1e-6)
