"""``genjax compare --data <captioned>``: the text-to-image table end to end on a tiny budget.

digits-captions, tiny networks, 4 steps of 8, 2 seeds, 2 prompts per digit, a 30-step
classifier: the numbers are meaningless, the rows, the cells, their ranges, the seeds'
spread and the argument checks are what is checked.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from genjax import cli, registry
from genjax import compare_t2i as ct
from genjax.metrics import features as feats
from genjax.registry import ldm as ldm_registry

TINY = dict(size="tiny", steps=4, batch_size=8, clip_steps=4, ae_steps=4, per_digit=2, per_attribute=1, per_pair=1,
            sampler_steps=2, feature_weight=0.0)
TINY_CLASSIFIER = dict(steps=30, features=(8, 8), feature_dim=16)
SEEDS = 2


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    data_dir, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("t2i")
    r = ct.compare_t2i("digits-captions", seeds=SEEDS, out_dir=out, data_dir=data_dir, settings=TINY,
                       classifier_overrides=TINY_CLASSIFIER, progress=False, command="genjax compare --data digits-captions")
    return r, out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_every_row_and_column(report):
    r, out = report
    assert tuple(r["rows"]) == ct.ROWS
    assert r["budget"] == {**r["budget"], "examples": 32, "steps": 4, "batch_size": 8}
    shares = ("precision", "recall", "prompt_acc", "attribute_acc", "held_out_pair_acc", "r_precision")
    for name, row in r["rows"].items():
        assert row["num_seeds"] == SEEDS and row["diverged_seeds"] == 0, row["per_seed"]
        assert isinstance(row["params_trained"], int) and 0 < row["params_trained"] <= row["params_total"]
        assert isinstance(row["network_evaluations_per_sample"], int) and row["network_evaluations_per_sample"] >= 2
        for m in ct.FIGURES:
            cell = row["figures"][m]
            if m in row["na"]:
                assert cell["n"] == 0 and row["na"][m], (name, m)  # n/a, with its reason
                continue
            # every seed scored, and the spread over seeds reported
            assert cell["n"] == SEEDS and _finite(cell["mean"]) and _finite(cell["std"]) and cell["std"] >= 0, (name, m)
            values = [rec[m] for rec in row["per_seed"]]
            np.testing.assert_allclose(cell["mean"], np.mean(values), rtol=1e-12)
            np.testing.assert_allclose(cell["std"], np.std(values), rtol=1e-9, atol=1e-15)
            if m in shares:
                assert all(0.0 <= v <= 1.0 for v in values), (name, m, values)
            if m == "clip_score":
                assert all(-1.0 <= v <= 1.0 for v in values)
            if m in ("fid", "train_time_s", "time_per_sample_s"):
                assert all(v >= 0 for v in values)
    # the seeds really differ (their own init and batches)
    fids = [rec["fid"] for rec in r["rows"]["ldm"]["per_seed"]]
    assert fids[0] != fids[1]
    # the baseline: no attributes or pairs (labels); digits-captions has no pairs set at all
    base = r["rows"]["ddpm-cfg"]
    assert set(base["na"]) == {"attribute_acc", "held_out_pair_acc"} and "label" in base["na"]["attribute_acc"]
    assert "no pairs set" in r["rows"]["ldm"]["na"]["held_out_pair_acc"]
    assert base["params_trained"] == base["params_total"]  # nothing frozen
    shared = r["shared"]["clip_params"] + r["shared"]["autoencoder_params"]
    for name in ("ldm", "unclip"):  # one CLIP and autoencoder, shared
        assert r["rows"][name]["params_total"] - r["rows"][name]["params_trained"] == shared


def test_network_evaluations_count_guided_calls_twice(report):
    r, _ = report
    rows = r["rows"]
    assert rows["ddpm-cfg"]["network_evaluations_per_sample"] == 2 * TINY["sampler_steps"]
    assert rows["ldm"]["network_evaluations_per_sample"] == 2 * TINY["sampler_steps"]
    T = ldm_registry.SIZES["tiny"]["T"]  # the prior's DDIM steps are min(64, T), 2 candidates, guided
    assert rows["unclip"]["network_evaluations_per_sample"] == T * 2 * 2 + 2 * TINY["sampler_steps"]


def test_report_files(report):
    r, out = report
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"]["unclip"]["figures"] == json.loads(json.dumps(r["rows"]["unclip"]["figures"]))
    assert saved["command"] == "genjax compare --data digits-captions" and saved["run"]["versions"]["jax"]
    assert "genjax compare --data digits-captions" in saved["run"]["command"]  # written by write_result
    md = (out / "report.md").read_text()
    for row in r["rows"].values():
        assert f"| **{row['title']}** |" in md
    for col in ("FID", "prompt acc", "attribute acc", "held-out pair acc", "CLIP score", "params (trained / total)",
                "train s / seed", "s / sample", "NFE", "diverged"):
        assert col in md.split("## The table")[1].split("\n|---")[0], col
    assert "trained once" in md and "shared by every model and seed" in md
    img = Image.open(out / "samples_prompts.png")
    assert img.width > 10 * 8 and img.height > 3 * 8  # 10 prompts, one row per model


def test_labelled_rows_checks():
    from genjax import viz

    x = np.zeros((3, 4, 4, 1))
    img = viz.labelled_rows([("a", x), ("b", x)], col_labels=["1", "2", "3"])
    assert img.height > 2 * 4
    with pytest.raises(ValueError, match="one shape"):
        viz.labelled_rows([("a", x), ("b", x[:2])])
    with pytest.raises(ValueError, match="col_labels"):
        viz.labelled_rows([("a", x)], col_labels=["1"])


def test_ddpm_num_classes_trains_on_labels():
    bundle = registry.load_data("digits-captions")
    spec = registry.get_model_spec("ddpm")
    b = registry.build_model("ddpm", bundle, {"num_classes": 10, "base": 8, "channel_mult": "1", "T": 5})
    assert b.model.condition.kind == "labels" and b.model.num_classes == 10
    d = spec.train_data(bundle, b.options, 16)
    np.testing.assert_array_equal(d["cond"], bundle.captioned[0].labels[:16])
    np.testing.assert_array_equal(d["x"], bundle.train[:16])
    with pytest.raises(ValueError, match="--num-classes"):
        spec.train_data(registry.load_data("digits"), b.options, 4)
    with pytest.raises(ValueError, match="--num-classes"):
        spec.train_data(bundle, {**b.options, "num_classes": 5}, 4)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(data="digits"), "no captions"),
        (dict(data="mnist-pairs"), "use --data mnist-captions"),
        (dict(seeds=0), "seeds"),
        (dict(budget=4), "budget must be at least one batch"),
        (dict(batch_size=-1), "batch_size"),
        (dict(settings={"nope": 1}), "unknown keys"),
        (dict(settings={"size": "huge"}), "size"),
    ],
)
def test_bad_arguments_before_any_work(kwargs, needle, tmp_path):
    kw = dict(data="digits-captions", seeds=1, out_dir=tmp_path / "o", settings=TINY, progress=False)
    kw.update(kwargs)
    if "settings" in kwargs:
        kw["settings"] = {**TINY, **kwargs["settings"]}
    with pytest.raises((ValueError, TypeError), match=needle):
        ct.compare_t2i(kw.pop("data"), **kw)
    assert not (tmp_path / "o").exists()


def _run_cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["compare", "--data", "digits-captions", "--seeds", "0"], "--seeds"),
        (["compare", "--data", "digits-captions", "--budget", "-5"], "--budget"),
        (["compare", "--data", "digits-captions", "--families", "vae"], "--families"),
        (["compare", "--data", "mnist-captions", "--options", "{}"], "--options"),
        (["compare", "--data", "mnist-pairs"], "mnist-captions"),
        (["compare", "--data", "digits", "--no-pairs"], "--no-pairs"),
    ],
)
def test_cli_bad_flags_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(feats, "get_classifier", lambda *a, **k: pytest.fail("work started before the checks"))
    rc, _, err = _run_cli([*argv, "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genjax: error:") and needle in lines[0], err
    assert not (tmp_path / "o").exists()
