"""Diffusion models as frozen dataclasses of a network and hyper-parameters.

Three families on the functions of ``objectives``, ``sampling`` and ``likelihood``:

* :class:`DDPM` -- discrete-time noise prediction (Ho et al., 2020); ancestral
  ("ddpm") and DDIM sampling; optional classifier-free guidance (Ho & Salimans, 2022).
  ``log_prob`` is the discrete variational bound (``log_prob_kind = "vlb"``).
* :class:`NCSN` -- noise-conditional score network (Song & Ermon, 2019) with
  annealed Langevin sampling; no likelihood (``log_prob_kind = "none"``).
* :class:`ScoreSDE` -- continuous-time score model (Song et al., 2021) with
  predictor-corrector and probability-flow ODE sampling; ``log_prob`` is the
  probability-flow ODE estimate (``log_prob_kind = "ode_estimate"``).

Data ranges (``data_range``):

* ``"unit"`` (images): batches arrive in ``[0, 1]`` float32; the models work on
  ``2 x - 1`` in ``[-1, 1]`` and ``sample`` maps back and clips to ``[0, 1]``.
* ``"identity"`` (toy 2-D data): data are used unscaled and samples are returned unscaled.

The network is a linen module called as ``network.apply(params, x, c, y)`` with
``x (b, *data_shape)`` in model space, ``c (b,)`` float conditioning scalar and ``y``
``(b,)`` int labels or ``None`` (a text-conditional DDPM adds ``context=``, ``context_mask=``:
its frozen text encoder's token states); see each class for what ``c`` is. Batches are an array
``(b, *data_shape)`` or a dict ``{"x": ..., "cond": labels or tokens}``; each model's ``condition``
(``genjax.types.Condition``) says what ``cond`` it takes.

The models live in one module each (``ddpm``, ``ncsn``, ``score_sde``), their factory
functions in ``constructors`` and what they share in ``_common``; this module re-exports
them, so ``from genjax.diffusion import models as dif; dif.DDPM`` keeps working.
"""

from genjax.diffusion._common import (
    DATA_RANGES, DDPM_SAMPLERS, FAST_DEFAULT_STEPS, FAST_SAMPLERS, NCSN_SAMPLERS, SDE_SAMPLERS, TIME_SCALE,
)
from genjax.diffusion.constructors import (
    _discrete_schedule,  # noqa: F401 - used by genjax.compare
    ddpm_2d,
    ddpm_image,
    ddpm_mlp,
    ncsn_2d,
    score_sde_2d,
    score_sde_image,
)
from genjax.diffusion.ddpm import DDPM
from genjax.diffusion.ncsn import NCSN
from genjax.diffusion.score_sde import ScoreSDE

__all__ = [
    "DATA_RANGES",
    "DDPM",
    "DDPM_SAMPLERS",
    "FAST_DEFAULT_STEPS",
    "FAST_SAMPLERS",
    "NCSN",
    "NCSN_SAMPLERS",
    "SDE_SAMPLERS",
    "ScoreSDE",
    "TIME_SCALE",
    "ddpm_2d",
    "ddpm_image",
    "ddpm_mlp",
    "ncsn_2d",
    "score_sde_2d",
    "score_sde_image",
]
