"""Smoke runs of ``experiments/diffusion_toy2d.py`` and ``experiments/diffusion_mnist.py``
(tiny nets, a few steps) and the pieces of their evaluation that can be checked against an
independent computation: the DDPM-as-VP-SDE score mapping and the dequantization."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _finite(d):
    return all(math.isfinite(v) for v in d.values() if isinstance(v, float))


@pytest.mark.parametrize("script,T", [("diffusion_toy2d", 100), ("diffusion_mnist", 1000), ("diffusion_toy2d", 200)])
def test_ddpm_network_read_as_vp_score_matches_the_discrete_marginals(script, T, load_experiment):
    """score(x, (i+1)/T) * sqrt(1 - abar_i) == -eps(x, i) at every step including the first:
    the continuous time carries step i's noise level (independent: the discrete schedule's
    cumulative product in float64). Issue 17 A6: the linear VPSDE(T beta_0, T beta_T) this
    used to be was off by 41% (T=100), 22% (T=200), 5% (T=1000) at the first step."""
    from genjax.diffusion import models as dif

    mod = load_experiment(script)
    model = dif.ddpm_2d(hidden=(8,), emb_dim=8, T=T)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    params = model.init(jax.random.PRNGKey(1), x)
    score, sde = mod.ddpm_as_vp_score(model, params)
    abar = np.cumprod(1.0 - np.asarray(model.schedule.betas, np.float64))
    for i in sorted({0, 1, T // 10, T // 2, T - 1}):
        t = jnp.full((5,), (i + 1) / T)
        _, std = sde.marginal(t)
        assert float(std[0]) == pytest.approx(math.sqrt(1.0 - abar[i]), rel=1e-3), i
        lhs = np.asarray(score(x, t)) * math.sqrt(1.0 - abar[i])
        rhs = -np.asarray(model.eps(params, x, jnp.full((5,), i)))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-3, atol=1e-5)


def test_dequantize_stays_in_the_level_cell(load_experiment):
    mod = load_experiment("diffusion_mnist")
    k = np.arange(17, dtype=np.float32)
    x = np.tile(k / 16.0, (50, 1))
    u = mod.dequantize(jax.random.PRNGKey(0), x, 17)
    np.testing.assert_array_equal(np.floor(u * 17.0), np.tile(k, (50, 1)))
    assert 0.3 < float((u * 17.0 - np.floor(u * 17.0)).mean()) < 0.7  # uniform offsets, mean ~ 1/2


def test_diffusion_toy2d_smoke(tmp_path, load_experiment):
    mod = load_experiment("diffusion_toy2d")
    out = mod.main(["--smoke", "--densities", "rings", "--workdir", str(tmp_path / "w"),
                    "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "diffusion_toy2d_smoke.json").read_text())
    assert saved["complete"] and saved["config"]["steps"] == 20 == out["config"]["steps"]
    by_model = {r["model"]: r for r in saved["results"]}
    assert set(by_model) == {"ddpm", "score_sde"}
    common = {"kl_nats", "kl_stderr_nats", "test_nll_nats", "true_entropy_nats", "final_train_loss",
              "train_time_s", "num_params", "fraction_samples_in_support"}
    assert common | {"kl_nats_ode_steps_check", "kl_nats_same_samples"} <= set(by_model["score_sde"])
    assert common | {"kl_vlb_upper_bound_nats", "kl_ode_nats", "test_nll_vlb_nats"} <= set(by_model["ddpm"])
    for r in saved["results"]:
        assert _finite(r) and r["samples_finite"], r
        # KL = E_p[log p] - E_p[log q] = test NLL - entropy; an untrained model is far from p
        assert r["kl_nats"] == pytest.approx(r["test_nll_nats"] - r["true_entropy_nats"], abs=1e-6)
        assert r["kl_nats"] > 0.1 and r["kl_stderr_nats"] > 0
        for f in ("samples", "trajectory"):
            assert (tmp_path / "w" / f"rings_{r['model']}_{f}.png").is_file()
    d = by_model["ddpm"]
    assert d["kl_vlb_upper_bound_nats"] == pytest.approx(d["test_nll_vlb_nats"] - d["true_entropy_nats"], abs=1e-6)
    assert saved["best"]["rings"]["kl_nats"] == min(r["kl_nats"] for r in saved["results"])
    # only what this run measured: no other experiment's figures copied in (issue 17, A5); the run's context
    assert "flows_nsf_kl_nats" not in json.dumps(saved)
    assert saved["run"]["command"].startswith("python experiments/diffusion_toy2d.py --smoke")
    # a re-run resumes: every (density, model) result is read back, nothing retrained
    again = mod.main(["--smoke", "--densities", "rings", "--workdir", str(tmp_path / "w"),
                      "--results-dir", str(tmp_path / "r"), "--no-progress"])
    assert [r["kl_nats"] for r in again["results"]] == [r["kl_nats"] for r in saved["results"]]


def test_diffusion_toy2d_rejects_unknown_density(tmp_path, load_experiment):
    mod = load_experiment("diffusion_toy2d")
    with pytest.raises(ValueError, match="--densities"):
        mod.main(["--smoke", "--densities", "moons", "--workdir", str(tmp_path), "--results-dir", str(tmp_path)])


def _check_image_result(saved, num_levels, D):
    keys = {"test_bits_per_dim_vlb", "test_bits_per_dim_ode", "test_nll_vlb_nats", "test_nll_ode_nats",
            "ddim_curve", "real_vs_real_baseline", "anchors_bits_per_dim", "vlb_convention", "ode_convention",
            "train_wall_time_s", "final_train_loss", "num_params", "figures"}
    assert keys <= set(saved)
    assert saved["run"]["command"].startswith("python experiments/diffusion_mnist.py")  # genjax.results.write_result
    assert _finite(saved) and _finite(saved["real_vs_real_baseline"])
    assert saved["num_levels"] == num_levels
    assert saved["test_bits_per_dim_vlb"] == pytest.approx(saved["test_nll_vlb_nats"] / (D * math.log(2)), rel=1e-9)
    assert saved["test_bits_per_dim_ode"] == pytest.approx(
        saved["test_nll_ode_nats"] / (D * math.log(2)) + math.log2(num_levels), rel=1e-9)
    # an untrained net is far worse than the 8-bit uniform code on its VLB, but the numbers are finite
    assert saved["test_bits_per_dim_vlb"] > 1.0 and saved["test_bits_per_dim_ode"] > 0.0
    assert [c["ddim_steps"] for c in saved["ddim_curve"]] == saved["config"]["ddim_steps"]
    for c in saved["ddim_curve"]:
        assert _finite(c) and c["samples_finite"] and c["fid"] >= 0.0
    assert saved["anchors_bits_per_dim"] == {"ddpm_cifar10": 3.75, "score_sde_cifar10": 2.99}
    assert all(pathlib.Path(p).is_file() for p in saved["figures"])


def test_diffusion_digits_smoke(tmp_path, load_experiment):
    mod = load_experiment("diffusion_mnist")
    mod.main(["--smoke", "--data", "digits", "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"),
              "--no-progress"])
    saved = json.loads((tmp_path / "r" / "diffusion_digits_smoke.json").read_text())
    _check_image_result(saved, 17, 64)
    assert saved["data_shape"] == [8, 8, 1] and saved["config"]["steps"] == 4
    # the pinned digits config is the documented one (T = 1000 for the 1000-step DDIM point)
    full = mod.get_config("digits")
    assert full["model"]["T"] == 1000 and full["ddim_steps"] == [10, 20, 50, 100, 1000]


def test_diffusion_mnist_smoke(tmp_path, monkeypatch, data_dir, load_experiment):
    if not (data_dir / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GENJAX_DATA_DIR)")
    monkeypatch.setenv("GENJAX_DATA_DIR", str(data_dir))
    mod = load_experiment("diffusion_mnist")
    mod.main(["--smoke", "--data", "mnist", "--workdir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"),
              "--no-progress"])
    saved = json.loads((tmp_path / "r" / "diffusion_mnist_smoke.json").read_text())
    _check_image_result(saved, 256, 784)
    assert saved["data_shape"] == [28, 28, 1] and saved["vlb_note"] == "8-bit data: exact"


def test_diffusion_mnist_rejects_bad_overrides(tmp_path, load_experiment):
    mod = load_experiment("diffusion_mnist")
    for flag in ("--steps", "--quality-samples"):
        with pytest.raises(ValueError, match=flag):
            mod.main(["--data", "digits", flag, "0", "--workdir", str(tmp_path), "--results-dir", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # raised before any work


def test_diffusion_mnist_configs(load_experiment):
    """``mnist`` is the CPU-sized pinned config, ``mnist_gpu`` the larger one; both train on MNIST."""
    mod = load_experiment("diffusion_mnist")
    cpu, gpu = mod.get_config("mnist"), mod.get_config("mnist_gpu")
    assert cpu["model"]["base"] < gpu["model"]["base"] and cpu["steps"] < gpu["steps"]
    assert set(cpu) == set(gpu) == set(mod.get_config("digits"))
    with pytest.raises(ValueError, match="data must be one of digits, mnist, mnist_gpu"):
        mod.get_config("cifar")


def test_samplers_mnist_smoke(tmp_path, load_experiment):
    """experiments/samplers_mnist.py --smoke on the pixel DDPM (a tiny one trained on the digits):
    one row per (solver, budget) within its NFE, the reference, the plot; the LDM path runs the same
    curve (run by hand: a staged pipeline costs minutes of CPU)."""
    mod = load_experiment("samplers_mnist")
    assert [mod.steps_for("heun", b) for b in (5, 10, 20, 50)] == [3, 5, 10, 25]
    assert [mod.steps_for("dpm3", b) for b in (5, 10, 20, 50)] == [2, 4, 7, 17]
    assert mod.steps_for("ddim", 10) == 10
    out = mod.main(["--smoke", "--models", "ddpm", "--workdir", str(tmp_path / "w"), "--ldm-workdir", str(tmp_path / "l"),
                    "--results-dir", str(tmp_path / "r")])
    saved = json.loads((tmp_path / "r" / "samplers_mnist_smoke.json").read_text())
    rows = saved["models"]["ddpm"]["rows"]
    cfg = saved["config"]
    assert {(r["sampler"], r["steps"]) for r in rows} == {
        (s, mod.steps_for(s, b)) for s in cfg["solvers"] for b in cfg["nfe"] if mod.steps_for(s, b)}
    assert all(r["nfe"] <= max(cfg["nfe"]) and r["finite"] and np.isfinite(r["fid"]) for r in rows)
    assert saved["models"]["ddpm"]["reference"]["nfe"] == cfg["ddpm"]["T"]
    assert set(saved["models"]["ddpm"]["summary"]) == {str(b) for b in cfg["nfe"]}
    assert (tmp_path / "r" / "samplers_mnist_smoke_ddpm.png").is_file() and out["anchor"]["nfe"] == 10
    # resumable: every finished point is in the work dir; a re-run after a cut (last line torn
    # mid-write, one point lost) recomputes only that point and writes the same figures
    points = tmp_path / "w" / "samplers_mnist_smoke_points.jsonl"
    lines = points.read_text().splitlines()
    assert len(lines) == len(rows) + 1
    points.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    again = mod.main(["--smoke", "--models", "ddpm", "--workdir", str(tmp_path / "w"), "--ldm-workdir",
                      str(tmp_path / "l"), "--results-dir", str(tmp_path / "r")])
    assert again["models"]["ddpm"]["rows"] == out["models"]["ddpm"]["rows"]
    ref, ref2 = out["models"]["ddpm"]["reference"], again["models"]["ddpm"]["reference"]
    assert ref2["nfe"] == ref["nfe"] and ref2["fid"] == pytest.approx(ref["fid"], rel=1e-4)
    assert len([json.loads(x) for x in points.read_text().splitlines() if x.strip().endswith("}")]) == len(rows) + 1
    chunk_dir = tmp_path / "w" / "samplers_mnist_smoke_points"
    assert not chunk_dir.exists() or not any(chunk_dir.iterdir())  # a recorded point's chunks are removed
    with pytest.raises(ValueError, match="--models"):
        mod.main(["--smoke", "--models", "gan", "--results-dir", str(tmp_path / "r")])
