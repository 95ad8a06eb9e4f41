"""Text-to-image scores (issues 19, 20): prompt sets checked against their own text, each
score against a hand count on made-up images whose attributes are known by construction,
and the CLIP figures against plain NumPy."""

from __future__ import annotations

import json
import re

import jax
import numpy as np
import pytest

from genjax.data.captions import DIGIT_WORDS, HELD_OUT_PAIRS
from genjax.metrics import text_to_image as t2i

_NUMBER = {**{str(d): d for d in range(10)}, **{w: d for d, w in enumerate(DIGIT_WORDS)}}
#: words that name an asked bin (hard-coded here, not read from captions.py)
_BIN_WORDS = {("thickness", 0): {"thin", "fine"}, ("thickness", 2): {"thick", "bold"},
              ("slant", 0): {"left"}, ("slant", 2): {"right"}}
_ALL_BIN_WORDS = set().union(*_BIN_WORDS.values()) | {"left-leaning", "right-leaning", "left-slanted", "right-slanted"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9-]+", text.lower())


def _digits(text: str) -> list[int]:
    """The digits a prompt names, left to right in the text."""
    return [_NUMBER[w] for w in _words(text) if w in _NUMBER]


def _mentions(text: str, words: set[str]) -> bool:
    ws = set(_words(text)) | {p for w in _words(text) for p in w.split("-")}
    return bool(ws & words)


def test_single_prompt_set_counts_and_its_labels_are_the_digits_the_text_names():
    ps = t2i.prompt_set("mnist-captions")
    assert ps.kind == "single" and len(ps) == 10 * 100 + 10 * 4 * 20 == 1800
    assert ps.labels.shape == (1800,) and ps.bin.shape == (1800,) and not ps.held_out.any()
    plain = np.array([a is None for a in ps.attribute])
    assert plain[:1000].all() and not plain[1000:].any()
    assert np.array_equal(np.bincount(ps.labels[plain]), [100] * 10) and (ps.bin[plain] == -1).all()
    for text, label, attribute, b in zip(ps.prompts, ps.labels, ps.attribute, ps.bin):
        assert _digits(text) == [label], text
        if attribute is None:
            assert not _mentions(text, _ALL_BIN_WORDS), text
        else:
            assert _mentions(text, _BIN_WORDS[(attribute, int(b))]), (text, attribute, b)
            other = _BIN_WORDS[(attribute, 2 - int(b))]
            assert not _mentions(text, other), (text, attribute, b)
    cells = {(int(c), a, int(b)) for c, a, b in zip(ps.labels[~plain], np.array(ps.attribute)[~plain], ps.bin[~plain])}
    assert len(cells) == 10 * 4  # every (digit, attribute, bin) ...
    for c, a, b in cells:  # ... per_attribute times
        assert sum(1 for x in zip(ps.labels, ps.attribute, ps.bin) if x == (c, a, b)) == 20
    assert len(set(ps.prompts[:100])) > 3  # drawn across templates, not one repeated
    # fixed by the seed
    assert t2i.prompt_set("mnist-captions").prompts == ps.prompts
    assert t2i.prompt_set("mnist-captions", seed=1).prompts != ps.prompts
    small = t2i.prompt_set("digits-captions", per_digit=3, per_attribute=1)
    assert len(small) == 30 + 40 and all(_digits(p) == [c] for p, c in zip(small.prompts, small.labels))


def test_pair_prompt_set_names_the_pairs_in_order():
    ps = t2i.prompt_set("mnist-pairs")
    assert ps.kind == "pairs" and len(ps) == 400 and ps.labels.shape == (400, 2)
    assert set(ps.attribute) == {None} and (ps.bin == -1).all()
    held = {tuple(p) for p in ps.labels[ps.held_out]}
    seen = {tuple(p) for p in ps.labels[~ps.held_out]}
    assert held == set(HELD_OUT_PAIRS) and seen == {(b, a) for a, b in HELD_OUT_PAIRS}
    assert ps.held_out.sum() == 200
    for text, (left, right) in zip(ps.prompts, ps.labels):
        named = _digits(text)
        if "to the right of" in text:  # "a 5 to the right of a 0" names the right digit first
            named = named[::-1]
        assert named == [left, right], text
    only = t2i.prompt_set("mnist-pairs", per_pair=3, seen_pairs=False)
    assert len(only) == 30 and only.held_out.all()
    sub = ps.subset(ps.held_out)
    assert len(sub) == 200 and sub.prompts == tuple(p for p, h in zip(ps.prompts, ps.held_out) if h)
    assert set(sub.extra_fields()) == {"attribute", "bin", "held_out"} and sub.extra_fields()["held_out"].all()


def test_prompt_set_bad_input():
    with pytest.raises(ValueError, match="unknown name 'cifar'"):
        t2i.prompt_set("cifar")
    with pytest.raises(ValueError, match="per_pair must be a positive integer"):
        t2i.prompt_set("mnist-pairs", per_pair=0)
    with pytest.raises(ValueError, match="both 0"):
        t2i.prompt_set("mnist-captions", per_digit=0, per_attribute=0)
    with pytest.raises(ValueError, match=r"mask must be a bool array of shape \(30,\)"):
        t2i.prompt_set("digits-captions", per_digit=3, per_attribute=0).subset(np.ones(3, bool))


def test_prompt_accuracy_by_hand_and_pairs_need_the_order():
    assert t2i.prompt_accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    pred = np.array([[1, 2], [2, 1], [3, 3]])
    assert t2i.prompt_accuracy(pred, np.array([[1, 2], [1, 2], [3, 3]])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same non-empty shape"):
        t2i.prompt_accuracy(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="labels must be int class labels"):
        t2i.prompt_accuracy(np.array([1, 2]), np.array([1.0, 2.0]))


def test_split_pairs_cuts_the_canvas_in_two(rng):
    x = rng.random((2, 4, 8, 1))
    left, right = t2i.split_pairs(x)
    np.testing.assert_array_equal(left, x[:, :, :4])
    np.testing.assert_array_equal(right, x[:, :, 4:])
    with pytest.raises(ValueError, match=r"pair images of shape \(n, H, 2H\)"):
        t2i.split_pairs(np.zeros((2, 28, 28, 1)))


def _bar(width: int, shear: float = 0.0, side: int = 28, length: int = 16) -> np.ndarray:
    """A bar ``width`` px wide and ``length`` tall, each row shifted right by ``shear`` px per
    row above the centre (thickness ``width`` exactly when ``shear = 0``; slant ~ ``shear``)."""
    img = np.zeros((side, side), np.float32)
    top = (side - length) // 2
    for r in range(top, top + length):
        c = side // 2 - width // 2 + int(round(shear * (side / 2 - r)))
        img[r, c:c + width] = 1.0
    return img


EDGES = {"thickness": np.array([2.5, 4.0]), "slant": np.array([-0.2, 0.2])}
# (image, asked attribute, asked bin, right?): thickness 2 -> bin 0, 3 -> 1, 5 -> 2; slant -0.5 -> bin 0
CASES = [
    (_bar(2), "thickness", 0, True),
    (_bar(2), "thickness", 2, False),
    (_bar(5), "thickness", 2, True),
    (_bar(3), "thickness", 0, False),
    (_bar(3, shear=-0.5), "slant", 0, True),
    (_bar(3, shear=-0.5), "slant", 2, False),
    (_bar(3, shear=0.5), "slant", 2, True),
    (np.zeros((28, 28), np.float32), None, -1, None),  # asks nothing: left out
]


def test_attribute_accuracy_on_bars_of_known_width_and_shear():
    x = np.stack([c[0] for c in CASES])[..., None]
    got = t2i.attribute_accuracy(x, [c[1] for c in CASES], np.array([c[2] for c in CASES]), EDGES)
    assert (got["attribute_acc"], got["attribute_acc_hits"], got["attribute_acc_n"]) == (4 / 7, 4, 7)
    assert got["by"] == {
        "slant/0": {"acc": 1.0, "hits": 1, "n": 1}, "slant/2": {"acc": 0.5, "hits": 1, "n": 2},
        "thickness/0": {"acc": 0.5, "hits": 1, "n": 2}, "thickness/2": {"acc": 0.5, "hits": 1, "n": 2},
    }
    with pytest.raises(ValueError, match=r"no tercile edges for the asked attribute\(s\) \['slant'\]"):
        t2i.attribute_accuracy(x, [c[1] for c in CASES], np.array([c[2] for c in CASES]), {"thickness": EDGES["thickness"]})
    with pytest.raises(ValueError, match="one entry per image"):
        t2i.attribute_accuracy(x, ["thickness"], np.array([0]), EDGES)


def test_clip_score_is_the_mean_cosine_of_matching_rows(rng):
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ref = np.mean([a[i] @ b[i] / np.linalg.norm(a[i]) / np.linalg.norm(b[i]) for i in range(5)])
    assert t2i.clip_score(a, b) == pytest.approx(ref, rel=1e-12)
    assert t2i.clip_score(3.0 * a, 0.2 * b) == pytest.approx(ref, rel=1e-12)  # normalised here
    assert t2i.clip_score(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        t2i.clip_score(a, b[:4])


def _onehot(idx: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[idx]


def test_r_precision_draws_its_distractors_from_other_classes(key):
    ps = t2i.prompt_set("digits-captions", per_digit=2, per_attribute=1)
    text = _onehot(ps.labels, 10)  # every prompt of a digit the same: a same-digit distractor would tie
    assert t2i.prompt_r_precision(key, text, text, ps, num_candidates=10) == 1.0
    wrong = _onehot((ps.labels + 1) % 10, 10)  # each image is the next digit's prompt
    assert t2i.prompt_r_precision(key, wrong, text, ps, num_candidates=10) == 0.0
    # pairs: the classes are ordered pairs; the reversed pair is a distractor too
    pp = t2i.prompt_set("mnist-pairs", per_pair=2)
    cls = {p: i for i, p in enumerate(dict.fromkeys(map(tuple, pp.labels.tolist())))}
    text = _onehot(np.array([cls[tuple(p)] for p in pp.labels.tolist()]), 20)
    rev = _onehot(np.array([cls[(b, a)] for a, b in pp.labels.tolist()]), 20)
    assert t2i.prompt_r_precision(key, text, text, pp, num_candidates=20) == 1.0
    assert t2i.prompt_r_precision(key, rev, text, pp, num_candidates=20) == 0.0
    with pytest.raises(ValueError, match=r"num_candidates must be in \[2, 10\]"):
        t2i.prompt_r_precision(key, _onehot(ps.labels, 10), _onehot(ps.labels, 10), ps, num_candidates=11)


def test_r_precision_against_numpy_when_prompts_of_a_class_and_group_share_an_embedding(key, rng):
    ps = t2i.prompt_set("digits-captions", per_digit=2, per_attribute=1)
    groups = [(a, int(b)) for a, b in zip(ps.attribute, ps.bin)]
    gid = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    T, U = rng.normal(size=(10, 6)), rng.normal(size=(len(gid), 6))
    text = T[ps.labels] + U[[gid[g] for g in groups]]
    image = text + rng.normal(size=text.shape) * 1.5

    def cos(u, v):
        return u @ v / np.linalg.norm(u) / np.linalg.norm(v)

    # with R = C every other class is a candidate, by the prompt of its class in the same group
    hits = [cos(image[i], text[i]) > max(cos(image[i], T[c] + U[gid[groups[i]]]) for c in range(10) if c != ps.labels[i])
            for i in range(len(ps))]
    got = t2i.prompt_r_precision(key, image, text, ps, num_candidates=10)
    assert got == pytest.approx(np.mean(hits), abs=1e-6) and 0 < got < 1
    again = t2i.prompt_r_precision(key, image, text, ps, num_candidates=4)
    assert again == t2i.prompt_r_precision(key, image, text, ps, num_candidates=4)  # fixed by the key
    assert again >= got  # fewer candidates, never harder


def _single_case():
    """A small mnist-captions prompt set, samples whose attributes are known (CASES-like), the
    classifier's answers, and the hand counts."""
    ps = t2i.prompt_set("mnist-captions", per_digit=2, per_attribute=1)  # 20 plain + 40 attribute
    good = {("thickness", 0): _bar(2), ("thickness", 2): _bar(5), ("slant", 0): _bar(3, shear=-0.5),
            ("slant", 2): _bar(3, shear=0.5)}
    bad = {("thickness", 0): _bar(5), ("thickness", 2): _bar(3), ("slant", 0): _bar(3), ("slant", 2): _bar(3, shear=-0.5)}
    x = np.zeros((len(ps), 28, 28, 1), np.float32)
    right_attr = []
    for i, (a, b) in enumerate(zip(ps.attribute, ps.bin)):
        if a is not None:
            ok = ps.labels[i] % 2 == 0  # even digits drawn right
            x[i, ..., 0] = (good if ok else bad)[(a, int(b))]
            right_attr.append(ok)
    pred = ps.labels.copy()
    pred[[0, 1, 2]] = 9  # two of digit 0's plain prompts and one of digit 1's wrong
    pred[25] = 9  # an attribute prompt wrong
    return ps, x, pred, np.array(right_attr)


def test_text_to_image_metrics_single_by_hand(key, rng):
    ps, x, pred, right_attr = _single_case()
    assert [int(c) for c in ps.labels[:3]] == [0, 0, 1]
    calls = []
    m = t2i.text_to_image_metrics(x, ps, classify=lambda im: calls.append(im.shape) or pred, edges=EDGES)
    assert calls == [(60, 28, 28, 1)]
    assert (m["prompt_acc"], m["prompt_acc_hits"], m["prompt_acc_n"]) == (17 / 20, 17, 20)
    assert (m["prompt_acc_all_hits"], m["prompt_acc_all_n"]) == (56, 60)
    assert m["per_digit"]["0"] == {"acc": 0.0, "hits": 0, "n": 2} and m["per_digit"]["1"] == {"acc": 0.5, "hits": 1, "n": 2}
    assert m["per_digit"]["5"] == {"acc": 1.0, "hits": 2, "n": 2} and len(m["per_digit"]) == 10
    assert (m["attribute_acc_hits"], m["attribute_acc_n"]) == (int(right_attr.sum()), 40) == (20, 40)
    assert m["attribute_acc_by"]["thickness/0"] == {"acc": 0.5, "hits": 5, "n": 10}
    assert "clip_score" not in m
    ie, te = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    m = t2i.text_to_image_metrics(x, ps, classify=lambda im: pred, edges=EDGES, image_emb=ie, text_emb=te, key=key)
    assert m["clip_score"] == t2i.clip_score(ie, te) and m["r_precision_candidates"] == 10
    assert m["r_precision"] == t2i.prompt_r_precision(key, ie, te, ps, num_candidates=10)
    json.dumps(m)  # a result payload as it is


def test_text_to_image_metrics_pairs_by_hand():
    ps = t2i.prompt_set("mnist-pairs", per_pair=1)  # 10 held-out + 10 seen
    x = np.zeros((20, 28, 56, 1), np.float32)
    left, right = ps.labels[:, 0].copy(), ps.labels[:, 1].copy()
    left[0] = right[0]  # held-out pair 0: left digit wrong
    left[1], right[1] = right[1], left[1]  # held-out pair 1: both digits, swapped
    right[15] = (right[15] + 1) % 10  # a seen pair: right digit wrong
    answers = iter([left, right])
    calls = []

    def classify(im):
        calls.append(im.shape)
        return next(answers)

    m = t2i.text_to_image_metrics(x, ps, classify=classify, edges=EDGES)
    assert calls == [(20, 28, 28, 1)] * 2
    assert (m["prompt_acc_hits"], m["prompt_acc_n"]) == (17, 20)
    assert (m["held_out_acc"], m["held_out_acc_hits"], m["held_out_acc_n"]) == (0.8, 8, 10)
    assert (m["seen_acc"], m["seen_acc_n"]) == (0.9, 10)
    assert (m["digit_acc_hits"], m["digit_acc_n"]) == (40 - 4, 40)
    a, b = ps.labels[1]
    assert m["per_pair"][f"{a}-{b}"] == {"acc": 0.0, "hits": 0, "n": 1}
    assert "attribute_acc" not in m


def test_text_to_image_metrics_bad_input(key):
    ps, x, pred, _ = _single_case()
    ok = dict(classify=lambda im: pred, edges=EDGES)
    with pytest.raises(ValueError, match=r"samples must have shape \(60, H, W, 1\)"):
        t2i.text_to_image_metrics(x[:5], ps, **ok)
    with pytest.raises(TypeError, match="divide by 255"):
        t2i.text_to_image_metrics((x * 255).astype(np.uint8), ps, **ok)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        t2i.text_to_image_metrics(x * 2 - 0.5, ps, **ok)
    with pytest.raises(ValueError, match=r"classify must return int labels of shape \(60,\)"):
        t2i.text_to_image_metrics(x, ps, classify=lambda im: pred[:3], edges=EDGES)
    e = np.ones((60, 3))
    with pytest.raises(ValueError, match="give both"):
        t2i.text_to_image_metrics(x, ps, image_emb=e, **ok)
    with pytest.raises(ValueError, match="key is required"):
        t2i.text_to_image_metrics(x, ps, image_emb=e, text_emb=e, **ok)
    with pytest.raises(TypeError, match="prompt_set must be a PromptSet"):
        t2i.text_to_image_metrics(x, list(ps.prompts), **ok)
