"""Kill anywhere in a staged run (issues 19, 20): ``genjax train ldm`` SIGKILLed at a random
moment of its last stage (unet), ``genjax train unclip`` in its prior stage and, resumed, killed
again in its decoder stage, resumed with ``--resume``, end bit-identical to the uninterrupted run, stage by stage: every
checkpoint's state and a byte-identical ``metrics.jsonl``; the finished stages are restored,
not trained again.

A kill inside an earlier stage is the same code path (``fit`` resuming that stage's
directory inside ``fit_stages``): CLIP's is the clip family's case in test_kill_resume.py,
the autoencoder stage's is tests/ldm/test_autoencoder.py's; each staged subprocess costs
about a minute of CPU, so one kill is made here."""

from __future__ import annotations

import json
import random
import sys

import pytest

from genjax import cli, registry

U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

#: each staged model's stages (unclip takes CLIP and the autoencoder of the ldm reference run, --ldm-run:
#: those two stages' resume is ldm's, so its own two are the ones trained and killed here)
STAGES = {"ldm": ("clip", "autoencoder", "unet"), "unclip": ("prior", "decoder")}
STEPS = 8  # per stage; checkpoints every 4 steps, log every 2 (U.LOOP)
TINY = ["--size", "tiny", "--clip-steps", str(STEPS), "--ae-steps", str(STEPS), "--feature-weight", "0", "--T", "10",
        "--batch-size", "8", "--captions-per-image", "2", "--no-eval"]
EXTRA = {"ldm": [], "unclip": ["--prior-steps", str(STEPS), "--prior-batch", "8"]}


def _argv(model: str, out, name: str, references=None) -> list[str]:
    base = ["--ldm-run", str(references("ldm"))] if model == "unclip" else []
    return U.train_argv(model, "digits-captions", out, name, STEPS, 3, *TINY, *EXTRA[model], *base)


def test_every_staged_model_is_covered_here():
    """Staged models share one path (``fit_stages`` under ``genjax train``); each is killed in its
    own stages below; a new staged model must be added here on purpose."""
    staged = {name for name, spec in registry.MODELS.items() if spec.stages is not None}
    assert staged == {"ldm", "ddpm-text", "unclip"}, staged


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    cache = {}

    def get(model: str):
        if model not in cache:
            out = tmp_path_factory.mktemp(f"ref-{model}")
            assert cli.main(_argv(model, out, "run", get)) == 0
            cache[model] = out / "run"
        return cache[model]

    return get


def _assert_stage_identical(a, b, stage: str) -> None:
    sa, sb = U.committed_steps(a / stage / "checkpoints"), U.committed_steps(b / stage / "checkpoints")
    assert sa == sb and sa, (stage, sa, sb)
    for s in sa:
        U.assert_trees_bit_identical(U.load_tree(a / stage / "checkpoints" / str(s)),
                                     U.load_tree(b / stage / "checkpoints" / str(s)), f"{stage} checkpoint {s}: ")
    assert (a / stage / "metrics.jsonl").read_bytes() == (b / stage / "metrics.jsonl").read_bytes(), stage


@pytest.mark.parametrize("model,kills", [("ldm", ("unet",)), ("unclip", ("prior", "decoder"))])
def test_kill_inside_a_stage_then_resume_is_bit_identical(model, kills, references, tmp_path, seed):
    """Killed inside each stage of ``kills`` in turn (one process per kill), then resumed to the
    end: every stage bit-identical to the uninterrupted run; a stage finished before a kill is
    restored, never trained again."""
    rng = random.Random(f"{seed}-{model}-{'-'.join(kills)}")
    argv = _argv(model, tmp_path, "run", references)
    run = tmp_path / "run"
    stages = STAGES[model]
    for i, stage in enumerate(kills):
        target = rng.randrange(2, STEPS, 2)
        proc = U.start_cli(argv + (["--resume"] if i else []))
        assert U.kill_when(proc, lambda: any(s >= target for s in U.logged_steps(run / stage)), timeout=600,
                           extra_delay=rng.uniform(0, 0.1)), f"the run ended before the kill ({proc.stderr.read()})"
    earlier = stages[: stages.index(kills[-1])]
    finished = {s: (run / s / "checkpoints").stat().st_mtime_ns for s in earlier}
    res = U.run_cli(argv + ["--resume"], timeout=600)
    assert res.returncode == 0, res.stderr
    reference = references(model)
    for s in earlier:  # restored, not trained again: its checkpoints untouched
        assert (run / s / "checkpoints").stat().st_mtime_ns == finished[s], s
    for s in stages:
        assert U.logged_steps(run / s) == list(range(2, STEPS + 1, 2)), s
        _assert_stage_identical(reference, run, s)
    assert json.loads((run / "stages.json").read_text()) == json.loads((reference / "stages.json").read_text())
