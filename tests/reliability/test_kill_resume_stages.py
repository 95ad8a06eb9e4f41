"""Kill anywhere in a staged run (issue 19): ``genjax train ldm`` SIGKILLed at a random moment
of its last stage (unet), resumed with ``--resume``, ends bit-identical to the uninterrupted
run, stage by stage: every checkpoint's state and a byte-identical ``metrics.jsonl``; the
finished stages (clip, autoencoder) are restored, not trained again.

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

STAGES = ("clip", "autoencoder", "unet")
STEPS = 8  # per stage; checkpoints every 4 steps, log every 2 (U.LOOP)
TINY = ["--size", "tiny", "--clip-steps", str(STEPS), "--ae-steps", str(STEPS), "--feature-weight", "0", "--T", "10",
        "--batch-size", "8", "--captions-per-image", "2", "--no-eval"]


def _argv(out, name: str) -> list[str]:
    return U.train_argv("ldm", "digits-captions", out, name, STEPS, 3, *TINY)


def test_every_staged_model_is_covered_here():
    """Staged models share one path (``fit_stages`` under ``genjax train``); ldm, the one with
    the most stages, is killed in each; a new staged family must be added here on purpose."""
    staged = {name: spec.family for name, spec in registry.MODELS.items() if spec.stages is not None}
    assert "ldm" in staged and set(staged.values()) == {"ldm"}, staged


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref-ldm")
    assert cli.main(_argv(out, "run")) == 0
    return out / "run"


def _assert_stage_identical(a, b, stage: str) -> None:
    sa, sb = U.committed_steps(a / stage / "checkpoints"), U.committed_steps(b / stage / "checkpoints")
    assert sa == sb and sa, (stage, sa, sb)
    for s in sa:
        U.assert_trees_bit_identical(U.load_tree(a / stage / "checkpoints" / str(s)),
                                     U.load_tree(b / stage / "checkpoints" / str(s)), f"{stage} checkpoint {s}: ")
    assert (a / stage / "metrics.jsonl").read_bytes() == (b / stage / "metrics.jsonl").read_bytes(), stage


@pytest.mark.parametrize("stage", ["unet"])
def test_kill_inside_a_stage_then_resume_is_bit_identical(stage, reference, tmp_path, seed):
    rng = random.Random(f"{seed}-ldm-{stage}")
    argv = _argv(tmp_path, "run")
    run = tmp_path / "run"
    target = rng.randrange(2, STEPS, 2)
    proc = U.start_cli(argv)
    assert U.kill_when(proc, lambda: any(s >= target for s in U.logged_steps(run / stage)),
                       extra_delay=rng.uniform(0, 0.1)), f"the run ended before the kill ({proc.stderr.read()})"
    earlier = STAGES[: STAGES.index(stage)]
    finished = {s: (run / s / "checkpoints").stat().st_mtime_ns for s in earlier}
    res = U.run_cli(argv + ["--resume"])
    assert res.returncode == 0, res.stderr
    for s in earlier:  # restored, not trained again: its checkpoints untouched
        assert (run / s / "checkpoints").stat().st_mtime_ns == finished[s], s
    for s in STAGES:
        assert U.logged_steps(run / s) == list(range(2, STEPS + 1, 2)), s
        _assert_stage_identical(reference, run, s)
    assert json.loads((run / "stages.json").read_text()) == json.loads((reference / "stages.json").read_text())
