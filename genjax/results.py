"""One writer of result files: the payload plus the run's machine, versions and command.

Every experiment script and ``python -m benchmarks.run`` write their JSON with
:func:`write_result`, so each committed result says where, with what and how it was
made, in the same form::

    from genjax.results import write_result
    write_result("experiments/results/flows_toy2d.json", payload,
                 program="experiments/flows_toy2d.py", argv=argv)

The file gets the payload's keys and one more, ``"run"`` (see :func:`run_info`): the
command line and the ``GENJAX_*`` / ``JAX_*`` / ``XLA_*`` environment variables, a UTC timestamp, the git commit (and whether tracked files had uncommitted
changes) when the run started (when this module was first imported), machine, OS, CPU model and count, the JAX backend and device kind, and the
versions of Python and the libraries the figures depend on. The write is atomic: the
JSON is serialised first (an unserialisable payload raises before anything is
touched), written to a temporary file in the same folder and renamed over ``path``,
so a reader never sees a partial file and an error leaves any previous file as it was.

Generated samples that figures are computed from are committed beside their JSON through
:func:`write_samples` (uint8 ``samples``, ``prompts``, intended ``labels`` and any extra
per-sample fields, one ``.npz``, written the same atomic way) and read back, checked, by
:func:`read_samples`.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from typing import Any, Mapping, Sequence

#: distributions whose versions every result records (``None`` when not installed)
VERSIONED = ("genjax", "jax", "jaxlib", "flax", "optax", "distrax", "chex", "orbax-checkpoint", "numpy", "torch")

#: environment variables that change what a run does (data folder, XLA/JAX options), recorded with it
ENV_PREFIXES = ("GENJAX_", "JAX_", "XLA_")

#: the key :func:`write_result` adds to the payload
RUN_KEY = "run"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(args: Sequence[str], cwd: pathlib.Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(cwd: str | os.PathLike | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding ``cwd``.

    ``dirty`` is whether tracked files differ from the commit (untracked files are ignored).
    Both are ``None`` outside a git checkout or without git.
    """
    where = pathlib.Path(cwd) if cwd is not None else pathlib.Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


#: the repository state when this module was first imported, i.e. at the start of the run
#: (edits made while a long run goes on do not change what it ran)
_GIT_AT_IMPORT = git_state()


def _program() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":  # python -m package.module
        return f"-m {spec.name.removesuffix('.__main__')}"
    script = pathlib.Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None:
        return "<interactive>"
    try:
        return str(script.resolve().relative_to(pathlib.Path.cwd()))
    except ValueError:
        return str(script)


def command_line(program: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command that made a result, e.g. ``python experiments/flows_toy2d.py --smoke``.

    Args:
        program: What follows ``python``: a script path (``experiments/x.py``) or
            ``-m package.module``; default: read from ``__main__`` and ``sys.argv[0]``.
        argv: The program's arguments; default ``sys.argv[1:]``.
    """
    program = _program() if program is None else program
    argv = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", program, *(shlex.quote(str(a)) for a in argv)])


def run_info(*, program: str | None = None, argv: Sequence[str] | None = None) -> dict:
    """The run's context: command, time, git commit, machine and library versions.

    Imports JAX to name the backend and device (it is already imported by anything
    that produced a result).
    """
    import jax

    dev = jax.devices()[0]
    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus_usable = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "command": command_line(program, argv),
        "environment": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": _GIT_AT_IMPORT,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": cpus_usable,
        "load_average": load,
        "backend": jax.default_backend(),
        "device_kind": getattr(dev, "device_kind", dev.platform),
        "device_count": jax.device_count(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in VERSIONED},
    }


def write_result(
    path: str | os.PathLike,
    payload: Mapping[str, Any],
    *,
    program: str | None = None,
    argv: Sequence[str] | None = None,
) -> dict:
    """Writes ``payload`` plus ``"run"`` (:func:`run_info`) as JSON to ``path``, atomically.

    Args:
        path: The result file; its folder is created if missing. An existing file is
            replaced whole (never merged with).
        payload: A JSON-serialisable mapping of the figures; must not have a ``"run"`` key.
        program, argv: The command that made it (see :func:`command_line`).

    Returns:
        The dict written (payload first, then ``"run"``).

    Raises:
        TypeError: If ``payload`` is not a mapping or is not JSON-serialisable (nothing
            is written then).
        ValueError: If ``payload`` already has a ``"run"`` key.
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping (a dict of figures), got {type(payload).__name__}")
    if RUN_KEY in payload:
        raise ValueError(f"payload must not have a {RUN_KEY!r} key: write_result adds the run's context under it")
    out = {**payload, RUN_KEY: run_info(program=program, argv=argv)}
    try:
        text = json.dumps(out, indent=2) + "\n"
    except (TypeError, ValueError) as e:
        raise TypeError(f"payload is not JSON-serialisable ({e}); nothing was written to {os.fspath(path)!r}") from e
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode())
    return out


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder (fsynced,
    mode 644, renamed over ``path``): a reader never sees a partial file, and an error
    leaves any previous file as it was."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the file unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def shown_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` (the repository) when inside it, else as given: result
    files name no home folders."""
    try:
        return str(pathlib.Path(path).resolve().relative_to(pathlib.Path(root).resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- sample files
#: the fields every samples file holds (:func:`write_samples`)
SAMPLE_FIELDS = ("samples", "prompts", "labels")


def _sample_fields(samples, prompts, labels, extra: Mapping[str, Any]) -> dict:
    """The arrays of a samples file, checked (raises ValueError/TypeError naming the field)."""
    import numpy as np

    x = np.asarray(samples)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"samples must have shape (n, H, W) (or (n, H, W, 1)), got {np.shape(samples)}")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError("samples given as floats must be finite and in [0, 1] (they are stored as uint8 pixels)")
        x = np.round(x * 255.0).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise TypeError(f"samples must be uint8 pixels or floats in [0, 1], got dtype {x.dtype}")
    n = len(x)
    p = np.asarray(prompts)
    if p.shape != (n,) or p.dtype.kind != "U":
        raise ValueError(f"prompts must be {n} strings (one per sample), got shape {p.shape} and dtype {p.dtype}")
    y = np.asarray(labels)
    if y.shape not in ((n,), (n, 2)) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ints of shape ({n},) or ({n}, 2) (pairs: left, right), "
                         f"got shape {y.shape} and dtype {y.dtype}")
    out = {"samples": x, "prompts": p, "labels": y}
    for name, value in extra.items():
        v = np.asarray(value)
        if name in out:
            raise ValueError(f"extra field {name!r} clashes with a fixed field ({', '.join(SAMPLE_FIELDS)})")
        if v.dtype.kind not in "biufUS" or (v.ndim and len(v) != n):
            raise ValueError(f"extra field {name!r} must be a number, a string or an array of numbers/strings "
                             f"with {n} rows, got shape {v.shape} and dtype {v.dtype}")
        out[name] = v
    return out


def write_samples(path: str | os.PathLike, samples, prompts, labels, /, **extra) -> None:
    """Writes generated samples with the prompts they were asked for as a compressed ``.npz``,
    atomically (as :func:`write_result`): the one writer of a samples file.

    Args:
        path: The ``.npz`` file; its folder is created if missing; an existing file is replaced.
        samples: ``(n, H, W)`` or ``(n, H, W, 1)``: uint8 pixels, or floats in ``[0, 1]``
            (stored as ``round(255 x)``). Stored as uint8 ``(n, H, W)``.
        prompts: ``n`` strings.
        labels: int ``(n,)`` the intended class per sample (pairs: ``(n, 2)``, left and right).
        **extra: More fields, by keyword (the four above are positional only): numbers,
            strings, or arrays with ``n`` rows, e.g. a prompt set's ``extra_fields()``
            (``attribute``, ``bin``, ``held_out``) or the guidance weight.

    Raises:
        ValueError: A field of the wrong shape, range or dtype (nothing is written).
        TypeError: ``samples`` neither uint8 nor floats.
    """
    import io

    import numpy as np

    fields = _sample_fields(samples, prompts, labels, extra)
    buf = io.BytesIO()
    np.savez_compressed(buf, **fields)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def read_samples(path: str | os.PathLike) -> dict:
    """Reads a samples file of :func:`write_samples`, checking its fields.

    Returns:
        ``{"samples": uint8 (n, H, W), "prompts": str (n,), "labels": int (n,) or (n, 2),
        **extra}``.

    Raises:
        ValueError: A field missing, or of the wrong shape or dtype.
    """
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    missing = [k for k in SAMPLE_FIELDS if k not in data]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is not a samples file: fields {missing} missing (it has {sorted(data)})")
    x = data["samples"]
    if x.dtype != np.uint8:
        raise ValueError(f"samples in {os.fspath(path)!r} must be uint8 pixels, got dtype {x.dtype}")
    extra = {k: v for k, v in data.items() if k not in SAMPLE_FIELDS}
    return _sample_fields(x, data["prompts"], data["labels"], extra)


def config_digest(config: Any, length: int = 12) -> str:
    """A short hash (``length`` hex digits) of a JSON-able config: the sha256 of its JSON with
    sorted keys (tuples written as lists, anything else JSON cannot write as its ``str``), so
    two equal configs give one digest whatever their key order. The name under which a run or
    a finished piece of work is saved, so a changed config starts afresh instead of resuming
    work done under another (``flows_mnist``'s run folders, ``gan_mixture``'s checkpoint
    folders, ``samplers_mnist``'s sample chunks).

    Examples:
      >>> config_digest({"lr": 1e-3, "steps": 10}) == config_digest({"steps": 10, "lr": 1e-3})
      True
      >>> len(config_digest([1, 2], length=16))
      16
    """
    import hashlib

    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 64:
        raise ValueError(f"length: expected an int in [1, 64] (hex digits of a sha256), got {length!r}")
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def params_fingerprint(params) -> str:
    """A short hash (16 hex digits) of a parameter tree's bytes: the key under which work done
    with these parameters is saved, so a retrained model never reuses an old result. (The bytes
    only, leaf after leaf: the keys that samplers_mnist's finished points are saved under.)"""
    import hashlib

    import jax
    import numpy as np

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()[:16]


def cached(path: str | os.PathLike, key: Any, fn):
    """``fn()``, saved to ``path`` (pickled with ``key``, written atomically) and taken from there
    on a later call with an equal ``key``: a long results step cut off part-way resumes at the
    first part it had not finished. A file from another key (other parameters, another config),
    or one that cannot be read, is recomputed and replaced. ``key`` must be picklable and
    comparable with ``==`` (e.g. a tuple of strings and numbers with a :func:`params_fingerprint`).
    The file is a local cache for this machine's own runs, never data from elsewhere (pickle)."""
    import pickle

    path = pathlib.Path(path)
    if path.exists():
        try:
            with open(path, "rb") as f:
                saved_key, value = pickle.load(f)
            if saved_key == key:
                return value
        except Exception:  # a torn or foreign file: recompute
            pass
    value = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL))
    return value


class ResultParts:
    """The parts of one long results step, each saved when done (by :func:`cached`) in
    ``directory`` under a key that ends in the run's ``config``, so a results step cut off
    part-way resumes at its first unfinished part and a changed config recomputes them all.

    ``parts("pairs", fingerprint, fn=work)`` is ``cached(directory / "pairs.pkl", ("pairs",
    fingerprint, config as JSON), work)``; ``file=`` names the file when one part has several
    (``parts("sweep", w, fp, fn=..., file=f"sweep_{w:g}")``).
    """

    def __init__(self, directory: str | os.PathLike, config: Mapping[str, Any]):
        self.directory = pathlib.Path(directory)
        self._config = json.dumps(config, sort_keys=True, default=str)

    def __call__(self, name: str, *key: Any, fn, file: str | None = None):
        return cached(self.directory / f"{file or name}.pkl", (name, *key, self._config), fn)
