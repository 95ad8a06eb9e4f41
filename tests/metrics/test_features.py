"""The domain feature classifier: the network, a tiny digits training run, the cache
beside the data (reuse, config hashes, corruption), input checks, and the
sample-quality report on its features."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genjax.data
from genjax.metrics import features as F
from genjax.metrics import sample_quality as sq

#: A digits classifier that trains in a few seconds and passes 0.8 test accuracy with
#: a margin (chance is 0.1). Measured with the test XLA flags: seeds 0/1/2 reached
#: 0.961/0.956/0.936 (with learning_rate 1e-3 instead: 0.853/0.794/0.789).
TINY = {
    "features": (8, 16),
    "feature_dim": 32,
    "steps": 300,
    "batch_size": 32,
    "learning_rate": 1e-2,
    "eval_batch_size": 64,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(data_dir, classifier, number of train_classifier calls)`` from one get_classifier."""
    root = tmp_path_factory.mktemp("data")
    calls = []
    real = F.train_classifier

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(F, "train_classifier", counting)
    try:
        clf = F.get_classifier("digits", data_dir=root, progress=False, **TINY)
    finally:
        mp.undo()
    return root, clf, len(calls)


@pytest.fixture
def digits_test():
    return np.array(genjax.data.load_digits("test").x)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("stride", [1, 2])
def test_patch_convolution_equals_lax_conv(rng, stride):
    x = rng.normal(size=(2, 7, 8, 3)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)  # HWIO
    expected = jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    got = F.conv3x3_patches(jnp.asarray(x), stride) @ kernel.reshape(27, 5)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,strides", [((28, 28, 1), (2, 2)), ((8, 8, 1), (1, 2)), ((28, 28, 1), (1, 2, 2))])
def test_feature_classifier_shapes(key, shape, strides):
    module = F.FeatureClassifier(features=(4, 8, 8)[: len(strides)], strides=strides, feature_dim=16)
    x = jnp.zeros((3, *shape))
    params = jax.jit(module.init)(key, x)  # one compilation instead of op-by-op dispatch
    logits, feats = jax.jit(module.apply)(params, x)
    assert logits.shape == (3, 10) and feats.shape == (3, 16)
    assert float(jnp.min(feats)) >= 0.0  # post-ReLU features


# --------------------------------------------------------------------------- training and cache


def test_tiny_digits_classifier_trains_and_is_cached(trained, digits_test):
    root, clf, calls = trained
    assert calls == 1
    assert clf.dataset == "digits" and clf.input_shape == (8, 8, 1) and clf.feature_dim == 32
    assert clf.test_accuracy > 0.8
    # the recorded accuracy is the accuracy of the returned parameters
    acc = float(np.mean(np.argmax(clf.logits(digits_test), 1) == genjax.data.load_digits("test").y))
    assert acc == pytest.approx(clf.test_accuracy, abs=1e-12)

    path = F.cache_path("digits", data_dir=root, **TINY)
    assert path.parent == root / "classifiers"
    assert path.name == f"digits-{clf.config_hash}.msgpack"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["test_accuracy"] == pytest.approx(clf.test_accuracy, abs=0)
    assert meta["seed"] == 0 and meta["dataset"] == "digits"
    assert meta["config"]["steps"] == 300 and meta["config"]["features"] == [8, 16]
    assert meta["config"]["learning_rate"] == 1e-2
    assert meta["config_hash"] == F.config_hash("digits", 0, F.classifier_config("digits", **TINY))
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temp files


def test_save_load_round_trip_gives_identical_logits(trained, digits_test, tmp_path):
    _, clf, _ = trained
    path = clf.save(tmp_path / "sub" / "clf.msgpack")
    loaded = F.load(path)
    np.testing.assert_array_equal(loaded.logits(digits_test), clf.logits(digits_test))
    np.testing.assert_array_equal(loaded.features(digits_test), clf.features(digits_test))
    assert (loaded.test_accuracy, loaded.config_hash, loaded.config) == (clf.test_accuracy, clf.config_hash, clf.config)


def test_batched_embedding_equals_one_forward_pass(trained, digits_test):
    _, clf, _ = trained
    x = digits_test[:150]  # 64 + 64 + 22 (padded last batch)
    feats, logits = clf.embed(x)
    ref_logits, ref_feats = clf.module.apply(clf.params, jnp.asarray(x))
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats, ref_feats, rtol=1e-5, atol=1e-5)
    assert feats.shape == (150, 32) and logits.shape == (150, 10)


def _count_training(monkeypatch, result=None):
    calls = []
    real = F.train_classifier

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return result if result is not None else real(*args, **kwargs)

    monkeypatch.setattr(F, "train_classifier", counting)
    return calls


def test_second_get_classifier_reuses_the_cache(trained, digits_test, monkeypatch):
    root, clf, _ = trained
    path = F.cache_path("digits", data_dir=root, **TINY)
    mtime = path.stat().st_mtime_ns
    calls = _count_training(monkeypatch)
    again = F.get_classifier("digits", data_dir=root, progress=False, **TINY)
    assert calls == []
    assert path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.logits(digits_test[:10]), clf.logits(digits_test[:10]))


def test_config_change_means_another_cache_file(trained, monkeypatch):
    root, clf, _ = trained
    base = F.cache_path("digits", data_dir=root, **TINY)
    assert F.cache_path("digits", data_dir=root, **{**TINY, "steps": 301}) != base
    assert F.cache_path("digits", data_dir=root, seed=1, **TINY) != base
    assert F.cache_path("digits", data_dir=root, **{**TINY, "feature_dim": 33}) != base
    # eval_batch_size does not change the parameters, so it keeps the file
    assert F.cache_path("digits", data_dir=root, **{**TINY, "eval_batch_size": 7}) == base
    calls = _count_training(monkeypatch)
    small = F.get_classifier("digits", data_dir=root, progress=False, **{**TINY, "eval_batch_size": 7})
    assert calls == [] and small.config["eval_batch_size"] == 7
    monkeypatch.undo()
    # a changed setting trains (it does not pick up the existing file)
    calls = _count_training(monkeypatch, result=clf)
    F.get_classifier("digits", data_dir=root, progress=False, **{**TINY, "steps": 301})
    assert len(calls) == 1 and calls[0]["steps"] == 301


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "edit_config", "bad_json"])
def test_corrupted_cache_is_detected_and_retrained(trained, digits_test, tmp_path, monkeypatch, damage):
    _, clf, _ = trained
    path = F.cache_path("digits", data_dir=tmp_path, **TINY)
    clf.save(path)
    side = path.with_suffix(".json")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "flip_byte":
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif damage == "edit_config":
        meta = json.loads(side.read_text())
        meta["config"]["steps"] = 5
        side.write_text(json.dumps(meta))
    else:
        side.write_text("{not json")
    with pytest.raises(F.CorruptClassifierError):
        F.load(path)
    calls = _count_training(monkeypatch, result=clf)
    with pytest.warns(RuntimeWarning, match="unusable cached classifier"):
        got = F.get_classifier("digits", data_dir=tmp_path, progress=False, **TINY)
    assert len(calls) == 1
    # the cache was rewritten and is valid again
    np.testing.assert_array_equal(F.load(path).logits(digits_test[:5]), clf.logits(digits_test[:5]))
    assert got is clf


def test_classifier_input_errors(trained):
    _, clf, _ = trained
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8, 8, 1\)"):
        clf.logits(np.zeros((4, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="x must have rank 4"):
        clf.features(np.zeros((8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\].*\[-1, 1\]"):
        clf.features(np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 8, 8, 1))
    bad = np.zeros((2, 8, 8, 1), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        clf.logits(bad)


def test_unknown_dataset_and_setting_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown name='cifar10'; valid choices: \['digits', 'mnist', 'fashion-mnist'\]"):
        F.get_classifier("cifar10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="binarized-mnist.*has no labels.*'mnist' classifier"):
        F.train_classifier("binarized-mnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"unknown classifier setting\(s\) \['width'\]"):
        F.get_classifier("digits", data_dir=tmp_path, width=3)
    with pytest.raises(ValueError, match="strides must be a sequence of positive ints, one per entry"):
        F.classifier_config("digits", features=(8, 16, 16))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        F.get_classifier("digits", data_dir=tmp_path, steps=0)
    assert not (tmp_path / "classifiers").exists()  # nothing was trained or written


# --------------------------------------------------------------------------- sample quality on its features


def test_sample_quality_ranks_noise_below_real_data(trained, digits_test, rng):
    _, clf, _ = trained
    real = digits_test[:120]
    base = sq.real_vs_real_baseline(digits_test[120:360], clf, kid_subsets=5, kid_subset_size=50)
    noise = rng.uniform(0, 1, size=(120, 8, 8, 1)).astype(np.float32)
    bad = sq.sample_quality(real, noise, clf, kid_subsets=5, kid_subset_size=50)
    assert base["num_real"] == base["num_fake"] == 120
    assert base["classifier"]["config_hash"] == clf.config_hash
    assert bad["fid"] > 5 * base["fid"]
    assert bad["kid_mean"] - 3 * bad["kid_std"] > base["kid_mean"] + 3 * base["kid_std"]
    assert bad["precision"] < 0.5 * base["precision"]
    assert bad["coverage"] < 0.5 * base["coverage"]
    assert base["precision"] > 0.5 and base["recall"] > 0.5
    # real digits are spread over the 10 classes; noise is not recognised as digits
    assert base["class_histogram"]["classes_covered"] == 10
    assert base["classifier_score"] > 2.0
    assert bad["classifier_score"] < base["classifier_score"]
    # same numbers as the feature-level function on the classifier's features
    f_real, l_real = clf.embed(real)
    f_noise, l_noise = clf.embed(noise)
    again = sq.sample_quality_from_features(
        f_real, f_noise, real_logits=l_real, fake_logits=l_noise, kid_subsets=5, kid_subset_size=50
    )
    assert again["fid"] == pytest.approx(bad["fid"], rel=1e-12)
    assert again["classifier_score"] == pytest.approx(bad["classifier_score"], rel=1e-12)
    # settings are checked before the classifier runs (a wrong-shape image set is not reached)
    with pytest.raises(ValueError, match="k_density_coverage must be a positive integer"):
        sq.sample_quality(real, np.zeros((3, 28, 28, 1)), clf, k_density_coverage=0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8, 8, 1\)"):
        sq.sample_quality(real, np.zeros((30, 28, 28, 1)), clf)


def test_read_only_data_dir_caches_in_the_user_cache(trained, tmp_path, monkeypatch):
    """A read-only data directory (the shared, checksummed copy) keeps the classifier in
    ``$XDG_CACHE_HOME/genjax/classifiers``; the next call finds it there without training."""
    _, clf, _ = trained
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data_dir = tmp_path / "readonly-data"
    monkeypatch.setattr(F, "_writable", lambda d: not str(d).startswith(str(data_dir)))
    calls = []
    monkeypatch.setattr(F, "train_classifier", lambda *a, **k: calls.append(k) or clf)
    F.get_classifier("digits", data_dir=data_dir, progress=False, **TINY)
    name = F.cache_path("digits", data_dir=data_dir, **TINY).name
    assert len(calls) == 1 and (tmp_path / "cache" / "genjax" / "classifiers" / name).is_file()
    assert not data_dir.exists()
    F.get_classifier("digits", data_dir=data_dir, progress=False, **TINY)
    assert len(calls) == 1  # found in the fallback cache


# --------------------------------------------------------------------------- trained through fit
def _pre_fit_training(name: str, seed: int, config: dict):
    """The classifier's own training loop as it was before it ran through ``genjax.train.fit``
    (a ``lax.scan`` of Adam steps over host-drawn epoch permutations and ``split(aug_key,
    steps)``): the weights every published FID was computed with."""
    import math

    import optax

    from genjax.data import images as _images

    train = _images.load_image_dataset(name, "train")
    module, input_shape = F._build(name, config)
    steps, bs = config["steps"], config["batch_size"]
    init_key, aug_key = jax.random.split(jax.random.PRNGKey(seed))
    params = module.init(init_key, jnp.zeros((1, *input_shape), jnp.float32))
    tx = optax.adam(optax.cosine_decay_schedule(config["learning_rate"], steps))
    opt_state = tx.init(params)

    def step(carry, inp):
        params, opt_state, x_all, y_all = carry
        idx, key = inp
        x = F._shift_images(key, x_all[idx], config["shift"])

        def loss_fn(p):
            logits, _ = module.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits=logits, labels=y_all[idx]).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, x_all, y_all), None

    run = jax.jit(lambda p, o, x, y, idx, keys: jax.lax.scan(step, (p, o, x, y), (idx, keys))[0][:2])
    rng = np.random.default_rng(seed)
    n = len(train)
    per_epoch = n // bs
    idx_all = np.concatenate([rng.permutation(n)[: per_epoch * bs].reshape(per_epoch, bs)
                              for _ in range(math.ceil(steps / per_epoch))])[:steps].astype(np.int32)
    keys_all = jax.random.split(aug_key, steps)
    x_all, y_all = jnp.asarray(train.x), jnp.asarray(train.y)
    for done in range(0, steps, 100):
        k = min(100, steps - done)
        params, opt_state = run(params, opt_state, x_all, y_all, jnp.asarray(idx_all[done:done + k]), keys_all[done:done + k])
    return params


def test_split_keys_are_fold_in_keys():
    """``fit``'s step key ``fold_in(key, s)`` is ``split(key, n)[s]``, the key the classifier's
    own loop drew (threefry's partitionable split): what keeps its weights unchanged."""
    key = jax.random.PRNGKey(3)
    keys = jax.random.split(key, 257)
    for s in (0, 1, 100, 256):
        np.testing.assert_array_equal(keys[s], jax.random.fold_in(key, s))


def test_classifier_trained_by_fit_has_the_weights_of_its_own_loop():
    config = F.classifier_config("digits", **dict(TINY, steps=150))  # two chunks: 100 + 50
    new = F.train_classifier("digits", seed=1, progress=False, **dict(TINY, steps=150))
    ref = _pre_fit_training("digits", 1, config)
    new_leaves, ref_leaves = jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(ref)
    assert len(new_leaves) == len(ref_leaves)
    for a, b in zip(new_leaves, ref_leaves):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
