"""``sampling``: wall time and samples/s of the samplers.

- DDPM (2-D residual-MLP denoiser, ``ddpm_2d(T=1000)``): the ``T``-step ancestral
  sampler as one ``lax.scan`` (``model.sample``) against a Python loop over a jitted
  single step (same update: ``p_mean`` + ``beta`` noise, keys and step indices made
  on the device beforehand); then DDIM with 50 steps against DDPM's 1000.
- Throughput of every diffusion sampler at batch 256 (``THROUGHPUT_BATCH``) on 8x8x1
  images (the ``digits`` shape): the MLP-denoiser DDPM (``ddpm_mlp``, T = 1000) with each
  of ``genjax.diffusion.ddpm.SAMPLERS`` at its default steps (network evaluations per
  image from ``sampler_nfe``), and annealed Langevin on the NCSN of the same denoiser;
  images/s = batch / wall time of one jitted ``sample`` call.
- Flows: RealNVP (2-D) sampling; MAF (2-D) sampling; MAF on 64 dimensions, where
  sampling is the sequential inverse (one MADE pass per dimension per layer) and the
  density is one pass: both timed on the same batch.

Parameters are freshly initialised: the time does not depend on what was learned.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.common import EntryResult, Settings, Target, block, measure, ratio
from genjax.diffusion import ddpm_2d, ddpm_mlp
from genjax.diffusion.ddpm import SAMPLERS as DDPM_SAMPLERS
from genjax.diffusion.models import NCSN
from genjax.diffusion.schedules import geometric_sigmas
from genjax.diffusion.objectives import model_log_variance, p_mean
from genjax.flows.constructors import maf, realnvp_2d


#: (row name, constructor, dim); a MAF above 2-D also times its one-pass density
FLOWS = (("RealNVP 2-D", realnvp_2d, 2), ("MAF 2-D", lambda: maf(2), 2), ("MAF 64-D", lambda: maf(64), 64))
QUICK_T = 100
#: the DDPM timed (T steps): the 2-D residual-MLP denoiser at its default widths
make_ddpm = lambda T: ddpm_2d(T=T)


def _timed(fn, settings: Settings) -> float:
    """Median seconds of one call of ``fn()`` (warmed up, blocked)."""
    return measure(lambda n: [fn() for _ in range(n)][-1], settings, warmup=1)["median_s"]


def _row(what: str, steps, batch: int, seconds: float, **extra) -> dict:
    return {"sampler": what, "steps": steps, "batch": batch, "ms": 1e3 * seconds, "samples/s": batch / seconds, **extra}


#: batch and image shape of the per-sampler throughput rows
THROUGHPUT_BATCH = 256
THROUGHPUT_SHAPE = (8, 8, 1)
#: the image DDPM of the throughput rows (T steps)
make_image_ddpm = lambda T: ddpm_mlp(THROUGHPUT_SHAPE, T=T, data_range="unit")


def sampler_throughput(settings: Settings, *, T: int, batch: int) -> list[dict]:
    """One row per sampler: ms per ``sample`` call of ``batch`` images and images/s (see the module docstring)."""
    key = jax.random.PRNGKey(0)
    model = make_image_ddpm(T)
    params = model.init(key, jnp.zeros((8, *model.data_shape)))
    runs = [(name, model.sampler_nfe(name), jax.jit(lambda p, k, name=name: model.sample(p, k, batch, sampler=name)), params)
            for name in DDPM_SAMPLERS]
    ncsn = NCSN(model.network, model.data_shape, geometric_sigmas(1.0, 0.01, 10), data_range="unit",
                steps_per_sigma=10 if settings.quick else 100)
    runs.append(("langevin", ncsn.sigmas.shape[0] * ncsn.steps_per_sigma + 1,
                 jax.jit(lambda p, k: ncsn.sample(p, k, batch)), ncsn.init(key, jnp.zeros((8, *model.data_shape)))))
    rows = []
    for name, nfe, fn, p in runs:
        t = _timed(lambda fn=fn, p=p: fn(p, key), settings)
        label = f"{name}, {'x'.join(map(str, model.data_shape))} MLP {'NCSN' if name == 'langevin' else f'DDPM T={T}'}"
        rows.append(_row(label, "-", batch, t, vs="-", **{"evals/image": nfe}))
    return rows


def python_loop_ddpm(model, params, key, num: int):
    """The DDPM sampler as a Python loop over a jitted step: returns ``run() -> x``
    (keys and step indices are prepared on the device once, outside ``run``)."""
    T, sched = model.num_steps, model.schedule
    log_var = model_log_variance(sched, model.variance)
    shape = (num, *model.data_shape)

    @jax.jit
    def step(x, t_scalar, k):
        t = jnp.full((num,), t_scalar, jnp.int32)
        mean = p_mean(sched, x, t, model.eps(params, x, t))
        std = jnp.where(t_scalar > 0, jnp.exp(0.5 * log_var[t_scalar]), 0.0)
        return mean + std * jax.random.normal(k, shape, x.dtype)

    k0, ks = jax.random.split(key)
    keys = block(list(jax.random.split(ks, T)))
    ts = block([jnp.asarray(t, jnp.int32) for t in range(T - 1, -1, -1)])
    x0 = block(jax.random.normal(k0, shape, jnp.float32))

    def run():
        x = x0
        for t, k in zip(ts, keys):
            x = step(x, t, k)
        return x

    return run


def run(settings: Settings) -> EntryResult:
    quick = settings.quick
    T = QUICK_T if quick else 1000
    n_ddpm, n_flow = (64, 64) if quick else (1000, 1000)
    key = jax.random.PRNGKey(0)
    rows, targets = [], []

    model = make_ddpm(T)
    params = model.init(key, jnp.zeros((8, 2)))
    scan_fn = jax.jit(lambda p, k: model.sample(p, k, n_ddpm, sampler="ddpm"))
    s_ddim = min(50, T)
    ddim_fn = jax.jit(lambda p, k: model.sample(p, k, n_ddpm, sampler="ddim", steps=s_ddim))
    t_scan = _timed(lambda: scan_fn(params, key), settings)
    loop = python_loop_ddpm(model, params, key, n_ddpm)
    t_loop = _timed(loop, settings)
    t_ddim = _timed(lambda: ddim_fn(params, key), settings)
    speed = ratio(t_loop, t_scan)
    rows.append(_row("DDPM 2-D, one lax.scan", T, n_ddpm, t_scan, **{"vs": "-"}))
    rows.append(_row("DDPM 2-D, Python loop of jitted steps", T, n_ddpm, t_loop, **{"vs": f"loop / scan = {speed:.2f}x"}))
    rows.append(_row("DDIM 2-D, one lax.scan", s_ddim, n_ddpm, t_ddim, **{"vs": f"DDPM-{T} / DDIM-{s_ddim} = {t_scan / t_ddim:.1f}x"}))
    targets.append(Target(f"DDPM-{T} scan vs Python loop", speed, 2.0))

    for name, make, dim in FLOWS:
        flow = make()
        fp = flow.init(key, jnp.zeros((8, dim)))
        sample = jax.jit(lambda p, k, flow=flow: flow.sample(p, k, n_flow))
        t_s = _timed(lambda: sample(fp, key), settings)
        extra = {}
        if flow.name == "maf" and dim > 2:  # the sequential inverse against the one-pass density
            x = block(sample(fp, key))
            dens = jax.jit(lambda p, v, flow=flow: flow.log_prob(p, key, v))
            t_d = _timed(lambda: dens(fp, x), settings)
            rows.append(_row(f"{name} log_prob (one pass)", 1, n_flow, t_d, vs="-"))
            extra = {"vs": f"sample / log_prob = {t_s / t_d:.1f}x"}
        rows.append(_row(f"{name} sample", "-", n_flow, t_s, **(extra or {"vs": "-"})))
    rows += sampler_throughput(settings, T=T, batch=8 if quick else THROUGHPUT_BATCH)
    notes = ["DDPM/DDIM: 2-D residual MLP (128,128,128); flows: default sizes, params freshly initialised",
             f"per-sampler rows: 8x8x1 images, residual-MLP denoiser (128,128,128), batch {THROUGHPUT_BATCH}, each sampler "
             "at its default steps ('evals/image' = network evaluations per image; langevin: 10 noise levels x 100 steps + "
             "the final denoising step); samples/s = images/s"]
    return EntryResult("sampling", "sampler wall time and samples/s", rows, targets, notes)
