"""One optimizer per player: :class:`GANOptimizer` and :func:`gan_adam`.

Both players live in one ``TrainState``: ``state.params = {"generator", "discriminator"}``
and ``state.opt_state = {"generator", "discriminator"}``, built by
:class:`GANOptimizer`, whose ``init(params)`` is all ``TrainState.create`` needs. The
two-player step itself is :func:`genjax.train.adversarial.make_adversarial_step` (the
trainer's, built on the same update as the single-model step); ``genjax.train.fit(gan,
data, optimizer=GANOptimizer(...))`` uses it. This module imports nothing from
``genjax.train``.
"""

from __future__ import annotations

import dataclasses

import optax

from genjax import _checks
from genjax.types import Params


@dataclasses.dataclass(frozen=True)
class GANOptimizer:
    """One optax optimizer per player.

    ``init(params)`` returns ``{"generator": g_state, "discriminator": d_state}``, so
    ``TrainState.create(params, GANOptimizer(...), key)`` works as for one optimizer.

    Examples:
      >>> import optax
      >>> tx = GANOptimizer(generator=optax.adam(2e-4, b1=0.5), discriminator=optax.adam(2e-4, b1=0.5))
    """

    generator: optax.GradientTransformation
    discriminator: optax.GradientTransformation

    def init(self, params: Params) -> dict:
        if not (isinstance(params, dict) and set(params) == {"generator", "discriminator"}):
            raise ValueError("GANOptimizer.init expects params {'generator': ..., 'discriminator': ...}")
        return {
            "generator": self.generator.init(params["generator"]),
            "discriminator": self.discriminator.init(params["discriminator"]),
        }


def gan_adam(
    learning_rate: float = 2e-4, *, d_learning_rate: float | None = None, b1: float = 0.5, b2: float = 0.999
) -> GANOptimizer:
    """Adam for both players (DCGAN's ``lr = 2e-4, b1 = 0.5``); ``d_learning_rate``
    defaults to ``learning_rate`` (two time-scale updates when it differs)."""
    g_lr = _checks.positive_float("learning_rate", learning_rate)
    d_lr = g_lr if d_learning_rate is None else _checks.positive_float("d_learning_rate", d_learning_rate)
    return GANOptimizer(generator=optax.adam(g_lr, b1=b1, b2=b2), discriminator=optax.adam(d_lr, b1=b1, b2=b2))
