"""``genjax train ddpm|ncsn|score-sde`` end to end on tiny settings, then ``sample`` / ``eval``."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from genjax import cli
from genjax.registry import get_model_spec

pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

_COMMON = ["--steps", "2", "--steps-per-dispatch", "2", "--log-every", "2", "--checkpoint-every", "2", "--no-progress"]
_TINY = {
    "ddpm-digits": ["--T", "8", "--base", "4", "--channel-mult", "1,2"],
    "ddpm-8gaussians": ["--T", "8", "--hidden", "8"],
    "ncsn-8gaussians": ["--hidden", "8", "--num-sigmas", "4", "--steps-per-sigma", "3"],
    "score-sde-checkerboard": ["--hidden", "8", "--sampler", "ode"],
}


def _train(tmp_path, capsys, model, data, err=None):
    rc = cli.main(["train", model, "--data", data, "--out", str(tmp_path), *_COMMON, *_TINY[f"{model}-{data}"]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    if err is not None:
        err.append(out.err)
    return json.loads(out.out), tmp_path / f"{model}-{data}"


def _not_blank(path):
    a = np.asarray(Image.open(path), np.float32)
    assert a.std() > 0, f"{path.name} is blank"
    return a


def test_ddpm_digits_train_sample_eval(tmp_path, capsys):
    err = []
    summary, run = _train(tmp_path, capsys, "ddpm", "digits", err)
    # the end-of-run evaluation on images is the quick one, and the output says how to run the full one
    assert summary["evaluation"].startswith("quick: 50 test examples") and summary["num_test_examples"] == 50
    assert f"the full one: genjax eval {run}" in err[0] and summary["eval_time_s"] > 0
    for f in ("samples.png", "sampling_trajectory.png", "denoising.png"):
        assert f in summary["files"]
        _not_blank(run / f)
    # the VLB is a bound on the 8-bit image's -log P: bits/dim without a dequantization offset
    assert summary["test_bits_per_dim"] == pytest.approx(summary["test_nll_nats"] / (64 * math.log(2)), rel=1e-5)
    assert np.isfinite(summary["test_bits_per_dim"]) and summary["test_bits_per_dim"] > 0
    assert cli.main(["sample", str(run), "--num", "5", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 8, 8, 1) and s.min() >= 0.0 and s.max() <= 1.0
    assert cli.main(["eval", str(run), "--max-examples", "6"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["num_test_examples"] == 6 and ev["log_prob_kind"] == "vlb" and "discretized Gaussian decoder" in ev["bits_per_dim_convention"]


class _FakeODEModel:
    """Stands in for an image ScoreSDE: a known log-density and constant samples."""

    log_prob_kind = "ode_estimate"

    def __init__(self, shape):
        self.shape = shape

    def log_prob(self, params, key, x):
        return -jnp.sum(x, axis=(1, 2, 3)) - 10.0

    def sample(self, params, key, num):
        return jnp.full((num, *self.shape), 0.5)


def test_ode_image_eval_dequantizes_and_adds_log2_levels():
    """The ODE estimate is scored on uniformly dequantized data ``(k + u)/L`` and bits/dim
    carry ``+ log2 L`` (digits: L = 17), as for the flows."""
    from genjax.registry import diffusion as dspec
    from genjax.registry import load_data

    data = load_data("digits")
    model = _FakeODEModel(data.shape)
    out = dspec._evaluate(model, None, data, jax.random.PRNGKey(0), num_samples=4, max_examples=10)
    # -log q = sum of the dequantized pixels + 10, each pixel in [k/17, (k+1)/17)
    k = np.round(data.test[:10] * 16)
    lo, hi = np.mean(np.sum(k / 17, axis=(1, 2, 3))) + 10, np.mean(np.sum((k + 1) / 17, axis=(1, 2, 3))) + 10
    nll = out["test_nll_nats"]
    assert lo < nll < hi and abs(nll - (lo + hi) / 2) < 0.1 * (hi - lo)  # u ~ U[0, 1): about the middle
    assert out["test_bits_per_dim"] == pytest.approx(nll / (64 * math.log(2)) + math.log2(17), rel=1e-5)
    deq = dspec.dequantize(jax.random.PRNGKey(1), data.test[:10], 17)
    assert np.all(deq >= k / 17) and np.all(deq < (k + 1) / 17) and not np.allclose(deq * 17, k)
    assert "L=17" in out["bits_per_dim_convention"] and out["num_test_examples"] == 10


@pytest.mark.parametrize("model,data", [("ddpm", "8gaussians"), ("ncsn", "8gaussians"), ("score-sde", "checkerboard")])
def test_toy_train_sample_eval(model, data, tmp_path, capsys):
    summary, run = _train(tmp_path, capsys, model, data)
    for f in ("samples.png", "trajectory.png"):
        assert f in summary["files"]
        _not_blank(run / f)
    assert summary["samples_finite"] and 0.0 <= summary["fraction_in_support"] <= 1.0
    if model == "ncsn":
        assert "test_kl_nats" not in summary  # no likelihood
    else:
        # an untrained model is far from p; the KL is finite and positive
        assert np.isfinite(summary["test_kl_nats"]) and summary["test_kl_nats"] > 0
    assert cli.main(["sample", str(run), "--num", "7", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (7, 2) and np.all(np.isfinite(s))
    if model == "ddpm":
        assert cli.main(["eval", str(run), "--max-examples", "50"]) == 0
        ev = json.loads((run / "eval.json").read_text())
        assert ev["log_prob_kind"] == "vlb" and "upper bound" in ev["kl_convention"] and ev["num_test_examples"] == 50


@pytest.mark.parametrize(
    "argv,match",
    [
        (["train", "ncsn", "--data", "digits"], r"model 'ncsn' does not support image data 'digits'"),
        (["train", "ddpm", "--schedule", "quadratic"], r"--schedule: invalid choice: 'quadratic'"),
        (["train", "score-sde", "--sde", "cld"], r"--sde: invalid choice: 'cld'"),
        (["train", "ddpm", "--data", "digits", "--channel-mult", "1,2,2,2,2"], r"divisible"),
        (["train", "ddpm", "--T", "0"], r"T must be a positive integer"),
    ],
)
def test_bad_cli_input_is_one_line(argv, match, tmp_path, capsys):
    try:
        rc = cli.main([*argv, "--out", str(tmp_path), "--steps", "1", "--no-progress"])
    except SystemExit as e:  # argparse usage errors (invalid choice) exit with status 2
        rc = e.code
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    import re

    assert re.search(match, err), err


def test_specs_are_registered():
    for name in ("ddpm", "ncsn", "score-sde"):
        assert get_model_spec(name).family == "diffusion"
