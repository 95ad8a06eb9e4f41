"""The families' networks in ``genjax.nn``: moved from vae/gan/flows without changing a
parameter name (saved checkpoints hold these trees), and computing what they say."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import flows, gan, vae
from genjax.nn import conditioners, mlp


def _paths(tree) -> list[str]:
    return sorted("/".join(str(getattr(k, "key", k)) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree))


def _dense(prefix: str, n: int) -> list[str]:
    return sorted(f"{prefix}/{layer}/{p}" for layer in [*(f"dense_{i}" for i in range(n)), "out"] for p in ("bias", "kernel"))


def test_vae_and_gan_parameter_trees_keep_their_names(key):
    x = jnp.zeros((2, 4, 4, 1))
    v = vae.mlp_vae(data_shape=(4, 4, 1), hidden=(8, 6), latent_dim=2)
    pv = v.init(key, x)
    assert _paths(pv) == sorted([*(f"decoder/{p}" for p in _dense("params/mlp", 2)), *(f"encoder/{p}" for p in _dense("params/mlp", 2))])
    assert pv["encoder"]["params"]["mlp"]["dense_0"]["kernel"].shape == (16, 8)
    g = gan.mlp_gan((4, 4, 1), latent_dim=3, g_hidden=(8,), d_hidden=(6,), output="tanh", data_range="unit")
    pg = g.init(key, x)
    assert _paths(pg) == sorted([*(f"discriminator/{p}" for p in _dense("params/mlp", 1)),
                                 *(f"generator/{p}" for p in _dense("params/mlp", 1))])
    # the public names still reach the moved classes
    assert gan.MLPGenerator is mlp.MLPGenerator and flows.MLPConditioner is conditioners.MLPConditioner


def test_mlp_networks_compute_their_layers(key, rng):
    """MLPEncoder flattens then applies the MLP; MLPGenerator reshapes tanh(MLP(z)); the
    discriminator's score is the MLP's single output (numpy forward pass)."""
    x = jnp.asarray(rng.normal(size=(3, 2, 2, 1)), jnp.float32)
    enc = mlp.MLPEncoder((5,), latent_dim=2)
    p = enc.init(key, x)
    w = p["params"]["mlp"]
    h = np.maximum(np.asarray(x).reshape(3, 4) @ np.asarray(w["dense_0"]["kernel"]) + np.asarray(w["dense_0"]["bias"]), 0)
    expected = h @ np.asarray(w["out"]["kernel"]) + np.asarray(w["out"]["bias"])
    np.testing.assert_allclose(np.asarray(enc.apply(p, x)), expected, rtol=1e-5, atol=1e-5)

    z = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    gen = mlp.MLPGenerator((2, 2, 1), hidden=(5,))
    pg = gen.init(key, z)
    inner = mlp.MLP((5,), 4, "relu").apply({"params": pg["params"]["mlp"]}, z)
    np.testing.assert_allclose(np.asarray(gen.apply(pg, z)), np.tanh(np.asarray(inner)).reshape(3, 2, 2, 1), rtol=1e-5, atol=1e-6)

    disc = mlp.MLPDiscriminator((5,))
    pd = disc.init(key, x)
    inner = mlp.MLP((5,), 1, "leaky_relu").apply({"params": pd["params"]["mlp"]}, np.asarray(x).reshape(3, 4))
    assert disc.apply(pd, x).shape == (3,)
    np.testing.assert_allclose(np.asarray(disc.apply(pd, x)), np.asarray(inner)[:, 0], rtol=1e-6)


def test_conditioners_start_as_the_identity_coupling(key):
    c = conditioners.MLPConditioner((4,), 6)
    p = c.init(key, jnp.ones((2, 3)))
    assert not np.any(np.asarray(c.apply(p, jnp.ones((2, 3)))))  # zero last layer
    conv = conditioners.ConvConditioner(features=4, out_channels=2, num_blocks=1)
    pc = conv.init(key, jnp.ones((2, 4, 4, 1)))
    assert sorted(pc["params"]) == ["block_0_a", "block_0_b", "conv_in", "conv_out"]
    assert not np.any(np.asarray(conv.apply(pc, jnp.ones((2, 4, 4, 1)))))
