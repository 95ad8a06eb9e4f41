"""``train_step``: the seed chapter's PyTorch VAE and MLP GAN against genjax's
equivalents (``seed_vae``, ``seed_gan``), same shapes, same optimizer, batch 64/128/1024.

PyTorch runs in its own process (``benchmarks.torch_worker``); for each (model, batch)
the repeats alternate PyTorch, genjax, PyTorch, genjax, ... and each side reports its
median ms/step. The achieved rate counts the matmul FLOPs an ideal step needs (below)
and is given as a fraction of the matmul peak measured in the same run.

FLOPs per step (dense layer ``in x out`` at batch ``b`` is ``F = 2 b in out`` forward):
- VAE: forward ``F_enc + F_dec``, weight gradients the same again, input gradients the
  same less the first encoder layer (its input is data): ``3 (F_enc + F_dec) - F_enc1``.
- GAN (one D update then one G update on one draw of fakes, as the seed code draws one
  ``z`` per step: ``seed_gan(share_fakes=True)``): G forward once; D step: D forward on
  real and fake (``2 F_D``), D weight and input gradients (no input gradient of D's first
  layer); G step: D forward, D input gradients, G weight and input gradients (none for
  G's first layer): ``3 F_G - F_G1 + 8 F_D - 2 F_D1``. The seed's PyTorch code computes
  ``G(z)`` a second time for G's loss (``+ F_G``), as genjax's default step does with its
  second draw (``share_fakes=False``; ``breakdown`` times both genjax steps side by side).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, Target, block, calibrate, dense_flops, ratio, time_once
from genjax.gan.constructors import seed_gan
from genjax.gan.step import gan_adam
from genjax.train import TrainState, make_step, make_train_step
from genjax.vae.constructors import seed_vae

BATCHES = (64, 128, 1024)
MODELS = ("vae", "gan")
#: pause after each PyTorch repeat, so that its OpenMP threads stop spin-waiting before JAX is timed
SETTLE_S = 0.3
DATA_DIM = 784
VAE_ENC = [(784, 400), (400, 40)]
VAE_DEC = [(20, 400), (400, 784)]
GAN_G = [(100, 128), (128, 256), (256, 784)]
GAN_D = [(784, 256), (256, 128), (128, 1)]


def torch_available() -> bool:
    """Whether PyTorch can be imported (checked without importing it here)."""
    return importlib.util.find_spec("torch") is not None


def step_flops(model: str, batch: int, *, share_fakes: bool = True) -> float:
    """Matmul FLOPs of one ideal train step (see the module docstring); ``share_fakes=False``:
    the GAN step with a second draw of fakes for G (one more G forward)."""
    if model == "vae":
        return 3 * (dense_flops(batch, VAE_ENC) + dense_flops(batch, VAE_DEC)) - dense_flops(batch, VAE_ENC[:1])
    if model == "gan":
        f_g, f_d = dense_flops(batch, GAN_G), dense_flops(batch, GAN_D)
        return (3 + (not share_fakes)) * f_g - dense_flops(batch, GAN_G[:1]) + 8 * f_d - 2 * dense_flops(batch, GAN_D[:1])
    raise ValueError(f"model must be 'vae' or 'gan', got {model!r}")


class TorchWorker:
    """A ``benchmarks.torch_worker`` subprocess spoken to in JSON lines."""

    def __init__(self):
        root = pathlib.Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        self.err = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty stderr cannot block the worker
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.torch_worker"], cwd=root, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
        )
        self.info = self._read()
        if not self.info.get("ready"):
            raise RuntimeError(f"torch worker did not start: {self.info}")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            self.err.seek(0)
            err = self.err.read()[-2000:]
            raise RuntimeError(f"torch worker exited: {err.strip()}")
        return json.loads(line)

    def run(self, model: str, batch: int, steps: int) -> float:
        """Seconds per step over ``steps`` steps (the first call per (model, batch) also builds and warms up)."""
        self.proc.stdin.write(json.dumps({"op": "run", "model": model, "batch": batch, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        if "error" in out:
            raise RuntimeError(f"torch worker: {out['error']}")
        return out["s_per_step"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def genjax_stepper(model: str, batch: int) -> Stepper:
    """genjax's equivalent of the chapter's step: jitted, state donated, data on device."""
    key = jax.random.PRNGKey(0)
    k_init, k_data, k_train = jax.random.split(key, 3)
    if model == "vae":
        m = seed_vae(DATA_DIM, 20)
        x = jax.random.bernoulli(k_data, 0.5, (batch, DATA_DIM)).astype(np.float32)
        tx = optax.adam(1e-3)
        step = make_train_step(m.loss, tx)
    else:
        m = seed_gan(DATA_DIM, 100, share_fakes=True)  # the seed code's step: one z per step for both players
        x = jax.random.uniform(k_data, (batch, DATA_DIM), minval=-1.0, maxval=1.0)
        tx = gan_adam(2e-4, b1=0.5)
        step = jax.jit(make_step(m, tx), donate_argnums=0)
    state = TrainState.create(m.init(k_init, x), tx, k_train)
    return Stepper(step, state, block(x))


def run(settings: Settings, *, peak: float) -> EntryResult:
    """Runs the entry; ``peak`` is the measured matmul FLOP/s of this run."""
    rows, notes = [], []
    have_torch = torch_available()
    worker, torch_error = None, None
    if have_torch:
        try:
            worker = TorchWorker()
            notes.append(f"PyTorch {worker.info['torch']} in a separate process, {worker.info['threads']} threads")
        except Exception as e:  # reported in the rows
            torch_error = str(e)
    else:
        torch_error = "torch not installed (pip install torch==2.13.0, or pip install -e '.[bench]')"
    found: dict = {}
    try:
        for model in MODELS:
            for batch in BATCHES:
                stepper = genjax_stepper(model, batch)
                n_j = calibrate(stepper, settings)  # warm-up (compiles) + steps per repeat
                torch_times, err = [], torch_error
                n_t = 1
                if worker is not None and err is None:
                    try:
                        est = worker.run(model, batch, 1)
                        n_t = 1 if settings.quick else max(1, min(int(settings.min_time / est) + 1, settings.max_calls))
                    except Exception as e:
                        err = str(e)
                jax_times = []
                for _ in range(settings.repeats):  # alternate the two processes
                    if worker is not None and err is None:
                        try:
                            torch_times.append(worker.run(model, batch, n_t))
                        except Exception as e:
                            err = str(e)
                        time.sleep(SETTLE_S if not settings.quick else 0.0)
                    jax_times.append(time_once(lambda: stepper(n_j)) / n_j)
                t_jax = statistics.median(jax_times)
                t_torch = statistics.median(torch_times) if torch_times and err is None else None
                flops = step_flops(model, batch)
                row = {
                    "model": "seed VAE 784-400-20" if model == "vae" else "seed MLP GAN",
                    "batch": batch,
                    "genjax ms": 1e3 * t_jax,
                    "torch ms": None if t_torch is None else 1e3 * t_torch,
                    "torch/genjax": ratio(t_torch, t_jax),
                    "genjax GFLOP/s": flops / t_jax / 1e9,
                    "% matmul peak": 100.0 * flops / t_jax / peak,
                    "torch % peak": None if t_torch is None else 100.0 * flops / t_torch / peak,
                    "torch": "ok" if t_torch is not None else f"absent: {err}",
                }
                rows.append(row)
                found[(model, batch)] = row
    finally:
        if worker is not None:
            worker.close()
    torch_note = "" if torch_error is None else torch_error
    v128, v1024, g128 = found.get(("vae", 128), {}), found.get(("vae", 1024), {}), found.get(("gan", 128), {})
    targets = [
        Target("seed VAE b128 torch/genjax", v128.get("torch/genjax"), 2.0, note=torch_note),
        Target("seed VAE b128 % matmul peak", v128.get("% matmul peak"), 85.0, unit="%"),
        Target("seed VAE b1024 % matmul peak", v1024.get("% matmul peak"), 95.0, unit="%"),
        Target("seed GAN b128 torch/genjax", g128.get("torch/genjax"), 2.0, note=torch_note),
    ]
    notes.append("FLOPs count the matmuls of an ideal step (module docstring); % peak is against the jnp.dot peak of this run")
    return EntryResult("train_step", "seed chapter PyTorch vs genjax, ms/step (median)", rows, targets, notes)
