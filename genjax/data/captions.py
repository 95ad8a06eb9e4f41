"""Captioned image data sets: every image with many captions made from its label and
attributes *measured from the image* (:mod:`genjax.data.attributes`).

Data sets (:data:`CAPTIONED_DATASETS`):

========================== ======== ================================ =========================
name                       H x W    images (split sizes)             attributes
========================== ======== ================================ =========================
``digits-captions``        8 x 8    scikit-learn digits (1437 / 360) thickness, slant, size
``mnist-captions``         28 x 28  MNIST (60000 / 10000)            thickness, slant, size
``fashion-mnist-captions`` 28 x 28  Fashion-MNIST (60000 / 10000)    size, brightness
``mnist-pairs``            28 x 56  two MNIST digits (60000 / 10000) thickness, slant, size
                                                                     of each digit
========================== ======== ================================ =========================

``digits-captions`` is bundled (no files); the others read the MNIST / Fashion-MNIST files
through :func:`genjax.data.images.load_image_dataset` (nothing else is downloaded).

**Attribute words.** Each attribute is binned by the terciles of its values on the
**train** split: bin 0 below the first edge, 1 between, 2 at or above the second
(:func:`attribute_bins`). The edges are stored on every split (``CaptionedData.edges``,
always the train split's) so a test image or a generated one is binned the same way.
Words per bin (the middle bin of thickness, size and brightness is silent: no word):

* thickness: thin / - / thick (synonyms fine, bold); slant: left-leaning, slanted to the
  left / upright, straight / right-leaning, slanted to the right; size: small, little / - /
  large, big; brightness: dark / - / light, bright.

A measurement that takes few values can tie its edges: on the 8x8 digits, size (the box
is mostly 8 x 5) has both edges at ``sqrt(40)``, so its middle bin is empty (389 small /
1048 large of 1437). MNIST train edges: thickness 2.26 / 2.81 px, slant -0.010 / 0.224,
size 16.1 / 17.9 px; Fashion-MNIST: size 19.1 / 23.2 px, brightness 0.563 / 0.719.

**Captions.** A caption is drawn from a small grammar (:func:`caption_grammar`): which
attributes to mention (any subset of those with a word), a template and synonyms, each
chosen uniformly. Digits appear as numerals and as words. Examples: "a thick seven",
"7, written thin and slanted to the right", "the digit 7", "a large, thin 7", "a handwritten
seven", "a photo of a dark, small bag", "an ankle boot". ``CaptionedData.all_captions(i)``
lists every caption of image ``i``; ``CaptionedData.captions(key, num_per_image)`` draws
some, deterministically from the key.

**mnist-pairs.** A 28 x 56 canvas: the left digit in columns 0-27, the right one in 28-55.
Each example draws an ordered pair ``(a, b)`` uniformly from the allowed pairs, then an
image of class ``a`` and one of class ``b`` uniformly from the MNIST split (train pairs
from MNIST train, test pairs from MNIST test), all from NumPy's PCG64 seeded with
``SeedSequence([seed, split])``. The 10
ordered pairs :data:`HELD_OUT_PAIRS` (each digit in exactly two of them) are **never** in
the train split; the test split draws from all 100 pairs and flags the held-out ones
(``held_out``). Labels are ``(n, 2)`` (left, right); attributes and bins ``(n, 2)``, each
digit measured on its own 28 x 28 image with MNIST's train edges. Captions: "a 3 to the
left of a thin 5", "a 5 to the right of a 3", "3 and 5" (left first), "a 3 on the left and
a 5 on the right"; each digit is mentioned with at most one attribute, and half the draws
name it plainly.

The public surface (what CLIP and the text-to-image models call)::

    data = load_captioned(name, split="train", *, data_dir=None, download=True, seed=0)
    data.images (n, H, W, 1) float32 [0, 1]; data.labels (n,) int32 [pairs: (n, 2)]
    data.attributes / data.bins: {attribute: (n,) float / int [pairs: (n, 2)]}
    data.edges {attribute: (2,) train terciles}; data.held_out (n,) bool
    data.captions(key, num_per_image=1) -> list[list[str]]; data.all_captions(i) -> list[str]
    data.caption_tokens(key, tokenizer, num_per_image=1) -> (n, num_per_image, L) int32
    data.attribute_bins(attribute, values) -> bins of new measurements
    class_prompts(name) -> per class, its attribute-free prompts (zero-shot ensemble)
    pair_prompts() -> {(a, b): prompts}; attribute_prompts(name, label, attribute, bin)
    VOCAB (every token any caption can hold), MAX_CAPTION_TOKENS, HELD_OUT_PAIRS
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
import random
import re
from typing import NamedTuple, Sequence, Union

import numpy as np

from genjax import _checks
from genjax.data import attributes as _attr
from genjax.data import download as _dl
from genjax.data import images as _images
from genjax.data.tokenizer import words as _words

__all__ = [
    "CAPTIONED_DATASETS",
    "CaptionedData",
    "DIGIT_WORDS",
    "FASHION_NAMES",
    "HELD_OUT_PAIRS",
    "MAX_CAPTION_TOKENS",
    "VOCAB",
    "attribute_bins",
    "attribute_prompts",
    "caption_grammar",
    "class_prompts",
    "load_captioned",
    "pair_prompts",
    "source_dataset",
    "tercile_edges",
]

CAPTIONED_DATASETS: tuple[str, ...] = ("digits-captions", "mnist-captions", "fashion-mnist-captions", "mnist-pairs")

#: The image set under each captioned set.
_SOURCE = {
    "digits-captions": "digits",
    "mnist-captions": "mnist",
    "fashion-mnist-captions": "fashion-mnist",
    "mnist-pairs": "mnist",
}


def source_dataset(name: str) -> str:
    """The image set under captioned set ``name`` (``"mnist-pairs"`` -> ``"mnist"``): the one
    whose domain classifier scores its images (a pair's halves one by one)."""
    _check_name(name)
    return _SOURCE[name]


#: Measured attributes per kind of image.
_DIGIT_ATTRS = ("size", "thickness", "slant")
_FASHION_ATTRS = ("size", "brightness")

#: The 10 ordered (left, right) pairs never in mnist-pairs' train split; every digit is in
#: exactly two of them (once left, once right), and no pair's reverse is held out.
HELD_OUT_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 5), (1, 6), (2, 7), (3, 8), (4, 9), (5, 1), (6, 2), (7, 3), (8, 4), (9, 0),
)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Fashion-MNIST class names and their synonyms (the first is the class name).
FASHION_NAMES: tuple[tuple[str, ...], ...] = (
    ("t-shirt", "top", "tee"),
    ("pair of trousers", "pair of pants", "pair of jeans"),
    ("pullover", "sweater", "jumper"),
    ("dress", "frock"),
    ("coat", "jacket"),
    ("sandal", "summer sandal"),
    ("shirt", "blouse"),
    ("sneaker", "trainer", "running shoe"),
    ("bag", "handbag", "purse"),
    ("ankle boot", "boot"),
)

#: Words per attribute and bin: before the noun ("a thick 7") and after it ("7, written
#: thick"). A bin with no entry is silent.
_ADJ = {
    "size": {0: ("small", "little"), 2: ("large", "big")},
    "thickness": {0: ("thin", "fine"), 2: ("thick", "bold")},
    "slant": {0: ("left-leaning", "left-slanted"), 1: ("upright", "straight"), 2: ("right-leaning", "right-slanted")},
    "brightness": {0: ("dark",), 2: ("light", "bright")},
}
_POST = {
    "size": {0: ("small",), 2: ("large", "big")},
    "thickness": {0: ("thin",), 2: ("thick", "bold")},
    "slant": {
        0: ("slanted to the left", "leaning to the left"),
        1: ("upright", "straight"),
        2: ("slanted to the right", "leaning to the right"),
    },
    "brightness": {0: ("dark",), 2: ("light", "bright")},
}

# --------------------------------------------------------------------------- the grammar
# A grammar is a tree: a str is text, a tuple a sequence (joined by spaces), a list a
# uniform choice among its entries.
Grammar = Union[str, tuple, list]


_AN = re.compile(r"\ba (?=(?:[aeiu]|o(?!ne\b)|8|eight\b))")


def _finish(text: str) -> str:
    """Spacing and articles: ``" ,"`` -> ``","``; ``a`` -> ``an`` before a vowel sound."""
    text = " ".join(text.split()).replace(" ,", ",")
    return _AN.sub("an ", text)


def _join(parts) -> str:
    return " ".join(p for p in parts if p)


def expand(tree: Grammar) -> list[str]:
    """Every caption of a grammar, in order, without repeats."""
    raw = _expand(tree)
    return list(dict.fromkeys(_finish(t) for t in raw))


def _expand(tree: Grammar) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    if isinstance(tree, list):
        return [t for option in tree for t in _expand(option)]
    return [_join(parts) for parts in itertools.product(*(_expand(p) for p in tree))]


#: A choice among at most this many captions is sampled as one draw from its captions.
_LEAF_SIZE = 64


class _Node(NamedTuple):
    """A compiled grammar: a ``"leaf"`` (``body``: its captions, ``probs`` and their
    cumulative sum ``cum``) or a ``"choice"`` / ``"seq"`` of compiled children."""

    kind: str
    body: tuple
    count: int
    probs: tuple = ()
    cum: tuple = ()


def _leaf(weighted: list[tuple[str, float]]) -> _Node:
    if len(weighted) == 1:
        return _Node("leaf", (weighted[0][0],), 1, (1.0,), (1.0,))
    texts, probs = zip(*weighted)
    return _Node("leaf", texts, len(texts), probs, tuple(itertools.accumulate(probs)))


def _compile(tree: Grammar, memo: dict) -> _Node:
    """A grammar ready for sampling, with the distribution of walking it with uniform
    choices: a choice among at most ``_LEAF_SIZE`` captions becomes one leaf (one draw,
    no new strings); sequences stay sequences (joined when drawn). ``memo`` (by ``id``,
    holding each tree alive) shares the work between the grammars of one call, which share
    sub-trees (templates, the pair grammars' noun phrases)."""
    hit = memo.get(id(tree))
    if hit is not None:
        return hit[1]
    if isinstance(tree, str):
        node = _leaf([(tree, 1.0)])
    else:
        kids = [_compile(p, memo) for p in tree]
        if isinstance(tree, tuple):
            node = _Node("seq", tuple(kids), math.prod(k.count for k in kids))
        elif sum(k.count for k in kids) <= _LEAF_SIZE and all(k.kind == "leaf" for k in kids):
            node = _leaf([(t, p / len(kids)) for k in kids for t, p in zip(k.body, k.probs)])
        else:
            node = _Node("choice", tuple(kids), sum(k.count for k in kids))
    memo[id(tree)] = (tree, node)
    return node


def _sample(node: _Node, rng: random.Random) -> str:
    """One caption of a compiled grammar (:func:`_compile`)."""
    if node.kind == "leaf":
        i = bisect.bisect_right(node.cum, rng.random() * node.cum[-1])
        return node.body[min(i, len(node.body) - 1)]
    if node.kind == "choice":
        return _sample(node.body[int(rng.random() * len(node.body))], rng)
    return _join([_sample(p, rng) for p in node.body])


def _literals(tree: Grammar, memo: dict) -> set[str]:
    if isinstance(tree, str):
        return {tree}
    if id(tree) not in memo:  # grammars share sub-trees: walk each once
        memo[id(tree)] = set().union(*(_literals(p, memo) for p in tree))
    return memo[id(tree)]


def _max_tokens(tree: Grammar, memo: dict) -> int:
    if isinstance(tree, str):
        return len(_words(tree))
    if id(tree) not in memo:
        lengths = [_max_tokens(p, memo) for p in tree]
        memo[id(tree)] = max(lengths) if isinstance(tree, list) else sum(lengths)
    return memo[id(tree)]


def _listing(phrases: Sequence[Grammar]) -> Grammar:
    """``x`` / ``x and y`` / ``x, y and z``."""
    if len(phrases) <= 1:
        return tuple(phrases)
    head = []
    for p in phrases[:-2]:
        head += [p, ","]
    return (*head, phrases[-2], "and", phrases[-1])


def _adjectives(words: dict, attrs: Sequence[str], bins: dict) -> Grammar:
    """``large, thin, upright``: one synonym choice per attribute, comma separated."""
    parts: list = []
    for i, a in enumerate(attrs):
        parts += ([","] if i else []) + [list(words[a][bins[a]])]
    return tuple(parts)


@functools.lru_cache(maxsize=None)
def _nouns(kind: str, label: int) -> list[str]:
    """The nouns of a class (cached, shared: never mutate the list)."""
    if kind == "fashion":
        return list(FASHION_NAMES[label])
    return [str(label), DIGIT_WORDS[label]]


def _single_templates(kind: str, label: int, mention: Sequence[str], bins: dict) -> list:
    """The templates of one image that mention exactly the attributes ``mention``."""
    noun = _nouns(kind, label)
    adj = _adjectives(_ADJ, mention, bins)
    post = _listing([list(_POST[a][bins[a]]) for a in mention])
    if kind == "fashion":
        out = [("a", adj, noun), ("a photo of a", adj, noun), ("a picture of a", adj, noun),
               ("an image of a", adj, noun)]
        if mention:
            out.append(("a", noun, ",", post))
        return out
    out = [("a", adj, noun), ("a", adj, "handwritten", noun), ("a photo of a", adj, noun)]
    out.append(("the digit", noun, ",", post) if mention else ("the digit", noun))
    if mention:
        out.append((noun, ",", "written", post))
    if "slant" in mention and bins["slant"] != 1:  # "a thick 7 leaning to the right"
        rest = [a for a in mention if a != "slant"]
        out.append(("a", _adjectives(_ADJ, rest, bins), noun, list(_POST["slant"][bins["slant"]])))
    return out


def _kind(name: str) -> str:
    return {"fashion-mnist-captions": "fashion", "mnist-pairs": "pairs"}.get(name, "digit")


def _attrs_of(kind: str) -> tuple[str, ...]:
    return _FASHION_ATTRS if kind == "fashion" else _DIGIT_ATTRS


def _single_grammar(kind: str, label: int, bins: tuple[int, ...]) -> Grammar:
    attrs = _attrs_of(kind)
    b = dict(zip(attrs, bins))
    sayable = [a for a in attrs if b[a] in _ADJ[a]]
    subsets = [s for r in range(len(sayable) + 1) for s in itertools.combinations(sayable, r)]
    return [list(_single_templates(kind, label, s, b)) for s in subsets]


@functools.lru_cache(maxsize=None)
def _noun_phrase(label: int, bins: tuple | None) -> Grammar:
    """``a 3`` or ``a thin 3`` (at most one attribute; ``bins=None``: none): a flat choice of
    texts in which the plain phrases are repeated so that half the draws name the digit
    plainly (as the choice ``[plain, with an adjective]`` would) while sampling stays one
    draw. Cached, so the pair grammars of one call share their noun phrases."""
    nouns = _nouns("digit", label)
    plain = [f"a {n}" for n in nouns]
    adjs = [] if bins is None else [w for a, b in zip(_DIGIT_ATTRS, bins) for w in _ADJ[a].get(b, ())]
    return plain * max(len(adjs), 1) + [f"a {w} {n}" for w in adjs for n in nouns]


def _pair_templates(a: Grammar, b: Grammar, left: int, right: int) -> Grammar:
    """The pair templates over the noun phrases ``a`` (left digit) and ``b`` (right)."""
    return [
        (a, "to the left of", b),
        (b, "to the right of", a),
        (_nouns("digit", left), "and", _nouns("digit", right)),
        (a, "on the left and", b, "on the right"),
    ]


def _pair_grammar(left: int, right: int, left_bins: tuple | None, right_bins: tuple | None) -> Grammar:
    return _pair_templates(_noun_phrase(left, left_bins), _noun_phrase(right, right_bins), left, right)


@functools.lru_cache(maxsize=4096)
def caption_grammar(name: str, label, bins) -> Grammar:
    """The caption grammar of one image.

    Args:
        name: One of :data:`CAPTIONED_DATASETS`.
        label: The class (``mnist-pairs``: a ``(left, right)`` tuple).
        bins: The image's attribute bins in the data set's attribute order, a tuple
            (``mnist-pairs``: a pair of such tuples; ``None``: mention no attribute).

    Returns:
        A tree: ``str`` text, ``tuple`` a sequence, ``list`` a uniform choice.
    """
    kind = _kind(name)
    if kind == "pairs":
        (l, r), (lb, rb) = label, (bins if bins is not None else (None, None))
        as_bins = lambda t: None if t is None else tuple(int(v) for v in t)  # noqa: E731
        return _pair_grammar(int(l), int(r), as_bins(lb), as_bins(rb))
    if bins is None:
        return list(_single_templates(kind, int(label), (), {}))
    return _single_grammar(kind, int(label), tuple(int(v) for v in bins))


@functools.lru_cache(maxsize=4096)
def _all_captions(name: str, label, bins) -> tuple[str, ...]:
    return tuple(expand(caption_grammar(name, label, bins)))


def _every_grammar() -> list:
    """One grammar per data set that can make every caption (for VOCAB and max length)."""
    all_bins = {k: list(itertools.product(range(3), repeat=len(_attrs_of(k)))) for k in ("digit", "fashion")}
    out = []
    for name, kind in (("mnist-captions", "digit"), ("fashion-mnist-captions", "fashion")):
        out += [caption_grammar(name, c, b) for c in range(10) for b in all_bins[kind]]
    nps = {d: [_noun_phrase(d, b) for b in all_bins["digit"]] for d in range(10)}
    out += [_pair_templates(nps[l], nps[r], l, r) for l, r in itertools.product(range(10), repeat=2)]
    return out


@functools.lru_cache(maxsize=None)
def _vocab_and_length() -> tuple[tuple[str, ...], int]:
    grammars = _every_grammar()
    literal_memo: dict = {}
    length_memo: dict = {}
    found = set().union(*(_literals(g, literal_memo) for g in grammars))
    tokens = {w for text in found for w in _words(text)} | {"an"}
    return tuple(sorted(tokens)), max(_max_tokens(g, length_memo) for g in grammars)


def __getattr__(name: str):
    """``VOCAB`` (every token any caption of any data set can hold, sorted: the caption
    tokenizer's vocabulary) and ``MAX_CAPTION_TOKENS`` (the most tokens any caption has,
    ``<bos>``/``<eos>`` not counted), computed from the grammars on first use (about a
    second: importing ``genjax.data`` does not pay it)."""
    if name == "VOCAB":
        return _vocab_and_length()[0]
    if name == "MAX_CAPTION_TOKENS":
        return _vocab_and_length()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- binning


def tercile_edges(values) -> np.ndarray:
    """The two tercile edges ``(q(1/3), q(2/3))`` of ``values`` (train measurements)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("values must hold at least one measurement to take terciles of")
    return np.quantile(v, [1.0 / 3.0, 2.0 / 3.0])


def attribute_bins(values, edges) -> np.ndarray:
    """Bins measurements by tercile edges: 0 below ``edges[0]``, 1 in ``[edges[0],
    edges[1])``, 2 at or above ``edges[1]``.

    Args:
        values: float array of any shape (e.g. :func:`genjax.data.attributes.thickness`
            of generated images).
        edges: The two edges, e.g. ``CaptionedData.edges["thickness"]``.

    Returns:
        int32 array of the shape of ``values``.

    Raises:
        ValueError: ``edges`` is not two increasing numbers.
    """
    e = np.asarray(edges, np.float64)
    if e.shape != (2,) or not e[0] <= e[1]:
        raise ValueError(f"edges must be two non-decreasing numbers (the tercile edges), got {edges!r}")
    return np.digitize(np.asarray(values, np.float64), e).astype(np.int32)


# --------------------------------------------------------------------------- the container


def _seed_of(key) -> int:
    """An int seed from a JAX key (typed or raw ``uint32[2]``) or an int."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    import jax

    data = key
    if hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
    words = np.asarray(data).astype(np.uint64).ravel()
    if words.size == 0:
        raise TypeError(f"key must be a JAX PRNG key or an int, got {key!r}")
    return int(sum(int(w) << (32 * i) for i, w in enumerate(words)))


@dataclasses.dataclass(frozen=True, eq=False)
class CaptionedData:
    """One split of a captioned data set.

    Attributes:
        name: One of :data:`CAPTIONED_DATASETS`.
        split: ``"train"`` or ``"test"``.
        images: float32 ``(n, H, W, 1)`` in ``[0, 1]`` (read-only).
        labels: int32 ``(n,)`` classes (``mnist-pairs``: ``(n, 2)``, left and right).
        attributes: ``{attribute: float (n,)}`` measured values (pairs: ``(n, 2)``).
        bins: ``{attribute: int32 (n,)}`` tercile bins 0/1/2 (pairs: ``(n, 2)``).
        edges: ``{attribute: (2,)}`` the train split's tercile edges.
        held_out: bool ``(n,)``: a held-out pair (:data:`HELD_OUT_PAIRS`); all False but
            in mnist-pairs' test split.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    attributes: dict
    bins: dict
    edges: dict
    held_out: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The measured attributes, in caption order."""
        return tuple(self.bins)

    def _grammar_keys(self, index=None) -> list:
        """``(label, bins)`` of each image (of ``index``, default all): its grammar's key."""
        sel = slice(None) if index is None else index
        labels = self.labels[sel].tolist()
        bins = np.stack([self.bins[a][sel] for a in self.attribute_names], -1).tolist()
        if self.name == "mnist-pairs":  # labels [l, r], bins [[left bins], [right bins]]
            return [(tuple(l), (tuple(b[0]), tuple(b[1]))) for l, b in zip(labels, bins)]
        return [(l, tuple(b)) for l, b in zip(labels, bins)]

    def all_captions(self, i: int) -> list[str]:
        """Every caption of image ``i`` (order fixed; no repeats).

        Raises:
            IndexError: ``i`` outside ``[0, n)``.
        """
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"i={i} is outside the {len(self)} images of {self.name}/{self.split}")
        return list(_all_captions(self.name, *self._grammar_keys([int(i) % len(self)])[0]))

    def captions(self, key, num_per_image: int = 1) -> list[list[str]]:
        """Draws captions, deterministically from ``key``.

        Each caption walks the image's grammar choosing uniformly at each choice
        (attributes to mention, template, synonyms; a small choice is drawn in one step
        from its captions with the same probabilities), with a ``random.Random`` seeded
        from the key. Same key, same captions.

        Args:
            key: A JAX PRNG key (or an int seed).
            num_per_image: Captions per image (drawn independently; may repeat).

        Returns:
            ``n`` lists of ``num_per_image`` strings.
        """
        k = _checks.positive_int("num_per_image", num_per_image)
        rng = random.Random(_seed_of(key))
        out = []
        memo: dict = {}
        for label, bins in self._grammar_keys():
            node = _compile(caption_grammar(self.name, label, bins), memo)
            out.append([_finish(_sample(node, rng)) for _ in range(k)])
        return out

    def caption_tokens(self, key, tokenizer, num_per_image: int = 1) -> np.ndarray:
        """:meth:`captions` encoded: int32 ``(n, num_per_image, tokenizer.max_len)``.

        Args:
            key: As for :meth:`captions` (the same key gives the same captions).
            tokenizer: Any object with ``encode(list[str]) -> (m, L)``, e.g.
                :func:`genjax.data.tokenizer.caption_tokenizer`.
            num_per_image: Captions per image.
        """
        texts = self.captions(key, num_per_image)
        flat = tokenizer.encode([t for per_image in texts for t in per_image])
        return flat.reshape(len(self), num_per_image, -1)

    def attribute_bins(self, attribute: str, values) -> np.ndarray:
        """Bins new measurements of ``attribute`` (e.g. of generated images) by this data
        set's train terciles (:func:`attribute_bins` with ``self.edges[attribute]``)."""
        if attribute not in self.edges:
            raise ValueError(f"unknown attribute {attribute!r} for {self.name}; valid choices: {list(self.edges)}")
        return attribute_bins(values, self.edges[attribute])


# --------------------------------------------------------------------------- loading


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _check_name(name: str) -> None:
    if name not in CAPTIONED_DATASETS:
        raise ValueError(f"unknown name={name!r}; valid choices: {list(CAPTIONED_DATASETS)}")


def _measured(name: str, split: str, root, download: bool, seed: int):
    """(ImageData, {attribute: values}) of the images under a captioned set."""
    return _measured_source(_SOURCE[name], split, root, download, seed, _attrs_of(_kind(name)))


@functools.lru_cache(maxsize=None)
def _measured_source(source: str, split: str, root, download: bool, seed: int, attrs: tuple):
    """Measured once per image set: mnist-captions and mnist-pairs share MNIST's."""
    if source == "digits":
        data = _images.load_digits(split, seed=seed)
    else:
        data = _images.load_image_dataset(source, split, data_dir=root, download=download)
    values = _attr.measure(data.x, attrs)
    return data, {a: _readonly(v) for a, v in values.items()}


def _pairs(seed: int, split: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) image indices ``(n, 2)`` of mnist-pairs' split, and the held-out flags.

    NumPy's PCG64 from ``SeedSequence([seed, split])`` (0 train, 1 test): the same draw on
    every platform, without compiling anything."""
    n = 60000 if split == "train" else 10000
    held = set(HELD_OUT_PAIRS)
    allowed = np.array([p for p in itertools.product(range(10), repeat=2) if split != "train" or p not in held])
    rng = np.random.default_rng(np.random.SeedSequence([seed, int(split == "test")]))
    pairs = allowed[rng.integers(0, len(allowed), n)]
    order = np.argsort(labels, kind="stable")  # images of class c: order[start[c]:start[c] + count[c]]
    counts = np.bincount(labels, minlength=10)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    index = np.stack([order[start[c] + rng.integers(0, counts[c])] for c in pairs.T], 1)
    flags = np.isin(pairs[:, 0] * 10 + pairs[:, 1], [10 * a + b for a, b in HELD_OUT_PAIRS])
    return index, flags


@functools.lru_cache(maxsize=8)
def _load(name: str, split: str, root, download: bool, seed: int) -> CaptionedData:
    data, values = _measured(name, split, root, download, seed)
    _, train_values = _measured(name, "train", root, download, seed)
    edges = {a: _readonly(tercile_edges(v)) for a, v in train_values.items()}
    bins = {a: attribute_bins(values[a], edges[a]) for a in values}
    if name != "mnist-pairs":
        n = len(data)
        return CaptionedData(
            name, split, data.x, data.y,
            values, {a: _readonly(b) for a, b in bins.items()}, edges, _readonly(np.zeros(n, bool)),
        )
    idx, flags = _pairs(seed, split, np.asarray(data.y))
    h, w = data.x.shape[1:3]
    images = np.empty((len(idx), h, 2 * w, 1), np.float32)
    images[:, :, :w] = data.x[idx[:, 0]]
    images[:, :, w:] = data.x[idx[:, 1]]
    return CaptionedData(
        name, split, _readonly(images), _readonly(np.asarray(data.y)[idx].astype(np.int32)),
        {a: _readonly(v[idx]) for a, v in values.items()},
        {a: _readonly(b[idx]) for a, b in bins.items()}, edges, _readonly(flags),
    )


def load_captioned(
    name: str, split: str = "train", *, data_dir=None, download: bool = True, seed: int = 0
) -> CaptionedData:
    """Loads one split of a captioned data set (cached per process; arrays read-only).

    Args:
        name: One of :data:`CAPTIONED_DATASETS`.
        split: ``"train"`` or ``"test"``.
        data_dir: Root data directory for the MNIST files (ignored for
            ``digits-captions``); see :func:`genjax.data.download.data_dir`.
        download: Download missing MNIST files (else raise).
        seed: The digits split seed (``digits-captions``) and the pair draw
            (``mnist-pairs``, PCG64 from ``SeedSequence([seed, split])``); unused otherwise.

    Returns:
        :class:`CaptionedData`; see the module docstring.

    Raises:
        ValueError: Unknown ``name`` or ``split``.
    """
    _check_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split={split!r} for {name!r}; valid choices: ['train', 'test']")
    seed = _checks.nonneg_int("seed", seed)
    root = None if _SOURCE[name] == "digits" else str(_dl.data_dir(data_dir).resolve())
    return _load(name, split, root, bool(download), seed)


# --------------------------------------------------------------------------- prompts


def class_prompts(name: str) -> list[list[str]]:
    """Per class, its attribute-free captions: the prompt ensemble for zero-shot
    classification ("a 7", "a seven", "the digit 7", "a handwritten seven", ...).

    Args:
        name: One of :data:`CAPTIONED_DATASETS`; for ``mnist-pairs`` the 100 classes are
            the ordered pairs, class ``10 * left + right`` (as :func:`pair_prompts`).

    Returns:
        One list of prompts per class (10, or 100 for pairs).
    """
    _check_name(name)
    if name == "mnist-pairs":
        prompts = pair_prompts()
        return [prompts[(a, b)] for a in range(10) for b in range(10)]
    return [list(_all_captions(name, c, None)) for c in range(10)]


def pair_prompts() -> dict[tuple[int, int], list[str]]:
    """Per ordered pair ``(left, right)``, its attribute-free captions ("a 3 to the left of
    a 5", "a five to the right of a three", "3 and 5", ...): all 100 pairs."""
    return {(a, b): list(_all_captions("mnist-pairs", (a, b), None)) for a in range(10) for b in range(10)}


def attribute_prompts(name: str, label: int, attribute: str, bin: int) -> list[str]:
    """The captions of class ``label`` that mention only ``attribute`` in bin ``bin``
    ("a thick 7", "7, written bold", ...): prompts for attribute retrieval.

    Raises:
        ValueError: Unknown data set (pairs have no single-digit prompts) or attribute, or
            a silent bin (no word, e.g. medium thickness).
    """
    _check_name(name)
    kind = _kind(name)
    if kind == "pairs":
        raise ValueError("attribute_prompts takes a single-image set (mnist-captions ...), not 'mnist-pairs'")
    attrs = _attrs_of(kind)
    if attribute not in attrs:
        raise ValueError(f"unknown attribute {attribute!r} for {name}; valid choices: {list(attrs)}")
    if bin not in _ADJ[attribute]:
        raise ValueError(f"bin={bin!r} of {attribute} has no word; valid bins: {sorted(_ADJ[attribute])}")
    trees = _single_templates(kind, int(label), (attribute,), {attribute: bin})
    return expand(list(trees))
