"""``genjax train unclip`` / ``genjax sample --prompt`` / ``--variations-of`` (issue 20), tiny.

The unCLIP run takes CLIP and the autoencoder of a tiny ``genjax train ldm`` run (``--ldm-run``),
so its own stages are the prior and the decoder; the full pipeline (clip, autoencoder, prior,
decoder) is trained by tests/reliability/test_kill_resume_stages.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from genjax import cli
from genjax.unclip.models import UnCLIP

@pytest.fixture(scope="module")
def runs(tiny_ldm_run, tiny_unclip_run):
    """The session's tiny ldm run and the unclip run on its CLIP and autoencoder (tests/conftest.py)."""
    return tiny_ldm_run, tiny_unclip_run


def test_train_unclip_on_an_ldm_runs_clip_and_autoencoder(runs):
    ldm, run = runs
    stages = json.loads((run / "stages.json").read_text())
    assert [s["name"] for s in stages] == ["prior", "decoder"]
    for s in stages:
        steps = [json.loads(line)["step"] for line in (run / s["name"] / "metrics.jsonl").read_text().splitlines()]
        assert steps[-1] == 4
    prior_metrics = [json.loads(line) for line in (run / "prior" / "metrics.jsonl").read_text().splitlines()]
    assert "x0_mse" in prior_metrics[-1]  # the prior predicts the clean embedding
    scale = json.loads((run / "decoder" / "latent_scale.json").read_text())["scale_factor"]
    ldm_scale = json.loads((ldm / "unet" / "latent_scale.json").read_text())["scale_factor"]
    assert scale == pytest.approx(ldm_scale)  # the same autoencoder
    assert (run / "samples.png").is_file()


def test_sample_a_prompt_and_variations(runs, tmp_path):
    ldm, run = runs
    out = tmp_path / "p.npy"
    assert cli.main(["sample", str(run), "--prompt", "a 7", "--num", "3", "--guidance", "3", "--out", str(out)]) == 0
    x = np.load(out)
    assert x.shape == (3, 8, 8, 1) and x.min() >= 0 and x.max() <= 1
    var = tmp_path / "v.npy"
    assert cli.main(["sample", str(run), "--variations-of", "test:0", "--num", "3", "--guidance", "2", "--out", str(var)]) == 0
    v = np.load(var)
    assert v.shape == (3, 8, 8, 1)
    again = tmp_path / "v2.npy"
    assert cli.main(["sample", str(run), "--variations-of", "test:0", "--num", "3", "--guidance", "2", "--out", str(again)]) == 0
    np.testing.assert_array_equal(v, np.load(again))  # same seed, same images
    np.save(tmp_path / "img.npy", x[:2])
    two = tmp_path / "v3.npy"
    assert cli.main(["sample", str(run), "--variations-of", str(tmp_path / "img.npy"), "--num", "2", "--out", str(two)]) == 0
    assert np.load(two).shape == (4, 8, 8, 1)  # 2 per image
    assert cli.main(["sample", str(run), "--variations-of", "test:0", "--num", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()


def test_flags_and_options_are_checked(runs, tmp_path, capsys, tiny_ldm_args):
    ldm, run = runs
    for argv, message in ((["sample", str(ldm), "--variations-of", "test:0"], "cannot make variations"),
                          (["sample", str(run), "--variations-of", "test:99999"], "test:N needs an index"),
                          (["sample", str(run), "--variations-of", "test:0", "--prompt", "a 3"], "takes no --prompt"),
                          (["train", "unclip", "--data", "digits-captions", "--ldm-run", str(ldm), "--clip-run", str(ldm),
                            "--out", str(tmp_path), *tiny_ldm_args], "not both"),
                          (["train", "unclip", "--data", "digits-captions", "--ldm-run", str(run), "--out", str(tmp_path),
                            *tiny_ldm_args], "an ldm run on 'digits-captions' is needed")):
        assert cli.main(argv) != 0, argv
        assert message in capsys.readouterr().err, argv


def test_the_run_restores_as_an_unclip_model(runs):
    _, run = runs
    _, config, _, _, model, params, step = cli._load_run(str(run))
    assert isinstance(model, UnCLIP) and step == 4 and config["model"] == "unclip"


def test_sampler_flags_reach_the_model(runs, tmp_path, capsys):
    _, run = runs
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert cli.main(["sample", str(run), "--prompt", "a 3", "--num", "2", "--sampler", "ddim", "--steps", "3",
                     "--out", str(a)]) == 0
    assert cli.main(["sample", str(run), "--prompt", "a 3", "--num", "2", "--sampler", "ddim", "--steps", "5",
                     "--out", str(b)]) == 0
    assert np.load(a).shape == (2, 8, 8, 1) and not np.array_equal(np.load(a), np.load(b))
    assert cli.main(["sample", str(run), "--prompt", "a 3", "--num", "2", "--sampler", "nope"]) != 0
    assert "sampler" in capsys.readouterr().err
    from genjax.vae import mlp_vae

    assert not cli._takes_sampler(mlp_vae(data_shape=(8, 8, 1), latent_dim=2, hidden=(4,)))
