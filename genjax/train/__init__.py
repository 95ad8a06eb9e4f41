"""Training core: state, step factories, the ``fit`` loop and checkpoints."""

from genjax.train.checkpoint import CheckpointError, CheckpointMismatchError, Checkpointer
from genjax.train.loop import FitResult, MetricsLog, NonFiniteError, fit, restore_params, split_run_key
from genjax.train.state import TrainState
from genjax.train.step import make_multi_step, make_train_step, with_transform

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpointer",
    "FitResult",
    "MetricsLog",
    "NonFiniteError",
    "TrainState",
    "fit",
    "make_multi_step",
    "make_train_step",
    "restore_params",
    "split_run_key",
    "with_transform",
]
