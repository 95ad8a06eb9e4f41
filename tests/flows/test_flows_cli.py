"""``genjax train realnvp|glow|maf|nsf`` end to end on tiny settings, then ``sample`` / ``eval``."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from genjax import cli
from genjax.registry import flows as flow_specs
from genjax.registry.core import boolean, load_data

_COMMON = ["--steps", "2", "--steps-per-dispatch", "2", "--log-every", "2", "--checkpoint-every", "2", "--no-progress"]
_TINY = {
    "realnvp-digits": ["--num-scales", "1", "--features", "4", "--num-blocks", "0"],
    "glow-digits": ["--num-levels", "1", "--num-steps", "1", "--features", "4", "--num-blocks", "0"],
    "realnvp-8gaussians": ["--num-layers", "2", "--hidden", "8"],
    "maf-8gaussians": ["--num-layers", "2", "--hidden", "8"],
    "nsf-8gaussians": ["--num-layers", "2", "--hidden", "8", "--num-bins", "4"],
}


def _train(tmp_path, capsys, model, data):
    rc = cli.main(["train", model, "--data", data, "--out", str(tmp_path), *_COMMON, *_TINY[f"{model}-{data}"]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out), tmp_path / f"{model}-{data}"


def _not_blank(path):
    a = np.asarray(Image.open(path), np.float32)
    assert a.std() > 0, f"{path.name} is blank"
    return a


@pytest.mark.parametrize("model", ["realnvp", "glow"])
def test_image_flow_train_sample_eval(model, tmp_path, capsys):
    summary, run = _train(tmp_path, capsys, model, "digits")
    assert summary["steps"] == 2
    for f in ("samples.png", "samples_t0.7.png"):
        assert f in summary["files"] and (run / f).is_file()
        assert _not_blank(run / f).shape[0] > 64
    # bits/dim carry the log2(L) offset of 17-level digits with uniform dequantization
    assert summary["test_bits_per_dim"] == pytest.approx(
        summary["test_nll_nats"] / (64 * math.log(2)) + math.log2(17), rel=1e-5)
    assert json.loads((run / "config.json").read_text())["options"]["features"] == 4

    assert cli.main(["sample", str(run), "--num", "6", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (6, 8, 8, 1) and s.min() >= 0.0 and s.max() <= 1.0 and s.std() > 0
    if model == "glow":
        return  # sample/eval plumbing is the same for both image flows: check it fully once
    assert cli.main(["sample", str(run), "--num", "4"]) == 0  # PNG grid into the run dir
    assert (run / "samples-0.png").is_file()

    assert cli.main(["eval", str(run), "--max-examples", "20"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["log_prob_kind"] == "exact" and ev["num_test_examples"] == 20 and ev["step"] == 2
    assert "uniformly dequantized" in ev["bits_per_dim_convention"] and "L=17" in ev["bits_per_dim_convention"]
    assert ev["test_bits_per_dim"] == pytest.approx(ev["test_nll_nats"] / (64 * math.log(2)) + math.log2(17), rel=1e-5)


@pytest.mark.parametrize("model", ["maf", "nsf"])  # realnvp's 2-D path is the experiment's; digits above
def test_toy_flow_train_sample_eval(model, tmp_path, capsys):
    summary, run = _train(tmp_path, capsys, model, "8gaussians")
    for f in ("density.png", "density_true.png", "samples.png"):
        assert f in summary["files"]
        _not_blank(run / f)
    assert np.isfinite(summary["test_kl_nats"]) and summary["test_kl_nats"] > 0  # an untrained flow is far from p
    if model == "nsf":
        return  # sample/eval plumbing is shared by the 2-D flows: check it fully once (maf)

    assert cli.main(["sample", str(run), "--num", "7", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (7, 2) and np.all(np.isfinite(s))

    assert cli.main(["eval", str(run), "--max-examples", "300"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["log_prob_kind"] == "exact" and ev["num_test_examples"] == 300
    # KL = E_p[log p] - E_p[log q]: with the exact 8-Gaussian log p on the same 300 test points
    from genjax.registry import load_data

    data = load_data("8gaussians", seed=0)
    log_p = np.asarray(data.toy.log_prob(data.test[:300]), np.float64)
    assert ev["test_kl_nats"] == pytest.approx(log_p.mean() + ev["test_nll_nats"], abs=1e-3)


@pytest.mark.parametrize(
    "model, data",
    [("maf", "digits"), ("nsf", "digits"), ("glow", "8gaussians")],
)
def test_unsupported_model_data_pair_is_one_line_error(model, data, tmp_path, capsys):
    rc = cli.main(["train", model, "--data", data, "--out", str(tmp_path), "--steps", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert re.match(rf"genjax: error: model '{model}' does not support .* data '{data}'", err[-1]), err


def test_glow_levels_fit_the_image_size():
    assert flow_specs.glow_levels((8, 8, 1)) == 3
    assert flow_specs.glow_levels((28, 28, 1)) == 2
    assert flow_specs.glow_levels((6, 10, 3)) == 1
    with pytest.raises(ValueError, match="divisible by 2"):
        flow_specs.glow_levels((7, 8, 1))


def test_glow_on_off_options_parse_words():
    assert [boolean(s) for s in ("true", "No", "on", "0", True)] == [True, False, True, False, True]
    with pytest.raises(ValueError, match="expected true or false"):
        boolean("maybe")
    opts = flow_specs.SPECS["glow"].options
    assert all(opts[k].type is boolean and opts[k].default is True for k in ("split_prior", "learn_top", "out_log_scale"))
    assert opts["preprocess"].default == "center"


@pytest.mark.parametrize("scale_fn", ["sigmoid", "sigmoid2", "tanh"])
def test_glow_scale_fn_option_reaches_every_coupling(scale_fn):
    spec = flow_specs.SPECS["glow"]
    opts = {k: o.default for k, o in spec.options.items()} | {"scale_fn": scale_fn, "num_steps": 1, "features": 4}
    flow = spec.build(load_data("digits", download=False), opts)
    fns = [l.scale_fn for l in _all_layers(flow.layers) if type(l).__name__ == "AffineCouplingLayer"]
    assert len(fns) == 3 and set(fns) == {scale_fn}  # 1 step in each of digits' 3 levels
    assert spec.options["scale_fn"].default == "sigmoid"  # Glow's


def _all_layers(layers):
    for l in layers:
        yield l
        yield from _all_layers(getattr(l, "layers", ()))


def test_density_grid_is_top_row_first():
    pts = flow_specs.grid_points(lim=1.0, n=3)
    assert pts[0].tolist() == [-1.0, 1.0] and pts[-1].tolist() == [1.0, -1.0]
