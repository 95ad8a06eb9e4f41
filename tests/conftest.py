"""Shared fixtures: a seeded ``key`` (the seed is shown on failure), the eager/jit
``variant`` and the location of the real data files.

Promotion is left at JAX's defaults: ``jax_numpy_rank_promotion="raise"`` and
``jax_numpy_dtype_promotion="strict"`` break distrax/flax/optax internals on the
pinned versions, so the tests check shapes and dtypes explicitly instead.
"""

from __future__ import annotations

import os
import pathlib
import random

# Tiny shapes: XLA:CPU compile time dominates the suite, and LLVM's optimization
# passes buy nothing here (about half the wall time on a loaded 2-core CPU). Set
# before the backend starts; GENJAX_TEST_FULL_OPT=1 keeps the default pipeline.
if not os.environ.get("GENJAX_TEST_FULL_OPT"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import numpy as np
import pytest

def pytest_report_header(config):
    import chex, distrax, flax, optax
    import orbax.checkpoint as ocp

    return (f"versions: jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, "
            f"distrax {distrax.__version__}, chex {chex.__version__}, orbax {ocp.__version__}")


#: Set ``GENJAX_TEST_SEED`` to replay a failure with the seed it printed.
SEED_ENV = "GENJAX_TEST_SEED"


@pytest.fixture
def seed(request) -> int:
    """A random seed per test (or ``$GENJAX_TEST_SEED``), recorded for the report."""
    env = os.environ.get(SEED_ENV)
    value = int(env) if env else random.randrange(2**31)
    request.node.user_properties.append(("seed", value))
    print(f"{request.node.nodeid}: seed={value} (replay with {SEED_ENV}={value})")
    return value


@pytest.fixture
def key(seed) -> jax.Array:
    """``jax.random.PRNGKey(seed)`` with a fresh random seed per test."""
    return jax.random.PRNGKey(seed)


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A NumPy generator from the same seed, for test inputs (cheaper than eager jax.random)."""
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the test's seed to the failure report (also shown under ``-q``)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in item.user_properties:
            if name == "seed":
                report.sections.append(("genjax seed", f"seed={value}; replay with {SEED_ENV}={value}"))


@pytest.fixture(params=[lambda f: f, jax.jit], ids=["eager", "jit"])
def variant(request):
    """Runs a function as is and under ``jax.jit`` (pytest analogue of chex.variants)."""
    return request.param


def real_data_dir() -> pathlib.Path:
    """``$GENJAX_DATA_DIR`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("GENJAX_DATA_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def data_dir() -> pathlib.Path:
    """The real data directory; skips the test when it does not exist."""
    d = real_data_dir()
    if not d.is_dir():
        pytest.skip(f"real data directory {d} not found (set GENJAX_DATA_DIR)")
    return d


def _load_experiment(name: str):
    """Imports ``experiments/<name>.py`` as module ``_exp_<name>`` (registered in
    ``sys.modules``: linen modules and dataclasses defined there look their module up)."""
    import importlib.util
    import sys

    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_exp_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def load_experiment():
    """``load_experiment(name)`` -> the module of ``experiments/<name>.py``."""
    return _load_experiment


def _run_on_host_devices(script, out_dir, num_devices: int, *, timeout: float = 540) -> None:
    """Runs ``python script out_dir`` in a fresh process whose CPU backend shows
    ``num_devices`` devices (``--xla_force_host_platform_device_count``; a flag that only
    takes effect before JAX starts, hence the subprocess), with the repository importable.
    Fails the test with the child's stderr when it exits non-zero."""
    import subprocess
    import sys

    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={num_devices}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = pathlib.Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(script), str(out_dir)], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="session")
def run_on_host_devices():
    """``run_on_host_devices(script, out_dir, num_devices)``: a script run on N forced CPU devices."""
    return _run_on_host_devices


#: the tiny ``genjax train ldm`` settings the ldm and unclip command-line tests share
TINY_LDM = ["--size", "tiny", "--clip-steps", "4", "--ae-steps", "4", "--feature-weight", "0", "--T", "10",
            "--batch-size", "8", "--captions-per-image", "2", "--checkpoint-every", "2", "--log-every", "2",
            "--steps-per-dispatch", "2", "--no-progress", "--no-eval"]


@pytest.fixture(scope="session")
def tiny_ldm_args() -> list[str]:
    """:data:`TINY_LDM`: tiny networks and steps for the text-to-image pipelines' command lines."""
    return list(TINY_LDM)


@pytest.fixture(scope="session")
def tiny_ldm_run(tmp_path_factory) -> pathlib.Path:
    """One tiny ``genjax train ldm --data digits-captions`` run (4 steps per stage), trained once per
    session: tests/ldm's command-line tests sample from it, tests/unclip trains unCLIP on its CLIP
    and autoencoder (``--ldm-run``). Tests only read it."""
    from genjax import cli

    out = tmp_path_factory.mktemp("ldm")
    assert cli.main(["train", "ldm", "--data", "digits-captions", "--steps", "4", "--out", str(out), "--name", "run",
                     *TINY_LDM]) == 0
    return out / "run"


@pytest.fixture(scope="session")
def tiny_unclip_run(tmp_path_factory, tiny_ldm_run) -> pathlib.Path:
    """One tiny ``genjax train unclip`` run on :func:`tiny_ldm_run`'s CLIP and autoencoder (``--ldm-run``;
    its own stages: the prior and the decoder, 4 steps each), trained once per session for tests/unclip's
    command-line tests and tests/serve. Tests only read it."""
    from genjax import cli

    out = tmp_path_factory.mktemp("unclip")
    assert cli.main(["train", "unclip", "--data", "digits-captions", "--steps", "4", "--prior-steps", "4", "--prior-batch", "8",
                     "--ldm-run", str(tiny_ldm_run), "--out", str(out), "--name", "unclip", *TINY_LDM]) == 0
    return out / "unclip"
