"""CLI spec of CLIP: build, training data (K captions per image), evaluation, pictures.

``genjax train clip --data mnist-captions`` trains on every train image with ``K`` captions
drawn once (fixed key; ``fit``'s transform :func:`genjax.clip.pick_caption` picks one per image
per step); ``genjax eval RUN`` prints the figures of :func:`clip_metrics`.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import optax

from genjax import viz
from genjax._xla import chunked_map
from genjax.clip import CLIP, clip_model, pick_caption, prompt_ensemble
from genjax.data import captions as caption_data
from genjax.data.tokenizer import caption_tokenizer
from genjax.metrics.retrieval import recall_at_k, zero_shot_accuracy
from genjax.registry.core import DataBundle, ModelSpec, Option, int_tuple

#: The caption draw of the training data (fixed: the run's seed orders batches and picks).
CAPTION_KEY = 2018
#: Training defaults of `genjax train clip`.
_DEFAULTS = {"steps": 3000, "batch_size": 256, "lr": 2e-3}
#: Images embedded per jitted call.
CHUNK = 1000


def _pool_grid(data: DataBundle, value: str):
    if value == "global":
        return None
    if value == "auto":  # side-by-side pairs need their layout: one cell per half
        return (1, 2) if data.name == "mnist-pairs" else None
    grid = int_tuple(value)
    if len(grid) != 2:
        raise ValueError(f"--pool-grid must be 'auto', 'global' or two integers 'gh,gw', got {value!r}")
    return grid


def _build(data: DataBundle, opts: dict) -> CLIP:
    if data.kind != "image":
        raise ValueError(f"clip embeds images; data {data.name!r} is {data.kind} data "
                         f"(use one of {', '.join(caption_data.CAPTIONED_DATASETS)})")
    tok = caption_tokenizer()
    return clip_model(data.shape, vocab_size=tok.vocab_size, max_len=tok.max_len, pad_id=tok.pad_id,
                      eos_id=tok.eos_id, size=opts["size"], pool_grid=_pool_grid(data, opts["pool_grid"]),
                      tokenizer=tok)


def _captioned(data: DataBundle):
    if data.captioned is None:
        raise ValueError(f"clip trains on image-caption pairs: data {data.name!r} has no captions; use --data "
                         f"one of {', '.join(caption_data.CAPTIONED_DATASETS)}")
    return data.captioned


def caption_tokens(split: caption_data.CaptionedData, key, num_per_image: int, num: int | None = None) -> np.ndarray:
    """``(n, K, L)`` int32 tokens of ``K`` captions per image drawn from ``key`` (first ``num`` images)."""
    captions = split.captions(key, num_per_image)[:num]
    tok = caption_tokenizer()
    flat = tok.encode([c for per_image in captions for c in per_image])
    return flat.reshape(len(captions), num_per_image, -1)


def _train_data(data: DataBundle, opts: dict, num: int | None = None) -> dict:
    train, _ = _captioned(data)
    tokens = caption_tokens(train, jax.random.PRNGKey(CAPTION_KEY), opts["captions_per_image"], num)
    return {"x": np.asarray(train.images[: len(tokens)]), "cond": tokens}


def _transform(model, data: DataBundle):
    return pick_caption


def _optimizer(config: dict):
    """Adam on a warm-up-then-cosine learning rate (CLIP trains with a cosine schedule) over
    the run's ``steps`` (the spec's default when the config has none, as in ``build_model``)."""
    steps = config.get("steps", _DEFAULTS["steps"])
    warmup = min(500, max(1, steps // 20))
    lr = optax.warmup_cosine_decay_schedule(0.0, config["lr"], warmup, max(steps, warmup + 1), end_value=config["lr"] * 0.01)
    return optax.adam(lr)


def _chunked(fn, params, rows: np.ndarray) -> np.ndarray:
    """``fn(params, rows)`` on ``CHUNK`` rows per jitted call (``_xla.chunked_map``)."""
    return chunked_map(fn, params, rows, chunk=CHUNK)


def embed_images(model: CLIP, params, images: np.ndarray) -> np.ndarray:
    """``(n, d)`` host array of image embeddings (``CHUNK`` images per jitted call)."""
    return _chunked(model.encode_image, params, images)


def embed_texts(model: CLIP, params, tokens: np.ndarray) -> np.ndarray:
    """``(n, d)`` host array of caption embeddings (``CHUNK`` captions per jitted call)."""
    return _chunked(model.encode_text, params, tokens)


def class_embeddings(model: CLIP, params, prompts: list[list[str]]) -> np.ndarray:
    """``(C, d)`` prompt-ensembled class embeddings of prompt strings (one list per class,
    counts may differ), as ``model.class_embeddings`` but embedded in jitted chunks."""
    tokens, owner, num_classes = model.prompt_tokens(prompts)
    return np.asarray(prompt_ensemble(embed_texts(model, params, np.asarray(tokens)), owner, num_classes))


def clip_metrics(model: CLIP, params, test: caption_data.CaptionedData, *, max_examples: int | None = None,
                 top_k: int = 100, recall_examples: int = 1000, key=None) -> dict:
    """The figures of a trained CLIP on a captioned test split.

    * ``zero_shot_acc``: zero-shot accuracy over the classes' prompt ensembles
      (:func:`genjax.data.captions.class_prompts`: 10 classes; mnist-pairs: the 100 ordered
      pairs, where ``held_out_pair_acc`` / ``seen_pair_acc`` split it by held-out pairs).
    * ``{t2i,i2t}_recall@{1,5}``: retrieval between the first ``recall_examples`` test images
      and one caption of each (drawn from ``key``); the target is the image's own caption
      (many images share a caption text, so @1 has a ceiling below 1); ``*_same_text``
      counts any item with the identical caption text as a hit.
    * ``attribute_precision@k``: single-image sets: for every class, attribute and worded bin
      ("a thick 7"), the share of the ``top_k`` test images most similar to that prompt
      ensemble whose measured bin matches (``attribute_class_precision@k``: bin and class);
      ``attribute_chance`` is the mean share of the test split in the prompt's bin.
    """
    n = len(test) if max_examples is None else min(max_examples, len(test))
    images = np.asarray(test.images[:n])
    img = embed_images(model, params, images)
    out = {"num_test": n}
    labels = test.labels[:n]
    classes = class_embeddings(model, params, caption_data.class_prompts(test.name))
    if test.name == "mnist-pairs":
        target = labels[:, 0] * 10 + labels[:, 1]
        held = test.held_out[:n]
        out["zero_shot_acc"] = float(zero_shot_accuracy(img, classes, target))
        if held.any():  # (none among the first max_examples: no figure)
            out["held_out_pair_acc"] = float(zero_shot_accuracy(img[held], classes, target[held]))
        out["seen_pair_acc"] = float(zero_shot_accuracy(img[~held], classes, target[~held]))
        out["num_held_out"] = int(held.sum())
    else:
        out["zero_shot_acc"] = float(zero_shot_accuracy(img, classes, labels))
    m = min(recall_examples, n)
    key = jax.random.PRNGKey(0) if key is None else key
    tokens = caption_tokens(test, key, 1, m)[:, 0]
    sim = img[:m] @ embed_texts(model, params, tokens).T
    same_text = (tokens[:, None, :] == tokens[None, :, :]).all(-1)  # (m, m): caption j's text is caption i's
    for k in (1, 5):
        out[f"i2t_recall@{k}"] = float(recall_at_k(sim, k))
        out[f"t2i_recall@{k}"] = float(recall_at_k(sim.T, k))
        # a hit when the retrieved item carries the same caption text (many images share one)
        out[f"i2t_recall@{k}_same_text"] = float(recall_at_k(sim, k, targets=same_text))
        out[f"t2i_recall@{k}_same_text"] = float(recall_at_k(sim.T, k, targets=same_text))
    if test.name != "mnist-pairs":
        # k at most the expected count of one (class, bin) cell, n / 30
        out.update(_attribute_retrieval(model, params, test, img, top_k=max(1, min(top_k, n // 30))))
    return out


def _attribute_retrieval(model: CLIP, params, test, img: np.ndarray, *, top_k: int) -> dict:
    n = len(img)
    cells, prompts = [], []
    for attribute in test.attribute_names:
        for label in range(10):
            for b in (0, 2):  # the worded bins (the middle one is silent)
                try:
                    prompts.append(caption_data.attribute_prompts(test.name, label, attribute, b))
                except ValueError:
                    continue
                cells.append((attribute, label, b))
    hits, both, chance = [], [], []
    for (attribute, label, b), e in zip(cells, class_embeddings(model, params, prompts) if prompts else []):
        bins = test.bins[attribute][:n]
        top = np.argsort(-(img @ e))[:top_k]
        hits.append(np.mean(bins[top] == b))
        both.append(np.mean((bins[top] == b) & (test.labels[:n][top] == label)))
        chance.append(np.mean(bins == b))
    if not hits:
        return {}
    return {f"attribute_precision@{top_k}": float(np.mean(hits)),
            f"attribute_class_precision@{top_k}": float(np.mean(both)),
            "attribute_chance": float(np.mean(chance)), "attribute_prompts": len(hits)}


def _evaluate(model, params, data: DataBundle, key, *, num_samples: int = 0, max_examples: int | None = None,
              classifier=None, data_dir=None) -> dict:
    """:func:`clip_metrics` on the test split (``num_samples`` and ``classifier`` do not apply)."""
    _, test = _captioned(data)
    return clip_metrics(model, params, test, max_examples=max_examples, key=key)


def _artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    """``similarity.png``: class prompts (rows) vs test images (columns, 4 per class);
    ``embeddings.npz``: test image and caption embeddings with labels."""
    _, test = _captioned(data)
    out_dir = pathlib.Path(out_dir)
    n = min(len(test), 2000)
    img = embed_images(model, params, np.asarray(test.images[:n]))
    tokens = caption_tokens(test, key, 1, n)[:, 0]
    txt = embed_texts(model, params, tokens)
    prompts = caption_data.class_prompts(test.name)
    classes = class_embeddings(model, params, prompts)
    np.savez_compressed(out_dir / "embeddings.npz", image=img, text=txt, tokens=tokens, labels=test.labels[:n],
                        class_embeddings=classes, held_out=test.held_out[:n])
    labels = test.labels[:n] if test.labels.ndim == 1 else test.labels[:n, 0] * 10 + test.labels[:n, 1]
    shown = [c for c in range(len(prompts)) if (labels == c).any()][:10]
    cols = np.concatenate([np.flatnonzero(labels == c)[:4] for c in shown])
    viz.similarity_plot(classes[shown] @ img[cols].T, [prompts[c][0] for c in shown], [str(c) for c in labels[cols]],
                        out_dir / "similarity.png", col_images=np.asarray(test.images[cols]))
    return ["similarity.png", "embeddings.npz"]


SPECS: dict[str, ModelSpec] = {
    "clip": ModelSpec(
        "clip",
        "clip",
        "CLIP (contrastive image-caption embeddings, trained from scratch) on a captioned set, e.g. --data mnist-captions",
        {
            "size": Option(str, "small", "networks: small (CPU), gpu, or tiny (tests)", ("small", "gpu", "tiny")),
            "captions_per_image": Option(int, 8, "captions drawn per training image (one picked per step)"),
            "pool_grid": Option(str, "auto", "image pooling: global, a grid 'gh,gw', or auto (1,2 for mnist-pairs)"),
        },
        _build,
        _transform,
        _artifacts,
        _evaluate,
        _DEFAULTS,
        make_optimizer=_optimizer,
        train_data=_train_data,
    ),
}
