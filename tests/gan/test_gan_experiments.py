"""Smoke runs of the GAN experiment scripts (seconds, tiny networks) so they never rot."""

from __future__ import annotations

import json

import numpy as np
import pytest


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
    """Killed after 3 of 10 chunk checkpoints, the rerun resumes at chunk 3 and ends where an
    uninterrupted run ends; a finished run's chunk checkpoints are removed."""
    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)  # 20 generator steps in chunks of 2
    whole = mod.train_and_evaluate(config, "ring", "non_saturating", workdir=tmp_path / "whole")

    saves, real = [], mod.Checkpointer

    class Interrupted(Exception):
        pass

    class Dying(real):
        def save(self, state):
            if len(saves) == 3:
                raise Interrupted
            saves.append(int(state.step))
            return super().save(state)

    monkeypatch.setattr(mod, "Checkpointer", Dying)
    with pytest.raises(Interrupted):
        mod.cached_run(config, "ring", "non_saturating", tmp_path / "w")
    ckpt_dir = mod.checkpoint_dir(config, tmp_path / "w", "ring", "non_saturating")
    assert saves == [1, 2, 3] and ckpt_dir.is_dir()
    assert not (tmp_path / "w" / "ring_non_saturating.json").exists()

    monkeypatch.setattr(mod, "Checkpointer", real)
    logs = []
    orig = mod.train_and_evaluate
    monkeypatch.setattr(mod, "train_and_evaluate", lambda *a, **kw: orig(*a, **{**kw, "log": logs.append}))
    resumed = mod.cached_run(config, "ring", "non_saturating", tmp_path / "w")
    assert any("resuming at generator step 6 of 20" in line for line in logs)
    assert resumed["per_seed"] == whole["per_seed"]
    assert [t["step"] for t in resumed["trace"]] == [t["step"] for t in whole["trace"]]
    np.testing.assert_allclose([t["d_loss"] for t in resumed["trace"]], [t["d_loss"] for t in whole["trace"]], rtol=1e-5)
    assert not ckpt_dir.exists() and (tmp_path / "w" / "ring_non_saturating.json").is_file()


def test_gan_mixture_seeds_differ_and_vmap_matches_one_seed(tmp_path, load_experiment):
    """The vmapped trainer really trains distinct seeds, and seed i under vmap equals seed i alone."""
    import jax

    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)
    density = mod.make_density("ring")
    model, tx = mod.build(config, "non_saturating", "ring")
    states = mod.init_states(model, tx, jax.random.PRNGKey(0), 2, ema=False, batch_size=16)
    chunk = mod.make_chunk(model, tx, density, num_seeds=2, batch_size=16, num_steps=3, ema_decay=None)
    single = jax.tree_util.tree_map(lambda a: a[1], states)
    states, _ = chunk(states, jax.random.PRNGKey(1))
    leaves = jax.tree_util.tree_leaves(states.params["generator"])
    assert any(not np.allclose(a[0], a[1]) for a in leaves)
    # seed 1 alone on the same data (the chunk draws (2, 3, 16, 2) and takes row 1)
    from genjax.train import make_step

    step = make_step(model, tx)
    data = density.sample(jax.random.PRNGKey(1), 2 * 3 * 16).reshape(2, 3, 16, 2)[1]
    alone, _ = jax.lax.scan(step, single, data)
    for a, b in zip(leaves, jax.tree_util.tree_leaves(alone.params["generator"])):
        np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5)


def test_gan_mixture_trains_with_a_pack_larger_than_eight(load_experiment):
    """Any pack size that divides the batch works (the init batch was once fixed at 8), and a
    packed discriminator gives one decision per pack (the library's ``pack``)."""
    import jax

    mod = load_experiment("gan_mixture")
    config = mod.get_config(smoke=True)
    config["discriminator"] = {**config["discriminator"], "pack": 16}
    model, tx = mod.build(config, "non_saturating", "ring")
    states = mod.init_states(model, tx, jax.random.PRNGKey(0), 2, ema=False, batch_size=32)
    chunk = mod.make_chunk(model, tx, mod.make_density("ring"), num_seeds=2, batch_size=32, num_steps=2, ema_decay=None)
    states, metrics = chunk(states, jax.random.PRNGKey(1))
    assert np.all(np.asarray(metrics["finite"]))
    one = jax.tree_util.tree_map(lambda a: a[0], states.params["discriminator"])
    x = jax.random.normal(jax.random.PRNGKey(2), (32, 2))
    logits = np.asarray(model.discriminate({"discriminator": one}, x))
    assert model.pack == 16 and logits.shape == (2,)
    assert logits[0] != logits[1]


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
    # a projected config projects to itself
    rc = mod.run_config(config, "grid", "non_saturating")
    assert mod.run_config(rc, "grid", "non_saturating") == rc
