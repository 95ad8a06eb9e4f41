"""Pictures with Pillow: image grids, 2-D scatter/density plots, training curves and
similarity heat maps, written as PNG."""

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


# ---------------------------------------------------------------------- training curves
#: Line colour of seed ``i`` (``SEED_COLOURS[i % 10]``, the tab10 palette).
SEED_COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
#: Train metrics drawn (when recorded), before every evaluation metric.
TRAIN_CURVES = ("loss", "grad_norm", "d_loss", "d_grad_norm")
_NOT_METRICS = {"step", "kind", "seed", "skipped_updates", "nonfinite_steps"}


def curve_data(records: list[dict]) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The curves of a run's metric records (``fit``'s ``history`` or ``metrics.jsonl``):
    ``{panel: {seed: (steps, values)}}``, panels ``loss``, ``grad_norm`` (and a GAN's
    ``d_loss``, ``d_grad_norm``) of the train records, then ``eval <name>`` for every
    numeric evaluation metric. Records without ``seed`` are seed 0; non-finite values
    (NaN, Inf, their string forms) are left out of the lines."""
    panels: dict[str, dict[int, tuple[list, list]]] = {}

    def add(panel, rec, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return
        try:
            v = float(value)
        except ValueError:
            return
        steps, values = panels.setdefault(panel, {}).setdefault(int(rec.get("seed", 0)), ([], []))
        if np.isfinite(v):
            steps.append(int(rec["step"]))
            values.append(v)

    for rec in records:
        if rec.get("kind") == "train":
            for name in TRAIN_CURVES:
                if name in rec:
                    add(name, rec, rec[name])
    for rec in records:
        if rec.get("kind") == "eval":
            for name, value in rec.items():
                if name not in _NOT_METRICS:
                    add(f"eval {name}", rec, value)
    order = [n for n in TRAIN_CURVES if n in panels] + [n for n in panels if n not in TRAIN_CURVES]
    return {
        n: {s: (np.asarray(a, np.int64), np.asarray(b, np.float64)) for s, (a, b) in sorted(panels[n].items())}
        for n in order
    }


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def curves_image(
    records: list[dict], *, ncol: int = 2, panel_size: tuple[int, int] = (380, 240)
) -> tuple[Image.Image, dict]:
    """Every curve of a run, one panel per metric against steps, one line per seed
    (colour ``SEED_COLOURS[seed]``). Returns the picture and :func:`curve_data`.

    Raises:
      ValueError: no train or eval record with a numeric metric.
    """
    data = curve_data(records)
    if not data:
        raise ValueError("records hold no train or eval metric to plot (is metrics.jsonl empty?)")
    w, h = panel_size
    nrow = -(-len(data) // ncol)
    img = Image.new("RGB", (ncol * w, nrow * h), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 58, 12, 22, 26
    seeds = sorted({s for curves in data.values() for s in curves})
    for p, (name, curves) in enumerate(data.items()):
        ox, oy = (p % ncol) * w, (p // ncol) * h
        x0, y0, x1, y1 = ox + left, oy + top, ox + w - right, oy + h - bottom
        draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
        draw.text((ox + left, oy + 5), name, fill=(0, 0, 0))
        xs = np.concatenate([c[0] for c in curves.values()]) if curves else np.zeros(0)
        ys = np.concatenate([c[1] for c in curves.values()]) if curves else np.zeros(0)
        if not ys.size:
            draw.text((x0 + 8, y0 + 8), "no finite values", fill=(200, 0, 0))
            continue
        xlo, xhi = float(xs.min()), float(xs.max())
        ylo, yhi = float(ys.min()), float(ys.max())
        if xhi == xlo:
            xlo, xhi = xlo - 1, xhi + 1
        if yhi == ylo:
            ylo, yhi = ylo - max(abs(ylo), 1.0) * 0.05, yhi + max(abs(yhi), 1.0) * 0.05
        pad = 0.04 * (yhi - ylo)
        ylo, yhi = ylo - pad, yhi + pad
        draw.text((ox + 2, y0), _fmt(yhi), fill=(80, 80, 80))
        draw.text((ox + 2, y1 - 10), _fmt(ylo), fill=(80, 80, 80))
        draw.text((x0, y1 + 4), _fmt(xlo), fill=(80, 80, 80))
        label = f"{_fmt(xhi)} steps"
        draw.text((x1 - 6 * len(label), y1 + 4), label, fill=(80, 80, 80))

        def px(s, v):
            return (x0 + 1 + (s - xlo) / (xhi - xlo) * (x1 - x0 - 2), y1 - 1 - (v - ylo) / (yhi - ylo) * (y1 - y0 - 2))

        for seed, (s, v) in curves.items():
            colour = SEED_COLOURS[seed % len(SEED_COLOURS)]
            pts = [px(a, b) for a, b in zip(s, v)]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for u, q in pts if len(pts) <= 1 else []:
                draw.ellipse([(u - 2, q - 2), (u + 2, q + 2)], fill=colour)
        if p == 0 and len(seeds) > 1:  # the legend: one entry per seed
            for j, seed in enumerate(seeds[:10]):
                draw.text((x1 - 52, y0 + 4 + 11 * j), f"seed {seed}", fill=SEED_COLOURS[seed % len(SEED_COLOURS)])
    return img, data


def save_curves(path: str | os.PathLike, records: list[dict], **kwargs) -> dict:
    """Writes :func:`curves_image` of ``records`` to ``path`` (PNG); returns the plotted data."""
    img, data = curves_image(records, **kwargs)
    img.save(path)
    return data


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (a torn last line is skipped)."""
    import json

    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: float) -> str:
    """``text`` cut (with ``..``) to at most ``width`` pixels in the default font."""
    text = str(text)
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "..") > width:
        text = text[:-1]
    return text + ".." if text else ""


def similarity_plot(
    sim: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    path: str | os.PathLike | None,
    *,
    col_images: np.ndarray | None = None,
    cell: int = 40,
    label_width: int = 160,
) -> Image.Image:
    """A heat map of a similarity matrix, e.g. text prompts (rows) against images (columns).

    Cells go from white (the smallest value) to dark blue (the largest), each with its value
    (when ``cell >= 30``); each row's largest cell is outlined in red. Row labels sit on the left
    (cut to ``label_width``), column labels on top, under the optional column images.

    Args:
      sim: ``(n, m)`` finite values.
      row_labels: ``n`` strings; col_labels: ``m`` strings.
      path: where the PNG is written (``None``: not written).
      col_images: ``(m, H, W)`` or ``(m, H, W, C)`` (C in {1, 3}) values in [0, 1], drawn as
        column headers (``cell - 2`` pixels square, in a ``cell`` high band).
      cell: side of a cell in pixels.
      label_width: width of the row-label column in pixels.

    Returns:
      The picture: ``label_width + m * cell + 4`` wide and
      ``(cell if col_images else 0) + 16 + n * cell + 16`` high.

    Raises:
      ValueError: naming the argument whose size does not match ``sim``.
    """
    s = np.asarray(sim, np.float64)
    if s.ndim != 2 or 0 in s.shape or not np.isfinite(s).all():
        raise ValueError(f"sim must be a non-empty finite matrix (rows, columns), got shape {s.shape}")
    n, m = s.shape
    if len(row_labels) != n or len(col_labels) != m:
        raise ValueError(f"row_labels and col_labels must have {n} and {m} entries (sim's shape), "
                         f"got {len(row_labels)} and {len(col_labels)}")
    if cell < 8 or label_width < 0:
        raise ValueError(f"cell must be >= 8 and label_width >= 0 pixels, got cell={cell}, label_width={label_width}")
    tiles = None
    if col_images is not None:
        x = np.asarray(col_images, np.float32)
        x = x[..., None] if x.ndim == 3 else x
        if x.ndim != 4 or len(x) != m or x.shape[-1] not in (1, 3):
            raise ValueError(f"col_images must have shape ({m}, H, W) or ({m}, H, W, C) with C in (1, 3), got {x.shape}")
        tiles = [image_grid(x[j : j + 1], pad=0).convert("RGB").resize((cell - 2, cell - 2), Image.NEAREST) for j in range(m)]
    head = (cell if tiles else 0) + 16
    img = Image.new("RGB", (label_width + m * cell + 4, head + n * cell + 16), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = float(s.min()), float(s.max())
    t = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    dark = np.array([8, 48, 107], np.float64)
    best = s.argmax(axis=1)
    for j in range(m):
        x0 = label_width + j * cell
        if tiles:
            img.paste(tiles[j], (x0 + 1, 1))
        draw.text((x0 + 1, head - 14), _fit_text(draw, col_labels[j], cell - 2), fill=(0, 0, 0))
    for i in range(n):
        y0 = head + i * cell
        draw.text((2, y0 + cell // 2 - 6), _fit_text(draw, row_labels[i], label_width - 6), fill=(0, 0, 0))
        for j in range(m):
            x0 = label_width + j * cell
            colour = tuple(int(round(c)) for c in 255 + t[i, j] * (dark - 255))
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour)
            if cell >= 30:
                draw.text((x0 + cell // 2, y0 + cell // 2), f"{s[i, j]:.2f}", anchor="mm",
                          fill=(255, 255, 255) if t[i, j] > 0.5 else (0, 0, 0))
        xb = label_width + best[i] * cell
        draw.rectangle([xb, y0, xb + cell - 1, y0 + cell - 1], outline=(220, 30, 30), width=2)
    legend = f"white = {_fmt(lo)}, dark blue = {_fmt(hi)}; red box: each row's largest"
    draw.text((2, head + n * cell + 2), _fit_text(draw, legend, img.width - 4), fill=(80, 80, 80))
    if path is not None:
        img.save(path)
    return img


#: Colour of the guidance-sweep points (the lines between them are grey).
SWEEP_POINT = (214, 39, 40)


def guidance_sweep_plot(
    weights,
    fid,
    prompt_acc,
    path: str | os.PathLike | None = None,
    *,
    size: tuple[int, int] = (480, 360),
) -> Image.Image:
    """FID against prompt accuracy over a classifier-free guidance sweep: one point per weight,
    labelled ``w=...``, joined in the order given.

    Prompt accuracy runs to the right, FID up. Each axis spans its values padded by 8% of
    their range on each side (a range of 0 becomes +-0.05 for accuracy, +-5% of the value, at
    least 0.5, for FID), inside a frame of 62 px on the left, 16 on the right, 26 on top and
    34 at the bottom; the axis ends are written at the frame's corners. Points are filled
    circles of radius 4 in :data:`SWEEP_POINT`.

    Args:
        weights: ``k`` guidance weights.
        fid: ``k`` FIDs, one per weight.
        prompt_acc: ``k`` prompt accuracies, one per weight.
        path: where the PNG is written (``None``: not written).
        size: the picture's ``(width, height)`` in pixels.

    Returns:
        The picture.

    Raises:
        ValueError: lengths differ, are 0, or a value is not finite.
    """
    cols = [np.asarray(v, np.float64).reshape(-1) for v in (weights, fid, prompt_acc)]
    if len({len(c) for c in cols}) != 1 or not len(cols[0]) or not all(np.isfinite(c).all() for c in cols):
        raise ValueError(f"weights, fid and prompt_acc must be equally long, non-empty and finite, got lengths "
                         f"{[len(c) for c in cols]}")
    w, f, a = cols
    width, height = size
    left, right, top, bottom = 62, 16, 26, 34
    if width < left + right + 40 or height < top + bottom + 40:
        raise ValueError(f"size must leave a plot area of at least 40 x 40 pixels, got {size}")
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = left, top, width - right, height - bottom

    def span(v, flat):
        lo, hi = float(v.min()), float(v.max())
        pad = 0.08 * (hi - lo) if hi > lo else flat
        return lo - pad, hi + pad

    alo, ahi = span(a, 0.05)
    flo, fhi = span(f, max(0.05 * abs(float(f[0])), 0.5))
    pts = [(x0 + (u - alo) / (ahi - alo) * (x1 - x0), y1 - (v - flo) / (fhi - flo) * (y1 - y0)) for u, v in zip(a, f)]
    draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
    draw.text((x0, 6), "guidance sweep: FID (down is better) vs prompt accuracy", fill=(0, 0, 0))
    draw.text((2, y0), _fmt(fhi), fill=(80, 80, 80))
    draw.text((2, y1 - 10), _fmt(flo), fill=(80, 80, 80))
    draw.text((2, (y0 + y1) // 2), "FID", fill=(0, 0, 0))
    draw.text((x0, y1 + 4), _fmt(alo), fill=(80, 80, 80))
    draw.text((x1 - 6 * len(_fmt(ahi)), y1 + 4), _fmt(ahi), fill=(80, 80, 80))
    draw.text(((x0 + x1) // 2 - 45, y1 + 18), "prompt accuracy", fill=(0, 0, 0))
    if len(pts) > 1:
        draw.line(pts, fill=(170, 170, 170), width=1)
    for (u, v), weight in zip(pts, w):
        draw.ellipse([(u - 4, v - 4), (u + 4, v + 4)], fill=SWEEP_POINT)
        draw.text((u + 6, v - 12), f"w={weight:g}", fill=(0, 0, 0))
    if path is not None:
        img.save(path)
    return img


def series_plot(
    series: dict,
    path: str | os.PathLike | None = None,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_x: bool = True,
    size: tuple[int, int] = (560, 380),
) -> Image.Image:
    """Lines of ``y`` against ``x``, one per named series (e.g. FID against network evaluations
    per sampler), coloured :data:`SEED_COLOURS` in the order given, with a legend; ``log_x``: a
    logarithmic x axis (``x`` must then be positive).

    Args:
        series: ``{name: (x, y)}``, each a pair of equally long sequences; non-finite points are left out.
        path: where the PNG is written (``None``: not written).
        title, xlabel, ylabel: the texts.
        log_x: logarithmic x axis.
        size: ``(width, height)`` in pixels.

    Raises:
        ValueError: no finite point, unequal lengths, or a non-positive ``x`` with ``log_x``.
    """
    clean = {}
    for name, (x, y) in series.items():
        x, y = np.asarray(x, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"series {name!r}: x and y must be equally long, got {len(x)} and {len(y)}")
        if log_x and np.any(x <= 0):
            raise ValueError(f"series {name!r}: x must be positive for log_x, got min {x.min()}")
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.any():
            clean[name] = (np.log10(x[keep]) if log_x else x[keep], y[keep])
    if not clean:
        raise ValueError("series holds no finite point to plot")
    width, height = size
    left, right, top, bottom = 62, 130, 26, 34
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = left, top, width - right, height - bottom
    xs = np.concatenate([v[0] for v in clean.values()])
    ys = np.concatenate([v[1] for v in clean.values()])
    xlo, xhi = float(xs.min()), float(xs.max())
    ylo, yhi = float(ys.min()), float(ys.max())
    xlo, xhi = (xlo - 0.5, xhi + 0.5) if xhi == xlo else (xlo - 0.04 * (xhi - xlo), xhi + 0.04 * (xhi - xlo))
    ylo, yhi = (ylo - 0.5, yhi + 0.5) if yhi == ylo else (ylo - 0.06 * (yhi - ylo), yhi + 0.06 * (yhi - ylo))

    def px(u, v):
        return x0 + (u - xlo) / (xhi - xlo) * (x1 - x0), y1 - (v - ylo) / (yhi - ylo) * (y1 - y0)

    draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
    draw.text((x0, 6), title, fill=(0, 0, 0))
    draw.text((2, y0), _fmt(yhi), fill=(80, 80, 80))
    draw.text((2, y1 - 10), _fmt(ylo), fill=(80, 80, 80))
    draw.text((2, (y0 + y1) // 2), ylabel[:9], fill=(0, 0, 0))
    tick = (lambda u: _fmt(10**u)) if log_x else _fmt
    draw.text((x0, y1 + 4), tick(xlo), fill=(80, 80, 80))
    draw.text((x1 - 6 * len(tick(xhi)), y1 + 4), tick(xhi), fill=(80, 80, 80))
    draw.text(((x0 + x1) // 2 - 3 * len(xlabel), y1 + 18), xlabel + (" (log)" if log_x else ""), fill=(0, 0, 0))
    for j, (name, (u, v)) in enumerate(clean.items()):
        colour = SEED_COLOURS[j % len(SEED_COLOURS)]
        pts = [px(a, b) for a, b in zip(u, v)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for a, b in pts:
            draw.ellipse([(a - 3, b - 3), (a + 3, b + 3)], fill=colour)
        draw.text((x1 + 8, y0 + 4 + 13 * j), str(name)[:20], fill=colour)
    if path is not None:
        img.save(path)
    return img


def labelled_rows(
    rows: list[tuple[str, np.ndarray]],
    path: str | os.PathLike | None = None,
    *,
    col_labels: list[str] | None = None,
    scale: int = 1,
    label_width: int = 140,
) -> Image.Image:
    """One row of images per label, e.g. the same prompts (columns) drawn by several models (rows).

    Args:
      rows: ``[(label, images (n, H, W, C) in [0, 1]), ...]``, the same ``n`` and image shape in every row.
      path: where to save the PNG (None: only return the image).
      col_labels: ``n`` column titles (e.g. the prompts), cut to the column width.
      scale: pixel magnification of the images.
      label_width: pixels left of the images for the row labels (cut to fit).

    Returns:
      The picture (RGB).

    Raises:
      ValueError: no rows, rows of different shapes, or ``col_labels`` of the wrong length.
    """
    if not rows:
        raise ValueError("rows must hold at least one (label, images) pair")
    shapes = {np.shape(x) for _, x in rows}
    if len(shapes) != 1:
        raise ValueError(f"every row must hold images of one shape (n, H, W, C), got shapes {sorted(shapes)}")
    n = np.shape(rows[0][1])[0]
    if col_labels is not None and len(col_labels) != n:
        raise ValueError(f"col_labels must have one title per column ({n}), got {len(col_labels)}")
    strips = [image_grid(x, ncol=n, scale=scale).convert("RGB") for _, x in rows]
    top = 16 if col_labels is not None else 4
    width, height = label_width + strips[0].width + 4, top + sum(s.height for s in strips) + 4
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    col_w = strips[0].width / n
    for j, text in enumerate(col_labels or ()):
        draw.text((label_width + j * col_w + 2, 2), _fit_text(draw, text, col_w - 4), fill=(0, 0, 0))
    y = top
    for (label, _), strip in zip(rows, strips):
        draw.text((4, y + strip.height // 2 - 6), _fit_text(draw, label, label_width - 8), fill=(0, 0, 0))
        canvas.paste(strip, (label_width, y))
        y += strip.height
    if path is not None:
        canvas.save(path)
    return canvas
