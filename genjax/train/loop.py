"""``fit``: the training loop every family uses.

One root key per run is split once per purpose (``init``, ``data``, ``train``,
``eval``). Step ``s`` uses ``fold_in(train_key, s)``; batches come from the
``data`` key and the epoch. Steps run ``steps_per_dispatch`` at a time inside one
``lax.scan``; chunk boundaries sit at absolute step numbers (multiples of
``steps_per_dispatch`` and every log / eval / checkpoint point), so a run resumed
from a checkpoint executes exactly the same computations as the uninterrupted
run and ends with bit-identical parameters.

Order at a stopping point: metrics are logged, evaluation runs, then the
checkpoint is written. A checkpoint at step ``s`` thus implies every metrics line
up to ``s`` is on disk; on resume, lines after the restored step are dropped, so
the log never holds duplicated or missing steps.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pathlib
import shutil
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import _checks
from genjax.data.pipeline import BatchSampler
from genjax.train import distributed as _distributed
from genjax.train import sharding as _sharding
from genjax.train.checkpoint import Checkpointer
from genjax.train.precision import canonical_dtype, with_compute_dtype
from genjax.train.state import TrainState, raw_key, state_step
from genjax.train.adversarial import is_adversarial, make_adversarial_step
from genjax.train.step import Transform, make_multi_step, make_train_step, with_transform
from genjax.types import Params, PRNGKeyArray

EvalFn = Callable[[Params, PRNGKeyArray], Mapping[str, Any]]


class NonFiniteError(FloatingPointError):
    """Training produced a NaN/Inf loss or gradient."""


@dataclasses.dataclass
class FitResult:
    """What ``fit`` returns.

    ``state``: the final ``TrainState``; with ``seeds`` every leaf has a leading axis of
    size ``num_seeds`` (``seed_state(i)`` is seed ``i``'s). ``history``: the metric
    records (with ``seeds``, one per seed per step, each with its ``seed`` index).
    ``diverged``: per seed (an ``(S,)`` bool array with ``seeds``, else a bool), True when
    a non-finite update was applied (``on_nonfinite="continue"``) or the final parameters
    are not finite. ``wall_time_s``: this call's seconds. ``train_time_s``: the run's
    seconds over every call that trained it: this call's plus, when it resumed, those
    recorded with the checkpoint it resumed from (``train_time.json`` in ``out_dir``, one
    entry per kept checkpoint; a resume past an interruption thus counts the time up to
    the last checkpoint of every earlier call). A call that ends on its final checkpoint
    reports the seconds recorded with it; one that finds the run finished trains nothing
    and adds nothing: restoring a run never changes its train time.
    """

    state: TrainState
    history: list[dict]
    out_dir: pathlib.Path | None
    resumed_from: int | None
    wall_time_s: float
    num_seeds: int | None = None
    diverged: Any = False
    train_time_s: float = 0.0

    def seed_state(self, i: int) -> TrainState:
        """Seed ``i``'s ``TrainState`` of a multi-seed run."""
        if self.num_seeds is None:
            raise ValueError("seed_state: this run was trained without seeds=; use result.state")
        if not 0 <= i < self.num_seeds:
            raise ValueError(f"seed index must be in [0, {self.num_seeds}), got {i}")
        return jax.tree_util.tree_map(lambda a: a[i], self.state)

    def curves(self, kind: str = "train", metric: str = "loss") -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{seed: (steps, values)}`` of ``metric`` in the ``kind`` records (seed 0 only without seeds)."""
        return _curves(self.history, kind, metric)


def _curves(history, kind, metric):
    out: dict[int, tuple[list, list]] = {}
    for r in history:
        if r.get("kind") == kind and metric in r:
            s, v = out.setdefault(int(r.get("seed", 0)), ([], []))
            s.append(r["step"])
            v.append(float(r[metric]))
    return {i: (np.asarray(a), np.asarray(b, np.float64)) for i, (a, b) in sorted(out.items())}


#: The purposes of a run's keys (see :func:`split_run_key`).
RUN_KEYS = ("init", "data", "train", "eval")


def split_run_key(seed_or_key) -> dict[str, jax.Array]:
    """The run's keys by purpose: ``init``, ``data``, ``train``, ``eval`` (a dict of
    them is returned as it is, as raw keys)."""
    if isinstance(seed_or_key, Mapping):
        return {k: raw_key(seed_or_key[k]) for k in RUN_KEYS}
    if isinstance(seed_or_key, (int, np.integer)):
        key = jax.random.PRNGKey(int(seed_or_key))
    else:
        key = raw_key(seed_or_key)
    k = jax.random.split(key, 4)
    return {"init": k[0], "data": k[1], "train": k[2], "eval": k[3]}


def seed_keys(seed: int | jax.Array, num_seeds: int) -> list[jax.Array]:
    """The run keys of ``fit(..., seed=seed, seeds=num_seeds)``: seed ``i`` is
    ``fold_in(PRNGKey(seed), i)`` (``fold_in(seed, i)`` for a key), so ``fit(seed=keys[i])``
    trains seed ``i`` alone."""
    num_seeds = _checks.positive_int("seeds", num_seeds)
    base = jax.random.PRNGKey(int(seed)) if isinstance(seed, (int, np.integer)) else raw_key(seed)
    return [jax.random.fold_in(base, i) for i in range(num_seeds)]


def _check_seed(name: str, seed) -> None:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return
    if isinstance(seed, Mapping):
        if set(seed) != set(RUN_KEYS):
            raise ValueError(f"{name} as a dict must hold exactly the keys {list(RUN_KEYS)}, got {sorted(seed)}")
        for k in RUN_KEYS:
            _check_seed(f"{name}[{k!r}]", seed[k])
        return
    if isinstance(seed, bool) or not hasattr(seed, "dtype") or not (
        jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) or (seed.dtype == np.uint32 and np.shape(seed) == (2,))
    ):
        raise ValueError(f"{name} must be an int or a PRNG key (jax.random.key / PRNGKey), got {seed!r}")


def _seed_list(seed, seeds) -> list:
    """The run key (or int seed) of every seed; ``[seed]`` without ``seeds``."""
    _check_seed("seed", seed)
    if seeds is None:
        return [seed]
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if isinstance(seed, Mapping):
            raise ValueError("seeds=S needs seed to be an int or a key (the base of the S seeds), not a dict of run keys")
        return seed_keys(seed, seeds)
    if isinstance(seeds, (str, bytes, bool)) or not hasattr(seeds, "__len__") or len(seeds) == 0:
        raise ValueError(f"seeds must be a positive int or a non-empty sequence of int seeds / PRNG keys, got {seeds!r}")
    out = list(seeds)
    for i, s in enumerate(out):
        _check_seed(f"seeds[{i}]", s)
    return out


def _stack(trees):
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def make_step(model, optimizer, *, transform: Transform | None = None, ema_decay: float | None = None,
              skip_nonfinite: bool = False):
    """The un-jitted ``step(state, batch) -> (state, metrics)`` that ``fit`` trains ``model`` with.

    A model with its own ``make_train_step(optimizer, *, transform, ema_decay,
    skip_nonfinite)`` gets that; a two-player model (``d_loss`` and ``g_loss``, see
    :class:`~genjax.types.AdversarialModel`) gets
    :func:`~genjax.train.adversarial.make_adversarial_step`; any other model
    :func:`make_train_step` of ``with_transform(model.loss, transform)``. Both steps share
    one update (:func:`genjax.train.step.apply_update`). ``jax.vmap`` of this step over
    stacked states is what ``fit(..., seeds=S)`` scans.
    """
    if hasattr(model, "make_train_step"):  # models with their own update rule
        return model.make_train_step(optimizer, transform=transform, ema_decay=ema_decay, skip_nonfinite=skip_nonfinite)
    if is_adversarial(model):
        return make_adversarial_step(model, optimizer, transform=transform, ema_decay=ema_decay, skip_nonfinite=skip_nonfinite)
    return make_train_step(with_transform(model.loss, transform), optimizer, ema_decay=ema_decay,
                           skip_nonfinite=skip_nonfinite, jit=False)


def _host_data(train_data):
    """``train_data`` as host arrays (an array or a dict / pytree of arrays of one length), checked."""
    if train_data is None or (isinstance(train_data, Mapping) and not train_data):
        raise ValueError(f"train_data must be an array or a dict of arrays, got {train_data!r}")
    tree = jax.tree_util.tree_map(np.asarray, train_data)
    lengths = {}
    for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "train_data" + jax.tree_util.keystr(path)
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
        if a.ndim < 1 or len(a) == 0:
            raise ValueError(f"{name} must be a non-empty array of examples, got shape {a.shape}")
        _checks.finite(name, a)  # all of it: a NaN outside the first batch surfaces only mid-run
        lengths[name] = len(a)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"train_data's arrays must hold the same number of examples, got {lengths}")
    return tree, next(iter(lengths.values()))


def _make_draw(sample, batch_size: int):
    """``draw(data_keys (S, 2), start, count) -> (count, S, batch_size, ...)``: the batch of
    step ``s`` of seed ``i`` is ``sample(fold_in(data_keys[i], s), batch_size)``."""

    @jax.jit
    def steps(keys, start, offsets):
        def one(key, s):
            return sample(jax.random.fold_in(key, s), batch_size)

        per_seed = jax.vmap(lambda k: jax.vmap(lambda o: one(k, start + o))(offsets))(keys)  # (S, K, b, ...)
        return jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), per_seed)

    return lambda keys, start, count: steps(keys, jnp.asarray(start, jnp.uint32), jnp.arange(count, dtype=jnp.uint32))


def _device_take(tree, idx):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a[idx]), tree)


def _to_host(tree):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _jsonable(v):
    v = np.asarray(v)
    if v.dtype == bool:
        return bool(v) if v.ndim == 0 else v.tolist()
    if v.ndim == 0 and np.issubdtype(v.dtype, np.integer):
        return int(v)
    if v.ndim == 0:
        f = float(v)
        return f if math.isfinite(f) else str(f)
    return v.tolist()


class MetricsLog:
    """Append-only JSONL file of metric records, each with an integer ``step``."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drops records after ``step`` (atomically, via a temporary file)."""
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from an interrupted write
            if rec.get("step", 0) <= step:
                keep.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(l + "\n" for l in keep))
        os.replace(tmp, self.path)

    def append(self, records: list[dict]) -> None:
        """Appends ``records`` as one write, flushed and fsynced. A failed write (disk
        full) raises ``OSError`` naming the file; a torn last line it may leave is
        dropped by ``truncate_after`` on resume."""
        if not records:
            return
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        try:
            with open(self.path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            err = OSError(f"could not append step {records[0].get('step')} to the metrics log {self.path}: {e}")
            err.errno = e.errno
            raise err from e

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]


def _check_writable(out_dir: pathlib.Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{jax.process_index()}-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"out_dir {str(out_dir)!r} is not writable: {e}") from e


def _check_like(name: str, tree, expected) -> None:
    """Raises unless ``tree`` has ``expected``'s structure, shapes and dtypes (e.g. params of another model)."""
    def leaves(t):
        return {jax.tree_util.keystr(p): (tuple(np.shape(v)), str(jnp.result_type(v)))
                for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}

    got, want = leaves(tree), leaves(expected)
    if got == want:
        return
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    differ = [f"{k}: {got[k]} vs expected {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    detail = "; ".join(
        x for x in (
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {extra[:3]}" if extra else "",
            f"shape/dtype {differ[:3]}" if differ else "",
        ) if x
    )
    raise ValueError(f"{name} do not match this model's parameters (from another model?): {detail}")


def _state_nbytes(state) -> int:
    return int(sum(np.asarray(l).nbytes for l in jax.tree_util.tree_leaves(state)))


def _check_free_space(out_dir: pathlib.Path, state, copies: int) -> None:
    """Fails before training when ``out_dir``'s file system cannot hold ``copies`` checkpoints."""
    need = copies * _state_nbytes(state) + (1 << 20)  # + room for metadata and the metrics log
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"out_dir {str(out_dir)!r} has {free} bytes free; the checkpoints of this run need about {need} bytes "
            f"({copies} copies of a {_state_nbytes(state)}-byte train state, plus 1 MiB): free space or choose another out_dir",
        )


#: The file in ``out_dir`` that records the run's seconds at each kept checkpoint.
TRAIN_TIME_FILE = "train_time.json"


def _read_train_time(out: pathlib.Path, step: int) -> float:
    """The run's seconds recorded with the checkpoint at ``step`` (0 when none was: a run
    directory from before the record existed, or a torn file)."""
    try:
        return float(json.loads((out / TRAIN_TIME_FILE).read_text())[str(step)])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _write_train_time(out: pathlib.Path, steps: list[int], step: int, seconds: float) -> None:
    """Records ``seconds`` for the checkpoint at ``step``, keeping the entries of the kept
    checkpoints ``steps`` (atomically, via a temporary file)."""
    path = out / TRAIN_TIME_FILE
    try:
        times = json.loads(path.read_text())
    except (OSError, ValueError):
        times = {}
    times = {k: v for k, v in times.items() if k.isdigit() and int(k) in steps and int(k) < step}
    times[str(step)] = round(seconds, 3)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(times))
    os.replace(tmp, path)


def _stops(start: int, end: int, intervals: list[int]) -> list[int]:
    """Absolute step numbers in (start, end] where a chunk must end."""
    points = {end}
    for n in intervals:
        if n:
            points.update(range((start // n + 1) * n, end, n))
    return sorted(p for p in points if start < p <= end)


def fit(
    model,
    train_data: np.ndarray,
    *,
    num_steps: int,
    batch_size: int,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    seed: int | jax.Array = 0,
    seeds: int | Sequence[int | jax.Array] | None = None,
    sampler=None,
    out_dir: str | os.PathLike | None = None,
    transform: Transform | None = None,
    eval_fn: EvalFn | None = None,
    log_every: int = 100,
    eval_every: int | None = None,
    checkpoint_every: int | None = 1000,
    steps_per_dispatch: int = 100,
    ema_decay: float | None = None,
    on_nonfinite: str = "raise",
    resume: bool = False,
    data_on_device: bool = True,
    max_to_keep: int = 3,
    progress: bool = True,
    init_params: Params | None = None,
    mesh: jax.sharding.Mesh | None = None,
    compute_dtype: Any = None,
    on_chunk: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Trains ``model`` (any object with the model API) on ``train_data``.

    Args:
      model: has ``init(key, batch)`` and ``loss(params, key, batch)``; optionally
        ``check_batch(batch)``, which ``fit`` calls on the first (transformed) batch
        before any work. A model with its own update rule (two-player GANs) instead
        provides ``make_train_step(optimizer, *, transform, ema_decay, skip_nonfinite)``
        returning an un-jitted ``step(state, batch) -> (state, metrics)`` with the
        same contract as ``make_train_step`` (metrics include ``loss`` and ``finite``);
        ``optimizer`` is then whatever that model expects (its ``init(params)`` builds
        ``state.opt_state``).
      train_data: ``(n, *data_shape)`` array, held on the host (numpy), or a dict (any
        pytree) of such arrays with one ``n``, e.g. ``{"x": images, "y": labels}``: each
        batch is then the same dict of ``batch_size`` rows. Or a sampling function
        ``sample(key, num) -> batch`` (jax-traceable, e.g. a toy density's ``sample``) for
        fresh data at every step: step ``s``'s batch is
        ``sample(fold_in(data_key, s), batch_size)``, whatever the chunking.
      num_steps: total number of optimizer steps of the run (a resumed run stops
        at the same total).
      batch_size: examples per step.
      optimizer: an optax optimizer; default ``optax.adam(learning_rate)``.
      seed: int seed or PRNG key of the run (with ``seeds=S``: the base of the S seeds),
        split by :func:`split_run_key`; or the run's keys by purpose themselves, a dict
        ``{"init", "data", "train", "eval"}`` of PRNG keys (as ``split_run_key`` returns).
      seeds: train several independent runs at once: an int ``S`` (seed ``i``'s run key
        is ``fold_in(PRNGKey(seed), i)``, see :func:`seed_keys`) or a sequence of int
        seeds / PRNG keys (seed ``i`` uses ``seeds[i]``). The train states are stacked on a
        leading axis and the step is ``jax.vmap``-ped over it: seed ``i`` gets the keys,
        batches and chunks of ``fit(..., seed=<its key>)`` alone and ends with the same
        parameters (to floating-point rounding of the batched ops). One checkpoint holds
        the stacked state; resume works as for one seed. Metric records are one per seed
        with a ``seed`` field (its index); ``eval_fn`` is called per seed with that seed's
        parameters and eval key. Non-finite steps are handled per seed: "raise" names the
        seed and step, "skip" counts ``skipped_updates`` per seed, "continue" flags the
        seed in ``FitResult.diverged`` and the others train on. Not with ``mesh``.
      sampler: the batch order: an object with ``indices(step) -> (batch_size,)`` and
        ``indices_for(start, count) -> (count, batch_size)`` row indices of ``train_data``
        (what :class:`genjax.data.pipeline.BatchSampler` has); default
        ``BatchSampler(<the run's data key>, n, batch_size)``. One seed only.
      out_dir: run directory for ``metrics.jsonl``, ``checkpoints/`` and
        ``train_time.json`` (the run's seconds at each kept checkpoint, for
        ``FitResult.train_time_s`` across resumes); None keeps everything in memory.
      transform: ``transform(key, batch) -> batch`` applied inside the step
        (e.g. ``genjax.data.dynamic_binarize``).
      eval_fn: ``eval_fn(params, key) -> dict`` run every ``eval_every`` steps and at
        the end; the EMA parameters are passed when EMA is on.
      log_every: steps between metric records (each the mean over its window; with
        ``on_nonfinite="skip"``, over the window's applied updates: ``"nan"`` if none was).
      checkpoint_every: steps between checkpoints (one is always written at the end).
      steps_per_dispatch: steps fused in one ``lax.scan`` per host dispatch (for a
        convolutional step on CPU: one Python loop of jitted steps per chunk, see
        :func:`genjax.train.make_multi_step`'s ``loop='auto'``).
      ema_decay: keep an exponential moving average of the parameters.
      on_nonfinite: "raise" stops with ``NonFiniteError`` naming the step (the last
        checkpoint stays the last good one); "skip" drops such updates and counts them
        (``skipped_updates`` in the train records); "continue" applies them as they are
        (the parameters may become NaN), counts them (``nonfinite_steps``) and marks the
        seed in ``FitResult.diverged``: for many seeds, where one diverged seed is a
        result, not a reason to stop the others.
      resume: continue from the newest checkpoint in ``out_dir``. Without it, an
        ``out_dir`` that already holds checkpoints is an error (nothing is overwritten).
      data_on_device: copy ``train_data`` to the device once and gather batches there.
      init_params: start from these parameters instead of ``model.init`` (with
        ``seeds``: one tree, the start of every seed).
      mesh: data-parallel training on this ``jax.sharding.Mesh`` (see
        ``genjax.train.sharding``): each batch is split along the mesh's ``"data"``
        axis, the train state is replicated. ``batch_size`` must be divisible by the
        ``"data"`` axis size. Batches, keys and chunks are those of the run without a
        mesh, so the result matches it to floating-point rounding (sums are reduced
        in another order), and checkpoints are interchangeable between the two
        (a run may be resumed with or without a mesh, or on another one). With several
        processes (:func:`genjax.train.distributed.initialize`) a mesh over the devices
        of every process is required (``data_mesh()``); every process calls ``fit`` with
        the same arguments and the full ``train_data``, computes the same global batch
        indices and feeds its own devices their slice of that batch, so the run equals
        the one-process run to rounding and may be resumed on any number of processes.
        Checkpoints are written once (orbax coordinates the processes); only process 0
        writes ``metrics.jsonl``, ``train_time.json`` and the curves. A process that dies
        makes the others raise :class:`~genjax.train.distributed.DistributedError`.
        The returned state stays on the mesh (replicated); ``eval_fn`` receives
        host-copied parameters on the default device. ``None``: one device.
      compute_dtype: ``"bfloat16"`` for mixed precision: the model's networks compute
        in bfloat16 while parameters, optimizer state and losses stay float32 (see
        ``genjax.train.precision.with_compute_dtype``; needs networks with a ``dtype``
        attribute, e.g. the conv VAE and the UNet models). ``None``: float32.

      on_chunk: ``on_chunk(step, metrics)`` after every chunk (dispatch): ``step`` reached
        and the chunk's per-step metrics as host arrays, ``(K,)`` each (``(K, S)`` with
        seeds), ``finite`` included; e.g. a caller's progress bar or every step's loss.

    Returns:
      ``FitResult`` with the final state and the metric records.

    Raises:
      ValueError: bad arguments or data (before any training).
      NonFiniteError: a NaN/Inf loss or gradient with ``on_nonfinite="raise"``.
    """
    t_start = time.perf_counter()
    num_steps = _checks.positive_int("num_steps", num_steps)
    batch_size = _checks.positive_int("batch_size", batch_size)
    log_every = _checks.positive_int("log_every", log_every)
    steps_per_dispatch = _checks.positive_int("steps_per_dispatch", steps_per_dispatch)
    if eval_every is not None:
        _checks.positive_int("eval_every", eval_every)
    if checkpoint_every is not None:
        _checks.positive_int("checkpoint_every", checkpoint_every)
    _checks.one_of("on_nonfinite", on_nonfinite, ("raise", "skip", "continue"))
    if ema_decay is not None and (isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0.0 <= ema_decay < 1.0):
        raise ValueError(f"ema_decay must be a number in [0, 1) or None, got {ema_decay!r}")
    max_to_keep = _checks.positive_int("max_to_keep", max_to_keep)
    run_seeds = _seed_list(seed, seeds)
    multi = seeds is not None
    num_seeds = len(run_seeds)
    if multi and mesh is not None:
        raise ValueError("seeds and mesh cannot be combined: train several seeds on one device, or one seed on a mesh")
    stream = callable(train_data)
    if stream:
        if sampler is not None:
            raise ValueError("sampler= orders the rows of an array; this train_data is a sampling function")
        draw = _make_draw(train_data, batch_size)
    else:
        train_data, num_examples = _host_data(train_data)
        if batch_size > num_examples:
            raise ValueError(f"batch_size={batch_size} is larger than train_data ({num_examples} examples)")
    if sampler is not None:
        if multi:
            raise ValueError("sampler= sets the batch order of one run; it cannot be combined with seeds")
        if not (callable(getattr(sampler, "indices", None)) and callable(getattr(sampler, "indices_for", None))):
            raise ValueError(f"sampler must have indices(step) and indices_for(start, count) (like BatchSampler), got {sampler!r}")
    if optimizer is None:
        optimizer = optax.adam(_checks.positive_float("learning_rate", learning_rate))
    if mesh is not None:
        _sharding.check_batch_size(batch_size, _sharding.check_mesh(mesh))
    _distributed.check_mesh_processes(mesh)
    train_model = with_compute_dtype(model, canonical_dtype(compute_dtype))
    main_process = _distributed.is_primary()  # with several processes, only process 0 writes the log

    keys = [split_run_key(s) for s in run_seeds]
    if stream:
        data_keys = jnp.stack([k["data"] for k in keys])
        firsts = [jax.tree_util.tree_map(lambda a: a[0, 0], draw(data_keys[i : i + 1], 0, 1)) for i in range(num_seeds)]
    else:
        samplers = [BatchSampler(k["data"], num_examples, batch_size) for k in keys] if sampler is None else [sampler]
        firsts = [_device_take(train_data, s.indices(0)) for s in samplers]
    # the model is checked and initialised on the first batch as its step sees it: transformed
    # (e.g. one caption picked of K per image); initialisation depends on shapes only
    seen = (lambda b: transform(jax.random.PRNGKey(0), b)) if transform is not None else (lambda b: b)
    firsts = [seen(f) for f in firsts]
    first = checked = firsts[0]
    if hasattr(model, "check_batch"):
        model.check_batch(checked, name="train_data")
    else:
        for path, leaf in jax.tree_util.tree_flatten_with_path(checked)[0]:
            _checks.finite("train_data" + jax.tree_util.keystr(path), leaf)

    out = pathlib.Path(out_dir) if out_dir is not None else None
    ckpt = log = None
    if out is not None:
        _check_writable(out)
        ckpt = Checkpointer(out / "checkpoints", max_to_keep=max_to_keep)
        log = MetricsLog(out / "metrics.jsonl") if main_process else None
        if ckpt.steps() and not resume:
            ckpt.close()
            raise ValueError(
                f"out_dir {str(out)!r} already holds a run (checkpoints at steps {ckpt.steps()}); "
                "pass resume=True to continue it or choose another out_dir"
            )

    if init_params is not None:
        _check_like("init_params", init_params, jax.eval_shape(model.init, keys[0]["init"], first))
    states = [
        TrainState.create(model.init(k["init"], f) if init_params is None else init_params, optimizer, k["train"],
                          ema=ema_decay is not None)
        for k, f in zip(keys, firsts)
    ]
    state = _stack(states) if multi else states[0]
    del states
    resumed_from = None
    if ckpt is not None:
        try:
            _check_free_space(out, state, max_to_keep + 1)
            restored = ckpt.restore_latest(state) if resume else None
        except BaseException:
            ckpt.close()
            raise
    time_before = 0.0  # the run's seconds before this call (those of the checkpoint resumed from)
    if ckpt is not None and resume:
        if restored is not None:
            state, resumed_from = restored, state_step(restored)
            time_before = _read_train_time(out, resumed_from)
            if log is not None:
                log.truncate_after(resumed_from)
        elif log is not None and log.path.exists():
            log.truncate_after(0)  # no checkpoint: start over with a clean log
    elif log is not None and log.path.exists():
        log.truncate_after(0)
    if mesh is not None:  # checkpoints are restored as single-device arrays, then replicated
        state = _sharding.replicate(state, mesh)

    skip = on_nonfinite == "skip"
    step_fn = make_step(train_model, optimizer, transform=transform, ema_decay=ema_decay, skip_nonfinite=skip)
    if multi:  # one step of every seed: batches (S, b, ...) against stacked states
        step_fn = jax.vmap(step_fn)
    if mesh is not None:
        multi_step = _sharding.make_sharded_multi_step(step_fn, mesh)
        if stream:
            pass
        elif data_on_device:  # a full copy per device; each dispatch gathers a stack split along the batch
            device_data = _sharding.replicate(train_data, mesh)
            take_sharded = _sharding.make_sharded_gather(mesh)
            gather = lambda idx: take_sharded(device_data, idx)
        else:
            gather = lambda idx: _sharding.shard_rows(train_data, idx, mesh)  # each process: its own rows
    else:
        multi_step = make_multi_step(step_fn)
        if stream:
            pass
        elif data_on_device:
            device_data = jax.tree_util.tree_map(jnp.asarray, train_data)  # an argument, never baked in as a constant
            take = jax.jit(lambda data, idx: jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), data))
            gather = lambda idx: take(device_data, idx)
        else:
            gather = lambda idx: _device_take(train_data, idx)

    start = state_step(state)
    history = log.read() if log is not None else []
    # per-seed counters of non-finite steps, carried over a resume from the last train records
    count_name = {"skip": "skipped_updates", "continue": "nonfinite_steps"}.get(on_nonfinite)
    counts = np.zeros(num_seeds, np.int64)
    if count_name is not None:
        for r in history:
            if r.get("kind") == "train" and count_name in r:
                counts[int(r.get("seed", 0))] = int(r[count_name])
    if start >= num_steps:
        _write_curves(out, history, main_process)
        elapsed = time.perf_counter() - t_start
        return FitResult(state, history, out, resumed_from, elapsed, num_seeds if multi else None,
                         _diverged(state, counts, on_nonfinite, multi), time_before)  # no step trained here

    stops = _stops(start, num_steps, [steps_per_dispatch, log_every, eval_every or 0, checkpoint_every or 0])
    bar = _progress(progress and main_process, start, num_steps)
    window: list[dict] = []
    applied: list[np.ndarray] = []  # per chunk, (K, S): which steps' updates were applied
    step = start
    saved_at = (start, time_before)  # (step, the run's seconds) of the last checkpoint written

    def indices(at: int, count: int) -> np.ndarray:
        if not multi:
            return samplers[0].indices_for(at, count)
        return np.stack([s.indices_for(at, count) for s in samplers], axis=1)  # (K, S, b)

    def batches_for(at: int, count: int):
        if not stream:
            return gather(indices(at, count))
        b = draw(data_keys, at, count)  # (K, S, b, ...)
        if not multi:
            b = jax.tree_util.tree_map(lambda a: a[:, 0], b)
        return _sharding.shard_batch(b, mesh, stacked=True) if mesh is not None else b

    try:
        for stop in stops:
            count = stop - step
            with _distributed.collective_errors(f"steps {step + 1}..{stop}"):
                batches = batches_for(step, count)
                state, metrics = multi_step(state, batches)
                metrics = _to_host(metrics)
            if not multi:  # one column per seed: (K, S)
                metrics = {k: v[:, None] for k, v in metrics.items()}
            finite = metrics.pop("finite")
            if not finite.all():
                if on_nonfinite == "raise":
                    bad_step, bad_seed = (int(i) for i in np.argwhere(~finite)[0])
                    names = [k for k, v in metrics.items() if not np.isfinite(v[bad_step, bad_seed])]
                    last = ckpt.steps()[-1] if ckpt is not None and ckpt.steps() else None
                    where = f"step {step + bad_step}" + (f" of seed {bad_seed}" if multi else "")
                    raise NonFiniteError(
                        f"non-finite value at {where}: {', '.join(names) or 'gradients'} "
                        f"= {[_jsonable(metrics[k][bad_step, bad_seed]) for k in names]}; "
                        + (f"last good checkpoint is step {last} in {ckpt.directory}" if last is not None else "no checkpoint was written")
                    )
                counts += (~finite).sum(axis=0)
            window.append(metrics)
            applied.append(finite if skip else np.ones_like(finite))
            step = stop
            if on_chunk is not None:
                on_chunk(step, {"finite": finite if multi else finite[:, 0],
                                **{k: (v if multi else v[:, 0]) for k, v in metrics.items()}})
            if bar is not None:
                bar.update(count)
                bar.set_postfix(loss=f"{float(np.mean(metrics['loss'][-1])):.4g}")
            records = []
            if step % log_every == 0 or step == num_steps:
                merged = {k: np.concatenate([w[k] for w in window]) for k in window[0]}
                ok_steps = np.concatenate(applied)
                for i in range(num_seeds):
                    rec = {"step": step, "kind": "train", **({"seed": i} if multi else {})}
                    # the window's mean over the updates applied ("skip": a dropped update's
                    # non-finite loss would make the record inf; its count is skipped_updates)
                    ok = ok_steps[:, i]
                    rec.update({k: _jsonable(np.mean(v[ok, i]) if ok.any() else np.nan) for k, v in merged.items()})
                    if count_name is not None:
                        rec[count_name] = int(counts[i])
                    records.append(rec)
                window, applied = [], []
            if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == num_steps):
                all_params = state.ema_params if state.ema_params is not None else state.params
                if mesh is not None:
                    all_params = jax.tree_util.tree_map(jnp.asarray, _sharding.to_local(all_params))
                for i in range(num_seeds):
                    eval_params = jax.tree_util.tree_map(lambda a: a[i], all_params) if multi else all_params
                    ev = eval_fn(eval_params, jax.random.fold_in(keys[i]["eval"], step))
                    records.append({"step": step, "kind": "eval", **({"seed": i} if multi else {}),
                                    **{k: _jsonable(v) for k, v in ev.items()}})
            history.extend(records)
            if log is not None:
                log.append(records)
            if ckpt is not None and ((checkpoint_every and step % checkpoint_every == 0) or step == num_steps):
                ckpt.save(state)
                saved_at = (step, round(time_before + time.perf_counter() - t_start, 3))  # as recorded
                if main_process:
                    _write_train_time(out, ckpt.steps(), step, saved_at[1])
    finally:
        if bar is not None:
            bar.close()
        if ckpt is not None:
            ckpt.close()
    _write_curves(out, history, main_process)
    elapsed = time.perf_counter() - t_start
    # a run that ends on a checkpoint reports the seconds recorded with it, as a later restore
    # of that checkpoint does (not the checkpoint's closing and the curves written after it)
    train_time = saved_at[1] if ckpt is not None and saved_at[0] == step else time_before + elapsed
    return FitResult(state, history, out, resumed_from, elapsed, num_seeds if multi else None,
                     _diverged(state, counts, on_nonfinite, multi), train_time)


def _diverged(state, counts, on_nonfinite, multi):
    """Per seed: a non-finite update was applied, or the final parameters are not finite."""
    n = len(counts)
    ok = np.ones(n, bool)
    for a in jax.tree_util.tree_leaves(_sharding.to_local(state.params)):
        ok &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    bad = ~ok | ((counts > 0) if on_nonfinite == "continue" else False)
    return bad if multi else bool(bad[0])


#: The file ``fit`` draws its curves to in ``out_dir`` (redrawn by ``genjax plot RUN``).
CURVES_FILE = "curves.png"


def _write_curves(out, history, main_process) -> None:
    """``out/curves.png`` from the run's records; a failure to draw warns and never loses the run."""
    if out is None or not main_process or not history:
        return
    from genjax import viz

    try:
        viz.save_curves(out / CURVES_FILE, history)
    except Exception as e:  # the run is trained and checkpointed; a picture must not fail it
        warnings.warn(f"could not draw {out / CURVES_FILE}: {type(e).__name__}: {e}", stacklevel=3)


def _progress(enabled: bool, start: int, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=True)


def restore_params(out_dir: str | os.PathLike, model, example_batch, *, optimizer=None, ema: bool | None = None,
                   seeds: int | None = None, transform: Transform | None = None):
    """The newest checkpoint's ``TrainState`` of a run directory, for sampling / evaluation.

    Needs the model (to build the structure to restore into) and an example batch (of the
    training data; ``transform``: the run's, applied to it as ``fit`` does before it
    initialises); a run trained with ``seeds=S`` needs ``seeds=S`` (the state is the stacked one).
    """
    if transform is not None:
        example_batch = transform(jax.random.PRNGKey(0), example_batch)
    out = pathlib.Path(out_dir)
    ckpt = Checkpointer(out / "checkpoints")
    try:
        if not ckpt.steps():
            raise FileNotFoundError(f"no checkpoint in {str(out / 'checkpoints')!r}")
        tx = optimizer if optimizer is not None else optax.adam(1e-3)
        if seeds is not None:
            _checks.positive_int("seeds", seeds)

        def structure():
            like = TrainState.create(model.init(jax.random.PRNGKey(0), example_batch), tx, jax.random.PRNGKey(0),
                                     ema=bool(ema))
            return like if seeds is None else _stack([like] * seeds)

        # shapes only (nothing runs): an eager init compiles every op of the network (a minute
        # for the ldm's three networks on a busy 2-core CPU), and the checkpoint holds the values.
        # Placed on this process's first device: without a sharding, orbax would use the saved
        # one (e.g. a mesh over several processes) and refuse this topology.
        here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return ckpt.restore_latest(jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=here),
                                                          jax.eval_shape(structure)))
    finally:
        ckpt.close()
