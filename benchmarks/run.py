"""The benchmarks' one entry point.

    python -m benchmarks.run [--only NAME ...] [--quick] [--out results.json]

Prints one table per entry (with each target from issue 7 and the gap when missed)
and writes ONE JSON file per run, replacing ``--out`` whole (never merged with an
earlier file): ``meta`` (quick mode, load average at the start, the matmul peak of this
run), ``entries`` (every figure) and ``run`` (command, git commit, machine, device, CPU
count, jax/flax/optax/torch versions, date: ``genjax.results.write_result``). A committed
result is therefore always the output of one command; to publish entries measured at
different times, commit one file per run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time

from benchmarks import common
from genjax.results import run_info, write_result

ENTRIES = ("train_step", "fused_steps", "many_seeds", "sampling", "data_parallel", "multihost", "mixed_precision", "families",
           "breakdown", "evaluation")

#: entries whose ``run`` also takes the matmul peak of this run (FLOP/s)
TAKES_PEAK = ("train_step", "breakdown")


def run_entry(name: str, settings: common.Settings, peak: dict | None) -> common.EntryResult:
    """Runs ``benchmarks.<name>.run`` (imported only when asked for)."""
    if name not in ENTRIES:
        raise ValueError(f"unknown benchmark {name!r}; valid choices: {', '.join(ENTRIES)}")
    module = importlib.import_module(f"benchmarks.{name}")
    if name in TAKES_PEAK:
        return module.run(settings, peak=peak["flops_per_s"])
    return module.run(settings)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=ENTRIES, help="run only this entry (repeatable)")
    p.add_argument("--quick", action="store_true", help="tiny repeats and sizes: checks that it runs, figures mean nothing")
    p.add_argument("--out", default="benchmarks/results.json", help="JSON output path (default %(default)s)")
    args = p.parse_args(argv)
    names = tuple(dict.fromkeys(args.only)) if args.only else ENTRIES
    settings = common.Settings.make(args.quick)

    meta = common.environment(quick=args.quick)
    env = run_info(program="-m benchmarks.run", argv=argv)
    peak = common.matmul_peak(settings)
    meta["matmul_peak"] = {"n": peak["n"], "gflops_per_s": peak["flops_per_s"] / 1e9}
    v = env["versions"]
    print(f"genjax benchmarks: {env['backend']}:{env['device_kind']} ({env['cpu']}), {env['cpu_count']} CPUs, "
          f"load {meta['load_average']}")
    print(f"jax {v['jax']}, flax {v['flax']}, optax {v['optax']}, torch {v['torch'] or 'absent'}; {env['timestamp_utc']}")
    print(f"matmul peak ({peak['n']}x{peak['n']} float32 jnp.dot): {peak['flops_per_s'] / 1e9:.1f} GFLOP/s")
    if args.quick:
        print("--quick: tiny repeats and sizes; the figures below only show that it runs")
    load = meta["load_average"]
    if load and env["cpu_count"] and load[0] > env["cpu_count"]:
        print(f"warning: load average {load[0]:.1f} > {env['cpu_count']} CPUs: timings are not meaningful")

    results = {}
    for name in names:
        t0 = time.perf_counter()
        res = run_entry(name, settings, peak)
        out = res.to_json()
        out["wall_s"] = time.perf_counter() - t0
        results[name] = out
        print()
        print(common.format_entry(res))
        print(f"  ({out['wall_s']:.0f} s)")

    path = pathlib.Path(args.out)
    # this run's figures only; a file already at --out is replaced whole, never merged
    write_result(path, json.loads(json.dumps({"meta": meta, "entries": results}, default=float)),
                 program="-m benchmarks.run", argv=argv)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
