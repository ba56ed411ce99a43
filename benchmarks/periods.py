"""Plans over periods (issue #14): solve time of scenarios/bank-rollout-phased.yaml (target: proven
optimal in ≤ 10 s) and gap and time of a generated 3-year, 20-workload instance (target: ≤ 0.5 %
in ≤ 60 s). Prints one JSON line per instance, with the load average (a busy machine is slower).

    python benchmarks/periods.py                          # both
    python benchmarks/periods.py --skip-bank --workloads 20 --time-limit 60
    python benchmarks/periods.py --skip-bank --per-sku    # without population groups, to compare
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.large_instance import generate  # noqa: E402
from optimizer.loaders import load_catalog, load_scenario, resolve_scenario  # noqa: E402
from optimizer.model.periods import build_period_model, year_tables  # noqa: E402
from optimizer.model.periods_plan import solve_period_model  # noqa: E402
from optimizer.model.pipeline import settings_of  # noqa: E402
from optimizer.schema.scenario import Scenario  # noqa: E402


def generated(n: int, seed: int, years: int) -> dict[str, Any]:
    """large_instance.generate's platform over ``years`` periods: each workload grows 0-60 % a year,
    prices fall 15 % a year, objective npv at 8 %."""
    data = generate(n, seed)
    rng = random.Random(seed + 1)
    for w in data["workloads"]:
        w["growth_per_year"] = round(rng.uniform(0.0, 0.6), 2)
    data.update(objective="npv", periods={"years": years, "discount_rate": 0.08, "price_decline_per_year": 0.15})
    return data


def run(label: str, rs: Any, time_limit: float, gap: float, merge: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    tables = year_tables(rs)
    t1 = time.perf_counter()
    pm = build_period_model(rs, tables, merge=merge)
    t2 = time.perf_counter()
    _, report = solve_period_model(pm, settings_of(rs, time_limit_s=time_limit, gap=gap))
    return {"instance": label, "merged": merge, "sizing_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2),
            "solve_s": round(report.solve_time_s, 2), "status": report.status, "stopped_by": report.stopped_by,
            "gap": report.gap, "npv": round(report.objective, 2), "variables": report.variables,
            "constraints": report.constraints, "nodes": report.nodes, "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=int, default=20)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--gap", type=float, default=0.005, help="relative gap of the generated instance")
    ap.add_argument("--skip-bank", action="store_true")
    ap.add_argument("--skip-generated", action="store_true")
    ap.add_argument("--per-sku", action="store_true", help="no population groups (one column per SKU)")
    args = ap.parse_args()
    if not args.skip_bank:
        rs = load_scenario(ROOT / "scenarios" / "bank-rollout-phased.yaml")
        print(json.dumps(run("bank-rollout-phased", rs, 60.0, rs.scenario.solver.gap, not args.per_sku)), flush=True)
    if not args.skip_generated:
        data = generated(args.workloads, args.seed, args.years)
        rs = resolve_scenario(Scenario.model_validate(data), Path("generated.yaml"), load_catalog())
        label = f"generated-{args.workloads}w-{args.years}y"
        print(json.dumps(run(label, rs, args.time_limit, args.gap, not args.per_sku)), flush=True)


if __name__ == "__main__":
    main()
