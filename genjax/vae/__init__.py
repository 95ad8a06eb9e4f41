"""Variational autoencoders (seed §19.2): ELBO, analytic KL, reparameterization, IWAE."""

from genjax.vae.constructors import conv_vae, iwae_paper_vae, mlp_vae, seed_vae
from genjax.vae.models import VAE, slerp
from genjax.vae.objectives import (
    bernoulli_log_likelihood,
    diag_gaussian_log_prob,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    iwae_bound,
    log_mean_exp,
    standard_normal_log_prob,
)

__all__ = [
    "VAE",
    "bernoulli_log_likelihood",
    "conv_vae",
    "diag_gaussian_log_prob",
    "elbo",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "iwae_bound",
    "iwae_paper_vae",
    "log_mean_exp",
    "mlp_vae",
    "seed_vae",
    "slerp",
    "standard_normal_log_prob",
]
