"""Kill anywhere: ``genjax train`` SIGKILLed at a seeded random moment, resumed with
``--resume``, ends bit-identical to the uninterrupted run: every checkpoint's params,
optimizer state, EMA, key and step, and a byte-identical ``metrics.jsonl`` with each
step logged exactly once.

One model per family in ``genjax.registry`` (the parametrization reads the registry),
each with one random-moment kill. For ONE family (``WRITE_KILL_FAMILY``, a cheap one)
the resumed run is killed a second time, in the middle of a checkpoint write, before
it is resumed to the end: that path (orbax's temporary directory, the commit rename)
is family-agnostic code in ``genjax.train.checkpoint``, so one family covers it and
the test costs about two subprocesses per family instead of three.
The uninterrupted reference runs in this process (``cli.main``); the interrupted runs
are subprocesses, so the comparison is also across processes.
"""

from __future__ import annotations

import random
import sys

import pytest

from genjax import cli, registry


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

STEPS = 24  # checkpoints every 4 steps (3 kept), log every 2, 2 steps per dispatch (see _util.LOOP)

#: family -> (model, data, tiny options). One entry per family of the registry.
TINY = {
    "vae": ("vae", "digits", ["--batch-size", "8", "--latent-dim", "2", "--hidden", "8"]),
    "gan": ("gan", "8gaussians", ["--batch-size", "8", "--latent-dim", "2", "--g-hidden", "8", "--d-hidden", "8"]),
    "flows": ("realnvp", "two-moons", ["--batch-size", "8", "--num-layers", "2", "--hidden", "8"]),
    # ---- DIFFUSION SLOT -------------------------------------------------------------
    # Runs whenever genjax/registry has a model of family "diffusion" (ddpm), read from
    # the registry above; tiny: width 8, 10 diffusion steps.
    "diffusion": ("ddpm", "8gaussians", ["--batch-size", "8", "--hidden", "8", "--T", "10"]),
    # CLIP (issue 18): the bundled captioned digits, tiny towers, 2 captions per image
    "clip": ("clip", "digits-captions", ["--batch-size", "8", "--size", "tiny", "--captions-per-image", "2"]),
}


#: the family whose resumed run is also SIGKILLed inside a checkpoint write
WRITE_KILL_FAMILY = "flows"


def _families() -> list[str]:
    """The families of single-run models (staged models: test_kill_resume_stages.py)."""
    return sorted({spec.family for spec in registry.MODELS.values() if spec.stages is None})


def test_every_registered_family_has_a_kill_case():
    """A family added to the registry without a kill-and-resume case fails here."""
    missing = [f for f in _families() if f not in TINY]
    assert not missing, f"add a tiny case to TINY for the families {missing}"
    for f in _families():
        model = TINY[f][0]
        assert model in registry.MODELS and registry.MODELS[model].family == f, (f, model)
    assert WRITE_KILL_FAMILY in _families()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """family -> the uninterrupted run directory (built lazily, in this process)."""
    cache = {}

    def get(family):
        if family not in cache:
            model, data, opts = TINY[family]
            out = tmp_path_factory.mktemp(f"ref-{family}")
            rc = cli.main(U.train_argv(model, data, out, "run", STEPS, 7, *opts))
            assert rc == 0
            cache[family] = out / "run"
        return cache[family]

    return get


@pytest.mark.parametrize("family", [f for f in _families() if f in TINY])
def test_kill_anywhere_then_resume_is_bit_identical(family, references, tmp_path, seed, capsys):
    model, data, opts = TINY[family]
    rng = random.Random(f"{seed}-{family}")
    ref = references(family)
    capsys.readouterr()
    argv = U.train_argv(model, data, tmp_path, "run", STEPS, 7, *opts)
    resume = argv + ["--resume"]
    run, ckpts = tmp_path / "run", tmp_path / "run" / "checkpoints"

    # 1. SIGKILL at a random moment of training: a random logged step, then 0-100 ms more
    target = rng.randrange(2, 13, 2)
    proc = U.start_cli(argv)
    assert U.kill_when(proc, lambda: any(s >= target for s in U.logged_steps(run)), extra_delay=rng.uniform(0, 0.1)), \
        f"the run ended before the kill ({proc.stderr.read() if proc.stderr else ''})"
    killed_at = max(U.logged_steps(run) or [0])

    # 2. (WRITE_KILL_FAMILY only) resume, and SIGKILL it while it writes a checkpoint: the
    #    save-delay hook holds orbax's temporary directory open for 1.5 s before the commit
    victim = None
    if family == WRITE_KILL_FAMILY:
        before = U.committed_steps(ckpts)
        nxt = (max(before, default=0) // 4 + 1) * 4
        candidates = [c for c in (nxt, nxt + 4) if c <= STEPS]
        assert candidates, f"the first kill landed after the last checkpoint (logged step {killed_at})"
        victim = rng.choice(candidates)
        tmp = ckpts / f"{victim}.orbax-checkpoint-tmp"
        proc = U.start_cli(resume, GENJAX_TEST_SAVE_DELAY_S="1.5")
        assert U.kill_when(proc, tmp.exists, extra_delay=rng.uniform(0, 0.5)), "the run ended before the kill"
        assert tmp.exists(), "the kill did not land inside the checkpoint write"
        assert victim not in U.committed_steps(ckpts)  # the interrupted write is not a checkpoint

    # 3. resume to the end
    res = U.run_cli(resume)
    assert res.returncode == 0, res.stderr
    assert not U.tmp_checkpoints(ckpts)

    # no duplicated or missing steps, one final evaluation, and bit-identical to the reference
    assert U.logged_steps(run) == list(range(2, STEPS + 1, 2))
    assert U.logged_steps(run, "eval") == [STEPS]
    U.assert_runs_bit_identical(ref, run)
    print(f"{family}: killed at logged step {killed_at} (target {target})"
          + (f", then inside the write of checkpoint {victim}" if victim is not None else ""))
