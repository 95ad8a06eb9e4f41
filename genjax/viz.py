"""Pictures with Pillow: image grids and 2-D scatter/density plots, written as PNG."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw


def image_grid(images: np.ndarray, *, ncol: int | None = None, pad: int = 1, scale: int = 1) -> Image.Image:
    """Tiles ``(n, H, W, C)`` (C in {1, 3}) or ``(n, D)`` square images with values in [0, 1]."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(f"images of shape {x.shape} are flat but not square; pass (n, H, W, C)")
        x = x.reshape(-1, side, side, 1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, H, W, C) with C in (1, 3), got {x.shape}")
    n, h, w, c = x.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    canvas = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32) * 0.5
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    arr = (np.clip(np.nan_to_num(canvas), 0.0, 1.0) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_image_grid(path: str | os.PathLike, images: np.ndarray, **kwargs) -> None:
    image_grid(images, **kwargs).save(path)


def scatter_2d(
    points: np.ndarray,
    *,
    lim: float = 4.5,
    size: int = 400,
    reference: np.ndarray | None = None,
    marks: np.ndarray | None = None,
) -> Image.Image:
    """A 2-D point cloud on ``[-lim, lim]^2``: ``points`` dark blue, ``reference`` light grey
    beneath, ``marks`` (e.g. mode centres) as thin red rings drawn *under* the points, so a
    tight cluster on a mode stays visible (the ring's radius scales with ``size``)."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p):
        p = np.asarray(p, np.float64)
        u = (p[:, 0] + lim) / (2 * lim) * (size - 1)
        v = (lim - p[:, 1]) / (2 * lim) * (size - 1)
        return np.stack([u, v], -1)

    draw.line([(size // 2, 0), (size // 2, size)], fill=(230, 230, 230))
    draw.line([(0, size // 2), (size, size // 2)], fill=(230, 230, 230))
    if marks is not None:
        r = max(2.0, size / 60)
        for u, v in to_px(marks):
            draw.ellipse([(u - r, v - r), (u + r, v + r)], outline=(220, 60, 60))
    for pts, colour in ((reference, (190, 190, 190)), (points, (20, 40, 160))):
        if pts is None:
            continue
        for u, v in to_px(pts):
            if 0 <= u < size and 0 <= v < size:
                draw.point((u, v), fill=colour)
    return img


def density_heatmap(log_density: np.ndarray, *, size: int = 400) -> Image.Image:
    """A heat map of ``exp(log_density)`` on a square grid ``(g, g)`` (row 0 = top)."""
    d = np.exp(np.asarray(log_density, np.float64) - np.nanmax(log_density))
    d = np.nan_to_num(d)
    arr = (255 * (1.0 - d / max(d.max(), 1e-300))).astype(np.uint8)
    return Image.fromarray(arr, mode="L").resize((size, size), Image.BILINEAR)
