"""Generative adversarial networks (seed chapter §19.3) as a frozen dataclass of modules.

Generator ``G: z -> x`` with ``z ~ N(0, I_latent_dim)`` (or ``U[-1, 1]^latent_dim``: ``latent_prior``); discriminator (critic)
``D: x -> l(x)``, a logit (``D(x) = sigmoid(l(x))``) or an unbounded critic score.
Params are ``{"generator": ..., "discriminator": ...}`` (each a linen variables dict).
``d_loss`` / ``g_loss`` are the two players' objectives; the trainer's
``genjax.train.make_adversarial_step`` (what ``fit`` builds for any two-player model)
alternates them. GANs define no density: ``log_prob_kind = "none"``.

Data space. A GAN owns the map between the data's space and the space its networks
work in (as ``genjax.diffusion``'s ``data_range`` does): ``data_range="unit"`` takes
data in ``[0, 1]`` (images) onto the generator's ``output_range`` (``[-1, 1]`` for
``tanh``); ``data_range="identity"`` (the default) scales by ``input_scale`` (the
networks see ``input_scale * x``: 2-D mixtures brought to about ``[-1, 1]``). ``d_loss``,
``g_loss``, ``check_batch``, ``discriminate`` and ``init`` take data-space batches and
``sample`` returns data-space samples; ``generate``, ``critic`` and ``_train_fakes``
work in the networks' space. With the defaults (identity, scale 1) the two spaces
coincide: a ``tanh`` generator then needs data in ``[-1, 1]`` (``check_batch`` rejects
concrete data outside ``output_range``), a linear output (``output_range=None``)
takes any range.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks, _xla
from genjax._checks import batch_x
from genjax.gan import objectives as obj
from genjax.nn.stylegan import StyleGenerator, mix_styles, style_mixing_crossover
from genjax.types import NO_CONDITION, Array, Batch, Metrics, Params, PRNGKeyArray, check_sample_args

LOSSES = ("minimax", "non_saturating", "wasserstein", "wgan_gp", "hinge")
LATENT_PRIORS = ("normal", "uniform")
DATA_RANGES = ("identity", "unit")
_LOGISTIC = ("minimax", "non_saturating")


def _sharding(x):
    """The sharding of ``x``'s type under a mesh with explicit axes (None elsewhere)."""
    return getattr(jax.typeof(x), "sharding", None) if hasattr(jax, "typeof") else None


@dataclasses.dataclass(frozen=True)
class GAN:
    """A two-player generative model (see the module docstring).

    Attributes:
      generator: module ``(b, latent_dim) -> (b, *data_shape)``; a
        :class:`~genjax.nn.stylegan.StyleGenerator` enables style mixing and truncation.
      discriminator: module ``(b, *data_shape) -> (b,)`` (or ``(b, 1)``) logits / scores;
        with ``pack > 1`` it sees packs ``(b / pack, *data_shape[:-1], pack * data_shape[-1])``
        and gives one score per pack. It must treat rows independently (no batch
        statistics) for ``wgan_gp``/R1.
      data_shape: shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``.
      latent_dim: dimension of ``z``.
      latent_prior: ``"normal"`` (``N(0, I)``) or ``"uniform"`` (``U[-1, 1]^d``, as DCGAN drew ``z``).
      loss_kind: "minimax" (the seed's min-max: D ``-[log D(x) + log(1 - D(G(z)))]``, G
        minimises ``log(1 - D(G(z)))``), "non_saturating" (G minimises
        ``-log D(G(z))``, as the seed's training code does), "wasserstein" (WGAN, needs
        ``clip``), "wgan_gp" (WGAN with gradient penalty) or "hinge".
      n_critic: discriminator updates per generator update.
      clip: WGAN weight clipping ``[-clip, clip]`` after every discriminator update.
      gp_weight: gradient-penalty weight (``wgan_gp`` only).
      r1_weight: gamma of the R1 penalty ``(gamma / 2) E ||grad l(x_real)||^2`` (any loss).
      r1_interval: lazy regularisation (StyleGAN2): R1 only on every ``r1_interval``-th
        generator step, weighted ``r1_interval * gamma / 2`` so its average weight over an
        interval is ``gamma / 2`` (the paper's rescaling; paper: 16). 1: every step.
      pl_weight: weight of StyleGAN2's path-length penalty on the generator (paper: 2;
        0 off; StyleGenerator only), computed on ``batch / pl_batch_shrink`` fresh fakes.
      pl_interval: the path-length penalty's lazy interval (paper: 4), rescaled likewise.
      pl_decay: step of the path lengths' running mean ``pl_mean`` (paper: 0.01).
      pl_batch_shrink: the penalty's batch is the batch divided by this (paper: 2).
      style_mixing_prob: probability that a generated training example mixes two styles
        (StyleGenerator only); the crossover layer is uniform in ``1..num_layers-1``.
      split_critic_batch: with ``n_critic > 1``, split each batch into ``n_critic``
        equal sub-batches, one per critic step (the WGAN algorithm's fresh real data);
        the generator step then generates as many examples as one sub-batch. When False
        every critic step sees the same real batch with fresh ``z``.
      output_range: the generator's output range, checked against concrete data by
        ``check_batch``; None disables the check (linear outputs).
      pack: PacGAN packing (Lin et al., 2018): the critic sees groups of ``pack``
        examples concatenated along the last axis (``(b / pack, pack * d)`` for vectors,
        channels for images) and gives one score per pack; losses, the gradient penalty
        (its ``eps`` drawn per pack) and R1 are per pack, and a penalty's norm is that of
        the gradient with respect to the whole concatenated pack. Every batch the critic
        sees must be divisible by ``pack``.
      data_range: ``"unit"`` (data in ``[0, 1]``, mapped onto ``output_range``; images) or
        ``"identity"`` (see the module docstring).
      input_scale: with ``data_range="identity"``, the networks see ``input_scale * x``
        and samples come back divided by it.
      share_fakes: one draw of fakes per step for both players, as the seed chapter's
        training code does (one ``z``; D's loss on ``G(z)`` detached, then G's on
        ``D'(G(z))``). The two-player step then computes ``G(z)`` once, keeps its
        pullback, and gets G's gradient through it (the same gradient as recomputing
        ``G(z)``: G's parameters do not change in between). Default False: each player
        draws its own ``z`` (Goodfellow et al.'s algorithm 1). Needs ``n_critic = 1`` and
        no path-length penalty (its gradient is not through the shared fakes).
    """

    generator: nn.Module
    discriminator: nn.Module
    data_shape: tuple[int, ...]
    latent_dim: int
    loss_kind: str = "non_saturating"
    n_critic: int = 1
    clip: float | None = None
    gp_weight: float = 10.0
    r1_weight: float = 0.0
    style_mixing_prob: float = 0.0
    split_critic_batch: bool = False
    output_range: tuple[float, float] | None = (-1.0, 1.0)
    latent_prior: str = "normal"
    pack: int = 1
    data_range: str = "identity"
    input_scale: float = 1.0
    r1_interval: int = 1
    pl_weight: float = 0.0
    pl_interval: int = 1
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    share_fakes: bool = False

    log_prob_kind = "none"
    condition = NO_CONDITION  # unconditional: sample's ``cond`` must be None

    def __post_init__(self):
        _checks.one_of("loss_kind", self.loss_kind, LOSSES)
        _checks.positive_int("latent_dim", self.latent_dim)
        _checks.positive_int("n_critic", self.n_critic)
        _checks.one_of("latent_prior", self.latent_prior, LATENT_PRIORS)
        _checks.positive_int("pack", self.pack)
        _checks.one_of("data_range", self.data_range, DATA_RANGES)
        _checks.positive_float("input_scale", self.input_scale)
        if self.data_range == "unit" and (self.output_range is None or self.input_scale != 1.0):
            raise ValueError(
                "data_range='unit' maps [0, 1] onto the generator's output_range: it needs a bounded output "
                f"(output_range, e.g. tanh's (-1, 1); got {self.output_range}) and input_scale=1 (got "
                f"{self.input_scale}); use data_range='identity' for unbounded data"
            )
        object.__setattr__(self, "data_shape", tuple(int(d) for d in self.data_shape))
        for d in self.data_shape:
            _checks.positive_int("data_shape entries", d)
        if self.clip is not None:
            _checks.positive_float("clip", self.clip)
        if self.loss_kind == "wasserstein" and self.clip is None:
            raise ValueError(
                "loss_kind='wasserstein' needs clip (WGAN weight clipping, e.g. 0.01) to keep the critic "
                "Lipschitz; or use loss_kind='wgan_gp'"
            )
        if self.loss_kind == "wgan_gp":
            _checks.positive_float("gp_weight", self.gp_weight)
        if not (isinstance(self.r1_weight, (int, float)) and self.r1_weight >= 0):
            raise ValueError(f"r1_weight must be a non-negative number, got {self.r1_weight!r}")
        if not (isinstance(self.style_mixing_prob, (int, float)) and 0.0 <= self.style_mixing_prob <= 1.0):
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {self.style_mixing_prob!r}")
        if self.style_mixing_prob > 0 and not self.is_style:
            raise ValueError("style_mixing_prob > 0 needs a StyleGenerator generator")
        _checks.positive_int("r1_interval", self.r1_interval)
        _checks.positive_int("pl_interval", self.pl_interval)
        _checks.positive_int("pl_batch_shrink", self.pl_batch_shrink)
        if not (isinstance(self.pl_weight, (int, float)) and self.pl_weight >= 0):
            raise ValueError(f"pl_weight must be a non-negative number, got {self.pl_weight!r}")
        if not (isinstance(self.pl_decay, (int, float)) and 0.0 < self.pl_decay <= 1.0):
            raise ValueError(f"pl_decay must be in (0, 1], got {self.pl_decay!r}")
        if self.pl_weight > 0 and not self.is_style:
            raise ValueError("pl_weight > 0 (path-length regularisation) needs a StyleGenerator generator")
        if not isinstance(self.share_fakes, bool):
            raise ValueError(f"share_fakes must be True or False, got {self.share_fakes!r}")
        if self.share_fakes and (self.n_critic != 1 or self.pl_weight > 0):
            raise ValueError(
                "share_fakes=True shares one draw of fakes between one critic update and the generator's: it "
                f"needs n_critic=1 (got {self.n_critic}) and pl_weight=0 (got {self.pl_weight}: the path-length "
                "gradient does not go through the fakes)"
            )

    @property
    def is_style(self) -> bool:
        return isinstance(self.generator, StyleGenerator)

    # ------------------------------------------------------------------ running statistics
    def _training_stats(self) -> dict:
        """The GAN's own running statistics, kept beside the generator's ``"stats"``
        (see :meth:`update_stats`): ``step`` for lazy regularisation, ``pl_mean``."""
        stats = {}
        if self.r1_interval > 1 or (self.pl_weight > 0 and self.pl_interval > 1):
            stats["step"] = jnp.zeros((), jnp.float32)
        if self.pl_weight > 0:
            stats["pl_mean"] = jnp.zeros((), jnp.float32)
        return stats

    def _stat(self, params: Params, name: str) -> Array:
        return jax.lax.stop_gradient(params["generator"]["stats"][name])

    def _regularise_now(self, params: Params, interval: int) -> Array:
        """True on every ``interval``-th generator step (counted in the ``step`` statistic)."""
        return jnp.mod(self._stat(params, "step"), interval) == 0

    def update_stats(self, previous: Params, updated: Params, key: PRNGKeyArray, batch: Batch, metrics: Metrics) -> Params:
        """The trainer's hook after each two-player step: the running statistics, advanced.

        Running statistics are not trained: they live in the generator's variables as a
        ``"stats"`` collection beside ``"params"`` (so they are saved, restored, sharded
        and EMA-averaged with them; their gradient is zero), and this pure function
        computes them from the values before the step (``previous``, the generator
        params the step started from), whatever the optimizer did to them:

        * ``step`` (lazy regularisation): ``+ 1``;
        * ``pl_mean``: the path-length mean the step's ``g_loss`` computed (metric ``pl_mean``);
        * ``w_avg`` (StyleGenerator with ``w_avg_beta``): ``mean_w + beta (w_avg - mean_w)``
          with ``mean_w`` the mean of ``mapping(z)`` over as many fresh ``z`` (from ``key``)
          as the batch has examples, using ``previous``'s mapping network.

        Returns ``updated`` with its ``"stats"`` replaced (unchanged without statistics).
        """
        stats = previous.get("stats") if isinstance(previous, dict) else None
        if not stats:
            return updated
        new = dict(stats)
        if "step" in new:
            new["step"] = stats["step"] + 1.0
        if "pl_mean" in new:
            new["pl_mean"] = metrics["pl_mean"].astype(stats["pl_mean"].dtype)
        if "w_avg" in new:
            num = jax.tree_util.tree_leaves(batch_x(batch))[0].shape[0]
            w = self.generator.apply(previous, self.draw_latent(key, num), method="mapping")
            mean = jnp.mean(w, axis=0).astype(stats["w_avg"].dtype)
            new["w_avg"] = mean + self.generator.w_avg_beta * (stats["w_avg"] - mean)
        return {**updated, "stats": new}

    # ------------------------------------------------------------------ data space
    def to_model(self, x: Array) -> Array:
        """Data space -> the networks' space (see the module docstring)."""
        if self.data_range == "unit":
            lo, hi = self.output_range
            return (hi - lo) * x + lo
        return x if self.input_scale == 1.0 else self.input_scale * x

    def to_data(self, y: Array) -> Array:
        """The networks' space -> data space (the inverse of :meth:`to_model`)."""
        if self.data_range == "unit":
            lo, hi = self.output_range
            return (y - lo) / (hi - lo)
        return y if self.input_scale == 1.0 else y / self.input_scale

    # ------------------------------------------------------------------ checks
    def check_batch(self, batch: Batch, *, name: str = "x") -> None:
        """Raises ``ValueError`` unless ``batch`` is ``(b, *data_shape)`` floats of data
        space with ``b`` a multiple of ``pack``; when concrete, also unless finite and
        inside the data's range (``[0, 1]`` for ``data_range="unit"``; else
        ``output_range`` in the networks' space)."""
        x = batch_x(batch)
        _checks.batch_shape(name, x, self.data_shape)
        self.pack_batch(x, name=name)  # a batch the critic can score: a multiple of pack
        _checks.finite(name, x)
        if self.data_range == "unit":
            if _checks.is_concrete(x):
                a = np.asarray(x)
                if a.size and (a.min() < -1e-6 or a.max() > 1.0 + 1e-6):
                    raise ValueError(
                        f"{name} has values in [{a.min():.3g}, {a.max():.3g}]; this GAN models data in [0, 1] "
                        "(data_range='unit')"
                    )
            return
        x = self.to_model(x)
        if self.output_range is not None and _checks.is_concrete(x):
            lo, hi = self.output_range
            a = np.asarray(x)
            if a.min() < lo - 1e-6 or a.max() > hi + 1e-6:
                raise ValueError(
                    f"{name} has values in [{a.min():.3g}, {a.max():.3g}] but the generator's output "
                    f"range is [{lo}, {hi}] (tanh); rescale the data (genjax.data.to_signed for [0, 1] "
                    "images) or build the model with a linear output"
                )

    def check_params(self, params: Params, *, name: str = "params", batch_size: int = 2) -> None:
        """Raises ``ValueError`` unless ``params`` is ``{"generator", "discriminator"}`` of this GAN.

        Compares tree paths and leaf shapes with ``jax.eval_shape(self.init, ...)``
        (computed once per model; static, so free under jit): params of another model
        (a VAE) or of a GAN with other sizes fail with a message naming the first mismatch.
        """
        expected = _checks.expected_params(self, jax.ShapeDtypeStruct((batch_size, *self.data_shape), jnp.float32))
        _checks.check_params(
            name, params, expected, model=f"this GAN (data_shape={self.data_shape}, latent_dim={self.latent_dim})"
        )

    def _check_z(self, z: Array) -> None:
        if np.ndim(z) != 2 or np.shape(z)[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (batch, latent_dim={self.latent_dim}), got shape {tuple(np.shape(z))}"
            )

    # ------------------------------------------------------------------ networks
    def init(self, key: PRNGKeyArray, batch: Batch) -> Params:
        """``{"generator": ..., "discriminator": ...}`` from an example batch.

        Raises:
          ValueError: bad batch shape, or a generator whose output is not
            ``(b, *data_shape)`` or a discriminator whose output is not ``(b,)``.
        """
        x = batch_x(batch)
        _checks.batch_shape("batch", x, self.data_shape)
        # parameters depend on shapes only: one pack of zeros (any batch size initialises;
        # compiled once per model)
        x = jnp.zeros((self.pack, *self.data_shape), jnp.result_type(x.dtype, jnp.float32))
        k_g, k_d, k_n = jax.random.split(key, 3)
        z = jnp.zeros((x.shape[0], self.latent_dim), x.dtype)
        g_vars = jax.eval_shape(lambda: self.generator.init({"params": k_g, "noise": k_n}, z))
        out = jax.eval_shape(lambda v: self.generator.apply(v, z, rngs={"noise": k_n}), g_vars)
        if out.shape != (x.shape[0], *self.data_shape):
            raise ValueError(
                f"the generator produces examples of shape {out.shape[1:]}, but data_shape is "
                f"{self.data_shape}"
            )
        xp = self.pack_batch(x, name="batch")
        d_vars = jax.eval_shape(lambda: self.discriminator.init(k_d, xp))
        d_out = jax.eval_shape(lambda v: self.discriminator.apply(v, xp), d_vars)
        if d_out.shape not in ((xp.shape[0],), (xp.shape[0], 1)):
            what = "(batch,)" if self.pack == 1 else f"(batch / pack,) = ({xp.shape[0]},)"
            raise ValueError(f"the discriminator must output {what} logits, got shape {d_out.shape}")
        return _jit_init_vars(self, key, x)

    def _init_vars(self, key: PRNGKeyArray, x: Array) -> Params:
        k_g, k_d, k_n = jax.random.split(key, 3)
        z = jnp.zeros((x.shape[0], self.latent_dim), x.dtype)
        g_vars = dict(self.generator.init({"params": k_g, "noise": k_n}, z))
        extra = self._training_stats()
        if extra:
            g_vars["stats"] = {**g_vars.get("stats", {}), **extra}
        return {"generator": g_vars, "discriminator": self.discriminator.init(k_d, self.pack_batch(x))}

    def pack_batch(self, x: Array, *, name: str = "x") -> Array:
        """``(b, *data_shape) -> (b / pack, *data_shape[:-1], pack * data_shape[-1])``.

        Consecutive groups of ``pack`` examples, concatenated along the last axis (a
        vector's coordinates, an image's channels), example by example: row ``j`` of the
        result holds examples ``j * pack, ..., j * pack + pack - 1``. The identity when
        ``pack == 1``.

        Raises:
          ValueError: ``b`` not divisible by ``pack`` (naming both).
        """
        k = self.pack
        if k == 1:
            return x
        b = x.shape[0]
        if b % k:
            raise ValueError(
                f"{name} has batch size {b}, which is not divisible by pack={k}: the critic sees groups of {k} "
                f"examples (PacGAN); use a batch size that is a multiple of {k}"
            )
        xs = x.reshape(b // k, k, *x.shape[1:])
        xs = jnp.moveaxis(xs, 1, -2)  # (b/k, *shape[:-1], k, shape[-1])
        return xs.reshape(b // k, *x.shape[1:-1], k * x.shape[-1])

    def critic(self, params: Params, packs: Array) -> Array:
        """Critic scores ``(n,)`` of already packed inputs ``(n, *data_shape[:-1], pack * data_shape[-1])``
        (see :meth:`pack_batch`): the function whose input gradient the penalties take."""
        out = self.discriminator.apply(params["discriminator"], packs)
        return out.reshape(packs.shape[0])

    def _critic_pair(self, params: Params, real: Array, fake: Array) -> tuple[Array, Array]:
        """Critic scores of the real and of the fake packs. A discriminator that scores rows
        independently (``rowwise = True``, e.g. :class:`~genjax.nn.mlp.MLPDiscriminator`) gets
        both in one call on ``[real; fake]``: one matmul of ``2 n`` rows per layer instead of
        two of ``n`` (the same scores up to float rounding). Others (batch statistics, minibatch
        standard deviation) get two calls, each seeing only its own rows; so do real and fake
        rows laid out differently on a mesh (explicit sharding refuses to concatenate them)."""
        fake = fake.astype(real.dtype)
        if not getattr(self.discriminator, "rowwise", False) or _sharding(real) != _sharding(fake):
            return self.critic(params, real), self.critic(params, fake)
        scores = self.critic(params, jnp.concatenate([real, fake]))
        return scores[: real.shape[0]], scores[real.shape[0]:]

    def discriminate(self, params: Params, x: Array) -> Array:
        """Discriminator logits / critic scores of data-space ``x (b, *data_shape)``: one
        per pack, shape ``(b / pack,)`` (``(b,)`` without packing)."""
        return self.critic(params, self.pack_batch(self.to_model(x)))

    def generate(
        self,
        params: Params,
        key: PRNGKeyArray,
        z: Array,
        *,
        mix_z: Array | None = None,
        crossover: Array | None = None,
        psi: float | None = None,
        w_avg: Array | None = None,
        noise: bool = True,
    ) -> Array:
        """``G(z)``, shape ``(b, *data_shape)``; ``key`` drives the generator's noise inputs.

        Style mixing and truncation need a StyleGenerator (see
        :class:`~genjax.nn.stylegan.StyleGenerator`); ``noise`` is ignored by generators
        without noise inputs.
        """
        self._check_z(z)
        rngs = {"noise": key}
        if not self.is_style:
            if mix_z is not None or psi is not None:
                raise ValueError("style mixing and truncation (psi) need a StyleGenerator generator")
            return self.generator.apply(params["generator"], z, rngs=rngs)
        return self.generator.apply(
            params["generator"], z, mix_z=mix_z, crossover=crossover, psi=psi, w_avg=w_avg, noise=noise, rngs=rngs
        )

    def draw_latent(self, key: PRNGKeyArray, num: int) -> Array:
        """``(num, latent_dim)`` draws of the latent prior: ``N(0, I)`` or ``U[-1, 1]^d``."""
        if self.latent_prior == "uniform":
            return jax.random.uniform(key, (num, self.latent_dim), minval=-1.0, maxval=1.0)
        return jax.random.normal(key, (num, self.latent_dim))

    def train_fakes(self, params: Params, key: PRNGKeyArray, batch: Batch) -> Array:
        """The fakes :meth:`g_loss` draws from ``key`` for ``batch`` (as many as it has
        examples; networks space, before packing): what the two-player step computes once
        per step with ``share_fakes`` and passes to both losses as ``fakes``."""
        return self._train_fakes(params, key, batch_x(batch).shape[0])

    def _check_fakes(self, fakes: Array, num: int) -> None:
        if tuple(fakes.shape) != (num, *self.data_shape):
            raise ValueError(f"fakes: expected shape {(num, *self.data_shape)} (one per example of the batch), "
                             f"got {tuple(fakes.shape)}")

    def _train_fakes(self, params: Params, key: PRNGKeyArray, num: int) -> Array:
        """Generated training examples: fresh ``z``, and style mixing with probability p."""
        k_z, k_mix, k_cross, k_noise = jax.random.split(key, 4)
        if not self.is_style:
            return self.generate(params, k_noise, self.draw_latent(k_z, num))
        return self.synthesize(params, k_noise, self._train_ws(params, k_z, k_mix, k_cross, num))

    def _train_ws(self, params: Params, k_z: PRNGKeyArray, k_mix: PRNGKeyArray, k_cross: PRNGKeyArray, num: int) -> Array:
        """Training styles ``(num, num_layers, w_dim)``: ``mapping(z)``, mixed with ``mapping(z2)``
        after a random crossover with probability ``style_mixing_prob``."""
        gen, g = self.generator, params["generator"]
        w = gen.apply(g, self.draw_latent(k_z, num), method="mapping")
        if self.style_mixing_prob == 0:
            return jnp.broadcast_to(w[:, None, :], (num, gen.num_layers, gen.w_dim))
        crossover = style_mixing_crossover(k_cross, num, prob=self.style_mixing_prob, num_layers=gen.num_layers)
        w2 = gen.apply(g, self.draw_latent(k_mix, num), method="mapping")
        return mix_styles(w, w2, crossover, gen.num_layers)

    def _path_length_term(self, params: Params, key: PRNGKeyArray, num: int) -> tuple[Array, Metrics]:
        """``pl_interval * pl_weight * mean penalty`` on regularisation steps (0 otherwise) and
        its metrics (``pl_mean`` is what :meth:`update_stats` stores)."""
        n = max(1, num // self.pl_batch_shrink)
        old = self._stat(params, "pl_mean")

        def regularise():
            k_z, k_mix, k_cross, k_noise, k_y = jax.random.split(key, 5)
            ws = self._train_ws(params, k_z, k_mix, k_cross, n)
            shape = (n, *self.data_shape)
            y = jax.random.normal(k_y, shape) / math.sqrt(shape[1] * shape[2])
            lengths = obj.path_lengths(lambda v: self.synthesize(params, k_noise, v), ws, y)
            per, mean = obj.path_length_penalty(lengths, old, decay=self.pl_decay)
            return jnp.mean(per), jax.lax.stop_gradient(mean), jax.lax.stop_gradient(jnp.mean(lengths))

        if self.pl_interval == 1:
            pen, mean, length = regularise()
        else:
            skip = lambda: (jnp.zeros((), old.dtype), old, old)
            pen, mean, length = _xla.branch(self._regularise_now(params, self.pl_interval), regularise, skip)
        term = self.pl_interval * self.pl_weight * pen
        return term, {"pl_penalty": pen, "pl_mean": mean, "pl_length": length}

    # ------------------------------------------------------------------ objectives
    def d_loss(self, params: Params, key: PRNGKeyArray, batch: Batch, *, fakes: Array | None = None) -> tuple[Array, Metrics]:
        """Discriminator loss (mean over the batch; over its packs with ``pack > 1``) and metrics.

        Fakes are generated with fresh ``z`` (no gradient to the generator), or given as
        ``fakes`` (:meth:`train_fakes`' output, one per example; ``share_fakes``). Metrics:
        ``d_loss``; ``d_real`` / ``d_fake`` (mean logit / critic score); ``p_real`` /
        ``p_fake`` (mean ``sigmoid``, logistic losses); ``gp`` and ``r1`` when used.
        """
        x = batch_x(batch)
        self.check_batch(x, name="batch")
        real_p = self.pack_batch(self.to_model(x), name="batch")
        self.check_params(params, batch_size=x.shape[0])
        k_fake, k_gp = jax.random.split(key)
        if fakes is None:
            fakes = self._train_fakes(params, k_fake, x.shape[0])
        else:
            self._check_fakes(fakes, x.shape[0])
        fake = jax.lax.stop_gradient(fakes)
        fake_p = self.pack_batch(fake)
        critic = lambda v: self.critic(params, v)  # on packs: penalties per pack
        real_s, fake_s = self._critic_pair(params, real_p, fake_p)
        if self.loss_kind in _LOGISTIC:
            per = obj.minimax_d_loss(real_logits=real_s, fake_logits=fake_s)
        elif self.loss_kind == "hinge":
            per = obj.hinge_d_loss(real_scores=real_s, fake_scores=fake_s)
        else:
            per = obj.wasserstein_critic_loss(real_scores=real_s, fake_scores=fake_s)
        metrics = {"d_real": jnp.mean(real_s), "d_fake": jnp.mean(fake_s)}
        if self.loss_kind in _LOGISTIC:
            metrics.update(p_real=jnp.mean(jax.nn.sigmoid(real_s)), p_fake=jnp.mean(jax.nn.sigmoid(fake_s)))
        if self.loss_kind == "wgan_gp":
            gp = obj.gradient_penalty(k_gp, critic, real=real_p, fake=fake_p)
            per = per + self.gp_weight * gp
            metrics["gp"] = jnp.mean(gp)
        if self.r1_weight > 0:
            if self.r1_interval == 1:
                r1 = obj.r1_penalty(critic, real=real_p)
            else:  # lazy: computed only on every r1_interval-th step, weighted r1_interval times
                r1 = _xla.branch(  # lax.cond off CPU (XLA:CPU: slow conv gradients in a cond)
                    self._regularise_now(params, self.r1_interval),
                    lambda: obj.r1_penalty(critic, real=real_p),
                    lambda: jnp.zeros(real_s.shape, real_s.dtype),
                )
            per = per + 0.5 * self.r1_weight * self.r1_interval * r1
            metrics["r1"] = jnp.mean(r1)
        loss = jnp.mean(per)
        return loss, {"d_loss": loss, **metrics}

    def g_loss(self, params: Params, key: PRNGKeyArray, batch: Batch, *, fakes: Array | None = None) -> tuple[Array, Metrics]:
        """Generator loss on as many fresh fakes as ``batch`` has examples, and metrics.

        The batch only sets that number (its shape is checked; its values are unused).
        ``fakes``: the fakes to score instead of drawing them (``share_fakes``: the
        loss is then a function of them, and the step pulls its gradient back to G).
        With ``pl_weight > 0`` the path-length term is added (metrics ``pl_penalty``,
        ``pl_mean``, ``pl_length``; its key is ``fold_in(key, 1)``).
        """
        x = batch_x(batch)
        _checks.batch_shape("batch", x, self.data_shape)
        self.pack_batch(x, name="batch")  # the divisibility check, before any work
        self.check_params(params, batch_size=x.shape[0])
        if fakes is None:
            fakes = self._train_fakes(params, key, x.shape[0])  # networks space
        else:
            self._check_fakes(fakes, x.shape[0])
        fake_s = self.critic(params, self.pack_batch(fakes))
        if self.loss_kind == "minimax":
            per = obj.minimax_g_loss(fake_logits=fake_s)
        elif self.loss_kind == "non_saturating":
            per = obj.non_saturating_g_loss(fake_logits=fake_s)
        else:
            per = obj.wasserstein_generator_loss(fake_scores=fake_s)
        loss = jnp.mean(per)
        metrics = {"g_loss": loss}
        if self.pl_weight > 0:
            term, pl_metrics = self._path_length_term(params, jax.random.fold_in(key, 1), x.shape[0])
            loss = loss + term
            metrics.update(pl_metrics)
        return loss, metrics

    # ------------------------------------------------------------------ sampling
    def mean_w(self, params: Params, key: PRNGKeyArray, *, num: int = 4096) -> Array:
        """``w_avg = mean_i mapping(z_i)`` over ``num`` draws, shape ``(w_dim,)``.

        StyleGAN tracks a running mean of ``w`` during training (here the generator's
        ``"stats"`` ``w_avg``, which truncation uses by default); this computes it afresh
        from the given (e.g. EMA) parameters.
        """
        if not self.is_style:
            raise ValueError("mean_w needs a StyleGenerator generator")
        num = _checks.positive_int("num", num)
        z = self.draw_latent(key, num)
        return jnp.mean(self.generator.apply(params["generator"], z, method="mapping"), axis=0)

    def synthesize(self, params: Params, key: PRNGKeyArray, ws: Array, *, noise: bool = True) -> Array:
        """StyleGenerator synthesis from per-layer styles ``ws (b, num_layers, w_dim)``."""
        if not self.is_style:
            raise ValueError("synthesize needs a StyleGenerator generator")
        return self.generator.apply(params["generator"], ws, noise, method="synthesis", rngs={"noise": key})

    def sample(
        self,
        params: Params,
        key: PRNGKeyArray,
        num: int,
        *,
        truncation_psi: float | None = None,
        w_avg: Array | None = None,
        w_avg_samples: int = 4096,
        noise: bool = True,
        cond=None,
        guidance=None,
    ) -> Array:
        """``num`` data-space samples ``to_data(G(z))``, ``z`` from the latent prior, shape
        ``(num, *data_shape)``, one batch (compiled once per model and ``num`` when no
        option is given).

        Args:
          params: model parameters (pass EMA parameters for the smoothed generator).
          key: PRNG key.
          num: number of samples.
          truncation_psi: StyleGAN truncation ``w <- w_avg + psi (w - w_avg)``: 1 is no
            truncation, 0 maps every ``z`` to ``w_avg``.
          w_avg: the mean ``w``; default the generator's tracked running mean (a
            StyleGenerator with ``w_avg_beta``), else ``mean_w`` over ``w_avg_samples`` draws.
          noise: StyleGenerator noise inputs on (True) or zeroed.
          cond, guidance: the model API's; must be ``None`` (this GAN takes no condition).
        """
        num = check_sample_args(self.condition, num, cond, guidance)[0]  # no condition: cond, guidance must be None
        self.check_params(params, batch_size=num)
        if truncation_psi is None and w_avg is None and noise:
            return _jit_sample(self, params, key, num)
        return self._sample(params, key, num, truncation_psi, w_avg, w_avg_samples, noise)

    def _sample(self, params, key, num, truncation_psi, w_avg, w_avg_samples, noise):
        k_z, k_noise, k_avg = jax.random.split(key, 3)
        z = self.draw_latent(k_z, num)
        if truncation_psi is not None and w_avg is None:
            if not self.is_style:
                raise ValueError("truncation_psi needs a StyleGenerator generator")
            if self.generator.w_avg_beta is None:  # else the generator reads its tracked w_avg
                w_avg = self.mean_w(params, k_avg, num=w_avg_samples)
        return self.to_data(self.generate(params, k_noise, z, psi=truncation_psi, w_avg=w_avg, noise=noise))

    def log_prob(self, params: Params, key: PRNGKeyArray, x: Array) -> Array:
        """Always raises: a GAN defines no density (``log_prob_kind = "none"``)."""
        raise ValueError(
            "a GAN has no density: G pushes N(0, I) through a network onto a low-dimensional "
            "manifold, so log p(x) is undefined (log_prob_kind='none'); compare GANs with sample "
            "metrics (genjax.metrics.evaluate: FID, mode coverage) instead"
        )


# Compiled once per (model, shapes): a rebuilt model compares equal (a frozen dataclass of
# linen modules), so ``genjax train`` -> ``sample`` -> ``eval`` in one process reuse them and
# sampling / init run as one XLA program instead of op by op.
@functools.partial(jax.jit, static_argnums=(0, 3))
def _jit_sample(model: GAN, params: Params, key: PRNGKeyArray, num: int) -> Array:
    return model._sample(params, key, num, None, None, 4096, True)


@functools.partial(jax.jit, static_argnums=0)
def _jit_init_vars(model: GAN, key: PRNGKeyArray, x: Array) -> Params:
    return model._init_vars(key, x)
