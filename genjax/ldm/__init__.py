"""Stable Diffusion in miniature (Rombach et al., 2022): latent diffusion with text conditioning.

A system, not a family: it composes the families' parts. Stage 1 is a KL-regularised
convolutional autoencoder (``autoencoder.py``; its KL is the VAE family's closed form, its
optional patch discriminator trains with the GAN family's objectives through the one
trainer's adversarial step); stage 2 is the diffusion family's DDPM on the frozen,
scaled latents, its UNet cross-attending to a frozen text encoder's token states (CLIP's).
"""
