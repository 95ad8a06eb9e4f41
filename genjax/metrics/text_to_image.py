"""Scoring text-to-image samples against the prompts they were asked for (model-agnostic).

Nothing here knows a model: a caller draws one sample per prompt of a :class:`PromptSet`,
then scores the samples (host arrays in ``[0, 1]``) with :func:`text_to_image_metrics`,
passing the domain classifier's argmax as ``classify`` and, for the CLIP figures, the
in-domain CLIP's embeddings of the samples and of the prompts::

    ps = prompt_set("mnist-captions")                      # 1000 digit + 800 attribute prompts
    samples = ...                                          # (len(ps), 28, 28, 1), one per prompt
    m = text_to_image_metrics(samples, ps, classify=lambda x: clf.predict(x),
                              edges=data.edges, image_emb=ie, text_emb=te, key=key)
    m["prompt_acc"], m["attribute_acc"], m["per_digit"]["7"]

The figures (each comes with its counts, ``<name>_hits`` and ``<name>_n``, so a reader can
recompute it):

* **prompt accuracy**: the share of samples whose digit, by the classifier, is the prompt's
  (:func:`prompt_accuracy`); for ``mnist-pairs`` both halves right and in the asked order
  (:func:`split_pairs`), held-out and seen pairs apart.
* **attribute accuracy**: the share of the prompts that ask an attribute ("a thick 7",
  "a 3 slanted to the left") whose sample, measured by :func:`genjax.data.attributes.measure`
  and binned by the data's **train** tercile edges, lands in the asked bin
  (:func:`attribute_accuracy`).
* **CLIP score**: the mean cosine between each sample's and its prompt's embedding
  (:func:`clip_score`; the plain cosine, not the ``100 * max(cos, 0)`` of some papers).
* **R-precision**: each sample ranks its own prompt among ``R`` candidates: the prompt and
  ``R - 1`` distractor prompts of *other* classes (another digit; for pairs another ordered
  pair, its reverse included), each drawn from the set's prompts of that class that ask the
  same attribute and bin when there are any (:func:`prompt_r_precision`; the ranking is
  :func:`genjax.metrics.retrieval.r_precision`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Mapping, Sequence

import jax
import numpy as np

from genjax import _checks
from genjax.data import attributes as _attributes
from genjax.data import captions as _captions
from genjax.metrics import retrieval as _retrieval

__all__ = [
    "PROMPT_SETS",
    "PromptSet",
    "attribute_accuracy",
    "clip_score",
    "prompt_accuracy",
    "prompt_r_precision",
    "prompt_set",
    "split_pairs",
    "text_to_image_metrics",
]

#: The attributes and bins a single-image prompt set asks for, per data set (the outer
#: terciles: the middle bin of thickness has no word, and "upright" is left out).
_ASKED: dict[str, tuple[tuple[str, int], ...]] = {
    "mnist-captions": (("thickness", 0), ("thickness", 2), ("slant", 0), ("slant", 2)),
    "digits-captions": (("thickness", 0), ("thickness", 2), ("slant", 0), ("slant", 2)),
    "fashion-mnist-captions": (("size", 0), ("size", 2), ("brightness", 0), ("brightness", 2)),
}
#: Every data set :func:`prompt_set` takes.
PROMPT_SETS: tuple[str, ...] = (*_ASKED, "mnist-pairs")


@dataclasses.dataclass(frozen=True, eq=False)
class PromptSet:
    """The evaluation prompts of a captioned data set, one sample to be drawn per prompt.

    Attributes:
        name: The captioned data set (:data:`PROMPT_SETS`).
        kind: ``"single"`` (one class per image) or ``"pairs"`` (``mnist-pairs``).
        prompts: ``n`` prompt texts.
        labels: int32 ``(n,)`` the class each prompt names (pairs: ``(n, 2)``, left and right).
        attribute: ``n`` entries, the attribute a prompt asks for (``"thickness"``, ``"slant"``,
            ...) or ``None``.
        bin: int32 ``(n,)`` the asked tercile bin (0 low, 2 high), -1 where none is asked.
        held_out: bool ``(n,)`` a held-out pair (:data:`genjax.data.captions.HELD_OUT_PAIRS`);
            all False for single-image sets.
    """

    name: str
    kind: str
    prompts: tuple[str, ...]
    labels: np.ndarray
    attribute: tuple[str | None, ...]
    bin: np.ndarray
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask) -> "PromptSet":
        """The prompts where ``mask`` (bool ``(n,)``) is True, in order.

        Raises:
            ValueError: ``mask`` is not a bool array of shape ``(n,)``.
        """
        m = np.asarray(mask)
        if m.shape != (len(self),) or m.dtype != bool:
            raise ValueError(f"mask must be a bool array of shape ({len(self)},), got shape {m.shape} and dtype {m.dtype}")
        idx = np.flatnonzero(m)
        return PromptSet(
            self.name, self.kind, tuple(self.prompts[i] for i in idx), _readonly(self.labels[idx]),
            tuple(self.attribute[i] for i in idx), _readonly(self.bin[idx]), _readonly(self.held_out[idx]),
        )

    def extra_fields(self) -> dict[str, np.ndarray]:
        """The per-prompt fields besides prompts and labels as plain arrays (``attribute`` as
        str, ``""`` for none), for :func:`genjax.results.write_samples`'s ``**extra``."""
        return {
            "attribute": np.array([a or "" for a in self.attribute], dtype=str),
            "bin": np.asarray(self.bin),
            "held_out": np.asarray(self.held_out),
        }


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


def _draw(rng: np.random.Generator, texts: Sequence[str], k: int) -> list[str]:
    """``k`` texts drawn uniformly with replacement."""
    return [texts[i] for i in rng.integers(0, len(texts), k)]


def prompt_set(
    name: str,
    *,
    per_digit: int = 100,
    per_attribute: int = 20,
    per_pair: int = 20,
    seen_pairs: bool = True,
    seed: int = 0,
) -> PromptSet:
    """The evaluation prompts of a captioned data set, fixed by ``seed``.

    Single-image sets (``mnist-captions``, ``digits-captions``, ``fashion-mnist-captions``):
    first ``per_digit`` attribute-free prompts per class 0..9 (drawn uniformly with
    replacement from :func:`genjax.data.captions.class_prompts`: "a 7", "the digit seven",
    ...), then ``per_attribute`` prompts **per (class, attribute, bin)** for the outer bins of
    two attributes (digits: thickness thin/thick and slant left/right; Fashion: size and
    brightness), drawn from :func:`genjax.data.captions.attribute_prompts`. The defaults give
    ``10 * 100 + 10 * 4 * 20 = 1800`` prompts.

    ``mnist-pairs``: ``per_pair`` prompts per held-out pair
    (:data:`genjax.data.captions.HELD_OUT_PAIRS`, from
    :func:`genjax.data.captions.pair_prompts`), then, with ``seen_pairs``, as many per reversed
    held-out pair (``(5, 0)`` for ``(0, 5)``: seen in training, the same two digits, the other
    order), flagged ``held_out=False``. The defaults give ``2 * 10 * 20 = 400`` prompts.

    Each block of prompts draws from NumPy's PCG64 seeded with
    ``SeedSequence([seed, block])``: the same prompts on every platform.

    Args:
        name: One of :data:`PROMPT_SETS`.
        per_digit: Attribute-free prompts per class (>= 0).
        per_attribute: Prompts per (class, attribute, bin) (>= 0).
        per_pair: Prompts per pair (>= 1).
        seen_pairs: Add the reversed (seen) pairs for comparison.
        seed: Fixes the draw.

    Returns:
        A :class:`PromptSet`.

    Raises:
        ValueError: An unknown ``name``, a bad count or seed, or an empty set.
    """
    _checks.one_of("name", name, PROMPT_SETS)
    seed = _checks.nonneg_int("seed", seed)
    texts: list[str] = []
    labels: list = []
    asked: list[tuple[str | None, int]] = []
    held: list[bool] = []
    blocks = itertools.count()

    def block(prompts, k, label, attribute=None, bin=-1, held_out=False):
        rng = np.random.default_rng(np.random.SeedSequence([seed, next(blocks)]))
        texts.extend(_draw(rng, prompts, k))
        labels.extend([label] * k)
        asked.extend([(attribute, bin)] * k)
        held.extend([held_out] * k)

    if name == "mnist-pairs":
        k = _checks.positive_int("per_pair", per_pair)
        pairs = [(p, True) for p in _captions.HELD_OUT_PAIRS]
        pairs += [((b, a), False) for a, b in _captions.HELD_OUT_PAIRS] if seen_pairs else []
        every = _captions.pair_prompts()
        for pair, is_held in pairs:
            block(every[pair], k, pair, held_out=is_held)
        label_arr = np.asarray(labels, np.int32).reshape(-1, 2)
        kind = "pairs"
    else:
        k_digit = _checks.nonneg_int("per_digit", per_digit)
        k_attr = _checks.nonneg_int("per_attribute", per_attribute)
        if k_digit + k_attr == 0:
            raise ValueError("per_digit and per_attribute are both 0: the prompt set would be empty")
        for c, prompts in enumerate(_captions.class_prompts(name)):
            block(prompts, k_digit, c)
        for c in range(10):
            for attribute, b in _ASKED[name]:
                block(_captions.attribute_prompts(name, c, attribute, b), k_attr, c, attribute, b)
        label_arr = np.asarray(labels, np.int32)
        kind = "single"
    return PromptSet(
        name, kind, tuple(texts), _readonly(label_arr), tuple(a for a, _ in asked),
        _readonly(np.array([b for _, b in asked], np.int32)), _readonly(np.array(held, bool)),
    )


# --------------------------------------------------------------------------- scores


def _labels(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] != 2) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be int class labels of shape (n,) or (n, 2) (pairs), "
                         f"got shape {a.shape} and dtype {a.dtype}")
    return a


def _share(hits: int, n: int) -> float | None:
    return float(hits / n) if n else None


def _cell(right: np.ndarray) -> dict:
    """``{"acc": share or None, "hits", "n"}`` of a bool array of right answers."""
    hits, n = int(np.sum(right)), int(np.size(right))
    return {"acc": _share(hits, n), "hits": hits, "n": n}


def _figure(name: str, right: np.ndarray) -> dict:
    """``{name: share or None, name_hits, name_n}`` of a bool array of right answers."""
    cell = _cell(right)
    return {name: cell["acc"], f"{name}_hits": cell["hits"], f"{name}_n": cell["n"]}


def prompt_accuracy(pred_labels, labels) -> float:
    """The share of samples whose predicted class is the prompt's.

    Args:
        pred_labels: int ``(n,)`` predicted classes (pairs: ``(n, 2)``, left and right).
        labels: int, the same shape: the classes the prompts name.

    Returns:
        The share right; for pairs a sample is right when both digits are, in order.

    Raises:
        ValueError: Shapes differ, are not ``(n,)`` / ``(n, 2)`` ints, or are empty.
    """
    pred, true = _labels("pred_labels", pred_labels), _labels("labels", labels)
    if pred.shape != true.shape or not len(true):
        raise ValueError(f"pred_labels and labels must have the same non-empty shape, got {pred.shape} and {true.shape}")
    return float(np.mean(_right(pred, true)))


def _right(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """bool ``(n,)``: every position right."""
    eq = pred == true
    return eq.all(1) if eq.ndim == 2 else eq


def split_pairs(images) -> tuple[np.ndarray, np.ndarray]:
    """The left and right halves of pair images (``mnist-pairs``: 28 x 56 -> two 28 x 28).

    Args:
        images: ``(n, H, 2H)`` or ``(n, H, 2H, C)``.

    Returns:
        ``(left, right)``, each ``(n, H, H[, C])``: columns ``[0, H)`` and ``[H, 2H)``.

    Raises:
        ValueError: Not rank 3 or 4, or the width is not twice the height.
    """
    x = np.asarray(images)
    if x.ndim not in (3, 4) or x.shape[2] != 2 * x.shape[1]:
        raise ValueError(f"images must be pair images of shape (n, H, 2H) or (n, H, 2H, C) "
                         f"(mnist-pairs: (n, 28, 56, 1)), got shape {x.shape}")
    h = x.shape[1]
    return x[:, :, :h], x[:, :, h:]


def _asked(attribute, bin, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    att = np.array(["" if a is None else str(a) for a in attribute], dtype=object)
    b = np.asarray(bin)
    if b.shape != att.shape or not np.issubdtype(b.dtype, np.integer) or (n is not None and len(att) != n):
        raise ValueError(f"attribute and bin must have one entry per image{'' if n is None else f' ({n})'}, "
                         f"bin ints; got {len(att)} attributes and bin of shape {b.shape}, dtype {b.dtype}")
    return att, b


def attribute_accuracy(images, attribute: Sequence[str | None], bin, edges: Mapping[str, Sequence[float]]) -> dict:
    """The share of images whose measured attribute lands in the asked tercile bin.

    Each image that asks an attribute (``attribute[i]`` not ``None``/``""``) is measured with
    :func:`genjax.data.attributes.measure` and binned with
    :func:`genjax.data.captions.attribute_bins` by ``edges[attribute]`` (the data's train
    terciles, ``CaptionedData.edges``); images that ask none are left out.

    Args:
        images: ``(n, H, W)`` or ``(n, H, W, 1)`` floats in ``[0, 1]``.
        attribute: ``n`` attribute names or ``None``.
        bin: int ``(n,)`` the asked bins (ignored where no attribute is asked).
        edges: ``{attribute: (2,) tercile edges}`` for every asked attribute.

    Returns:
        ``{"attribute_acc": share or None, "attribute_acc_hits", "attribute_acc_n",
        "by": {"thickness/0": {"acc", "hits", "n"}, ...}}`` (one entry per asked
        ``attribute/bin``, sorted).

    Raises:
        ValueError: Mismatched lengths, or an asked attribute without edges.
    """
    x = np.asarray(images)
    att, b = _asked(attribute, bin, len(x))
    missing = sorted(set(att[att != ""]) - set(edges))
    if missing:
        raise ValueError(f"edges has no tercile edges for the asked attribute(s) {missing}; it has {sorted(edges)}")
    right = np.zeros(len(x), bool)
    for name in sorted(set(att[att != ""])):
        sel = np.flatnonzero(att == name)
        values = _attributes.measure(x[sel], [name])[name]
        right[sel] = _captions.attribute_bins(values, edges[name]) == b[sel]
    asks = att != ""
    fig = _figure("attribute_acc", right[asks])
    fig["by"] = {}
    for name, k in sorted({(a, int(v)) for a, v in zip(att[asks], b[asks])}):
        fig["by"][f"{name}/{k}"] = _cell(right[(att == name) & (b == k)])
    return fig


def _embeddings(name: str, x) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or 0 in a.shape or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a non-empty finite matrix (n, d), got shape {a.shape}")
    return a


def _unit(a: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero: cosine 0 with everything)."""
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def clip_score(image_emb, text_emb) -> float:
    """The mean cosine similarity of matching rows: sample ``i`` with its prompt ``i``.

    Both are L2-normalised here (a zero row has cosine 0), so raw projections will do.

    Args:
        image_emb: ``(n, d)`` the samples' image embeddings.
        text_emb: ``(n, d)`` their prompts' text embeddings.

    Returns:
        ``mean_i cos(image_emb[i], text_emb[i])`` in ``[-1, 1]``.

    Raises:
        ValueError: Shapes differ or are not non-empty finite matrices.
    """
    a, b = _embeddings("image_emb", image_emb), _embeddings("text_emb", text_emb)
    if a.shape != b.shape:
        raise ValueError(f"image_emb and text_emb must have the same shape (n, d), got {a.shape} and {b.shape}")
    return float(np.mean(np.sum(_unit(a) * _unit(b), axis=1)))


def _distractors(key: jax.Array, ps: PromptSet) -> np.ndarray:
    """``(n, C - 1)`` prompt indices: for each prompt, one prompt of each *other* class of the
    set (classes: digits, or ordered pairs), drawn uniformly among that class's prompts that ask
    the same attribute and bin, or among all its prompts when none does."""
    classes, cls = np.unique(ps.labels.reshape(len(ps), -1), axis=0, return_inverse=True)
    cls = cls.reshape(-1)
    att, b = _asked(ps.attribute, ps.bin)
    group = np.unique(np.stack([att.astype(str), b.astype(str)], 1), axis=0, return_inverse=True)[1].reshape(-1)
    out = np.empty((len(ps), len(classes) - 1), np.int64)
    for g, c in itertools.product(np.unique(group), range(len(classes))):
        rows = np.flatnonzero((group == g) & (cls != c))
        if not rows.size:
            continue
        pool = np.flatnonzero((group == g) & (cls == c))
        pool = pool if pool.size else np.flatnonzero(cls == c)
        pick = np.asarray(jax.random.randint(jax.random.fold_in(key, g * len(classes) + c), (rows.size,), 0, pool.size))
        out[rows, c - (c > cls[rows])] = pool[pick]  # column of class c among each row's other classes
    return out


def prompt_r_precision(key: jax.Array, image_emb, text_emb, ps: PromptSet, *, num_candidates: int = 10) -> float:
    """R-precision of samples against their prompts and distractor prompts of other classes.

    Each sample's candidates are its own prompt and ``R - 1`` of the set's prompts of
    *other* classes (one per other class: another digit, or for pairs another ordered pair;
    each drawn among that class's prompts asking the same attribute and bin when there are
    any); a hit when its own prompt is strictly the most similar (cosine). The ranking and the
    draw of ``R - 1`` of the ``C - 1`` distractors are
    :func:`genjax.metrics.retrieval.r_precision`'s.

    Args:
        key: Draws the distractors.
        image_emb: ``(n, d)`` sample embeddings, one per prompt of ``ps``.
        text_emb: ``(n, d)`` prompt embeddings, aligned with ``ps.prompts``.
        ps: The prompt set (its labels define the classes).
        num_candidates: ``R``, in ``[2, C]`` with ``C`` the number of classes in ``ps``.

    Returns:
        The share of samples whose prompt ranks first among its ``R`` candidates.

    Raises:
        ValueError: Shapes do not match ``ps``, or ``num_candidates`` is out of range.
    """
    a, t = _embeddings("image_emb", image_emb), _embeddings("text_emb", text_emb)
    if a.shape != t.shape or len(a) != len(ps):
        raise ValueError(f"image_emb and text_emb must both have shape ({len(ps)}, d) (one row per prompt), "
                         f"got {a.shape} and {t.shape}")
    num_classes = len(np.unique(ps.labels.reshape(len(ps), -1), axis=0))
    r = _checks.positive_int("num_candidates", num_candidates)
    if not 2 <= r <= num_classes:
        raise ValueError(f"num_candidates must be in [2, {num_classes}] (the classes of the prompt set), got {r}")
    draw_key, rank_key = jax.random.split(key)
    cand = np.concatenate([np.arange(len(ps))[:, None], _distractors(draw_key, ps)], 1)  # (n, C): own prompt first
    sim = np.einsum("nd,ncd->nc", _unit(a), _unit(t)[cand]).astype(np.float32)
    targets = np.zeros(len(ps), np.int32)
    return float(_retrieval.r_precision(rank_key, sim, num_candidates=r, targets=targets))


def _samples(samples, ps: PromptSet) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 4 or x.shape[-1] != 1 or len(x) != len(ps):
        raise ValueError(f"samples must have shape ({len(ps)}, H, W, 1) (one per prompt of the set), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"samples must be floats in [0, 1], got dtype {x.dtype} (uint8 pixels: divide by 255)")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("samples must be finite floats in [0, 1]")
    return x


def _classified(classify: Callable, x: np.ndarray) -> np.ndarray:
    pred = np.asarray(classify(x))
    if pred.shape != (len(x),) or not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"classify must return int labels of shape ({len(x)},) for images of shape {x.shape}, "
                         f"got shape {pred.shape} and dtype {pred.dtype}")
    return pred


def _per_class(right: np.ndarray, keys: Sequence[str]) -> dict:
    keys = np.asarray(keys)
    return {str(k): _cell(right[keys == k]) for k in dict.fromkeys(keys.tolist())}


def text_to_image_metrics(
    samples,
    prompt_set: PromptSet,
    *,
    classify: Callable[[np.ndarray], np.ndarray],
    edges: Mapping[str, Sequence[float]],
    image_emb=None,
    text_emb=None,
    key: jax.Array | None = None,
    num_candidates: int = 10,
) -> dict:
    """Every text-to-image figure of one sample per prompt, with its counts.

    Args:
        samples: ``(n, H, W, 1)`` floats in ``[0, 1]``, sample ``i`` drawn for
            ``prompt_set.prompts[i]`` (pairs: ``(n, 28, 56, 1)``).
        prompt_set: The prompts (:func:`prompt_set`).
        classify: ``images (m, h, w, 1) -> (m,)`` int labels: the domain classifier's argmax
            (for pairs it is called on the left and the right halves).
        edges: ``{attribute: (2,)}`` the data's train tercile edges (``CaptionedData.edges``).
        image_emb, text_emb: Optional ``(n, d)`` in-domain CLIP embeddings of the samples and
            of their prompts: give both for ``clip_score`` and ``r_precision``.
        key: Draws R-precision's distractors (required with embeddings).
        num_candidates: R-precision's ``R`` (capped at the number of classes in the set).

    Returns:
        A JSON-ready dict. Every share ``x`` comes with ``x_hits`` and ``x_n``.

        * single sets: ``prompt_acc`` (the attribute-free prompts), ``prompt_acc_all``
          (every prompt: attribute prompts name a class too), ``per_digit`` (``{"0": {"acc",
          "hits", "n"}, ...}`` over the attribute-free prompts), ``attribute_acc`` and
          ``attribute_acc_by`` (``{"thickness/0": {...}}``).
        * pairs: ``prompt_acc`` (every pair: both digits right, in order), ``held_out_acc``,
          ``seen_acc`` (``None`` with ``_n = 0`` when the set has no seen pair),
          ``digit_acc`` (each half on its own), ``per_pair`` (``{"0-5": {...}}``).
        * with embeddings: ``clip_score`` and ``r_precision`` (``r_precision_candidates``: R).
        * always ``n`` (samples) and ``kind``.

    Raises:
        ValueError: Shapes do not match the prompt set; embeddings without a key, or only one
            of them; a bad ``classify`` output.
        TypeError: ``samples`` not floats.
    """
    ps = prompt_set
    if not isinstance(ps, PromptSet):
        raise TypeError(f"prompt_set must be a PromptSet (genjax.metrics.text_to_image.prompt_set), got {type(ps).__name__}")
    x = _samples(samples, ps)
    if (image_emb is None) != (text_emb is None):
        raise ValueError("image_emb and text_emb go together: give both (for clip_score and r_precision) or neither")
    if image_emb is not None and key is None:
        raise ValueError("key is required with embeddings: it draws R-precision's distractor prompts")
    out: dict = {"kind": ps.kind, "n": len(ps)}
    if ps.kind == "pairs":
        left, right = split_pairs(x)
        pred = np.stack([_classified(classify, left), _classified(classify, right)], 1)
        ok = _right(pred, ps.labels)
        out.update(_figure("prompt_acc", ok))
        out.update(_figure("held_out_acc", ok[ps.held_out]))
        out.update(_figure("seen_acc", ok[~ps.held_out]))
        out.update(_figure("digit_acc", (pred == ps.labels).ravel()))
        out["per_pair"] = _per_class(ok, [f"{a}-{b}" for a, b in ps.labels])
    else:
        pred = _classified(classify, x)
        ok = _right(pred, ps.labels)
        plain = np.array([a is None for a in ps.attribute])
        out.update(_figure("prompt_acc", ok[plain]))
        out.update(_figure("prompt_acc_all", ok))
        out["per_digit"] = _per_class(ok[plain], [str(c) for c in ps.labels[plain]])
        attr = attribute_accuracy(x, ps.attribute, ps.bin, edges)
        out["attribute_acc_by"] = attr.pop("by")
        out.update(attr)
    if image_emb is not None:
        out["clip_score"] = clip_score(image_emb, text_emb)
        r = min(num_candidates, len(np.unique(ps.labels.reshape(len(ps), -1), axis=0)))
        out["r_precision"] = prompt_r_precision(key, image_emb, text_emb, ps, num_candidates=r)
        out["r_precision_candidates"] = r
    return out
