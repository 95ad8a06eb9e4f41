"""Mixed precision: bfloat16 computation with float32 parameters.

A model is a frozen dataclass whose networks are linen modules. Modules that take a
computation ``dtype`` (``genjax.nn.ConvEncoder``/``ConvDecoder``, ``genjax.nn.unet.UNet``,
flax's own layers) compute in that dtype while their parameters keep
``param_dtype=float32`` and their outputs are cast back to float32. So the master
parameters, the optimizer state and the gradients (the cotangent of the cast) stay
float32, and the model's loss heads (likelihoods, KL, noise-matching errors) are
evaluated in float32 on float32 network outputs: only the networks' matmuls and
convolutions run in bfloat16. No loss scaling is needed: bfloat16 has float32's
exponent range.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}  # float16 would need loss scaling


def canonical_dtype(dtype: Any, *, name: str = "compute_dtype"):
    """``"bfloat16"``/``jnp.bfloat16``/... -> the numpy dtype; ``None`` stays ``None``."""
    if dtype is None:
        return None
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES or isinstance(dtype, bool):
        raise ValueError(f"{name} must be one of {sorted(_DTYPES)} (or None for float32), got {dtype!r}")
    return dt


def _module_fields(model) -> list[str]:
    """Names of ``model``'s dataclass fields holding a linen module with a ``dtype`` field."""
    if not dataclasses.is_dataclass(model):
        return []
    return [
        f.name for f in dataclasses.fields(model)
        if isinstance(getattr(model, f.name, None), nn.Module)
        and "dtype" in {g.name for g in dataclasses.fields(getattr(model, f.name))}
    ]


def with_compute_dtype(model, dtype: Any):
    """A copy of ``model`` whose networks compute in ``dtype`` (e.g. ``"bfloat16"``).

    Every dataclass field of ``model`` holding a linen module with a ``dtype``
    attribute is cloned with ``dtype=dtype``; everything else (and the parameter
    tree, so checkpoints and ``init`` are unchanged) stays as it is. ``None`` or
    float32 returns ``model`` itself.

    Raises:
      ValueError: an unknown dtype, or a model none of whose networks takes a
        computation dtype (e.g. the MLP models; use the conv / UNet constructors).
    """
    dt = canonical_dtype(dtype)
    if dt is None or dt == jnp.dtype(jnp.float32):
        return model
    names = _module_fields(model)
    if not names:
        raise ValueError(
            f"compute_dtype={dt.name}: {type(model).__name__} has no network with a computation dtype "
            "(supported: models built from genjax.nn ConvEncoder/ConvDecoder or the UNet, e.g. conv_vae, "
            "the image diffusion models)"
        )
    return dataclasses.replace(model, **{n: getattr(model, n).clone(dtype=dt) for n in names})
