"""Smoke runs of the GAN experiment scripts (seconds, tiny networks) so they never rot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genjax.results import read_samples

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")


def test_gan_mixture_smoke(tmp_path, load_experiment):
    mod = load_experiment("gan_mixture")
    # the pinned protocol: PacGAN's mixtures, built with the library's constructors
    grid, ring = mod.make_density("grid"), mod.make_density("ring")
    assert grid.modes.shape == (25, 2) and grid.mode_std == 0.05
    np.testing.assert_allclose(np.unique(grid.modes), [-4, -2, 0, 2, 4])
    assert ring.modes.shape == (8, 2) and ring.mode_std == 0.01
    np.testing.assert_allclose(np.linalg.norm(ring.modes, axis=1), 1.0, rtol=0, atol=1e-12)
    config = mod.get_config()
    assert config["num_seeds"] == 8 and config["eval_samples"] == 2500
    assert config["threshold_std"] == 3.0 and config["min_count"] == 1

    out = mod.main(["--smoke", "--data", "grid", "--objectives", "non_saturating", "wgan_gp",
                    "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r")])
    saved = json.loads((tmp_path / "r" / "gan_mixture_smoke.json").read_text())
    assert not saved["complete"] and saved["anchors"]["grid"]["PacGAN4 (PacGAN Table 1)"] == {"modes": 24.8, "hq_percent": 93.6}
    assert [r["objective"] for r in saved["runs"]] == ["non_saturating", "wgan_gp"]
    for r in saved["runs"]:
        seeds = r["per_seed"]
        assert len(seeds["modes_captured"]) == 2  # the smoke config trains 2 seeds at once
        assert all(0 <= m <= 25 for m in seeds["modes_captured"])
        assert r["modes_captured"]["mean"] == pytest.approx(np.mean(seeds["modes_captured"]))
        assert r["hq_percent"]["mean"] == pytest.approx(np.mean(seeds["hq_percent"]), abs=0.01)
        # 20 discriminator updates each: 20 generator steps (n_critic 1) or 4 (n_critic 5)
        assert r["all_finite"] and r["trace"][-1]["step"] == (20 if r["objective"] == "non_saturating" else 4)
        assert (tmp_path / "w" / f"grid_{r['objective']}.png").is_file()
    assert out["best"]["grid"]["objective"] in ("non_saturating", "wgan_gp")
    # finished runs are saved with their config: a rerun (an interrupted experiment) reuses them
    assert (tmp_path / "w" / "grid_wgan_gp.json").is_file()
    again = mod.main(["--smoke", "--data", "grid", "--objectives", "non_saturating", "wgan_gp",
                      "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r2")])
    assert again["runs"] == json.loads(json.dumps(out["runs"]))
    saved_run = json.loads((tmp_path / "w" / "grid_wgan_gp.json").read_text())
    saved_run["config_fingerprint"] = "another config"
    (tmp_path / "w" / "grid_wgan_gp.json").write_text(json.dumps(saved_run))
    mod.cached_run(mod.get_config(smoke=True), "grid", "wgan_gp", tmp_path / "w")  # retrains, rewrites
    assert json.loads((tmp_path / "w" / "grid_wgan_gp.json").read_text())["config_fingerprint"] != "another config"


def test_gan_mixture_resumes_an_interrupted_run_from_its_last_chunk(tmp_path, monkeypatch, load_experiment):
    """Killed after its 4th chunk (before that chunk's checkpoint), the rerun resumes at the
    newest checkpoint (generator step 6) and ends with the uninterrupted run's figures and
    trace; its train time counts the killed process's; a finished run's checkpoints are removed."""
    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)  # 20 generator steps in chunks of 2
    whole = mod.train_and_evaluate(config, "ring", "non_saturating", workdir=tmp_path / "whole")

    class Interrupted(Exception):
        pass

    def dying(step, metrics):  # fit calls it after a chunk, before the chunk's checkpoint
        if step == 8:
            raise Interrupted

    real_fit = mod.fit
    monkeypatch.setattr(mod, "fit", lambda *a, **kw: real_fit(*a, **{**kw, "on_chunk": dying}))
    with pytest.raises(Interrupted):
        mod.cached_run(config, "ring", "non_saturating", tmp_path / "w")
    run_dir = mod.checkpoint_dir(config, tmp_path / "w", "ring", "non_saturating")
    assert sorted(int(d.name) for d in (run_dir / "checkpoints").iterdir() if d.name.isdigit()) == [4, 6]
    assert not (tmp_path / "w" / "ring_non_saturating.json").exists()
    # as if the killed process had trained 1000 s up to its checkpoint at step 6
    (run_dir / "train_time.json").write_text(json.dumps({"4": 500.0, "6": 1000.0}))

    monkeypatch.setattr(mod, "fit", real_fit)
    logs = []
    orig = mod.train_and_evaluate
    monkeypatch.setattr(mod, "train_and_evaluate", lambda *a, **kw: orig(*a, **{**kw, "log": logs.append}))
    resumed = mod.cached_run(config, "ring", "non_saturating", tmp_path / "w")
    assert any("resumed at generator step 6 of 20" in line for line in logs)
    assert resumed["all"] == whole["all"]  # every per-seed figure, EMA and raw generators
    assert resumed["trace"] == whole["trace"]  # steps 2..20 (the first 3 rows from the killed process's log)
    assert resumed["all_finite"] and resumed["train_time_s"] >= 1000.0
    assert not run_dir.exists() and (tmp_path / "w" / "ring_non_saturating.json").is_file()
    assert (tmp_path / "w" / "ring_non_saturating_curves.png").is_file()


def test_gan_mixture_trains_distinct_seeds_with_a_pack_larger_than_eight(load_experiment):
    """Any pack size that divides the batch works (the init batch was once fixed at 8), the
    seeds train apart (their own keys and data: fit's ``seeds``), and a packed discriminator
    gives one decision per pack (the library's ``pack``)."""
    import jax

    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)
    config["discriminator"] = {**config["discriminator"], "pack": 16}
    config.update(batch_size=32, d_updates=4)
    res = mod.train(config, "ring", "non_saturating")
    assert res.num_seeds == 2 and int(res.state.step[0]) == 4 and not res.diverged.any()
    assert len(mod.trace_rows(res.history)) == 2 and all(t["finite"] for t in mod.trace_rows(res.history))
    leaves = jax.tree_util.tree_leaves(res.state.params["generator"])
    assert any(not np.allclose(a[0], a[1]) for a in leaves)
    model, _ = mod.build(config, "non_saturating", "ring")
    one = jax.tree_util.tree_map(lambda a: a[0], res.state.params["discriminator"])
    x = jax.random.normal(jax.random.PRNGKey(2), (32, 2))
    logits = np.asarray(model.discriminate({"discriminator": one}, x))
    assert model.pack == 16 and logits.shape == (2,)
    assert logits[0] != logits[1]


def test_gan_mixture_trace_marks_a_chunk_with_a_nonfinite_step(load_experiment):
    """A chunk is finite when no seed's ``nonfinite_steps`` count grew in it; its losses are
    the mean over seeds of each seed's chunk mean."""
    mod = load_experiment("gan_mixture")
    rec = lambda step, seed, d, g, n: {"step": step, "kind": "train", "seed": seed, "d_loss": d, "g_loss": g, "nonfinite_steps": n}
    history = [rec(2, 0, 1.0, 2.0, 0), rec(2, 1, 3.0, 4.0, 0), rec(4, 1, 1.0, 1.0, 1), rec(4, 0, 1.0, 1.0, 0),
               {"step": 4, "kind": "eval", "seed": 0, "x": 1.0}, rec(6, 0, 1.0, 1.0, 0), rec(6, 1, "nan", 1.0, 1)]
    rows = mod.trace_rows(history)
    assert [r["step"] for r in rows] == [2, 4, 6] and [r["finite"] for r in rows] == [True, False, True]
    assert rows[0]["d_loss"] == 2.0 and rows[0]["g_loss"] == 3.0 and np.isnan(rows[2]["d_loss"])


def test_gan_mixture_wgan_gp_penalises_each_pack(key, rng, load_experiment):
    """The experiment's WGAN-GP penalty (ring: pack 16, 2 packs) is the mean over packs of
    ``(||grad|| - 1)^2``, the gradient of the pack's score with respect to its concatenated
    32 numbers at ``eps x + (1 - eps) G(z)``, one ``eps`` per pack. (Its old critic repeated a
    pack's logit to its 16 examples and was penalised per example: norms 2-4x too big.)"""
    import jax
    import jax.numpy as jnp

    mod = load_experiment("gan_mixture")
    model, _ = mod.build(mod.get_config(smoke=True), "wgan_gp", "ring")
    x = jnp.asarray(rng.normal(size=(32, 2)), jnp.float32)
    params = model.init(key, x)
    _, m = model.d_loss(params, key, x)
    k_fake, k_gp = jax.random.split(key)
    fake = model._train_fakes(params, k_fake, 32)
    score = lambda row: model.discriminate(params, row.reshape(16, 2))[0]  # one pack's decision
    eps = jax.random.uniform(k_gp, (2, 1))
    r, f = x.reshape(2, 32), fake.reshape(2, 32)
    gp = [(np.linalg.norm(jax.grad(score)(eps[j] * r[j] + (1 - eps[j]) * f[j])) - 1.0) ** 2 for j in range(2)]
    np.testing.assert_allclose(m["gp"], np.mean(gp), rtol=1e-4, atol=1e-6)


def test_gan_mnist_smoke(tmp_path, monkeypatch, data_dir, load_experiment):
    if not (data_dir / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GENJAX_DATA_DIR)")
    monkeypatch.setenv("GENJAX_DATA_DIR", str(data_dir))
    mod = load_experiment("gan_mnist")
    out = mod.main(["--smoke", "--model", "dcgan", "--workdir", str(tmp_path / "w"),
                    "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "gan_mnist_dcgan_smoke.json").read_text())
    assert saved["steps"] == 4 and out["steps"] == 4
    hist = saved["class_histogram"]  # under a throw-away 20-step classifier in the smoke run
    assert sum(hist["counts"]) == 100 and 1 <= hist["classes_covered"] <= 10
    q = saved["sample_quality"]  # FID & co. of the same 100 samples against 100 test images
    assert np.isfinite(q["fid"]) and q["fid"] > 0 and 0.0 <= q["precision"] <= 1.0 and 0.0 <= q["recall"] <= 1.0
    samples = read_samples(tmp_path / "r" / "gan_mnist_dcgan_smoke_samples.npz")
    assert samples["samples"].shape == (100, 28, 28) and samples["samples"].dtype == np.uint8
    assert 0.0 <= saved["classifier_test_accuracy"] <= 1.0
    stats = saved["sample_statistics"]
    assert 0.0 <= stats["pixel_histogram_tv"] <= 1.0 and stats["diversity_ratio"] > 0
    run = tmp_path / "w" / "gan_mnist_dcgan_smoke"
    for f in ("samples.png", "metrics.jsonl"):
        assert (run / f).is_file(), f
    # the StyleGAN config builds (its pictures are exercised by the CLI tests)
    style = mod.build(mod.get_config("stylegan"))
    assert style.is_style and style.style_mixing_prob == 0.9 and style.generator.out_shape == (28, 28, 1)
    assert mod.build(mod.get_config("dcgan")).generator.features == (128, 64)


def test_gan_mixture_saved_runs_are_keyed_by_their_own_config(tmp_path, monkeypatch, load_experiment):
    """A saved (data, objective) run is reused while the settings *it* depends on are unchanged
    (another data set's budget or another objective's learning rate may change); a change to
    its own budget or its objective's settings re-runs it."""
    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)
    first = mod.cached_run(config, "grid", "non_saturating", tmp_path / "w")
    saved = json.loads((tmp_path / "w" / "grid_non_saturating.json").read_text())
    assert json.loads(saved["config_fingerprint"]) == mod.run_config(config, "grid", "non_saturating")

    calls = []
    monkeypatch.setattr(mod, "train_and_evaluate", lambda c, d, o, **kw: calls.append((d, o)) or {"data": d, "objective": o})

    other_data = {**config, "d_updates": {"grid": config["d_updates"], "ring": 4 * config["d_updates"]}}
    other_objective = {**config, "objectives": {**config["objectives"], "wgan": {**config["objectives"]["wgan"], "lr": 1.0}}}
    for c in (other_data, other_objective):
        assert mod.cached_run(c, "grid", "non_saturating", tmp_path / "w") == json.loads(json.dumps(first))
        assert mod.checkpoint_dir(c, tmp_path, "grid", "non_saturating") == mod.checkpoint_dir(config, tmp_path, "grid", "non_saturating")
    assert calls == []

    own_budget = {**config, "d_updates": {"grid": 2 * config["d_updates"], "ring": config["d_updates"]}}
    own_objective = {**config, "objectives": {**config["objectives"], "non_saturating": {**config["objectives"]["non_saturating"], "lr": 1.0}}}
    for c in (own_budget, own_objective):
        mod.cached_run(c, "grid", "non_saturating", tmp_path / "w")
        assert mod.checkpoint_dir(c, tmp_path, "grid", "non_saturating") != mod.checkpoint_dir(config, tmp_path, "grid", "non_saturating")
    assert calls == [("grid", "non_saturating")] * 2
    # a run saved by the experiment's own loop (before fit, another random stream: no
    # code_version in its config) is trained again, never mixed with fit's runs
    old = {k: v for k, v in mod.run_config(config, "grid", "non_saturating").items() if k != "code_version"}
    (tmp_path / "w" / "grid_non_saturating.json").write_text(json.dumps({"config_fingerprint": json.dumps(old), "result": first}))
    mod.cached_run(config, "grid", "non_saturating", tmp_path / "w")
    assert calls == [("grid", "non_saturating")] * 3
    # a projected config projects to itself
    rc = mod.run_config(config, "grid", "non_saturating")
    assert mod.run_config(rc, "grid", "non_saturating") == rc
