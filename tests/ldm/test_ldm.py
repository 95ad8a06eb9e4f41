"""Latent diffusion (issue 19): the model around the DDPM, its editing, and the staged command line.

The autoencoder's own checks are in test_autoencoder.py and the DDPM's text conditioning,
guidance identity and editing in tests/diffusion/; here: the composition (only the DDPM's
parameters train, latents are scaled, image-to-image at strength 0 is the reconstruction,
inpainting keeps the known latents exactly) and `genjax train ldm` / `genjax sample --prompt`.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import cli, registry
from genjax.ldm.autoencoder import kl_autoencoder
from genjax.ldm.constructors import latent_diffusion
from genjax.ldm.models import LatentDiffusion
from genjax.types import Condition

VOCAB, L, WIDTH = 12, 5, 8
TEXT = Condition(kind="tokens", vocab_size=VOCAB, max_len=L, pad_id=0)


@functools.lru_cache(maxsize=None)
def _tiny(scale: float = 2.0) -> tuple[LatentDiffusion, dict]:
    ae = kl_autoencoder((8, 8, 1), downsample=4, latent_channels=2, width=8)
    ae_params = jax.jit(ae.init)(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)))
    table = jax.random.normal(jax.random.PRNGKey(1), (VOCAB, WIDTH))
    model = latent_diffusion(ae, ae_params, scale, text_encoder=lambda tok: table[tok], text_condition=TEXT,
                             null_tokens=(1, 2), base=8, channel_mult=(1,), num_res_blocks=1, num_heads=2, T=10)
    return model, jax.jit(model.init)(jax.random.PRNGKey(2), _batch(4))


def _images(n: int, seed: int = 3) -> np.ndarray:
    return np.asarray(jax.random.uniform(jax.random.PRNGKey(seed), (n, 8, 8, 1)))


def _batch(n: int) -> dict:
    tokens = np.tile(np.array([[1, 5, 7, 2, 0]], np.int32), (n, 1))
    return {"x": _images(n), "cond": tokens}


def test_the_latents_are_the_scaled_encoder_means_and_decode_back():
    model, _ = _tiny(scale=3.0)
    x = _images(3)
    mean, _ = model.autoencoder.encode(model.autoencoder_params, x)
    np.testing.assert_allclose(model.to_latent(x), 3.0 * np.asarray(mean), rtol=1e-6)
    assert model.to_latent(x).shape == (3, 2, 2, 2) == (3, *model.latent_shape)
    np.testing.assert_allclose(model.from_latent(model.to_latent(x)),
                               model.autoencoder.reconstruct(model.autoencoder_params, x), atol=1e-6)


def test_only_the_diffusion_parameters_train_and_the_loss_is_the_ddpm_loss_on_latents():
    model, params = _tiny()
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        model.diffusion.init(jax.random.PRNGKey(2), {"x": np.zeros((4, 2, 2, 2), np.float32), "cond": _batch(4)["cond"]}))
    batch = _batch(4)
    key = jax.random.PRNGKey(5)
    loss, grads = jax.jit(jax.value_and_grad(lambda p: model.loss(p, key, batch)[0]))(params)

    # the same computation by hand: a posterior sample of the frozen encoder, scaled, then the DDPM's loss
    def by_hand(p):
        k_enc, k_loss = jax.random.split(key)
        z = model.autoencoder.encode_latent(model.autoencoder_params, k_enc, batch["x"]) * model.scale_factor
        return model.diffusion.loss(p, k_loss, {"x": z, "cond": batch["cond"]})[0]

    np.testing.assert_allclose(loss, jax.jit(by_hand)(params), rtol=1e-6)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))


def test_sample_returns_images_and_takes_caption_tokens_and_guidance():
    model, params = _tiny()
    tokens = _batch(3)["cond"]
    x = model.sample(params, jax.random.PRNGKey(0), 3, cond=tokens, guidance=2.0, sampler="ddim", steps=4)
    assert x.shape == (3, 8, 8, 1) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with pytest.raises(ValueError, match="cond must be int tokens"):
        model.sample(params, jax.random.PRNGKey(0), 3, cond=np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="guidance needs a cond"):
        model.sample(params, jax.random.PRNGKey(0), 3, guidance=2.0)


def test_image_to_image_at_strength_zero_is_the_reconstruction():
    model, params = _tiny()
    x = _images(2, seed=9)
    out = model.edit(params, jax.random.PRNGKey(0), x, strength=0.0, cond=_batch(2)["cond"], guidance=3.0,
                     sampler="ddim", steps=5)
    np.testing.assert_allclose(out, model.autoencoder.reconstruct(model.autoencoder_params, x), atol=1e-6)
    moved = model.edit(params, jax.random.PRNGKey(0), x, strength=1.0, cond=_batch(2)["cond"], sampler="ddim", steps=5)
    assert not np.allclose(moved, out, atol=1e-3)


def test_inpainting_keeps_the_known_latents_exactly():
    model, params = _tiny()
    x = _images(2, seed=4)
    mask = np.zeros((2, 8, 8), bool)
    mask[:, :, :4] = True  # the left half: the left latent column (f = 4)
    cells = np.asarray(model.latent_mask(mask))[..., 0]
    assert cells.tolist() == [[[True, False], [True, False]]] * 2
    mask_partial = mask.copy()
    mask_partial[:, 0, 0] = False  # a cell with one unknown pixel is unknown
    assert not np.asarray(model.latent_mask(mask_partial))[:, 0, 0, 0].any()
    for sampler in ("ddpm", "ddim"):
        z = np.asarray(model.inpaint_latent(params, jax.random.PRNGKey(1), x, mask, cond=_batch(2)["cond"],
                                            guidance=1.0, sampler=sampler, steps=10 if sampler == "ddpm" else 4))
        z0 = np.asarray(model.to_latent(x))
        assert (z[:, :, 0] == z0[:, :, 0]).all(), sampler  # bit-equal where known
        assert not np.allclose(z[:, :, 1], z0[:, :, 1]), sampler
    with pytest.raises(ValueError, match="mask must have shape"):
        model.latent_mask(np.ones((2, 8, 7), bool))


def test_bad_parts_are_named():
    model, _ = _tiny()
    with pytest.raises(ValueError, match="scale_factor"):
        LatentDiffusion(model.autoencoder, model.autoencoder_params, model.diffusion, -1.0)
    with pytest.raises(ValueError, match="latent shape"):
        other = kl_autoencoder((16, 16, 1), downsample=4, latent_channels=2, width=8)
        LatentDiffusion(other, model.autoencoder_params, model.diffusion, 1.0)


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def ldm_run(tiny_ldm_run):
    return tiny_ldm_run  # (tests/conftest.py: trained once per session, 4 steps per stage)


def test_train_ldm_runs_every_stage_in_its_directory(ldm_run):
    stages = json.loads((ldm_run / "stages.json").read_text())
    assert [s["name"] for s in stages] == ["clip", "autoencoder", "unet"]
    for s in stages:
        steps = [json.loads(line)["step"] for line in (ldm_run / s["name"] / "metrics.jsonl").read_text().splitlines()]
        assert steps[-1] == s["steps"]
    scale = json.loads((ldm_run / "unet" / "latent_scale.json").read_text())["scale_factor"]
    assert np.isfinite(scale) and scale > 0
    assert (ldm_run / "samples.png").is_file()


def test_sample_with_a_prompt_image_to_image_and_inpainting(ldm_run, tmp_path, capsys):
    out = tmp_path / "x.npy"
    assert cli.main(["sample", str(ldm_run), "--prompt", "a 7", "--num", "4", "--guidance", "3", "--out", str(out)]) == 0
    x = np.load(out)
    assert x.shape == (4, 8, 8, 1) and x.min() >= 0 and x.max() <= 1
    edited = tmp_path / "e.npy"
    assert cli.main(["sample", str(ldm_run), "--prompt", "a 3", "--num", "4", "--init-image", str(out), "--strength", "0.5",
                     "--out", str(edited)]) == 0
    assert np.load(edited).shape == (4, 8, 8, 1)
    kept = tmp_path / "k.npy"
    assert cli.main(["sample", str(ldm_run), "--prompt", "a 3", "--num", "4", "--init-image", str(out), "--keep", "left",
                     "--out", str(kept)]) == 0
    assert np.load(kept).shape == (4, 8, 8, 1)
    assert cli.main(["runs", str(ldm_run.parent)]) == 0
    assert "ldm" in capsys.readouterr().out


def test_sample_flags_are_checked(ldm_run, tmp_path, capsys):
    for argv, message in ((["--guidance", "3"], "--guidance needs --prompt"),
                          (["--strength", "0.5"], "--init-image goes with one of --strength"),
                          (["--init-image", str(tmp_path / "none.npy"), "--strength", "0.5"], "--init-image: no file")):
        assert cli.main(["sample", str(ldm_run), *argv]) != 0
        assert message in capsys.readouterr().err


def test_a_staged_run_restores_without_training(ldm_run):
    from genjax.train import fit_stages

    spec = registry.get_model_spec("ldm")
    config = json.loads((ldm_run / "config.json").read_text())
    data = registry.load_data("digits-captions")
    stages = spec.stages(data, config, run_dir=ldm_run)
    before = {p.name: sorted(q.name for q in (p / "checkpoints").iterdir()) for p in ldm_run.iterdir()
              if (p / "checkpoints").is_dir()}
    res = fit_stages(stages, spec.train_data(data, config["options"]), seed=config["seed"], out_dir=ldm_run, train=False,
                     progress=False)
    assert isinstance(res.models["unet"], LatentDiffusion) and set(res.params) == {"clip", "autoencoder", "unet"}
    after = {p.name: sorted(q.name for q in (p / "checkpoints").iterdir()) for p in ldm_run.iterdir()
             if (p / "checkpoints").is_dir()}
    assert before == after
    longer = [s if s.name != "unet" else type(s)(s.name, s.model, num_steps=8, data=s.data, **s.fit_kwargs) for s in stages]
    with pytest.raises(FileNotFoundError, match="stage 'unet'.*trained to step 4 of 8"):
        fit_stages(longer, spec.train_data(data, config["options"]), seed=config["seed"], out_dir=ldm_run, train=False,
                   progress=False)


def test_train_ldm_rejects_data_without_captions(tmp_path, capsys, tiny_ldm_args):
    assert cli.main(["train", "ldm", "--data", "digits", "--out", str(tmp_path), *tiny_ldm_args]) != 0
    assert "has no captions" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_schedule_defaults_and_runs_recorded_before_the_option():
    """The latent pipeline diffuses on Stable Diffusion's scaled_linear schedule, the pixel
    baseline on DDPM's linear one; a run whose config predates the option was trained on linear."""
    from genjax.registry import ldm as ldm_registry

    assert registry.resolve_options(registry.get_model_spec("ldm"), {})["schedule"] == "scaled_linear"
    assert registry.resolve_options(registry.get_model_spec("ddpm-text"), {})["schedule"] == "linear"
    old = {"options": {"size": "tiny", "T": None, "p_uncond": 0.1}}
    assert ldm_registry.ddpm_options(old)["schedule"] == "linear"
    new = {"options": {**old["options"], "schedule": "scaled_linear"}}
    assert ldm_registry.ddpm_options(new)["schedule"] == "scaled_linear"
    with pytest.raises(ValueError, match="schedule"):
        registry.resolve_options(registry.get_model_spec("ldm"), {"schedule": "quadratic"})
