"""Pictures of GAN generators: sample grids, StyleGAN style-mixing grids and truncation strips.

Each helper returns the picture as a ``(n, H, W, C)`` array in ``[0, 1]`` together with
the number of grid columns, ready for :func:`genjax.viz.save_image_grid`. Generator
outputs are mapped from the model's ``output_range`` (``[-1, 1]`` for ``tanh``) to
``[0, 1]``. Style mixing and truncation need a
:class:`~genjax.nn.stylegan.StyleGenerator` (``model.is_style``); the noise inputs are
zeroed so that each cell shows the styles alone.

Examples:
  >>> import jax, genjax.gan as gan
  >>> from genjax.gan import plots
  >>> model = gan.stylegan((8, 8, 1), latent_dim=4, w_dim=8, mapping_layers=1, width=4)
  >>> params = model.init(jax.random.PRNGKey(0), jax.numpy.zeros((2, 8, 8, 1)))
  >>> images, ncol = plots.truncation_strip(model, params, jax.random.PRNGKey(1), num_rows=2)
  >>> images.shape, ncol
  ((10, 8, 8, 1), 5)
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.nn.stylegan import mix_styles
from genjax.types import Params, PRNGKeyArray

#: The truncation strip's columns: psi from 1 (no truncation) to 0 (the mean-w image).
TRUNCATION_PSIS = (1.0, 0.75, 0.5, 0.25, 0.0)


def to_unit(model, x) -> np.ndarray:
    """Generator outputs mapped from ``model.output_range`` to ``[0, 1]`` (min-max over
    ``x`` when the model has no output range, e.g. a linear output)."""
    x = np.asarray(x, np.float32)
    rng = getattr(model, "output_range", None)
    lo, hi = rng if rng is not None else (float(x.min()), float(x.max()))
    return np.clip((x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def _need_style(model, what: str) -> None:
    if not getattr(model, "is_style", False):
        raise ValueError(f"{what} needs a StyleGAN (a model whose generator is a StyleGenerator)")


def sample_grid(model, params: Params, key: PRNGKeyArray, *, num: int = 64, ncol: int = 8, **sample_kwargs):
    """``num`` samples in ``[0, 1]`` and ``ncol``; ``sample_kwargs`` go to ``model.sample``
    (e.g. ``truncation_psi``). Samples are in the data's space: a ``data_range="unit"``
    model's are already in ``[0, 1]``, others are mapped from ``output_range``."""
    num = _checks.positive_int("num", num)
    x = model.sample(params, key, num, **sample_kwargs)
    if getattr(model, "data_range", "identity") != "unit":
        x = model.to_model(x) if hasattr(model, "to_model") else x
    return to_unit(model, x), _checks.positive_int("ncol", ncol)


def style_mixing_grid(
    model,
    params: Params,
    key: PRNGKeyArray,
    *,
    num_a: int = 6,
    num_b: int = 4,
    crossover: int | None = None,
) -> tuple[np.ndarray, int]:
    """The StyleGAN style-mixing figure (Karras et al., 2019, Fig. 3), as a grid.

    Row 0 holds the ``num_a`` "source A" images (columns), column 0 the ``num_b``
    "source B" images (rows), the top-left cell is blank (mid grey). Cell ``(r, c)``
    takes the styles of layers ``l < crossover`` (the coarse resolutions) from B_r and
    the rest from A_c: pose and shape follow B, finer features follow A.

    Args:
      model: a GAN with a StyleGenerator.
      params: its parameters.
      key: PRNG key for the latents.
      num_a, num_b: number of A (columns) and B (rows) sources.
      crossover: first layer taken from A; default ``num_layers // 2``.

    Returns:
      ``((num_b + 1) * (num_a + 1), H, W, C)`` images in ``[0, 1]`` and ``ncol = num_a + 1``.
    """
    _need_style(model, "style_mixing_grid")
    num_a = _checks.positive_int("num_a", num_a)
    num_b = _checks.positive_int("num_b", num_b)
    layers = model.generator.num_layers
    crossover = layers // 2 if crossover is None else crossover
    if not 0 <= crossover <= layers:
        raise ValueError(f"crossover must be in [0, {layers}] (the generator's style layers), got {crossover}")
    imgs = to_unit(model, _mixing_images(model, params, key, num_a, num_b, crossover))
    a, b, m = imgs[:num_a], imgs[num_a : num_a + num_b], imgs[num_a + num_b :]
    blank = np.full((1, *imgs.shape[1:]), 0.5, np.float32)
    rows = [np.concatenate([blank, a])]
    for r in range(num_b):
        rows.append(np.concatenate([b[r : r + 1], m[r * num_a : (r + 1) * num_a]]))
    return np.concatenate(rows), num_a + 1


def truncation_strip(
    model,
    params: Params,
    key: PRNGKeyArray,
    *,
    num_rows: int = 4,
    psis: Sequence[float] = TRUNCATION_PSIS,
    w_avg_samples: int = 4096,
) -> tuple[np.ndarray, int]:
    """The truncation trick: each row one ``z``, each column ``w_avg + psi (w(z) - w_avg)``.

    With the default ``psis`` the columns go from ``psi = 1`` (no truncation) to
    ``psi = 0``, where every row shows the same mean-``w`` image.

    Returns:
      ``(num_rows * len(psis), H, W, C)`` images in ``[0, 1]`` and ``ncol = len(psis)``.
    """
    _need_style(model, "truncation_strip")
    num_rows = _checks.positive_int("num_rows", num_rows)
    psis = tuple(float(p) for p in psis)
    if not psis:
        raise ValueError("psis must not be empty")
    imgs = _truncation_images(model, params, key, num_rows, psis, w_avg_samples)
    return to_unit(model, imgs), len(psis)


# jitted cores: the model (a frozen dataclass) and the sizes are static
@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _mixing_images(model, params, key, num_a: int, num_b: int, crossover: int):
    """A images, B images, then the ``num_b x num_a`` mixes (row-major), in model space."""
    layers = model.generator.num_layers
    k_a, k_b = jax.random.split(key)
    mapping = lambda z: model.generator.apply(params["generator"], z, method="mapping")
    w_a = mapping(jax.random.normal(k_a, (num_a, model.latent_dim)))
    w_b = mapping(jax.random.normal(k_b, (num_b, model.latent_dim)))
    broadcast = lambda w: jnp.broadcast_to(w[:, None, :], (w.shape[0], layers, w.shape[-1]))
    # every (r, c) pair: coarse layers from B_r, the rest from A_c
    w_coarse = jnp.repeat(w_b, num_a, axis=0)
    w_fine = jnp.tile(w_a, (num_b, 1))
    mixed = mix_styles(w_coarse, w_fine, jnp.full((num_a * num_b,), crossover), layers)
    ws = jnp.concatenate([broadcast(w_a), broadcast(w_b), mixed])
    return model.synthesize(params, key, ws, noise=False)


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _truncation_images(model, params, key, num_rows: int, psis: tuple, w_avg_samples: int):
    """``(num_rows * len(psis), *data_shape)``, row-major (one z per row), in model space."""
    k_z, k_avg, k_noise = jax.random.split(key, 3)
    w_avg = model.mean_w(params, k_avg, num=w_avg_samples)
    z = jax.random.normal(k_z, (num_rows, model.latent_dim))
    cols = [model.generate(params, k_noise, z, psi=p, w_avg=w_avg, noise=False) for p in psis]
    return jnp.stack(cols, axis=1).reshape(num_rows * len(psis), *model.data_shape)
