"""The one evaluation path (genjax.metrics.evaluation) and the registry's calls of it."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import flows, registry
from genjax.metrics import evaluation as ev


@pytest.fixture(scope="module")
def digits():
    return registry.load_data("digits")


def _factorized_gaussian_vae(data):
    """A registry VAE (gaussian_learned) whose decoder ignores z and outputs the per-pixel
    Gaussian fitted to the training images (variance floored at 1e-3), and whose encoder is
    the prior: the IWAE bound is then exactly that Gaussian's log-density."""
    spec = registry.get_model_spec("vae")
    model = spec.build(data, registry.resolve_options(spec, {"hidden": "8", "latent_dim": 2, "likelihood": "gaussian_learned"}))
    params = model.init(jax.random.PRNGKey(0), data.train[:4])
    x = data.train.reshape(len(data.train), -1)
    mu, var = x.mean(0), np.maximum(x.var(0), 1e-3)
    dec = params["decoder"]["params"]["mlp"]["out"]
    dec["kernel"] = jnp.zeros_like(dec["kernel"])
    dec["bias"] = jnp.asarray(np.concatenate([mu, np.log(var)]), jnp.float32)
    enc = params["encoder"]["params"]["mlp"]["out"]
    enc["kernel"], enc["bias"] = jnp.zeros_like(enc["kernel"]), jnp.zeros_like(enc["bias"])
    return spec, model, params, mu, var


def test_vae_gaussian_bits_per_dim_on_digits_are_dequantized_and_not_negative(digits):
    """Defect A3: `genjax eval` of a gaussian_learned VAE on digits printed negative bits/dim
    (a continuous density on the 17-level grid, no dequantization: -0.63 for this model).
    The one convention dequantizes and adds log2 L; the value matches the closed form of
    E_u[log N((k+u)/L; mu, var)] (uniform u on each bin)."""
    spec, model, params, mu, var = _factorized_gaussian_vae(digits)
    out = spec.evaluate(model, params, digits, jax.random.PRNGKey(3), num_samples=4)
    t = digits.test.reshape(len(digits.test), -1).astype(np.float64)
    L, D = 17, 64
    # no dequantization (the defect's number): a negative "bits/dim"
    raw = -np.mean(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (t - mu) ** 2 / var, 1)) / (D * math.log(2))
    assert raw < -0.5
    c = (np.round(t * (L - 1)) + 0.5) / L  # bin centres; E[(y - mu)^2] = (c - mu)^2 + 1 / (12 L^2)
    exp_lp = np.sum(-0.5 * np.log(2 * np.pi * var) - ((c - mu) ** 2 + 1.0 / (12 * L**2)) / (2 * var), 1)
    expected = -np.mean(exp_lp) / (D * math.log(2)) + math.log2(L)
    assert out["test_bits_per_dim"] >= 0.0
    assert out["test_bits_per_dim"] == pytest.approx(expected, abs=0.05)
    assert "dequantized" in out["bits_per_dim_convention"] and "log2 L" in out["bits_per_dim_convention"]
    # A7: the importance-sampled estimate comes with its standard error (over the test examples)
    assert 0 < out["test_nll_stderr_nats"] < 5 and out["num_test_examples"] == len(digits.test)
    assert out["test_bits_per_dim_stderr"] == pytest.approx(out["test_nll_stderr_nats"] / (D * math.log(2)))


def test_likelihood_is_per_example_log_prob_with_its_standard_error():
    """A 2-D flow on a toy density: NLL, its standard error and the exact KL against an
    independent computation from the flow's own log_prob and the density's closed form."""
    data = registry.load_data("8gaussians")
    flow = flows.realnvp_2d(num_layers=2, hidden=(8,))
    params = flow.init(jax.random.PRNGKey(0), data.train[:16])
    x = data.test[:50]
    out = ev.evaluate(flow, params, jax.random.PRNGKey(1), data, max_examples=50, num_generated=40, batch=16)
    lp = np.asarray(flow.log_prob(params, jax.random.PRNGKey(0), jnp.asarray(x)), np.float64)
    assert out["test_nll_nats"] == pytest.approx(-lp.mean(), rel=1e-5)
    assert out["test_nll_stderr_nats"] == pytest.approx(lp.std(ddof=1) / math.sqrt(50), rel=1e-4)
    log_p = np.asarray(data.toy.log_prob(jnp.asarray(x)), np.float64)
    assert out["test_kl_nats"] == pytest.approx(np.mean(log_p - lp), rel=1e-4)
    assert "test_bits_per_dim" not in out  # continuous toy data: no bits/dim
    # sample metrics: mode coverage on the mixture for any model, not only GANs
    assert out["num_generated"] == 40 and out["num_modes"] == 8 and 0.0 <= out["hq_fraction"] <= 1.0


def test_likelihood_data_follows_each_kind_of_density(digits):
    x = digits.test[:3]
    key = jax.random.PRNGKey(0)

    class M:  # a model described only by the attributes the path reads
        def __init__(self, **kw):
            self.log_prob_kind = "exact"
            self.__dict__.update(kw)

    deq, L = ev.likelihood_data(M(), key, x, digits)
    k = np.round(x * 16)
    assert L == 17 and np.all(deq >= k / 17) and np.all(deq < (k + 1) / 17)
    same, L = ev.likelihood_data(M(data_levels=17), key, x, digits)  # the model dequantizes itself
    assert L == 17 and np.array_equal(same, x)
    snapped, L = ev.likelihood_data(M(log_prob_kind="vlb", data_range="unit", num_levels=256), key, x, digits)
    assert L is None and np.allclose(snapped, np.round(x * 255) / 255)
    binar, L = ev.likelihood_data(M(likelihood="bernoulli"), key, x, digits)
    assert L is None and set(np.unique(binar)) <= {0.0, 1.0}


class _PixelClassifier:
    """A stand-in domain classifier: features = pixels, logits = the first 10 pixels."""

    dataset, test_accuracy, config_hash = "digits", 1.0, "fake"

    def embed(self, x):
        f = np.asarray(x, np.float64).reshape(len(x), -1)
        return f, f[:, :10]


def test_gan_eval_honours_num_samples_and_computes_fid_with_a_classifier(digits):
    """A6: GAN eval ignored --num-samples and said FID was "not computed"."""
    spec = registry.get_model_spec("gan")
    model = spec.build(digits, registry.resolve_options(spec, {}))
    params = model.init(jax.random.PRNGKey(0), digits.train[:8])
    out = spec.evaluate(model, params, digits, jax.random.PRNGKey(1), num_samples=50, max_examples=40,
                        classifier=_PixelClassifier())
    assert out["num_generated"] == 50 and out["num_reference"] == 40
    from genjax.metrics.sample_quality import fid_from_features

    x = np.clip(ev.draw_samples(model, params, jax.random.split(jax.random.PRNGKey(1))[1], 50, chunk=500), 0, 1)
    assert out["fid"] == pytest.approx(fid_from_features(digits.test[:40].reshape(40, -1), x.reshape(50, -1)), rel=1e-6)
    assert "classifier_metrics" not in out and out["likelihood_kind"] == "none"


def test_gan_eval_no_longer_caps_max_examples_at_1000(digits):
    """A6: GAN eval silently compared at most 1000 test images whatever --max-examples said."""
    import dataclasses

    big = dataclasses.replace(digits, test=np.concatenate([digits.test] * 4))  # 1440 test images
    spec = registry.get_model_spec("gan")
    model = spec.build(big, registry.resolve_options(spec, {}))
    params = model.init(jax.random.PRNGKey(0), big.train[:8])
    out = spec.evaluate(model, params, big, jax.random.PRNGKey(1), num_samples=20, max_examples=1200,
                        classifier=_PixelClassifier())
    assert out["num_reference"] == 1200 and out["num_test_examples"] == 1200 and out["num_generated"] == 20


def test_evaluate_rejects_bad_arguments_before_work(digits):
    flow = flows.realnvp_2d(num_layers=1, hidden=(4,))
    with pytest.raises(ValueError, match="iwae_samples must be a positive integer"):
        ev.evaluate(flow, None, jax.random.PRNGKey(0), digits, iwae_samples=0)
    with pytest.raises(ValueError, match="classifier must be a Classifier, 'auto' or None"):
        ev.evaluate(flow, None, jax.random.PRNGKey(0), digits, classifier="inception")


def test_a_continuous_vae_trains_on_the_data_space_it_is_scored_in(digits):
    """A gaussian VAE on L-level images trains on (k+u)/L, as it is evaluated (compare did
    this alone; `genjax train vae --likelihood gaussian_learned` trained on the grid points,
    piling density on them: after 3000 steps -1.38 bits/dim undequantized, 3.22 dequantized;
    trained on (k+u)/L: 2.56)."""
    spec = registry.get_model_spec("vae")
    for lik, binary_out in (("gaussian_learned", False), ("bernoulli", True)):
        model = spec.build(digits, registry.resolve_options(spec, {"hidden": "8", "latent_dim": 2, "likelihood": lik}))
        y = np.asarray(spec.transform(model, digits)(jax.random.PRNGKey(0), jnp.asarray(digits.test[:4])))
        k = np.round(digits.test[:4] * 16)
        if binary_out:
            assert set(np.unique(y)) <= {0.0, 1.0}
        else:
            assert np.all(y >= k / 17) and np.all(y < (k + 1) / 17)


def test_a_diverged_model_is_reported_not_raised():
    """A run that finished with --on-nonfinite skip may have a density that overflows: the
    evaluation says so (non-finite NLL, no KL) instead of failing the run at its last step."""
    data = registry.load_data("8gaussians")

    class Diverged:
        log_prob_kind = "exact"

        def log_prob(self, params, key, x):
            return jnp.full((x.shape[0],), -jnp.inf)

        def sample(self, params, key, num):
            return jnp.full((num, 2), jnp.nan)

    out = ev.evaluate(Diverged(), None, jax.random.PRNGKey(0), data, max_examples=10, num_generated=5)
    assert out["test_nll_nats"] == math.inf and "KL not computed: 10 of 10" in out["kl_convention"]
    assert "test_kl_nats" not in out and out["samples_finite"] is False and "modes_captured" not in out


class _ScaleModel:
    """``sample`` returns ``scale`` (a sampler keyword) in every entry, or ``cond`` times it."""

    def sample(self, params, key, num, *, cond=None, scale=1.0):
        base = jnp.ones((num, 2)) if cond is None else jnp.asarray(cond, jnp.float32)
        return base * scale + 0.0 * params


def test_draw_samples_cache_is_keyed_by_sampler_keywords():
    """One shared ``cache`` across calls with other sampler keywords must not reuse the sampler
    compiled for the first keywords (the samplers experiment shares one cache over all solvers)."""
    model, cache, key = _ScaleModel(), {}, jax.random.PRNGKey(0)
    a = ev.draw_samples(model, jnp.zeros(()), key, 5, chunk=3, cache=cache, sample_kwargs={"scale": 2.0})
    b = ev.draw_samples(model, jnp.zeros(()), key, 5, chunk=3, cache=cache, sample_kwargs={"scale": 3.0})
    np.testing.assert_array_equal(a, np.full((5, 2), 2.0))
    np.testing.assert_array_equal(b, np.full((5, 2), 3.0))
    cond = np.arange(10, dtype=np.float32).reshape(5, 2)
    c = ev.draw_samples(model, jnp.zeros(()), key, 5, chunk=3, cache=cache, cond=cond, sample_kwargs={"scale": 2.0})
    np.testing.assert_array_equal(c, cond * 2.0)
    # unhashable keywords (an array) compile afresh instead of failing or reusing
    d = ev.draw_samples(model, jnp.zeros(()), key, 5, chunk=3, cache=cache, sample_kwargs={"scale": jnp.float32(4.0)})
    np.testing.assert_array_equal(d, np.full((5, 2), 4.0))


def test_draw_samples_resumes_from_saved_chunks(tmp_path):
    """``resume_dir``: a draw cut off after some chunks resumes from them (they are loaded, not drawn
    again) and gives exactly the samples of an uninterrupted draw."""
    from genjax.diffusion.constructors import ddpm_2d

    model = ddpm_2d(hidden=(8,), T=10)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))
    key = jax.random.PRNGKey(3)
    whole = ev.draw_samples(model, params, key, 10, chunk=4)
    first = ev.draw_samples(model, params, key, 8, chunk=4, resume_dir=tmp_path / "d")  # chunks 0 and 1
    np.testing.assert_array_equal(first, whole[:8])
    marker = np.full((4, 2), 7.0, np.float32)  # a saved chunk is what the resumed draw returns
    np.save(tmp_path / "d" / "chunk_00001.npy", marker)
    again = ev.draw_samples(model, params, key, 10, chunk=4, resume_dir=tmp_path / "d")
    np.testing.assert_array_equal(again[:4], whole[:4])
    np.testing.assert_array_equal(again[4:8], marker)
    np.testing.assert_array_equal(again[8:], whole[8:])
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["chunk_00000.npy", "chunk_00001.npy", "chunk_00002.npy"]
