"""A critic on random Fourier features: resolves narrow bumps (2-D mixtures) at once.

``phi(x) = [x, sin(x B), cos(x B)]`` with a fixed ``B ~ N(0, sigma^2)`` of shape
``(example_dim, num_features)``, then an MLP (LeakyReLU 0.2) to one logit. On raw 2-D
coordinates an MLP learns std-0.05 / std-0.01 bumps only after thousands of steps
(spectral bias); Fourier features (Tancik et al., 2020) let it resolve them at once,
which is what a GAN's generator needs to be pulled onto the modes. The raw ``x`` keeps
a non-periodic view, so far-away fakes still get a gradient back.

Packed inputs (PacGAN): with ``example_dim`` set, a row of ``m = k * example_dim``
numbers is read as ``k`` concatenated examples; each gets its own features (the same
``B``) and the MLP sees their concatenation ``(k * (example_dim + 2 num_features))``.
This is what :class:`genjax.gan.GAN` with ``pack=k`` feeds its critic.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from genjax.nn.mlp import MLP


class _Logit(nn.Module):
    """``(n, ...) -> (n,)``: flatten, MLP to one output (the layout of ``genjax.gan.MLPDiscriminator``)."""

    hidden: Sequence[int]
    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, x):
        return MLP(tuple(self.hidden), 1, self.activation, name="mlp")(x.reshape(x.shape[0], -1))[:, 0]


class FourierDiscriminator(nn.Module):
    """``(n, m) -> (n,)`` logits: random Fourier features of each example, then an MLP.

    ``B`` is drawn from ``seed`` with numpy at trace time: a constant of the architecture,
    not a parameter (neither trained nor weight-clipped).

    Attributes:
      hidden: MLP widths (LeakyReLU 0.2), then a linear layer to one logit.
      num_features: number of frequencies (features ``2 * num_features + example_dim``).
      sigma: std of the frequencies (in the units the critic sees).
      seed: numpy seed of ``B``.
      example_dim: the dimension of one example; the input's last axis must be a multiple
        of it (a pack of examples). None: the whole row is one example.
    """

    hidden: Sequence[int]
    num_features: int = 64
    sigma: float = 1.0
    seed: int = 0
    example_dim: int | None = None

    #: each row's score depends on that row only: see ``MLPDiscriminator.rowwise``
    rowwise = True

    @nn.compact
    def __call__(self, x):
        if x.ndim != 2:
            raise ValueError(f"FourierDiscriminator takes (batch, features) inputs, got shape {x.shape}")
        n, m = x.shape
        e = m if self.example_dim is None else int(self.example_dim)
        if e <= 0 or m % e:
            raise ValueError(
                f"FourierDiscriminator: the input has {m} features per row, not a multiple of example_dim={e}"
            )
        xs = x.reshape(n, m // e, e)
        b = np.random.default_rng(self.seed).normal(0.0, self.sigma, (e, self.num_features))
        proj = xs @ jnp.asarray(b, x.dtype)
        phi = jnp.concatenate([xs, jnp.sin(proj), jnp.cos(proj)], axis=-1)
        return _Logit(tuple(self.hidden), "leaky_relu", name="mlp")(phi.reshape(n, -1))
