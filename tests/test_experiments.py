"""Smoke runs of the experiment scripts (seconds, tiny data) so they never rot."""

import json

import numpy as np
import pytest


def test_vae_mnist_smoke(tmp_path, monkeypatch, data_dir, load_experiment):
    data = data_dir
    if not (data / "mnist").is_dir():
        pytest.skip("MNIST files not available (set GENJAX_DATA_DIR)")
    monkeypatch.setenv("GENJAX_DATA_DIR", str(data))
    mod = load_experiment("vae_mnist")
    out = mod.main(["--smoke", "--stages", "2", "--workdir", str(tmp_path / "w"),
                    "--results-dir", str(tmp_path / "r"), "--no-progress"])
    saved = json.loads((tmp_path / "r" / "vae_mnist_stages2_smoke.json").read_text())
    assert saved["epochs"] == 4 and saved["total_steps"] == 80 and not saved["full_schedule"]
    for k in ("test_nll_nats", "test_iwae50_bound_nats", "test_elbo_nats"):
        assert np.isfinite(saved[k]) and 50 < saved[k] < 600, (k, saved[k])
    # the K-sample bound is tighter than the ELBO (same model, same data)
    assert saved["test_nll_nats"] <= saved["test_elbo_nats"] + 1.0
    assert out["config"]["adam"] == {"b1": 0.9, "b2": 0.999, "eps": 1e-4}
