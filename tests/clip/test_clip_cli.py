"""``genjax train clip --data digits-captions`` end to end (a few steps), ``genjax eval`` on the
run, the registry's data bundle of a captioned set, the experiment's smoke mode, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genjax import cli, registry
from genjax.clip import CLIP

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

_COMMON = ["--steps", "4", "--batch-size", "16", "--steps-per-dispatch", "2", "--log-every", "2",
           "--checkpoint-every", "4", "--no-progress", "--captions-per-image", "3", "--size", "tiny"]


def test_train_and_eval_clip_on_digits_captions(tmp_path, capsys):
    rc = cli.main(["train", "clip", "--data", "digits-captions", "--out", str(tmp_path), "--no-eval", *_COMMON])
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out)
    run = tmp_path / "clip-digits-captions"
    assert {"similarity.png", "embeddings.npz"} <= set(summary["files"])
    assert np.asarray(Image.open(run / "similarity.png"), np.float32).std() > 0
    with np.load(run / "embeddings.npz") as z:
        assert z["image"].shape == z["text"].shape == (360, 16)
        np.testing.assert_allclose(np.linalg.norm(z["image"], axis=1), 1.0, rtol=1e-4)
        assert z["class_embeddings"].shape == (10, 16) and z["labels"].shape == (360,)
    assert cli.main(["eval", str(run), "--max-examples", "90"]) == 0
    evaluated = json.loads((run / "eval.json").read_text())
    assert evaluated["model"] == "clip" and evaluated["step"] == 4 and evaluated["num_test"] == 90
    assert evaluated["t2i_recall@1_same_text"] >= evaluated["t2i_recall@1"]  # the same-text relevance holds the diagonal
    for k in ("zero_shot_acc", "i2t_recall@1", "t2i_recall@5", "t2i_recall@1_same_text", "attribute_precision@3"):
        assert 0.0 <= evaluated[k] <= 1.0, k


def test_captioned_bundle_and_train_data():
    data = registry.load_data("digits-captions")
    assert data.kind == "image" and data.shape == (8, 8, 1) and data.captioned is not None
    assert data.captioned[0].images is data.train or np.array_equal(data.captioned[0].images, data.train)
    spec = registry.get_model_spec("clip")
    opts = registry.resolve_options(spec, {"captions_per_image": 2})
    model = spec.build(data, opts)
    assert isinstance(model, CLIP) and model.condition.kind == "tokens"
    batch = spec.train_data(data, opts, 5)
    assert batch["x"].shape == (5, 8, 8, 1) and batch["cond"].shape == (5, 2, model.condition.max_len)
    # every drawn caption decodes to one of its image's captions
    tok = model.tokenizer
    for i in range(5):
        for text in tok.decode(batch["cond"][i]):
            assert text in data.captioned[0].all_captions(i)


def test_clip_on_uncaptioned_data_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["train", "clip", "--data", "digits", "--out", str(tmp_path), *_COMMON])
    err = capsys.readouterr().err
    assert rc != 0 and "no captions" in err and "digits-captions" in err
    assert not (tmp_path / "clip-digits").exists()


def test_clip_mnist_smoke(tmp_path, load_experiment):
    mod = load_experiment("clip_mnist")
    out = mod.main(["--smoke", "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "clip_mnist_smoke.json").read_text())
    r = saved["results"]["digits-captions"]
    assert not saved["full_schedule"] and saved["config"]["steps"] == 30 and "run" in saved
    assert np.isfinite(r["final_train_loss"]) and 0.0 <= r["zero_shot_acc"] <= 1.0
    assert out["results"]["digits-captions"]["num_test"] == 300
