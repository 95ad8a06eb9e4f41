"""Score SDE: continuous-time score model (Song et al., 2021) with predictor-corrector and
probability-flow ODE sampling and the probability-flow ODE likelihood estimate."""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax.numpy as jnp

from genjax import _checks
from genjax.diffusion import likelihood as lik
from genjax.diffusion import objectives as obj
from genjax.diffusion import sampling as smp
from genjax.diffusion import schedules as sch
from genjax.diffusion._common import (
    FAST_SAMPLERS,
    SDE_SAMPLERS,
    TIME_SCALE,
    _check_params,
    _check_x,
    _fast_steps,
    _finish,
    _init_common,
    _nfe,
    _sample_shape,
    _steps,
    _to_model,
)
from genjax.types import NO_CONDITION, Array, Batch, Metrics, Params, PRNGKeyArray, check_sample_args


#: what ``ScoreSDE.sample`` accepts
SAMPLERS = SDE_SAMPLERS + FAST_SAMPLERS


@dataclasses.dataclass(frozen=True, eq=False)
class ScoreSDE:
    """Continuous-time score model on a VP, sub-VP or VE SDE.

    Noise-prediction parameterisation: ``score(x, t) = -network(x, 999 t) / std(t)``
    with ``std(t)`` the marginal standard deviation of the SDE, so the network predicts
    the noise ``z`` of ``x_t = mean(t) x0 + std(t) z``. Training:
    ``objectives.score_sde_loss`` (``t ~ U(eps, 1)``; ``lambda = std^2`` or, with
    ``likelihood_weighting``, ``g^2``).

    ``log_prob`` is the probability-flow ODE ESTIMATE of ``likelihood.ode_log_prob``
    (``log_prob_kind = "ode_estimate"``): fixed-step RK4 from ``t = eps`` to 1 with a
    Hutchinson (default for more than 8 dimensions) or exact trace; it is the
    density of the model's ODE, not a bound, and carries discretisation and (for
    Hutchinson) Monte-Carlo error. For ``"unit"`` data the ``2 x - 1`` map's
    ``D log 2`` is added, so it is a density on ``[0, 1]^D``.

    Attributes:
      network: module ``(x, c (b,) float, y=None) -> (b, *data_shape)``.
      data_shape: one example's shape.
      sde: ``VPSDE``, ``SubVPSDE`` or ``VESDE``.
      likelihood_weighting: train with ``g^2`` weighting.
      eps: smallest time of training, sampling and likelihood.
      data_range: ``"unit"`` or ``"identity"``.
      default_sampler: ``"pc"`` (predictor-corrector), ``"ode"`` (probability flow, RK4) or a
        few-step solver (``FAST_SAMPLERS``).
    """

    network: nn.Module
    data_shape: tuple[int, ...]
    sde: sch.SDE
    likelihood_weighting: bool = False
    eps: float = 1e-5
    data_range: str = "identity"
    default_sampler: str = "pc"

    log_prob_kind = "ode_estimate"
    condition = NO_CONDITION  # unconditional: ``cond`` must be None

    def __post_init__(self):
        _init_common(self)
        if not isinstance(self.sde, (sch.VPSDE, sch.SubVPSDE, sch.VESDE)):
            raise ValueError(f"sde must be a VPSDE, SubVPSDE or VESDE, got {type(self.sde).__name__}")
        _checks.positive_float("eps", self.eps)
        if self.eps >= self.sde.T:
            raise ValueError(f"eps must be in (0, {self.sde.T}), got {self.eps}")
        _checks.one_of("default_sampler", self.default_sampler, SAMPLERS)

    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` on data of the wrong shape/dtype, non-finite or out-of-range values."""
        _check_x(self, batch, name)

    def score(self, params: Params, x: Array, t: Array) -> Array:
        """``score(x, t) = -network(x, 999 t) / std(t)``; ``x (b, *d)`` model space, ``t (b,)``."""
        _, std = self.sde.marginal(t)
        out = self.network.apply(params, x, TIME_SCALE * t, None)
        return -out / sch._bcast(std, x)

    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        x = _check_x(self, batch, "batch")
        return self.network.init(key, jnp.asarray(x, jnp.float32), jnp.zeros((x.shape[0],), jnp.float32), None)

    def loss(self, params: Params, key: PRNGKeyArray, batch: Batch) -> tuple[Array, Metrics]:
        """Mean continuous denoising score-matching loss and ``{"loss", "dsm"}``."""
        x = _check_x(self, batch, "batch")
        _check_params(self, params)
        per_example = obj.score_sde_loss(
            key, lambda xt, t: self.score(params, xt, t), _to_model(self, x), sde=self.sde,
            likelihood_weighting=self.likelihood_weighting, eps=self.eps,
        )
        loss = jnp.mean(per_example)
        return loss, {"loss": loss, "dsm": loss}

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        snr: float = 0.16,
        corrector_steps: int = 1,
        denoise: bool = True,
        return_trajectory: bool = False,
        cond=None,
        guidance=None,
        time_schedule: str | None = None,
    ):
        """Samples ``(num, *data_shape)`` in the data range.

        Args:
          sampler: ``"pc"`` (reverse-diffusion predictor + Langevin corrector, default
            1000 steps), ``"ode"`` (probability-flow ODE, RK4, default 100 steps) or a few-step
            solver of ``sampling.solver_sample`` (``"dpm++2m"``, ``"dpm2"``, ``"dpm3"``,
            ``"euler"``, ``"heun"``; default steps ``_common.FAST_DEFAULT_STEPS``) from ``sde.T``
            to ``eps``, then to the clean data.
          steps: number of time steps.
          snr, corrector_steps, denoise: predictor-corrector settings.
          time_schedule: the few-step solvers' time steps (``sampling.TIME_SCHEDULES``).
        """
        num = check_sample_args(self.condition, num, cond, guidance)[0]  # no condition: cond, guidance must be None
        sampler, steps = self._sampler(sampler, steps)
        shape = _sample_shape(self, num)
        _check_params(self, params)
        score_fn = lambda x, t: self.score(params, x, t)  # noqa: E731
        if sampler in FAST_SAMPLERS:
            out = smp.solver_sample(
                key, shape, sampler=sampler, steps=steps, score_fn=score_fn, sde=self.sde, eps=self.eps,
                time_schedule=time_schedule, return_trajectory=return_trajectory,
            )
            return _finish(self, out, return_trajectory)
        if time_schedule is not None:
            raise ValueError(f"time_schedule is for the few-step solvers {FAST_SAMPLERS}, not sampler={sampler!r}")
        if sampler == "pc":
            out = smp.pc_sample(
                key, score_fn, shape, sde=self.sde, num_steps=steps, snr=snr,
                corrector_steps=corrector_steps, denoise=denoise, return_trajectory=return_trajectory,
            )
        else:
            out = smp.ode_sample(
                key, score_fn, shape, sde=self.sde, num_steps=steps,
                return_trajectory=return_trajectory,
            )
        return _finish(self, out, return_trajectory)

    def _sampler(self, sampler, steps) -> tuple[str, int]:
        """The sampler (default ``default_sampler``) and its number of steps, checked."""
        sampler = _checks.one_of("sampler", self.default_sampler if sampler is None else sampler, SAMPLERS)
        if sampler in FAST_SAMPLERS:
            return sampler, _fast_steps(sampler, steps)
        return sampler, _steps(steps, 1000 if sampler == "pc" else 100)

    def sampler_nfe(self, sampler: str | None = None, steps: int | None = None, corrector_steps: int = 1) -> int:
        """Network evaluations per sample of :meth:`sample` (defaults as there): ``(1 +
        corrector_steps) steps`` (``"pc"``), ``4 steps`` (``"ode"``, RK4) or ``sampling.solver_nfe``."""
        return _nfe(*self._sampler(sampler, steps), corrector_steps=_checks.nonneg_int("corrector_steps", corrector_steps))

    def log_prob(
        self,
        params: Params,
        key: PRNGKeyArray,
        x: Array,
        *,
        num_steps: int = 100,
        trace: str | None = None,
        num_probes: int = 1,
        hutchinson_mode: str = "jvp",
    ) -> Array:
        """Probability-flow ODE ESTIMATE of ``log p(x)``, ``(b,)`` nats (see the class docstring).

        Args:
          num_steps: RK4 steps from ``eps`` to 1.
          trace: ``"exact"`` or ``"hutchinson"``; default exact for ``D <= 8``.
          num_probes: Hutchinson probes.
          hutchinson_mode: ``"jvp"`` (forward mode) or ``"vjp"``: ``likelihood.ode_log_prob``'s.
        """
        x = _check_x(self, x, "x")
        d = math.prod(self.data_shape)
        trace = ("exact" if d <= 8 else "hutchinson") if trace is None else trace
        _checks.one_of("trace", trace, ("exact", "hutchinson"))
        _check_params(self, params)
        logp = lik.ode_log_prob(
            key, lambda xx, t: self.score(params, xx, t), _to_model(self, x), sde=self.sde,
            num_steps=_checks.positive_int("num_steps", num_steps), trace=trace,
            num_probes=_checks.positive_int("num_probes", num_probes), eps=self.eps, hutchinson_mode=hutchinson_mode,
        )
        return logp + d * math.log(2.0) if self.data_range == "unit" else logp
