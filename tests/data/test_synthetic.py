"""Tests for genjax.data.synthetic (toy 2-D densities)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp
from scipy.stats import multivariate_normal

from genjax.data.synthetic import (
    EXACT_LOG_PROB_DENSITIES,
    TOY_DENSITIES,
    ToyDensity,
    get_toy_density,
)

ALL_NAMES = sorted(TOY_DENSITIES)
EXACT = ["8gaussians", "25gaussians", "checkerboard", "gaussian"]
NO_CLOSED_FORM = ["pinwheel", "rings", "swiss-roll", "two-moons"]
# One sample size everywhere: each (density, n) pair compiles once, keeping
# the module fast on CPU.
N_STAT = 16_000


def _key(seed: int = 0) -> jax.Array:
    return jax.random.key(seed)


def _samples(d: ToyDensity, n: int = N_STAT, seed: int = 0) -> np.ndarray:
    return np.asarray(d.sample(_key(seed), n), dtype=np.float64)


def _grid(lo_x, hi_x, lo_y, hi_y, h):
    """Midpoint grid: (points (m, 2), cell area)."""
    xs = np.arange(lo_x + h / 2, hi_x, h)
    ys = np.arange(lo_y + h / 2, hi_y, h)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=-1), h * h


def _integrate(d: ToyDensity, pts: np.ndarray, area: float) -> float:
    lp = np.asarray(d.log_prob(jnp.asarray(pts, dtype=jnp.float32)), dtype=np.float64)
    return float(np.sum(np.exp(lp)) * area)


def _nearest_mode(x: np.ndarray, modes: np.ndarray):
    dist = np.linalg.norm(x[:, None, :] - modes[None, :, :], axis=-1)
    return dist.argmin(axis=1), dist.min(axis=1)


# --------------------------------------------------------------------------- #
# Registry / metadata
# --------------------------------------------------------------------------- #
def test_registry_names_and_metadata():
    assert set(TOY_DENSITIES) == set(EXACT) | set(NO_CLOSED_FORM)
    assert list(EXACT_LOG_PROB_DENSITIES) == sorted(EXACT)
    for name in ALL_NAMES:
        d = get_toy_density(name)
        assert isinstance(d, ToyDensity)
        assert d.name == name
        assert d.has_log_prob == (name in EXACT)
    assert get_toy_density("8gaussians").modes.shape == (8, 2)
    assert get_toy_density("25gaussians").modes.shape == (25, 2)
    assert get_toy_density("8gaussians").mode_std == pytest.approx(0.02)
    assert get_toy_density("25gaussians").mode_std == pytest.approx(0.05)
    with pytest.raises(ValueError, match="read-only"):
        get_toy_density("8gaussians").modes[0, 0] = 1.0


def test_mode_layouts():
    m8 = get_toy_density("8gaussians").modes
    np.testing.assert_allclose(np.linalg.norm(m8, axis=1), 2.0, atol=1e-12)
    ang = np.sort(np.mod(np.arctan2(m8[:, 1], m8[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(ang), np.pi / 4, atol=1e-12)
    m25 = get_toy_density("25gaussians").modes
    expected = {(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(p) for p in m25.round().astype(int).tolist()} == expected
    np.testing.assert_array_equal(m25, m25.round())
    # std is a constructor parameter
    assert get_toy_density("8gaussians", std=0.3).mode_std == pytest.approx(0.3)


# --------------------------------------------------------------------------- #
# Sampling: shape, dtype, determinism, jit
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ALL_NAMES)
def test_sample_shape_dtype_determinism_and_jit(name):
    d = get_toy_density(name)
    x = d.sample(_key(0), N_STAT)
    assert x.shape == (N_STAT, 2)
    assert x.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(x)))
    # all live in roughly [-4, 4]^2 and are not collapsed
    r = np.abs(np.asarray(x)).max(axis=1)
    assert np.quantile(r, 0.99) < 4.5 and np.median(r) > 1.0
    np.testing.assert_array_equal(np.asarray(x), np.asarray(d.sample(_key(0), N_STAT)))
    assert not np.allclose(np.asarray(x), np.asarray(d.sample(_key(1), N_STAT)))
    xj = jax.jit(d.sample, static_argnums=1)(_key(0), N_STAT)
    assert xj.shape == (N_STAT, 2) and xj.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(xj), np.asarray(x), rtol=1e-5, atol=1e-5)


def test_sample_accepts_raw_uint32_key():
    d = get_toy_density("gaussian")
    x = d.sample(jax.random.PRNGKey(3), N_STAT)
    assert x.shape == (N_STAT, 2)


@pytest.mark.parametrize("name", EXACT)
def test_log_prob_shape_and_jit(name):
    d = get_toy_density(name)
    x = d.sample(_key(2), N_STAT)
    lp = d.log_prob(x)
    assert lp.shape == (N_STAT,)
    assert bool(jnp.all(jnp.isfinite(lp)))
    lpj = jax.jit(d.log_prob)(x)
    np.testing.assert_allclose(np.asarray(lpj), np.asarray(lp), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- #
# log_prob integrates to one
# --------------------------------------------------------------------------- #
def test_gaussian_integrates_to_one():
    d = get_toy_density("gaussian")
    # mean (0.5, -0.5), stds (1, sqrt 2): +-7.5 std box
    pts, area = _grid(-7.0, 8.0, -11.1, 10.1, 0.05)
    assert _integrate(d, pts, area) == pytest.approx(1.0, abs=1e-4)


def test_8gaussians_wide_integrates_to_one_on_full_grid():
    d = get_toy_density("8gaussians", std=0.3)
    pts, area = _grid(-4.5, 4.5, -4.5, 4.5, 0.02)
    assert _integrate(d, pts, area) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_narrow_mixture_integrates_to_one_per_mode(name):
    d = get_toy_density(name)
    std = d.mode_std
    half = 8.0 * std  # boxes don't overlap: mode separation >= 1.5 >> 16 std
    h = std / 8.0
    total = 0.0
    for c in d.modes:
        pts, area = _grid(c[0] - half, c[0] + half, c[1] - half, c[1] + half, h)
        mass = _integrate(d, pts, area)
        assert mass == pytest.approx(1.0 / len(d.modes), rel=1e-3)
        total += mass
    assert total == pytest.approx(1.0, abs=1e-3)


def test_checkerboard_integrates_to_one():
    d = get_toy_density("checkerboard")
    # midpoints never fall on the even-integer square boundaries
    pts, area = _grid(-5.0, 5.0, -5.0, 5.0, 0.02)
    assert _integrate(d, pts, area) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------- #
# log_prob agrees with independent computations
# --------------------------------------------------------------------------- #
def _reference_mixture_logpdf(x, modes, std):
    comps = np.stack(
        [multivariate_normal(mean=m, cov=std**2 * np.eye(2)).logpdf(x) for m in modes],
        axis=-1,
    )
    return np_logsumexp(comps, axis=-1) - math.log(len(modes))


@pytest.mark.parametrize(
    "name,kwargs",
    [("8gaussians", {}), ("8gaussians", {"std": 0.3}), ("25gaussians", {})],
)
def test_mixture_log_prob_matches_scipy(name, kwargs):
    d = get_toy_density(name, **kwargs)
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            _samples(d, N_STAT, seed=5),
            rng.uniform(-4.5, 4.5, size=(100, 2)),
            d.modes[:3] + 0.5 * d.mode_std,
        ]
    )
    x32 = x.astype(np.float32)
    ref = _reference_mixture_logpdf(x32.astype(np.float64), d.modes, d.mode_std)
    got = np.asarray(d.log_prob(jnp.asarray(x32)), dtype=np.float64)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_gaussian_log_prob_matches_scipy_and_custom_params():
    mean, cov = np.array([-1.0, 2.0]), np.array([[0.5, -0.2], [-0.2, 0.3]])
    for d, (m, c) in [
        (get_toy_density("gaussian"), (np.array([0.5, -0.5]), np.array([[1, 0.6], [0.6, 2.0]]))),
        (get_toy_density("gaussian", mean=mean, cov=cov), (mean, cov)),
    ]:
        x = np.random.default_rng(1).normal(size=(300, 2)) * 2.0
        ref = multivariate_normal(mean=m, cov=c).logpdf(x.astype(np.float32))
        got = np.asarray(d.log_prob(jnp.asarray(x, dtype=jnp.float32)))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


def test_checkerboard_log_prob_matches_indicator():
    d = get_toy_density("checkerboard")
    x = np.random.default_rng(2).uniform(-5.0, 5.0, size=(5000, 2)).astype(np.float32)
    # independent indicator: explicit list of the 8 black squares
    black = [(-4 + 2 * i, -4 + 2 * j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
    inside = np.zeros(len(x), dtype=bool)
    for lx, ly in black:
        inside |= (x[:, 0] >= lx) & (x[:, 0] < lx + 2) & (x[:, 1] >= ly) & (x[:, 1] < ly + 2)
    lp = np.asarray(d.log_prob(jnp.asarray(x)))
    np.testing.assert_allclose(lp[inside], math.log(1 / 32), rtol=1e-6)
    assert np.all(np.isneginf(lp[~inside]))
    assert 0.2 < inside.mean() < 0.45  # ~ 32/100 of the [-5, 5]^2 box
    # [-4, -2)^2 is black, its neighbour [-2, 0) x [-4, -2) is white
    lp2 = np.asarray(d.log_prob(jnp.array([[-3.0, -3.0], [-1.0, -3.0], [4.0, 0.5]])))
    assert np.isfinite(lp2[0]) and np.isneginf(lp2[1]) and np.isneginf(lp2[2])


# --------------------------------------------------------------------------- #
# Sample statistics match the density
# --------------------------------------------------------------------------- #
def test_gaussian_sample_moments():
    d = get_toy_density("gaussian")
    x = _samples(d, N_STAT, seed=7)
    np.testing.assert_allclose(x.mean(0), [0.5, -0.5], atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), [[1.0, 0.6], [0.6, 2.0]], atol=0.1)


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_samples_near_modes_and_balanced(name):
    d = get_toy_density(name)
    x = _samples(d)
    m = len(d.modes)
    idx, dist = _nearest_mode(x, d.modes)
    # P(radius > 6 std) = exp(-18) per sample: effectively never.
    assert np.all(dist < 6.0 * d.mode_std)
    # radius of a 2-D isotropic Gaussian: P(r < std) = 1 - exp(-1/2)
    assert np.mean(dist < d.mode_std) == pytest.approx(1 - math.exp(-0.5), abs=0.02)
    frac = np.bincount(idx, minlength=m) / len(x)
    np.testing.assert_allclose(frac, 1.0 / m, atol=0.25 / m)


def test_8gaussians_std_parameter_changes_spread():
    d = get_toy_density("8gaussians", std=0.3)
    x = _samples(d, N_STAT, seed=3)
    _, dist = _nearest_mode(x, d.modes)
    # mean Rayleigh radius = std * sqrt(pi/2)
    assert dist.mean() == pytest.approx(0.3 * math.sqrt(math.pi / 2), rel=0.05)


def test_checkerboard_samples_in_black_squares_and_balanced():
    d = get_toy_density("checkerboard")
    x = d.sample(_key(4), N_STAT)
    assert bool(jnp.all(jnp.isfinite(d.log_prob(x))))
    x = np.asarray(x, dtype=np.float64)
    cell = np.floor((x + 4.0) / 2.0).astype(int)
    assert cell.min() >= 0 and cell.max() <= 3
    assert np.all((cell.sum(1) % 2) == 0)
    counts = np.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16)
    black = counts[[i * 4 + j for i in range(4) for j in range(4) if (i + j) % 2 == 0]]
    assert len(black) == 8 and black.sum() == N_STAT
    np.testing.assert_allclose(black / N_STAT, 1 / 8, atol=0.02)
    # uniform within squares: offsets ~ U[0, 2): mean 1, var 1/3
    off = x - (2.0 * cell - 4.0)
    np.testing.assert_allclose(off.mean(0), 1.0, atol=0.03)
    np.testing.assert_allclose(off.var(0), 1.0 / 3.0, atol=0.02)
    assert off.min() >= 0.0 and off.max() < 2.0
    assert off.min() < 0.01 and off.max() > 1.99  # whole square is covered


def test_two_moons_noise_free_on_arcs_and_balanced():
    d = get_toy_density("two-moons", noise=0.0)
    x = _samples(d, N_STAT, seed=1)
    p = x / 2.5 + np.array([0.5, 0.25])  # back to sklearn units
    upper = np.abs(np.linalg.norm(p, axis=1) - 1.0) < 1e-4
    lower = np.abs(np.linalg.norm(p - np.array([1.0, 0.5]), axis=1) - 1.0) < 1e-4
    assert np.all(upper | lower)
    assert np.all(p[upper & ~lower, 1] >= -1e-5)
    assert np.all(p[lower & ~upper, 1] <= 0.5 + 1e-5)
    assert np.mean(upper) == pytest.approx(0.5, abs=0.04)
    # noisy default: noise std 0.1 sklearn units -> 0.25 after scaling
    xn = _samples(get_toy_density("two-moons"), N_STAT, seed=1)
    resid = xn - x  # same key: same moon and t, only noise differs
    np.testing.assert_allclose(resid.std(0), 0.25, rtol=0.1)


def test_rings_radii_and_balance():
    d = get_toy_density("rings")
    x = _samples(d, N_STAT, seed=2)
    r = np.linalg.norm(x, axis=1)
    k = np.abs(r[:, None] - np.array([1.0, 2.0, 3.0, 4.0])[None]).argmin(1)
    resid = r - (k + 1.0)
    assert np.all(np.abs(resid) < 6 * 0.08)
    assert resid.std() == pytest.approx(0.08, rel=0.1)
    np.testing.assert_allclose(np.bincount(k, minlength=4) / len(x), 0.25, atol=0.03)
    # uniform angle
    theta = np.arctan2(x[:, 1], x[:, 0])
    hist = np.histogram(theta, bins=8, range=(-np.pi, np.pi))[0] / len(x)
    np.testing.assert_allclose(hist, 1 / 8, atol=0.02)


def test_pinwheel_structure():
    # no noise: f = (1, 0), angle = 2 pi k / 5 + 0.25 e; point = 2 (cos a, -sin a)
    d0 = get_toy_density("pinwheel", radial_std=0.0, tangential_std=0.0)
    x = _samples(d0, N_STAT, seed=3)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0, rtol=1e-5)
    a = np.mod(-np.arctan2(x[:, 1], x[:, 0]) - 0.25 * math.e, 2 * np.pi)
    arm = a / (2 * np.pi / 5)
    np.testing.assert_allclose(arm, np.round(arm), atol=1e-4)
    counts = np.bincount(np.round(arm).astype(int) % 5, minlength=5) / len(x)
    np.testing.assert_allclose(counts, 0.2, atol=0.04)
    # default: mean radius ~ scale * E|f| ~ 2 (radial feature 1 +- 0.3)
    xd = _samples(get_toy_density("pinwheel"), N_STAT, seed=3)
    assert np.linalg.norm(xd, axis=1).mean() == pytest.approx(2.0, rel=0.03)


def test_swiss_roll_noise_free_lies_on_spiral():
    d = get_toy_density("swiss-roll", noise=0.0)
    x = _samples(d, N_STAT, seed=4)
    t = np.linalg.norm(x, axis=1) / 0.2
    assert t.min() >= 1.5 * np.pi - 1e-3 and t.max() <= 4.5 * np.pi + 1e-3
    # angle of the point equals t (mod 2 pi)
    diff = np.mod(np.arctan2(x[:, 1], x[:, 0]) - t + np.pi, 2 * np.pi) - np.pi
    np.testing.assert_allclose(diff, 0.0, atol=1e-3)
    # t is uniform on [1.5 pi, 4.5 pi]
    assert t.mean() == pytest.approx(3.0 * np.pi, rel=0.03)


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'moons'.*\['25gaussians', '8gaussians'"):
        get_toy_density("moons")
    with pytest.raises(ValueError, match="swiss-roll"):
        get_toy_density("nope")


@pytest.mark.parametrize("bad_n", [0, -3, 2.0, True, None])
def test_bad_n_raises(bad_n):
    d = get_toy_density("8gaussians")
    with pytest.raises(ValueError, match=r"\bn\b"):
        d.sample(_key(0), bad_n)


def test_traced_n_raises():
    d = get_toy_density("rings")
    with pytest.raises(ValueError, match=r"n must be a positive Python int"):
        jax.jit(d.sample)(_key(0), 4)


@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 5, 2), (2, 1)])
@pytest.mark.parametrize("name", EXACT)
def test_log_prob_bad_shape_raises(name, shape):
    d = get_toy_density(name)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        d.log_prob(jnp.zeros(shape))


def test_log_prob_bad_shape_raises_under_jit():
    d = get_toy_density("gaussian")
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        jax.jit(d.log_prob)(jnp.zeros((4, 3)))


@pytest.mark.parametrize("name", NO_CLOSED_FORM)
def test_no_closed_form_log_prob_raises(name):
    d = get_toy_density(name)
    with pytest.raises(ValueError, match=rf"{name!r} has no closed-form log_prob.*checkerboard"):
        d.log_prob(jnp.zeros((3, 2)))


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("8gaussians", {"std": 0.0}, "std"),
        ("25gaussians", {"std": -1.0}, "std"),
        ("gaussian", {"cov": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
        ("gaussian", {"cov": [[1.0, 0.1], [0.2, 1.0]]}, "symmetric"),
        ("gaussian", {"mean": [0.0, 0.0, 0.0]}, "mean"),
        ("rings", {"radii": ()}, "radii"),
        ("two-moons", {"noise": -0.1}, "noise"),
        ("pinwheel", {"num_arms": 0}, "num_arms"),
    ],
)
def test_bad_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_toy_density(name, **kwargs)


def test_hyperparameters_are_keyword_only():
    with pytest.raises(TypeError):
        TOY_DENSITIES["8gaussians"](0.1)
