"""Tests of genjax.data.captions: the embedded digits-captions set on the CPU, the pair draw
on synthetic labels, and mnist-pairs' real test split (skipped without the MNIST files)."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from genjax.data import attributes as at
from genjax.data import captions as cap
from genjax.data import images as im
from genjax.data.tokenizer import words

#: Caption words that state a bin, per attribute (single-image sets).
_STATES = {
    "thickness": {"thin": 0, "fine": 0, "thick": 2, "bold": 2},
    "size": {"small": 0, "little": 0, "large": 2, "big": 2},
    "slant": {"left": 0, "upright": 1, "straight": 1, "right": 2},
}


@pytest.fixture(scope="module")
def digits():
    return cap.load_captioned("digits-captions", "train")


def test_bins_follow_the_stored_train_terciles(digits):
    test = cap.load_captioned("digits-captions", "test")
    raw = im.load_digits("train").x
    for name in ("thickness", "slant", "size"):
        values = at.measure(raw, [name])[name]  # measured again, independently
        np.testing.assert_allclose(digits.attributes[name], values)
        edges = np.quantile(values, [1 / 3, 2 / 3])
        np.testing.assert_allclose(digits.edges[name], edges)
        np.testing.assert_array_equal(test.edges[name], digits.edges[name])  # test reuses train's
        for d in (digits, test):
            v, b = d.attributes[name], d.bins[name]
            assert np.all((b == 0) == (v < edges[0])) and np.all((b == 2) == (v >= edges[1]))
    assert digits.images.shape == (1437, 8, 8, 1) and len(test) == 360
    assert not digits.held_out.any()
    np.testing.assert_array_equal(digits.attribute_bins("slant", [-9.0, 9.0]), [0, 2])


def test_caption_words_agree_with_measurements(digits):
    caps = digits.captions(jax.random.key(0), num_per_image=4)
    said = 0
    for i, texts in enumerate(caps):
        for text in texts:
            ws = words(text)
            label = int(digits.labels[i])
            assert str(label) in ws or cap.DIGIT_WORDS[label] in ws, text
            for name, states in _STATES.items():
                for w in set(ws) & set(states):
                    assert digits.bins[name][i] == states[w], (text, name, digits.attributes[name][i])
                    said += 1
    assert said > len(caps)  # attributes are mentioned often


def test_caption_tokens_encode_the_same_captions(digits):
    from genjax.data.tokenizer import caption_tokenizer

    tok = caption_tokenizer()
    ids = digits.caption_tokens(jax.random.key(7), tok, 3)
    assert ids.shape == (len(digits), 3, tok.max_len) and ids.dtype == np.int32
    texts = digits.captions(jax.random.key(7), 3)
    assert [tok.decode(row) for row in ids[:20]] == texts[:20]


def test_captions_are_deterministic_and_varied(digits):
    a = digits.captions(jax.random.key(3), 2)
    assert a == digits.captions(jax.random.key(3), 2)
    assert a != digits.captions(jax.random.key(4), 2)
    assert a == digits.captions(jax.random.PRNGKey(3), 2)  # a raw key: the same key data
    # An image with a word for every attribute has many captions; samples come from them.
    loud = np.flatnonzero((digits.bins["thickness"] != 1) & (digits.bins["size"] != 1))[0]
    every = digits.all_captions(int(loud))
    assert len(every) >= 200 and len(set(every)) == len(every)
    drawn = digits.captions(jax.random.key(5), 30)[loud]
    assert set(drawn) <= set(every) and len(set(drawn)) >= 10


def _distribution(tree) -> dict:
    """Caption -> probability of walking ``tree`` with uniform choices (plain recursion);
    ``tree`` is a grammar (str / list / tuple) or a compiled node (its leaves as given)."""
    if isinstance(tree, cap._Node):
        if tree.kind == "leaf":
            out: dict = {}
            for t, p in zip(tree.body, tree.probs):
                out[t] = out.get(t, 0.0) + p
            return out
        tree = list(tree.body) if tree.kind == "choice" else tuple(tree.body)
    if isinstance(tree, str):
        return {tree: 1.0}
    if isinstance(tree, list):
        out = {}
        for option in tree:
            for t, p in _distribution(option).items():
                out[t] = out.get(t, 0.0) + p / len(tree)
        return out
    out = {"": 1.0}
    for part in tree:
        out2: dict = {}
        for (a, p), (b, q) in itertools.product(out.items(), _distribution(part).items()):
            t = " ".join(x for x in (a, b) if x)
            out2[t] = out2.get(t, 0.0) + p * q
        out = out2
    return out


@pytest.mark.parametrize("name, label, bins", [
    ("mnist-captions", 7, (2, 0, 2)), ("fashion-mnist-captions", 9, (0, 2)),
    ("mnist-pairs", (3, 5), ((2, 1, 0), (0, 0, 1))),
])
def test_compiled_sampler_has_the_walks_distribution(name, label, bins):
    tree = cap.caption_grammar(name, label, bins)
    want = _distribution(tree)
    node = cap._compile(tree, {})
    got = _distribution(node)
    assert set(got) == set(want) and sum(want.values()) == pytest.approx(1.0)
    for t in want:
        assert got[t] == pytest.approx(want[t], rel=1e-9, abs=1e-15), t


def test_prompts():
    prompts = cap.class_prompts("mnist-captions")
    assert len(prompts) == 10 and "a 7" in prompts[7] and "the digit seven" in prompts[7]
    assert "an 8" in prompts[8] and "a one" in prompts[1]
    attribute_words = set().union(*_STATES.values())
    for c, ps in enumerate(prompts):
        assert len(ps) >= 6
        for p in ps:
            assert not set(words(p)) & attribute_words, p
    fashion = cap.class_prompts("fashion-mnist-captions")
    assert "an ankle boot" in fashion[9] and "a t-shirt" in fashion[0]
    pairs = cap.pair_prompts()
    assert len(pairs) == 100 and "a 3 to the left of a 5" in pairs[(3, 5)] and "3 and 5" in pairs[(3, 5)]
    assert "a 5 to the right of a 3" in pairs[(3, 5)]
    assert cap.class_prompts("mnist-pairs")[35] == pairs[(3, 5)]
    thick = cap.attribute_prompts("mnist-captions", 7, "thickness", 2)
    assert "a thick 7" in thick and all(("thick" in t or "bold" in t) for t in thick)
    with pytest.raises(ValueError, match="bin=1 of thickness has no word"):
        cap.attribute_prompts("mnist-captions", 7, "thickness", 1)


def test_held_out_pairs_design():
    held = cap.HELD_OUT_PAIRS
    assert len(set(held)) == 10
    counts = np.bincount(np.ravel(held), minlength=10)
    assert counts.max() <= 2
    assert not any((b, a) in held for a, b in held)


def test_pair_draw_never_trains_on_held_out_pairs():
    labels = np.arange(3000) % 10  # synthetic class labels of a source split
    idx, flags = cap._pairs(0, "train", labels)
    pairs = labels[idx]
    assert idx.shape == (60000, 2) and not flags.any()
    assert not set(map(tuple, pairs.tolist())) & set(cap.HELD_OUT_PAIRS)
    assert len(set(map(tuple, pairs.tolist()))) == 90
    idx_t, flags_t = cap._pairs(0, "test", labels)
    pairs_t = set(map(tuple, labels[idx_t].tolist()))
    assert idx_t.shape == (10000, 2) and len(pairs_t) == 100
    expected = np.array([tuple(p) in set(cap.HELD_OUT_PAIRS) for p in labels[idx_t].tolist()])
    np.testing.assert_array_equal(flags_t, expected)
    assert 0.07 < flags_t.mean() < 0.13
    again, _ = cap._pairs(0, "test", labels)
    np.testing.assert_array_equal(again, idx_t)
    other, _ = cap._pairs(1, "test", labels)
    assert not np.array_equal(other, idx_t)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown name='mnist-caption'.*digits-captions"):
        cap.load_captioned("mnist-caption")
    with pytest.raises(ValueError, match=r"unknown split='valid'"):
        cap.load_captioned("digits-captions", "valid")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        cap.load_captioned("digits-captions", seed=-1)
    with pytest.raises(ValueError, match="num_per_image must be a positive integer"):
        cap.load_captioned("digits-captions").captions(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="edges must be two non-decreasing numbers"):
        cap.attribute_bins([1.0], [2.0, 1.0])


def test_mnist_pairs_test_split(data_dir):
    if not (data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST files not found under {data_dir}")
    pairs = cap.load_captioned("mnist-pairs", "test", data_dir=data_dir, download=False)
    mnist = im.load_mnist("test", data_dir=data_dir, download=False)
    assert pairs.images.shape == (10000, 28, 56, 1) and pairs.labels.shape == (10000, 2)
    seen = {img.tobytes(): int(y) for img, y in zip(mnist.x, mnist.y)}
    for i in range(200):  # each half is an MNIST test image of the stated class
        assert seen[np.ascontiguousarray(pairs.images[i, :, :28]).tobytes()] == pairs.labels[i, 0]
        assert seen[np.ascontiguousarray(pairs.images[i, :, 28:]).tobytes()] == pairs.labels[i, 1]
    halves = at.measure(pairs.images[:50, :, 28:], ["thickness"])["thickness"]
    np.testing.assert_allclose(pairs.attributes["thickness"][:50, 1], halves)
    train = cap.load_captioned("mnist-pairs", "train", data_dir=data_dir, download=False)
    assert train.images.shape == (60000, 28, 56, 1) and not train.held_out.any()
    assert not set(map(tuple, train.labels.tolist())) & set(cap.HELD_OUT_PAIRS)
    held = [tuple(p) in set(cap.HELD_OUT_PAIRS) for p in pairs.labels.tolist()]
    np.testing.assert_array_equal(pairs.held_out, held)
    assert pairs.held_out.sum() > 500
    caps = pairs.captions(jax.random.key(0), 2)
    i = int(np.flatnonzero(pairs.held_out)[0])
    a, b = pairs.labels[i]
    assert any(f"{a} and {b}" in t or "left" in t or "right" in t for t in caps[i])
    assert set(caps[i]) <= set(pairs.all_captions(i))
