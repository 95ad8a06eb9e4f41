"""The command line's defects found by trying it as a new user (issue 17, A7), one test each.

Each test runs the real command (``cli.main`` in this process, or ``python -m genjax.cli`` in
a subprocess where a signal or a second device is needed) and checks what a user sees: the
one error line, the start line, the files left behind.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from genjax import cli, registry
from genjax.data import download as dl

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--steps", "2", "--steps-per-dispatch", "2", "--log-every", "2", "--checkpoint-every", "2",
        "--eval-samples", "2", "--no-progress", "--latent-dim", "2", "--hidden", "8"]


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("genjax: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _child_env(**extra) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


# ------------------------------------------------------------ nothing is created by a failed check
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "5000"], r"--batch-size 5000 is larger than the training split of 'digits' \(1437 examples\)"),
        (["--data", "8gaussians", "--likelihood", "bernoulli"],
         r"--likelihood bernoulli needs data in \[0, 1\].*use --likelihood gaussian_learned"),
        (["--hidden", "256,abc"], r"--hidden: expected comma-separated integers .*'256,abc'"),
    ],
)
def test_failed_check_leaves_no_run_directory(tmp_path, capsys, extra, message):
    rc = cli.main(["train", "vae", "--out", str(tmp_path), "--name", "x", "--no-progress", *extra])
    assert rc == 1
    assert re.search(message, _error(capsys))
    assert not (tmp_path / "x").exists()  # the corrected command can use the name


def test_corrected_retry_after_a_failed_check_starts(tmp_path, capsys):
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "x", "--batch-size", "5000", "--no-progress"]) == 1
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "x", "--batch-size", "4", *TINY]) == 0
    assert json.loads((tmp_path / "x" / "config.json").read_text())["batch_size"] == 4


def test_run_failing_before_training_removes_its_directory(tmp_path, capsys, monkeypatch):
    import genjax.train

    def broken_fit(*args, **kwargs):
        raise ValueError("a check only fit makes")

    monkeypatch.setattr(genjax.train, "fit", broken_fit)
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "x", *TINY]) == 1
    assert "a check only fit makes" in _error(capsys)
    assert not (tmp_path / "x").exists()


def test_resume_of_a_missing_run_is_an_error(tmp_path, capsys):
    rc = cli.main(["train", "vae", "--out", str(tmp_path), "--name", "never-existed", "--resume", *TINY])
    assert rc == 1
    line = _error(capsys)
    assert "--resume" in line and "'never-existed'" in line and "does not exist" in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ data not found
def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"  # nothing listens there: connection refused at once


def test_missing_data_is_one_readable_error_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(dl.MIRRORS, "mnist", [_closed_port_url(), _closed_port_url()])
    monkeypatch.delenv("GENJAX_DATA_DIR", raising=False)
    data_dir = tmp_path / "data" / "deep"
    rc = cli.main(["train", "vae", "--data", "mnist", "--data-dir", str(data_dir), "--out", str(tmp_path / "runs"),
                   "--no-progress"])
    assert rc == 1
    line = _error(capsys)
    assert line.startswith("genjax: error: data set 'mnist' not found:")
    assert str(data_dir / "mnist" / "train-images-idx3-ubyte.gz") in line  # where it looked
    assert "(given by --data-dir)" in line and "--data-dir DIR" in line and "GENJAX_DATA_DIR=DIR" in line
    assert line.count("download of") == 0 and line.count("refused") == 1  # the same failure said once
    assert len(line.replace(str(tmp_path), "T")) < 450, line  # temp paths aside (the old message: ~560)
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_data_dir_pointing_at_the_data_set_folder_names_its_parent(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(dl.MIRRORS, "mnist", [_closed_port_url()])
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"")  # the user's copy, one level too deep
    rc = cli.main(["train", "vae", "--data", "mnist", "--data-dir", str(folder), "--out", str(tmp_path / "runs")])
    assert rc == 1
    assert f"pass its parent: --data-dir {tmp_path / 'data'}." in _error(capsys)
    assert sorted(p.name for p in folder.iterdir()) == ["train-images-idx3-ubyte.gz"]  # no nested mnist/mnist


# ------------------------------------------------------------ sample / eval
def test_sample_of_a_missing_run_says_it_does_not_exist(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path / "missing")]) == 1
    assert f"run directory '{tmp_path / 'missing'}' does not exist" in _error(capsys)
    (tmp_path / "empty").mkdir()
    assert cli.main(["sample", str(tmp_path / "empty")]) == 1
    assert "has no config.json" in _error(capsys)


def test_sample_takes_data_dir(tmp_path, capsys, monkeypatch):
    seen = {}

    def load_run(run_dir, data_dir=None):
        seen["data_dir"] = data_dir
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(cli, "_load_run", load_run)
    assert cli.main(["sample", str(tmp_path), "--data-dir", str(tmp_path / "d")]) == 1
    assert seen["data_dir"] == str(tmp_path / "d")


_BLOCKING_EVAL = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp
    from genjax import cli

    def load_run(run_dir, data_dir=None):  # stands for an evaluation stuck in one long XLA computation
        f = jax.jit(lambda x: jax.lax.while_loop(lambda c: c[0] < 2**31 - 2, lambda c: (c[0] + 1, jnp.sin(c[1]) @ c[1]),
                                                 (jnp.int32(0), x))[1])
        f.lower(jnp.ones((32, 32))).compile()
        print("evaluating", file=sys.stderr, flush=True)
        return f(jnp.ones((32, 32))).block_until_ready()

    cli._load_run = load_run
    sys.exit(cli.main(["eval", sys.argv[1]]))
    """
)


def test_ctrl_c_in_eval_stops_it_at_once_with_its_own_message(tmp_path):
    # SIGINT at its default disposition in the child: a process started with SIGINT ignored (as a
    # pytest-xdist worker's children are, and background jobs of a shell) never raises KeyboardInterrupt
    p = subprocess.Popen([sys.executable, "-c", _BLOCKING_EVAL, str(tmp_path)], stderr=subprocess.PIPE, text=True,
                         env=_child_env(), cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stderr.readline().strip() == "evaluating"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)  # a hang guard only (generous: a loaded CI machine); the computation runs for hours
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "genjax: eval interrupted; nothing was written" in err
    assert "--resume" not in err and "checkpoint" not in err


# ------------------------------------------------------------ start line, runs, eval flags
def test_start_line_says_resuming_from_step(tmp_path, capsys):
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "r", *TINY]) == 0
    assert ", resuming from step" not in capsys.readouterr().err
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "r", "--resume", *TINY]) == 0
    start = [l for l in capsys.readouterr().err.splitlines() if l.startswith("genjax: training")]
    assert start == [f"genjax: training vae on digits (8, 8, 1) for 2 steps, resuming from step 2 -> {tmp_path / 'r'}"]


def test_start_line_says_on_n_devices(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import genjax.train
        from genjax import cli

        def fit(*args, **kwargs):
            raise RuntimeError("stopped after the start line")

        genjax.train.fit = fit
        sys.exit(cli.main(sys.argv[1:]))
        """
    )
    r = subprocess.run([sys.executable, "-c", script, "train", "vae", "--out", str(tmp_path), "--devices", "2",
                        "--batch-size", "4", *TINY], capture_output=True, text=True, timeout=300,
                       env=_child_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert r.returncode == 1, r.stderr
    assert f"genjax: training vae on digits (8, 8, 1) for 2 steps on 2 devices -> {tmp_path / 'vae-digits'}" in r.stderr


def test_no_eval_and_eval_examples(tmp_path, capsys):
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "a", "--no-eval", *TINY]) == 0
    records = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train"]
    assert "test_nll_nats" not in json.loads(capsys.readouterr().out)
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--name", "b", "--eval-examples", "7", *TINY]) == 0
    evals = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["num_test_examples"] for r in evals if r["kind"] == "eval"] == [7]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["eval_examples"] == 7


def _fake_run(parent: pathlib.Path, name: str, model: str, data: str, records: list[dict], eval_json=None):
    d = parent / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model": model, "data": data, "steps": 100}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if eval_json is not None:
        (d / "eval.json").write_text(json.dumps(eval_json))


def test_runs_lists_model_data_step_and_main_figure(tmp_path, capsys):
    _fake_run(tmp_path, "a", "vae", "digits",
              [{"step": 50, "kind": "train", "loss": 1.0}, {"step": 100, "kind": "train", "loss": 0.5},
               {"step": 100, "kind": "eval", "test_nll_nats": 30.0, "test_bits_per_dim": 0.6767}])
    _fake_run(tmp_path, "b", "maf", "8gaussians", [{"step": 40, "kind": "train", "loss": 2.0}],
              eval_json={"step": 40, "test_kl_nats": 0.0123, "test_nll_nats": 3.0})
    _fake_run(tmp_path, "c", "gan", "digits", [])
    _fake_run(tmp_path, "d", "gan", "8gaussians", [{"step": 100, "kind": "train", "loss": 1.0},
              {"step": 100, "kind": "eval", "hq_fraction": 0.978, "modes_captured": 8, "num_modes": 8}])
    (tmp_path / "not-a-run").mkdir()
    assert cli.main(["runs", str(tmp_path)]) == 0
    rows = [l.split() for l in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["RUN", "MODEL", "DATA", "STEP", "MAIN", "FIGURE", "FROM"]
    assert rows[1:] == [
        ["a", "vae", "digits", "100/100", "test_bits_per_dim", "0.6767", "metrics.jsonl"],
        ["b", "maf", "8gaussians", "40/100", "test_kl_nats", "0.0123", "eval.json"],
        ["c", "gan", "digits", "0/100", "-", "-"],
        ["d", "gan", "8gaussians", "100/100", "high", "quality", "97.8%,", "modes", "8/8", "metrics.jsonl"],
    ]


def test_runs_of_a_missing_directory_is_an_error(tmp_path, capsys):
    assert cli.main(["runs", str(tmp_path / "nope")]) == 1
    assert "does not exist" in _error(capsys)


# ------------------------------------------------------------ help texts
def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_help_text_is_complete():
    parser = cli.build_parser()
    subs = dict(_subparsers(parser))
    assert {f"train {m}" for m in registry.MODELS} <= set(subs)
    for name, sub in subs.items():
        text = sub.format_help()
        assert "OPT_" not in text, name
        assert "(default: None)" not in text, name
        for action in sub._actions:
            if action.option_strings or action.dest not in ("command", "model"):
                assert action.help, f"genjax {name}: {action.option_strings or action.dest} has no help"
        if name.startswith("train "):
            family = registry.MODELS[name.split()[1]].family
            assert ("importance samples" in text) == (family == "vae"), name


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path):
    """`genjax list | head -1`: the reader leaves early; no 'genjax: error: Broken pipe'."""
    p = subprocess.Popen([sys.executable, "-m", "genjax.cli", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_child_env(), cwd=tmp_path)
    p.stdout.close()  # before the child writes (its imports take a while)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0, err
    assert "error" not in err.lower(), err
