"""The VAE constructors: the seed chapter's MLP VAE, the IWAE paper's networks and a conv VAE
(the same file name in every family: models.py holds the model, constructors.py its factories)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genjax import _checks
from genjax.nn.conv import ConvDecoder, ConvEncoder
from genjax.nn.mlp import ACTIVATIONS, MLPDecoder, MLPEncoder
from genjax.vae.models import LIKELIHOODS, VAE


def _out_features(data_shape: tuple[int, ...], likelihood: str) -> int:
    return int(np.prod(data_shape)) * (2 if likelihood == "gaussian_learned" else 1)


def mlp_vae(
    data_dim: int | None = None,
    *,
    data_shape: Sequence[int] | None = None,
    latent_dim: int = 20,
    hidden: Sequence[int] = (400,),
    activation: str = "relu",
    likelihood: str = "bernoulli",
    obs_std: float = 1.0,
    beta: float = 1.0,
    num_samples: int = 1,
    sample_mean: bool = False,
) -> VAE:
    """An MLP VAE; the decoder mirrors the encoder's hidden widths.

    Give either ``data_dim`` (flat data ``(b, data_dim)``) or ``data_shape``
    (e.g. ``(8, 8, 1)``; the encoder flattens).

    Examples:
      >>> vae = mlp_vae(data_dim=784, latent_dim=20, hidden=(400,))   # the seed's VAE
      >>> vae.data_shape
      (784,)
    """
    if (data_dim is None) == (data_shape is None):
        raise ValueError("give exactly one of data_dim (flat data) or data_shape")
    shape = (_checks.positive_int("data_dim", data_dim),) if data_shape is None else tuple(data_shape)
    hidden = tuple(_checks.positive_int("hidden entries", h) for h in hidden)
    _checks.one_of("likelihood", likelihood, LIKELIHOODS)
    _checks.one_of("activation", activation, tuple(ACTIVATIONS))
    return VAE(
        encoder=MLPEncoder(hidden, latent_dim, activation),
        decoder=MLPDecoder(hidden[::-1], _out_features(shape, likelihood), activation),
        data_shape=shape,
        latent_dim=latent_dim,
        likelihood=likelihood,
        obs_std=obs_std,
        beta=beta,
        num_samples=num_samples,
        sample_mean=sample_mean,
    )


def seed_vae(data_dim: int = 784, latent_dim: int = 20, **kwargs) -> VAE:
    """The seed chapter's VAE: ``data_dim``-400-``latent_dim``, ReLU, Bernoulli decoder."""
    return mlp_vae(data_dim, latent_dim=latent_dim, hidden=(400,), activation="relu", **kwargs)


def iwae_paper_vae(data_dim: int = 784, *, num_samples: int = 1, **kwargs) -> VAE:
    """Burda et al. (2016), one stochastic layer: 784-200-200-50 tanh, Bernoulli decoder."""
    return mlp_vae(
        data_dim, latent_dim=50, hidden=(200, 200), activation="tanh", num_samples=num_samples, **kwargs
    )


def conv_vae(
    data_shape: Sequence[int],
    *,
    latent_dim: int = 16,
    features: Sequence[int] = (32, 64),
    hidden: int = 256,
    likelihood: str = "bernoulli",
    obs_std: float = 1.0,
    beta: float = 1.0,
    num_samples: int = 1,
    sample_mean: bool = False,
) -> VAE:
    """A convolutional VAE for ``(H, W, C)`` images, H and W divisible by ``2**len(features)``."""
    shape = tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C) for a conv VAE, got {shape}")
    _checks.one_of("likelihood", likelihood, LIKELIHOODS)
    h, w, c = shape
    out_c = c * (2 if likelihood == "gaussian_learned" else 1)
    return VAE(
        encoder=ConvEncoder(tuple(features), 2 * latent_dim, hidden),
        decoder=ConvDecoder((h, w, out_c), tuple(features)[::-1], hidden),
        data_shape=shape,
        latent_dim=latent_dim,
        likelihood=likelihood,
        obs_std=obs_std,
        beta=beta,
        num_samples=num_samples,
        sample_mean=sample_mean,
    )
