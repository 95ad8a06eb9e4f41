"""CLI spec of unCLIP (DALL-E 2 in miniature), trained as stages of the one trainer.

``genjax train unclip --data mnist-captions`` runs ``clip`` (skipped with ``--clip-run`` or
``--ldm-run``) -> ``autoencoder`` (skipped with ``--ldm-run``) -> ``prior`` (the diffusion
prior: caption -> CLIP image embedding) -> ``decoder`` (the latent DDPM conditioned on the
image embedding), each stage a ``fit`` run in ``RUN/<stage>/`` (resumable). ``--ldm-run`` takes
the CLIP and the autoencoder of a finished ``genjax train ldm`` run, so the two text-to-image
systems differ only in how they are conditioned. ``--steps`` / ``--batch-size`` / ``--lr`` are
the decoder's; ``--prior-steps`` / ``--prior-batch`` / ``--prior-lr`` the prior's.

``genjax sample RUN --prompt "a thick 7" --guidance 3``; ``genjax sample RUN --variations-of
IMAGE`` (a .png / .npy, or ``test:N`` for the N-th test image).
"""

from __future__ import annotations


from genjax.clip import pick_caption
from genjax.ldm.constructors import SIZES
from genjax.registry import ldm as ldm_registry
from genjax.registry.core import DataBundle, ModelSpec, Option
from genjax.train import Stage, fit_stages
from genjax.unclip.constructors import PRIOR_SIZES, embedding_decoder
from genjax.unclip.models import UnCLIP
from genjax.unclip.prior import prior_ddpm, prior_training_data

#: Training defaults of the decoder stage (``--steps`` etc.): the latent diffusion model's.
_DEFAULTS = dict(ldm_registry._DEFAULTS)


def _ldm_front(ldm_run: str, data: DataBundle, data_dir) -> ldm_registry.Front:
    """The CLIP and the trained autoencoder of a finished ``genjax train ldm`` run on ``data``."""
    rd, config = ldm_registry.run_config_of(ldm_run, "--ldm-run", "ldm", data)
    front = ldm_registry.front_stages(data, config, data_dir=data_dir, latent=True)
    result = fit_stages(front.stages, ldm_registry._train_data(data, config["options"]), seed=config["seed"],
                        out_dir=rd, train=False, progress=False)
    clip, clip_params = front.clip(result.params)
    return ldm_registry.Front([], clip, clip_params, front.autoencoder, result.params["autoencoder"])


def _prior_optimizer(opts: dict, steps: int):
    return ldm_registry._optimizer({"steps": steps, "lr": opts["prior_lr"]})


def stages(data: DataBundle, config: dict, *, run_dir=None, data_dir=None,
           front: ldm_registry.Front | None = None) -> list[Stage]:
    """The pipeline of ``config`` (``genjax train``'s); every option is checked here, before any training.
    ``front``: the trained CLIP and autoencoder to build on (as ``--ldm-run`` gives them; e.g.
    shared by several seeds: ``genjax compare``)."""
    opts = config["options"]
    size, prior_size = SIZES[opts["size"]], PRIOR_SIZES[opts["size"]]
    if opts["ldm_run"] and opts["clip_run"]:
        raise ValueError("--ldm-run brings its own CLIP: give --ldm-run or --clip-run, not both")
    if front is None:
        front = (_ldm_front(opts["ldm_run"], data, data_dir) if opts["ldm_run"]
                 else ldm_registry.front_stages(data, config, data_dir=data_dir, latent=True))
    clip = front.clip_model
    ddpm_kw = ldm_registry.ddpm_options(config)
    loop = ldm_registry._loop(config)

    def prior(frozen):
        return prior_ddpm(clip.embed_dim, text_encoder=ldm_registry.FrozenTextEncoder(*front.clip(frozen), with_embedding=True),
                          text_condition=clip.condition, null_tokens=ddpm_kw["null_tokens"], width=prior_size["width"],
                          depth=prior_size["depth"], num_heads=prior_size["heads"], T=ddpm_kw["T"],
                          p_uncond=ddpm_kw["p_uncond"])

    def prior_data(frozen, d):
        return prior_training_data(*front.clip(frozen), d["x"], d["cond"])

    def unclip(frozen):
        ae, ae_params = front.autoencoder, front.autoencoder_params(frozen)
        decoder = embedding_decoder(clip.embed_dim, autoencoder=ae, autoencoder_params=ae_params,
                                    scale_factor=ldm_registry._scale(ae, ae_params, data, run_dir, stage="decoder"),
                                    base=size["base"], channel_mult=size["latent_mult"], num_res_blocks=size["res"],
                                    num_heads=size["heads"], vector_tokens=opts["vector_tokens"], T=ddpm_kw["T"],
                                    p_uncond=ddpm_kw["p_uncond"], schedule=ddpm_kw["schedule"])
        return UnCLIP(*front.clip(frozen), prior(frozen), frozen["prior"], decoder, num_candidates=opts["num_candidates"],
                      prior_guidance=opts["prior_guidance"])

    return front.stages + [
        Stage("prior", prior, num_steps=opts["prior_steps"], batch_size=opts["prior_batch"], data=prior_data,
              transform=pick_caption, optimizer=_prior_optimizer(opts, opts["prior_steps"]),
              ema_decay=config.get("ema_decay"), **loop),
        # the frozen CLIP's image embeddings computed once for the data set, not at every step
        Stage("decoder", unclip, data=lambda frozen, d: unclip(frozen).decoder_training_data(d["x"]),
              **ldm_registry.unet_fit_kwargs(config)),
    ]


def _options() -> dict:
    opts = ldm_registry.pipeline_options(latent=True)
    opts.update({
        "ldm_run": Option(str, "", "a finished `genjax train ldm` run on the same data to take CLIP and the autoencoder "
                                   "from (default: train them as the first stages)"),
        "prior_steps": Option(int, 5000, "steps of the diffusion prior stage"),
        "prior_batch": Option(int, 256, "batch size of the prior stage"),
        "prior_lr": Option(float, 3e-4, "learning rate of the prior stage"),
        "prior_guidance": Option(float, 1.0, "the prior's classifier-free guidance weight when sampling"),
        "num_candidates": Option(int, 2, "prior samples per caption, the one closest to the caption's text embedding kept"),
        "vector_tokens": Option(int, 4, "context tokens the image embedding is projected into in the decoder"),
    })
    return opts


SPECS: dict[str, ModelSpec] = {
    "unclip": ModelSpec(
        "unclip",
        "unclip",
        "DALL-E 2 in miniature: CLIP, a diffusion prior (caption -> image embedding), a latent decoder conditioned "
        "on the embedding (stages), e.g. --data mnist-captions",
        _options(),
        ldm_registry._build,
        lambda model, data: None,
        ldm_registry._artifacts,
        ldm_registry._evaluate,
        dict(_DEFAULTS),
        make_optimizer=ldm_registry._optimizer,
        sample=ldm_registry._sample,
        train_data=ldm_registry._train_data,
        stages=stages,
    )
}
