"""Diffusion models: DDPM/DDIM, NCSN and score SDEs (schedules, objectives, samplers, likelihoods)."""

from genjax.diffusion.likelihood import ode_log_prob, vlb_bits_per_dim
from genjax.diffusion.objectives import (
    discretized_gaussian_log_likelihood,
    dsm_loss,
    eps_matching_loss,
    q_posterior,
    q_sample,
    score_sde_loss,
    vlb_terms,
)
from genjax.diffusion.sampling import (
    annealed_langevin_sample,
    classifier_free_guidance,
    ddim_encode,
    ddim_sample,
    ddpm_sample,
    ode_sample,
    pc_sample,
)
from genjax.diffusion.schedules import (
    VESDE,
    VPSDE,
    DiscreteSchedule,
    SubVPSDE,
    alpha_sigma,
    cosine_schedule,
    geometric_sigmas,
    linear_schedule,
    schedule_from_betas,
)

__all__ = [
    "DiscreteSchedule",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "alpha_sigma",
    "annealed_langevin_sample",
    "classifier_free_guidance",
    "cosine_schedule",
    "ddim_encode",
    "ddim_sample",
    "ddpm_sample",
    "discretized_gaussian_log_likelihood",
    "dsm_loss",
    "eps_matching_loss",
    "geometric_sigmas",
    "linear_schedule",
    "ode_log_prob",
    "ode_sample",
    "pc_sample",
    "q_posterior",
    "q_sample",
    "schedule_from_betas",
    "score_sde_loss",
    "vlb_bits_per_dim",
    "vlb_terms",
]
