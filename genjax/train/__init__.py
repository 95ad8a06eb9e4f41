"""Training core: state, step factories, the ``fit`` loop and checkpoints."""

from genjax.train.checkpoint import CheckpointError, CheckpointMismatchError, Checkpointer
from genjax.train.adversarial import is_adversarial, make_adversarial_step
from genjax.train.distributed import DistributedError, ProcessGroup, process_group
from genjax.train.loop import (
    CURVES_FILE,
    FitResult,
    MetricsLog,
    NonFiniteError,
    fit,
    make_step,
    restore_params,
    seed_keys,
    split_run_key,
)
from genjax.train.precision import with_compute_dtype
from genjax.train.sharding import (
    DATA_AXIS,
    data_mesh,
    make_sharded_multi_step,
    make_sharded_step,
    replicate,
    shard_batch,
)
from genjax.train.stages import Stage, StagesResult, fit_stages, stage_params
from genjax.train.state import TrainState
from genjax.train.step import apply_update, ema_update, make_multi_step, make_train_step, with_transform
from genjax.train.timing import side_by_side_step_times

__all__ = [
    "CURVES_FILE",
    "DATA_AXIS",
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpointer",
    "DistributedError",
    "FitResult",
    "MetricsLog",
    "NonFiniteError",
    "ProcessGroup",
    "Stage",
    "StagesResult",
    "TrainState",
    "apply_update",
    "data_mesh",
    "ema_update",
    "fit",
    "fit_stages",
    "is_adversarial",
    "make_adversarial_step",
    "make_multi_step",
    "make_sharded_multi_step",
    "make_sharded_step",
    "make_step",
    "make_train_step",
    "process_group",
    "replicate",
    "restore_params",
    "seed_keys",
    "side_by_side_step_times",
    "shard_batch",
    "split_run_key",
    "stage_params",
    "with_compute_dtype",
    "with_transform",
]
