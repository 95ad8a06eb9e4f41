"""A word-level tokenizer with a fixed vocabulary (no download, no learned merges).

Ids: 0 = ``<pad>``, 1 = ``<bos>``, 2 = ``<eos>``, then the vocabulary in the order given.
A text is lower-cased and split by :func:`words` (``[a-z]+`` words, each digit alone, each
other non-space character alone), so ``"7, written thin"`` is ``["7", ",", "written",
"thin"]``. :meth:`Tokenizer.encode` writes ``<bos> words <eos>`` then padding to
``max_len``. :func:`caption_tokenizer` is the tokenizer of every caption that
:mod:`genjax.data.captions` can make.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from genjax import _checks
from genjax import types

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "caption_tokenizer", "detokenize", "words"]

#: The special tokens, at ids 0, 1 and 2.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
_WORD = re.compile(r"[a-z]+|\d|[^\sa-z\d]")
_PUNCT_BEFORE = re.compile(r" ([,.;:!?)])")


def words(text: str) -> list[str]:
    """Splits a text into tokens: lower-cased ``[a-z]+`` words, single digits, and every
    other non-space character on its own (``"T-shirt, 10"`` -> ``t - shirt , 1 0``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Joins tokens back into text: spaces between words, none before ``, . ; : ! ? )``
    and none around ``-`` (the inverse of :func:`words` on the captions' spelling)."""
    text = _PUNCT_BEFORE.sub(r"\1", " ".join(tokens))
    return text.replace(" - ", "-")


class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary.

    Args:
        vocab: The words, each a single token under :func:`words` and none of
            :data:`SPECIAL_TOKENS`; ids ``3 ..`` in this order.
        max_len: Length of every encoded row, ``<bos>`` and ``<eos>`` included (>= 2).

    Raises:
        ValueError: A repeated word, a word that is not one token, or ``max_len < 2``.

    Examples:
        >>> tok = Tokenizer(["a", "7", "thick"], max_len=6)
        >>> tok.encode(["a thick 7"]).tolist()
        [[1, 3, 5, 4, 2, 0]]
        >>> tok.decode(tok.encode(["a thick 7"]))
        ['a thick 7']
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2

    def __init__(self, vocab: Sequence[str], max_len: int):
        if isinstance(vocab, str):
            raise TypeError("vocab must be a sequence of words, got a single str")
        vocab = tuple(vocab)
        for w in vocab:
            if not isinstance(w, str) or words(w) != [w]:
                raise ValueError(f"vocab entry {w!r} is not a single lower-case token under tokenizer.words")
        dup = sorted({w for w in vocab if vocab.count(w) > 1})
        if dup:
            raise ValueError(f"vocab has repeated words: {dup}")
        self.max_len = _checks.positive_int("max_len", max_len)
        if self.max_len < 2:
            raise ValueError(f"max_len must be at least 2 (for <bos> and <eos>), got {max_len}")
        self.vocab = vocab
        self._ids = {w: i + len(SPECIAL_TOKENS) for i, w in enumerate(vocab)}
        self._tokens = SPECIAL_TOKENS + vocab
        self._cache: dict[tuple[str, bool], np.ndarray] = {}

    @property
    def vocab_size(self) -> int:
        """Number of ids: the three special tokens plus the vocabulary."""
        return len(self._tokens)

    @property
    def condition(self) -> types.Condition:
        """The ``"tokens"`` :class:`genjax.types.Condition` of this tokenizer's output."""
        return types.Condition(kind="tokens", vocab_size=self.vocab_size, max_len=self.max_len, pad_id=self.pad_id)

    @staticmethod
    def words(text: str) -> list[str]:
        """The tokens of ``text`` (see :func:`words`)."""
        return words(text)

    def _encode_one(self, text: str, truncate: bool) -> np.ndarray:
        hit = self._cache.get((text, truncate))
        if hit is not None:
            return hit
        toks = words(text)
        unknown = [w for w in toks if w not in self._ids]
        if unknown:
            raise ValueError(f"unknown word {unknown[0]!r} in text {text!r} (not in the tokenizer's vocabulary)")
        room = self.max_len - 2
        if len(toks) > room:
            if not truncate:
                raise ValueError(
                    f"text {text!r} has {len(toks)} tokens, more than max_len={self.max_len} allows "
                    f"({room} plus <bos> and <eos>); pass truncate=True to cut it"
                )
            toks = toks[:room]
        row = np.zeros(self.max_len, np.int32)
        row[0] = self.bos_id
        row[1:len(toks) + 1] = [self._ids[w] for w in toks]
        row[len(toks) + 1] = self.eos_id
        row.flags.writeable = False
        self._cache[(text, truncate)] = row
        return row

    def encode(self, texts: Sequence[str], *, truncate: bool = False) -> np.ndarray:
        """Encodes texts as ``<bos> tokens <eos> <pad>...`` rows.

        Args:
            texts: A sequence of strings (a single string is a ``TypeError``: wrap it).
            truncate: Cut a text that does not fit to its first ``max_len - 2`` tokens
                (``<eos>`` stays last) instead of raising.

        Returns:
            int32 ``(len(texts), max_len)``.

        Raises:
            TypeError: ``texts`` is a string or holds a non-string.
            ValueError: An unknown word (named, with its text) or a text too long.
        """
        if isinstance(texts, str):
            raise TypeError(f"texts must be a sequence of strings, got the string {texts!r}; wrap it in a list")
        out = np.zeros((len(texts), self.max_len), np.int32)
        for i, text in enumerate(texts):
            out[i] = self._encode_one(text, bool(truncate))
        return out

    def decode(self, ids) -> list[str]:
        """Decodes rows of ids back to text (stops at ``<eos>``; skips ``<bos>``/``<pad>``).

        Args:
            ids: int ``(n, L)`` or ``(L,)``.

        Returns:
            ``n`` strings (one for a 1-D ``ids``), joined by :func:`detokenize`.

        Raises:
            ValueError: An id outside ``[0, vocab_size)`` or ``ids`` of rank other than 1, 2.
        """
        a = np.asarray(ids)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"ids must be integer of shape (n, L) or (L,), got {a.dtype} {np.shape(ids)}")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size}), got range [{a.min()}, {a.max()}]")
        out = []
        for row in a:
            toks = []
            for i in row.tolist():
                if i == self.eos_id:
                    break
                if i >= len(SPECIAL_TOKENS):
                    toks.append(self._tokens[i])
            out.append(detokenize(toks))
        return out

    def to_dict(self) -> dict:
        """A JSON-able description: ``{"vocab": [...], "max_len": int, "special": [...]}``."""
        return {"vocab": list(self.vocab), "max_len": self.max_len, "special": list(SPECIAL_TOKENS)}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        """The tokenizer :meth:`to_dict` described.

        Raises:
            ValueError: A missing key or special tokens other than :data:`SPECIAL_TOKENS`.
        """
        missing = [k for k in ("vocab", "max_len") if k not in d]
        if missing:
            raise ValueError(f"tokenizer dict is missing {missing}; expected keys 'vocab', 'max_len'")
        if tuple(d.get("special", SPECIAL_TOKENS)) != SPECIAL_TOKENS:
            raise ValueError(f"tokenizer dict has special tokens {d['special']}, expected {list(SPECIAL_TOKENS)}")
        return cls(d["vocab"], d["max_len"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and (self.vocab, self.max_len) == (other.vocab, other.max_len)

    def __hash__(self) -> int:
        return hash((self.vocab, self.max_len))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_len={self.max_len})"


def caption_tokenizer(max_len: int | None = None) -> Tokenizer:
    """The tokenizer of every caption :mod:`genjax.data.captions` makes.

    Args:
        max_len: Row length; ``None``: the longest caption any template can make plus 2
            (:data:`genjax.data.captions.MAX_CAPTION_TOKENS` + 2), so every caption fits.

    Returns:
        ``Tokenizer(captions.VOCAB, max_len)``.
    """
    from genjax.data import captions  # captions imports this module for words()

    return Tokenizer(captions.VOCAB, captions.MAX_CAPTION_TOKENS + 2 if max_len is None else max_len)
