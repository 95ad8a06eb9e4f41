"""Helpers of the reliability tests: CLI subprocesses, raw checkpoint trees, exact comparisons.

Loaded by path (pytest runs with ``--import-mode=importlib``)::

    U = load_util()   # see ``load_util`` in each test module
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import jax
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
#: Loop flags every CLI run of these tests shares (small chunks, frequent checkpoints).
LOOP = ["--checkpoint-every", "4", "--log-every", "2", "--steps-per-dispatch", "2", "--eval-samples", "2",
        "--ema-decay", "0.9", "--no-progress"]


def train_argv(model: str, data: str, out: pathlib.Path, name: str, steps: int, seed: int, *extra: str) -> list[str]:
    """Arguments of ``genjax train`` (without the program name)."""
    return ["train", model, "--data", data, "--out", str(out), "--name", name, "--steps", str(steps),
            "--seed", str(seed), *LOOP, *extra]


def child_env(**extra: str) -> dict:
    """The environment of a CLI subprocess: this one's (same XLA_FLAGS), CPU, the repo importable."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("GENJAX_TEST_SAVE_DELAY_S", None)
    env.update(extra)
    return env


def start_cli(argv: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genjax.cli", *argv], cwd=REPO, env=child_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(argv: list[str], *, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genjax.cli", *argv], cwd=REPO, env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def kill_when(proc: subprocess.Popen, ready, *, extra_delay: float = 0.0, timeout: float = 300, poll: float = 0.005):
    """SIGKILLs ``proc`` ``extra_delay`` seconds after ``ready()`` first holds.

    Returns True when the kill landed (the process was still running), False when it
    had exited on its own first. Fails on timeout."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            return False
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(poll)
    if extra_delay:
        time.sleep(extra_delay)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode == -signal.SIGKILL


def logged_steps(run_dir: pathlib.Path, kind: str = "train") -> list[int]:
    """Steps of the complete ``kind`` records of ``metrics.jsonl`` (a torn last line is skipped)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("kind") == kind:
            out.append(rec["step"])
    return out


def committed_steps(ckpt_dir: pathlib.Path) -> list[int]:
    """Checkpoint steps that orbax committed (numeric directory names; tmp directories excluded)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(int(p.name) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit())


def tmp_checkpoints(ckpt_dir: pathlib.Path) -> list[str]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(p.name for p in ckpt_dir.iterdir() if ".orbax-checkpoint-tmp" in p.name)


def load_tree(step_dir: pathlib.Path) -> dict:
    """The raw pytree (nested dicts of numpy arrays) of one checkpoint, without a model."""
    import orbax.checkpoint as ocp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ocp.PyTreeCheckpointer().restore(step_dir / "default")
    return jax.tree_util.tree_map(np.asarray, tree)


def flat(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def assert_trees_bit_identical(a, b, what: str = "") -> None:
    """Same paths, dtypes, shapes and bytes (NaN payloads included) for every leaf."""
    fa, fb = flat(a), flat(b)
    assert sorted(fa) == sorted(fb), f"{what}: different leaves {sorted(set(fa) ^ set(fb))}"
    for k in fa:
        x, y = fa[k], fb[k]
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}{k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"{what}{k}: values differ (max |diff| {np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))})"


def assert_runs_bit_identical(run_a: pathlib.Path, run_b: pathlib.Path) -> None:
    """Same committed checkpoints with bit-identical state (params, opt_state, EMA, key, step)
    and a byte-identical ``metrics.jsonl``."""
    sa, sb = committed_steps(run_a / "checkpoints"), committed_steps(run_b / "checkpoints")
    assert sa == sb and sa, (sa, sb)
    for s in sa:
        ta, tb = load_tree(run_a / "checkpoints" / str(s)), load_tree(run_b / "checkpoints" / str(s))
        assert int(ta["step"]) == s
        assert ta.get("ema_params") is not None, "the runs use EMA: it must be in the checkpoint"
        assert_trees_bit_identical(ta, tb, f"checkpoint {s}: ")
    assert (run_a / "metrics.jsonl").read_bytes() == (run_b / "metrics.jsonl").read_bytes()


def one_line_error(stderr: str) -> str:
    """The CLI's error: exactly one ``genjax: error:`` line, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [l for l in stderr.splitlines() if l.startswith("genjax: error:")]
    assert len(lines) == 1, stderr
    return lines[0]
