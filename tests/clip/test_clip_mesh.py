"""CLIP trained data-parallel: ``fit(..., mesh=)`` on 2 CPU devices matches ``fit`` on one.

Two CPU devices exist only if ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` is set
before JAX is imported, so this file runs itself as a script in a subprocess (the pattern of
tests/train/test_mesh.py) and the test compares what it saved.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

NUM_DEVICES = 2
MAX_LEN, VOCAB = 6, 11


def _worker(out_dir: str) -> None:
    import jax
    import optax

    from genjax import clip
    from genjax.nn.encoders import PooledConvEncoder
    from genjax.nn.transformer import TextTransformer
    from genjax.train import data_mesh, fit
    from genjax.types import Condition

    assert jax.device_count() == NUM_DEVICES, jax.devices()
    model = clip.CLIP(
        image_encoder=PooledConvEncoder(features=(4,), out_dim=8, groups=2),
        text_encoder=TextTransformer(vocab_size=VOCAB, max_len=MAX_LEN, width=8, depth=1, num_heads=2),
        image_shape=(8, 8, 1),
        condition=Condition(kind="tokens", vocab_size=VOCAB, max_len=MAX_LEN, pad_id=0),
        embed_dim=4,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32)
    tokens = rng.integers(3, VOCAB, size=(16, 3, MAX_LEN)).astype(np.int32)
    tokens[..., 0], tokens[..., -1] = 1, 2  # bos ... eos
    # SGD, not Adam: the attention's key bias has an exactly-zero gradient (softmax is shift
    # invariant), and Adam would blow its rounding noise up to full-size steps
    kw = dict(num_steps=3, batch_size=8, optimizer=optax.sgd(0.5), transform=clip.pick_caption, log_every=1,
              steps_per_dispatch=3, checkpoint_every=None, progress=False, seed=0)
    runs = {"ref": fit(model, {"x": x, "cond": tokens}, **kw),
            "mesh": fit(model, {"x": x, "cond": tokens}, mesh=data_mesh(NUM_DEVICES), **kw)}
    arrays, info = {}, {}
    for name, r in runs.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(r.state.params))[0]:
            arrays[f"{name}/{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
        arrays[f"loss_{name}"] = np.array([h["loss"] for h in r.history if h["kind"] == "train"])
    info["mesh_devices"] = len(jax.tree_util.tree_leaves(runs["mesh"].state.params)[0].sharding.device_set)
    np.savez(pathlib.Path(out_dir) / "results.npz", **arrays)
    (pathlib.Path(out_dir) / "info.json").write_text(json.dumps(info))


def test_fit_on_a_mesh_matches_one_device(tmp_path, run_on_host_devices):
    run_on_host_devices(__file__, tmp_path, NUM_DEVICES)
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["mesh_devices"] == NUM_DEVICES
    with np.load(tmp_path / "results.npz") as z:
        arrays = dict(z)
    ref = {k[4:]: v for k, v in arrays.items() if k.startswith("ref/")}
    mesh = {k[5:]: v for k, v in arrays.items() if k.startswith("mesh/")}
    assert ref.keys() == mesh.keys() and ref
    for k in ref:  # the same run; sums reduced in another order
        np.testing.assert_allclose(mesh[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)
    np.testing.assert_allclose(arrays["loss_mesh"], arrays["loss_ref"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(arrays["loss_ref"][0], arrays["loss_ref"][-1])  # it trained


if __name__ == "__main__":
    _worker(sys.argv[1])
