"""genjax.results.write_result: the run's context is recorded with every result, and the
write is atomic (an error leaves no partial file and keeps an earlier one as it was)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import jax
import numpy as np
import pytest

from genjax import results


def test_write_result_records_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GENJAX_DATA_DIR", "/data/here")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    path = tmp_path / "sub" / "r.json"
    out = results.write_result(path, {"kl_nats": 0.01, "config": {"steps": 3}},
                               program="experiments/x.py", argv=["--steps", "3", "a b"])
    saved = json.loads(path.read_text())
    assert saved == out
    assert list(saved) == ["kl_nats", "config", "run"]  # the payload first, untouched
    assert saved["kl_nats"] == 0.01 and saved["config"] == {"steps": 3}
    run = saved["run"]
    assert run["command"] == "python experiments/x.py --steps 3 'a b'"
    assert run["environment"]["GENJAX_DATA_DIR"] == "/data/here" and "UNRELATED_SECRET" not in run["environment"]
    assert run["machine"] == platform.machine() and run["cpu_count"] == os.cpu_count()
    assert run["backend"] == jax.default_backend() and run["device_kind"] == jax.devices()[0].device_kind
    assert run["device_count"] == jax.device_count() and run["python"] == platform.python_version()
    assert run["versions"]["jax"] == jax.__version__
    for dist in ("flax", "optax", "distrax", "chex", "orbax-checkpoint", "numpy", "torch"):
        assert dist in run["versions"]
    assert run["timestamp_utc"].endswith("+00:00")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=os.path.dirname(results.__file__))
    if head.returncode == 0:  # a git checkout: the commit the run started from
        assert run["git"]["commit"] == head.stdout.strip() and isinstance(run["git"]["dirty"], bool)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_write_result_replaces_a_file_whole(tmp_path):
    path = tmp_path / "r.json"
    results.write_result(path, {"a": 1, "b": 2})
    results.write_result(path, {"c": 3})
    assert set(json.loads(path.read_text())) == {"c", "run"}  # never merged with the earlier file


def test_an_unserialisable_payload_writes_nothing(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(TypeError, match="not JSON-serialisable.*nothing was written"):
        results.write_result(path, {"x": object()})
    assert list(tmp_path.iterdir()) == []
    path.write_text('{"old": true}\n')
    with pytest.raises(TypeError):
        results.write_result(path, {"x": {1, 2}})
    assert path.read_text() == '{"old": true}\n' and list(tmp_path.iterdir()) == [path]


def test_an_error_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text('{"old": true}\n')

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        results.write_result(path, {"new": 1})
    assert path.read_text() == '{"old": true}\n'  # the earlier result as it was
    assert list(tmp_path.iterdir()) == [path]  # and no temporary file left behind


def test_bad_payloads_are_named(tmp_path):
    with pytest.raises(ValueError, match="must not have a 'run' key"):
        results.write_result(tmp_path / "r.json", {"run": 1})
    with pytest.raises(TypeError, match="payload must be a mapping"):
        results.write_result(tmp_path / "r.json", [1, 2])
    assert list(tmp_path.iterdir()) == []


def test_command_line_of_a_module_and_a_script(monkeypatch):
    assert results.command_line("-m benchmarks.run", ["--quick"]) == "python -m benchmarks.run --quick"
    monkeypatch.setattr(sys, "argv", ["experiments/flows_toy2d.py", "--smoke"])
    monkeypatch.setitem(sys.modules, "__main__", type(sys)("__main__"))  # a script: no __spec__
    assert results.command_line() == "python experiments/flows_toy2d.py --smoke"


def test_shown_path_is_relative_inside_the_root_and_unchanged_outside(tmp_path):
    from genjax.results import shown_path

    root = tmp_path / "repo"
    (root / "experiments").mkdir(parents=True)
    assert shown_path(root / "experiments" / "x.json", root) == "experiments/x.json"
    assert shown_path(tmp_path / "elsewhere", root) == str(tmp_path / "elsewhere")


def test_samples_round_trip_with_extra_fields(tmp_path):
    import numpy as np

    x = np.linspace(0.0, 1.0, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1)
    path = tmp_path / "sub" / "s.npz"
    results.write_samples(path, x, ["a 7", "the digit three"], np.array([7, 3]), bin=np.array([-1, 2]), guidance=3.0)
    got = results.read_samples(path)
    assert set(got) == {"samples", "prompts", "labels", "bin", "guidance"}
    assert got["samples"].dtype == np.uint8 and got["samples"].shape == (2, 3, 4)
    np.testing.assert_array_equal(got["samples"], np.round(x[..., 0] * 255).astype(np.uint8))
    assert got["samples"][0, 0, 0] == 0 and got["samples"][-1, -1, -1] == 255
    assert got["prompts"].tolist() == ["a 7", "the digit three"] and got["labels"].tolist() == [7, 3]
    assert got["bin"].tolist() == [-1, 2] and float(got["guidance"]) == 3.0
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    # uint8 pixels and pair labels are stored as given
    pixels = np.arange(2 * 2 * 4, dtype=np.uint8).reshape(2, 2, 4)
    results.write_samples(path, pixels, np.array(["3 and 5", "5 and 3"]), np.array([[3, 5], [5, 3]]))
    got = results.read_samples(path)
    np.testing.assert_array_equal(got["samples"], pixels)
    assert got["labels"].tolist() == [[3, 5], [5, 3]] and set(got) == {"samples", "prompts", "labels"}


def test_samples_bad_fields_write_nothing(tmp_path):
    import numpy as np

    path = tmp_path / "s.npz"
    x, p, y = np.zeros((2, 3, 3), np.float32), ["a", "b"], np.array([1, 2])
    cases = [
        (ValueError, r"samples must have shape \(n, H, W\)", (np.zeros((2, 9)), p, y), {}),
        (ValueError, r"finite and in \[0, 1\]", (x + 2, p, y), {}),
        (TypeError, "uint8 pixels or floats", (x.astype(np.int32), p, y), {}),
        (ValueError, "prompts must be 2 strings", (x, ["a"], y), {}),
        (ValueError, "prompts must be 2 strings", (x, [1, 2], y), {}),
        (ValueError, r"labels must be ints of shape \(2,\) or \(2, 2\)", (x, p, np.array([[1, 2, 3]] * 2)), {}),
        (ValueError, r"labels must be ints", (x, p, np.array([1.0, 2.0])), {}),
        (ValueError, "extra field 'bin' must be", (x, p, y), {"bin": np.array([1, 2, 3])}),
        (ValueError, "extra field 'meta' must be", (x, p, y), {"meta": {"a": 1}}),
        (ValueError, "clashes with a fixed field", (x, p, y), {"samples": np.array([1, 2])}),
    ]
    for err, match, args, extra in cases:
        with pytest.raises(err, match=match):
            results.write_samples(path, *args, **extra)
    assert list(tmp_path.iterdir()) == []
    np.savez(path, samples=x, prompts=np.array(p))  # no labels
    with pytest.raises(ValueError, match=r"fields \['labels'\] missing"):
        results.read_samples(path)
    np.savez(path, samples=x, prompts=np.array(p), labels=y)  # float samples: not what write_samples writes
    with pytest.raises(ValueError, match="must be uint8 pixels"):
        results.read_samples(path)


def test_write_run_config_records_a_run_once(tmp_path):
    """An experiment's staged pipeline records its config as ``genjax train`` does (so ``genjax
    sample`` and ``--ldm-run`` can read it); a resumed run keeps the record it started with."""
    import json

    from genjax.registry.core import write_run_config

    path = write_run_config(tmp_path / "run", "ldm", "mnist-captions", 0, {"steps": 10, "options": {"size": "small"}})
    first = json.loads(path.read_text())
    assert first == {"model": "ldm", "data": "mnist-captions", "seed": 0, "steps": 10, "options": {"size": "small"}}
    write_run_config(tmp_path / "run", "ldm", "mnist-pairs", 1, {"steps": 20, "options": {}})
    assert json.loads(path.read_text()) == first
    assert not [p for p in (tmp_path / "run").iterdir() if p.name != "config.json"]  # no temporary files left


def test_cached_computes_once_per_key_and_recomputes_on_another(tmp_path):
    calls = []

    def work(v):
        calls.append(v)
        return {"fid": v, "x": np.arange(3) * v}

    path = tmp_path / "parts" / "a.pkl"
    first = results.cached(path, ("a", 1), lambda: work(1.5))
    again = results.cached(path, ("a", 1), lambda: work(99.0))  # same key: the saved value, fn not called
    assert calls == [1.5] and again["fid"] == 1.5 and np.array_equal(again["x"], first["x"])
    other = results.cached(path, ("a", 2), lambda: work(2.0))  # another key: recomputed and replaced
    assert calls == [1.5, 2.0] and other["fid"] == 2.0
    assert results.cached(path, ("a", 2), lambda: work(3.0))["fid"] == 2.0 and calls == [1.5, 2.0]
    path.write_bytes(b"\x80torn")  # a torn file (killed mid-write elsewhere): recomputed, not an error
    assert results.cached(path, ("a", 2), lambda: work(4.0))["fid"] == 4.0


def test_cached_leaves_nothing_when_the_work_fails(tmp_path):
    path = tmp_path / "b.pkl"

    def boom():
        raise RuntimeError("cut off")

    with pytest.raises(RuntimeError, match="cut off"):
        results.cached(path, "k", boom)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_result_parts_key_each_part_by_name_key_and_config(tmp_path):
    config = {"steps": 10, "guidance": [1, 3]}
    parts = results.ResultParts(tmp_path / "parts", config)
    calls = []

    def work(v):
        calls.append(v)
        return v

    assert parts("main", "fp1", fn=lambda: work(1)) == 1 and parts("main", "fp1", fn=lambda: work(2)) == 1
    assert calls == [1]
    # the file and its key are those of cached(dir / "main.pkl", (name, *key, config as sorted JSON))
    want_key = ("main", "fp1", json.dumps(config, sort_keys=True, default=str))
    assert results.cached(tmp_path / "parts" / "main.pkl", want_key, lambda: work(3)) == 1 and calls == [1]
    assert parts("main", "fp2", fn=lambda: work(4)) == 4  # other parameters: recomputed
    assert parts("sweep", 3, "fp1", file="sweep_3", fn=lambda: work(5)) == 5
    assert (tmp_path / "parts" / "sweep_3.pkl").is_file()
    other_config = results.ResultParts(tmp_path / "parts", {**config, "steps": 11})
    assert other_config("sweep", 3, "fp1", file="sweep_3", fn=lambda: work(6)) == 6  # another config: recomputed
    assert calls == [1, 4, 5, 6]


def test_params_fingerprint_follows_the_values():
    p = {"w": jax.numpy.ones((2, 3)), "b": jax.numpy.zeros(3)}
    assert results.params_fingerprint(p) == results.params_fingerprint({"w": np.ones((2, 3), np.float32),
                                                                        "b": np.zeros(3, np.float32)})
    q = {"w": p["w"].at[1, 2].add(1e-3), "b": p["b"]}
    assert results.params_fingerprint(q) != results.params_fingerprint(p)
    assert len(results.params_fingerprint(p)) == 16


def test_config_digest_is_of_the_config_not_its_key_order():
    import hashlib
    import json

    a = {"lr": 1e-3, "model": {"depth": 2, "widths": (16, 32)}, "steps": 10}
    b = {"steps": 10, "model": {"widths": [16, 32], "depth": 2}, "lr": 1e-3}  # other order, tuple as list
    assert results.config_digest(a) == results.config_digest(b)
    assert len(results.config_digest(a)) == 12 and len(results.config_digest(a, length=10)) == 10
    # the digest the experiments' existing run folders are named by: sha256 of the sorted-key JSON
    assert results.config_digest(b, length=10) == hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()[:10]
    for changed in ({**a, "lr": 2e-3}, {**a, "model": {"depth": 3, "widths": (16, 32)}}, {**a, "seed": 0}):
        assert results.config_digest(changed) != results.config_digest(a)
    with pytest.raises(ValueError, match="length"):
        results.config_digest(a, length=0)
