"""``mixed_precision``: the image models' train step with float32 vs bfloat16 compute.

``genjax.train.with_compute_dtype(model, "bfloat16")`` runs the convolutions, dense
layers and attention in bfloat16 while parameters, gradients, Adam moments and the
loss heads stay float32 (``docs/scaling.md``). Models: the conv VAE on 28x28x1
(``conv_vae``, features 16/32, hidden 128, latent 16) and the UNet DDPM on 28x28x1
(``ddpm_image``, base 16, channel_mult 1/2). Batch 32, Adam. Repeats alternate float32
and bfloat16; each reports its median ms/step and ``bf16/f32`` their ratio (< 1:
bfloat16 faster).

On CPUs without bfloat16 matrix units XLA converts around each matmul/convolution, so
no gain is expected there; the option is meant for GPUs/TPUs.
"""

from __future__ import annotations

import statistics

import jax
import numpy as np
import optax

from benchmarks.common import EntryResult, Settings, Stepper, block, calibrate, ratio, time_once

BATCH = 32
SHAPE = (28, 28, 1)


def make_models():
    from genjax.diffusion import ddpm_image
    from genjax.vae import conv_vae

    return {
        "conv VAE 28x28": conv_vae(SHAPE, latent_dim=16, features=(16, 32), hidden=128),
        "UNet DDPM 28x28": ddpm_image(SHAPE, base=16, channel_mult=(1, 2), T=1000),
    }


def _stepper(model, dtype, x):
    from genjax.train import TrainState, make_train_step, with_compute_dtype

    m, tx = with_compute_dtype(model, dtype), optax.adam(1e-3)
    state = TrainState.create(m.init(jax.random.PRNGKey(0), x[:2]), tx, jax.random.PRNGKey(1))
    return Stepper(make_train_step(m.loss, tx), state, block(x))


def run(settings: Settings) -> EntryResult:
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(2), 0.5, (BATCH, *SHAPE)), np.float32)
    rows = []
    for name, model in make_models().items():
        runs = {"float32": _stepper(model, None, x), "bfloat16": _stepper(model, "bfloat16", x)}
        n = max(calibrate(r, settings) for r in runs.values())
        times = {k: [] for k in runs}
        for _ in range(settings.repeats):  # alternate the two
            for k, r in runs.items():
                times[k].append(time_once(lambda r=r: r(n)) / n)
        f32, bf16 = (statistics.median(times[k]) for k in ("float32", "bfloat16"))
        rows.append({"model": name, "batch": BATCH, "float32 ms": 1e3 * f32, "bfloat16 ms": 1e3 * bf16,
                     "bf16/f32": ratio(bf16, f32)})
    notes = [
        f"device {jax.devices()[0].platform}: bfloat16 compute, float32 params/grads/Adam; "
        "repeats alternate the two dtypes",
        "a ratio near or above 1 on CPU is expected (no bfloat16 matrix units; XLA converts around each op)",
    ]
    return EntryResult("mixed_precision", "image models' train step, float32 vs bfloat16 compute", rows, [], notes)
