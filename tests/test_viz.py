"""genjax.viz.scatter_2d: points land where the coordinates say and stay visible over the marks."""

import numpy as np

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
