"""Attributes measured from images of strokes (digits) or objects (Fashion-MNIST).

Each function takes ``x`` of shape ``(n, H, W)`` or ``(n, H, W, 1)``, floats in ``[0, 1]``
(NumPy or JAX arrays), and returns a float64 NumPy array of shape ``(n,)``. They are
vectorised over ``n`` and are the same functions that caption the data sets
(:mod:`genjax.data.captions`) and later score *generated* images.

Conventions:

* **ink**: the pixels with ``x >= 0.5`` (:data:`INK_THRESHOLD`).
* :func:`thickness`: ink area over skeleton length, in pixels, with the skeleton's ends
  put back: the width ``t`` with ``area = t * (length + t)``, where ``area`` counts the ink
  pixels and ``length`` the pixels of the ink's Zhang-Suen skeleton (a one-pixel-wide
  thinning, vectorised NumPy), which stops about ``t / 2`` short of each end of a stroke.
  A ``w x L`` bar measures exactly ``w`` (plain ``area / length`` would give
  ``w L / (L - w)``: 9.6 for a 6 x 16 bar).
* :func:`slant`: the horizontal shear of the intensity-weighted ink, ``mu11 / mu02`` with
  ``x`` the column (to the right) and ``y`` pointing **up**: the number of pixels the
  stroke moves to the right per pixel upwards. Positive = leaning right (``/``),
  negative = leaning left (``\\``), 0 = upright. A vertical bar sheared by ``c -> c + s *
  (row0 - row)`` measures ``s``; deskewing the image is the shear by ``-slant``.
* :func:`size`: the square root of the ink's bounding-box area, ``sqrt(height * width)``
  in pixels (MNIST digits are all about 20 pixels tall, so the height alone hardly
  varies; the box area separates a narrow from a wide digit).
* :func:`brightness`: the mean intensity over the object's pixels ``x > 0.1``
  (:data:`OBJECT_THRESHOLD`; Fashion-MNIST garments can be darker than 0.5 all over).

An image with no ink (or no object) measures 0 on every attribute: a finite value, so
binning and captioning never see NaN.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = [
    "ATTRIBUTES",
    "INK_THRESHOLD",
    "OBJECT_THRESHOLD",
    "brightness",
    "measure",
    "size",
    "skeleton",
    "slant",
    "thickness",
]

#: Intensity at or above which a pixel is ink (thickness, size, skeleton).
INK_THRESHOLD = 0.5
#: Intensity above which a pixel belongs to the object (brightness).
OBJECT_THRESHOLD = 0.1
#: Images per block in the thinning (bounds its memory at about 40 MB for 28x28 images).
_BLOCK = 4096


def _images(x, name: str = "x") -> np.ndarray:
    """``x`` as a float ``(n, H, W)`` NumPy array; raises naming ``name`` otherwise."""
    a = np.asarray(x)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (n, H, W) or (n, H, W, 1), got shape {np.shape(x)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must hold floats in [0, 1], got dtype {a.dtype}")
    return a


def _zhang_suen_block(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a block of boolean images ``(b, H, W)``, all at once."""
    img = np.pad(ink, ((0, 0), (1, 1), (1, 1))).astype(np.uint8)
    h, w = ink.shape[1:]
    active = np.arange(img.shape[0])
    while active.size:
        changed = np.zeros(active.size, bool)
        for step in (0, 1):
            sub = img[active]
            c = sub[:, 1:-1, 1:-1]
            # Neighbours P2..P9, clockwise from north.
            p = [sub[:, 0:h, 1:w + 1], sub[:, 0:h, 2:], sub[:, 1:h + 1, 2:], sub[:, 2:, 2:],
                 sub[:, 2:, 1:w + 1], sub[:, 2:, 0:w], sub[:, 1:h + 1, 0:w], sub[:, 0:h, 0:w]]
            count = sum(q.astype(np.int16) for q in p)
            trans = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int16) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            delete = (c == 1) & (count >= 2) & (count <= 6) & (trans == 1) & cond
            if delete.any():
                c = c & ~delete
                img[active, 1:-1, 1:-1] = c
                changed |= delete.reshape(delete.shape[0], -1).any(1)
        active = active[changed]
    return img[:, 1:-1, 1:-1].astype(bool)


def skeleton(x) -> np.ndarray:
    """The one-pixel-wide skeleton of each image's ink (Zhang & Suen, 1984).

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``; ink is ``x >= 0.5``.

    Returns:
        bool ``(n, H, W)``: the skeleton pixels (a subset of the ink).

    Raises:
        ValueError: ``x`` is not of rank 3, or rank 4 with one channel.
    """
    ink = _images(x) >= INK_THRESHOLD
    out = np.empty(ink.shape, bool)
    for start in range(0, ink.shape[0], _BLOCK):
        out[start:start + _BLOCK] = _zhang_suen_block(ink[start:start + _BLOCK])
    return out


def thickness(x) -> np.ndarray:
    """Stroke thickness in pixels: ink area over skeleton length, ends included (0 if empty).

    The width ``t >= 0`` solving ``area = t * (length + t)`` (``area``: ink pixels,
    ``length``: skeleton pixels), i.e. ``t = (sqrt(length**2 + 4 area) - length) / 2``:
    a stroke ``t`` wide whose skeleton stops ``t / 2`` short of each end. A ``w x L`` bar
    measures ``w``.

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.

    Returns:
        float ``(n,)``.
    """
    a = _images(x)
    area = (a >= INK_THRESHOLD).sum((1, 2)).astype(np.float64)
    length = skeleton(a).sum((1, 2)).astype(np.float64)
    return (np.sqrt(length**2 + 4.0 * area) - length) / 2.0


def slant(x) -> np.ndarray:
    """Slant: the shear ``mu11 / mu02`` of the intensity-weighted image (0 for an empty one).

    With ``c`` the column and ``u = -row`` (up), ``slant = cov(c, u) / var(u)`` under the
    weights ``x``: pixels to the right per pixel up. Positive leans right (``/``).

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.

    Returns:
        float ``(n,)``.
    """
    a = _images(x).astype(np.float64)
    n, h, w = a.shape
    mass = a.sum((1, 2))
    safe = np.maximum(mass, 1e-12)
    rows = np.arange(h, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    row_mass, col_mass = a.sum(2), a.sum(1)
    mr = row_mass @ rows / safe
    mc = col_mass @ cols / safe
    var_r = row_mass @ rows**2 / safe - mr**2
    cov_rc = np.einsum("nij,i,j->n", a, rows, cols) / safe - mr * mc
    ok = (mass > 0) & (var_r > 1e-12)
    return np.where(ok, -cov_rc / np.where(ok, var_r, 1.0), 0.0)


def size(x) -> np.ndarray:
    """Size: ``sqrt(height * width)`` of the ink's bounding box, in pixels (0 if empty).

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.

    Returns:
        float ``(n,)``.
    """
    ink = _images(x) >= INK_THRESHOLD

    def extent(any_along):  # (n, L) bool -> last - first + 1, 0 where none
        length = any_along.shape[1]
        first = np.argmax(any_along, 1)
        last = length - 1 - np.argmax(any_along[:, ::-1], 1)
        return np.where(any_along.any(1), last - first + 1, 0)

    return np.sqrt(extent(ink.any(2)) * extent(ink.any(1)).astype(np.float64))


def brightness(x) -> np.ndarray:
    """Brightness: mean intensity over the object's pixels ``x > 0.1`` (0 if none).

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.

    Returns:
        float ``(n,)`` in ``[0, 1]``.
    """
    a = _images(x).astype(np.float64)
    obj = a > OBJECT_THRESHOLD
    count = obj.sum((1, 2))
    return np.where(count > 0, (a * obj).sum((1, 2)) / np.maximum(count, 1), 0.0)


#: Every attribute by name.
ATTRIBUTES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "thickness": thickness,
    "slant": slant,
    "size": size,
    "brightness": brightness,
}


def measure(x, names: Sequence[str] = ("thickness", "slant", "size")) -> dict[str, np.ndarray]:
    """Measures several attributes of a batch of images.

    Args:
        x: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.
        names: Attribute names, each one of :data:`ATTRIBUTES`.

    Returns:
        ``{name: float (n,)}`` in the order of ``names``.

    Raises:
        ValueError: An unknown name (the message lists the valid ones) or a bad ``x``.

    Examples:
        >>> import numpy as np
        >>> x = np.zeros((1, 12, 12)); x[0, 2:10, 5:8] = 1.0   # a 3-pixel-wide bar
        >>> {k: round(float(v[0]), 2) for k, v in measure(x, ["slant", "size"]).items()}
        {'slant': 0.0, 'size': 4.9}
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of attribute names, got the string {names!r}")
    for name in names:
        if name not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {name!r} in names; valid choices: {', '.join(ATTRIBUTES)}")
    a = _images(x)
    return {name: ATTRIBUTES[name](a) for name in names}
