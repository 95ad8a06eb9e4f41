"""Tests of genjax.data.attributes on hand-made images (CPU, no data files)."""

from __future__ import annotations

import numpy as np
import pytest

from genjax.data import attributes as at


def _bar(width: int, *, length: int = 16, side: int = 24, shear: float = 0.0) -> np.ndarray:
    """A vertical bar ``width`` pixels wide, sheared so that it moves ``shear`` pixels to the
    right per pixel up (rows counted downwards), centred on a ``side x side`` canvas."""
    img = np.zeros((side, side), np.float32)
    top, centre = (side - length) // 2, side / 2
    for r in range(top, top + length):
        c0 = int(round(centre - width / 2 + shear * ((side - 1) / 2 - r)))
        img[r, c0:c0 + width] = 1.0
    return img


def _zhang_suen_loops(ink: np.ndarray) -> np.ndarray:
    """A plain per-pixel Zhang-Suen (the textbook loops), to check the vectorised one."""
    img = np.pad(ink.astype(int), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            delete = []
            for r in range(1, img.shape[0] - 1):
                for c in range(1, img.shape[1] - 1):
                    if not img[r, c]:
                        continue
                    p = [img[r - 1, c], img[r - 1, c + 1], img[r, c + 1], img[r + 1, c + 1],
                         img[r + 1, c], img[r + 1, c - 1], img[r, c - 1], img[r - 1, c - 1]]
                    b = sum(p)
                    a = sum(p[i] == 0 and p[(i + 1) % 8] == 1 for i in range(8))
                    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                    ok = (p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0) if step == 0 else (p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0)
                    if 2 <= b <= 6 and a == 1 and ok:
                        delete.append((r, c))
            for r, c in delete:
                img[r, c] = 0
            changed |= bool(delete)
    return img[1:-1, 1:-1].astype(bool)


def test_skeleton_matches_textbook_loops(rng):
    blobs = np.zeros((4, 14, 14), np.float32)
    blobs[0] = _bar(4, length=10, side=14)
    blobs[1, 3:11, 2:12] = 1.0  # a filled box
    blobs[2] = (rng.random((14, 14)) < 0.55).astype(np.float32)  # random ink
    blobs[3, 2:12, 2:5] = 1.0
    blobs[3, 9:12, 2:12] = 1.0  # an L
    got = at.skeleton(blobs)
    for i in range(4):
        np.testing.assert_array_equal(got[i], _zhang_suen_loops(blobs[i] >= 0.5), err_msg=f"image {i}")
        assert not (got[i] & (blobs[i] < 0.5)).any()  # a subset of the ink


def test_thickness_orders_bars_and_reads_their_width():
    x = np.stack([_bar(w) for w in (1, 2, 4, 6)])
    t = at.thickness(x)
    assert np.all(np.diff(t) > 0), t
    np.testing.assert_allclose(t[1:], [2, 4, 6], rtol=1e-12)  # exact for a w x L bar
    # A one-pixel line is its own skeleton (no ends lost): t solves 16 = t (16 + t).
    assert t[0] == pytest.approx((np.sqrt(16**2 + 4 * 16) - 16) / 2, rel=1e-12)
    assert t[0] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("shear", [-0.5, -0.2, 0.3, 0.6])
def test_slant_sign_and_value_of_a_sheared_bar(shear):
    x = _bar(3, length=18, side=28, shear=shear)[None]
    s = float(at.slant(x)[0])
    assert np.sign(s) == np.sign(shear)  # positive = top to the right = leaning right
    assert s == pytest.approx(shear, abs=0.05)
    assert float(at.slant(_bar(3, length=18, side=28)[None])[0]) == pytest.approx(0.0, abs=1e-9)


def test_slant_equals_plain_weighted_moments(rng):
    x = rng.random((3, 9, 7))
    s = at.slant(x)
    for i in range(3):
        r, c = np.mgrid[:9, :7]
        w = x[i] / x[i].sum()
        mr, mc = (w * r).sum(), (w * c).sum()
        expected = -(w * (r - mr) * (c - mc)).sum() / (w * (r - mr) ** 2).sum()
        assert s[i] == pytest.approx(expected, rel=1e-9)


def test_size_of_drawn_boxes_and_brightness():
    x = np.zeros((3, 20, 20), np.float32)
    x[0, 2:14, 5:8] = 1.0  # 12 x 3 box
    x[1, 0:20, 0:20] = 0.8  # 20 x 20
    x[2, 4:6, 4:13] = 0.3  # below the ink threshold: size 0, brightness 0.3
    x[2, 15, 15] = 0.05  # below the object threshold: ignored
    np.testing.assert_allclose(at.size(x), [6.0, 20.0, 0.0])
    np.testing.assert_allclose(at.brightness(x), [1.0, 0.8, 0.3], rtol=1e-6)


def test_empty_images_measure_zero_not_nan():
    m = at.measure(np.zeros((2, 8, 8, 1), np.float32), list(at.ATTRIBUTES))
    for name, v in m.items():
        np.testing.assert_array_equal(v, [0.0, 0.0], err_msg=name)


def test_measure_is_vectorised_and_takes_a_channel_axis():
    x = np.stack([_bar(w, shear=s) for w, s in ((2, 0.3), (5, -0.2), (3, 0.0))])
    batch = at.measure(x[..., None], ["thickness", "slant", "size", "brightness"])
    for i in range(3):
        one = at.measure(x[i:i + 1], ["thickness", "slant", "size", "brightness"])
        for name in batch:
            assert batch[name].shape == (3,)
            assert batch[name][i] == pytest.approx(float(one[name][0]), rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"x must have shape \(n, H, W\) or \(n, H, W, 1\)"):
        at.thickness(np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"x must have shape"):
        at.slant(np.zeros((2, 8, 8, 3)))
    with pytest.raises(TypeError, match="x must hold floats"):
        at.size(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="unknown attribute 'width'.*thickness"):
        at.measure(np.zeros((1, 8, 8)), ["width"])
    with pytest.raises(TypeError, match="names must be a sequence"):
        at.measure(np.zeros((1, 8, 8)), "slant")
