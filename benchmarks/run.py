"""The benchmarks' one entry point.

    python -m benchmarks.run [--only NAME ...] [--quick] [--out results.json]

Prints one table per entry (with each target from issue 7 and the gap when missed)
and writes a JSON file with the environment (device, jax/flax/torch versions, CPU
count, load, date), the matmul peak of this run, and every figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import time

from benchmarks import common

ENTRIES = ("train_step", "fused_steps", "many_seeds", "sampling", "data_parallel", "mixed_precision", "families", "breakdown")

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

    meta = common.environment(quick=args.quick, argv=argv)
    peak = common.matmul_peak(settings)
    meta["matmul_peak"] = {"n": peak["n"], "gflops_per_s": peak["flops_per_s"] / 1e9}
    print(f"genjax benchmarks: {meta['device']} ({meta['processor']}), {meta['cpu_count']} CPUs, load {meta['load_average']}")
    print(f"jax {meta['jax']}, flax {meta['flax']}, optax {meta['optax']}, torch {meta['torch'] or 'absent'}; {meta['date']}")
    print(f"matmul peak ({peak['n']}x{peak['n']} float32 jnp.dot): {peak['flops_per_s'] / 1e9:.1f} GFLOP/s")
    if args.quick:
        print("--quick: tiny repeats and sizes; the figures below only show that it runs")
    load = meta["load_average"]
    if load and meta["cpu_count"] and load[0] > meta["cpu_count"]:
        print(f"warning: load average {load[0]:.1f} > {meta['cpu_count']} CPUs: timings are not meaningful")

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "entries": results}, indent=1, default=float) + "\n")
    tmp.replace(path)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
