"""NCSN: noise-conditional score network with annealed Langevin sampling (Song & Ermon, 2019)."""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax.diffusion import objectives as obj
from genjax.diffusion import sampling as smp
from genjax.diffusion import schedules as sch
from genjax.diffusion._common import (
    NCSN_SAMPLERS,
    TIME_SCALE,
    _check_params,
    _check_x,
    _finish,
    _init_common,
    _sample_shape,
    _steps,
    _to_model,
)
from genjax.types import NO_CONDITION, Array, Batch, Metrics, Params, PRNGKeyArray, check_sample_args


@dataclasses.dataclass(frozen=True, eq=False)
class NCSN:
    """Noise-conditional score network with annealed Langevin sampling.

    ``score(x, sigma) = network(x, c(sigma)) / sigma`` (the NCSNv2 parameterisation),
    with the noise level fed as ``c(sigma) = 999 log(sigma / sigma_min) /
    log(sigma_max / sigma_min)`` (0 for one level), so it spans the range of the
    time embedding like a DDPM step index. Training: ``objectives.dsm_loss``
    (``sigma^2``-weighted denoising score matching, level ``~ U``).

    ``log_prob`` is not available (``log_prob_kind = "none"``): the network is trained
    only at the discrete levels ``sigmas``, which define no density.

    Attributes:
      network: module ``(x, c (b,) float, y=None) -> (b, *data_shape)``.
      data_shape: one example's shape.
      sigmas: ``(L,)`` decreasing noise levels (``schedules.geometric_sigmas``).
      data_range: ``"unit"`` or ``"identity"``.
      steps_per_sigma, step_size: annealed Langevin defaults.
    """

    network: nn.Module
    data_shape: tuple[int, ...]
    sigmas: Array = dataclasses.field(repr=False)
    data_range: str = "identity"
    steps_per_sigma: int = 100
    step_size: float = 2e-5

    log_prob_kind = "none"
    condition = NO_CONDITION  # unconditional: ``cond`` must be None

    def __post_init__(self):
        _init_common(self)
        sch.check_sigmas(self.sigmas)
        s = np.asarray(self.sigmas, np.float64)
        if s.shape[0] > 1 and not np.all(np.diff(s) < 0):
            raise ValueError("sigmas must be strictly decreasing (largest noise level first)")
        object.__setattr__(self, "sigmas", jnp.asarray(s, jnp.float32))
        _checks.positive_int("steps_per_sigma", self.steps_per_sigma)
        _checks.positive_float("step_size", self.step_size)

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite or out-of-range values."""
        _check_x(self, batch, name)

    def noise_input(self, sigma: Array) -> Array:
        """The network's conditioning scalar ``c(sigma)``, ``(b,)``."""
        s = np.asarray(self.sigmas)  # a constant, also under jit
        s_max, s_min = float(s[0]), float(s[-1])
        if s_max == s_min:
            return jnp.zeros_like(sigma)
        return TIME_SCALE * jnp.log(sigma / s_min) / math.log(s_max / s_min)

    def score(self, params: Params, x: Array, sigma: Array) -> Array:
        """``score(x, sigma)``, ``x (b, *d)`` in model space, ``sigma (b,)`` -> ``(b, *d)``."""
        out = self.network.apply(params, x, self.noise_input(sigma), None)
        return out / sch._bcast(sigma, x)

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        x = _check_x(self, batch, "batch")
        return self.network.init(key, jnp.asarray(x, jnp.float32), jnp.zeros((x.shape[0],), jnp.float32), None)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean denoising score-matching loss (``objectives.dsm_loss``) and ``{"loss", "dsm"}``."""
        x = _check_x(self, batch, "batch")
        _check_params(self, params)
        per_example = obj.dsm_loss(
            key, lambda xt, s: self.score(params, xt, s), _to_model(self, x), sigmas=self.sigmas
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, "dsm": loss}

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        sampler: str = "langevin",
        steps: int | None = None,
        step_size: float | None = None,
        denoise: bool = True,
        return_trajectory: bool = False,
        cond=None,
        guidance=None,
    ):
        """Annealed Langevin samples ``(num, *data_shape)`` in the data range.

        ``steps`` is the number of Langevin steps per noise level (default
        ``steps_per_sigma``); ``denoise`` adds the final Tweedie step at ``sigma_L``.
        """
        num = check_sample_args(self.condition, num, cond, guidance)[0]  # no condition: cond, guidance must be None
        _checks.one_of("sampler", sampler, NCSN_SAMPLERS)
        shape = _sample_shape(self, num)
        steps = _steps(steps, self.steps_per_sigma)
        step_size = self.step_size if step_size is None else _checks.positive_float("step_size", step_size)
        _check_params(self, params)
        out = smp.annealed_langevin_sample(
            key, lambda x, s: self.score(params, x, s), shape, sigmas=self.sigmas,
            steps_per_sigma=steps, step_size=step_size, denoise=denoise, return_trajectory=return_trajectory,
        )
        return _finish(self, out, return_trajectory)

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Always raises, like a GAN's: NCSN defines no density (``log_prob_kind = "none"``)."""
        raise ValueError(
            "NCSN defines no likelihood: its score is trained only at the discrete noise levels "
            "(log_prob_kind='none'). Use ScoreSDE with a VESDE for a probability-flow ODE likelihood "
            "or DDPM for a variational bound."
        )
