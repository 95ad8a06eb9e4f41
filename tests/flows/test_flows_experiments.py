"""Smoke runs of ``experiments/flows_toy2d.py`` and ``experiments/flows_mnist.py`` (seconds, tiny flows)."""

import json
import math
import pathlib

import pytest


def test_flows_toy2d_smoke(tmp_path, load_experiment):
    mod = load_experiment("flows_toy2d")
    out = mod.main(["--smoke", "--densities", "rings", "--flows", "maf", "--workdir", str(tmp_path / "w"),
                    "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "flows_toy2d_smoke.json").read_text())
    (r,) = saved["results"]
    assert saved["complete"] and r["density"] == "rings" and r["flow"] == "maf"
    # KL = E_p[log p] - E_p[log q] = test NLL - entropy estimate, and an untrained flow is far from p
    assert r["kl_nats"] == pytest.approx(r["test_nll_nats"] - r["true_entropy_nats"], abs=1e-4)
    assert r["kl_nats"] > 0.1 and r["kl_stderr_nats"] > 0
    assert saved["best"]["rings"]["flow"] == "maf" and out["config"]["steps"] == 20
    for f in ("rings_true.png", "rings_maf_density.png", "rings_maf_samples.png"):
        assert (tmp_path / "w" / f).is_file(), f
    assert saved["run"]["command"].startswith("python experiments/flows_toy2d.py --smoke")
    assert saved["total_train_time_s"] == r["train_time_s"]
    # a re-run of the same command reuses the finished (density, flow) result instead of retraining
    again = mod.main(["--smoke", "--densities", "rings", "--flows", "maf", "--workdir", str(tmp_path / "w"),
                      "--results-dir", str(tmp_path / "r"), "--no-progress"])
    assert again["results"] == saved["results"]


def test_committed_flows_toy2d_is_what_the_script_writes(tmp_path, load_experiment):
    """experiments/results/flows_toy2d.json has exactly the keys the script writes, from one run of
    its pinned config (issue 17, A5: it had hand-added keys and a tuning trial's figure)."""
    mod = load_experiment("flows_toy2d")
    mod.main(["--smoke", "--densities", "rings", "--flows", "maf", "--workdir", str(tmp_path / "w"),
              "--results-dir", str(tmp_path / "r"), "--no-progress"])
    smoke = json.loads((tmp_path / "r" / "flows_toy2d_smoke.json").read_text())
    committed = json.loads((pathlib.Path(mod.__file__).parent / "results" / "flows_toy2d.json").read_text())
    assert set(committed) == set(smoke)
    assert committed["run"]["command"] == "python experiments/flows_toy2d.py"
    assert committed["config"] == mod.get_config() and committed["complete"]
    assert {(r["density"], r["flow"]) for r in committed["results"]} == {
        (d, f) for d in mod.DENSITIES for f in mod.FLOWS}
    for r in committed["results"]:
        assert list(r) == list(smoke["results"][0]), r  # the keys run_one writes, in its order


def test_flows_mnist_smoke(tmp_path, monkeypatch, data_dir, load_experiment):
    if not (data_dir / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GENJAX_DATA_DIR)")
    monkeypatch.setenv("GENJAX_DATA_DIR", str(data_dir))
    mod = load_experiment("flows_mnist")
    mod.main(["--smoke", "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "flows_mnist_smoke.json").read_text())
    assert saved["anchors_bits_per_dim"]["RealNVP"] == 1.06 and saved["anchors_bits_per_dim"]["MAF"] == 1.89
    assert "dequantization" in saved["bits_per_dim_convention"] and not saved["full_schedule"]
    assert saved["config"]["models"]["glow"]["num_levels"] == 1
    assert set(saved["results"]) == {"realnvp", "glow", "maf"}
    for name, r in saved["results"].items():
        assert r["steps"] == 2
        assert r["test_bits_per_dim"] == pytest.approx(r["test_nll_nats"] / (784 * math.log(2)) + 8.0, rel=1e-6)
        assert r["test_bits_per_dim"] > 1.0 and r["test_bits_per_dim"] < 20.0, (name, r)
        assert all(pathlib.Path(p).is_file() for p in r["samples"])
        assert r["step_s_side_by_side"] > 0  # each model's CPU budget, timed beside the others
    # the pinned (full) config is the one documented: multi-scale Glow on 28x28 needs 2 levels
    full = mod.get_config()
    assert full["models"]["glow"]["num_levels"] == 2 and full["data_levels"] == 256


def test_flows_mnist_sizes(load_experiment):
    """``cpu`` (default) is the smaller pinned config, ``gpu`` the published scale; unknown sizes are errors."""
    mod = load_experiment("flows_mnist")
    cpu, gpu = mod.get_config(), mod.get_config("gpu")
    assert cpu["size"] == "cpu" and gpu["size"] == "gpu" and set(cpu) == set(gpu)
    assert cpu["steps"] < gpu["steps"]
    for m in ("realnvp", "glow"):
        assert cpu["models"][m]["features"] < gpu["models"][m]["features"]
    with pytest.raises(ValueError, match="size must be one of cpu, gpu"):
        mod.get_config("tpu")


def test_flows_mnist_run_dir_is_keyed_by_config(tmp_path, load_experiment):
    """A changed model or training config gets its own run folder (no silent resume of a
    run trained under another config); the test-set size does not change it."""
    mod = load_experiment("flows_mnist")
    c = mod.get_config()
    d = mod.run_dir(tmp_path, "glow", c)
    assert d.parent == tmp_path and d.name.startswith("glow-")
    assert mod.run_dir(tmp_path, "glow", mod.get_config()) == d
    other = mod.get_config()
    other["models"]["glow"]["preprocess"] = "center" if c["models"]["glow"]["preprocess"] != "center" else "logit"
    assert mod.run_dir(tmp_path, "glow", other) != d
    assert mod.run_dir(tmp_path, "realnvp", other) == mod.run_dir(tmp_path, "realnvp", c)
    lr = mod.get_config()
    lr["lr"] = 2 * c["lr"]
    assert mod.run_dir(tmp_path, "realnvp", lr) != mod.run_dir(tmp_path, "realnvp", c)
    fewer = mod.get_config()
    fewer["test_examples"] = 100
    assert mod.run_dir(tmp_path, "maf", fewer) == mod.run_dir(tmp_path, "maf", c)
