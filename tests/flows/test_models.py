"""Flow models: exact densities (quadrature, distrax, jacfwd), MAF's two directions,
training towards the true entropy, image flows, bad input."""

from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.data
import genjax.flows as F
import genjax.metrics
import genjax.train

TINY_2D = {
    "realnvp": lambda: F.realnvp_2d(num_layers=3, hidden=(16,)),
    "maf": lambda: F.maf(2, num_layers=3, hidden=(16,)),
    "nsf": lambda: F.nsf_2d(num_layers=2, hidden=(16,), num_bins=4, bound=3.0),
}


def _perturb(params, key, scale):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


def _std_normal_logp(z):
    return -0.5 * np.sum(np.asarray(z, np.float64) ** 2, axis=-1) - z.shape[-1] * 0.5 * math.log(2 * math.pi)


@pytest.fixture(params=sorted(TINY_2D))
def random_2d_flow(request, key, rng):
    """A tiny untrained 2-D flow with random (non-identity) parameters."""
    flow = TINY_2D[request.param]()
    x = jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)
    # small enough that the mass stays inside the quadrature grid, large enough that the
    # log-density differs from the base's by > 1 nat somewhere (checked below)
    params = _perturb(flow.init(key, x), jax.random.fold_in(key, 1), 0.05)
    return flow, params


# ---------------------------------------------------------------------- exact densities
def test_random_2d_flow_density_integrates_to_one(random_2d_flow):
    flow, params = random_2d_flow
    n, lim = 301, 8.0
    g = np.linspace(-lim, lim, n, dtype=np.float32)
    grid = jnp.asarray(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))
    logp = np.asarray(jax.jit(flow.log_density)(params, grid), np.float64)
    mass = np.exp(logp).sum() * (g[1] - g[0]) ** 2
    assert abs(mass - 1.0) < 5e-3, mass
    # and the flow is not the base distribution (the test could tell them apart)
    assert np.abs(logp - _std_normal_logp(np.asarray(grid))).max() > 0.5


def test_log_prob_equals_distrax_and_change_of_variables(random_2d_flow, key, rng):
    flow, params = random_2d_flow
    x = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
    logp = np.asarray(jax.jit(flow.log_prob)(params, key, x))
    # distrax's own code path: Transformed(base, Inverse(g)).log_prob
    base = distrax.MultivariateNormalDiag(jnp.zeros(2))
    ref = jax.jit(lambda p, v: distrax.Transformed(base, flow.bijector(p)).log_prob(v))(params, x)
    np.testing.assert_allclose(logp, ref, rtol=1e-5, atol=1e-5)
    # change of variables with an autodiff Jacobian of the forward map only
    g = flow.normalizing_bijector(params).forward
    z = np.asarray(jax.jit(g)(x))
    jac = jax.jit(jax.vmap(jax.jacfwd(g)))(x)
    cov = _std_normal_logp(z) + np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(logp, cov, rtol=1e-4, atol=1e-4)


def test_untrained_flows_start_at_identity(key, rng):
    x = jnp.asarray(rng.normal(size=(6, 2)), jnp.float32)
    for make in TINY_2D.values():
        flow = make()
        logp = jax.jit(flow.log_prob)(flow.init(key, x), key, x)
        np.testing.assert_allclose(logp, _std_normal_logp(np.asarray(x)), rtol=1e-5, atol=1e-5)


def test_maf_one_pass_equals_sequential_inverse(key):
    flow = F.maf(4, num_layers=3, hidden=(16, 16), order="random", seed=1)
    # noise 0.2: far from the identity (checked below) yet well-conditioned in float32
    params = _perturb(flow.init(key, jnp.zeros((2, 4))), key, 0.2)
    z = jax.random.normal(jax.random.fold_in(key, 2), (6, 4))
    g = flow.normalizing_bijector(params)
    x, ildj = jax.jit(g.inverse_and_log_det)(z)  # sequential: D fixed-point steps per layer
    via_inverse = _std_normal_logp(np.asarray(z)) - np.asarray(ildj, np.float64)
    one_pass = np.asarray(jax.jit(flow.log_density)(params, x))
    np.testing.assert_allclose(one_pass, via_inverse, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.jit(g.forward)(x), z, rtol=1e-4, atol=1e-4)
    assert np.abs(np.asarray(x) - np.asarray(z)).max() > 0.1  # not the identity


def test_mlp_flow_on_image_shapes_flattens_inside_and_equals_the_flat_flow(key, rng):
    """``realnvp((8, 8, 1))``: MLP couplings on the flattened image, the model taking and
    returning images (no wrapper). Same parameters, densities, loss and samples as the flat
    flow on reshaped data; the density also equals distrax's change of variables through
    the reshapes of ``normalizing_bijector``."""
    from genjax.flows.models import Flow

    img = F.realnvp((8, 8, 1), num_layers=2, hidden=(16,), data_levels=17, logit_alpha=0.05)
    flat = Flow(F.realnvp(64, num_layers=2, hidden=(16,)).layers, (64,), data_levels=17, logit_alpha=0.05)
    assert img.flatten and img.layer_shape == (64,) and img.data_shape == (8, 8, 1)
    x = jnp.asarray(rng.integers(0, 17, (5, 8, 8, 1)) / 16.0, jnp.float32)
    p_img, p_flat = img.init(key, x), flat.init(key, x.reshape(5, 64))
    chex_equal = jax.tree_util.tree_map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), p_img, p_flat)
    assert all(jax.tree_util.tree_leaves(chex_equal))
    np.testing.assert_array_equal(img.log_prob(p_img, key, x), flat.log_prob(p_flat, key, x.reshape(5, 64)))
    np.testing.assert_array_equal(img.loss(p_img, key, x)[0], flat.loss(p_flat, key, x.reshape(5, 64))[0])
    s = img.sample(p_img, key, 3)
    assert s.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(s, np.asarray(flat.sample(p_flat, key, 3)).reshape(3, 8, 8, 1))
    y = jnp.asarray(rng.uniform(0.1, 0.9, (4, 8, 8, 1)), jnp.float32)
    np.testing.assert_allclose(img.distribution(p_img).log_prob(y), img.log_density(p_img, y), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match=r"x must have rank 4 with shape \(batch, 8, 8, 1\)"):
        img.log_prob(p_img, key, x.reshape(5, 64))


def test_sample_shapes_and_temperature(key):
    flow = F.realnvp_2d(num_layers=2, hidden=(8,))
    params = _perturb(flow.init(key, jnp.zeros((2, 2))), key, 0.3)
    sample = jax.jit(flow.sample, static_argnums=2, static_argnames="temperature")
    s = sample(params, key, 7)
    assert s.shape == (7, 2) and np.all(np.isfinite(np.asarray(s)))
    cold = sample(params, key, 7, temperature=1e-6)  # -> g^-1(0) for every draw
    mode = flow.normalizing_bijector(params).inverse(jnp.zeros((1, 2)))
    np.testing.assert_allclose(cold, np.broadcast_to(mode, (7, 2)), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------- training
def test_training_lowers_nll_towards_entropy(key):
    density = genjax.data.get_toy_density("gaussian")
    train = np.asarray(density.sample(jax.random.fold_in(key, 0), 4096))
    test = density.sample(jax.random.fold_in(key, 1), 4096)
    entropy = -float(jnp.mean(density.log_prob(test)))  # 3.085 nats for the default N(mu, Sigma)
    flow = F.realnvp_2d(num_layers=4, hidden=(32, 32))
    nll = lambda p: -float(jnp.mean(jax.jit(flow.log_density)(p, test)))
    before = nll(flow.init(key, jnp.asarray(train[:256])))
    result = genjax.train.fit(
        flow, train, num_steps=400, batch_size=256, learning_rate=3e-3, seed=key,
        log_every=200, checkpoint_every=None, steps_per_dispatch=200, progress=False,
    )
    after = nll(result.state.params)
    assert before - entropy > 0.3, (before, entropy)  # the base N(0, I) is far off
    assert after - entropy < 0.03, (after, entropy)  # exact NLL >= entropy (up to sampling noise)
    assert after - entropy > -0.05
    assert result.history[-1]["nll"] < result.history[0]["nll"]


# ---------------------------------------------------------------------- images
IMAGE_FLOWS = {
    # without ActNorm the zero-initialised couplings make the flow logit + N(0, I) exactly
    "realnvp": lambda: F.realnvp_image((8, 8, 1), num_scales=2, features=8, num_blocks=0, actnorm=False),
    "realnvp_actnorm": lambda: F.realnvp_image((8, 8, 1), num_scales=2, features=8, num_blocks=0),
    "glow": lambda: F.glow((8, 8, 1), num_levels=2, num_steps=2, features=8, num_blocks=0),
}


@pytest.mark.parametrize("name", sorted(IMAGE_FLOWS))
def test_image_flow_loss_samples_and_bits_per_dim(name, key, rng):
    flow = IMAGE_FLOWS[name]()
    x = jnp.asarray(rng.integers(0, 256, (4, 8, 8, 1)) / 255.0, jnp.float32)
    u = jnp.asarray(rng.uniform(0.01, 0.99, (2, 8, 8, 1)), jnp.float32)
    params = flow.init(key, x)

    @jax.jit  # one compiled graph for everything (compile time dominates on CPU)
    def run(params, key, x, u):
        (loss, m), grads = jax.value_and_grad(flow.loss, has_aux=True)(params, key, x)
        logp = flow.log_prob(params, key, x)  # same key: the loss's dequantization
        return loss, m, grad_norm(grads), logp, flow.sample(params, key, 3), flow.log_prob(params, key, u, dequantize=False)

    loss, m, gnorm, logp, s, logp_u = run(params, key, x, u)
    assert np.isfinite(float(loss)) and np.isfinite(float(gnorm)) and float(gnorm) > 0.0
    expected_bpd = genjax.metrics.bits_per_dim(float(m["nll"]), 64, num_levels=256)
    np.testing.assert_allclose(float(m["bits_per_dim"]), expected_bpd, rtol=1e-6, atol=1e-6)
    assert 0.0 < float(m["bits_per_dim"]) < 16.0
    assert logp.shape == (4,)
    np.testing.assert_allclose(-float(jnp.mean(logp)), float(m["nll"]), rtol=1e-5, atol=1e-4)
    assert s.shape == (3, 8, 8, 1) and float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    if name == "realnvp":  # zero-initialised couplings, no ActNorm: the flow is logit + N(0, I) exactly
        y, ld = F.Logit(0.05, event_ndims=3).forward_and_log_det(u)
        ref = _std_normal_logp(np.asarray(y).reshape(2, -1)) + np.asarray(ld)
        np.testing.assert_allclose(logp_u, ref, rtol=1e-5, atol=1e-3)


def grad_norm(tree):
    return jnp.sqrt(sum(jnp.sum(l**2) for l in jax.tree_util.tree_leaves(tree)))


def test_realnvp_actnorm_sits_before_each_coupling_and_is_initialised_from_data(key, rng):
    """``realnvp_image(actnorm=True)``: ActNorm before every coupling (the paper's batch-norm
    bijector); the first one normalises the init batch per channel; ``actnorm=False`` has none."""
    from genjax.flows.layers import ActNormLayer, AffineCouplingLayer

    def walk(layers):
        for layer in layers:
            yield layer
            yield from walk(getattr(layer, "layers", ()))  # FactorOutLayer nests the next scale

    flow = F.realnvp_image((4, 4, 1), num_scales=2, features=4, num_blocks=0)
    kinds = [type(layer) for layer in walk(flow.layers)]
    couplings = [i for i, k in enumerate(kinds) if k is AffineCouplingLayer]
    assert len(couplings) == 3 + 3 + 4 and all(kinds[i - 1] is ActNormLayer for i in couplings)
    plain = F.realnvp_image((4, 4, 1), num_scales=2, features=4, num_blocks=0, actnorm=False)
    assert ActNormLayer not in [type(layer) for layer in walk(plain.layers)]
    x = jnp.asarray(rng.integers(0, 256, (16, 4, 4, 1)) / 255.0, jnp.float32)
    p = flow.init(key, x)["layer_0"]
    x_deq = genjax.data.pipeline.uniform_dequantize(jax.random.split(key)[0], x, num_levels=256)
    y = np.asarray(F.ActNorm(p["log_scale"], p["bias"], event_ndims=3).forward(F.Logit(0.05).forward(x_deq)))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_glow_actnorm_is_initialised_from_data(key, rng):
    """After init, the first ActNorm's outputs on the init batch are normalised per channel."""
    flow = F.glow((4, 4, 1), num_levels=1, num_steps=1, features=4, num_blocks=0, data_levels=256, preprocess="logit")
    x = jnp.asarray(rng.integers(0, 256, (16, 4, 4, 1)) / 255.0, jnp.float32)
    params = flow.init(key, x)
    p = params["layer_1"]  # layers: squeeze, actnorm, conv, coupling, unsqueeze
    assert set(p) == {"log_scale", "bias"} and np.abs(np.asarray(p["log_scale"])).max() > 0.1
    # the same batch, dequantized as init did, pushed through logit and squeeze
    x_deq = genjax.data.pipeline.uniform_dequantize(jax.random.split(key)[0], x, num_levels=256)
    h = F.Squeeze().forward(F.Logit(0.05).forward(x_deq))
    y = np.asarray(F.ActNorm(p["log_scale"], p["bias"], event_ndims=3).forward(h))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)


# ---------------------------------------------------------------------- bad input
def test_bad_input_raises(key):
    flow = F.realnvp_2d(num_layers=2, hidden=(8,))
    params = flow.init(key, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"batch must have shape \(batch, 2\), got shape \(4, 3\)"):
        flow.loss(params, key, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x must have rank 2"):
        flow.log_prob(params, key, jnp.zeros((2,)))
    with pytest.raises(ValueError, match="1 non-finite values"):
        flow.log_prob(params, key, jnp.array([[0.0, 1.0], [jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match="num must be a positive integer"):
        flow.sample(params, key, 0)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        flow.sample(params, key, 2, temperature=0.0)
    with pytest.raises(ValueError, match=r"got shape \(4, 3\)"):
        jax.jit(flow.loss)(params, key, jnp.zeros((4, 3)))  # shape checks run at trace time too
    image = F.glow((4, 4, 1), num_levels=1, num_steps=1, features=4, num_blocks=0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        image.init(key, jnp.full((2, 4, 4, 1), 1.5))
    with pytest.raises(ValueError, match="must be divisible by 4"):
        F.glow((6, 6, 1), num_levels=2)
    with pytest.raises(ValueError, match="odd sizes cannot be squeezed"):
        F.realnvp_image((7, 7, 1), num_scales=2)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        F.glow((8, 8), num_levels=1)
    with pytest.raises(ValueError, match="unknown order"):
        F.maf(3, order="sorted")
    with pytest.raises(ValueError, match="dim >= 2"):
        F.realnvp(1)
