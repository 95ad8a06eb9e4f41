"""Data-parallel training on a ``jax.sharding.Mesh``.

The batch is split along the mesh axis named ``"data"``; the train state (params,
optimizer state, key, EMA) is replicated on every device. The step itself is the
ordinary, un-jitted step of :func:`genjax.train.make_train_step` (or a model's own
two-player step): it is compiled once with ``jax.jit(in_shardings=...,
out_shardings=...)`` and XLA's SPMD partitioner inserts the cross-device reductions
(the mean of the loss, hence of the gradients, over the global batch). The
computation is therefore the same function of the global batch as on one device;
only the order of floating-point sums differs (per-shard partial sums, then an
all-reduce), so losses and parameters agree to rounding, not bit for bit.

Every array placed on the mesh is built with ``jax.make_array_from_callback`` from
a host (numpy) value that every process holds in full: each process only copies
the slices its own devices need. This works unchanged with several processes
(``jax.distributed.initialize()``), as long as every process computes the same
global value (same data, same seed); see ``docs/scaling.md``.

Other mesh axes (e.g. a ``"model"`` axis) are allowed: the batch is split along
``"data"`` only and replicated along the others, and the state is replicated.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from genjax import _checks
from genjax.train.step import StepFn

#: Name of the mesh axis the batch is split along.
DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None, *, devices: Sequence[jax.Device] | None = None,
              explicit: bool = True, name: str = "num_devices") -> Mesh:
    """A 1-D mesh with the single axis ``"data"`` over the first ``num_devices`` devices.

    Args:
      num_devices: how many devices (default: all of ``devices``).
      devices: the devices to choose from (default ``jax.devices()``, i.e. every
        process's devices when running multi-host).
      explicit: make the axis ``AxisType.Explicit`` (JAX's explicit-sharding mode:
        shardings are part of array types and propagate through ``jax.numpy``) rather
        than ``AxisType.Auto`` (the compiler chooses intermediate shardings).
      name: how errors call ``num_devices`` (e.g. ``"--devices"``).

    On CPU, several devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
    set before JAX is imported.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices) if num_devices is None else _checks.positive_int(name, num_devices)
    if n > len(devices):
        raise ValueError(
            f"{name}={n} but only {len(devices)} device(s) are available ({devices[0].platform}); on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before JAX is imported"
        )
    axis_type = AxisType.Explicit if explicit else AxisType.Auto
    return Mesh(np.asarray(devices[:n]), (DATA_AXIS,), axis_types=(axis_type,))


def check_mesh(mesh: Any, *, name: str = "mesh") -> Mesh:
    """Returns ``mesh`` if it is a ``jax.sharding.Mesh`` with a ``"data"`` axis, else raises ``ValueError``."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"{name} must be a jax.sharding.Mesh (e.g. genjax.train.data_mesh(4)), got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"{name} must have an axis named {DATA_AXIS!r} to split the batch along, got axes {tuple(mesh.axis_names)}"
        )
    return mesh


def data_axis_size(mesh: Mesh) -> int:
    """Number of batch shards: the size of the mesh's ``"data"`` axis."""
    return int(check_mesh(mesh).shape[DATA_AXIS])


def check_batch_size(batch_size: int, mesh: Mesh, *, name: str = "batch_size") -> int:
    """Raises ``ValueError`` unless ``batch_size`` splits evenly over the ``"data"`` axis."""
    n = data_axis_size(mesh)
    if batch_size % n:
        raise ValueError(
            f"{name}={batch_size} must be divisible by the mesh's {DATA_AXIS!r} axis size {n} "
            f"(each device takes batch_size / {n} examples); use e.g. {name}={max(n, batch_size // n * n)}"
        )
    return batch_size


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of the train state and metrics: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, *, stacked: bool = False) -> NamedSharding:
    """The sharding of a batch ``(b, ...)`` split along ``"data"``; ``stacked``: of a
    ``(K, b, ...)`` stack of batches (the leading step axis is not split)."""
    return NamedSharding(mesh, PartitionSpec(None, DATA_AXIS) if stacked else PartitionSpec(DATA_AXIS))


def put_global(x: Any, sharding: NamedSharding) -> jax.Array:
    """The global array ``x`` (a host value every process holds in full) laid out as ``sharding``.

    Each process copies only the slices its own devices hold, so this is the
    multi-host-safe form of ``jax.device_put(x, sharding)``.
    """
    x = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf of ``tree`` copied to every device of ``mesh`` (``None`` leaves stay ``None``)."""
    sharding = replicated(mesh)
    return jax.tree_util.tree_map(lambda a: put_global(a, sharding), tree)


def shard_batch(batch: Any, mesh: Mesh, *, stacked: bool = False) -> Any:
    """Splits ``batch`` (or a ``(K, b, ...)`` stack with ``stacked``) along ``"data"``.

    The batch axis must be divisible by the ``"data"`` axis size.
    """
    sharding = batch_sharding(mesh, stacked=stacked)
    axis = 1 if stacked else 0

    def put(a):
        a = np.asarray(jax.device_get(a))
        check_batch_size(a.shape[axis], mesh, name="batch size")
        return put_global(a, sharding)

    return jax.tree_util.tree_map(put, batch)


def shard_rows(data: Any, idx: np.ndarray, mesh: Mesh) -> Any:
    """Rows ``idx`` (``(K, b)`` host indices) of the host ``data`` as a ``(K, b, ...)`` stack
    split along ``"data"``: the same array as ``shard_batch(data[idx], mesh, stacked=True)``,
    but each process gathers only the rows its own devices hold (with several processes,
    its slice of the global batch)."""
    idx = np.asarray(idx)
    check_batch_size(idx.shape[1], mesh, name="batch size")
    sharding = batch_sharding(mesh, stacked=True)

    def put(a):
        def rows(index):
            return a[idx[index[:2]]][(slice(None), slice(None)) + tuple(index[2:])]

        return jax.make_array_from_callback(idx.shape + a.shape[1:], sharding, rows)

    return jax.tree_util.tree_map(put, data)


def to_local(tree: Any) -> Any:
    """Host (numpy) copies of replicated arrays, e.g. to hand mesh-trained parameters to
    single-device code."""
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def make_sharded_step(step: StepFn, mesh: Mesh, *, donate: bool = True) -> StepFn:
    """``step(state, batch)`` compiled for ``mesh``: state replicated, batch split along
    ``"data"``, new state and metrics replicated.

    ``step`` is un-jitted (``make_train_step(..., jit=False)`` or a model's own
    ``make_train_step``). Inputs must already be placed (:func:`replicate`,
    :func:`shard_batch`); with ``donate`` the input state's buffers are reused.
    """
    check_mesh(mesh)
    rep, dat = replicated(mesh), batch_sharding(mesh)
    jitted = jax.jit(step, in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=0 if donate else ())
    return _under_mesh(jitted, mesh)


def make_sharded_multi_step(step: StepFn, mesh: Mesh, *, donate: bool = True) -> StepFn:
    """K steps per dispatch on ``mesh``: ``multi(state, batches)`` scans ``step`` over the
    leading axis of a ``(K, b, ...)`` stack split along ``b``; returns the replicated
    state and ``(K,)`` metrics (as :func:`genjax.train.make_multi_step`)."""
    check_mesh(mesh)
    rep, dat = replicated(mesh), batch_sharding(mesh, stacked=True)

    def multi(state, batches):
        return jax.lax.scan(step, state, batches)

    jitted = jax.jit(multi, in_shardings=(rep, dat), out_shardings=(rep, rep), donate_argnums=0 if donate else ())
    return _under_mesh(jitted, mesh)


def make_sharded_gather(mesh: Mesh) -> Callable[[jax.Array, np.ndarray], jax.Array]:
    """``gather(data, idx)``: rows ``idx`` (``(K, b)`` host indices) of the replicated
    ``data``, returned as a ``(K, b, ...)`` stack split along ``b``."""
    take = jax.jit(lambda data, idx: jax.tree_util.tree_map(lambda a: a[idx], data),
                   out_shardings=batch_sharding(mesh, stacked=True))
    rep = replicated(mesh)
    take = _under_mesh(take, mesh)
    return lambda data, idx: take(data, put_global(np.asarray(idx), rep))


def _under_mesh(fn: Callable, mesh: Mesh) -> Callable:
    """``fn`` called with ``mesh`` as the current mesh (needed to trace for explicit axes)."""

    def wrapped(*args):
        with jax.set_mesh(mesh):
            return fn(*args)

    wrapped.__wrapped__ = fn
    return wrapped
