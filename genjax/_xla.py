"""Backend facts the library works around (private).

XLA:CPU runs a convolution's gradient (weight or input) inside a while loop 4-90x
slower than the same op outside one (measured on this project's CPU: a 3x3 conv's
weight gradient 27 ms for 5 plain steps vs 2.4 s in a ``lax.scan``; Glow's train step
0.77 s vs 35 s; a UNet's probability-flow RK4 step, four input VJPs, 1.1 s vs 4.4 s).
Loops whose body differentiates a convolution therefore run as a Python loop of one
jitted body on CPU; the forward pass alone (samplers) is not affected. A conditional
(``lax.cond``) is no better: StyleGAN2's lazily taken R1 and path-length branches made
the discriminator's gradient 13.9 s and the generator's 11.2 s against 1.19 s and
1.37 s computed unconditionally (28x28, batch 32); :func:`branch` therefore runs both
sides on CPU.

A jitted function compiles once per input shape, so a map over many rows in chunks pads the
last chunk to the chunk size (:func:`chunked_map`): one compilation whatever the row count.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

#: ``loop=`` choices of the functions that make this choice.
LOOPS = ("auto", "scan", "python")


def has_convolution(fn: Callable, *args) -> bool:
    """Whether ``fn(*args)`` traces to a ``conv_general_dilated`` anywhere (nested jaxprs included)."""

    def walk(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                return True
            for v in eqn.params.values():
                for sub in v if isinstance(v, (list, tuple)) else (v,):
                    inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                    if hasattr(inner, "eqns") and walk(inner):
                        return True
        return False

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def python_loop_is_faster(fn: Callable, *args) -> bool:
    """The ``loop="auto"`` rule: a Python loop of a jitted ``fn`` beats ``lax.scan`` when
    the default backend is CPU and ``fn(*args)`` contains a convolution."""
    return jax.default_backend() == "cpu" and has_convolution(fn, *args)


def check_loop(loop: str) -> str:
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    return loop


def chunked_map(fn: Callable, params, rows, *, chunk: int):
    """``fn(params, rows)`` as a host array, computed ``chunk`` rows per jitted call, the last
    chunk padded (with copies of its first row) to ``chunk``: one compilation per row shape,
    whatever ``len(rows)``. ``fn`` must map each row independently (e.g. an encoder)."""
    f = jax.jit(fn)
    out = []
    for i in range(0, len(rows), chunk):
        part = np.asarray(rows[i : i + chunk])
        pad = chunk - len(part)
        full = np.concatenate([part, np.repeat(part[:1], pad, axis=0)]) if pad else part
        out.append(np.asarray(f(params, full))[: len(part)])
    return np.concatenate(out)


def branch(pred, true_fn: Callable, false_fn: Callable):
    """``lax.cond(pred, true_fn, false_fn)``, except on CPU, where both branches run and
    ``jnp.where`` selects (same values and gradients; see the module docstring)."""
    if jax.default_backend() == "cpu":
        return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), true_fn(), false_fn())
    return jax.lax.cond(pred, true_fn, false_fn)
