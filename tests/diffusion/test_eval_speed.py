"""Evaluation a user can wait for: the chunked VLB, its stratified estimate, the forward-mode
Hutchinson trace, the compiled-once likelihood map, progress and the quick end-of-run evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.diffusion import objectives as obj
from genjax.diffusion import likelihood as lik
from genjax.diffusion.schedules import linear_schedule
from genjax.metrics import evaluation

T = 12


def _linear_eps(rng, d):
    w = jnp.asarray(0.3 * rng.standard_normal((d, d)), jnp.float32)

    def eps_fn(x, t):  # a t-dependent linear "network" on (b, d) data
        return x @ w * (1.0 + t[:, None].astype(jnp.float32) / T)

    return eps_fn


def test_vlb_chunked_equals_one_t_per_call(key, rng):
    """``t_chunk`` indices per network call (vmapped over t, last chunk padded) give the same
    terms as one call per ``t`` (the former ``lax.scan``)."""
    sched = linear_schedule(T, beta_min=1e-3, beta_max=0.2)
    eps_fn = _linear_eps(rng, 5)
    x0 = jnp.asarray(rng.uniform(-1, 1, (3, 5)), jnp.float32)
    one = obj.vlb_terms(key, eps_fn, x0, schedule=sched, decoder="gaussian", return_per_step=True, t_chunk=1)
    for chunk in (5, 12, 40):  # 12 = 5 + 5 + 2 (padded), all at once, more than T
        many = obj.vlb_terms(key, eps_fn, x0, schedule=sched, decoder="gaussian", return_per_step=True, t_chunk=chunk)
        for k in ("total", "prior", "diffusion", "decoder", "kl_per_step"):
            np.testing.assert_allclose(many[k], one[k], rtol=1e-5, atol=1e-5, err_msg=k)


def test_vlb_one_term_against_numpy(key, rng):
    """The KL term at one index, recomputed in numpy from the closed-form Gaussians."""
    sched = linear_schedule(T, beta_min=1e-3, beta_max=0.2)
    eps_fn = _linear_eps(rng, 4)
    x0 = jnp.asarray(rng.uniform(-1, 1, (2, 4)), jnp.float32)
    out = obj.vlb_terms(key, eps_fn, x0, schedule=sched, decoder="gaussian", return_per_step=True, t_chunk=5)
    t = 6
    betas = np.asarray(sched.betas, np.float64)
    abar = np.cumprod(1 - betas)
    noise = np.asarray(jax.random.normal(jax.random.split(key, T)[t], x0.shape), np.float64)
    x = np.asarray(x0, np.float64)
    xt = np.sqrt(abar[t]) * x + np.sqrt(1 - abar[t]) * noise
    mean_q = (np.sqrt(abar[t - 1]) * betas[t] / (1 - abar[t])) * x + (np.sqrt(1 - betas[t]) * (1 - abar[t - 1]) / (1 - abar[t])) * xt
    var_q = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
    eps_hat = np.asarray(eps_fn(jnp.asarray(xt, jnp.float32), jnp.full((2,), t, jnp.int32)), np.float64)
    mean_p = (xt - betas[t] / np.sqrt(1 - abar[t]) * eps_hat) / np.sqrt(1 - betas[t])
    var_p = betas[t]  # variance="beta"
    kl = 0.5 * np.sum(np.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1.0, axis=-1)
    np.testing.assert_allclose(out["kl_per_step"][t], kl, rtol=2e-4, atol=2e-4)


def test_vlb_stratified_estimate_is_unbiased(key, rng):
    """With the true noise as ``eps_hat`` each KL term is deterministic, so the stratified
    estimate lies between its strata's extremes and its mean over draws is the full sum."""
    sched = linear_schedule(T, beta_min=1e-3, beta_max=0.2)
    x0 = jnp.asarray(rng.uniform(-1, 1, (2, 3)), jnp.float32)
    abar = sched.alphas_cumprod

    def oracle(x, t):  # the exact noise of x_t given x0
        a = abar[t][:, None]
        return (x - jnp.sqrt(a) * x0) / jnp.sqrt(1 - a)

    full = obj.vlb_terms(key, oracle, x0, schedule=sched, decoder="gaussian", return_per_step=True)
    kls = np.asarray(full["kl_per_step"])[1:]  # indices 1..T-1
    est = jax.vmap(lambda k: obj.vlb_terms(k, oracle, x0, schedule=sched, decoder="gaussian", num_terms=4)["diffusion"])(
        jax.random.split(key, 400))
    edges = np.linspace(1, T, 5).round().astype(int) - 1  # strata of kls' rows
    lo = sum((b - a) * kls[a:b].min(0) for a, b in zip(edges[:-1], edges[1:]))
    hi = sum((b - a) * kls[a:b].max(0) for a, b in zip(edges[:-1], edges[1:]))
    assert np.all(est >= lo - 1e-4) and np.all(est <= hi + 1e-4)
    spread = np.std(np.asarray(est), axis=0) / np.sqrt(400)
    np.testing.assert_allclose(np.mean(est, axis=0), full["diffusion"], atol=float(4 * spread.max()) + 1e-4)
    assert np.std(np.asarray(est), axis=0).max() > 0  # it is random: not the full sum in disguise
    with pytest.raises(ValueError, match="num_terms must be a positive integer"):
        obj.vlb_terms(key, oracle, x0, schedule=sched, num_terms=0)
    with pytest.raises(ValueError, match="return_per_step needs every term"):
        obj.vlb_terms(key, oracle, x0, schedule=sched, num_terms=3, return_per_step=True)


@pytest.mark.parametrize("mode", ["jvp", "vjp"])
def test_hutchinson_modes_against_numpy(key, rng, mode):
    """``p^T (dv/dx) p`` by forward and by reverse mode, against numpy for a linear velocity."""
    m = rng.standard_normal((6, 6)).astype(np.float32)
    x = jnp.asarray(rng.standard_normal((3, 2, 3)), jnp.float32)
    probes = jax.random.rademacher(key, (4,) + x.shape, jnp.float32)

    def velocity(y, t):
        return (y.reshape(3, 6) @ m * t[:, None]).reshape(y.shape)

    t = jnp.asarray([0.5, 1.0, 2.0], jnp.float32)
    v, div = lik._divergence_hutchinson(velocity, x, t, probes, mode=mode)
    p = np.asarray(probes).reshape(4, 3, 6)
    want = np.mean(np.einsum("kbi,ij,kbj->kb", p, m, p), axis=0) * np.asarray(t)
    np.testing.assert_allclose(div, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v, velocity(x, t), rtol=1e-6)


class _CountingModel:
    log_prob_kind = "exact"

    def __init__(self):
        self.traces = 0

    def log_prob(self, params, key, x, scale=1.0):
        self.traces += 1
        return -scale * jnp.sum(x ** 2, axis=-1)


def test_log_probs_compiles_once_pads_and_shows_progress(capsys):
    """One compilation for every batch (the last one padded) and across calls; the values are
    those of the unpadded examples; a progress bar on stderr when asked."""
    model = _CountingModel()
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    want = -np.sum(x ** 2, axis=-1)
    got = evaluation.log_probs(model, None, jax.random.PRNGKey(0), x, batch=2, progress=True)
    np.testing.assert_allclose(got, want)
    assert model.traces == 1
    assert "likelihood" in capsys.readouterr().err
    evaluation.log_probs(model, None, jax.random.PRNGKey(1), x, batch=2)
    assert model.traces == 1  # the compiled function is reused by the next call
    got = evaluation.log_probs(model, None, jax.random.PRNGKey(0), x, batch=2, log_prob_kwargs={"scale": 2.0})
    np.testing.assert_allclose(got, 2 * want)
    assert model.traces == 2  # other estimator settings: another function


class _FakeVLBModel:
    """An image DDPM stand-in: records the estimator and sampler keywords it is called with."""

    log_prob_kind = "vlb"
    data_range = "unit"
    num_levels = 256

    def __init__(self):
        self.calls = []

    def log_prob(self, params, key, x, **kw):
        self.calls.append(("log_prob", kw, x.shape[0]))
        return -jnp.sum(x, axis=(1, 2, 3)) - 10.0

    def sample(self, params, key, num, **kw):
        self.calls.append(("sample", kw, num))
        return jnp.full((num, 8, 8, 1), 0.5)


def test_quick_end_of_run_evaluation():
    """``quick=True`` (genjax train's end-of-run evaluation on images): QUICK_EXAMPLES examples by
    the stratified VLB, QUICK_SAMPLES samples by the few-step solver, said in ``evaluation``; the
    full evaluation with ``max_examples`` draws as many samples as reference images (>= 64)."""
    from genjax.registry import diffusion as dspec
    from genjax.registry import load_data

    data = load_data("digits")
    model = _FakeVLBModel()
    out = dspec._evaluate(model, None, data, jax.random.PRNGKey(0), num_samples=1000, quick=True)
    assert out["num_test_examples"] == dspec.QUICK_EXAMPLES and out["num_generated"] == dspec.QUICK_SAMPLES
    assert out["likelihood_estimator"] == f"num_terms={dspec.QUICK_VLB_TERMS}"
    assert ("log_prob", {"num_terms": dspec.QUICK_VLB_TERMS}, dspec.QUICK_EXAMPLES) in model.calls
    assert ("sample", {"sampler": dspec.QUICK_SAMPLER}, dspec.QUICK_SAMPLES) in model.calls
    assert out["evaluation"].startswith("quick: 50 test examples")
    model = _FakeVLBModel()
    out = dspec._evaluate(model, None, data, jax.random.PRNGKey(0), num_samples=5000, max_examples=20)
    assert out["num_test_examples"] == 20 and out["num_generated"] == 64 and "evaluation" not in out
    assert ("log_prob", {}, 20) in model.calls and ("sample", {}, 64) in model.calls


def test_rk4_stages_in_a_loop_equal_the_classical_step(rng):
    """``rk4_step(loop_stages=True)`` (one traced ``f``) against classical RK4 written in numpy."""
    from genjax.diffusion.sampling import rk4_step

    y0 = rng.standard_normal(5).astype(np.float32)
    f_np = lambda y, t: -y * t + np.sin(y)  # noqa: E731
    t, h = 0.3, 0.2
    k1 = f_np(y0, t)
    k2 = f_np(y0 + h / 2 * k1, t + h / 2)
    k3 = f_np(y0 + h / 2 * k2, t + h / 2)
    k4 = f_np(y0 + h * k3, t + h)
    want = y0 + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    got = jax.jit(lambda y: rk4_step(lambda u, s: -u * s + jnp.sin(u), y, t, h, loop_stages=True))(jnp.asarray(y0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
