"""Factory functions of the diffusion models: residual-MLP denoisers for toy (flat) data,
UNets for ``(H, W, C)`` images."""

from __future__ import annotations

from typing import Callable, Sequence

from genjax import _checks
from genjax.diffusion import schedules as sch
from genjax.diffusion.ddpm import DDPM
from genjax.diffusion.ncsn import NCSN
from genjax.diffusion.score_sde import ScoreSDE
from genjax.nn.denoiser import MLPDenoiser
from genjax.nn.unet import UNet, check_image_size
from genjax.types import Condition


#: The discrete schedules by name (``genjax train ... --schedule``).
SCHEDULES = ("linear", "scaled_linear", "cosine")


def _discrete_schedule(schedule: str, T: int) -> sch.DiscreteSchedule:
    """``"linear"`` (DDPM's 1e-4..0.02 at T=1000), ``"scaled_linear"`` (Stable Diffusion's
    for latents: sqrt(beta) linear over 0.00085..0.012 at T=1000), both with betas scaled by
    1000/T so that abar_T stays small for short chains (near its T=1000 value), or ``"cosine"``."""
    T = _checks.positive_int("T", T)
    _checks.one_of("schedule", schedule, SCHEDULES)
    if schedule == "cosine":
        return sch.cosine_schedule(T)
    scale = 1000.0 / T
    if schedule == "scaled_linear":
        return sch.scaled_linear_schedule(T, beta_min=min(8.5e-4 * scale, 0.5), beta_max=min(1.2e-2 * scale, 0.999))
    return sch.linear_schedule(T, beta_min=min(1e-4 * scale, 0.5), beta_max=min(2e-2 * scale, 0.999))


#: The discrete schedules of the constructors by name (also for models built elsewhere, e.g.
#: the latent DDPM of ``genjax.ldm``).
discrete_schedule = _discrete_schedule


def _make_sde(sde, *, ve_sigma_max: float):
    if not isinstance(sde, str):
        return sde
    _checks.one_of("sde", sde, ("vp", "subvp", "ve"))
    if sde == "vp":
        return sch.VPSDE()
    if sde == "subvp":
        return sch.SubVPSDE()
    return sch.VESDE(sigma_min=0.01, sigma_max=ve_sigma_max)


def _image_shape(data_shape, channel_mult) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C) for an image model, got {shape}")
    check_image_size(shape[0], shape[1], len(tuple(channel_mult)))
    return shape


def ddpm_mlp(
    data_shape: Sequence[int],
    *,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    T: int = 100,
    schedule: str = "linear",
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    default_sampler: str = "ddpm",
    variance: str = "beta",
    data_range: str = "identity",
    num_levels: int = 256,
) -> DDPM:
    """DDPM with a residual-MLP denoiser on data of any shape: flat ``(D,)`` vectors or
    ``(H, W, C)`` images (``data_range="unit"``), which the denoiser flattens inside, so
    params, losses and samples equal the flat model's on the flattened data."""
    shape = tuple(int(d) for d in data_shape)
    return DDPM(
        MLPDenoiser(tuple(hidden), emb_dim, num_classes),
        shape,
        _discrete_schedule(schedule, T),
        num_classes=num_classes,
        p_uncond=p_uncond,
        default_sampler=default_sampler,
        data_range=data_range,
        variance=variance,
        num_levels=num_levels,
    )


def ddpm_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    T: int = 100,
    schedule: str = "linear",
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    default_sampler: str = "ddpm",
    variance: str = "beta",
) -> DDPM:
    """DDPM for toy 2-D (flat) data with a residual-MLP denoiser; data unscaled."""
    return ddpm_mlp(
        (_checks.positive_int("data_dim", data_dim),), hidden=hidden, emb_dim=emb_dim, T=T, schedule=schedule,
        num_classes=num_classes, p_uncond=p_uncond, default_sampler=default_sampler, variance=variance,
        data_range="identity",
    )


def ddpm_image(
    data_shape: Sequence[int],
    *,
    base: int = 32,
    channel_mult: Sequence[int] = (1, 2, 2),
    num_res_blocks: int = 1,
    num_heads: int = 1,
    T: int = 1000,
    schedule: str = "linear",
    num_classes: int | None = None,
    p_uncond: float = 0.1,
    default_sampler: str = "ddpm",
    variance: str = "beta",
    text_encoder: Callable | None = None,
    text_condition: Condition | None = None,
    null_tokens: Sequence[int] | None = None,
) -> DDPM:
    """DDPM for ``(H, W, C)`` images in [0, 1] with a UNet (H, W divisible by
    ``2 ** (len(channel_mult) - 1)``). With ``text_encoder`` (and ``text_condition``,
    ``null_tokens``; see :class:`DDPM`) the UNet cross-attends to the caption's token states
    (``UNet(use_context=True)``): the pixel-space text-to-image model."""
    shape = _image_shape(data_shape, channel_mult)
    net = UNet(base, tuple(channel_mult), num_res_blocks, num_classes, None, num_heads, use_context=text_encoder is not None)
    return DDPM(
        net, shape, _discrete_schedule(schedule, T), num_classes=num_classes, p_uncond=p_uncond,
        default_sampler=default_sampler, data_range="unit", variance=variance, text_encoder=text_encoder,
        text_condition=text_condition, null_tokens=None if null_tokens is None else tuple(null_tokens),
    )


def ncsn_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    sigma_max: float = 10.0,
    sigma_min: float = 0.01,
    num_sigmas: int = 20,
    steps_per_sigma: int = 100,
    step_size: float = 2e-5,
) -> NCSN:
    """NCSN for toy 2-D data: geometric noise levels ``sigma_max -> sigma_min``
    (``sigma_max`` about the data's diameter, Song & Ermon 2020's rule)."""
    return NCSN(
        MLPDenoiser(tuple(hidden), emb_dim),
        (_checks.positive_int("data_dim", data_dim),),
        sch.geometric_sigmas(sigma_max, sigma_min, num_sigmas),
        data_range="identity",
        steps_per_sigma=steps_per_sigma,
        step_size=step_size,
    )


def score_sde_2d(
    *,
    data_dim: int = 2,
    hidden: Sequence[int] = (128, 128, 128),
    emb_dim: int = 64,
    sde="vp",
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    default_sampler: str = "pc",
) -> ScoreSDE:
    """Score SDE for toy 2-D data. ``sde``: ``"vp"``, ``"subvp"``, ``"ve"``
    (``sigma_max = 10``, about the diameter of the toy densities) or an SDE object."""
    return ScoreSDE(
        MLPDenoiser(tuple(hidden), emb_dim),
        (_checks.positive_int("data_dim", data_dim),),
        _make_sde(sde, ve_sigma_max=10.0),
        likelihood_weighting=likelihood_weighting,
        eps=eps,
        data_range="identity",
        default_sampler=default_sampler,
    )


def score_sde_image(
    data_shape: Sequence[int],
    *,
    base: int = 32,
    channel_mult: Sequence[int] = (1, 2, 2),
    num_res_blocks: int = 1,
    num_heads: int = 1,
    sde="vp",
    likelihood_weighting: bool = False,
    eps: float = 1e-5,
    default_sampler: str = "pc",
) -> ScoreSDE:
    """Score SDE for ``(H, W, C)`` images in [0, 1] with a UNet. ``sde``: ``"vp"``,
    ``"subvp"``, ``"ve"`` (``sigma_max = 50``) or an SDE object."""
    shape = _image_shape(data_shape, channel_mult)
    return ScoreSDE(
        UNet(base, tuple(channel_mult), num_res_blocks, None, None, num_heads),
        shape,
        _make_sde(sde, ve_sigma_max=50.0),
        likelihood_weighting=likelihood_weighting,
        eps=eps,
        data_range="unit",
        default_sampler=default_sampler,
    )
