"""Bad-input catalogue: distinct bad inputs across the public API of every family (vae,
gan, flows, diffusion when registered), data, train, metrics and the CLI. Each must raise
a clear error (``pytest.raises(..., match=...)``) whose message names the argument and
what was expected, before any work. CLI cases: non-zero exit, one ``genjax: error:``
line on stderr, no traceback.

Every case passes today (no xfails left). An input that a module is later found to
accept silently may be added as ``xfail(strict=True)`` (see ``xfail``) with the reason,
until that module's owner fixes it (docs/reliability.md lists them).
"""

from __future__ import annotations

import functools
import json
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import cli, diffusion, flows, gan, metrics, registry, vae
from genjax.data import BatchSampler, download, images, pipeline, synthetic
from genjax.metrics import bits_per_dim
from genjax.train import fit, make_train_step


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")
KEY = jax.random.PRNGKey(0)


# ---------------------------------------------------------------------- tiny models (built once)
@functools.cache
def gvae():
    return vae.mlp_vae(data_shape=(4,), latent_dim=2, hidden=(8,), likelihood="gaussian")


@functools.cache
def gvae_params():
    return gvae().init(KEY, jnp.ones((3, 4)))


@functools.cache
def bvae():
    return vae.mlp_vae(data_shape=(4,), latent_dim=2, hidden=(8,), likelihood="bernoulli")


@functools.cache
def mgan():
    return gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,), output="linear")


@functools.cache
def mgan_params():
    return mgan().init(KEY, jnp.ones((3, 2)))


@functools.cache
def flow():
    return flows.realnvp_2d(num_layers=2, hidden=(8,))


@functools.cache
def flow_params():
    return flow().init(KEY, jnp.ones((3, 2)))


@functools.cache
def ddpm():
    return diffusion.ddpm_2d(hidden=(8,), emb_dim=8, T=10)


@functools.cache
def ddpm_params():
    return ddpm().init(KEY, jnp.ones((3, 2)))


@functools.cache
def cond_ddpm():
    return diffusion.ddpm_2d(hidden=(8,), emb_dim=8, T=10, num_classes=3)


@functools.cache
def ncsn():
    return diffusion.ncsn_2d(hidden=(8,), emb_dim=8, num_sigmas=4)


@functools.cache
def sde():
    return diffusion.score_sde_2d(hidden=(8,), emb_dim=8)


X4 = np.ones((8, 4), np.float32)


def _fit(model, data, **kw):
    return fit(model, data, **{"num_steps": 2, "batch_size": 2, "progress": False, **kw})


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


# (id, call, exception, match[, marks])
CASES = [
    # ---------------------------------------------------------------- vae
    ("vae/loss-rank", lambda: gvae().loss(gvae_params(), KEY, jnp.ones((3, 2, 2))), ValueError, r"batch must have rank 2 with shape \(batch, 4\), got shape \(3, 2, 2\)"),
    ("vae/loss-shape", lambda: gvae().loss(gvae_params(), KEY, jnp.ones((3, 5))), ValueError, r"batch must have shape \(batch, 4\), got shape \(3, 5\)"),
    ("vae/int-data-gaussian-decoder", lambda: gvae().loss(gvae_params(), KEY, jnp.ones((3, 4), jnp.int32)), ValueError, r"batch must be a floating-point array, got dtype int32"),
    ("vae/empty-batch", lambda: gvae().loss(gvae_params(), KEY, jnp.ones((0, 4))), ValueError, r"batch is an empty batch \(shape \(0, 4\)\); expected at least one example"),
    ("vae/nan-data", lambda: gvae().loss(gvae_params(), KEY, jnp.ones((3, 4)).at[1, 2].set(jnp.nan)), ValueError, r"batch contains 1 non-finite values"),
    ("vae/non-binary-for-bernoulli", lambda: bvae().loss(bvae().init(KEY, jnp.ones((3, 4))), KEY, jnp.full((3, 4), 0.5)), ValueError, r"batch must be binary .*Bernoulli decoder"),
    ("vae/sample-num-zero", lambda: gvae().sample(gvae_params(), KEY, 0), ValueError, r"num must be a positive integer, got 0"),
    ("vae/sample-num-float", lambda: gvae().sample(gvae_params(), KEY, 2.5), ValueError, r"num must be a positive integer, got 2.5"),
    ("vae/log-prob-num-samples-zero", lambda: gvae().log_prob(gvae_params(), KEY, jnp.ones((3, 4)), num_samples=0), ValueError, r"num_samples must be a positive integer, got 0"),
    ("vae/latent-dim-negative", lambda: vae.mlp_vae(data_shape=(4,), latent_dim=-2), ValueError, r"latent_dim must be a positive integer, got -2"),
    ("vae/hidden-negative", lambda: vae.mlp_vae(data_shape=(4,), hidden=(-1,)), ValueError, r"hidden entries must be a positive integer, got -1"),
    ("vae/unknown-likelihood", lambda: vae.mlp_vae(data_shape=(4,), likelihood="poisson"), ValueError, r"unknown likelihood 'poisson'; valid choices: bernoulli, gaussian"),
    ("vae/obs-std-zero", lambda: vae.mlp_vae(data_shape=(4,), likelihood="gaussian", obs_std=0.0), ValueError, r"obs_std must be a positive finite number, got 0.0"),
    ("vae/beta-negative", lambda: vae.mlp_vae(data_shape=(4,), beta=-1.0), ValueError, r"beta must be a non-negative number, got -1.0"),
    ("vae/interpolate-unknown-method", lambda: gvae().interpolate(gvae_params(), jnp.ones((1, 4)), jnp.ones((1, 4)), method="cubic"), ValueError, r"unknown method 'cubic'; valid choices: linear, slerp"),
    ("vae/unknown-activation", lambda: vae.mlp_vae(data_shape=(4,), activation="relux"), ValueError, r"unknown activation 'relux'; valid choices: elu, gelu"),
    ("vae/params-of-a-gan", lambda: gvae().loss(mgan_params(), KEY, jnp.ones((3, 4))), ValueError, r"params do not match this VAE .*top-level entries \['discriminator'\], \['generator'\], expected \['decoder'\], \['encoder'\]"),
    ("vae/params-of-another-vae", lambda: gvae().loss(vae.mlp_vae(data_shape=(4,), latent_dim=3, hidden=(8,), likelihood="gaussian").init(KEY, jnp.ones((3, 4))), KEY, jnp.ones((3, 4))), ValueError, r"params do not match this VAE \(data_shape=\(4,\), latent_dim=2\).*has shape \(3, 8\), expected \(2, 8\)"),
    # ---------------------------------------------------------------- gan
    ("gan/d-loss-shape", lambda: mgan().d_loss(mgan_params(), KEY, jnp.ones((3, 3))), ValueError, r"batch must have shape \(batch, 2\), got shape \(3, 3\)"),
    ("gan/empty-batch", lambda: mgan().d_loss(mgan_params(), KEY, jnp.ones((0, 2))), ValueError, r"batch is an empty batch"),
    ("gan/int-data", lambda: mgan().d_loss(mgan_params(), KEY, jnp.ones((3, 2), jnp.int32)), ValueError, r"batch must be a floating-point array, got dtype int32"),
    ("gan/unknown-loss-kind", lambda: gan.mlp_gan(2, loss_kind="bogus"), ValueError, r"unknown loss_kind 'bogus'; valid choices: hinge, minimax, non_saturating"),
    ("gan/n-critic-zero", lambda: gan.mlp_gan(2, n_critic=0), ValueError, r"n_critic must be a positive integer, got 0"),
    ("gan/unknown-output", lambda: gan.mlp_gan(2, output="sigmoid"), ValueError, r"unknown output 'sigmoid'; valid choices: linear, tanh"),
    ("gan/wgan-clip-negative", lambda: gan.wgan(2, clip=-1.0), ValueError, r"clip must be a positive finite number, got -1.0"),
    ("gan/tanh-data-out-of-range", lambda: gan.mlp_gan(2, latent_dim=2, g_hidden=(8,), d_hidden=(8,)).check_batch(3.0 * jnp.ones((3, 2))), ValueError, r"x has values in \[3, 3\] but the generator's output range is \[-1.0, 1.0\]"),
    ("gan/sample-num-zero", lambda: mgan().sample(mgan_params(), KEY, 0), ValueError, r"num must be a positive integer, got 0"),
    ("gan/params-of-a-vae", lambda: mgan().d_loss(gvae_params(), KEY, jnp.ones((3, 2))), ValueError, r"params do not match this GAN .*expected \['discriminator'\], \['generator'\]"),
    ("metrics/mode-coverage-std-zero", lambda: metrics.mode_coverage(np.ones((4, 2)), np.ones((8, 2)), std=0.0), ValueError, r"std must be a positive finite number, got 0.0"),
    ("metrics/mode-coverage-empty-samples", lambda: metrics.mode_coverage(np.ones((0, 2)), np.ones((8, 2)), std=0.1), ValueError, r"samples is empty \(shape \(0, 2\)\)"),
    ("metrics/mixture-diagnostics-nan-samples", lambda: metrics.mixture_diagnostics(np.full((4, 2), np.nan), synthetic.get_toy_density("8gaussians")), ValueError, r"samples contains 8 non-finite values"),
    ("metrics/kl-negative-counts", lambda: metrics.histogram_kl_to_uniform(np.array([-1, 2])), ValueError, r"counts must be non-negative finite numbers, got values in \[-1, 2\]"),
    # ---------------------------------------------------------------- flows
    ("flows/log-prob-shape", lambda: flow().log_prob(flow_params(), KEY, jnp.ones((3, 3))), ValueError, r"x must have shape \(batch, 2\), got shape \(3, 3\)"),
    ("flows/log-prob-rank", lambda: flow().log_prob(flow_params(), KEY, jnp.ones((3,))), ValueError, r"x must have rank 2 with shape \(batch, 2\), got shape \(3,\)"),
    ("flows/int-data", lambda: flow().loss(flow_params(), KEY, jnp.ones((3, 2), jnp.int32)), ValueError, r"batch must be a floating-point array, got dtype int32"),
    ("flows/inf-data", lambda: flow().loss(flow_params(), KEY, jnp.full((3, 2), jnp.inf)), ValueError, r"batch contains 6 non-finite values"),
    ("flows/temperature-zero", lambda: flow().sample(flow_params(), KEY, 4, temperature=0.0), ValueError, r"temperature must be a positive finite number, got 0.0"),
    ("flows/temperature-negative", lambda: flow().sample(flow_params(), KEY, 4, temperature=-1.0), ValueError, r"temperature must be a positive finite number, got -1.0"),
    ("flows/num-layers-zero", lambda: flows.realnvp_2d(num_layers=0), ValueError, r"num_layers must be a positive integer, got 0"),
    ("flows/nsf-num-bins-zero", lambda: flows.nsf_2d(num_bins=0), ValueError, r"num_bins must be a positive integer, got 0"),
    ("flows/glow-indivisible-shape", lambda: flows.glow((7, 7, 1)), ValueError, r"glow: height and width of data_shape \(7, 7, 1\) must be divisible by 8"),
    ("flows/params-of-a-deeper-flow", lambda: flow().log_prob(flows.realnvp_2d(num_layers=3, hidden=(8,)).init(KEY, jnp.ones((3, 2))), KEY, jnp.ones((3, 2))), ValueError, r"params do not match this 2-layer realnvp flow .*expected \['layer_0'\], \['layer_1'\]$"),
    # ---------------------------------------------------------------- diffusion
    ("diffusion/ddpm-T-zero", lambda: diffusion.ddpm_2d(T=0), ValueError, r"T must be a positive integer, got 0"),
    ("diffusion/linear-schedule-zero-steps", lambda: diffusion.linear_schedule(0), ValueError, r"num_steps must be a positive integer, got 0"),
    ("diffusion/betas-above-one", lambda: diffusion.schedule_from_betas(jnp.array([0.1, 1.5])), ValueError, r"betas must lie in \(0, 1\), got values in \[0.1, 1.5\]"),
    ("diffusion/ddim-steps-above-T", lambda: ddpm().sample(ddpm_params(), KEY, 2, sampler="ddim", steps=20), ValueError, r"steps must be <= T=10 for DDIM, got steps=20"),
    ("diffusion/ddpm-sampler-fewer-steps", lambda: ddpm().sample(ddpm_params(), KEY, 2, sampler="ddpm", steps=5), ValueError, r"the 'ddpm' sampler runs all T=10 steps, got steps=5"),
    ("diffusion/unknown-sampler", lambda: ddpm().sample(ddpm_params(), KEY, 2, sampler="unipc"), ValueError, r"unknown sampler 'unipc'; valid choices: ddim, ddpm"),
    ("diffusion/ddim-eta-negative", lambda: ddpm().sample(ddpm_params(), KEY, 2, sampler="ddim", steps=5, eta=-1.0), ValueError, r"eta must be a finite number >= 0"),
    ("diffusion/labels-out-of-range", lambda: cond_ddpm().sample(cond_ddpm().init(KEY, jnp.ones((3, 2))), KEY, 2, labels=jnp.array([0, 5])), ValueError, r"labels must lie in \[0, 3\] \(3 is the null label\), got values in \[0, 5\]"),
    ("diffusion/labels-on-unconditional-model", lambda: ddpm().sample(ddpm_params(), KEY, 2, labels=1), ValueError, r"labels given, but the model is unconditional"),
    ("diffusion/conditional-batch-without-labels", lambda: cond_ddpm().loss(cond_ddpm().init(KEY, jnp.ones((3, 2))), KEY, jnp.ones((3, 2))), ValueError, r"batch: a class-conditional DDPM \(num_classes=3\) needs a dict batch"),
    ("diffusion/loss-shape", lambda: ddpm().loss(ddpm_params(), KEY, jnp.ones((3, 3))), ValueError, r"batch must have shape \(batch, 2\), got shape \(3, 3\)"),
    ("diffusion/nan-data", lambda: sde().loss(sde().init(KEY, jnp.ones((3, 2))), KEY, jnp.ones((3, 2)).at[0, 0].set(jnp.nan)), ValueError, r"batch contains 1 non-finite values"),
    ("diffusion/unit-data-out-of-range", lambda: diffusion.ddpm_image((8, 8, 1), base=8, channel_mult=(1,), T=10).check_batch(jnp.full((2, 8, 8, 1), 2.0)), ValueError, r"x must lie in \[0, 1\] for data_range='unit'"),
    ("diffusion/ncsn-increasing-sigmas", lambda: diffusion.NCSN(ncsn().network, (2,), jnp.array([0.1, 1.0, 10.0])), ValueError, r"sigmas must be strictly decreasing"),
    ("diffusion/geometric-sigmas-reversed", lambda: diffusion.geometric_sigmas(0.01, 10.0, 4), ValueError, r"need sigma_max > sigma_min, got sigma_max=0.01, sigma_min=10.0"),
    ("diffusion/score-sde-eps-one", lambda: diffusion.score_sde_2d(eps=1.0), ValueError, r"eps must be in \(0, 1.0\), got 1.0"),
    ("diffusion/unknown-sde", lambda: diffusion.score_sde_2d(sde="vpx"), ValueError, r"unknown sde 'vpx'; valid choices: subvp, ve, vp"),
    ("diffusion/unknown-trace", lambda: sde().log_prob(sde().init(KEY, jnp.ones((3, 2))), KEY, jnp.ones((2, 2)), trace="approx"), ValueError, r"unknown trace 'approx'; valid choices: exact, hutchinson"),
    ("diffusion/q-sample-t-out-of-range", lambda: diffusion.q_sample(KEY, jnp.ones((2, 2)), jnp.array([0, 10]), diffusion.linear_schedule(10)), ValueError, r"t must lie in \{0, ..., 9\} \(T=10\), got values in \[0, 10\]"),
    ("diffusion/params-of-a-wider-ddpm", lambda: ddpm().loss(diffusion.ddpm_2d(hidden=(16,), emb_dim=8, T=10).init(KEY, jnp.ones((3, 2))), KEY, jnp.ones((3, 2))), ValueError, r"params do not match this DDPM \(data_shape=\(2,\)\).*has shape \(16,\), expected \(8,\)"),
    ("diffusion/ncsn-params-of-a-score-sde", lambda: ncsn().sample(diffusion.score_sde_2d(hidden=(16,), emb_dim=8).init(KEY, jnp.ones((3, 2))), KEY, 2, steps=1), ValueError, r"params do not match this NCSN"),
    ("diffusion/sde-params-of-a-vae", lambda: sde().sample(gvae_params(), KEY, 2, steps=2), ValueError, r"params do not match this ScoreSDE .*top-level entries \['decoder'\], \['encoder'\], expected \['params'\]"),
    # ---------------------------------------------------------------- data
    ("data/unknown-toy-density", lambda: synthetic.get_toy_density("9gaussians"), ValueError, r"unknown toy density name '9gaussians'; valid names"),
    ("data/toy-sample-n-zero", lambda: synthetic.get_toy_density("8gaussians").sample(KEY, 0), ValueError, r"n must be a positive int, got n=0"),
    ("data/toy-std-zero", lambda: synthetic.eight_gaussians(std=0.0), ValueError, r"std must be a finite positive number, got 0.0"),
    ("data/toy-log-prob-shape", lambda: synthetic.get_toy_density("8gaussians").log_prob(jnp.ones((3, 3))), ValueError, r"x must have shape \(n, 2\), got shape \(3, 3\)"),
    ("data/sampler-batch-larger-than-data", lambda: BatchSampler(KEY, 4, 5), ValueError, r"batch_size=5 is larger than the data set \(4 examples\)"),
    ("data/sampler-no-examples", lambda: BatchSampler(KEY, 0, 1), ValueError, r"num_examples must be a positive integer, got 0"),
    ("data/train-test-split-fraction", lambda: pipeline.train_test_split(KEY, 10, test_fraction=1.5), ValueError, r"test_fraction must be in \(0, 1\), got 1.5"),
    ("data/digits-unknown-split", lambda: images.load_digits("valid"), ValueError, r"unknown split='valid' for dataset 'digits'; valid choices"),
    ("data/unknown-image-dataset", lambda: images.load_image_dataset("cifar"), ValueError, r"unknown name='cifar'; valid choices"),
    ("data/fetch-unknown-file", lambda: download.fetch("mnist", "train.npz", data_dir="/nonexistent"), ValueError, r"unknown file 'train.npz' for dataset 'mnist'; valid choices"),
    ("data/sampler-negative-step", lambda: BatchSampler(KEY, 4, 2).indices(-1), ValueError, r"step must be a non-negative integer, got -1"),
    ("data/dequantize-one-level", lambda: pipeline.uniform_dequantize(KEY, jnp.ones((2, 4)), num_levels=1), ValueError, r"num_levels must be >= 2 .*got 1"),
    ("data/binarize-out-of-range", lambda: pipeline.dynamic_binarize(KEY, jnp.full((2, 4), 2.0)), ValueError, r"x must hold probabilities in \[0, 1\] for dynamic_binarize; 8 values are outside"),
    # ---------------------------------------------------------------- metrics
    ("metrics/bpd-num-dims-zero", lambda: bits_per_dim(1.0, 0), ValueError, r"num_dims must be a positive integer, got 0"),
    ("metrics/bpd-one-level", lambda: bits_per_dim(1.0, 4, num_levels=1), ValueError, r"num_levels must be >= 2, got 1"),
    ("metrics/bpd-nan-nll", lambda: bits_per_dim(float("nan"), 4), ValueError, r"nll_nats must be finite, got nan"),
    # ---------------------------------------------------------------- train
    ("train/num-steps-float", lambda: _fit(gvae(), X4, num_steps=2.5), ValueError, r"num_steps must be a positive integer, got 2.5"),
    ("train/steps-per-dispatch-zero", lambda: _fit(gvae(), X4, steps_per_dispatch=0), ValueError, r"steps_per_dispatch must be a positive integer, got 0"),
    ("train/checkpoint-every-zero", lambda: _fit(gvae(), X4, checkpoint_every=0), ValueError, r"checkpoint_every must be a positive integer, got 0"),
    ("train/learning-rate-zero", lambda: _fit(gvae(), X4, learning_rate=0.0), ValueError, r"learning_rate must be a positive finite number, got 0.0"),
    ("train/ema-decay-one", lambda: _fit(gvae(), X4, ema_decay=1.0), ValueError, r"ema_decay must be a number in \[0, 1\) or None, got 1.0"),
    ("train/max-to-keep-zero", lambda: _fit(gvae(), X4, max_to_keep=0), ValueError, r"max_to_keep must be a positive integer, got 0"),
    ("train/seed-string", lambda: _fit(gvae(), X4, seed="zero"), ValueError, r"seed must be an int or a PRNG key"),
    ("train/string-data", lambda: _fit(gvae(), np.array([["a"] * 4] * 8)), ValueError, r"train_data must be a numeric array, got dtype <U1"),
    ("train/data-of-another-shape", lambda: _fit(gvae(), np.ones((8, 5), np.float32)), ValueError, r"train_data must have shape \(batch, 4\), got shape \(2, 5\)"),
    ("train/int-data-gaussian-vae", lambda: _fit(gvae(), np.ones((8, 4), np.int32)), ValueError, r"train_data must be a floating-point array, got dtype int32"),
    ("train/init-params-of-another-model", lambda: _fit(gvae(), X4, init_params=mgan_params()), ValueError, r"init_params do not match this model's parameters \(from another model\?\): missing .*decoder.*; unexpected .*discriminator"),
    ("train/step-ema-decay", lambda: make_train_step(lambda p, k, b: (0.0, {}), optax.sgd(1.0), ema_decay=1.5), ValueError, r"ema_decay must be in \[0, 1\), got 1.5"),
]


@pytest.mark.parametrize(
    "call,exc,match",
    [pytest.param(c[1], c[2], c[3], id=c[0], marks=c[4] if len(c) > 4 else ()) for c in CASES],
)
def test_bad_input_is_rejected_clearly(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_catalogue_is_distinct_and_large_enough():
    ids = [c[0] for c in CASES] + [c[0] for c in CLI_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30
    fams = {i.split("/")[0] for i in ids}
    assert {"vae", "gan", "flows", "diffusion", "data", "metrics", "train", "cli"} <= fams


# ---------------------------------------------------------------------- CLI
def _write_run_of_another_model(tmp_path):
    """A finished tiny ``realnvp`` run whose config.json is then edited to say ``vae``."""
    assert cli.main(U.train_argv("realnvp", "8gaussians", tmp_path, "run", 2, 0, "--batch-size", "4",
                                 "--num-layers", "1", "--hidden", "4")) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    cfg.update(model="vae", options={**registry.resolve_options(registry.get_model_spec("vae"), {}), "hidden": "8"})
    (tmp_path / "run" / "config.json").write_text(json.dumps(cfg))
    return tmp_path / "run"


def _corrupt_config(tmp_path):
    run = tmp_path / "bad"
    run.mkdir()
    (run / "config.json").write_text('{"model": "vae", "da')
    return run


T = ["train", "vae", "--no-progress"]
# (id, argv builder (tmp_path -> argv), exit status, match on the error line)
CLI_CASES = [
    ("cli/unknown-model", lambda t: ["train", "vea"], 2, r"argument MODEL: invalid choice: 'vea'"),
    ("cli/unknown-command", lambda t: ["fit"], 2, r"invalid choice: 'fit'"),
    ("cli/steps-not-a-number", lambda t: T + ["--steps", "ten"], 2, r"argument --steps: invalid int value: 'ten'"),
    ("cli/unknown-likelihood-choice", lambda t: T + ["--likelihood", "poisson"], 2, r"argument --likelihood: invalid choice: 'poisson'"),
    ("cli/unknown-data-set", lambda t: T + ["--data", "cifar", "--out", str(t)], 1, r"unknown data set 'cifar'; valid choices: .*digits"),
    ("cli/steps-zero", lambda t: T + ["--steps", "0", "--out", str(t)], 1, r"--steps must be a positive integer, got 0"),
    ("cli/batch-size-negative", lambda t: T + ["--batch-size", "-4", "--out", str(t)], 1, r"--batch-size must be a positive integer, got -4"),
    ("cli/lr-nan", lambda t: T + ["--lr", "nan", "--out", str(t)], 1, r"--lr must be a positive finite number, got nan"),
    ("cli/checkpoint-every-zero", lambda t: T + ["--checkpoint-every", "0", "--out", str(t)], 1, r"--checkpoint-every must be a positive integer, got 0"),
    ("cli/ema-decay-above-one", lambda t: T + ["--ema-decay", "1.5", "--out", str(t)], 1, r"--ema-decay must be in \[0, 1\), got 1.5"),
    ("cli/hidden-negative-width", lambda t: T + ["--hidden", "8,-1", "--out", str(t)], 1, r"--hidden: expected positive comma-separated integers such as '256,128', got '8,-1'"),
    ("cli/batch-larger-than-data", lambda t: ["train", "vae", "--data", "digits", "--batch-size", "100000", "--steps", "1", "--out", str(t), "--no-progress"], 1, r"--batch-size 100000 is larger than the training split of 'digits' \(1437 examples\)"),
    ("cli/sample-num-zero", lambda t: ["sample", str(t), "--num", "0"], 1, r"--num must be a positive integer, got 0"),
    ("cli/sample-not-a-run-dir", lambda t: ["sample", str(t)], 1, r"run directory '.*' has no config.json: not a genjax run directory"),
    ("cli/resume-corrupt-config", lambda t: ["train", "vae", "--out", str(t), "--name", _corrupt_config(t).name, "--resume", "--no-progress"], 1, r"run directory '.*bad' has an unreadable config.json \(JSONDecodeError"),
    ("cli/sample-run-dir-of-another-model", lambda t: ["sample", str(_write_run_of_another_model(t)), "--num", "2"], 1, r"checkpoint at step 2 in .* holds the state of a different model"),
]


@pytest.mark.parametrize("build,status,match", [pytest.param(*c[1:], id=c[0]) for c in CLI_CASES])
def test_cli_bad_input_is_one_line(build, status, match, tmp_path, capsys):
    argv = build(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rc = cli.main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = e.code
    assert rc == status
    line = U.one_line_error(capsys.readouterr().err)
    import re

    assert re.search(match, line), line


def test_cli_error_in_a_subprocess_has_no_traceback(tmp_path):
    """The real entry point: exit status 1, exactly one stderr line, no traceback."""
    res = U.run_cli(["train", "vae", "--data", "cifar", "--out", str(tmp_path)], timeout=300)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [U.one_line_error(res.stderr)]
    assert "unknown data set 'cifar'" in res.stderr


# ---------------------------------------------------------------------- the params check
def test_params_check_is_static_under_jit_and_grad():
    """The params-of-another-model check runs at trace time under jit (same message) and
    leaves the values of a jitted loss and its gradient unchanged."""
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    with pytest.raises(ValueError, match=r"params do not match this VAE"):
        jax.jit(gvae().loss)(mgan_params(), KEY, x)
    params = gvae_params()
    eager, _ = gvae().loss(params, KEY, x)
    jitted, _ = jax.jit(gvae().loss)(params, KEY, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-6)
    # gradient vs a central finite difference along one bias entry
    g = jax.grad(lambda p: gvae().loss(p, KEY, x)[0])(params)
    leaf = params["decoder"]["params"]["mlp"]["out"]["bias"]
    h = 1e-2

    def at(delta):
        p = jax.tree_util.tree_map(lambda v: v, params)
        p["decoder"]["params"]["mlp"]["out"]["bias"] = leaf.at[0].add(delta)
        return float(gvae().loss(p, KEY, x)[0])

    fd = (at(h) - at(-h)) / (2 * h)
    np.testing.assert_allclose(float(g["decoder"]["params"]["mlp"]["out"]["bias"][0]), fd, rtol=1e-2, atol=1e-3)


def test_params_check_names_a_missing_flow_layer():
    """The other direction of the layer mismatch: a 3-layer flow given a 2-layer flow's params."""
    deeper = flows.realnvp_2d(num_layers=3, hidden=(8,))
    with pytest.raises(ValueError, match=r"params do not match this 3-layer realnvp flow .*expected \['layer_0'\], \['layer_1'\], \['layer_2'\]"):
        deeper.sample(flow_params(), KEY, 2)
