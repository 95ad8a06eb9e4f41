"""Diffusion models: DDPM/DDIM, NCSN and score SDEs (schedules, objectives, samplers, likelihoods)."""

from genjax.diffusion.objectives import (
    discretized_gaussian_log_likelihood,
    dsm_loss,
    eps_matching_loss,
    q_posterior,
    q_sample,
    score_sde_loss,
    vlb_terms,
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
    "cosine_schedule",
    "discretized_gaussian_log_likelihood",
    "dsm_loss",
    "eps_matching_loss",
    "geometric_sigmas",
    "linear_schedule",
    "q_posterior",
    "q_sample",
    "schedule_from_betas",
    "score_sde_loss",
    "vlb_terms",
]
