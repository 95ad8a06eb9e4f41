"""Shared pieces: timing (warm-up, block_until_ready, medians), the matmul peak,
FLOP counts, targets with their gap, the environment record and the table.

Conventions: every time is wall-clock seconds from ``time.perf_counter`` around
work that ends in ``jax.block_until_ready``; a figure is the median over
``repeats`` repeats, each repeat timing ``n`` calls (so per-call figures average
over ``n`` dispatches). Compilation happens in a warm-up call before any timing.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Settings:
    """How hard to measure. ``quick``: tiny repeats and small sizes (a smoke run; its
    figures mean nothing). ``min_time``: seconds one repeat should last (the number
    of calls per repeat is calibrated from the warm-up to reach it)."""

    quick: bool = False
    repeats: int = 7
    min_time: float = 0.25
    max_calls: int = 2000

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        return cls(quick=True, repeats=2, min_time=0.0, max_calls=2) if quick else cls()


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


def calls_for(seconds_per_call: float, settings: Settings, *, at_least: int = 1) -> int:
    """How many calls make one repeat last ``settings.min_time`` (at least ``at_least``)."""
    if settings.quick:
        return max(1, min(at_least, settings.max_calls))
    n = int(settings.min_time / max(seconds_per_call, 1e-7)) + 1
    return max(at_least, min(n, settings.max_calls))


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds for one call of ``fn`` (its result blocked on)."""
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0


def calibrate(run: Callable[[int], Any], settings: Settings, *, warmup: int = 2, at_least: int = 1) -> int:
    """Warms ``run`` up (``warmup`` calls of ``run(1)``: compilation) and returns the
    number of units per repeat that makes a repeat last ``settings.min_time``."""
    for _ in range(warmup):
        block(run(1))
    return calls_for(time_once(lambda: run(1)), settings, at_least=at_least)


def measure(run: Callable[[int], Any], settings: Settings, *, warmup: int = 2, at_least: int = 1) -> dict:
    """Times ``run(n)`` (which must do ``n`` units of work and block) after a warm-up.

    Returns ``{"median_s": seconds per unit, "all_s": per-repeat seconds per unit,
    "n": units per repeat}``.
    """
    n = calibrate(run, settings, warmup=warmup, at_least=at_least)
    per = [time_once(lambda: run(n)) / n for _ in range(settings.repeats)]
    return {"median_s": statistics.median(per), "all_s": per, "n": n}


class Stepper:
    """Runs a donating jitted ``step(state, batch) -> (state, metrics)`` ``n`` times
    in a Python loop (one dispatch per step) and blocks on the final state."""

    def __init__(self, step, state, batch):
        self.step, self.state, self.batch = step, state, batch

    def __call__(self, n: int):
        for _ in range(n):
            self.state, _ = self.step(self.state, self.batch)
        return block(self.state)


# ---------------------------------------------------------------------- FLOPs
def matmul_peak(settings: Settings, *, n: int | None = None) -> dict:
    """The machine's float32 matrix-multiply rate: a jitted ``jnp.dot`` of two
    ``(n, n)`` matrices (``2 n^3`` FLOPs), median over repeats. ``n = 2048`` (256 quick)."""
    n = n or (256 if settings.quick else 2048)
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    res = measure(lambda k: [dot(a, b) for _ in range(k)][-1], settings)
    return {"n": n, "flops_per_s": 2.0 * n**3 / res["median_s"], "median_s": res["median_s"]}


def dense_flops(batch: int, widths: list[tuple[int, int]]) -> float:
    """Forward matmul FLOPs of dense layers ``[(in, out), ...]`` at ``batch``: ``2 b in out`` each."""
    return float(sum(2 * batch * i * o for i, o in widths))


# ---------------------------------------------------------------------- targets
@dataclasses.dataclass
class Target:
    """A figure against the issue's target. ``higher_is_better``: ``value >= threshold``
    meets it; otherwise ``value <= threshold``. ``value`` None: not measurable here."""

    name: str
    value: float | None
    threshold: float
    unit: str = "x"
    higher_is_better: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def describe(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        want = f"target {op} {_fmt(self.threshold)}{self.unit}"
        if self.value is None:
            return f"{self.name}: {want}; not measured ({self.note or 'unavailable'})"
        got = f"{_fmt(self.value)}{self.unit}"
        if self.met:
            return f"{self.name}: {got}, {want}: met"
        gap = self.threshold - self.value if self.higher_is_better else self.value - self.threshold
        return f"{self.name}: {got}, {want}: MISSED by {_fmt(gap)}{self.unit}" + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict:
        return {
            "name": self.name, "value": self.value, "threshold": self.threshold, "unit": self.unit,
            "higher_is_better": self.higher_is_better, "met": self.met, "text": self.describe(), "note": self.note,
        }


@dataclasses.dataclass
class EntryResult:
    """What one benchmark entry returns: table rows (dicts of label -> value), the
    targets it checks, and free-text notes (what was measured, what limits it)."""

    name: str
    title: str
    rows: list[dict]
    targets: list[Target] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "rows": self.rows,
            "targets": [t.to_json() for t in self.targets],
            "notes": self.notes,
        }


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


# ---------------------------------------------------------------------- environment
def environment(*, quick: bool) -> dict:
    """What only the benchmarks record: the mode and the load when the run starts.

    The machine, device, versions, command and date come from ``genjax.results.run_info``
    under the JSON's ``run`` key (the one writer of results); ``matmul_peak`` is added by
    ``benchmarks.run``.
    """
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {"quick": quick, "load_average": load}


# ---------------------------------------------------------------------- table
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1e5:
            return f"{v:.3g}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.01:
            return f"{v:.2f}"
        return f"{v:.2g}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """Rows (dicts) as a fixed-width text table over the union of their keys, in order."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    out = [line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def format_entry(res: EntryResult) -> str:
    parts = [f"== {res.name}: {res.title}", format_table(res.rows) if res.rows else "(no rows)"]
    parts += [f"  {t.describe()}" for t in res.targets]
    parts += [f"  note: {n}" for n in res.notes]
    return "\n".join(parts)
