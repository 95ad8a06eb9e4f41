"""One-line constructors of the flow families: RealNVP, Glow, MAF, NSF."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genjax import _checks
from genjax.flows.coupling import SCALE_FNS
from genjax.flows.layers import (
    ActNormLayer,
    AffineCouplingLayer,
    Conv1x1Layer,
    FactorOutLayer,
    FlowLayer,
    LearnedPriorLayer,
    MAFLayer,
    ShiftLayer,
    SplineCouplingLayer,
    SqueezeLayer,
)
from genjax.flows.models import Flow
from genjax.nn.conditioners import ConvConditioner, MLPConditioner, ZeroConv
from genjax.nn.made import MADE


def _hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    hidden = tuple(hidden)
    if not hidden:
        raise ValueError("hidden must list at least one layer width")
    return tuple(_checks.positive_int("hidden entries", h) for h in hidden)


def _image_shape(data_shape: Sequence[int], num_scales: int, what: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in data_shape)
    if len(shape) != 3:
        raise ValueError(f"data_shape must be (H, W, C) for {what}, got {shape}")
    for d in shape:
        _checks.positive_int("data_shape entries", d)
    div = 2**num_scales
    if shape[0] % div or shape[1] % div:
        raise ValueError(
            f"{what}: height and width of data_shape {shape} must be divisible by {div} "
            f"(each of the {num_scales} squeezes halves them; odd sizes cannot be squeezed)"
        )
    return shape


# ---------------------------------------------------------------------- vector data
def realnvp(
    dim: int | Sequence[int],
    *,
    num_layers: int = 8,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    scale_fn: str = "tanh",
    data_levels: int | None = None,
    logit_alpha: float | None = None,
    name: str = "realnvp",
) -> Flow:
    """RealNVP with MLP couplings (alternating even/odd masks) for vectors ``(dim,)`` or,
    given a shape such as ``(8, 8, 1)``, for data of that shape seen as flat vectors
    (the model flattens inside: ``Flow(flatten=True)``).

    Args:
      dim: ``D`` for flat data, or the data shape (``D = prod(shape)``).
      data_levels, logit_alpha: image data on ``L`` levels in [0, 1] (see :class:`Flow`).
      name: the flow's name in reports.

    Examples:
      >>> flow = realnvp(2, num_layers=4, hidden=(16,))
      >>> flow.data_shape, len(flow.layers)
      ((2,), 4)
      >>> realnvp((8, 8, 1), num_layers=2, hidden=(32,)).layer_shape
      (64,)
    """
    if isinstance(dim, (tuple, list)):
        shape = tuple(_checks.positive_int("dim entries", d) for d in dim)
        if not shape:
            raise ValueError("dim must be a positive integer or a non-empty data shape, got ()")
    else:
        shape = (_checks.positive_int("dim", dim),)
    d = int(np.prod(shape))
    if d < 2:
        raise ValueError(f"a coupling flow needs dim >= 2, got {dim}")
    _checks.positive_int("num_layers", num_layers)
    _checks.one_of("scale_fn", scale_fn, SCALE_FNS)
    hidden = _hidden(hidden)
    layers = tuple(
        AffineCouplingLayer(MLPConditioner(hidden, 2 * d, activation), (d,), "alternating", i % 2, scale_fn)
        for i in range(num_layers)
    )
    return Flow(layers, shape, name=name, data_levels=data_levels, logit_alpha=logit_alpha, flatten=len(shape) > 1)


def realnvp_2d(*, num_layers: int = 8, hidden: Sequence[int] = (64, 64), **kwargs) -> Flow:
    """RealNVP on 2-D data (toy densities): ``realnvp(2, ...)``."""
    return realnvp(2, num_layers=num_layers, hidden=hidden, **kwargs)


def nsf(
    dim: int,
    *,
    num_layers: int = 4,
    hidden: Sequence[int] = (64, 64),
    num_bins: int = 8,
    bound: float = 4.0,
    activation: str = "relu",
) -> Flow:
    """Neural spline flow (coupling, rational-quadratic splines on ``[-bound, bound]``)."""
    dim = _checks.positive_int("dim", dim)
    if dim < 2:
        raise ValueError(f"a coupling flow needs dim >= 2, got {dim}")
    _checks.positive_int("num_layers", num_layers)
    num_bins = _checks.positive_int("num_bins", num_bins)
    bound = _checks.positive_float("bound", bound)
    hidden = _hidden(hidden)
    out = dim * (3 * num_bins + 1)
    layers = tuple(
        SplineCouplingLayer(MLPConditioner(hidden, out, activation), dim, num_bins, bound, i % 2)
        for i in range(num_layers)
    )
    return Flow(layers, (dim,), name="nsf")


def nsf_2d(*, num_layers: int = 4, hidden: Sequence[int] = (64, 64), **kwargs) -> Flow:
    """Neural spline flow on 2-D data: ``nsf(2, ...)``."""
    return nsf(2, num_layers=num_layers, hidden=hidden, **kwargs)


def maf(
    dim: int,
    *,
    num_layers: int = 5,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    order: str = "reverse",
    seed: int = 0,
) -> Flow:
    """Masked autoregressive flow: stacked MADEs, the variable order changing between layers.

    Args:
      order: "reverse" (identity, reversed, identity, ...) or "random" (a permutation
        per layer drawn from ``seed``).
    """
    dim = _checks.positive_int("dim", dim)
    _checks.positive_int("num_layers", num_layers)
    _checks.one_of("order", order, ("reverse", "random"))
    hidden = _hidden(hidden)
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(num_layers):
        if order == "reverse":
            perm = tuple(range(dim)) if i % 2 == 0 else tuple(range(dim))[::-1]
        else:
            perm = tuple(int(p) for p in rng.permutation(dim))
        layers.append(MAFLayer(MADE(hidden, 2, perm, activation)))
    return Flow(tuple(layers), (dim,), name="maf")


# ---------------------------------------------------------------------- images
def _coupling(shape, mask_type, parity, features, num_blocks, scale_fn, out_log_scale=False) -> AffineCouplingLayer:
    cond = ConvConditioner(features, 2 * shape[-1], num_blocks, out_log_scale=out_log_scale)
    return AffineCouplingLayer(cond, tuple(shape), mask_type, parity, scale_fn)


def _realnvp_scale(shape, scale, num_scales, features, num_blocks, scale_fn, actnorm) -> tuple[FlowLayer, ...]:
    h, w, c = shape

    def coupling(s, mask_type, i):
        layer = _coupling(s, mask_type, i % 2, features, num_blocks, scale_fn)
        return (ActNormLayer(3), layer) if actnorm else (layer,)

    def many(s, mask_type, n):
        return [layer for i in range(n) for layer in coupling(s, mask_type, i)]

    if scale == num_scales - 1:
        return tuple(many(shape, "checkerboard", 4))
    sq = (h // 2, w // 2, 4 * c)
    layers = many(shape, "checkerboard", 3)
    layers.append(SqueezeLayer())
    layers += many(sq, "channel", 3)
    inner = _realnvp_scale((h // 2, w // 2, 2 * c), scale + 1, num_scales, features, num_blocks, scale_fn, actnorm)
    layers.append(FactorOutLayer(2 * c, inner))
    layers.append(SqueezeLayer(inverse=True))
    return tuple(layers)


def realnvp_image(
    data_shape: Sequence[int],
    *,
    num_scales: int = 2,
    features: int = 64,
    num_blocks: int = 2,
    data_levels: int = 256,
    logit_alpha: float = 0.05,
    scale_fn: str = "tanh",
    actnorm: bool = True,
) -> Flow:
    """Multi-scale RealNVP for ``(H, W, C)`` images in [0, 1] (Dinh et al., 2017).

    Each scale but the last: 3 checkerboard couplings, squeeze, 3 channel couplings,
    then half the channels are factored out; the last scale: 4 checkerboard couplings.
    Conditioners are ResNets of ``num_blocks`` blocks and ``features`` channels. H and W
    must be divisible by ``2**(num_scales - 1)``.

    ``actnorm`` (default on) puts an ActNorm before each coupling, initialised from the
    first batch: the role of the paper's batch-normalisation bijector (which keeps each
    coupling's input at unit scale), without batch statistics. Without it the stacked
    ``exp(s)`` factors (up to ``e^3`` each with the tanh bound) let the activations grow
    until the gradient overflows: the pinned MNIST run (lr 1e-3, batch 64) hit an
    infinite gradient norm at step 154.

    Examples:
      >>> flow = realnvp_image((8, 8, 1), num_scales=2, features=8, num_blocks=1)
      >>> flow.name, flow.data_levels
      ('realnvp', 256)
    """
    num_scales = _checks.positive_int("num_scales", num_scales)
    shape = _image_shape(data_shape, num_scales - 1, "realnvp_image")
    _checks.one_of("scale_fn", scale_fn, SCALE_FNS)
    features = _checks.positive_int("features", features)
    num_blocks = _checks.nonneg_int("num_blocks", num_blocks)
    layers = _realnvp_scale(shape, 0, num_scales, features, num_blocks, scale_fn, bool(actnorm))
    return Flow(layers, shape, name="realnvp", data_levels=data_levels, logit_alpha=logit_alpha)


PREPROCESS = ("center", "logit")


def _glow_level(shape, level, num_levels, opts) -> tuple[FlowLayer, ...]:
    h, w, c = shape
    sq = (h // 2, w // 2, 4 * c)
    layers: list[FlowLayer] = [SqueezeLayer()]
    for k in range(opts["num_steps"]):
        layers.append(ActNormLayer(3))
        layers.append(Conv1x1Layer(4 * c, seed=opts["seed"] * 10007 + level * 1000 + k))
        layers.append(
            _coupling(sq, "channel", k % 2, opts["features"], opts["num_blocks"], opts["scale_fn"], opts["out_log_scale"])
        )
    if level < num_levels - 1:
        if opts["split_prior"]:  # the factored half's prior N(m, e^s) from the kept half
            layers.append(LearnedPriorLayer(2 * c, ZeroConv(4 * c)))
        layers.append(FactorOutLayer(2 * c, _glow_level((h // 2, w // 2, 2 * c), level + 1, num_levels, opts)))
    elif opts["learn_top"]:  # the top prior: learned per-channel mean and scale
        layers.append(LearnedPriorLayer(4 * c, ZeroConv(8 * c)))
    layers.append(SqueezeLayer(inverse=True))
    return tuple(layers)


def glow(
    data_shape: Sequence[int],
    *,
    num_levels: int = 3,
    num_steps: int = 8,
    features: int = 128,
    num_blocks: int = 1,
    data_levels: int = 256,
    preprocess: str = "center",
    logit_alpha: float = 0.05,
    scale_fn: str = "sigmoid",
    split_prior: bool = True,
    learn_top: bool = True,
    out_log_scale: bool = True,
    seed: int = 0,
) -> Flow:
    """Glow (Kingma & Dhariwal, 2018) for ``(H, W, C)`` images in [0, 1].

    ``num_levels`` levels of: squeeze, ``num_steps`` x (ActNorm -> invertible 1x1 conv
    -> affine channel coupling), then (all but the last level) half the channels
    factored out. H and W must be divisible by ``2**num_levels``. ``seed`` fixes the
    1x1 convolutions' initial rotations (hence their non-trained permutations/signs).

    The paper's pieces, each an option with the paper's default:

    * ``preprocess="center"``: the dequantized data ``x`` in [0, 1] enter as ``x - 0.5``
      (log-det 0); ``"logit"``: as ``logit(alpha + (1 - 2 alpha) x)`` (RealNVP's, with
      ``logit_alpha``).
    * ``split_prior``: each factored-out half gets the prior ``N(m, e^{2s})`` with
      ``(m, s)`` a zero-initialised 3x3 conv of the kept half; else ``N(0, I)``.
    * ``learn_top``: the last level's output gets a learned per-channel mean and scale.
    * ``out_log_scale``: the couplings' last conv is zero-initialised with a learned
      per-channel output scale ``exp(3 logs)`` (Glow's ``Conv2dZeros``).

    ``scale_fn`` (:func:`~genjax.flows.coupling.bounded_log_scale`): ``"sigmoid"`` is the
    released code's ``sigmoid(raw + 2)`` (the default); ``"sigmoid2"`` (``2 sigmoid(raw)``,
    the identity at a zero conditioner, at most 2x per coupling) trains faster without the
    compounding expansions of ``"tanh"`` (``exp(3 tanh(raw / 3))``), which can send an
    unusual input to an infinite NLL in a deep flow (``experiments/flows_mnist.py``).

    Still simplified: no class-conditional prior; widths and depth are CPU-sized in the
    experiments.

    Examples:
      >>> flow = glow((8, 8, 1), num_levels=2, num_steps=2, features=8)
      >>> flow.name
      'glow'
    """
    num_levels = _checks.positive_int("num_levels", num_levels)
    num_steps = _checks.positive_int("num_steps", num_steps)
    shape = _image_shape(data_shape, num_levels, "glow")
    _checks.one_of("scale_fn", scale_fn, SCALE_FNS)
    _checks.one_of("preprocess", preprocess, PREPROCESS)
    opts = dict(
        num_steps=num_steps,
        features=_checks.positive_int("features", features),
        num_blocks=_checks.nonneg_int("num_blocks", num_blocks),
        scale_fn=scale_fn,
        out_log_scale=bool(out_log_scale),
        split_prior=bool(split_prior),
        learn_top=bool(learn_top),
        seed=int(seed),
    )
    layers = _glow_level(shape, 0, num_levels, opts)
    if preprocess == "center":
        return Flow((ShiftLayer(-0.5), *layers), shape, name="glow", data_levels=data_levels)
    return Flow(layers, shape, name="glow", data_levels=data_levels, logit_alpha=logit_alpha)
