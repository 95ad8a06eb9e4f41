"""Training core: state, step factories, the ``fit`` loop and checkpoints."""

from genjax.train.checkpoint import CheckpointError, CheckpointMismatchError, Checkpointer
from genjax.train.loop import FitResult, MetricsLog, NonFiniteError, fit, restore_params, split_run_key
from genjax.train.precision import with_compute_dtype
from genjax.train.sharding import (
    DATA_AXIS,
    data_mesh,
    make_sharded_multi_step,
    make_sharded_step,
    replicate,
    shard_batch,
)
from genjax.train.state import TrainState
from genjax.train.step import make_multi_step, make_train_step, with_transform

__all__ = [
    "DATA_AXIS",
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpointer",
    "FitResult",
    "MetricsLog",
    "NonFiniteError",
    "TrainState",
    "data_mesh",
    "fit",
    "make_multi_step",
    "make_sharded_multi_step",
    "make_sharded_step",
    "make_train_step",
    "replicate",
    "restore_params",
    "shard_batch",
    "split_run_key",
    "with_compute_dtype",
    "with_transform",
]
