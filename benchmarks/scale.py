"""Scale benchmark (issue #16): each phase of `procure solve` on generated platforms of N workloads.

Uses benchmarks/large_instance.py's generator (every catalog server, TP 1-8, PP, three precisions).
Each N runs in its own process, so peak RSS is that instance's; with --repeats R the median of R
runs is printed. The load average is printed too: timings on a busy machine are not comparable.
"peak MB" is the solving process's peak RSS; "worker MB" the largest peak of its sizing workers
(forked: optimizer/sizing/parallel.py; 0 when sizing ran serially), whose pages the two share
until written, so the machine's peak is at most peak + workers x worker MB.

    python benchmarks/scale.py                      # N = 5, 20, 60, 200, one run each
    python benchmarks/scale.py --workloads 20 60 --repeats 3 --time-limit 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from benchmarks.large_instance import generate
from optimizer.errors import RackingError
from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.model.build import build_model, limits_of
from optimizer.model.extract import extract_plan
from optimizer.model.check import check_plan
from optimizer.model.pipeline import settings_of
from optimizer.model.solve import solve_model
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import build_candidates

t0 = time.perf_counter()
rs = resolve_scenario(Scenario.model_validate(generate({n}, {seed})), Path("generated.yaml"), load_catalog())
t1 = time.perf_counter()
cands = build_candidates(rs)
t2 = time.perf_counter()
mm = build_model(rs, cands, limits_of(rs), "capex")
t3 = time.perf_counter()
settings = settings_of(rs, time_limit_s={time_limit}, gap={gap})
out = solve_model(mm, settings, "capex")
t4 = time.perf_counter()
try:
    plan = extract_plan(mm, out, settings, "capex")
except RackingError:  # as the pipeline does: re-solve with the per-rack rows (counted in stage 1)
    mm = build_model(rs, cands, limits_of(rs), "capex", exact_racks=True)
    again = solve_model(mm, settings, "capex")
    again.stage1_time_s += out.solve_time_s
    again.solve_time_s += out.solve_time_s
    out = again
    t4 = time.perf_counter()
    plan = extract_plan(mm, out, settings, "capex")
check_plan(plan, rs)
t5 = time.perf_counter()
print(json.dumps({{
    "workloads": {n}, "candidates": len(cands.inference) + len(cands.finetune),
    "variables": mm.model.get_num_variables(), "sizing_s": t2 - t1, "build_s": t3 - t2,
    "stage1_s": out.stage1_time_s, "tiebreak_s": out.solve_time_s - out.stage1_time_s,
    "end_to_end_s": t5 - t0, "gap": out.gap, "status": out.status, "stopped_by": out.stage1_stop,
    "capex": plan.capex, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}}))
"""


def run_one(n: int, seed: int, time_limit: float, gap: float) -> dict[str, float | str]:
    code = CHILD.format(root=str(ROOT), n=n, seed=seed, time_limit=time_limit, gap=gap)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"N={n} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=int, nargs="+", default=[5, 20, 60, 200])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=60.0, help="per solver stage, seconds")
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores: above ~0.5 the timings are not an idle machine's)")
    head = (f"{'workloads':>9} {'candidates':>10} {'sizing s':>9} {'build s':>8} {'stage 1 s':>9} "
            f"{'tie-break s':>11} {'end to end s':>12} {'gap':>8} {'stopped by':>11} {'peak MB':>8} {'worker MB':>9} "
            f"{'capex':>14}")
    print(head)
    for n in args.workloads:
        runs = [run_one(n, args.seed, args.time_limit, args.gap) for _ in range(args.repeats)]

        def med(key: str, runs: list[dict[str, float | str]] = runs) -> float:
            return statistics.median(float(r[key]) for r in runs)

        last = runs[-1]
        print(f"{n:>9} {int(med('candidates')):>10,} {med('sizing_s'):>9.2f} {med('build_s'):>8.2f} "
              f"{med('stage1_s'):>9.2f} {med('tiebreak_s'):>11.2f} {med('end_to_end_s'):>12.2f} "
              f"{med('gap'):>8.3%} {last['stopped_by']!s:>11} {med('peak_mb'):>8.0f} {med('worker_peak_mb'):>9.0f} "
              f"{med('capex'):>14,.0f}",
              flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
