"""``genjax compare``: end to end on a tiny budget, vmapped seeds vs ``fit``, the CLI.

Tiny everything (widths 8-16, a few steps, 2 seeds, 24 samples, a 30-step classifier)
so the file stays well under a minute and a half; the numbers are meaningless, the
cells and their conventions are what is checked.
"""

from __future__ import annotations

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from genjax import cli, registry
from genjax import compare as cmp
from genjax.metrics import features as feats
from genjax.train import fit

TINY_CLASSIFIER = dict(steps=30, features=(8, 8), feature_dim=16)
TINY_OPTIONS = {
    "vae": {"hidden": "16", "latent_dim": 4},
    "gan": {"g_hidden": "16", "d_hidden": "16", "latent_dim": 8},
    "realnvp-mlp": {"num_layers": 2, "hidden": (16,)},
    "ddpm-mlp": {"hidden": (16,), "emb_dim": 8, "T": 5},
}
SEEDS, BATCH, STEPS, NUM = 2, 8, 4, 24


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def report(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("compare")
    r = cmp.compare(
        "digits", budget=BATCH * STEPS, seeds=SEEDS, batch_size=BATCH, out_dir=out, num_samples=NUM, iwae_samples=4,
        steps_per_dispatch=STEPS, data_dir=data_dir, classifier_overrides=TINY_CLASSIFIER, options=TINY_OPTIONS,
        kid_subsets=3, progress=False,
    )
    return r, out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_compare_produces_every_cell(report):
    r, out = report
    assert set(r["families"]) == set(cmp.FAMILIES)
    assert r["budget"]["examples"] == BATCH * STEPS and r["budget"]["steps"] == STEPS
    D, L = 64, 17
    for fam, row in r["families"].items():
        assert row["family"] == fam and row["model"] == cmp.DEFAULT_MODELS[fam]
        assert row["examples_seen"] == BATCH * STEPS and row["num_seeds"] == SEEDS
        assert row["diverged_seeds"] == 0, row["per_seed"]
        assert isinstance(row["num_params"], int) and row["num_params"] > 0
        for k in ("train_time_s", "time_per_1000_samples_s"):
            assert _finite(row[k]) and row[k] > 0, (fam, k, row[k])
        assert isinstance(row["network_evaluations_per_sample"], int) and row["network_evaluations_per_sample"] >= 1
        for m in cmp.SAMPLE_METRICS:
            cell = row["quality"][m]
            assert _finite(cell["mean"]) and _finite(cell["std"]) and cell["n"] == SEEDS, (fam, m, cell)
        if fam == "gan":
            assert row["likelihood_kind"] == "none"
            assert row["bits_per_dim"] == "n/a" and row["nll_nats"] == "n/a"
            assert "no density" in row["likelihood_na_reason"]
            continue
        assert row["likelihood_na_reason"] is None
        assert _finite(row["bits_per_dim"]["mean"]) and _finite(row["nll_nats"]["mean"])
        for rec in row["per_seed"]:  # bits/dim from nats, by the stated convention
            lk = rec["likelihood"]
            offset = 0.0 if lk["log_prob_kind"] == "vlb" else math.log2(L)
            np.testing.assert_allclose(lk["bits_per_dim"], lk["nll_nats"] / (D * math.log(2.0)) + offset, rtol=1e-12)
    kinds = {f: r["families"][f]["likelihood_kind"] for f in cmp.FAMILIES}
    assert kinds == {"vae": "IWAE bound", "gan": "none", "flow": "exact", "diffusion": "VLB"}
    # the vmapped seeds really differ: their sample metrics are not identical
    fids = [rec["quality"]["fid"] for rec in r["families"]["vae"]["per_seed"]]
    assert fids[0] != fids[1]


def test_report_files_and_tables(report):
    r, out = report
    for f in ["report.md", "report.json", "samples_all.png", *(f"samples_{fam}.png" for fam in cmp.FAMILIES)]:
        assert (out / f).is_file(), f
    saved = json.loads((out / "report.json").read_text())
    assert saved["families"]["flow"]["bits_per_dim"] == r["families"]["flow"]["bits_per_dim"]
    md = (out / "report.md").read_text()
    for fam in cmp.FAMILIES:
        assert f"| **{fam}** (" in md
    assert "| *real vs real* |" in md and "| real vs real |" in md
    assert "## How measured" in md
    assert saved["run"]["command"] and saved["run"]["versions"]["jax"]  # written by genjax.results.write_result


def test_report_shows_every_seeds_training_curves_beside_the_samples(report):
    from PIL import Image

    from genjax import viz

    r, out = report
    for fam in cmp.FAMILIES:
        assert f"curves_{fam}.png" in r["files"]
        img = Image.open(out / f"curves_{fam}.png")
        assert img.width > 100 and img.height > 100
        md = (out / "report.md").read_text()
        assert f"![{fam} samples](samples_{fam}.png) | ![{fam} curves](curves_{fam}.png) |" in md
    # what is drawn: one loss line per seed, each over the run's chunks
    records = []
    bundle = registry.load_data("digits")
    b = registry.build_model("vae", bundle, {**cmp.MODELS["vae"], **TINY_OPTIONS["vae"]})
    cmp.train_seeds(b.model, bundle.train[:64], cmp.seed_keys(0, SEEDS), num_steps=4, batch_size=4,
                    optimizer=b.optimizer, transform=b.transform, steps_per_dispatch=2, history=records)
    lines = viz.curve_data(records)["loss"]
    assert sorted(lines) == list(range(SEEDS)) and all(list(steps) == [2, 4] for steps, _ in lines.values())


def test_kid_says_what_was_done(report):
    """Defect A4: with n samples and subsets of min(1000, n) = n, the "100 subsets" were the
    whole sets (std 0). The report now says KID is one value on all n vs n, and the md too."""
    r, out = report
    assert r["evaluation"]["kid"].startswith(f"cubic polynomial kernel, unbiased MMD^2; one value on all {NUM} samples")
    assert cmp.kid_description(5000, subsets=100).endswith("mean over 100 random subsets of 1000 of each set")
    assert f"one value on all {NUM} samples vs {NUM} test images" in (out / "report.md").read_text()


def test_models_own_their_data_space():
    """No wrapper: the MLP RealNVP takes (8, 8, 1) images itself, the VAE samples E[x|z] by
    its own sample_mean."""
    bundle = registry.load_data("digits")
    flow = registry.build_model("realnvp-mlp", bundle, TINY_OPTIONS["realnvp-mlp"])
    assert type(flow.model).__name__ == "Flow" and flow.model.data_shape == (8, 8, 1) and flow.model.flatten
    vae = registry.build_model("vae", bundle, {**cmp.MODELS["vae"], **TINY_OPTIONS["vae"]})
    assert vae.model.sample_mean


def test_compare_builds_its_models_with_the_registry():
    """One place builds a model: compare's table holds only option overrides of the registry's
    specs, and the report's options are the registry's resolved options."""
    bundle = registry.load_data("digits")
    for name, overrides in cmp.MODELS.items():
        spec = registry.get_model_spec(name)
        assert set(overrides) <= set(spec.options), name
        assert cmp.family_of(name) in cmp.FAMILIES
    b = registry.build_model("ddpm-mlp", bundle, TINY_OPTIONS["ddpm-mlp"])
    assert b.spec.family == "diffusion" and cmp.family_of("ddpm-mlp") == "diffusion"
    assert b.options == {**registry.resolve_options(b.spec, {}), **TINY_OPTIONS["ddpm-mlp"]}
    assert b.model.num_steps == 5 and b.model.data_range == "unit" and b.transform is None
    assert registry.network_evaluations(b.model) == (5, "ancestral sampling, T=5 denoiser calls")
    with pytest.raises(ValueError, match="unknown option"):
        registry.build_model("realnvp-mlp", bundle, {"nope": 1})


def test_real_vs_real_baseline_row(report, data_dir):
    r, _ = report
    b = r["baseline"]
    for m in cmp.SAMPLE_METRICS:
        assert _finite(b[m]), m
    # independent FID of the two halves: scipy's sqrtm route on the same classifier features
    bundle = registry.load_data("digits")
    clf = feats.get_classifier("digits", data_dir=data_dir, progress=False, **TINY_CLASSIFIER)
    pool = np.concatenate([bundle.test[:NUM], bundle.train[:NUM]])
    perm = np.random.default_rng(0).permutation(len(pool))
    f1 = clf.features(pool[perm[:NUM]]).astype(np.float64)
    f2 = clf.features(pool[perm[NUM : 2 * NUM]]).astype(np.float64)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm((s1 + 1e-9 * np.eye(16)) @ (s2 + 1e-9 * np.eye(16))).real
    fid = float(np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2 - 2.0 * covmean))
    np.testing.assert_allclose(b["fid"], fid, rtol=1e-3, atol=1e-6)


def test_vmapped_seed_equals_seed_trained_alone():
    bundle = registry.load_data("digits")
    b = registry.build_model("vae", bundle, {**cmp.MODELS["vae"], "hidden": "8", "latent_dim": 2})
    keys = cmp.seed_keys(3, 2)
    train = bundle.train[:64]
    states, finite, losses = cmp.train_seeds(
        b.model, train, keys, num_steps=3, batch_size=4, optimizer=b.optimizer, transform=b.transform, steps_per_dispatch=2
    )
    assert finite.tolist() == [True, True] and losses.shape == (2, 3)
    p0, p1 = cmp.seed_params(states, 0), cmp.seed_params(states, 1)
    diff = max(float(jnp.max(jnp.abs(a - c))) for a, c in zip(jax.tree_util.tree_leaves(p0), jax.tree_util.tree_leaves(p1)))
    assert diff > 1e-3  # different inits and batches
    for i in range(2):
        alone = fit(b.model, train, num_steps=3, batch_size=4, optimizer=b.optimizer, seed=keys[i], transform=b.transform,
                    steps_per_dispatch=2, checkpoint_every=None, progress=False)
        chex.assert_trees_all_close(cmp.seed_params(states, i), alone.state.params, rtol=1e-5, atol=1e-6)
        (rec,) = [h for h in alone.history if h["kind"] == "train"]  # one window: the mean of the 3 steps
        np.testing.assert_allclose(np.mean(losses[i]), rec["loss"], rtol=1e-5)
    # a poisoned optimizer (NaN updates from the second step) is counted as diverged for every seed
    poison = optax.chain(optax.adam(1e-3), optax.scale_by_schedule(lambda s: jnp.where(s >= 1, jnp.nan, 1.0)))
    _, finite, _ = cmp.train_seeds(b.model, train, keys, num_steps=3, batch_size=4, optimizer=poison,
                                   transform=b.transform, steps_per_dispatch=3)
    assert finite.tolist() == [False, False]


def _run_cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse usage errors exit with status 2
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["compare", "--seeds", "0"], "--seeds"),
        (["compare", "--budget", "-5"], "--budget"),
        (["compare", "--families", "vae", "foo"], "family 'foo'"),
        (["compare", "--models", "gan=realnvp"], "not a gan model"),
        (["compare", "--models", "dcgan"], "FAMILY=MODEL"),
        (["compare", "--data", "8gaussians"], "data must be"),
        (["compare", "--options", "{oops"], "--options"),
        (["compare", "--options", '{"vae": {"nope": 1}}', "--families", "vae"], "nope"),
        (["compare", "--seeds", "two"], "--seeds"),
    ],
)
def test_cli_bad_arguments_one_line(argv, needle, capsys, tmp_path):
    rc, out, err = _run_cli([*argv, "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genjax: error:") and needle in lines[0], err
    assert not (tmp_path / "o" / "report.json").exists()


def test_cli_compare_writes_report(capsys, tmp_path, data_dir, monkeypatch):
    # the CLI uses the classifier's default settings: make them the tiny ones of this file
    monkeypatch.setitem(feats.DEFAULT_CONFIGS, "digits", {**feats.DEFAULT_CONFIGS["digits"], **TINY_CLASSIFIER})
    out = tmp_path / "cmp"
    argv = ["compare", "--data", "digits", "--families", "gan", "--budget", "16", "--batch-size", "8", "--seeds", "2",
            "--num-samples", "16", "--options", json.dumps({"gan": TINY_OPTIONS["gan"]}), "--out", str(out),
            "--data-dir", str(data_dir), "--no-progress"]
    rc, stdout, err = _run_cli(argv, capsys)
    assert rc == 0, err
    summary = json.loads(stdout)
    assert set(summary["families"]) == {"gan"} and summary["families"]["gan"]["bits_per_dim"] == "n/a"
    saved = json.loads((out / "report.json").read_text())
    assert saved["budget"]["steps"] == 2 and saved["seeds"] == 2
    assert saved["command"].startswith("genjax compare --data digits --families gan")
    assert "genjax compare --data digits" in (out / "report.md").read_text().split("## ")[0]
    assert (out / "samples_gan.png").is_file() and (out / "samples_all.png").is_file()
