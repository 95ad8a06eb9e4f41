"""Smoke runs of the experiment scripts (seconds, tiny data) so they never rot."""

import ast
import json
import pathlib

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

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
#: scripts another helper of issue 17 moves onto genjax.results / off sys.path (strict: remove once they pass)
_PENDING: set[str] = set()


@pytest.mark.parametrize("script", [
    pytest.param(p.name, marks=pytest.mark.xfail(strict=True, reason="moved by the GAN part of issue 17"))
    if p.name in _PENDING else p.name
    for p in sorted(EXPERIMENTS.glob("*.py"))])
def test_experiments_stand_alone_and_write_through_genjax_results(script):
    """Issue 17, E: an experiment imports no other experiment and never edits ``sys.path`` (the
    package is installed; pytest has ``pythonpath = ["."]``), and writes its JSON with
    ``genjax.results.write_result`` (the one writer: machine, versions, command) -- no copy of
    its own (``platform.`` look-ups, ``json.dump`` of a result)."""
    src = (EXPERIMENTS / script).read_text()
    tree = ast.parse(src)
    others = {p.stem for p in EXPERIMENTS.glob("*.py")} | {"experiments"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]] if node.level == 0 else ["<relative>"]
        else:
            names = []
        assert not set(names) & (others | {"<relative>"}), f"{script} imports another experiment: {names}"
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            raise AssertionError(f"{script} line {node.lineno} uses sys.path")
    assert "platform." not in src, f"{script} records the machine itself; genjax.results does that"
    assert "write_result(" in src, f"{script} does not write its result with genjax.results.write_result"
