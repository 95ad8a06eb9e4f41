"""Train-step time of several models measured side by side, the fair basis of a cost comparison.

The wall-clock training times of separate runs depend on whatever else the machine ran
beside each; timing the models' steps interleaved in one process puts them under the same
load. Experiments that compare costs (``ldm_mnist``'s latent vs pixel diffusion,
``flows_mnist``'s flows at one CPU budget) report these figures beside their runs' times.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from genjax.train.loop import make_step


def side_by_side_step_times(
    runs: Sequence[tuple[Any, Any, Any, Any]],
    *,
    steps: int = 5,
    rounds: int = 3,
    step_kwargs: Sequence[dict] | None = None,
) -> list[float]:
    """Seconds per train step of each ``(model, optimizer, state, batch)`` in ``runs``.

    Each step is ``fit``'s (:func:`genjax.train.make_step`, jitted, with the matching entry of
    ``step_kwargs``: ``transform`` / ``ema_decay``), compiled first; then ``rounds`` rounds in
    which every run in turn takes ``steps`` steps from ``state`` on ``batch``. Returns each
    run's median over the rounds, in the order of ``runs``.
    """
    if not runs:
        raise ValueError("runs is empty: give at least one (model, optimizer, state, batch)")
    for name, v in (("steps", steps), ("rounds", rounds)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    kwargs = list(step_kwargs) if step_kwargs is not None else [{}] * len(runs)
    if len(kwargs) != len(runs):
        raise ValueError(f"step_kwargs has {len(kwargs)} entries for {len(runs)} runs")
    compiled: list[tuple[Callable, Any, Any]] = []
    for (model, optimizer, state, batch), kw in zip(runs, kwargs):
        step = jax.jit(make_step(model, optimizer, **kw))
        jax.block_until_ready(step(state, batch))  # compile
        compiled.append((step, state, batch))
    times: list[list[float]] = [[] for _ in compiled]
    for _ in range(rounds):
        for i, (step, state, batch) in enumerate(compiled):
            t0 = time.perf_counter()
            s = state
            for _ in range(steps):
                s, _metrics = step(s, batch)
            jax.block_until_ready(s)
            times[i].append((time.perf_counter() - t0) / steps)
    return [float(np.median(t)) for t in times]
