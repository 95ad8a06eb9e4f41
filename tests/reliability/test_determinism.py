"""Determinism: the same ``genjax train`` command with the same seed, run in two separate
processes (at the same time), gives bit-identical checkpoints (params, optimizer state,
EMA, key) and a byte-identical ``metrics.jsonl``; another seed gives different numbers
(so the comparison can fail). CPU; GPU notes in docs/reliability.md.
"""

from __future__ import annotations

import sys

import numpy as np


U = sys.modules["genjax_tests_reliability_util"]  # loaded by conftest.py

CASES = {
    "vae": ("vae", "digits", ["--batch-size", "8", "--latent-dim", "2", "--hidden", "8"]),
    "gan": ("gan", "8gaussians", ["--batch-size", "8", "--latent-dim", "2", "--g-hidden", "8", "--d-hidden", "8"]),
}


def test_same_seed_two_processes_bit_identical(tmp_path):
    """All five processes start at once: vae seed 4 twice and seed 5 once, gan seed 4 twice."""
    runs = {("vae", "a"): 4, ("vae", "b"): 4, ("vae", "c"): 5, ("gan", "a"): 4, ("gan", "b"): 4}
    procs = {}
    for (case, name), seed in runs.items():
        model, data, opts = CASES[case]
        procs[case, name] = U.start_cli(U.train_argv(model, data, tmp_path / case, name, 12, seed, *opts))
    for key, p in procs.items():
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"{key}: {err}"
    for case in CASES:
        U.assert_runs_bit_identical(tmp_path / case / "a", tmp_path / case / "b")
    # a different seed: different parameters and metrics (the comparison above is not vacuous)
    a, c = tmp_path / "vae" / "a", tmp_path / "vae" / "c"
    fa = U.flat(U.load_tree(a / "checkpoints" / "12")["params"])
    fc = U.flat(U.load_tree(c / "checkpoints" / "12")["params"])
    assert sorted(fa) == sorted(fc)
    assert any(not np.array_equal(fa[k], fc[k]) for k in fa)
    assert (a / "metrics.jsonl").read_bytes() != (c / "metrics.jsonl").read_bytes()
