"""Tests of genjax.data.tokenizer (CPU, no data files)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from genjax.data import captions as cap
from genjax.data import tokenizer as tk


def test_words_split_digits_and_punctuation():
    assert tk.words("7, Written THIN") == ["7", ",", "written", "thin"]
    assert tk.words("a T-shirt 10") == ["a", "t", "-", "shirt", "1", "0"]
    assert tk.detokenize(tk.words("a left-leaning 7, thick")) == "a left-leaning 7, thick"


def test_encode_layout_and_round_trip():
    tok = tk.Tokenizer(["a", "thick", "7", ","], max_len=7)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 1, 2, 7)
    ids = tok.encode(["a thick 7", "7", "a thick 7, 7"])
    assert ids.dtype == np.int32 and ids.shape == (3, 7)
    np.testing.assert_array_equal(ids[0], [1, 3, 4, 5, 2, 0, 0])  # bos a thick 7 eos pad pad
    np.testing.assert_array_equal(ids[1], [1, 5, 2, 0, 0, 0, 0])
    np.testing.assert_array_equal(ids[2], [1, 3, 4, 5, 6, 5, 2])  # fills max_len exactly
    assert tok.decode(ids) == ["a thick 7", "7", "a thick 7, 7"]
    assert tok.decode(ids[1]) == ["7"]
    assert tok.condition.vocab_size == 7 and tok.condition.max_len == 7 and tok.condition.pad_id == 0


def test_errors_name_the_problem():
    tok = tk.Tokenizer(["a", "7"], max_len=4)
    with pytest.raises(ValueError, match=r"unknown word 'thick' in text 'a thick 7'"):
        tok.encode(["a 7", "a thick 7"])
    with pytest.raises(ValueError, match=r"text 'a 7 7' has 3 tokens, more than max_len=4"):
        tok.encode(["a 7 7"])
    np.testing.assert_array_equal(tok.encode(["a 7 7"], truncate=True), [[1, 3, 4, 2]])
    with pytest.raises(TypeError, match="texts must be a sequence of strings"):
        tok.encode("a 7")
    with pytest.raises(ValueError, match="repeated words"):
        tk.Tokenizer(["a", "a"], max_len=4)
    with pytest.raises(ValueError, match="not a single lower-case token"):
        tk.Tokenizer(["a 7"], max_len=4)
    with pytest.raises(ValueError, match="max_len must be at least 2"):
        tk.Tokenizer(["a"], max_len=1)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, vocab_size=5\)"):
        tok.decode([[1, 9, 2]])


def test_dict_round_trip_through_json():
    tok = tk.caption_tokenizer()
    again = tk.Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and again.vocab_size == tok.vocab_size
    text = ["an 8 to the left of a thin 5"]
    np.testing.assert_array_equal(again.encode(text), tok.encode(text))
    with pytest.raises(ValueError, match="missing"):
        tk.Tokenizer.from_dict({"vocab": ["a"]})


def _round_trip(tok: tk.Tokenizer, texts: list[str]) -> int:
    ids = tok.encode(texts)
    assert tok.decode(ids) == texts
    lengths = (ids != tok.pad_id).sum(1)
    rows = np.arange(len(texts))
    np.testing.assert_array_equal(ids[:, 0], tok.bos_id)
    np.testing.assert_array_equal(ids[rows, lengths - 1], tok.eos_id)
    return int(lengths.max()) - 2


def test_every_caption_of_every_grammar_tokenizes():
    tok = tk.caption_tokenizer()
    assert tok.max_len == cap.MAX_CAPTION_TOKENS + 2
    longest = 0
    for name, attrs in (("mnist-captions", 3), ("fashion-mnist-captions", 2)):
        for label, bins in itertools.product(range(10), itertools.product(range(3), repeat=attrs)):
            longest = max(longest, _round_trip(tok, cap.expand(cap.caption_grammar(name, label, bins))))
    for pair in itertools.product(range(10), repeat=2):
        longest = max(longest, _round_trip(tok, cap.pair_prompts()[pair]))
    for bins in (((2, 2, 2), (2, 2, 2)), ((0, 0, 0), (1, 1, 1)), ((1, 1, 1), (0, 0, 0))):  # every word
        longest = max(longest, _round_trip(tok, cap.expand(cap.caption_grammar("mnist-pairs", (7, 8), bins))))
    assert longest == cap.MAX_CAPTION_TOKENS  # the bound is attained, not loose
    used = {w for g in cap.class_prompts("fashion-mnist-captions") for t in g for w in tk.words(t)}
    assert used <= set(cap.VOCAB)
