"""Several processes, one global mesh: starting ``jax.distributed`` and failing clearly.

Every process runs the same program and calls :func:`initialize` before any other JAX
work; ``jax.devices()`` then lists the devices of every process, and
``genjax.train.data_mesh()`` builds one global mesh over them. ``fit(..., mesh=mesh)``
trains data-parallel across the processes (see ``docs/scaling.md``).

On CPU, the processes' collectives (the gradient all-reduce) run over TCP with gloo
(``jax_cpu_collectives_implementation``); on GPU/TPU the platform's own are used.

A process that dies leaves the others in a collective that can never complete. Its
peers' sockets then close, and the failed collective is raised in every survivor as
:class:`DistributedError` (by :func:`collective_errors`, which ``fit`` wraps around each
dispatch) naming this process and the step; the coordination service also marks a
process that stops sending heartbeats for ``heartbeat_timeout_s`` as dead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import socket
import subprocess
import time
from typing import Iterator, Mapping, Sequence

import jax

from genjax import _checks

#: The environment variables read when the arguments are not given (JAX reads the first itself).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"

_ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>[0-9]+)$")


class DistributedError(RuntimeError):
    """A collective across processes failed: another process died or became unreachable."""


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands among the processes of one run."""

    coordinator: str
    num_processes: int
    process_id: int


def check_coordinator(address, *, name: str = "coordinator") -> str:
    """Returns ``address`` if it is ``HOST:PORT`` (port 1..65535; IPv6 hosts in brackets), else raises ``ValueError``."""
    m = _ADDRESS.match(address) if isinstance(address, str) else None
    if m is None or not 0 < int(m["port"]) < 65536:
        raise ValueError(f"{name} must be HOST:PORT with a port in 1..65535 (e.g. 10.0.0.1:1234), got {address!r}")
    return address


def process_group(num_processes: int | None = None, process_id: int | None = None, coordinator: str | None = None, *,
                  environ: Mapping[str, str] | None = None,
                  names: tuple[str, str, str] = ("num_processes", "process_id", "coordinator")) -> ProcessGroup | None:
    """The process group the arguments (or, for those not given, the environment) describe.

    Each argument left ``None`` is read from ``$JAX_NUM_PROCESSES``, ``$JAX_PROCESS_ID`` and
    ``$JAX_COORDINATOR_ADDRESS``. One process (``num_processes`` unset or 1, nothing else
    given) returns ``None``: nothing to start.

    Raises:
      ValueError: a value is malformed, ``process_id`` is outside ``[0, num_processes)``,
        or the settings are incomplete (``num_processes > 1`` without a coordinator or a
        process id, or a coordinator / process id without ``num_processes``). ``names``
        are how the message calls the three (e.g. the command line's flags).
    """
    env = os.environ if environ is None else environ
    n_name, i_name, c_name = names

    def from_env(value, var, name):
        if value is not None or not env.get(var):
            return value, name
        try:
            return int(env[var]), f"${var}"
        except ValueError:
            raise ValueError(f"${var} must be an integer, got {env[var]!r}") from None

    num_processes, n_name = from_env(num_processes, NUM_PROCESSES_ENV, n_name)
    process_id, i_name = from_env(process_id, PROCESS_ID_ENV, i_name)
    if coordinator is None and env.get(COORDINATOR_ENV):
        coordinator, c_name = env[COORDINATOR_ENV], f"${COORDINATOR_ENV}"
    if num_processes is None:
        if process_id is not None or coordinator is not None:
            given = i_name if process_id is not None else c_name
            raise ValueError(f"{given} is set but {names[0]} is not: give {names[0]} (the number of processes) too")
        return None
    num_processes = _checks.positive_int(n_name, num_processes)
    if num_processes == 1 and coordinator is None and process_id in (None, 0):
        return None
    if process_id is None:
        raise ValueError(f"{n_name}={num_processes} needs {i_name} (this process's index in 0..{num_processes - 1})")
    if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(f"{i_name} must be an integer in [0, {num_processes}) ({n_name}={num_processes}), got {process_id!r}")
    if coordinator is None:
        raise ValueError(f"{n_name}={num_processes} needs {c_name} (HOST:PORT of process 0, the same for every process)")
    return ProcessGroup(check_coordinator(coordinator, name=c_name), num_processes, process_id)


def initialize(group: ProcessGroup, *, heartbeat_timeout_s: int = 100, init_timeout_s: int = 300) -> None:
    """Joins this process to ``group`` (``jax.distributed.initialize``), with CPU collectives over gloo.

    Call it first, before any other JAX work (JAX raises otherwise). Process 0 also runs
    the coordination service on ``group.coordinator``'s port. ``init_timeout_s``: how
    long to wait for every process to connect; ``heartbeat_timeout_s``: after how long
    without a heartbeat a process counts as dead (and the others are stopped).
    """
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup (from process_group(...)), got {type(group).__name__}")
    heartbeat_timeout_s = _checks.positive_int("heartbeat_timeout_s", heartbeat_timeout_s)
    init_timeout_s = _checks.positive_int("init_timeout_s", init_timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only the CPU client reads it
    jax.distributed.initialize(coordinator_address=group.coordinator, num_processes=group.num_processes,
                               process_id=group.process_id, initialization_timeout=init_timeout_s,
                               heartbeat_timeout_seconds=heartbeat_timeout_s)


def is_primary() -> bool:
    """True in process 0, the one that writes the run's own files (logs, pictures, results)."""
    return jax.process_index() == 0


def check_mesh_processes(mesh, *, name: str = "mesh") -> None:
    """With several processes, raises ``ValueError`` unless ``mesh`` holds devices of every process."""
    n = jax.process_count()
    if n == 1:
        return
    if mesh is None:
        raise ValueError(f"{n} processes train one run only data-parallel: pass {name}=genjax.train.data_mesh() "
                         "(a mesh over the devices of every process)")
    have = {d.process_index for d in mesh.devices.flat}
    if have != set(range(n)):
        raise ValueError(f"{name} must span the devices of all {n} processes (data_mesh() with no count does), "
                         f"but holds devices of processes {sorted(have)} only")


def barrier(name: str) -> None:
    """Waits until every process reaches ``barrier(name)`` (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        with collective_errors(f"barrier {name!r}"):
            multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def collective_errors(where: str) -> Iterator[None]:
    """Re-raises a JAX runtime error inside the block as :class:`DistributedError` naming
    this process and ``where``, when several processes run (otherwise lets it through)."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        err = collective_error(e, where)
        if err is None:
            raise
        raise err from e


def collective_error(error: BaseException, where: str) -> DistributedError | None:
    """``error`` (a JAX runtime error) as a :class:`DistributedError` naming this process
    and ``where``; None with one process or for any other error."""
    if jax.process_count() == 1 or not isinstance(error, jax.errors.JaxRuntimeError):
        return None
    first = " ".join(str(error).split())[:400]
    return DistributedError(
        f"process {jax.process_index()} of {jax.process_count()}: a collective with the other processes failed "
        f"at {where} (another process probably died or lost its connection: see its log): {first}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (bound to port 0 and released), for a local coordinator."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch_local(commands: Sequence[Sequence[str]], log_dir: str | os.PathLike, *, timeout_s: float,
                 env: Mapping[str, str] | None = None) -> list[tuple[int, str]]:
    """Runs one process per command on this host (e.g. the processes of one run on
    ``127.0.0.1``, for tests and benchmarks) and waits at most ``timeout_s`` seconds for all.

    Each process's output goes to ``log_dir/log<i>.txt``. Processes still running at the
    deadline are killed; every process is reaped, also when this call is interrupted.

    Returns:
      ``(returncode, output)`` per process (a killed one has a negative return code).
    """
    log_dir = pathlib.Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    try:
        for i, cmd in enumerate(commands):
            logs.append(open(log_dir / f"log{i}.txt", "w"))
            procs.append(subprocess.Popen(list(cmd), env=None if env is None else dict(env), stdout=logs[-1],
                                          stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout_s
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in logs:
            f.close()
    return [(p.returncode, (log_dir / f"log{i}.txt").read_text()) for i, p in enumerate(procs)]


def local_env(root: str | os.PathLike | None = None) -> dict[str, str]:
    """This process's environment for processes of a local multi-process run: CPU, one
    device each (no forced device count), no inherited ``$JAX_*`` process settings, and
    ``root`` (e.g. the repository) first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    for var in (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV):
        env.pop(var, None)
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
