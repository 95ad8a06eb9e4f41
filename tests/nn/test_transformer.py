"""The text transformer (issue 18): the pre-norm block against a plain-NumPy computation
(LayerNorm, multi-head attention, exact GELU), padding that never changes the output, the
causal mask, position embeddings and permutations, the pooling, and the error messages."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.nn import TextTransformer, TransformerBlock
from genjax.nn.attention import dot_product_attention

V, MAX_LEN = 12, 10


def tiny(**kw) -> TextTransformer:
    return TextTransformer(**{"vocab_size": V, "max_len": MAX_LEN, "width": 8, "depth": 2, "num_heads": 2, **kw})


def _tokens(rng, lengths, pad_to):
    """bos, random ids in [3, V), eos, then padding to ``pad_to``."""
    out = np.zeros((len(lengths), pad_to), np.int32)
    for i, n in enumerate(lengths):
        out[i, : n + 2] = [1, *rng.integers(3, V, size=n), 2]
    return out


def _np_attention(q, k, v, allowed):
    """Per example and head: softmax over the allowed keys of q k^T / sqrt(d), times v (float64)."""
    b, n, h, d = q.shape
    out = np.zeros((b, n, h, d))
    for i in range(b):
        for j in range(h):
            for t in range(n):
                keep = allowed[i, t]
                if keep.any():
                    s = k[i, keep, j] @ q[i, t, j] / np.sqrt(d)
                    w = np.exp(s - s.max())
                    out[i, t, j] = (w / w.sum()) @ v[i, keep, j]
    return out


def _np_block(p, x, mask, heads, causal):
    """The pre-norm block by hand from its parameters (float64)."""
    def ln(a, q):
        mu, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
        return (a - mu) / np.sqrt(var + 1e-6) * q["scale"] + q["bias"]

    def dense(a, q):
        return a @ q["kernel"] + q["bias"]

    b, n, w = x.shape
    allowed = np.broadcast_to(mask[:, None, :], (b, n, n)).copy()
    if causal:
        allowed &= np.tril(np.ones((n, n), bool))[None]
    h = ln(x, p["norm_attn"])
    a = p["attn"]
    split = lambda t: t.reshape(b, n, heads, w // heads)  # noqa: E731
    att = _np_attention(split(dense(h, a["q"])), split(dense(h, a["k"])), split(dense(h, a["v"])), allowed)
    x = x + dense(att.reshape(b, n, w), a["out"])
    h = dense(ln(x, p["norm_mlp"]), p["mlp_in"])
    gelu = 0.5 * h * (1.0 + np.vectorize(math.erf)(h / np.sqrt(2.0)))
    return x + dense(gelu, p["mlp_out"])


@pytest.mark.parametrize("causal", [False, True])
def test_block_matches_numpy(key, rng, causal):
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    block = TransformerBlock(width=8, num_heads=2, mlp_ratio=3, causal=causal)
    params = block.init(key, jnp.asarray(x), jnp.asarray(mask))
    # perturb the LayerNorm parameters so that their use is checked too
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * jnp.asarray(rng.normal(size=a.shape), a.dtype), params)
    got = np.asarray(block.apply(params, jnp.asarray(x), jnp.asarray(mask)))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["params"])
    ref = _np_block(p, x.astype(np.float64), mask, 2, causal)
    assert got.shape == (2, 5, 8)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_causal_dot_product_attention_matches_numpy(rng):
    q, k, v = (rng.normal(size=(2, 4, 2, 3)).astype(np.float32) for _ in range(3))
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)  # row 1: query 0 sees no key at all -> 0
    allowed = mask[:, None, :] & np.tril(np.ones((4, 4), bool))[None]
    got = np.asarray(dot_product_attention(*map(jnp.asarray, (q, k, v, mask)), causal=True))
    np.testing.assert_allclose(got, _np_attention(q, k, v, allowed), rtol=1e-5, atol=1e-6)
    assert np.all(got[1, 0] == 0.0)
    with pytest.raises(ValueError, match="causal attention needs as many queries as keys"):
        dot_product_attention(jnp.asarray(q), jnp.asarray(k[:, :3]), jnp.asarray(v[:, :3]), causal=True)


@pytest.mark.parametrize("causal, pooling", [(False, "eos"), (True, "mean")])
def test_padding_never_changes_the_output(key, rng, causal, pooling):
    enc = tiny(causal=causal, pooling=pooling)
    tokens = _tokens(rng, [3, 5, 0], pad_to=7)
    params = enc.init(key, tokens)
    states, pooled = enc.apply(params, tokens)
    longer = np.pad(tokens, ((0, 0), (0, 3)))  # three more pad tokens
    states2, pooled2 = enc.apply(params, longer)
    # equal up to float32 rounding: XLA sums a longer row (extra exact zeros) in another order
    # (seed 1095409526: 1.3e-6 on an element of 0.019, so atol 1e-5; a leak of a pad token is O(0.1))
    np.testing.assert_allclose(np.asarray(states2[:, :7]), np.asarray(states), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pooled2), np.asarray(pooled), rtol=1e-5, atol=1e-5)
    pad = tokens == 0
    assert np.all(np.asarray(states)[pad] == 0.0) and np.all(np.asarray(states2)[:, 7:] == 0.0)
    # ... whatever the padding embedding holds
    params["params"]["token_embed"]["embedding"] = params["params"]["token_embed"]["embedding"].at[0].set(50.0)
    states3, pooled3 = enc.apply(params, tokens)
    np.testing.assert_allclose(np.asarray(states3), np.asarray(states), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pooled3), np.asarray(pooled), rtol=0, atol=1e-6)


def test_causal_mask_later_tokens_never_change_earlier_states(key, rng):
    tokens = _tokens(rng, [6, 6], pad_to=8)
    changed = tokens.copy()
    changed[:, 4] = np.where(tokens[:, 4] == 5, 6, 5)
    for causal in (True, False):
        enc = tiny(causal=causal)
        params = enc.init(key, tokens)
        before, after = (np.asarray(enc.apply(params, t)[0]) for t in (tokens, changed))
        assert np.abs(after[:, 4:] - before[:, 4:]).max() > 1e-4  # the change is seen from position 4 on
        early = np.abs(after[:, :4] - before[:, :4]).max()
        if causal:
            assert early <= 1e-6
        else:  # the control: bidirectional attention lets it reach back
            assert early > 1e-4


def test_positions_and_permutations(key, rng):
    tokens = np.array([[4, 5, 6, 7, 8, 0], [9, 3, 10, 11, 0, 0]], np.int32)
    perm = np.array([[3, 0, 4, 1, 2, 5], [2, 0, 3, 1, 4, 5]])  # permutes the real tokens only
    shuffled = np.take_along_axis(tokens, perm, axis=1)
    with_pos = tiny(pooling="mean")
    params = with_pos.init(key, tokens)
    a, b = (np.asarray(with_pos.apply(params, t)[1]) for t in (tokens, shuffled))
    assert np.abs(a - b).max() > 1e-4
    no_pos = tiny(pooling="mean", use_positions=False)
    params = no_pos.init(key, tokens)
    assert "pos_embed" not in params["params"]
    (sa, a), (sb, b) = (map(np.asarray, no_pos.apply(params, t)) for t in (tokens, shuffled))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(sb, np.take_along_axis(sa, perm[..., None], axis=1), rtol=0, atol=1e-5)


def test_pooling_reads_eos_or_the_masked_mean(key, rng):
    tokens = np.array([[1, 5, 6, 2, 0, 0], [1, 7, 8, 9, 10, 0], [1, 2, 4, 2, 0, 0]], np.int32)  # row 1: no eos
    enc = tiny()
    params = enc.init(key, tokens)
    states, pooled = map(np.asarray, enc.apply(params, tokens))
    np.testing.assert_array_equal(pooled, states[[0, 1, 2], [3, 4, 1]])  # first eos; else the last real token
    states_m, mean = map(np.asarray, tiny(pooling="mean").apply(params, tokens))
    np.testing.assert_array_equal(states_m, states)
    real = (tokens != 0)[..., None]
    np.testing.assert_allclose(mean, (states * real).sum(1) / real.sum(1), rtol=1e-6, atol=1e-6)
    assert states.shape == (3, 6, 8) and pooled.shape == (3, 8)


def test_errors_name_the_argument(key):
    enc = tiny()
    ok = np.array([[1, 3, 2]], np.int32)
    params = enc.init(key, ok)
    with pytest.raises(ValueError, match=r"tokens must be int tokens in \[0, 12\) of shape \(1, L\), L <= 10"):
        enc.apply(params, np.ones((1, MAX_LEN + 1), np.int32))
    with pytest.raises(ValueError, match="tokens must be int tokens"):
        enc.apply(params, ok.astype(np.float32))
    with pytest.raises(ValueError, match="tokens must be int tokens"):
        enc.apply(params, np.array([[1, V, 2]], np.int32))
    with pytest.raises(ValueError, match="tokens must be int tokens"):
        enc.apply(params, ok[0])
    with pytest.raises(ValueError, match="width=10 must be divisible by num_heads=4"):
        tiny(width=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown TextTransformer.pooling 'cls'; valid choices: eos, mean"):
        tiny(pooling="cls")
    with pytest.raises(ValueError, match="eos_id must differ from pad_id"):
        tiny(eos_id=0)
    with pytest.raises(ValueError, match=r"eos_id must be an int in \[0, 12\)"):
        tiny(eos_id=12)
    with pytest.raises(ValueError, match=r"TransformerBlock: x must have shape \(batch, L, 8\)"):
        TransformerBlock(width=8, num_heads=2).init(key, jnp.zeros((2, 3, 4)))
