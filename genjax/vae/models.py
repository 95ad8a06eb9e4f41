"""Variational autoencoders (seed chapter §19.2), as a frozen dataclass of modules.

Encoder ``q(z|x) = N(mu(x), diag sigma^2(x))``, prior ``p(z) = N(0, I)``, decoder
``p(x|z)`` Bernoulli (logits) or Gaussian (fixed or learned variance). Training
maximises the ELBO (``num_samples=1``, analytic KL, optional beta weight) or the
IWAE bound with ``k = num_samples`` importance samples. ``log_prob`` returns the
importance-sampled estimate of log p(x) -- a lower bound (``log_prob_kind =
"iwae_bound"``) that tightens as ``num_samples`` grows.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._checks import batch_x
from genjax.types import NO_CONDITION, Array, Batch, Metrics, Params, PRNGKeyArray, check_sample_args
from genjax.vae import objectives as obj

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned")


@dataclasses.dataclass(frozen=True)
class VAE:
    """A VAE over data of shape ``data_shape`` (see the module docstring).

    Attributes:
      encoder: module ``(b, *data_shape) -> (b, 2 * latent_dim)``.
      decoder: module ``(b, latent_dim) -> (b, m * prod(data_shape))`` or
        ``(b, H, W, m * C)``; ``m = 2`` for ``gaussian_learned`` (mean, logvar), else 1.
      data_shape: shape of one example, e.g. ``(784,)`` or ``(8, 8, 1)``.
      latent_dim: dimension of z.
      likelihood: "bernoulli", "gaussian" (variance ``obs_std**2`` fixed) or
        "gaussian_learned".
      obs_std: decoder standard deviation for ``likelihood="gaussian"``.
      beta: KL weight of the ELBO (beta-VAE); must be 1 when ``num_samples > 1``.
      num_samples: importance samples of the training objective (1 = ELBO, k > 1 = IWAE).
      sample_mean: what :meth:`sample` returns by default: ``E[x|z]`` (True; the usual
        picture of an image VAE, and the data space its samples are scored in) or a
        draw ``x ~ p(x|z)`` (False).
    """

    encoder: nn.Module
    decoder: nn.Module
    data_shape: tuple[int, ...]
    latent_dim: int
    likelihood: str = "bernoulli"
    obs_std: float = 1.0
    beta: float = 1.0
    num_samples: int = 1
    sample_mean: bool = False

    log_prob_kind = "iwae_bound"
    condition = NO_CONDITION  # unconditional: sample's ``cond`` must be None

    def __post_init__(self):
        _checks.one_of("likelihood", self.likelihood, LIKELIHOODS)
        _checks.positive_int("latent_dim", self.latent_dim)
        _checks.positive_int("num_samples", self.num_samples)
        _checks.positive_float("obs_std", self.obs_std)
        if not isinstance(self.sample_mean, bool):
            raise ValueError(f"sample_mean must be True or False, got {self.sample_mean!r}")
        if not (isinstance(self.beta, (int, float)) and self.beta >= 0):
            raise ValueError(f"beta must be a non-negative number, got {self.beta!r}")
        if self.num_samples > 1 and self.beta != 1.0:
            raise ValueError(
                f"beta={self.beta} needs num_samples=1: the IWAE objective (num_samples="
                f"{self.num_samples}) has no KL term to weight"
            )
        object.__setattr__(self, "data_shape", tuple(int(d) for d in self.data_shape))
        for d in self.data_shape:
            _checks.positive_int("data_shape entries", d)

    # ------------------------------------------------------------------ checks
    @property
    def event_ndims(self) -> int:
        return len(self.data_shape)

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` if ``batch`` is not data this model can score.

        Shape and dtype always; finiteness and (for a Bernoulli decoder) binary
        values when the batch is concrete.
        """
        x = batch_x(batch)
        _checks.batch_shape(name, x, self.data_shape)
        _checks.finite(name, x)
        if self.likelihood == "bernoulli":
            _checks.binary(name, x)

    def check_params(self, params: Params, *, name: str = "params", batch_size: int = 2) -> None:
        """Raises ``ValueError`` unless ``params`` has this model's tree and shapes.

        Compares paths and leaf shapes with ``jax.eval_shape(self.init, ...)`` (computed
        once per model): params of another model (a GAN) or of a VAE with other sizes
        fail here with a message naming the first mismatch. Static, so free under jit.
        """
        expected = _checks.expected_params(self, jax.ShapeDtypeStruct((batch_size, *self.data_shape), jnp.float32))
        _checks.check_params(
            name, params, expected, model=f"this VAE (data_shape={self.data_shape}, latent_dim={self.latent_dim})"
        )

    # ------------------------------------------------------------------ networks
    def encode(self, params: Params, x: Array) -> tuple[Array, Array]:
        """``(b, *data_shape)`` -> ``mu, logvar``, each ``(b, latent_dim)``."""
        h = self.encoder.apply(params["encoder"], x)
        mu, logvar = jnp.split(h, 2, axis=-1)
        return mu, logvar

    def decode(self, params: Params, z: Array) -> tuple[Array, Array | None]:
        """``(b, latent_dim)`` -> decoder parameters, each ``(b, *data_shape)``.

        Returns ``(logits, None)`` for Bernoulli, ``(mean, logvar)`` for Gaussians.
        """
        out = self.decoder.apply(params["decoder"], z)
        b = z.shape[0]
        if self.likelihood == "gaussian_learned":
            mean, logvar = jnp.split(out, 2, axis=-1)
            return mean.reshape(b, *self.data_shape), logvar.reshape(b, *self.data_shape)
        main = out.reshape(b, *self.data_shape)
        if self.likelihood == "gaussian":
            return main, jnp.full_like(main, 2.0 * math.log(self.obs_std))
        return main, None

    def decoder_mean(self, params: Params, z: Array) -> Array:
        """E[x|z]: Bernoulli probabilities or the Gaussian mean, ``(b, *data_shape)``."""
        a, _ = self.decode(params, z)
        return jax.nn.sigmoid(a) if self.likelihood == "bernoulli" else a

    def log_likelihood(self, params: Params, z: Array, x: Array) -> Array:
        """log p(x|z) for ``z`` of shape ``(..., b, latent_dim)`` -> ``(..., b)``."""
        lead = z.shape[:-1]
        a, logvar = self.decode(params, z.reshape(-1, self.latent_dim))
        a = a.reshape(*lead, *self.data_shape)
        if self.likelihood == "bernoulli":
            return obj.bernoulli_log_likelihood(logits=a, x=x, event_ndims=self.event_ndims)
        logvar = logvar.reshape(*lead, *self.data_shape)
        return obj.gaussian_log_likelihood(mean=a, logvar=logvar, x=x, event_ndims=self.event_ndims)

    # ------------------------------------------------------------------ model API
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """Parameters ``{"encoder": ..., "decoder": ...}`` from an example batch."""
        x = batch_x(batch)
        _checks.batch_shape("batch", x, self.data_shape)
        k_enc, k_dec = jax.random.split(key)
        z = jnp.zeros((x.shape[0], self.latent_dim), x.dtype)
        return {"encoder": self.encoder.init(k_enc, x), "decoder": self.decoder.init(k_dec, z)}

    def log_weights(self, params: Params, key: PRNGKeyArray, x: Array, *, num_samples: int) -> Array:
        """``log p(x, z_i) - log q(z_i|x)`` for ``z_i ~ q(z|x)``, shape ``(num_samples, b)``."""
        mu, logvar = self.encode(params, x)
        eps = jax.random.normal(key, (num_samples, *mu.shape), mu.dtype)
        z = mu + jnp.exp(0.5 * logvar) * eps
        log_q = obj.diag_gaussian_log_prob(z, mu, logvar)
        return self.log_likelihood(params, z, x) + obj.standard_normal_log_prob(z) - log_q

    def objective(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Per-example training objective (ELBO or IWAE bound, higher is better)."""
        x = batch_x(batch)
        self.check_batch(x, name="batch")
        self.check_params(params, batch_size=x.shape[0])
        if self.num_samples == 1:
            mu, logvar = self.encode(params, x)
            eps = jax.random.normal(key, mu.shape, mu.dtype)
            z = mu + jnp.exp(0.5 * logvar) * eps  # reparameterization
            ll = self.log_likelihood(params, z, x)
            kl = obj.gaussian_kl(mu, logvar)
            value = obj.elbo(ll, mu, logvar, beta=self.beta)
            return value, {"elbo": jnp.mean(ll - kl), "kl": jnp.mean(kl), "recon": -jnp.mean(ll)}
        log_w = self.log_weights(params, key, x, num_samples=self.num_samples)
        value = obj.iwae_bound(log_w, axis=0)
        return value, {f"iwae_{self.num_samples}": jnp.mean(value)}

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean negative objective over the batch (nats per example) and metrics."""
        value, metrics = self.objective(params, key, batch)
        loss = -jnp.mean(value)
        return loss, {"loss": loss, **metrics}

    def sample(
        self, params: Params, key: PRNGKeyArray, num: int, *, mean: bool | None = None, cond=None, guidance=None
    ) -> Array:
        """``num`` draws ``x ~ p(x|z) p(z)``, shape ``(num, *data_shape)``.

        With ``mean=True`` returns ``E[x|z]`` (Bernoulli probabilities / Gaussian
        means) instead, as is usual for pictures; ``mean=None`` (default) follows the
        model's ``sample_mean``. ``cond`` and ``guidance`` (the model API's) must be
        ``None``: this VAE takes no condition.
        """
        num = check_sample_args(self.condition, num, cond, guidance)[0]  # no condition: cond, guidance must be None
        mean = self.sample_mean if mean is None else bool(mean)
        self.check_params(params, batch_size=num)
        k_z, k_x = jax.random.split(key)
        z = jax.random.normal(k_z, (num, self.latent_dim))
        a, logvar = self.decode(params, z)
        if self.likelihood == "bernoulli":
            if mean:
                return jax.nn.sigmoid(a)
            return jax.random.bernoulli(k_x, jax.nn.sigmoid(a)).astype(a.dtype)
        if mean:
            return a
        return a + jnp.exp(0.5 * logvar) * jax.random.normal(k_x, a.shape, a.dtype)

    def log_prob(
        self, params: Params, key: PRNGKeyArray, x: Array, *, num_samples: int = 5000, chunk_size: int = 500
    ) -> Array:
        """Importance-sampled estimate of log p(x) (the IWAE bound with ``num_samples``).

        ``log p(x) >= E[log (1/K) sum_k p(x, z_k) / q(z_k|x)]``; K = 5000 is the
        evaluation setting of Burda et al. (2016). Samples are drawn ``chunk_size``
        at a time inside a ``lax.scan`` with a running log-sum-exp, so memory is
        ``O(chunk_size * b * prod(data_shape))`` whatever K is.

        Args:
          params: model parameters.
          key: PRNG key.
          x: ``(b, *data_shape)`` data.
          num_samples: K, importance samples per example.
          chunk_size: samples evaluated at once.

        Returns:
          ``(b,)`` estimates in nats (a lower bound on log p(x)).
        """
        self.check_batch(x)
        self.check_params(params, batch_size=x.shape[0])
        num_samples = _checks.positive_int("num_samples", num_samples)
        chunk = min(_checks.positive_int("chunk_size", chunk_size), num_samples)
        num_chunks = -(-num_samples // chunk)
        keys = jax.random.split(key, num_chunks)
        sample_index = jnp.arange(num_chunks * chunk).reshape(num_chunks, chunk)

        def body(carry, inputs):
            k, idx = inputs
            log_w = self.log_weights(params, k, x, num_samples=chunk)
            log_w = jnp.where((idx < num_samples)[:, None], log_w, -jnp.inf)
            return jnp.logaddexp(carry, jax.nn.logsumexp(log_w, axis=0)), None

        init = jnp.full((x.shape[0],), -jnp.inf, x.dtype)
        total, _ = jax.lax.scan(body, init, (keys, sample_index))
        return total - math.log(num_samples)

    # ------------------------------------------------------------------ extras
    def reconstruct(self, params: Params, key: PRNGKeyArray, x: Array, *, mean: bool = True) -> Array:
        """Encodes ``x``, draws ``z ~ q(z|x)`` and decodes; ``E[x|z]`` when ``mean``."""
        self.check_batch(x)
        self.check_params(params, batch_size=x.shape[0])
        mu, logvar = self.encode(params, x)
        k_z, k_x = jax.random.split(key)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(k_z, mu.shape, mu.dtype)
        if mean:
            return self.decoder_mean(params, z)
        a, dec_logvar = self.decode(params, z)
        if self.likelihood == "bernoulli":
            return jax.random.bernoulli(k_x, jax.nn.sigmoid(a)).astype(a.dtype)
        return a + jnp.exp(0.5 * dec_logvar) * jax.random.normal(k_x, a.shape, a.dtype)

    def interpolate(self, params: Params, x1: Array, x2: Array, *, num: int = 8, method: str = "linear") -> Array:
        """Decoder means along a path between the encoder means of ``x1`` and ``x2``.

        Args:
          x1, x2: ``(b, *data_shape)``.
          num: points on the path, end points included.
          method: "linear" or "slerp" (spherical, keeps the norm profile of
            Gaussian latents).

        Returns:
          ``(num, b, *data_shape)``.
        """
        self.check_batch(x1, name="x1")
        self.check_batch(x2, name="x2")
        if np.shape(x1) != np.shape(x2):
            raise ValueError(f"x1 and x2 must have the same shape, got {np.shape(x1)} and {np.shape(x2)}")
        num = _checks.positive_int("num", num)
        _checks.one_of("method", method, ("linear", "slerp"))
        self.check_params(params, batch_size=x1.shape[0])
        z1, _ = self.encode(params, x1)
        z2, _ = self.encode(params, x2)
        t = jnp.linspace(0.0, 1.0, num)[:, None, None]
        path = slerp(z1, z2, t) if method == "slerp" else (1.0 - t) * z1 + t * z2
        out = self.decoder_mean(params, path.reshape(-1, self.latent_dim))
        return out.reshape(num, x1.shape[0], *self.data_shape)


def slerp(z1: Array, z2: Array, t: Array) -> Array:
    """Spherical interpolation between rows of ``z1`` and ``z2`` at fractions ``t``.

    Falls back to linear interpolation where the two vectors are (nearly) parallel.
    """
    n1 = jnp.linalg.norm(z1, axis=-1, keepdims=True)
    n2 = jnp.linalg.norm(z2, axis=-1, keepdims=True)
    cos = jnp.sum(z1 * z2, axis=-1, keepdims=True) / jnp.maximum(n1 * n2, 1e-12)
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    so = jnp.sin(omega)
    safe = so > 1e-6
    so_safe = jnp.where(safe, so, 1.0)
    a = jnp.where(safe, jnp.sin((1.0 - t) * omega) / so_safe, 1.0 - t)
    b = jnp.where(safe, jnp.sin(t * omega) / so_safe, t)
    return a * z1 + b * z2
