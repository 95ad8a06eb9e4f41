"""Normalizing flows (seed chapter §19.1): RealNVP, Glow, MAF and neural spline flows.

Flows are ``distrax.Transformed(N(0, I), distrax.Inverse(g))`` with ``g`` (data ->
base) a chain of distrax bijectors rebuilt from a params pytree inside pure
functions. Layers distrax lacks (ActNorm, invertible 1x1 convolution, squeeze,
multi-scale factor-out, the MAF bijector, logit pre-processing) live in
``bijectors.py`` / ``coupling.py``; ``check_bijector`` checks any bijector.

Examples:
  >>> import jax, genjax.flows as flows
  >>> flow = flows.realnvp_2d(num_layers=4, hidden=(16,))
  >>> x = jax.numpy.zeros((3, 2))
  >>> params = flow.init(jax.random.PRNGKey(0), x)
  >>> flow.log_prob(params, jax.random.PRNGKey(1), x).shape
  (3,)
"""

from genjax.flows.bijectors import (
    ActNorm,
    FactorOut,
    InvertibleConv1x1,
    LearnedPrior,
    Logit,
    Squeeze,
    actnorm_init,
    conv1x1_lu_init,
)
from genjax.flows.check import check_bijector
from genjax.flows.constructors import glow, maf, nsf, nsf_2d, realnvp, realnvp_2d, realnvp_image
from genjax.flows.coupling import (
    AffineCoupling,
    MaskedAutoregressive,
    alternating_mask,
    bounded_log_scale,
    channel_mask,
    checkerboard_mask,
    spline_coupling,
)
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
    chain_layers,
    init_layers,
)
from genjax.flows.models import Flow
from genjax.flows.objectives import base_log_prob, dequantize, log_likelihood, negative_log_likelihood
from genjax.nn.conditioners import ConvConditioner, MLPConditioner, ZeroConv  # the coupling networks, re-exported
from genjax._units import bits_per_dim

__all__ = [
    "ActNorm",
    "ActNormLayer",
    "AffineCoupling",
    "AffineCouplingLayer",
    "Conv1x1Layer",
    "ConvConditioner",
    "FactorOut",
    "FactorOutLayer",
    "Flow",
    "FlowLayer",
    "InvertibleConv1x1",
    "LearnedPrior",
    "LearnedPriorLayer",
    "Logit",
    "MAFLayer",
    "MLPConditioner",
    "MaskedAutoregressive",
    "ShiftLayer",
    "SplineCouplingLayer",
    "Squeeze",
    "SqueezeLayer",
    "ZeroConv",
    "actnorm_init",
    "base_log_prob",
    "alternating_mask",
    "bits_per_dim",
    "bounded_log_scale",
    "chain_layers",
    "channel_mask",
    "check_bijector",
    "checkerboard_mask",
    "conv1x1_lu_init",
    "dequantize",
    "glow",
    "init_layers",
    "log_likelihood",
    "maf",
    "negative_log_likelihood",
    "nsf",
    "nsf_2d",
    "realnvp",
    "realnvp_2d",
    "realnvp_image",
    "spline_coupling",
]
