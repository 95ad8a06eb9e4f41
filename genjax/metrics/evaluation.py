"""The one evaluation path: every metric a model has, through the model API only.

:func:`evaluate` is what ``genjax eval``, the registry's per-family ``evaluate`` and
``genjax compare`` call. It reads only the model API -- ``log_prob_kind``,
``log_prob(params, key, x)``, ``sample(params, key, num)`` and the attributes by which a
model says what its density is (``likelihood == "bernoulli"``: a discrete decoder;
``data_levels``: the model dequantizes inside ``log_prob``; a ``vlb`` with
``data_range == "unit"``: a discretized decoder on a ``num_levels`` grid) -- so a new
model gets every metric without a line here.

Conventions (one everywhere):

* **Likelihood data** per ``log_prob_kind`` (:func:`likelihood_data`): image data on
  ``L`` levels are scored by a continuous density after uniform dequantization
  ``k/(L-1) -> (k+u)/L`` (one draw per example) and reported as
  ``bits/dim = nll/(D ln 2) + log2 L``; discrete likelihoods (a Bernoulli decoder on
  binary data, or on dynamically binarized grey levels; the DDPM's discretized decoder on
  its grid) as ``nll/(D ln 2)``. Both are upper bounds on the bits/dim of the discrete
  data, so a bits/dim of discrete data is never negative. Toy 2-D data are continuous:
  no bits/dim; with a closed-form ``log p``, the exact ``KL(p||q)``.
* **Standard error** of the test NLL: the standard deviation of the per-example values
  over ``sqrt(n)``. Each example's estimate is independent, so it covers the test-set
  sampling and the estimator's own Monte Carlo noise (importance samples of the VAE,
  dequantization draws, the diffusion bound's noise) together.
* **Samples**: ``num_generated`` draws of the model's default sampler. Images: the fraction
  outside [0, 1] is recorded, then samples are clipped to [0, 1] and, with a domain
  classifier (``classifier="auto"``: :func:`genjax.metrics.features.get_classifier`),
  scored against the first ``num_reference`` test images: FID, KID, precision/recall,
  density/coverage, classifier score, class histogram
  (:func:`genjax.metrics.sample_quality.sample_quality_from_features`). Toy data: mean and
  covariance errors, the true log-density of the samples, and on Gaussian mixtures the
  mode coverage (:func:`genjax.metrics.modes.mixture_diagnostics`).

``data`` is any object with ``name``, ``kind`` (``"image"`` or ``"toy"``), ``test``
(``(n, *shape)`` host array), ``num_levels`` (``None`` for continuous data) and ``toy``
(a ``ToyDensity`` or ``None``), e.g. ``genjax.registry.DataBundle``.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genjax import _checks
from genjax._units import bits_per_dim, uniform_dequantize
from genjax.metrics.modes import mixture_diagnostics
from genjax.metrics.toy import exact_kl

__all__ = [
    "DEFAULT_NUM_GENERATED",
    "draw_samples",
    "evaluate",
    "likelihood",
    "likelihood_convention",
    "likelihood_data",
    "log_probs",
    "sample_metrics",
]

#: samples drawn when ``num_generated`` is not given (PacGAN's protocol on mixtures: 2500)
DEFAULT_NUM_GENERATED = {"image": 1000, "toy": 2500}
LABELS = {"exact": "exact", "iwae_bound": "IWAE bound", "elbo": "ELBO", "vlb": "VLB", "ode_estimate": "ODE estimate"}
STDERR_CONVENTION = (
    "standard error of the mean over the test examples (std of the per-example values / sqrt(n)): "
    "test-set sampling and the estimator's Monte Carlo noise together"
)


def _binary(data) -> bool:
    return getattr(data, "num_levels", None) == 2


def _is_image(data) -> bool:
    return getattr(data, "kind", None) == "image"


def _num_dims(data) -> int:
    return int(np.prod(np.shape(data.test)[1:]))


# ---------------------------------------------------------------------- likelihood
def likelihood_convention(model, data) -> tuple[str, str]:
    """``(kind label, convention)`` of the likelihood reported for ``model`` on ``data``."""
    kind = model.log_prob_kind
    L = data.num_levels
    if kind == "none":
        who = "a GAN" if hasattr(model, "d_loss") else "this model"  # two players: d_loss / g_loss
        return "none", f"n/a: {who} defines no density p(x); only sample-based metrics apply"
    label = LABELS.get(kind, kind)
    if not _is_image(data):
        return label, "continuous data: log q of the test samples as they are (no dequantization, no bits/dim)"
    if kind == "vlb" and getattr(model, "data_range", "unit") == "unit":
        Lm = int(getattr(model, "num_levels", 256))
        return label, (
            f"discrete variational bound with a discretized Gaussian decoder on the {Lm}-level grid "
            f"(test images snapped to it{', exact for L=' + str(L) if Lm == L else ''}); bits/dim = nll/(D ln 2); "
            f"an upper bound on the L={L} data's bits/dim"
        )
    if getattr(model, "likelihood", None) == "bernoulli":
        if _binary(data):
            return label, "Bernoulli decoder on binary data (a discrete likelihood): bits/dim = nll/(D ln 2)"
        return label + " (binarized data)", "Bernoulli decoder: scores dynamically binarized test images; NOT comparable with the other rows"
    return label, (
        f"continuous density on uniformly dequantized test images k/(L-1) -> (k+u)/L (L={L}, one draw per example); "
        "bits/dim = nll/(D ln 2) + log2 L, an upper bound on the L-level data's bits/dim"
    )


def likelihood_data(model, key, x: np.ndarray, data) -> tuple[np.ndarray, int | None]:
    """Test data in the form ``model.log_prob`` scores, and the ``num_levels`` offset of
    its bits/dim (None: none). See the module docstring for the convention."""
    if not _is_image(data):
        return x, None
    L = data.num_levels
    if model.log_prob_kind == "vlb" and getattr(model, "data_range", "unit") == "unit":
        Lm = int(getattr(model, "num_levels", 256))
        return (np.round(x * (Lm - 1)) / (Lm - 1)).astype(np.float32), None
    if getattr(model, "likelihood", None) == "bernoulli":
        if _binary(data):
            return x, None
        return np.asarray(jax.random.bernoulli(key, x), np.float32), None
    if getattr(model, "data_levels", None) is not None:
        return x, L  # the model draws (k+u)/L itself inside log_prob
    if L is None:
        raise ValueError(f"data {getattr(data, 'name', data)!r}: image data need num_levels for the dequantization convention")
    return np.asarray(uniform_dequantize(key, jnp.asarray(x, jnp.float32), num_levels=L)), L


#: compiled ``log_prob`` functions, one per (model, estimator settings): one compilation per
#: evaluation shape however many calls (a fresh ``jax.jit`` per call would compile every call)
_COMPILED: dict = {}


def _compiled_log_prob(model, iwae_samples: int, log_prob_kwargs: dict):
    kw = dict(log_prob_kwargs)
    if model.log_prob_kind in ("iwae_bound", "elbo"):
        kw.update(num_samples=iwae_samples, chunk_size=min(iwae_samples, 250))
    key = (id(model), tuple(sorted(kw.items())))
    if key not in _COMPILED or _COMPILED[key][0] is not model:
        if len(_COMPILED) >= 32:
            _COMPILED.clear()
        _COMPILED[key] = (model, jax.jit(lambda p, k, xb: model.log_prob(p, k, xb, **kw)))
    return _COMPILED[key][1]


def _bar(progress: bool, total: int, desc: str):
    """A tqdm bar on stderr (the CLI's), or None."""
    if not progress or total <= 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", dynamic_ncols=True, leave=False)


def log_probs(model, params, key, x: np.ndarray, *, iwae_samples: int = 1000, batch: int = 120,
              log_prob_kwargs: dict | None = None, progress: bool = False) -> np.ndarray:
    """Per-example ``model.log_prob`` of ``x`` (nats), ``batch`` examples per compiled call
    with key ``fold_in(key, i)`` for batch ``i``; bounds with importance samples
    (``iwae_bound``, ``elbo``) use ``iwae_samples`` of them; ``log_prob_kwargs``: the
    estimator's keywords (e.g. a DDPM's ``num_terms``, a score SDE's ``num_steps``).

    The function is compiled once per model and settings, for one shape: the last batch is
    padded (with copies of its first example) to the batch size, and ``batch`` is cut to
    ``len(x)``; ``progress`` shows a bar over the examples."""
    f = _compiled_log_prob(model, iwae_samples, log_prob_kwargs or {})
    n = len(x)
    batch = max(1, min(batch, n))
    bar = _bar(progress, n, "likelihood")
    out = []
    try:
        for i, start in enumerate(range(0, n, batch)):
            part = np.asarray(x[start : start + batch])
            pad = batch - len(part)
            full = np.concatenate([part, np.repeat(part[:1], pad, axis=0)]) if pad else part
            out.append(np.asarray(f(params, jax.random.fold_in(key, i), jnp.asarray(full)))[: len(part)])
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def _likelihood(model, params, key, x, data, *, iwae_samples, batch, log_prob_kwargs=None,
                progress=False) -> tuple[dict, np.ndarray | None, int | None]:
    kind_label, convention = likelihood_convention(model, data)
    out: dict[str, Any] = {"kind": kind_label, "log_prob_kind": model.log_prob_kind, "convention": convention}
    if model.log_prob_kind == "none":
        out.update(nll_nats=None, bits_per_dim=None, reason=convention)
        return out, None, None
    k_dq, k_lp = jax.random.split(key)
    x_eval, offset = likelihood_data(model, k_dq, np.asarray(x), data)
    vals = log_probs(model, params, k_lp, x_eval, iwae_samples=iwae_samples, batch=batch,
                     log_prob_kwargs=log_prob_kwargs, progress=progress)
    nll = float(-np.mean(vals))
    out.update(nll_nats=nll, bits_per_dim=float(bits_per_dim(nll, _num_dims(data), num_levels=offset, allow_nonfinite=True))
               if _is_image(data) else None,
               num_test_examples=int(len(x_eval)))
    if model.log_prob_kind == "iwae_bound":
        out["iwae_samples"] = iwae_samples
    if log_prob_kwargs:
        out["estimator"] = ", ".join(f"{k}={v}" for k, v in sorted(log_prob_kwargs.items()))
    return out, vals, offset


def likelihood(model, params, key, x: np.ndarray, data, *, iwae_samples: int = 1000, batch: int = 120) -> dict:
    """Test NLL (nats per example) and bits/dim of ``model`` on ``x`` with the convention of
    :func:`likelihood_convention`; ``{"kind": "none", ...}`` for a model without a density.

    ``key`` is split into the data key (dequantization or binarization: the same for
    every model given the same key) and the estimator's key.
    """
    return _likelihood(model, params, key, x, data, iwae_samples=iwae_samples, batch=batch)[0]


# ---------------------------------------------------------------------- samples
def _kwargs_key(kw: dict):
    """A hashable key of sampler keywords (``None`` when one of them is not hashable, e.g. an array)."""
    try:
        key = tuple(sorted(kw.items()))
        hash(key)
        return key
    except TypeError:
        return None


def draw_samples(model, params, key, num: int, *, chunk: int = 1000, cache: dict | None = None,
                 sample_kwargs: dict | None = None, cond=None, progress: bool = False, resume_dir=None) -> np.ndarray:
    """``num`` samples in the data space, ``chunk`` at a time (key ``fold_in(key, i)``)
    with one compiled sampler per chunk size (``cache`` keeps them across calls, keyed by the
    model, the chunk size, whether ``cond`` is given and ``sample_kwargs``).

    ``cond``: one condition per sample (``(num, ...)``, e.g. caption tokens), sliced per
    chunk and passed as ``model.sample``'s ``cond``; ``sample_kwargs``: the rest (``guidance``,
    ``sampler``, ...), the same for every chunk; ``progress``: a bar over the samples.

    ``resume_dir``: a folder (one per set of samples: the caller names it after the model and
    keywords) where every finished chunk is saved (``chunk_00000.npy``, ..., written to a
    temporary name and renamed: a kill never leaves a torn chunk); chunks found there are loaded,
    not drawn again, so a long draw cut off at any moment resumes where it stopped and gives the
    same samples."""
    kw = dict(sample_kwargs or {})
    if resume_dir is not None:
        resume_dir = pathlib.Path(resume_dir)
        resume_dir.mkdir(parents=True, exist_ok=True)
    # a compiled sampler is reused only for the same model, chunk size and sampler keywords (the
    # keywords are baked into it); keywords that cannot be a key (arrays) compile afresh
    kw_key = _kwargs_key(kw)
    cache = {} if cache is None or kw_key is None else cache
    if cond is not None and len(cond) != num:
        raise ValueError(f"cond must hold one condition per sample: {num}, got {len(cond)}")
    out = []
    bar = _bar(progress, num, "samples")
    try:
        for i, start in enumerate(range(0, num, chunk)):
            n = min(chunk, num - start)
            saved = None if resume_dir is None else resume_dir / f"chunk_{i:05d}.npy"
            if saved is not None and saved.exists():
                x = np.load(saved)
                if len(x) == n:
                    out.append(x)
                    if bar is not None:
                        bar.update(n)
                    continue
            k = jax.random.fold_in(key, i)
            ck = (id(model), n, cond is not None, kw_key)
            if ck not in cache:
                cache[ck] = (jax.jit(lambda p, k, n=n: model.sample(p, k, n, **kw)) if cond is None
                             else jax.jit(lambda p, k, c, n=n: model.sample(p, k, n, cond=c, **kw)))
            if cond is None:
                out.append(np.asarray(cache[ck](params, k)))
            else:
                out.append(np.asarray(cache[ck](params, k, np.asarray(cond[start : start + n]))))
            if saved is not None:
                tmp = saved.with_suffix(".tmp.npy")
                np.save(tmp, out[-1])
                os.replace(tmp, saved)
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(out)


def sample_metrics(samples: np.ndarray, data, *, classifier=None, num_reference: int | None = None,
                   kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """The sample-based metrics of ``samples`` ``(n, *shape)`` against ``data`` (see the
    module docstring); ``classifier`` is a feature classifier of the image domain or None."""
    x = np.asarray(samples, np.float32)
    n = len(x)
    out: dict[str, Any] = {"num_generated": int(n), "samples_finite": bool(np.isfinite(x).all())}
    if _is_image(data):
        out["fraction_outside_unit"] = float(np.mean((x < 0) | (x > 1)))
        if classifier is None:
            out["classifier_metrics"] = "not computed: no domain classifier was given (genjax eval uses one on digits, mnist, fashion-mnist)"
            return out
        from genjax.metrics.sample_quality import sample_quality_from_features

        x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)
        m = len(data.test) if num_reference is None else min(num_reference, len(data.test))
        real_f, real_l = classifier.embed(data.test[:m])
        f_f, f_l = classifier.embed(x)
        q = sample_quality_from_features(real_f, f_f, real_logits=real_l, fake_logits=f_l, kid_subsets=kid_subsets,
                                         kid_subset_size=kid_subset_size, seed=seed)
        out.update({k: q[k] for k in ("fid", "kid_mean", "kid_std", "kid_how", "precision", "recall", "density",
                                      "coverage", "classifier_score", "real_classifier_score")})
        out.update(classes_covered=q["class_histogram"]["classes_covered"], class_kl_to_uniform=q["class_histogram"]["kl_to_uniform"],
                   class_counts=q["class_histogram"]["counts"], num_reference=int(m),
                   classifier={"dataset": classifier.dataset, "test_accuracy": float(classifier.test_accuracy),
                               "config_hash": classifier.config_hash},
                   sample_quality_convention=f"{n} samples clipped to [0, 1] vs the first {m} test images, on the "
                   "domain classifier's penultimate features; precision/recall k=3, density/coverage k=5")
        return out
    if not out["samples_finite"]:
        return out
    ref = np.asarray(data.test[:n])
    out["mean_error"] = float(np.linalg.norm(x.mean(0) - ref.mean(0)))
    if x.ndim == 2 and x.shape[1] > 1 and n > 1:
        out["cov_error"] = float(np.linalg.norm(np.cov(x.T) - np.cov(ref.T)))
    toy = getattr(data, "toy", None)
    if toy is not None and toy.has_log_prob:  # precision on a known density: mean true log p of the samples
        lp = np.asarray(toy.log_prob(jnp.asarray(x)))
        inside = np.isfinite(lp)
        out["fraction_in_support"] = float(inside.mean())
        out["data_log_prob_of_samples"] = float(lp[inside].mean()) if inside.any() else None
        out["data_log_prob_of_test"] = float(np.mean(np.asarray(toy.log_prob(jnp.asarray(ref)))))
    if toy is not None and getattr(toy, "modes", None) is not None:
        d = mixture_diagnostics(x, toy)
        if not np.isfinite(d["kl_to_uniform"]):  # no high-quality sample at all; keep the JSON strict
            d["kl_to_uniform"] = "inf"
        out.update(d)
        out["protocol"] = (
            f"{n} samples, nearest mode; high quality within {d['threshold_std']:g} std (std {toy.mode_std:g}); "
            f"captured: >= {d['min_count']} high-quality sample"
        )
    return out


# ---------------------------------------------------------------------- all of it
def evaluate(
    model,
    params,
    key,
    data,
    *,
    iwae_samples: int = 1000,
    num_generated: int | None = None,
    max_examples: int | None = None,
    classifier: Any = None,
    data_dir=None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    batch: int = 120,
    sample_chunk: int = 1000,
    log_prob_kwargs: dict | None = None,
    sample_kwargs: dict | None = None,
    progress: bool = False,
) -> dict:
    """Every metric ``model`` has on ``data``'s test split, as one flat dict of Python values.

    Args:
      model: any genjax model (``log_prob_kind``, ``log_prob``, ``sample``).
      params: its parameters.
      key: PRNG key; split into the likelihood key (data, estimator) and the sampling key.
      data: the data set (see the module docstring).
      iwae_samples: importance samples per example of bounds (VAE: ``iwae_bound``).
      num_generated: samples drawn for the sample metrics (0: none); default
        :data:`DEFAULT_NUM_GENERATED` for the data kind.
      max_examples: score the first ``max_examples`` test examples only (the likelihood,
        and the reference images of the sample-quality metrics).
      classifier: the domain feature classifier for images: a ``Classifier``, ``"auto"``
        (:func:`genjax.metrics.features.get_classifier` of ``data.name``, trained and
        cached on first use) or None (no classifier metrics).
      data_dir: data / classifier cache directory for ``classifier="auto"``.
      kid_subsets, kid_subset_size: KID's subsets (:func:`genjax.metrics.sample_quality.kid`).
      batch: test examples per compiled likelihood call.
      sample_chunk: samples per compiled sampler call.
      log_prob_kwargs: keywords of ``model.log_prob`` (the estimator's settings, e.g. a DDPM's
        ``num_terms``); recorded as ``likelihood_estimator``.
      sample_kwargs: keywords of ``model.sample`` for the generated samples (e.g. ``sampler``);
        recorded as ``sample_settings``.
      progress: tqdm bars (stderr) over the scored examples and the drawn samples.

    Returns:
      ``log_prob_kind``, ``likelihood_kind``, ``likelihood_convention``; with a density
      ``test_nll_nats``, ``test_nll_stderr_nats``, ``num_test_examples`` (and on images
      ``test_bits_per_dim``, ``test_bits_per_dim_stderr``, ``bits_per_dim_convention``;
      on toy densities with a closed-form ``log p``, ``test_kl_nats``); then the sample
      metrics of :func:`sample_metrics`. Figures that do not exist are left out (never None).

    Raises:
      ValueError: bad sizes, or an unknown classifier data set, before any work.
    """
    iwae_samples = _checks.positive_int("iwae_samples", iwae_samples)
    if max_examples is not None:
        _checks.positive_int("max_examples", max_examples)
    if num_generated is None:
        num_generated = DEFAULT_NUM_GENERATED["image" if _is_image(data) else "toy"]
    num_generated = _checks.nonneg_int("num_generated", num_generated)
    batch = _checks.positive_int("batch", batch)
    if _is_image(data) and num_generated and isinstance(classifier, str):
        if classifier != "auto":
            raise ValueError(f"classifier must be a Classifier, 'auto' or None, got {classifier!r}")
        from genjax.metrics import features

        if data.name in features.CLASSIFIER_DATASETS:
            classifier = features.get_classifier(data.name, data_dir=data_dir, progress=False)
        else:
            classifier = None
    elif isinstance(classifier, str) and classifier != "auto":
        raise ValueError(f"classifier must be a Classifier, 'auto' or None, got {classifier!r}")
    elif isinstance(classifier, str):
        classifier = None
    if _is_image(data) and num_generated and classifier is not None and num_generated <= 5:
        raise ValueError(f"num_generated must be more than 5 for the nearest-neighbour metrics, got {num_generated}")

    k_lik, k_gen = jax.random.split(key)
    x = np.asarray(data.test if max_examples is None else data.test[:max_examples])
    lik, vals, offset = _likelihood(model, params, k_lik, x, data, iwae_samples=iwae_samples, batch=batch,
                                    log_prob_kwargs=log_prob_kwargs, progress=progress)
    out: dict[str, Any] = {"log_prob_kind": model.log_prob_kind, "likelihood_kind": lik["kind"],
                           "likelihood_convention": lik["convention"]}
    if vals is not None:
        n = len(vals)
        with np.errstate(invalid="ignore"):  # a diverged model's inf values give a NaN spread, said as such
            se = float(np.std(vals, ddof=1) / np.sqrt(n)) if n > 1 else None
        out.update(test_nll_nats=lik["nll_nats"], test_nll_stderr_nats=se, num_test_examples=n,
                   stderr_convention=STDERR_CONVENTION)
        if "iwae_samples" in lik:
            out["iwae_samples"] = iwae_samples
        if "estimator" in lik:
            out["likelihood_estimator"] = lik["estimator"]
        if _is_image(data):
            D = _num_dims(data)
            out["test_bits_per_dim"] = lik["bits_per_dim"]
            out["test_bits_per_dim_stderr"] = None if se is None else float(bits_per_dim(se, D, allow_nonfinite=True))
            out["bits_per_dim_convention"] = lik["convention"]
        elif getattr(data, "toy", None) is not None and data.toy.has_log_prob and not np.isfinite(vals).all():
            out["kl_convention"] = (f"KL not computed: {int((~np.isfinite(vals)).sum())} of {n} log q values are "
                                    "non-finite (a diverged model); the NLL shows it")
        elif getattr(data, "toy", None) is not None and data.toy.has_log_prob:
            out["test_kl_nats"] = exact_kl(data.toy, x, vals)
            out["kl_convention"] = (
                "KL(p||q) = E_p[log p - log q] over the test samples, closed-form log p, q = the model's "
                + {"exact": "exact density", "ode_estimate": "ODE estimate of log q"}.get(
                    model.log_prob_kind, f"{lik['kind']}, a lower bound on log q (so an upper bound on the KL)")
            )
        elif not _is_image(data):
            out["kl_convention"] = f"KL unavailable: toy density {getattr(data, 'name', '?')!r} has no closed-form log p"
    else:
        out["likelihood_na_reason"] = lik["reason"]
    if num_generated:
        s = draw_samples(model, params, k_gen, num_generated, chunk=sample_chunk, sample_kwargs=sample_kwargs,
                         progress=progress)
        if sample_kwargs:
            out["sample_settings"] = ", ".join(f"{k}={v}" for k, v in sorted(sample_kwargs.items()))
        out.update(sample_metrics(s, data, classifier=classifier, num_reference=None if max_examples is None else max_examples,
                                  kid_subsets=kid_subsets, kid_subset_size=kid_subset_size))
    # a figure that does not exist (no sample in the support, one KID value: no spread) is left
    # out rather than None, so every value is a number a training log can record
    return {k: v for k, v in out.items() if v is not None}
