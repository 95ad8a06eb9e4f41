"""genjax.viz.scatter_2d: points land where the coordinates say and stay visible over the marks."""

import numpy as np
import pytest

from genjax import viz

BLUE, WHITE = (20, 40, 160), (255, 255, 255)


def test_scatter_2d_draws_points_over_marks_and_rings_empty_modes():
    size, lim = 101, 1.0
    modes = np.array([[0.5, 0.5], [-0.5, -0.5]])
    pts = np.array([[0.5, 0.5], [5.0, 5.0]])  # one on the first mode, one off the canvas
    img = np.asarray(viz.scatter_2d(pts, lim=lim, size=size, marks=modes))
    assert img.shape == (size, size, 3)
    # (0.5, 0.5) -> column (0.5 + 1) / 2 * 100 = 75, row (1 - 0.5) / 2 * 100 = 25
    assert tuple(img[25, 75]) == BLUE  # the point is drawn after (above) its mode's ring
    # the empty mode (-0.5, -0.5) -> (row 75, col 25): its ring is red, its centre blank
    r = int(round(max(2.0, size / 60)))
    ring = img[75 - r - 1 : 75 + r + 2, 25 - r - 1 : 25 + r + 2].reshape(-1, 3)
    assert any(p[0] > 150 and p[1] < 100 for p in ring)
    assert tuple(img[75, 25]) == WHITE
    # only the on-canvas point is blue
    assert (img == BLUE).all(-1).sum() == 1


def test_similarity_plot_writes_a_heat_map_of_the_expected_size(tmp_path):
    from PIL import Image

    sim = np.array([[0.9, 0.1, -0.2], [0.0, 0.5, 0.3]])
    rows, cols = ["a thick 7", "a thin 1 written very far to the left of the box"], ["img 0", "img 1", "img 2"]
    path = tmp_path / "sim.png"
    img = viz.similarity_plot(sim, rows, cols, path, cell=40, label_width=100)
    saved = Image.open(path)
    assert saved.format == "PNG" and saved.size == (100 + 3 * 40 + 4, 16 + 2 * 40 + 16) == img.size
    px = np.asarray(saved.convert("RGB"))
    at = lambda i, j: tuple(int(c) for c in px[16 + i * 40 + 5, 100 + j * 40 + 5])  # noqa: E731  (a corner, off the text)
    assert at(0, 0) == (8, 48, 107) and at(0, 2) == WHITE  # the largest value darkest, the smallest white
    assert sum(at(0, 1)) > sum(at(1, 1)) > sum(at(0, 0))  # 0.1 lighter than 0.5 lighter than 0.9
    assert tuple(px[16 + 40 + 1, 100 + 40 + 20]) == (220, 30, 30)  # row 1's largest (column 1) outlined
    # column images as headers: the picture grows by one cell on top and shows the images
    imgs = np.zeros((3, 5, 5))
    imgs[1] = 1.0
    tall = np.asarray(viz.similarity_plot(sim, rows, cols, None, col_images=imgs, cell=40, label_width=100))
    assert tall.shape == (40 + 16 + 80 + 16, 224, 3)
    assert tuple(tall[20, 100 + 20]) == (0, 0, 0) and tuple(tall[20, 140 + 20]) == WHITE
    with pytest.raises(ValueError, match=r"row_labels and col_labels must have 2 and 3 entries"):
        viz.similarity_plot(sim, rows[:1], cols, None)
    with pytest.raises(ValueError, match=r"col_images must have shape \(3, H, W\)"):
        viz.similarity_plot(sim, rows, cols, None, col_images=imgs[:2])


def test_guidance_sweep_plot_places_points_by_accuracy_and_fid(tmp_path):
    from PIL import Image

    weights, fid, acc = [0, 3, 8], [10.0, 20.0, 40.0], [0.5, 0.9, 0.95]
    path = tmp_path / "sweep.png"
    img = viz.guidance_sweep_plot(weights, fid, acc, path, size=(400, 300))
    assert Image.open(path).size == img.size == (400, 300)
    px = np.asarray(img.convert("RGB"))
    red = np.argwhere((px == viz.SWEEP_POINT).all(-1))  # (row, col) of the point markers
    # three blobs, told apart by column (accuracy 0.5 far left of 0.9 and 0.95)
    cols = np.sort(np.unique(red[:, 1]))
    gaps = np.flatnonzero(np.diff(cols) > 1)
    assert len(gaps) == 2
    bounds = [cols[0] - 1, cols[gaps[0]], cols[gaps[1]], cols[-1]]
    centres = [red[(red[:, 1] > lo) & (red[:, 1] <= hi)].mean(0) for lo, hi in zip(bounds, bounds[1:])]
    (r0, c0), (r1, c1), (r2, c2) = centres
    # the documented frame: x from 62 to 384 over acc 0.5 - 0.036 .. 0.95 + 0.036, y from 266 up to 26
    # over FID 10 - 2.4 .. 40 + 2.4
    def at(a, f):
        return (266 - (f - 7.6) / 34.8 * 240, 62 + (a - 0.464) / 0.522 * 322)

    for (r, c), a, f in zip(centres, acc, fid):
        er, ec = at(a, f)
        assert abs(r - er) <= 1.0 and abs(c - ec) <= 1.0, ((r, c), (er, ec))
    assert c0 < c1 < c2 and r0 > r1 > r2  # more accurate to the right, higher FID up
    one = np.asarray(viz.guidance_sweep_plot([3], [5.0], [0.9], None))  # one point: no range, still drawn
    assert (one == viz.SWEEP_POINT).all(-1).any()
    with pytest.raises(ValueError, match="equally long, non-empty and finite"):
        viz.guidance_sweep_plot([0, 1], [1.0], [0.5, 0.6])
    with pytest.raises(ValueError, match="equally long, non-empty and finite"):
        viz.guidance_sweep_plot([0], [float("nan")], [0.5])


def test_series_plot_places_lines_by_value(tmp_path):
    """Two constant series: the one of lower values is drawn lower in the picture (its colour's
    pixel rows all below the other's); bad input raises."""
    a, b = viz.SEED_COLOURS[0], viz.SEED_COLOURS[1]
    img = viz.series_plot({"low": ([5, 10, 50], [1.0, 1.0, 1.0]), "high": ([5, 10, 50], [9.0, 9.0, 9.0])},
                          tmp_path / "s.png", title="FID vs NFE", xlabel="NFE", ylabel="FID")
    assert (tmp_path / "s.png").exists()
    px = np.asarray(img.convert("RGB"))
    frame = px[:, :-130]  # the plot area, without the legend
    rows_a = np.argwhere((frame == a).all(-1))[:, 0]
    rows_b = np.argwhere((frame == b).all(-1))[:, 0]
    assert rows_a.size and rows_b.size and rows_a.min() > rows_b.max()
    with pytest.raises(ValueError, match="positive"):
        viz.series_plot({"x": ([0, 1], [1, 2])})
    with pytest.raises(ValueError, match="no finite"):
        viz.series_plot({"x": ([1, 2], [np.nan, np.nan])})
