"""One-line GAN constructors: the seed's MLP GAN, DCGAN, WGAN, WGAN-GP, StyleGAN-style.

Extra keyword arguments go to :class:`~genjax.gan.models.GAN` (``loss_kind``, ``n_critic``,
``clip``, ``gp_weight``, ``r1_weight``, ``split_critic_batch``, ...).
"""

from __future__ import annotations

from typing import Sequence

from genjax import _checks
from genjax.gan.models import GAN
from genjax.nn.dcgan import INITS, NORMS, DCGANDiscriminator, DCGANGenerator, check_resolution, dcgan_features, default_stages
from genjax.nn.fourier import FourierDiscriminator
from genjax.nn.mlp import MLPDiscriminator, MLPGenerator
from genjax.nn.stylegan import ARCHITECTURES, ResidualDiscriminator, StyleGenerator

OUTPUTS = ("tanh", "linear")
ARCHS = ("mlp", "dcgan")


def _shape(data_shape) -> tuple[int, ...]:
    shape = (data_shape,) if isinstance(data_shape, int) else tuple(int(d) for d in data_shape)
    for d in shape:
        _checks.positive_int("data_shape entries", d)
    if not shape:
        raise ValueError("data_shape must not be empty")
    return shape


def _image_shape(data_shape, what: str) -> tuple[int, int, int]:
    shape = _shape(data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C) for {what}, got {shape}")
    return shape


def mlp_gan(
    data_shape: int | Sequence[int],
    *,
    latent_dim: int = 100,
    g_hidden: Sequence[int] = (128, 256),
    d_hidden: Sequence[int] = (256, 128),
    output: str = "tanh",
    loss_kind: str = "non_saturating",
    fourier_features: int = 0,
    fourier_sigma: float = 2.0,
    fourier_seed: int = 0,
    **gan_kwargs,
) -> GAN:
    """An MLP GAN: G ``latent -> g_hidden (ReLU) -> prod(data_shape)`` (tanh or linear),
    D ``prod(data_shape) -> d_hidden (LeakyReLU 0.2) -> 1`` logit.

    ``output="linear"`` suits unbounded data (2-D mixtures) and turns off the
    ``[-1, 1]`` data check. ``fourier_features > 0`` gives D random Fourier features
    of each example first (:class:`~genjax.nn.fourier.FourierDiscriminator`, frequencies
    ``N(0, fourier_sigma^2)`` in the units the networks see; vector data only), and
    ``pack=k`` (a :class:`~genjax.gan.models.GAN` option) makes it judge packs of
    ``k`` examples: the two remedies ``experiments/gan_mixture.py`` found for narrow
    mixtures (precision and mode coverage).

    Examples:
      >>> gan = mlp_gan(2, latent_dim=2, output="linear")
      >>> gan.data_shape, gan.log_prob_kind
      ((2,), 'none')
    """
    shape = _shape(data_shape)
    _checks.one_of("output", output, OUTPUTS)
    g_hidden = tuple(_checks.positive_int("g_hidden entries", h) for h in g_hidden)
    d_hidden = tuple(_checks.positive_int("d_hidden entries", h) for h in d_hidden)
    fourier_features = _checks.nonneg_int("fourier_features", fourier_features)
    if fourier_features:
        if len(shape) != 1:
            raise ValueError(f"fourier_features needs vector data (data_shape (d,)), got data_shape {shape}")
        disc = FourierDiscriminator(
            d_hidden, fourier_features, _checks.positive_float("fourier_sigma", fourier_sigma), int(fourier_seed), example_dim=shape[0]
        )
    else:
        disc = MLPDiscriminator(d_hidden, "leaky_relu")
    return GAN(
        generator=MLPGenerator(shape, g_hidden, "relu", output),
        discriminator=disc,
        data_shape=shape,
        latent_dim=latent_dim,
        loss_kind=loss_kind,
        output_range=(-1.0, 1.0) if output == "tanh" else None,
        **gan_kwargs,
    )


def seed_gan(data_dim: int = 784, latent_dim: int = 100, *, loss_kind: str = "non_saturating", **gan_kwargs) -> GAN:
    """The seed chapter's GAN (§19.3), layer for layer.

    G: ``latent_dim -> 128 -> 256 -> data_dim``, ReLU, tanh output. D: ``data_dim -> 256
    -> 128 -> 1``, LeakyReLU(0.2) (a logit; the chapter's final sigmoid lives in the
    loss). The chapter's training code minimises ``-log D(x) - log(1 - D(G(z)))`` for D
    and ``-log D(G(z))`` for G, i.e. ``loss_kind="non_saturating"`` (the default); its
    min-max formula with G minimising ``log(1 - D(G(z)))`` is ``loss_kind="minimax"``.
    """
    return mlp_gan(
        data_dim, latent_dim=latent_dim, g_hidden=(128, 256), d_hidden=(256, 128), output="tanh", loss_kind=loss_kind, **gan_kwargs
    )


def dcgan(
    data_shape: Sequence[int],
    *,
    latent_dim: int = 100,
    width: int = 64,
    features: Sequence[int] | None = None,
    d_features: Sequence[int] | None = None,
    g_norm: str = "batch",
    d_norm: str = "layer",
    weight_init: str = "dcgan",
    loss_kind: str = "non_saturating",
    **gan_kwargs,
) -> GAN:
    """A DCGAN for ``(H, W, C)`` images in ``[-1, 1]`` (see ``genjax.nn.dcgan`` for the
    normalisation choice). ``weight_init="dcgan"`` (the paper's, default): weights
    ``N(0, 0.02^2)``, batch-norm scales ``N(1, 0.02^2)``; ``"lecun"``: linen's defaults.

    Default widths: ``k`` stride-2 stages (28x28 -> 2 stages from 7x7, 32x32 -> 3 from
    4x4, 8x8 -> 2 from 2x2); generator ``(width * 2^(k-1), ..., width)``, discriminator
    ``(width, ..., width * 2^(k-1))``.

    Raises:
      ValueError: an image size the generator cannot produce (H, W not divisible by
        ``2**len(features)``), unknown norms.
    """
    shape = _image_shape(data_shape, "a DCGAN")
    h, w, _ = shape
    width = _checks.positive_int("width", width)
    _checks.one_of("g_norm", g_norm, NORMS)
    _checks.one_of("d_norm", d_norm, NORMS)
    _checks.one_of("weight_init", weight_init, INITS)
    g_feat = tuple(features) if features is not None else dcgan_features(h, w, width)
    check_resolution(shape, len(g_feat), what="DCGAN generator")
    d_feat = tuple(d_features) if d_features is not None else tuple(width * 2**i for i in range(len(g_feat)))
    return GAN(
        generator=DCGANGenerator(shape, g_feat, g_norm, weight_init=weight_init),
        discriminator=DCGANDiscriminator(d_feat, d_norm, weight_init=weight_init),
        data_shape=shape,
        latent_dim=latent_dim,
        loss_kind=loss_kind,
        **gan_kwargs,
    )


def _arch(arch: str, data_shape, kwargs: dict) -> GAN:
    _checks.one_of("arch", arch, ARCHS)
    return mlp_gan(data_shape, **kwargs) if arch == "mlp" else dcgan(data_shape, **kwargs)


def wgan(data_shape, *, arch: str = "mlp", clip: float = 0.01, n_critic: int = 5, **kwargs) -> GAN:
    """WGAN (Arjovsky et al., 2017): critic loss ``f(G(z)) - f(x)``, weights clipped to
    ``[-clip, clip]`` after every critic update, ``n_critic`` critic updates per
    generator update. The paper trains with RMSProp (lr 5e-5).

    Args:
      arch: "mlp" (:func:`mlp_gan` networks) or "dcgan".
    """
    return _arch(arch, data_shape, dict(loss_kind="wasserstein", clip=clip, n_critic=n_critic, **kwargs))


def wgan_gp(data_shape, *, arch: str = "mlp", gp_weight: float = 10.0, n_critic: int = 5, **kwargs) -> GAN:
    """WGAN-GP (Gulrajani et al., 2017): the WGAN critic loss plus
    ``gp_weight * (||grad f(x_hat)|| - 1)^2`` on random interpolates; the paper uses
    Adam(1e-4, b1=0.5, b2=0.9), ``n_critic = 5`` and a critic without batch norm."""
    return _arch(arch, data_shape, dict(loss_kind="wgan_gp", gp_weight=gp_weight, n_critic=n_critic, **kwargs))


R1_GAMMA = 1.0
"""The one default R1 gamma of the StyleGAN constructor, the CLI and the MNIST experiment.

StyleGAN2 uses 10 for 1024x1024 FFHQ; the penalty sums squared gradients over pixels, so
at 28x28 (about 1300x fewer) a smaller gamma regularises as strongly; 1.0 is the value
``experiments/gan_mnist.py`` has trained with."""


def stylegan(
    data_shape: Sequence[int],
    *,
    latent_dim: int = 64,
    w_dim: int = 64,
    mapping_layers: int = 8,
    mapping_lr_mul: float = 0.01,
    width: int = 32,
    channels: Sequence[int] | None = None,
    d_channels: Sequence[int] | None = None,
    equalized_lr: bool = True,
    architecture: str = "skip",
    blur: bool = True,
    w_avg_beta: float | None = 0.995,
    mbstd_group_size: int = 4,
    mbstd_channels: int = 1,
    style_mixing_prob: float = 0.9,
    r1_weight: float = R1_GAMMA,
    r1_interval: int = 16,
    pl_weight: float = 2.0,
    pl_interval: int = 4,
    loss_kind: str = "non_saturating",
    **gan_kwargs,
) -> GAN:
    """A small StyleGAN2: :class:`~genjax.nn.stylegan.StyleGenerator` against a
    :class:`~genjax.nn.stylegan.ResidualDiscriminator`, with the paper's defaults.

    Generator: 8-layer mapping network with learning-rate multiplier 0.01, ``w_avg``
    tracked with decay 0.995 (truncation's default centre), constant input, modulated /
    demodulated convolutions, noise inputs, ``[1, 3, 3, 1]`` FIR upsampling, the "skip"
    output architecture, style mixing with probability 0.9. Discriminator: residual,
    FIR downsampling, minibatch stddev (group 4, 1 channel). Equalized learning rate in
    both. Losses: non-saturating, R1 with gamma ``r1_weight`` (:data:`R1_GAMMA`) every 16
    steps, path length (weight 2, every 4 steps, half batch); lazy terms are weighted by
    their interval (the paper's rescaling). Each piece is an argument (``equalized_lr``,
    ``architecture="orig"``, ``blur=False``, ``mbstd_group_size=0``, ``pl_weight=0``,
    ``r1_interval=1``, ``w_avg_beta=None`` turn them off).

    Default widths: ``k = 2`` upsampling stages for 28x28 (7x7 base), 3 for 32x32;
    generator channels ``(width * 2^k, ..., width)``, discriminator ``(width, ...,
    width * 2^(k-1))``. Sample with ``truncation_psi`` for the truncation trick.

    Still simplified against the paper: small widths and few stages; the lazy terms are
    added to the main step of every k-th iteration rather than taken as separate
    optimizer steps (so Adam's lr and betas need no ``k / (k + 1)`` adjustment), and on
    CPU they are computed every step and selected (``genjax._xla.branch``: XLA:CPU runs
    conv gradients inside a conditional ~10x slower), so laziness saves time only on an
    accelerator; ``tanh`` output; see ``genjax.nn.stylegan``.

    Raises:
      ValueError: an image size the generator cannot produce from ``channels``; bad options.
    """
    shape = _image_shape(data_shape, "a StyleGAN")
    h, w, _ = shape
    width = _checks.positive_int("width", width)
    _checks.positive_int("w_dim", w_dim)
    _checks.positive_int("mapping_layers", mapping_layers)
    _checks.positive_float("mapping_lr_mul", mapping_lr_mul)
    _checks.one_of("architecture", architecture, ARCHITECTURES)
    _checks.nonneg_int("mbstd_group_size", mbstd_group_size)
    _checks.positive_int("mbstd_channels", mbstd_channels)
    if w_avg_beta is not None and not (isinstance(w_avg_beta, (int, float)) and 0.0 <= w_avg_beta < 1.0):
        raise ValueError(f"w_avg_beta must be in [0, 1) or None, got {w_avg_beta!r}")
    k = default_stages(h, w) if channels is None else len(tuple(channels)) - 1
    chans = tuple(channels) if channels is not None else tuple(width * 2 ** (k - i) for i in range(k + 1))
    if not chans:
        raise ValueError("channels must have at least one entry")
    check_resolution(shape, len(chans) - 1, what="StyleGAN generator")
    d_chans = tuple(d_channels) if d_channels is not None else tuple(width * 2**i for i in range(max(k, 1)))
    if mbstd_group_size and d_chans[-1] % mbstd_channels:
        raise ValueError(f"mbstd_channels={mbstd_channels} must divide the last discriminator width {d_chans[-1]}")
    generator = StyleGenerator(
        shape, w_dim, mapping_layers, chans, mapping_lr_mul=float(mapping_lr_mul), equalized_lr=bool(equalized_lr),
        architecture=architecture, blur=bool(blur), w_avg_beta=None if w_avg_beta is None else float(w_avg_beta),
    )
    discriminator = ResidualDiscriminator(
        d_chans, hidden=2 * w_dim, equalized_lr=bool(equalized_lr), blur=bool(blur),
        mbstd_group_size=int(mbstd_group_size), mbstd_channels=int(mbstd_channels),
    )
    return GAN(
        generator=generator,
        discriminator=discriminator,
        data_shape=shape,
        latent_dim=latent_dim,
        loss_kind=loss_kind,
        r1_weight=r1_weight,
        r1_interval=r1_interval,
        pl_weight=pl_weight,
        pl_interval=pl_interval,
        style_mixing_prob=style_mixing_prob,
        **gan_kwargs,
    )
