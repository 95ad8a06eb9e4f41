"""benchmarks/: each entry's ``--quick`` mode runs through ``benchmarks.run`` and writes
JSON with the expected keys; the PyTorch-absent path; the FLOP counts against the
matmuls in the actual step's jaxpr; targets and the table. Nothing here times anything
or asserts on a timing.

Entry sizes are shrunk by monkeypatching module constants (batches, seed counts) so
that the file stays well under a minute on the loaded 2-core CPU.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import optax
import pytest

from benchmarks import (breakdown, common, data_parallel, evaluation, families, fused_steps, many_seeds, mixed_precision,
                        multihost, run as bench_run, sampling, train_step)
from genjax import registry
from genjax.gan.constructors import seed_gan
from genjax.gan.step import gan_adam
from genjax.train import TrainState, make_step, make_train_step
from genjax.vae.constructors import seed_vae

META_KEYS = {"quick", "load_average", "matmul_peak"}
#: what genjax.results.write_result records of the run (machine, device, versions, command, date)
RUN_KEYS = {"command", "timestamp_utc", "git", "cpu", "cpu_count", "backend", "device_kind", "versions"}


def _run(tmp_path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    assert bench_run.main(["--only", name, "--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"meta", "entries", "run"}
    assert META_KEYS <= set(doc["meta"]) and RUN_KEYS <= set(doc["run"])
    assert {"jax", "flax", "optax", "torch"} <= set(doc["run"]["versions"])
    assert doc["run"]["command"] == f"python -m benchmarks.run --only {name} --quick --out {out}"
    assert doc["meta"]["quick"] is True
    assert doc["meta"]["matmul_peak"]["gflops_per_s"] > 0
    assert set(doc["entries"]) == {name}
    entry = doc["entries"][name]
    assert {"title", "rows", "targets", "notes", "wall_s"} <= set(entry)
    assert entry["rows"], "an entry must produce rows"
    for t in entry["targets"]:
        assert {"name", "value", "threshold", "met", "text"} <= set(t)
    return entry


def _positive(v) -> bool:
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_train_step_quick_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_step, "BATCHES", (8,))
    monkeypatch.setattr(train_step, "MODELS", ("vae",))
    entry = _run(tmp_path, "train_step")
    rows = entry["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("seed VAE 784-400-20", 8)]
    for r in rows:
        assert _positive(r["genjax ms"]) and _positive(r["% matmul peak"])
        if train_step.torch_available():  # installed: the separate-process PyTorch figures are there
            assert r["torch"] == "ok" and _positive(r["torch ms"])
            np.testing.assert_allclose(r["torch/genjax"], r["torch ms"] / r["genjax ms"], rtol=1e-9, atol=0)
        else:
            assert r["torch"].startswith("absent") and r["torch ms"] is None
    names = [t["name"] for t in entry["targets"]]
    assert names == ["seed VAE b128 torch/genjax", "seed VAE b128 % matmul peak", "seed VAE b1024 % matmul peak", "seed GAN b128 torch/genjax"]
    # batch 128/1024 were not run here: the targets say so instead of inventing a value
    assert all(t["value"] is None and t["met"] is None and "not measured" in t["text"] for t in entry["targets"])
    out = capsys.readouterr().out
    assert "== train_step" in out and "torch/genjax" in out


def test_train_step_without_torch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_step, "BATCHES", (8,))
    monkeypatch.setattr(train_step, "MODELS", ("gan",))
    monkeypatch.setattr(train_step, "torch_available", lambda: False)
    monkeypatch.setattr(train_step, "TorchWorker", lambda: pytest.fail("no worker may start without torch"))
    entry = _run(tmp_path, "train_step")
    assert [r["model"] for r in entry["rows"]] == ["seed MLP GAN"]
    assert all(t["value"] is None for t in entry["targets"] if "torch/genjax" in t["name"])
    for r in entry["rows"]:
        assert r["torch ms"] is None and r["torch/genjax"] is None and r["torch % peak"] is None
        assert r["torch"].startswith("absent: torch not installed")
        assert _positive(r["genjax ms"])
    assert "absent: torch not installed" in capsys.readouterr().out


def test_fused_steps_quick_json(tmp_path, monkeypatch):
    monkeypatch.setattr(fused_steps, "BATCHES", (4,))
    entry = _run(tmp_path, "fused_steps")
    (row,) = entry["rows"]
    assert row["batch"] == 4 and row["K"] == 4
    np.testing.assert_allclose(row["speedup"], row["per-step ms"] / row["fused ms/step"], rtol=1e-9, atol=0)
    assert [t["name"] for t in entry["targets"]] == ["fused/per-step speedup b4"]
    assert entry["targets"][0]["threshold"] == 1.5


def test_many_seeds_quick_json(tmp_path, monkeypatch):
    monkeypatch.setattr(many_seeds, "SEEDS", (8,))
    monkeypatch.setattr(many_seeds, "BATCH", 4)
    monkeypatch.setattr(many_seeds, "SCHEDULE_SEEDS", 2)
    entry = _run(tmp_path, "many_seeds")
    schedules = [(1, "step: one seed, 2 steps per lax.scan"), (2, "step: vmap, 2 steps per lax.scan (fit)")]
    schedules += [(2, f"step: {m}") for m in ("vmap", "lax.map", "python loop", "adam alone (vmap)")]
    assert [(r["seeds"], r["mode"]) for r in entry["rows"]] == [(1, "no vmap"), (8, "vmap"), *schedules]
    one_scan, vmap_scan = entry["rows"][2:4]  # the scanned vmap against the scanned single seed
    np.testing.assert_allclose(vmap_scan["x one seed"], vmap_scan["ms/step"] / one_scan["ms/step"], rtol=1e-9, atol=0)
    for r in entry["rows"][2:]:  # against one seed's step of the same interleaved repeats
        assert _positive(r["ms/step"]) and _positive(r["x one seed"])
        np.testing.assert_allclose(r["ms per seed-step"], r["ms/step"] / r["seeds"], rtol=1e-9, atol=0)
    one = entry["rows"][0]["ms/step"]
    for r in entry["rows"][:2]:
        np.testing.assert_allclose(r["x one seed"], r["ms/step"] / one, rtol=1e-9, atol=0)
        np.testing.assert_allclose(r["ms per seed-step"], r["ms/step"] / r["seeds"], rtol=1e-9, atol=0)
    (t,) = entry["targets"]
    assert t["value"] == entry["rows"][1]["x one seed"] and t["higher_is_better"] is False


def test_sampling_quick_json(tmp_path, monkeypatch):
    from genjax.flows.constructors import maf

    from genjax.diffusion import ddpm_2d, ddpm_mlp
    from genjax.diffusion.ddpm import SAMPLERS

    monkeypatch.setattr(sampling, "QUICK_T", 10)
    monkeypatch.setattr(sampling, "make_ddpm", lambda T: ddpm_2d(T=T, hidden=(8,), emb_dim=8))
    monkeypatch.setattr(sampling, "FLOWS", (("MAF 4-D", lambda: maf(4, num_layers=2, hidden=(8,)), 4),))
    monkeypatch.setattr(sampling, "make_image_ddpm", lambda T: ddpm_mlp((2, 2, 1), T=T, hidden=(8,), emb_dim=8, data_range="unit"))
    entry = _run(tmp_path, "sampling")
    by = {r["sampler"]: r for r in entry["rows"]}
    every = [f"{s}, 2x2x1 MLP DDPM T=10" for s in SAMPLERS] + ["langevin, 2x2x1 MLP NCSN"]
    assert {"DDPM 2-D, one lax.scan", "DDPM 2-D, Python loop of jitted steps", "DDIM 2-D, one lax.scan",
            "MAF 4-D sample", "MAF 4-D log_prob (one pass)", *every} == set(by)
    # every sampler, its network evaluations per image as the model counts them
    model = sampling.make_image_ddpm(10)
    assert [by[n]["evals/image"] for n in every] == [model.sampler_nfe(s) for s in SAMPLERS] + [10 * 10 + 1]
    assert {"ddpm", "ddim", "pc", "ode", "euler", "heun", "dpm++2m", "dpm2", "dpm3"} <= set(SAMPLERS)
    assert by["DDPM 2-D, one lax.scan"]["steps"] == 10 and by["DDIM 2-D, one lax.scan"]["steps"] == 10
    for r in entry["rows"]:
        np.testing.assert_allclose(r["samples/s"], r["batch"] / (r["ms"] / 1e3), rtol=1e-9, atol=0)
    assert entry["targets"][0]["threshold"] == 2.0


def test_python_loop_ddpm_matches_scan_sampler(key):
    """The loop baseline computes the same chain as the scan sampler (same keys)."""
    from genjax.diffusion import ddpm_2d

    model = ddpm_2d(T=6, hidden=(8,), emb_dim=8)
    params = model.init(key, np.zeros((4, 2), np.float32))
    scan = model.sample(params, key, 5, sampler="ddpm")
    loop = sampling.python_loop_ddpm(model, params, key, 5)()
    np.testing.assert_allclose(np.asarray(loop), np.asarray(scan), rtol=1e-5, atol=1e-5)


def test_evaluation_quick_json(tmp_path):
    """The former and the new likelihood paths give the same bits/dim (same estimate); the
    cheaper estimates are labelled; the sampling and RealNVP rows are timed."""
    rows = {r["evaluation"]: r for r in _run(tmp_path, "evaluation")["rows"]}
    for name in ("ddpm", "score-sde"):
        np.testing.assert_allclose(rows[f"{name} new"]["bits/dim"], rows[f"{name} former"]["bits/dim"], rtol=1e-4)
        assert _positive(rows[f"{name} new"]["vs former (warm)"])
    assert f"ddpm new, {evaluation.dspec.QUICK_VLB_TERMS} strata" in rows
    assert any(k.startswith("ddpm sample 8 digits, dpm++2m") for k in rows)
    realnvp = [r for k, r in rows.items() if k.startswith("realnvp")]
    assert len(realnvp) == 2 and all(_positive(r["steps/s"]) for r in realnvp)
    flops = [r["GFLOP/step"] for r in realnvp]  # the former default width costs more per step
    assert None in flops or flops[1] > 2 * flops[0]
    for name in ("ddpm", "score-sde"):  # the end-of-run evaluation against the default training it follows
        r = next(r for k, r in rows.items() if k.startswith(f"{name} end-of-run"))
        assert r["default steps"] == registry.get_model_spec(name).defaults["steps"]
        np.testing.assert_allclose(r["eval / train"], r["first s"] / r["train s (projected)"], rtol=1e-9)


def test_families_quick_json(tmp_path, monkeypatch):
    monkeypatch.setattr(families, "QUICK_NAMES", ("vae", "maf"))
    entry = _run(tmp_path, "families")
    rows = entry["rows"]
    assert [(r["model"], r["data"], r["batch"]) for r in rows] == [("vae", "digits", 8), ("maf", "two-moons", 8)]
    for r in rows:
        np.testing.assert_allclose(r["samples/s"], r["batch"] / (r["ms/step"] / 1e3), rtol=1e-9, atol=0)


def test_data_parallel_quick_json(tmp_path, monkeypatch):
    """The mesh rows come from a worker process with forced CPU devices; scaling is relative to mesh 1."""
    monkeypatch.setattr(data_parallel, "DEVICES", (1, 2))
    monkeypatch.setattr(data_parallel, "BATCHES", (8,))
    entry = _run(tmp_path, "data_parallel")
    rows = entry["rows"]
    assert [(r["batch"], r["mode"], r["devices"]) for r in rows] == [
        (8, "plain (no mesh)", 1), (8, "mesh 1", 1), (8, "mesh 2", 2)]
    for r in rows:
        assert _positive(r["ms/step"])
        np.testing.assert_allclose(r["steps/s"], 1e3 / r["ms/step"], rtol=1e-9, atol=0)
    assert rows[0]["vs mesh 1"] is None and rows[1]["vs mesh 1"] == 1.0
    np.testing.assert_allclose(rows[2]["vs mesh 1"], rows[1]["ms/step"] / rows[2]["ms/step"], rtol=1e-9, atol=0)
    assert "2 forced cpu devices" in entry["notes"][0]


def test_data_parallel_worker_failure_is_reported(monkeypatch):
    """A worker that exits non-zero (here: a batch size that is not an int) raises with its stderr."""
    monkeypatch.setattr(data_parallel, "BATCHES", ("x",))
    with pytest.raises(RuntimeError, match="data_parallel worker failed"):
        data_parallel._run_worker(common.Settings.make(True))


def test_multihost_quick_json(tmp_path, monkeypatch):
    """Each row is one launch of N processes joined by jax.distributed; scaling is relative to 1 process."""
    monkeypatch.setattr(multihost, "PROCESSES", (1, 2))
    monkeypatch.setattr(multihost, "BATCH", 8)
    entry = _run(tmp_path, "multihost")
    rows = entry["rows"]
    assert [(r["processes"], r["devices"], r["batch"]) for r in rows] == [(1, 1, 8), (2, 2, 8)]
    for r in rows:
        assert _positive(r["ms/step"])
        np.testing.assert_allclose(r["steps/s"], 1e3 / r["ms/step"], rtol=1e-9, atol=0)
    assert rows[0]["vs 1 process"] == 1.0
    np.testing.assert_allclose(rows[1]["vs 1 process"], rows[0]["ms/step"] / rows[1]["ms/step"], rtol=1e-9, atol=0)
    assert "not a lack of scaling" in entry["notes"][1]


def test_mixed_precision_quick_json(tmp_path, monkeypatch):
    from genjax.vae import conv_vae

    monkeypatch.setattr(mixed_precision, "BATCH", 4)
    monkeypatch.setattr(mixed_precision, "SHAPE", (8, 8, 1))
    monkeypatch.setattr(mixed_precision, "make_models",
                        lambda: {"tiny conv VAE": conv_vae((8, 8, 1), latent_dim=2, features=(4,), hidden=8)})
    entry = _run(tmp_path, "mixed_precision")
    (row,) = entry["rows"]
    assert row["model"] == "tiny conv VAE" and row["batch"] == 4
    assert _positive(row["float32 ms"]) and _positive(row["bfloat16 ms"])
    np.testing.assert_allclose(row["bf16/f32"], row["bfloat16 ms"] / row["float32 ms"], rtol=1e-9, atol=0)


def test_breakdown_quick_json(tmp_path, monkeypatch):
    from genjax.vae.constructors import seed_vae

    monkeypatch.setattr(breakdown, "CASES", (
        ("seed VAE", lambda: seed_vae(784), 4, None, breakdown.SEED_ENC, breakdown.SEED_DEC),
        ("seed VAE", lambda: seed_vae(784), 4, 2, breakdown.SEED_ENC, breakdown.SEED_DEC),
    ))
    monkeypatch.setattr(breakdown, "GAN_BATCHES", (4,))
    entry = _run(tmp_path, "breakdown")
    one, two, *gan_rows, dispatch = entry["rows"]
    assert [r["case"].split(": ")[1].split(" ")[0] for r in gan_rows] == ["library", "minimal", "library", "minimal", "D", "G", "D", "G", "metrics", "keys"]
    assert "share_fakes" in gan_rows[2]["case"] and "one draw" in gan_rows[3]["case"]
    for r in gan_rows:  # each part's time against the library step's
        assert r["batch"] == 4 and _positive(r["full ms"])
        np.testing.assert_allclose(r["share of step"], r["full ms"] / gan_rows[0]["full ms"], rtol=1e-9, atol=0)
    assert one["case"] == "seed VAE" and two["case"] == "seed VAE x2 seeds (vmap)"
    np.testing.assert_allclose(two["params (M)"], 2 * one["params (M)"], rtol=1e-9)
    for r in (one, two):
        assert all(_positive(r[k]) for k in ("full ms", "grad ms", "adam ms", "grad norm ms", "grad GFLOP/s", "grad % peak"))
        np.testing.assert_allclose(r["adam share"], r["adam ms"] / r["full ms"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(
        two["grad GFLOP/s"], 2 * breakdown.grad_flops(4, breakdown.SEED_ENC, breakdown.SEED_DEC) / (two["grad ms"] / 1e3) / 1e9,
        rtol=1e-9)
    assert dispatch["case"].startswith("empty jitted call") and _positive(dispatch["full ms"])


def test_breakdown_flops_equal_train_step_flops():
    """The gradient half's FLOP count is the VAE step count of ``train_step`` (checked there against the jaxpr)."""
    for b in (1, 128):
        assert breakdown.grad_flops(b, breakdown.SEED_ENC, breakdown.SEED_DEC) == train_step.step_flops("vae", b)


def test_one_json_per_run_never_merged(tmp_path, monkeypatch):
    """A second run to the same --out replaces the file whole: only its own entries and meta
    (issue 17, A5: the committed JSON had merged two runs' entries and metas)."""
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"meta": {"note": "an earlier run"}, "entries": {"families": {"rows": []}},
                               "breakdown_meta": {}}))
    monkeypatch.setattr(fused_steps, "BATCHES", (4,))
    assert bench_run.main(["--only", "fused_steps", "--quick", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"meta", "entries", "run"} and set(doc["entries"]) == {"fused_steps"}
    assert "note" not in doc["meta"] and list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_committed_results_are_each_one_run():
    """Every committed benchmark JSON is what one ``python -m benchmarks.run`` wrote: the runner's
    top-level keys, one meta (no second run's meta or hand-written note folded in)."""
    import pathlib

    files = sorted((pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("*.json"))
    assert files
    for f in files:
        doc = json.loads(f.read_text())
        assert set(doc) <= {"meta", "entries", "run"} and {"meta", "entries"} <= set(doc), f.name
        assert not [k for k in doc["meta"] if k.endswith("_meta") or k == "note"], f.name
        argv = doc["run"]["command"].split()[3:] if "run" in doc else doc["meta"]["argv"]
        only = [argv[i + 1] for i, a in enumerate(argv) if a == "--only"]
        assert set(doc["entries"]) == set(only or doc["entries"]), f"{f.name}: entries its command did not run"


def test_unknown_entry_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        bench_run.main(["--only", "model_parallel", "--out", str(tmp_path / "x.json")])
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        bench_run.run_entry("nope", common.Settings.make(True), None)


# ---------------------------------------------------------------------- FLOP counts
def _dot_flops(jaxpr, mult: int = 1) -> int:
    """Matmul FLOPs in a jaxpr: ``2 * prod(out) * prod(contracted)`` per dot_general,
    scans multiplied by their length, sub-jaxprs entered."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += mult * 2 * int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in lc]))
        length = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for v in eqn.params.values():
            for sub in v if isinstance(v, (list, tuple)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _dot_flops(inner, mult * length)
    return total


@pytest.mark.parametrize("batch", [3])
def test_vae_step_flops_match_the_jaxpr(batch):
    model, tx = seed_vae(784, 20), optax.adam(1e-3)
    x = np.zeros((batch, 784), np.float32)
    state = TrainState.create(model.init(jax.random.PRNGKey(0), x), tx, jax.random.PRNGKey(1))
    jaxpr = jax.make_jaxpr(make_train_step(model.loss, tx, jit=False))(state, x)
    assert train_step.step_flops("vae", batch) == _dot_flops(jaxpr.jaxpr)


@pytest.mark.parametrize("share_fakes", [True, False])
def test_gan_step_flops_match_the_jaxpr(share_fakes, batch=5):
    """The benchmarked step (one draw of fakes, G forward once) and the default (two draws)."""
    model, tx = seed_gan(784, 100, share_fakes=share_fakes), gan_adam(2e-4, b1=0.5)
    x = np.zeros((batch, 784), np.float32)
    state = TrainState.create(model.init(jax.random.PRNGKey(0), x), tx, jax.random.PRNGKey(1))
    jaxpr = jax.make_jaxpr(make_step(model, tx))(state, x)
    assert train_step.step_flops("gan", batch, share_fakes=share_fakes) == _dot_flops(jaxpr.jaxpr)


def test_step_flops_rejects_unknown_model():
    with pytest.raises(ValueError, match="model must be 'vae' or 'gan'"):
        train_step.step_flops("flow", 8)


# ---------------------------------------------------------------------- targets, table
def test_target_met_and_gap():
    hi = common.Target("speedup", 1.2, 1.5)
    assert hi.met is False and "MISSED by 0.30x" in hi.describe()
    assert common.Target("speedup", 1.6, 1.5).met is True
    lo = common.Target("8 seeds", 3.5, 3.0, higher_is_better=False)
    assert lo.met is False and "MISSED by 0.50x" in lo.describe()
    none = common.Target("ratio", None, 2.0, note="torch absent")
    assert none.met is None and "not measured (torch absent)" in none.describe()


def test_table_columns_line_up():
    text = common.format_table([{"a": "x", "b": 1.5}, {"a": "long name", "c": None}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c"]
    assert len({len(l) for l in lines}) == 1
    assert lines[3].split() == ["long", "name", "-", "-"]
