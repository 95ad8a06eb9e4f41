"""``genjax train gan|dcgan|wgan|wgan-gp|stylegan`` end to end on tiny settings, then
``genjax sample`` and ``genjax eval`` on the run; bad option values are one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from genjax import cli

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

# (model, data, tiny options, pictures the run must write)
RUNS = [
    ("gan", "checkerboard", ["--latent-dim", "2", "--g-hidden", "8", "--d-hidden", "8"], ["samples.png"]),
    ("dcgan", "digits", ["--latent-dim", "4", "--width", "4"], ["samples.png"]),
    ("wgan", "digits", ["--latent-dim", "4", "--width", "4", "--n-critic", "2"], ["samples.png"]),
    ("wgan-gp", "25gaussians", ["--latent-dim", "2", "--g-hidden", "8", "--d-hidden", "8", "--n-critic", "2"], ["samples.png"]),
    (
        "stylegan",
        "digits",
        ["--latent-dim", "4", "--w-dim", "8", "--mapping-layers", "1", "--width", "4"],
        ["samples.png", "style_mixing.png", "truncation.png"],
    ),
]


def _train(tmp_path, model, data, opts):
    return cli.main(
        ["train", model, "--data", data, "--out", str(tmp_path), "--steps", "2", "--batch-size", "8",
         "--steps-per-dispatch", "2", "--log-every", "2", "--checkpoint-every", "2", "--no-progress", *opts]
    )


def _not_blank(path):
    a = np.asarray(Image.open(path).convert("L"), np.float32)
    assert a.std() > 0, f"{path.name} is blank"
    return a


@pytest.mark.parametrize("model, data, opts, pictures", RUNS, ids=[r[0] for r in RUNS])
def test_train_sample_eval(model, data, opts, pictures, tmp_path, capsys):
    assert _train(tmp_path, model, data, opts) == 0
    summary = json.loads(capsys.readouterr().out)
    run = tmp_path / f"{model}-{data}"
    assert summary["steps"] == 2 and np.isfinite(summary["final_train_loss"])
    assert set(pictures) <= set(summary["files"])
    for f in ["config.json", "metrics.jsonl", *pictures]:
        assert (run / f).is_file(), f
    pics = {p: _not_blank(run / p) for p in pictures}
    rec = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rec if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2] and {"d_loss", "g_loss", "d_updates"} <= set(train[0])
    n_critic = int(opts[opts.index("--n-critic") + 1]) if "--n-critic" in opts else (5 if model == "wgan" else 1)
    assert train[0]["d_updates"] == n_critic

    # `genjax sample` goes through the registry and restores with the spec's GANOptimizer
    # (64 samples, as the run's picture: the compiled sampler is reused)
    assert cli.main(["sample", str(run), "--num", "64", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    if data == "digits":
        assert s.shape == (64, 8, 8, 1)
        assert 0.0 <= s.min() and s.max() <= 1.0  # the data's space, not the generator's [-1, 1]
        assert s.std() > 0
    else:
        assert s.shape == (64, 2) and np.isfinite(s).all()
    assert cli.main(["sample", str(run), "--num", "64"]) == 0
    assert (run / "samples-0.png").is_file()

    assert cli.main(["eval", str(run), "--num-samples", "400"]) == 0  # --num-samples: generated samples
    ev = json.loads((run / "eval.json").read_text())
    assert ev["step"] == 2 and ev["log_prob_kind"].startswith("none")
    if data == "digits":  # the one evaluation path: FID etc. on the digits classifier, vs all 360 test images
        assert ev["num_generated"] == 400 and ev["num_reference"] == 360 and np.isfinite(ev["fid"])
        for k in ("mean_image_rmse", "pixel_std_ratio", "diversity_ratio", "nn_distance_ratio", "pixel_histogram_tv"):
            assert np.isfinite(ev[k]) and ev[k] >= 0, k
        assert 0 <= ev["pixel_histogram_tv"] <= 1
    elif data == "checkerboard":  # 2-D data without modes: moments and the true density of the samples
        assert ev["num_generated"] == 400 and 0.0 <= ev["fraction_in_support"] <= 1.0
        assert ev["data_log_prob_of_test"] == pytest.approx(-np.log(32.0), rel=1e-5)
        assert np.isfinite(ev["mean_error"]) and np.isfinite(ev["cov_error"])
    else:
        modes = 25
        assert ev["num_modes"] == modes and ev["num_generated"] == 400
        assert 0 <= ev["modes_captured"] <= modes and 0.0 <= ev["hq_fraction"] <= 1.0
        assert sum(ev["mode_counts"]) == round(ev["hq_fraction"] * 400)
    if model == "stylegan":
        # truncation strip: 4 rows x 5 psi columns, the psi = 0 column is one image repeated
        strip = pics["truncation.png"]
        scale, side = 16, 8  # 8x8 digits drawn at 16x, 1-pixel padding (viz.image_grid)
        cell = lambda r, c: strip[(1 + r * (side + 1)) * scale :][: side * scale, (1 + c * (side + 1)) * scale :][:, : side * scale]
        assert strip.shape == ((4 * (side + 1) + 1) * scale, (5 * (side + 1) + 1) * scale)
        last = [cell(r, 4) for r in range(4)]
        for c in last[1:]:
            np.testing.assert_allclose(c, last[0], atol=1.0)
        first = [cell(r, 0) for r in range(4)]
        assert max(np.abs(c - first[0]).max() for c in first[1:]) > 0  # psi = 1: different z, different images


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "gan", "--loss", "lsgan"], r"unknown --loss 'lsgan' for model 'gan'; valid choices: non_saturating, minimax, hinge"),
        (["train", "wgan", "--arch", "resnet"], r"unknown --arch 'resnet' for model 'wgan'; valid choices: auto, mlp, dcgan"),
        (["train", "wgan", "--optimizer", "sgd"], r"unknown --optimizer 'sgd' for model 'wgan'"),
        (["train", "gan", "--output", "sigmoid"], r"unknown --output 'sigmoid'"),
        (["train", "gan", "--output", "tanh", "--data", "8gaussians"], r"--output tanh needs image data in \[0, 1\]"),
        (["train", "dcgan", "--g-norm", "group"], r"unknown g_norm 'group'"),
        (["train", "dcgan", "--data", "8gaussians"], r"dcgan needs image data \(H, W, C\)"),
        (["train", "stylegan", "--data", "two-moons"], r"stylegan needs image data"),
        (["train", "wgan-gp", "--arch", "dcgan", "--data", "8gaussians"], r"wgan-gp needs image data"),
        (["train", "gan", "--n-critic", "0"], r"n_critic must be a positive integer"),
        (["train", "gan", "--g-hidden", "8,x"], r"comma-separated integers"),
    ],
)
def test_bad_option_values_are_one_line_errors(argv, message, tmp_path, capsys):
    rc = cli.main(argv + ["--out", str(tmp_path), "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("genjax: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not any(tmp_path.iterdir())  # nothing written before the error


def test_gan_models_are_listed(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gan", "dcgan", "wgan", "wgan-gp", "stylegan"):
        assert re.search(rf"^  {re.escape(name)}\s", out, re.M), name


def test_2d_defaults_carry_what_the_mixture_experiment_learned(key):
    """``genjax train gan`` on 2-D data defaults to ``experiments/gan_mixture.py``'s networks
    (both players 128,128,128; a Fourier-feature critic on PacGAN packs); images keep the
    seed's networks (G 128,256, plain MLP critic 256,128, unpacked). The
    evaluation leads with sample quality (the high-quality fraction), then the modes."""
    import jax

    from genjax import registry
    from genjax.nn import FourierDiscriminator
    from genjax.registry import gan as reg

    spec = registry.get_model_spec("gan")
    opts = registry.resolve_options(spec, {})
    toy = registry.load_data("8gaussians")
    model = spec.build(toy, opts)
    assert model.pack == reg.TOY_PACK > 1
    assert isinstance(model.discriminator, FourierDiscriminator)
    assert model.discriminator.num_features == reg.TOY_FOURIER_FEATURES == 64 and model.discriminator.example_dim == 2
    assert tuple(model.discriminator.hidden) == tuple(model.generator.hidden) == (128, 128, 128)
    assert model.output_range is None and model.input_scale == pytest.approx(1.0 / np.abs(toy.train).max())
    digits = registry.load_data("digits")
    image_model = spec.build(digits, opts)
    assert image_model.pack == 1 and not isinstance(image_model.discriminator, FourierDiscriminator)
    assert tuple(image_model.generator.hidden) == (128, 256) and tuple(image_model.discriminator.hidden) == (256, 128)
    assert image_model.data_range == "unit"
    # explicit flags win
    plain = spec.build(toy, registry.resolve_options(spec, {"pack": 1, "fourier_features": 0}))
    assert plain.pack == 1 and not isinstance(plain.discriminator, FourierDiscriminator)

    params = model.init(key, toy.train[:8])
    ev = spec.evaluate(model, params, toy, key)
    assert list(ev)[:3] == ["hq_fraction", "modes_captured", "num_modes"]
