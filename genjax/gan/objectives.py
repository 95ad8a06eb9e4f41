"""GAN objectives as free pure functions on discriminator outputs (seed chapter §19.3).

Notation: ``D(x) = sigmoid(l(x))`` with ``l`` the discriminator's logit, ``x ~ p_data``
real data and ``G(z)``, ``z ~ N(0, I)`` generated data. Every loss is computed from
logits with ``softplus`` (``-log sigmoid(l) = softplus(-l)``,
``-log(1 - sigmoid(l)) = softplus(l)``), so it never takes ``log(0)`` and its gradient
stays finite for any finite logit. Losses are *minimised* and returned per example
(shape ``(b,)``); the model reduces them with a mean. Discriminator losses pair real
example ``i`` with fake example ``i``: their mean is the usual two-expectation loss.

Wasserstein and hinge losses read the same outputs as unbounded critic scores.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from genjax.types import Array, Params, PRNGKeyArray

CriticFn = Callable[[Array], Array]  # (n, *input_shape) -> (n,): one score per row (an example or a pack)


def _same_shape(real: Array, fake: Array) -> None:
    if np.shape(real) != np.shape(fake):
        raise ValueError(
            f"real and fake discriminator outputs must have the same shape, got {np.shape(real)} "
            f"and {np.shape(fake)}"
        )


def minimax_d_loss(*, real_logits: Array, fake_logits: Array) -> Array:
    """The seed's discriminator loss, ``-[log D(x) + log(1 - D(G(z)))]``.

    ``= softplus(-l_real) + softplus(l_fake)``. At the optimum for fixed G,
    ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``.

    Args:
      real_logits: ``(b,)`` logits on real data.
      fake_logits: ``(b,)`` logits on generated data.

    Returns:
      ``(b,)`` per-example loss.
    """
    _same_shape(real_logits, fake_logits)
    return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def minimax_g_loss(*, fake_logits: Array) -> Array:
    """The saturating min-max generator loss ``log(1 - D(G(z))) = -softplus(l_fake)``.

    Its gradient vanishes when D confidently rejects the fakes (``l_fake -> -inf``),
    which is why the seed's training code uses :func:`non_saturating_g_loss` instead.

    Args:
      fake_logits: ``(b,)``.

    Returns:
      ``(b,)`` per-example loss (minimised; always negative).
    """
    return -jax.nn.softplus(fake_logits)


def non_saturating_g_loss(*, fake_logits: Array) -> Array:
    """``-log D(G(z)) = softplus(-l_fake)`` (Goodfellow et al., 2014; the seed's ``g_loss``).

    Args:
      fake_logits: ``(b,)``.

    Returns:
      ``(b,)`` per-example loss.
    """
    return jax.nn.softplus(-fake_logits)


def wasserstein_critic_loss(*, real_scores: Array, fake_scores: Array) -> Array:
    """WGAN critic loss ``f(G(z)) - f(x)`` (minimising it maximises the W1 estimate).

    Args:
      real_scores: ``(b,)`` critic scores on real data.
      fake_scores: ``(b,)`` critic scores on generated data.

    Returns:
      ``(b,)`` per-example loss.
    """
    _same_shape(real_scores, fake_scores)
    return fake_scores - real_scores


def wasserstein_generator_loss(*, fake_scores: Array) -> Array:
    """WGAN (and hinge) generator loss ``-f(G(z))``, shape ``(b,)``."""
    return -fake_scores


def hinge_d_loss(*, real_scores: Array, fake_scores: Array) -> Array:
    """Hinge discriminator loss ``max(0, 1 - f(x)) + max(0, 1 + f(G(z)))`` (Lim & Ye, 2017).

    Args:
      real_scores: ``(b,)``.
      fake_scores: ``(b,)``.

    Returns:
      ``(b,)`` per-example loss.
    """
    _same_shape(real_scores, fake_scores)
    return jax.nn.relu(1.0 - real_scores) + jax.nn.relu(1.0 + fake_scores)


def hinge_g_loss(*, fake_scores: Array) -> Array:
    """Hinge generator loss ``-f(G(z))`` (the same as the Wasserstein one), shape ``(b,)``."""
    return -fake_scores


def clip_weights(params: Params, *, clip: float) -> Params:
    """WGAN weight clipping: every leaf of ``params`` clipped to ``[-clip, clip]``.

    Arjovsky et al. (2017) clip *all* critic parameters after each critic update to
    keep it (crudely) Lipschitz.
    """
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -clip, clip), params)


def _per_example_grad_sq_norm(critic_fn: CriticFn, x: Array) -> Array:
    """``||grad_x f(x_i)||^2`` for each row, via the gradient of ``sum_i f(x_i)``.

    Valid because the critic gives one score per row and treats rows independently (no
    batch statistics): then ``d/dx_i sum_j f(x_j) = grad f(x_i)``. A packed critic
    (PacGAN) must be given its packs as rows (``GAN.pack_batch``), never examples whose
    scores repeat a pack's: the gradient of the sum would then count each pack ``pack``
    times.
    """
    grads = jax.grad(lambda v: jnp.sum(critic_fn(v)))(x)
    return jnp.sum(jnp.square(grads).reshape(x.shape[0], -1), axis=-1)


def gradient_penalty(
    key: PRNGKeyArray, critic_fn: CriticFn, *, real: Array, fake: Array, target: float = 1.0
) -> Array:
    """WGAN-GP penalty ``(||grad f(x_hat)|| - target)^2`` (Gulrajani et al., 2017).

    ``x_hat = eps * x + (1 - eps) * G(z)`` with ``eps ~ U[0, 1]`` drawn per row from
    ``key``. The critic must treat rows independently (no batch norm), which is
    why the library's critics use layer norm or none. A row is whatever the critic
    scores: an example, or a PacGAN pack (``GAN.pack_batch``), whose gradient norm is
    then that of the whole concatenated pack and whose ``eps`` is one per pack.

    Args:
      key: PRNG key for the interpolation weights.
      critic_fn: ``(n, *input_shape) -> (n,)`` critic scores, one per row.
      real: ``(n, *input_shape)`` real data (examples or packs).
      fake: ``(n, *input_shape)`` generated data.
      target: the gradient norm the penalty pulls towards (1 for 1-Lipschitz).

    Returns:
      ``(n,)`` per-row penalty (multiply by the weight, 10 in the paper).
    """
    _same_shape(real, fake)
    eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake
    sq = _per_example_grad_sq_norm(critic_fn, x_hat)
    norm = jnp.sqrt(sq + 1e-12)  # finite gradient at a zero gradient
    return jnp.square(norm - target)


def r1_penalty(critic_fn: CriticFn, *, real: Array) -> Array:
    """R1 penalty ``||grad_x D(x)||^2`` on real data (Mescheder et al., 2018).

    The discriminator loss adds ``(gamma / 2) * mean(r1)``; the gradient is taken of the
    logit ``l(x)``, as in StyleGAN.

    Args:
      critic_fn: ``(n, *input_shape) -> (n,)`` logits, one per row.
      real: ``(n, *input_shape)`` real data (examples, or packs as for :func:`gradient_penalty`).

    Returns:
      ``(n,)`` per-row squared gradient norm.
    """
    return _per_example_grad_sq_norm(critic_fn, real)


def path_lengths(synthesis_fn: Callable[[Array], Array], ws: Array, noise: Array) -> Array:
    """StyleGAN2's path lengths ``||J_w^T y||_2`` per example (Karras et al., 2020, eq. 4).

    ``J_w`` is the Jacobian of the image ``g(w)`` with respect to the styles and ``y`` is
    a random image ``N(0, I) / sqrt(H W)`` (drawn by the caller). As in the reference
    code, the squared norm is summed over ``w_dim`` and averaged over the style layers
    before the square root. One vector-Jacobian product (the synthesis must treat
    examples independently).

    Args:
      synthesis_fn: ``ws (n, L, w_dim) -> images (n, ...)``.
      ws: ``(n, L, w_dim)`` styles.
      noise: ``y``, the shape of the images.

    Returns:
      ``(n,)`` path lengths.
    """
    images, vjp = jax.vjp(synthesis_fn, ws)
    if images.shape != np.shape(noise):
        raise ValueError(f"noise must have the images' shape {images.shape}, got {np.shape(noise)}")
    (grads,) = vjp(noise.astype(images.dtype))
    return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def path_length_penalty(lengths: Array, pl_mean: Array, *, decay: float = 0.01) -> tuple[Array, Array]:
    """Path-length penalty ``(a_i - a)^2`` with ``a`` the running mean of the lengths.

    ``a = pl_mean + decay * (mean_i a_i - pl_mean)`` is updated first (with its gradient
    through ``mean_i a_i``, as in the reference code); the caller stores ``a`` (stopped)
    as the next ``pl_mean``.

    Args:
      lengths: ``(n,)`` path lengths (:func:`path_lengths`).
      pl_mean: the running mean before this batch (a scalar).
      decay: the running mean's step (paper: 0.01).

    Returns:
      ``(n,)`` per-example penalty and the updated mean.
    """
    new_mean = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
    return jnp.square(lengths - new_mean), new_mean
