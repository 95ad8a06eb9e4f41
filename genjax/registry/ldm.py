"""CLI specs of the text-to-image systems, trained as stages of the one trainer.

* ``ldm`` (Stable Diffusion in miniature): ``clip`` (the text encoder; skipped with
  ``--clip-run``, which reuses a trained ``genjax train clip`` run) -> ``autoencoder``
  (KL-f4, the domain classifier's features as the perceptual loss, optional patch
  discriminator) -> ``unet`` (the text-conditioned DDPM on the frozen, scaled latents).
* ``ddpm-text``: the same text-conditioned DDPM (same UNet class and text encoder) in pixel
  space: ``clip`` -> ``unet``. The baseline of "why latent diffusion exists" (cost).

``genjax train ldm --data mnist-captions`` runs the pipeline in ``RUN/<stage>/`` (each stage a
``fit`` run: resumable, its own curves); ``--steps`` / ``--batch-size`` / ``--lr`` are the
diffusion stage's, ``--clip-steps`` / ``--ae-steps`` the others'. The latent scale factor
(1/std of the training latents) is computed once after the autoencoder stage and stored in
``RUN/unet/latent_scale.json``. ``genjax sample RUN --prompt "a thick 7" --guidance 3``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import jax
import numpy as np
import optax

from genjax import viz
from genjax.results import atomic_write
from genjax.clip import CLIP, FrozenTextEncoder, pick_caption  # FrozenTextEncoder: also importable from here
from genjax.data import captions as caption_data
from genjax.data.tokenizer import caption_tokenizer
from genjax.diffusion.constructors import SCHEDULES
from genjax.gan.step import gan_adam
from genjax.ldm.autoencoder import kl_autoencoder, latent_scale
from genjax.ldm.constructors import SIZES, latent_diffusion, text_ddpm
from genjax.ldm.models import LatentDiffusion
from genjax.metrics import features
from genjax.metrics import text_to_image as t2i
from genjax.metrics.evaluation import draw_samples
from genjax.registry import clip as clip_registry
from genjax.registry.core import DataBundle, ModelSpec, Option, image_scale
from genjax.train import Stage

#: Training defaults of the diffusion stage (``--steps`` etc.).
_DEFAULTS = {"steps": 10000, "batch_size": 128, "lr": 3e-4}
#: Batch of the CLIP stage (as experiments/clip_mnist.py trains it).
CLIP_BATCH = 128
#: Images whose latents set the scale factor.
SCALE_IMAGES = 10000
#: The prompts of a run's picture: one row per digit.
_GRID_PROMPTS = tuple(f"a {d}" for d in range(10))


#: Classifier-free guidance of the run's pictures and evaluation.
DEFAULT_GUIDANCE = 3.0


def _captioned(data: DataBundle):
    if data.captioned is None or data.kind != "image":
        raise ValueError(f"text-to-image models train on image-caption pairs: data {data.name!r} has no captions; use "
                         f"--data one of {', '.join(caption_data.CAPTIONED_DATASETS)}")
    return data.captioned


def _null_tokens(tok) -> tuple[int, ...]:
    """The empty caption's tokens (Stable Diffusion's unconditional prompt is "")."""
    return tuple(int(t) for t in tok.encode([""])[0] if t != tok.pad_id)


def _train_data(data: DataBundle, opts: dict, num: int | None = None) -> dict:
    """Every train image with ``captions_per_image`` captions (one picked per step), as CLIP's."""
    _captioned(data)
    return clip_registry.SPECS["clip"].train_data(data, {"captions_per_image": opts["captions_per_image"]}, num)


def _clip_options(opts: dict) -> dict:
    return {"size": opts["size"], "captions_per_image": opts["captions_per_image"], "pool_grid": "auto"}


def run_config_of(run_dir: str, flag: str, model: str, data: DataBundle) -> tuple[pathlib.Path, dict]:
    """``(path, config.json)`` of the run ``flag`` names, checked to be a ``model`` run on ``data``
    (``FileNotFoundError`` / ``ValueError`` naming ``flag`` otherwise)."""
    rd = pathlib.Path(run_dir)
    if not (rd / "config.json").is_file():
        raise FileNotFoundError(f"{flag}: {str(rd)!r} is not a run directory (no config.json)")
    config = json.loads((rd / "config.json").read_text())
    if config.get("model") != model or config.get("data") != data.name:
        raise ValueError(f"{flag}: {str(rd)!r} holds {config.get('model')!r} on {config.get('data')!r}; "
                         f"{'an' if model == 'ldm' else 'a'} {model} run on {data.name!r} is needed")
    return rd, config


def _clip_from_run(run_dir: str, data: DataBundle):
    """``(model, params)`` of a trained ``genjax train clip`` run on the same data set."""
    from genjax.train import restore_params

    rd, config = run_config_of(run_dir, "--clip-run", "clip", data)
    spec = clip_registry.SPECS["clip"]
    model = spec.build(data, config["options"])
    example = spec.train_data(data, config["options"], 2)
    state = restore_params(rd, model, example, optimizer=spec.optimizer(config), ema=config.get("ema_decay") is not None,
                           transform=spec.transform(model, data))
    return model, (state.ema_params if state.ema_params is not None else state.params)


def _feature_fn(data: DataBundle, data_dir):
    """The domain classifier's penultimate features (the perceptual loss's network; side-by-side
    pairs: each half's, concatenated), frozen. LPIPS needs ImageNet weights we do not have."""
    source = caption_data.source_dataset(data.name)
    clf = features.get_classifier(source, data_dir=data_dir, progress=False)
    h, w = clf.input_shape[:2]
    if data.shape[0] != h or data.shape[1] % w:
        raise ValueError(f"the {source!r} classifier takes {h}x{w} images; data {data.name!r} is {data.shape}")
    module, params = clf.module, clf.params

    def feature_fn(x):
        halves = [x[:, :, i : i + w] for i in range(0, x.shape[2], w)]
        return jax.numpy.concatenate([module.apply(params, p)[1] for p in halves], axis=-1)

    return feature_fn


def _scale(ae, ae_params, data: DataBundle, run_dir, stage: str = "unet") -> float:
    """The latent scale factor: read from ``RUN/<stage>/latent_scale.json``, else computed on the
    first :data:`SCALE_IMAGES` train images and stored there."""
    path = None if run_dir is None else pathlib.Path(run_dir) / stage / "latent_scale.json"
    if path is not None and path.is_file():
        return float(json.loads(path.read_text())["scale_factor"])
    scale = float(latent_scale(ae, ae_params, np.asarray(data.train[:SCALE_IMAGES])))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"scale_factor": scale, "num_images": int(min(SCALE_IMAGES, len(data.train)))}
        atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())
    return scale


def _loop(config: dict) -> dict:
    keys = ("log_every", "checkpoint_every", "steps_per_dispatch", "on_nonfinite")
    return {k: config[k] for k in keys if config.get(k) is not None}


@dataclasses.dataclass(frozen=True)
class Front:
    """The parts every text-to-image pipeline starts with: the frozen CLIP and (latent models)
    the frozen autoencoder, as stages to train (``stages``: ``clip`` unless ``--clip-run``,
    ``autoencoder``) or taken from other runs.

    ``clip(frozen)`` and ``autoencoder_params(frozen)`` give the trained parts to the later
    stages' builders (``frozen``: the earlier stages' parameters, as ``fit_stages`` passes them).
    """

    stages: list
    clip_model: CLIP
    clip_params: Any
    autoencoder: Any = None
    ae_params: Any = None

    def clip(self, frozen) -> tuple[CLIP, Any]:
        return self.clip_model, (self.clip_params if self.clip_params is not None else frozen["clip"])

    def autoencoder_params(self, frozen):
        return self.ae_params if self.ae_params is not None else frozen["autoencoder"]


def front_stages(data: DataBundle, config: dict, *, data_dir=None, latent: bool = True) -> Front:
    """The CLIP stage (or ``options["clip_run"]``'s CLIP) and, for a latent model, the autoencoder
    stage (KL-f4, the domain classifier's features as the perceptual loss, optional patch
    discriminator) of ``config`` (``genjax train``'s); every option is checked here."""
    _captioned(data)
    opts, size, loop = config["options"], SIZES[config["options"]["size"]], _loop(config)
    clip_spec = clip_registry.SPECS["clip"]
    out: list[Stage] = []
    if opts["clip_run"]:
        clip, clip_params = _clip_from_run(opts["clip_run"], data)
    else:
        clip_opts = _clip_options(opts)
        clip, clip_params = clip_spec.build(data, clip_opts), None
        clip_config = {"lr": clip_spec.defaults["lr"], "steps": opts["clip_steps"], "options": clip_opts}
        out.append(Stage("clip", clip, num_steps=opts["clip_steps"], batch_size=CLIP_BATCH,
                         optimizer=clip_spec.optimizer(clip_config), transform=pick_caption, **loop))
    if not latent:
        return Front(out, clip, clip_params)
    feature_fn = _feature_fn(data, data_dir) if opts["feature_weight"] > 0 else None
    ae = kl_autoencoder(data.shape, downsample=opts["downsample"], latent_channels=size["latent_channels"],
                        width=size["ae_width"], num_res_blocks=size["ae_res"], kl_weight=opts["kl_weight"],
                        feature_fn=feature_fn,
                        feature_weight=opts["feature_weight"], discriminator=opts["discriminator"] == "patch")
    ae_opt = gan_adam(opts["ae_lr"], opts["ae_lr"]) if opts["discriminator"] == "patch" else optax.adam(opts["ae_lr"])
    out.append(Stage("autoencoder", ae, num_steps=opts["ae_steps"], batch_size=64, optimizer=ae_opt,
                     data=lambda frozen, d: d["x"], **loop))
    return Front(out, clip, clip_params, ae)


def ddpm_options(config: dict, tok=None) -> dict:
    """The text-conditioned DDPM's keywords of ``config``'s size and options (condition, null
    caption, UNet depth and heads, ``T``, ``p_uncond``, ``schedule``)."""
    opts, size, tok = config["options"], SIZES[config["options"]["size"]], tok or caption_tokenizer()
    return dict(null_tokens=_null_tokens(tok), num_res_blocks=size["res"], num_heads=size["heads"],
                T=opts["T"] or size["T"], p_uncond=opts["p_uncond"],
                # a run recorded before the option existed was trained on DDPM's linear schedule
                schedule=opts.get("schedule", "linear"))


def unet_fit_kwargs(config: dict) -> dict:
    """The diffusion stage's ``fit`` keywords (``--steps`` / ``--batch-size`` / ``--lr`` / ``--ema``)."""
    return dict(num_steps=config["steps"], batch_size=config["batch_size"], optimizer=_optimizer(config),
                ema_decay=config.get("ema_decay"), **_loop(config))


def _stages(latent: bool):
    def stages(data: DataBundle, config: dict, *, run_dir=None, data_dir=None, front: Front | None = None) -> list[Stage]:
        """The pipeline of ``config`` (``genjax train``'s: steps, batch_size, lr, ema_decay,
        options, loop settings); every option is checked here, before any training. ``front``: the
        trained CLIP (and autoencoder) to build on instead of the front stages (e.g. shared by
        several seeds: ``genjax compare``), which are then not in the pipeline."""
        if front is None:
            front = front_stages(data, config, data_dir=data_dir, latent=latent)
        size = SIZES[config["options"]["size"]]
        ddpm_kw = dict(text_condition=front.clip_model.condition, **ddpm_options(config))

        def text_encoder(frozen):
            return FrozenTextEncoder(*front.clip(frozen))

        unet_kw = dict(transform=pick_caption, **unet_fit_kwargs(config))
        if latent:
            ae = front.autoencoder

            def ldm(frozen):
                ae_params = front.autoencoder_params(frozen)
                return latent_diffusion(ae, ae_params, _scale(ae, ae_params, data, run_dir), base=size["base"],
                                        channel_mult=size["latent_mult"], text_encoder=text_encoder(frozen), **ddpm_kw)

            return front.stages + [Stage("unet", ldm, **unet_kw)]
        return front.stages + [Stage("unet", lambda frozen: text_ddpm(data.shape, data_range="unit", base=size["pixel_base"],
                                                                        channel_mult=size["pixel_mult"],
                                                                        text_encoder=text_encoder(frozen), **ddpm_kw),
                                     **unet_kw)]

    return stages


def _optimizer(config: dict):
    """Adam with a short warm-up and gradient clipping at norm 1 (as latent diffusion trains)."""
    warmup = min(500, max(1, config.get("steps", _DEFAULTS["steps"]) // 20))
    lr = optax.linear_schedule(0.0, config["lr"], warmup)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))


def _build(data: DataBundle, opts: dict):
    """A staged model has no single model before training (``ModelSpec.stages`` builds the
    pipeline); this checks the data and returns None."""
    _captioned(data)
    return None


def prompt_tokens(model, prompts) -> np.ndarray:
    """Caption tokens ``(n, L)`` of prompt strings, with the captions' tokenizer (checked
    against the model's vocabulary)."""
    tok = caption_tokenizer()
    cond = model.condition
    if cond.kind != "tokens" or cond.vocab_size != tok.vocab_size:
        raise ValueError(f"--prompt: this model takes {cond.describe()}, not caption tokens")
    return np.asarray(tok.encode(list(prompts)))


def takes_negative_prompt(model) -> bool:
    """Whether ``model.sample`` takes a negative prompt (``negative_cond``: caption tokens in the
    empty caption's place under classifier-free guidance): ddpm-text and ldm, not unclip (its
    decoder is guided on an image embedding)."""
    import inspect

    return model.condition.kind == "tokens" and "negative_cond" in inspect.signature(model.sample).parameters


def _sample(model, params, key, num: int, data: DataBundle, *, prompt: str | None = None, guidance=None,
            negative_prompt: str | None = None, **kw):
    """``genjax sample``: ``num`` images of ``prompt`` (``None``: the unconditional model) at
    classifier-free guidance ``guidance`` (``negative_prompt``: guided away from that caption
    instead of the empty one), in jitted chunks."""
    cond = None if prompt is None else prompt_tokens(model, [prompt] * num)
    if negative_prompt is not None:
        if not takes_negative_prompt(model):
            raise ValueError("--negative-prompt: this model takes no negative prompt (ldm and ddpm-text do)")
        kw["negative_cond"] = prompt_tokens(model, [negative_prompt])  # one row, for every sample
    return draw_samples(model, params, key, num, cond=cond, sample_kwargs={"guidance": guidance, **kw})


def _artifacts(model, params, data: DataBundle, out_dir: pathlib.Path, key) -> list[str]:
    """``samples.png``: 8 samples of each prompt "a 0" ... "a 9" (one row each) at guidance 3."""
    per = 8
    tokens = prompt_tokens(model, [p for p in _GRID_PROMPTS for _ in range(per)])
    x = draw_samples(model, params, key, len(tokens), cond=tokens, sample_kwargs={"guidance": DEFAULT_GUIDANCE})
    viz.save_image_grid(pathlib.Path(out_dir) / "samples.png", x, ncol=per, scale=image_scale(data))
    return ["samples.png"]


def scoring_clip(model):
    """``(clip, params)`` of the CLIP a text-to-image model was built on (its CLIP score and
    R-precision are that CLIP's), or None: an unCLIP model's own, or a DDPM's frozen text encoder's."""
    if isinstance(getattr(model, "clip", None), CLIP):
        return model.clip, model.clip_params
    te = (model.diffusion if isinstance(model, LatentDiffusion) else model).text_encoder
    return (te.clip, te.params) if isinstance(te, FrozenTextEncoder) else None


def generate_for_prompts(model, params, data: DataBundle, key, *, guidance=DEFAULT_GUIDANCE, per_digit: int = 100,
                         per_attribute: int = 20, per_pair: int = 20, chunk: int = 500, **sampler):
    """Samples of the evaluation prompts of ``data`` (:func:`genjax.metrics.text_to_image.prompt_set`):
    ``(prompt_set, samples (n, H, W, C) in [0, 1])``."""
    ps = t2i.prompt_set(data.name, per_digit=per_digit, per_attribute=per_attribute, per_pair=per_pair)
    tokens = prompt_tokens(model, ps.prompts)
    x = draw_samples(model, params, key, len(tokens), cond=tokens, chunk=chunk,
                     sample_kwargs={"guidance": guidance, **sampler})
    return ps, x


def score_samples(model, data: DataBundle, ps, samples: np.ndarray, key, *, classifier="auto", data_dir=None,
                  clip=None) -> dict:
    """The text-to-image figures of ``samples`` of the prompts ``ps``: prompt / attribute /
    held-out-pair accuracy by the domain classifier, FID and precision/recall on its features
    (a pair's halves one by one), CLIP score and R-precision by the model's own CLIP, or by
    ``clip`` = ``(CLIP, params)`` when given (a label-conditioned model has none of its own)."""
    from genjax.metrics.evaluation import sample_metrics

    _, test = _captioned(data)
    clf = features.get_classifier(caption_data.source_dataset(data.name), data_dir=data_dir, progress=False) \
        if classifier == "auto" else classifier
    classify = lambda imgs: np.argmax(clf.logits(imgs), axis=-1)
    emb, scorer = {}, (scoring_clip(model) if clip is None else clip)
    if scorer is not None:
        tokens = prompt_tokens(scorer[0], ps.prompts)
        emb = {"image_emb": clip_registry.embed_images(*scorer, samples),
               "text_emb": clip_registry.embed_texts(*scorer, tokens)}
    out = t2i.text_to_image_metrics(samples, ps, classify=classify, edges=test.edges, key=key, **emb)
    halves = lambda a: np.concatenate(t2i.split_pairs(a)) if data.name == "mnist-pairs" else a
    ref = DataBundle(data.name, "image", halves(data.train[:1]), halves(test.images), data.num_levels)
    quality = sample_metrics(halves(samples), ref, classifier=clf)
    keep = ("fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "num_reference")
    return {**out, **{k: quality[k] for k in keep if k in quality}}


def _evaluate(model, params, data: DataBundle, key, *, num_samples: int = 1000, max_examples=None, classifier="auto",
              data_dir=None) -> dict:
    """:func:`score_samples` of :func:`generate_for_prompts` at the default guidance, about
    ``num_samples`` samples (10 digit prompts, attribute prompts; pairs: the held-out pairs)."""
    per = max(1, num_samples // 20)
    k_gen, k_score = jax.random.split(key)
    ps, x = generate_for_prompts(model, params, data, k_gen, per_digit=per, per_attribute=max(1, per // 5), per_pair=per)
    return {"guidance": DEFAULT_GUIDANCE, **score_samples(model, data, ps, x, k_score, classifier=classifier,
                                                          data_dir=data_dir)}


def pipeline_options(latent: bool) -> dict:
    opts = {
        "size": Option(str, "small", "networks: small (CPU), gpu, or tiny (tests)", tuple(SIZES)),
        "captions_per_image": Option(int, 8, "captions drawn per training image (one picked per step)"),
        "clip_run": Option(str, "", "a trained `genjax train clip` run on the same data to take the text encoder from "
                                    "(default: train CLIP as the pipeline's first stage)"),
        "clip_steps": Option(int, 1500, "steps of the CLIP stage (batch 128)"),
        "T": Option(int, None, "diffusion steps (default: the size's, 1000)"),
        "p_uncond": Option(float, 0.1, "caption-drop probability in training (classifier-free guidance)"),
        # Stable Diffusion's own schedule on latents; DDPM's on pixels (each model its paper's)
        "schedule": Option(str, "scaled_linear" if latent else "linear", "the diffusion model's beta schedule",
                           SCHEDULES),
    }
    if latent:
        opts.update({
            "downsample": Option(int, 4, "autoencoder downsampling factor f (28x28 -> 7x7 latents at f=4)"),
            "kl_weight": Option(float, 1e-6, "weight of the latents' KL term"),
            "feature_weight": Option(float, 1.0, "weight of the classifier-feature (perceptual) loss; 0: off"),
            "discriminator": Option(str, "none", "patch discriminator in the autoencoder stage", ("none", "patch")),
            "ae_steps": Option(int, 3000, "steps of the autoencoder stage"),
            "ae_lr": Option(float, 1e-3, "learning rate of the autoencoder stage"),
        })
    return opts


SPECS: dict[str, ModelSpec] = {
    name: ModelSpec(
        name,
        "ldm",
        description,
        pipeline_options(latent),
        _build,
        lambda model, data: pick_caption,
        _artifacts,
        _evaluate,
        dict(_DEFAULTS),
        make_optimizer=_optimizer,
        sample=_sample,
        train_data=_train_data,
        stages=_stages(latent),
    )
    for name, latent, description in (
        ("ldm", True, "Stable Diffusion in miniature: CLIP text encoder, KL-f4 autoencoder, text-conditioned latent "
                      "DDPM (stages), e.g. --data mnist-captions"),
        ("ddpm-text", False, "text-conditioned DDPM in pixel space (the latent model's cost baseline; stages clip, unet)"),
    )
}
