"""The sampling engine behind ``genjax serve`` (no web framework here): requests checked before
any work, a queue, one worker thread that batches compatible requests onto a sampler compiled
once per shape, the results and the gallery.

A request draws what ``genjax sample`` draws for the same settings: the run restored by the
command line's loader (``cli._load_run``: ``registry.restore_run`` with the command line's data
errors, handed in as :class:`ServedRun`), the prompt
tokenized by ``registry.ldm.prompt_tokens`` (the tokenizer's error names an unknown word), the
key of ``draw_samples``' first chunk, ``fold_in(PRNGKey(seed), 0)`` (``--variations-of``:
``PRNGKey(seed)``), and the grid drawn by ``viz.image_grid`` at ``registry.image_scale``. So the
command line shown beside a grid reproduces its pixels (tested against ``genjax sample``).

Batching: the jobs waiting with the same signature (run, what is drawn, ``num``, sampler,
steps, which inputs) are stacked on a leading axis and drawn by one ``jit(vmap(draw))`` call
(the guidance weight is an input, so any weight shares the compiled sampler); the stack is
padded to a power of two up to ``max_batch``, so a signature compiles at most
``log2(max_batch) + 1`` times, never per request.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import io
import math
import pathlib
import shlex
import threading
import time
import uuid
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genjax import viz
from genjax.diffusion.ddpm import SAMPLERS
from genjax.registry import image_scale
from genjax.registry.ldm import prompt_tokens, takes_negative_prompt

#: The most images one request may ask for.
MAX_IMAGES = 16
#: The most sampler steps one request may ask for (the model may allow fewer: its own check runs too).
MAX_STEPS = 1000
#: The most seed value (``genjax sample --seed`` takes any int; the page keeps to 31 bits).
MAX_SEED = 2**31 - 1
#: Request fields, and which ones the page may send.
FIELDS = ("run", "prompt", "negative_prompt", "num", "seed", "guidance", "sampler", "steps", "variations_of", "image")


class RequestError(ValueError):
    """A bad request: ``field`` names what was wrong, ``status`` is the HTTP status to answer."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


@dataclasses.dataclass(frozen=True)
class ServedRun:
    """A run restored once for serving: what ``cli._load_run`` returns, under a page name."""

    name: str
    run_dir: pathlib.Path
    config: dict
    spec: Any
    data: Any
    model: Any
    params: Any
    step: int

    @classmethod
    def from_loaded(cls, name: str, loaded: tuple) -> "ServedRun":
        """From ``cli._load_run``'s ``(run_dir, config, spec, data, model, params, step)``.

        Raises:
          ValueError: the run is not a text-to-image model (its condition is not caption tokens).
        """
        rd, config, spec, data, model, params, step = loaded
        if getattr(model, "condition", None) is None or model.condition.kind != "tokens" or data.kind != "image":
            raise ValueError(f"run {str(rd)!r} (model {config['model']!r}) is not a text-to-image model: "
                             "genjax serve takes ldm, ddpm-text and unclip runs")
        return cls(name, pathlib.Path(rd), config, spec, data, model, params, int(step))

    @property
    def negative(self) -> bool:
        return takes_negative_prompt(self.model)

    @property
    def variations(self) -> bool:
        return callable(getattr(self.model, "variations", None))

    def describe(self) -> dict:
        """What the page needs to show this run's controls."""
        test = self.data.test.images if hasattr(self.data.test, "images") else self.data.test
        return {"name": self.name, "model": self.config["model"], "data": self.config["data"], "step": self.step,
                "run_dir": str(self.run_dir), "negative_prompt": self.negative, "variations": self.variations,
                "samplers": list(SAMPLERS), "image_shape": list(self.data.shape), "test_images": int(len(test)),
                "max_images": MAX_IMAGES, "max_steps": MAX_STEPS}


@dataclasses.dataclass
class Job:
    """One request: its settings, its state (``queued`` -> ``running`` -> ``done`` | ``error``)
    and, when done, the grid as PNG bytes."""

    id: str
    run: str
    settings: dict
    command: str
    signature: tuple
    inputs: dict
    key: np.ndarray
    created: float
    state: str = "queued"
    started: float | None = None
    finished: float | None = None
    expected_s: float | None = None
    error: str | None = None
    png: bytes | None = None

    def status(self, position: int | None = None) -> dict:
        out = {"id": self.id, "state": self.state, "run": self.run, "settings": self.settings, "command": self.command}
        if position is not None:
            out["position"] = position
        if self.state == "running":
            out["elapsed_s"] = round(time.monotonic() - self.started, 2)
            out["expected_s"] = self.expected_s  # None: the first of its shape, compiling
        if self.state == "done":
            out.update(grid=f"/api/jobs/{self.id}/grid.png", seconds=round(self.finished - self.started, 3))
        if self.state == "error":
            out["error"] = self.error
        return out


def _int(field: str, value, lo: int, hi: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not lo <= value <= hi:
        raise RequestError(field, f"{field} must be an integer in [{lo}, {hi}]{what}, got {value!r}")
    return int(value)


def _text(field: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(field, f"{field} must be text, got {value!r}")
    return value.strip() or None


def _png_image(value, shape) -> tuple[np.ndarray, bytes]:
    """An uploaded picture (a ``data:image/png;base64,...`` URL or bare base64) -> ``(1, *shape)``
    float32 in [0, 1] (grey, as ``genjax sample --variations-of FILE.png`` reads it) and its bytes."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(value, str):
        raise RequestError("image", "image must be a PNG as a base64 data URL")
    try:
        raw = base64.b64decode(value.split(",", 1)[1] if value.startswith("data:") else value, validate=True)
        img = Image.open(io.BytesIO(raw))
        img.load()
    except (ValueError, binascii.Error, UnidentifiedImageError, OSError) as e:
        raise RequestError("image", f"image is not a readable picture ({type(e).__name__})") from None
    h, w = shape[:2]
    if img.size != (w, h):
        raise RequestError("image", f"image must be {w}x{h} pixels (this run's images), got {img.size[0]}x{img.size[1]}")
    x = np.asarray(img.convert("L"), np.float32) / 255.0
    return x.reshape(1, *shape), raw


class Engine:
    """The queue, the worker and the results of one server.

    Args:
      runs: the served runs (names unique).
      max_batch: the most requests drawn by one compiled call (a power of two).
      max_pending: the most requests waiting; more are refused with HTTP 503.
      gallery_size: the most results kept (the gallery and their grids; older ones are dropped).
      upload_dir: where uploaded pictures are written, so their command line can name them.
      start: start the worker now (``False``: at :meth:`start`; requests queue meanwhile).
    """

    def __init__(self, runs: list[ServedRun], *, max_batch: int = 4, max_pending: int = 64, gallery_size: int = 100,
                 upload_dir: str | pathlib.Path | None = None, start: bool = True):
        if not runs:
            raise ValueError("runs: give at least one run to serve")
        names = [r.name for r in runs]
        if len(set(names)) != len(names):
            raise ValueError(f"runs: names must be unique, got {names}")
        if max_batch < 1 or max_batch & (max_batch - 1):
            raise ValueError(f"max_batch must be a power of two >= 1, got {max_batch}")
        self.runs = {r.name: r for r in runs}
        self.max_batch, self.max_pending = int(max_batch), int(max_pending)
        self.upload_dir = pathlib.Path(upload_dir) if upload_dir is not None else None
        self._lock = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._gallery: collections.deque[str] = collections.deque(maxlen=gallery_size)
        self._keep = 2 * gallery_size + max_pending
        self._compiled: dict[tuple, Any] = {}
        self._checked: dict[tuple, str | None] = {}
        self._seconds: dict[tuple, float] = {}
        self.compilations = 0  # compiled samplers (for the tests: once per shape, not per request)
        self.batches: list[int] = []  # requests per compiled call, in order (the last 1000)
        self._stop = False
        self._worker = threading.Thread(target=self._loop, name="genjax-serve-worker", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Starts the worker (once)."""
        if not self._worker.is_alive():
            self._worker.start()

    # ------------------------------------------------------------------ requests
    def parse(self, payload) -> Job:
        """Checks a request (a JSON object of :data:`FIELDS`) completely, before any sampling.

        Raises:
          RequestError: naming the field: an unknown run or field, a word the tokenizer does not
            know, too many images, steps out of range, a picture of the wrong size, ...
        """
        if not isinstance(payload, dict):
            raise RequestError(None, "the request must be a JSON object")
        unknown = sorted(set(payload) - set(FIELDS))
        if unknown:
            raise RequestError(unknown[0], f"unknown field(s) {unknown}; valid: {', '.join(FIELDS)}")
        name = payload.get("run")
        if name not in self.runs:
            raise RequestError("run", f"unknown run {name!r}; served: {', '.join(self.runs)}")
        run = self.runs[name]
        num = _int("num", payload.get("num", 4), 1, MAX_IMAGES, " (too many images?)")
        seed = payload.get("seed")
        seed = int(np.random.default_rng().integers(MAX_SEED)) if seed in (None, "") else _int("seed", seed, 0, MAX_SEED)
        prompt, negative = _text("prompt", payload.get("prompt")), _text("negative_prompt", payload.get("negative_prompt"))
        guidance = payload.get("guidance")
        if guidance in ("", None):
            guidance = None
        elif isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) \
                or not 0 <= guidance <= 100:
            raise RequestError("guidance", f"guidance must be a number in [0, 100], got {guidance!r}")
        sampler = payload.get("sampler") or None
        if sampler is not None and sampler not in SAMPLERS:
            raise RequestError("sampler", f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        steps = payload.get("steps")
        steps = None if steps in (None, "") else _int("steps", steps, 1, MAX_STEPS, " (steps out of range)")
        source = _text("variations_of", payload.get("variations_of"))
        image = payload.get("image")
        if image is not None and source is not None:
            raise RequestError("image", "give variations_of (test:N) or an uploaded image, not both")
        inputs: dict[str, np.ndarray] = {}
        settings = {"run": name, "num": num, "seed": seed}
        if source is not None or image is not None:  # unclip: variations of a picture's CLIP embedding
            if not run.variations:
                raise RequestError("variations_of", f"model {run.config['model']!r} cannot make variations of an image "
                                                    "(unclip can)")
            if prompt is not None or negative is not None:
                raise RequestError("prompt", "variations are drawn from an image's embedding: they take no prompt")
            source, inputs["images"] = self._picture(run, source, image)
            settings["variations_of"] = source
            kind = "variations"
        else:
            if guidance is not None and prompt is None:
                raise RequestError("guidance", "guidance needs a prompt (the caption to guide towards)")
            if negative is not None and (prompt is None or guidance is None or not run.negative):
                why = (f"model {run.config['model']!r} takes no negative prompt (ldm and ddpm-text do)" if not run.negative
                       else "a negative prompt takes the empty caption's place in guidance: it needs a prompt and guidance")
                raise RequestError("negative_prompt", why)
            for field, text in (("prompt", prompt), ("negative_prompt", negative)):
                if text is not None:
                    try:
                        tokens = prompt_tokens(run.model, [text] * (num if field == "prompt" else 1))
                    except ValueError as e:  # the tokenizer's message names the unknown word
                        raise RequestError(field, f"{field}: {e}") from None
                    inputs["cond" if field == "prompt" else "negative_cond"] = tokens
                    settings[field] = text
            kind = "sample"
        if guidance is not None:
            inputs["guidance"] = np.float32(guidance)
            settings["guidance"] = float(guidance)
        settings.update({k: v for k, v in (("sampler", sampler), ("steps", steps)) if v is not None})
        signature = (name, kind, num, sampler, steps, tuple(sorted((k, np.shape(v)) for k, v in inputs.items())))
        self._check_signature(run, signature, inputs)
        key = jax.random.PRNGKey(seed)
        key = np.asarray(key if kind == "variations" else jax.random.fold_in(key, 0))  # draw_samples' first chunk
        return Job(uuid.uuid4().hex[:12], name, settings, command_line(run, settings), signature, inputs, key,
                   time.time())

    def _picture(self, run: ServedRun, source: str | None, image) -> tuple[str, np.ndarray]:
        if source is not None:
            test = run.data.test.images if hasattr(run.data.test, "images") else run.data.test
            index = source[len("test:"):] if source.startswith("test:") else ""
            if not index.isdigit() or int(index) >= len(test):
                raise RequestError("variations_of", f"variations_of must be test:N with N in [0, {len(test)}), got {source!r}")
            return source, np.asarray(test[int(index)][None], np.float32)
        x, raw = _png_image(image, run.data.shape)
        if self.upload_dir is None:
            raise RequestError("image", "this server takes no uploads (no upload directory)")
        path = self.upload_dir / f"upload-{hashlib.sha256(raw).hexdigest()[:16]}.png"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return str(path), x

    def _check_signature(self, run: ServedRun, signature: tuple, inputs: dict) -> None:
        """The model's own checks of sampler and steps (e.g. ``ddpm`` runs all ``T`` steps), by
        tracing the draw once per signature (shapes only, nothing runs)."""
        if signature not in self._checked:
            try:
                jax.eval_shape(_draw_fn(run, signature), run.params, jnp.zeros((2,), jnp.uint32), inputs)
                self._checked[signature] = None
            except (ValueError, TypeError) as e:
                self._checked[signature] = " ".join(str(e).split())
        if self._checked[signature] is not None:
            raise RequestError("steps" if signature[4] is not None else "sampler", self._checked[signature])

    def submit(self, payload) -> Job:
        """Checks a request (:meth:`parse`) and queues it; returns its job at once.

        Raises:
          RequestError: a bad request (4xx), or a full queue (503).
        """
        job = self.parse(payload)
        with self._lock:
            if len(self._queue) >= self.max_pending:
                raise RequestError(None, f"the queue is full ({self.max_pending} waiting); try again shortly", 503)
            self._queue.append(job)
            self._jobs[job.id] = job
            while len(self._jobs) > self._keep:  # forget the oldest finished jobs (memory stays flat)
                old = next((j for j in self._jobs.values() if j.state in ("done", "error")), None)
                if old is None:
                    break
                del self._jobs[old.id]
            self._lock.notify()
        return job

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            position = next((i for i, j in enumerate(self._queue) if j.id == job_id), None)
            return job.status(position)

    def grid(self, job_id: str) -> bytes | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.png

    def gallery(self) -> list[dict]:
        """What was generated since the server started, newest first."""
        with self._lock:
            return [self._jobs[i].status() for i in reversed(self._gallery) if i in self._jobs]

    def wait(self, job_id: str, timeout: float = 60.0) -> dict:
        """Blocks until a job is done or failed (tests; the page polls :meth:`status`)."""
        end = time.monotonic() + timeout
        with self._lock:
            while self._jobs[job_id].state in ("queued", "running"):
                if not self._lock.wait(max(0.0, end - time.monotonic())):
                    raise TimeoutError(f"job {job_id} not finished after {timeout} s")
            return self._jobs[job_id].status()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker.is_alive():
            self._worker.join(5)

    # ------------------------------------------------------------------ the worker
    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                first = self._queue.popleft()
                batch = [first] + [j for j in self._queue if j.signature == first.signature][: self.max_batch - 1]
                for j in batch[1:]:
                    self._queue.remove(j)
                size = 1 << (len(batch) - 1).bit_length()  # padded to a power of two
                now = time.monotonic()
                for j in batch:
                    j.state, j.started, j.expected_s = "running", now, self._seconds.get((first.signature, size))
            try:
                images = self._draw(batch, size)
                error = None
            except Exception as e:  # nothing crashes the server: the batch's jobs fail with the reason
                images, error = None, f"{type(e).__name__}: {' '.join(str(e).split())}"
            grids = [] if images is None else [self._png(self.runs[first.run], x) for x in images[: len(batch)]]
            with self._lock:
                done = time.monotonic()
                self._seconds[first.signature, size] = done - now
                self.batches = (self.batches + [len(batch)])[-1000:]
                for i, j in enumerate(batch):
                    j.finished = done
                    j.inputs = {}  # the arrays are not needed any more
                    if error is None:
                        j.state, j.png = "done", grids[i]
                        self._gallery.append(j.id)
                    else:
                        j.state, j.error = "error", error
                self._lock.notify_all()

    def _draw(self, batch: list[Job], size: int) -> np.ndarray:
        first = batch[0]
        run = self.runs[first.run]
        fn = self._compiled.get((first.signature, size))
        if fn is None:
            fn = jax.jit(jax.vmap(_draw_fn(run, first.signature), in_axes=(None, 0, 0)))
            self._compiled[first.signature, size] = fn
            self.compilations += 1
        pad = batch + [first] * (size - len(batch))
        keys = np.stack([j.key for j in pad])
        inputs = {k: np.stack([j.inputs[k] for j in pad]) for k in first.inputs}
        return np.asarray(fn(run.params, keys, inputs))

    @staticmethod
    def _png(run: ServedRun, x: np.ndarray) -> bytes:
        buf = io.BytesIO()
        viz.image_grid(x.reshape(-1, *run.data.shape), scale=image_scale(run.data)).save(buf, format="PNG")
        return buf.getvalue()


def _draw_fn(run: ServedRun, signature: tuple):
    """``draw(params, key, inputs) -> (n, *shape)``: one request's images, as ``genjax sample``
    draws them (``model.sample`` of the prompt's tokens, or ``model.variations``)."""
    _, kind, num, sampler, steps, _ = signature
    model, shape = run.model, run.data.shape
    sampler_kw = {k: v for k, v in (("sampler", sampler), ("steps", steps)) if v is not None}

    def draw(params, key, inputs):
        guidance = inputs.get("guidance")
        if kind == "variations":
            return model.variations(params, key, inputs["images"], num=num, guidance=guidance, **sampler_kw
                                    ).reshape(-1, *shape)
        extra = {"negative_cond": inputs["negative_cond"]} if "negative_cond" in inputs else {}
        return model.sample(params, key, num, cond=inputs.get("cond"), guidance=guidance, **extra, **sampler_kw)

    return draw


def command_line(run: ServedRun, settings: dict) -> str:
    """The ``genjax sample`` command that draws the same images as ``settings``."""
    argv = ["genjax", "sample", str(run.run_dir)]
    for field, flag in (("prompt", "--prompt"), ("negative_prompt", "--negative-prompt"), ("variations_of", "--variations-of"),
                        ("num", "--num"), ("seed", "--seed"), ("guidance", "--guidance"), ("sampler", "--sampler"),
                        ("steps", "--steps")):
        if field in settings:
            argv += [flag, str(settings[field])]
    return shlex.join(argv + ["--out", "samples.png"])
