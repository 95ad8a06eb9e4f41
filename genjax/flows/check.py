"""``check_bijector``: the distrax bijector checklist as a user-facing check."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from genjax.types import Array


def _excess(err: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> tuple[float, float, bool]:
    """(max |err|, the tolerance at the worst element, ok?) for ``|err| <= atol + rtol |ref|``."""
    err = np.abs(np.asarray(err, np.float64))
    tol = atol + rtol * np.abs(np.asarray(ref, np.float64))
    tol = np.broadcast_to(tol, err.shape)
    if err.size == 0:
        return 0.0, float(atol), True
    bad = ~(err <= tol)  # NaN counts as a failure
    worst = int(np.argmax(np.where(np.isnan(err), np.inf, err - tol)))
    return float(err.reshape(-1)[worst]), float(tol.reshape(-1)[worst]), not bad.any()


def check_bijector(
    bijector: distrax.Bijector,
    x: Array,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    max_jacobian_examples: int = 4,
    eager: bool = False,
) -> dict[str, float]:
    """Checks that ``bijector`` is a consistent bijection on ``x``; raises on failure.

    Properties (``f`` = forward, ``ldj`` = log|det J|; ``x`` of shape
    ``batch_shape + event_shape`` with ``len(event_shape) = event_ndims_in``):

    * **round trip**: ``f^-1(f(x)) = x``;
    * **log-det symmetry**: ``ldj_f(x) = -ldj_{f^-1}(f(x))``;
    * **forward log-det vs slogdet(jacfwd)**: ``ldj_f(x) = log|det d vec f(x) / d vec x|``
      on up to ``max_jacobian_examples`` examples (events flattened);
    * **inverse log-det vs slogdet(jacfwd)**: the same for ``f^-1`` at ``y = f(x)``;
    * **log-det shape**: both log-dets have shape ``batch_shape``;
    * **batched**: the first example alone gives the batched result;
    * **jit**: everything above runs under ``jax.jit`` with the bijector passed as a
      pytree argument (as distrax bijectors are); with ``eager=True`` the jitted
      results are also compared with an eager run;
    * **finite**: outputs and log-dets are finite.

    Each comparison passes when ``|a - b| <= atol + rtol * |b|`` element-wise. Call it
    eagerly (not under ``jit``); keep events small (the Jacobian is dense).

    Args:
      bijector: a distrax bijector (e.g. built from params by a flow layer).
      x: a valid input, shape ``batch_shape + event_shape``.
      atol, rtol: tolerances.
      max_jacobian_examples: examples on which the Jacobian is computed.
      eager: also run eagerly and compare with the jitted results (slower).

    Returns:
      ``{property: worst absolute discrepancy}`` when every property holds.

    Raises:
      ValueError: naming each failed property, its worst discrepancy and the tolerance.
    """
    if isinstance(x, jax.core.Tracer):
        raise ValueError("check_bijector needs a concrete x: call it eagerly, outside jit/vmap/grad")
    x = jnp.asarray(x)
    n_in = bijector.event_ndims_in
    if x.ndim < n_in:
        raise ValueError(f"check_bijector: x must have rank >= event_ndims_in={n_in}, got shape {x.shape}")
    batch_shape, event_in = x.shape[: x.ndim - n_in], x.shape[x.ndim - n_in :]
    failures: list[str] = []
    report: dict[str, float] = {}

    def record(name: str, a, b, ref=None):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            failures.append(f"{name}: shape {a.shape} != {b.shape}")
            report[name] = math.inf
            return
        err, tol, ok = _excess(a - b, b if ref is None else ref, atol, rtol)
        report[name] = err
        if not ok:
            failures.append(f"{name}: max discrepancy {err:.3g} > tolerance {tol:.3g} (atol={atol:g}, rtol={rtol:g})")

    n_out = bijector.event_ndims_out
    flat_x = x.reshape((-1, *event_in))
    num_jac = min(max_jacobian_examples, flat_x.shape[0])

    def compute(b, v, jacobians=True):
        """Everything in one trace: batched outputs, the first example alone, Jacobians."""
        y, ldj_f = b.forward_and_log_det(v)
        x_rec, ldj_i = b.inverse_and_log_det(y)
        ev_out = y.shape[y.ndim - n_out :]
        out = {"y": y, "ldj_f": ldj_f, "x_rec": x_rec, "ldj_i": ldj_i}
        if batch_shape:
            out["y0"], out["ldj_f0"] = b.forward_and_log_det(v.reshape((-1, *event_in))[0])
        if jacobians and math.prod(ev_out) == math.prod(event_in):
            def logabsdet(fn, u, shape):
                jac = jax.jacfwd(lambda w: fn(w.reshape(shape)).reshape(-1))(u.reshape(-1))
                return jnp.linalg.slogdet(jac)[1]

            xs = v.reshape((-1, *event_in))[:num_jac]
            ys = y.reshape((-1, *ev_out))[:num_jac]
            out["jac_f"] = jax.vmap(lambda u: logabsdet(b.forward, u, event_in))(xs)
            out["jac_i"] = jax.vmap(lambda u: logabsdet(b.inverse, u, ev_out))(ys)
        return out

    try:
        res = jax.jit(compute)(bijector, x)  # the bijector crosses the jit boundary as a pytree
    except ValueError:
        raise  # bad input (e.g. a shape the bijector rejects): the bijector's own message
    except Exception as e:  # noqa: BLE001 -- any other failure here means "not jittable"
        failures.append(f"jit: the bijector is not jittable ({type(e).__name__}: {e})")
        res = compute(bijector, x, jacobians=False)  # eager; Jacobians need tracing too
    else:
        if eager:
            ref = compute(bijector, x, jacobians=False)
            for k in ("y", "ldj_f", "x_rec", "ldj_i"):
                record(f"jit vs eager ({k})", res[k], ref[k])
    y, ldj_f, x_rec, ldj_i = res["y"], res["ldj_f"], res["x_rec"], res["ldj_i"]
    event_out = y.shape[y.ndim - n_out :]

    for name, v in (("forward output", y), ("forward log-det", ldj_f), ("inverse output", x_rec), ("inverse log-det", ldj_i)):
        if not np.all(np.isfinite(np.asarray(v))):
            failures.append(f"finite: {name} has {int((~np.isfinite(np.asarray(v))).sum())} non-finite values")
    for name, v in (("forward", ldj_f), ("inverse", ldj_i)):
        if tuple(v.shape) != tuple(batch_shape):
            failures.append(f"log-det shape: {name} log-det has shape {tuple(v.shape)}, expected batch shape {tuple(batch_shape)}")

    record("round trip", x_rec, x)
    record("log-det symmetry", ldj_f, -ldj_i)
    if math.prod(event_out) != math.prod(event_in):
        failures.append(f"jacobian: event sizes differ ({event_in} -> {event_out}); not a bijection of R^n")
    elif "jac_f" in res:  # absent only when not jittable (reported above): it needs tracing
        record("forward log-det vs slogdet(jacfwd)", ldj_f.reshape(-1)[:num_jac], res["jac_f"])
        record("inverse log-det vs slogdet(jacfwd)", ldj_i.reshape(-1)[:num_jac], res["jac_i"])
    if batch_shape:
        record("batched (forward output)", res["y0"], y.reshape((-1, *event_out))[0])
        record("batched (forward log-det)", res["ldj_f0"], ldj_f.reshape(-1)[0])

    if failures:
        lines = "\n  - ".join(failures)
        raise ValueError(
            f"check_bijector: {len(failures)} propert{'y' if len(failures) == 1 else 'ies'} failed for "
            f"{type(bijector).__name__} on x of shape {tuple(x.shape)}:\n  - {lines}"
        )
    return report
