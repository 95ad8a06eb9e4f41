"""Orbax checkpoints of a ``TrainState``, with fallback past unreadable ones.

Orbax writes each checkpoint to a temporary directory and renames it when the
write is complete, so an interrupted save never looks like a finished one. A
checkpoint that exists but cannot be read (truncated or garbled files) is
reported by step and skipped in favour of the previous one; it is never
deleted or overwritten. When the resumed run reaches that step again, the
unreadable one is moved to ``<directory>-unreadable/<step>`` so the new state
can be saved under its step.

Every checkpoint records the sha256 of its state's bytes (``custom_metadata`` of the
step, committed with it); a restored state whose digest differs is treated as
unreadable. Orbax's own checks miss some damage: a single flipped bit in an OCDBT
data file can restore as silently different numbers. Checkpoints without a recorded
digest (written before it existed) are restored unverified.

A checkpoint that cannot be written (disk full, permissions) raises ``OSError``
naming the step and directory; orbax's partial temporary directory
(``<step>.orbax-checkpoint-tmp``) is removed, and it is never listed as a
checkpoint in any case. Checkpoints that hold a different model's state (another
parameter tree or shapes) raise :class:`CheckpointMismatchError` instead of being
skipped: every checkpoint of that directory would mismatch the same way.

Fault-injection hook for tests: with ``GENJAX_TEST_SAVE_DELAY_S=<seconds>`` in the
environment, every save sleeps that long after the data is written and before
orbax commits (renames) the temporary directory, so a test can kill the process
in the middle of a checkpoint write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import pathlib
import re
import shutil
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from genjax.train.distributed import collective_error
from genjax.train.state import TrainState, state_step

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable checkpoint could be restored."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoints hold the state of a different model (parameter tree or shapes differ)."""


#: Environment variable of the save-delay test hook (seconds; see the module docstring).
SAVE_DELAY_ENV = "GENJAX_TEST_SAVE_DELAY_S"
_TMP_SUFFIX = ".orbax-checkpoint-tmp"
# orbax's messages for a restore target whose tree / shapes / dtypes differ from the stored ones
_MISMATCH = re.compile(r"tree structures do not match|not compatible with the stored shape|dtype.*(mismatch|not match)", re.I | re.S)


DIGEST_KEY = "genjax_state_sha256"


def state_digest(state) -> str:
    """sha256 over every leaf of ``state`` (path, dtype, shape and bytes, in tree order)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _save_delay():
    """The test hook: delays orbax's commit of the temporary directory."""
    delay = os.environ.get(SAVE_DELAY_ENV)
    if not delay:
        yield
        return
    from orbax.checkpoint._src.path import atomicity

    cls = atomicity.AtomicRenameTemporaryPath
    original = cls.finalize

    async def finalize(self):
        await asyncio.sleep(float(delay))
        return await original(self)

    cls.finalize = finalize
    try:
        yield
    finally:
        cls.finalize = original


class Checkpointer:
    """Saves and restores ``TrainState`` under ``directory`` (one sub-directory per step)."""

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int = 3):
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
            ),
            # one unnamed item, said explicitly: otherwise orbax infers the layout from the
            # step directories, and one bare directory named like a step made every
            # checkpoint unreadable ("Must provide `args` of type `Composite`")
            item_handlers=ocp.StandardCheckpointHandler(),
        )
        self._unreadable: set[int] = set()

    def steps(self) -> list[int]:
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def save(self, state: TrainState) -> int:
        step = state_step(state)
        if step in self.steps():
            if step not in self._unreadable:
                return step
            self._set_aside(step)
        try:
            with _save_delay():
                self.manager.save(
                    step, args=ocp.args.StandardSave(state), custom_metadata={DIGEST_KEY: state_digest(state)}
                )
                self.manager.wait_until_finished()
        except Exception as e:
            shutil.rmtree(self.directory / f"{step}{_TMP_SUFFIX}", ignore_errors=True)  # partial, never valid
            with contextlib.suppress(Exception):
                self.manager.reload()
            lost = collective_error(e, f"the checkpoint of step {step}")  # another process died
            if lost is not None:
                raise lost from e
            err = OSError(f"could not write the checkpoint at step {step} to {self.directory}: {type(e).__name__}: {e}")
            err.errno = getattr(e, "errno", None)
            raise err from e
        return step

    def restore_latest(self, like: TrainState) -> TrainState | None:
        """Restores the newest readable checkpoint into the structure of ``like``.

        Returns ``None`` when there is no checkpoint. Raises ``CheckpointError``
        naming every step that was tried when none can be read.
        """
        steps = self.steps()
        if not steps:
            return None
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
        failures = []
        for step in reversed(steps):
            try:
                state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # orbax raises many types for unreadable data
                if isinstance(e, ValueError) and _MISMATCH.search(str(e)):
                    first = " ".join(str(e).split())[:300]
                    raise CheckpointMismatchError(
                        f"checkpoint at step {step} in {self.directory / str(step)} holds the state of a different "
                        f"model (its parameter tree or shapes differ from this model's: {first}); "
                        "use the model and options of that run, or another run directory"
                    ) from e
                msg = f"checkpoint at step {step} in {self.directory / str(step)} is unreadable ({type(e).__name__}: {e})"
                warnings.warn(msg + "; falling back to the previous checkpoint", stacklevel=2)
                failures.append(msg)
                self._unreadable.add(step)
                continue
            problem = None
            if state_step(state) != step:
                problem = f"holds step {state_step(state)}"
            else:
                try:
                    expected = (self.manager.metadata(step).custom_metadata or {}).get(DIGEST_KEY)
                except Exception as e:
                    expected, problem = None, f"has unreadable step metadata ({type(e).__name__}: {e})"
                if expected is not None and state_digest(state) != expected:
                    problem = "restored with a different sha256 than was saved (its data files are damaged)"
            if problem is not None:
                msg = f"checkpoint at step {step} in {self.directory / str(step)} is unreadable: it {problem}"
                warnings.warn(msg + "; falling back to the previous checkpoint", stacklevel=2)
                failures.append(msg)
                self._unreadable.add(step)
                continue
            return state
        raise CheckpointError("no usable checkpoint: " + "; ".join(failures))

    def _set_aside(self, step: int) -> None:
        """Moves the unreadable checkpoint of ``step`` out of the manager's directory (kept, not deleted)."""
        src = self.directory / str(step)
        dest_dir = self.directory.with_name(self.directory.name + "-unreadable")
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest, n = dest_dir / str(step), 1
        while dest.exists():
            dest, n = dest_dir / f"{step}.{n}", n + 1
        os.replace(src, dest)
        warnings.warn(f"moved the unreadable checkpoint at step {step} to {dest} to save step {step} again", stacklevel=3)
        self._unreadable.discard(step)
        self.manager.reload()

    def close(self) -> None:
        self.manager.close()
