"""Same input, same plan on a busy machine (issue #16): solve the generated N-workload platform
once on its own, then again while other solves of it load the machine, and compare the plans.

Each solve is `procure solve --format json` in its own process. The plans are compared without
their timing fields (solve_time_s and the like differ by design). Prints one JSON line: the idle
and loaded wall times, the load average seen, and whether the plans are identical.

    python benchmarks/loaded_determinism.py                 # 60 workloads
    python benchmarks/loaded_determinism.py --workloads 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.large_instance import generate  # noqa: E402

TIMING_KEYS = {"solve_time_s", "objective_time_s"}  # the plan's only wall-clock fields (SolverReport)


def strip_timings(obj: Any) -> Any:
    """The plan without wall-clock figures."""
    if isinstance(obj, dict):
        return {k: strip_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [strip_timings(v) for v in obj]
    return obj


def solve(path: Path, time_limit: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "optimizer", "solve", str(path), "--format", "json",
                             "--time-limit", str(time_limit)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"procure solve exited {proc.returncode}: {err.strip()[-500:]}")
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--load", type=int, default=2, help="other solves running beside the loaded one "
                    "(2 on a 2-core machine: three solves share two cores)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"generated-{args.workloads}.yaml"
        path.write_text(yaml.safe_dump(generate(args.workloads, args.seed), sort_keys=False))
        t0 = time.perf_counter()
        idle = finish(solve(path, args.time_limit))
        t1 = time.perf_counter()
        others = [solve(path, args.time_limit) for _ in range(args.load)]  # they load the machine
        try:
            time.sleep(1.0)
            loaded = finish(solve(path, args.time_limit))
            t2 = time.perf_counter()
            load_avg = os.getloadavg()[0]
            plans = [finish(p) for p in others]
        finally:
            for p in others:
                if p.poll() is None:
                    p.kill()
    same = all(strip_timings(p) == strip_timings(idle) for p in [loaded, *plans])
    print(json.dumps({"workloads": args.workloads, "idle_s": round(t1 - t0, 1), "loaded_s": round(t2 - t1, 1),
                      "load_avg_1m_loaded": round(load_avg, 2), "status": [idle["solver"]["status"],
                                                                           loaded["solver"]["status"]],
                      "capex": [idle["capex"], loaded["capex"]], "identical_plans": same}))
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
