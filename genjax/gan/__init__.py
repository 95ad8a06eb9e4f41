"""Generative adversarial networks (seed §19.3): the seed's min-max GAN, DCGAN, WGAN,
WGAN-GP and a StyleGAN-style generator and two-player training. Mode-collapse diagnostics
(mode coverage, class histograms) are metrics: ``genjax.metrics.mode_coverage`` and friends.

Data space: a GAN maps data to its networks' space itself (``data_range="unit"`` for
``[0, 1]`` images onto the tanh range; ``input_scale`` for unbounded data), so losses
take and ``sample`` returns data-space arrays. With the defaults the spaces coincide:
tanh generators then need data in ``[-1, 1]`` (``genjax.data.to_signed(x)``), unless
the model was built with ``output="linear"``. ``pack=k`` is PacGAN's packing (the
critic judges, and is penalised on, groups of ``k`` examples).

Examples:
  >>> import genjax.gan as gan
  >>> model = gan.seed_gan(data_dim=2, latent_dim=2)
  >>> tx = gan.gan_adam(2e-4)               # one Adam per player
"""

from genjax.gan.constructors import R1_GAMMA, dcgan, mlp_gan, seed_gan, stylegan, wgan, wgan_gp
from genjax.gan.models import GAN, LOSSES, batch_x
from genjax.gan.objectives import (
    clip_weights,
    gradient_penalty,
    hinge_d_loss,
    hinge_g_loss,
    minimax_d_loss,
    minimax_g_loss,
    non_saturating_g_loss,
    path_length_penalty,
    path_lengths,
    r1_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from genjax.gan.step import GANOptimizer, gan_adam
from genjax.nn.mlp import MLPDiscriminator, MLPGenerator  # the seed's networks, re-exported

__all__ = [
    "GAN",
    "GANOptimizer",
    "LOSSES",
    "R1_GAMMA",
    "MLPDiscriminator",
    "MLPGenerator",
    "batch_x",
    "clip_weights",
    "dcgan",
    "gan_adam",
    "gradient_penalty",
    "hinge_d_loss",
    "hinge_g_loss",
    "minimax_d_loss",
    "minimax_g_loss",
    "mlp_gan",
    "non_saturating_g_loss",
    "path_length_penalty",
    "path_lengths",
    "r1_penalty",
    "seed_gan",
    "stylegan",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "wgan",
    "wgan_gp",
]
