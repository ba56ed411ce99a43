"""Speed of sizing + candidates (``build_candidates``) on the generated platform of
``benchmarks/large_instance.py`` (every catalog server, TP 1-8, three precisions per workload).

For each N, three runs, each in a fresh process (cold sizing caches, as a CLI run starts): the
median wall and CPU seconds of ``build_candidates`` alone, and the largest peak RSS of the three
processes. The machine's load average is printed with the table, since a shared machine slows
wall time.

    python benchmarks/sizing_speed.py [--sizes 5 20 60 200] [--repeats 3] [--format json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(n: int, seed: int) -> dict[str, Any]:
    """Resolve generate(n, seed), then time build_candidates (this process only)."""
    from benchmarks.large_instance import generate
    from optimizer.loaders import load_catalog, resolve_scenario
    from optimizer.schema.scenario import Scenario
    from optimizer.sizing.candidates import build_candidates

    rs = resolve_scenario(Scenario.model_validate(generate(n, seed)), ROOT / "benchmarks" / "generated.yaml",
                          load_catalog())
    wall, cpu = time.perf_counter(), time.process_time()
    cands = build_candidates(rs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"workloads": len(rs.scenario.workloads), "candidates": len(cands.inference), "seconds": wall,
            "cpu_seconds": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(n: int, seed: int, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--seed", str(seed)],
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout))
    return {"workloads": runs[0]["workloads"], "candidates": runs[0]["candidates"],
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 60, 200])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=["table", "json"], default="table")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.seed)))
        return
    load_before = os.getloadavg()
    rows = [measure(n, args.seed, args.repeats) for n in args.sizes]
    load_after = os.getloadavg()
    if args.format == "json":
        print(json.dumps({"rows": rows, "loadavg_before": load_before, "loadavg_after": load_after,
                          "cpus": os.cpu_count()}, indent=2))
        return
    print(f"sizing + candidates (build_candidates), median of {args.repeats} fresh processes, seed {args.seed}")
    print(f"{'workloads':>9} {'candidates':>10} {'wall s':>8} {'cpu s':>7} {'peak RSS MB':>11}")
    for r in rows:
        print(f"{r['workloads']:>9} {r['candidates']:>10,} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} "
              f"{r['peak_rss_mb']:>11.0f}")
    print(f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
