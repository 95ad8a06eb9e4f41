"""End-to-end CLI runs on digits and a toy density, a few steps each."""

import json

import numpy as np
import pytest
from PIL import Image

from genjax import cli


def _train(tmp_path, *extra):
    return cli.main(["train", "vae", "--out", str(tmp_path), "--steps", "40", "--log-every", "20",
                     "--checkpoint-every", "20", "--steps-per-dispatch", "20", "--eval-samples", "8",
                     "--no-progress", *extra])


def test_train_sample_eval_on_digits(tmp_path, capsys):
    assert _train(tmp_path, "--latent-dim", "4", "--hidden", "16") == 0
    summary = json.loads(capsys.readouterr().out)
    run = tmp_path / "vae-digits"
    assert summary["run_dir"] == str(run) and summary["steps"] == 40
    for f in ("config.json", "metrics.jsonl", "samples.png", "reconstructions.png"):
        assert (run / f).is_file(), f
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["20", "40"]
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["latent_dim"] == 4 and config["options"]["hidden"] == "16"
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == [20, 40]
    assert np.isfinite(summary["test_nll_nats"]) and summary["test_nll_nats"] > 0
    img = Image.open(run / "samples.png")
    assert img.size[0] > 64 and np.asarray(img).std() > 0  # a picture, not a blank

    assert cli.main(["sample", str(run), "--num", "9", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    # an image VAE samples in its data space, E[x|z] (its sample_mean), for the .npy as for the PNG
    assert s.shape == (9, 8, 8, 1) and 0.0 < s.min() and s.max() < 1.0 and not set(np.unique(s)) <= {0.0, 1.0}

    assert cli.main(["eval", str(run), "--num-samples", "16", "--max-examples", "20"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["num_test_examples"] == 20 and ev["step"] == 40 and ev["test_nll_nats"] > 0
    assert ev["test_bits_per_dim"] == pytest.approx(ev["test_nll_nats"] / (64 * np.log(2)), rel=1e-6)

    # the library API mirrors the command: registry.restore_run gives back what `genjax sample` samples
    from genjax import registry

    restored = registry.restore_run(run)
    assert restored.config == config and restored.step == 40 and restored.spec.name == "vae"
    assert restored.data.name == "digits" and restored.model.latent_dim == 4
    with pytest.raises(ValueError, match="data: the run .* was trained on 'digits'"):
        registry.restore_run(run, registry.load_data("two-moons"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        registry.restore_run(tmp_path / "no-such-run")


def test_resume_continues_and_second_run_gets_new_dir(tmp_path, capsys):
    assert _train(tmp_path, "--latent-dim", "2", "--hidden", "8", "--name", "r") == 0
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "r", "--resume", "--steps", "60",
                     "--no-progress", "--steps-per-dispatch", "20", "--log-every", "20", "--eval-samples", "4"]) == 0
    lines = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    # the run keeps its own config (steps=40 in config.json): resume with a finished run does no more steps
    assert [r["step"] for r in lines if r["kind"] == "train"] == [20, 40]
    capsys.readouterr()
    assert _train(tmp_path, "--latent-dim", "2", "--hidden", "8") == 0
    assert _train(tmp_path, "--latent-dim", "2", "--hidden", "8") == 0
    assert (tmp_path / "vae-digits").is_dir() and (tmp_path / "vae-digits-2").is_dir()


def test_toy_density_run_writes_scatter(tmp_path, capsys):
    assert cli.main(["train", "vae", "--data", "8gaussians", "--out", str(tmp_path), "--steps", "20",
                     "--steps-per-dispatch", "10", "--log-every", "10", "--eval-samples", "4", "--no-progress",
                     "--latent-dim", "2", "--hidden", "8"]) == 0
    assert (tmp_path / "vae-8gaussians" / "samples.png").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "vae", "--data", "nope"], "unknown data set 'nope'; valid choices: .*digits"),
        (["train", "vae", "--steps", "0"], "--steps must be a positive integer"),
        (["train", "vae", "--batch-size", "-3"], "--batch-size must be a positive integer"),
        (["train", "vae", "--hidden", "a,b"], "--hidden: expected comma-separated integers"),
        (["eval", "/nonexistent-run"], "run directory '/nonexistent-run' does not exist"),
        (["sample", "/nonexistent-run", "--num", "0"], "--num must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_error(argv, message, capsys, tmp_path):
    import re

    rc = cli.main(argv + (["--out", str(tmp_path)] if argv[0] == "train" else []))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("genjax: error: ")
    assert re.search(message, err[0]), err[0]


def test_unknown_model_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "gann"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'gann'" in err and "'vae'" in err and "'iwae'" in err


def test_resume_into_a_run_of_another_model_is_refused(tmp_path, capsys):
    run = tmp_path / "x"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "iwae", "data": "digits"}))
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "x", "--resume", "--no-progress"]) == 1
    assert "holds model 'iwae'" in capsys.readouterr().err
