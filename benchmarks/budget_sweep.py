"""Budget sweep benchmark for `procure compare`: a 16-point budget sweep of bank-rollout.

Target (issue 7): the whole sweep in at most 15 s on a 2-core machine. Prints the wall time, each
variant's solve time, and served demand and capex per budget, then checks what the sweep must show:
served demand never falls as the budget rises, and capex with contingency and tax never exceeds the
budget. It prints the recommended variant (the knee: the cheapest within 1 point of full coverage). Exit status 1
when a check or the time target fails.

    python benchmarks/budget_sweep.py                      # 16 budgets, $0.3M..$2.4M, 2 processes
    python benchmarks/budget_sweep.py --jobs 1 --range 2e5:3e6:16 --workbook /tmp/sweep.xlsx

bank-rollout's cheapest plan serving all demand costs about $2.02M (servers $1.57M + quote lines:
support, storage, network), so budgets below that bind and
are solved with the coverage objective (most priority-weighted demand, then the cheapest plan).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.compare import build_variants, parse_budget_range, run_comparison  # noqa: E402
from optimizer.loaders import load_scenario  # noqa: E402

TARGET_S = 15.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "bank-rollout.yaml")
    ap.add_argument("--range", default="3e5:2.4e6:16", help="START:STOP:COUNT budgets (inclusive)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (the target is for 2 cores)")
    ap.add_argument("--time-limit", type=float, default=None, help="solver time limit per variant, s")
    ap.add_argument("--workbook", type=Path, help="also write the comparison workbook here (timed separately)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    rs = load_scenario(args.scenario)
    variants = build_variants(rs, budgets=parse_budget_range(args.range), use_whatif=False)
    result = run_comparison(rs, variants, time_limit_s=args.time_limit, jobs=args.jobs)
    wall = time.perf_counter() - t0

    cur = result.currency
    print(f"{rs.scenario.name}: {len(variants)} budgets {args.range} on {result.jobs} processes")
    print(f"{'budget':>14} {'objective':>9} {'status':>8} {'capex':>14} {'served':>8} {'req/s':>7} "
          f"{'pts/1M':>7} {'per pt':>9} {'solve s':>8} {'task s':>7} lower bound from")
    for v in result.variants:
        marginal = f"{v.marginal_points_per_million:7.2f}" if v.marginal_points_per_million is not None else "      -"
        per_point = f"{v.marginal_cost_per_point:9,.0f}" if v.marginal_cost_per_point is not None else "        -"
        print(f"{v.budget or 0:14,.0f} {v.objective or '-':>9} {v.status:>8} {v.capex or 0:14,.0f} "
              f"{(v.served_fraction or 0):8.2%} {(v.served_requests_fraction or 0):7.1%} {marginal} {per_point} "
              f"{v.solve_time_s or 0:8.2f} {v.wall_time_s:7.2f} {v.bounded_by or '-'}")
    solve_sum = sum(v.wall_time_s for v in result.variants)
    print(f"full-demand capex (no cap): {result.variants[0].full_demand_capex or 0:,.0f} {cur}")
    print(f"recommended: {result.recommendation}")
    print(f"sum of variant task times {solve_sum:.2f} s; comparison {result.wall_time_s:.2f} s; "
          f"wall time (load + sizing + solves) {wall:.2f} s (target <= {TARGET_S:g} s)")
    if args.workbook:
        from optimizer.report.compare_excel import write_compare_workbook

        t1 = time.perf_counter()
        write_compare_workbook(result, rs, args.workbook, force=True)
        print(f"workbook {args.workbook} written in {time.perf_counter() - t1:.2f} s")

    failures = []
    ordered = sorted((v for v in result.variants if v.plan is not None), key=lambda v: v.budget or 0.0)
    for a, b in itertools.pairwise(ordered):
        if (b.served_fraction or 0.0) < (a.served_fraction or 0.0) - 1e-9:
            failures.append(f"served demand falls from {a.name} to {b.name}")
    for v in result.variants:
        if v.plan is None:
            failures.append(f"{v.name}: no plan ({v.reason})")
        elif v.budget is not None and (v.total_with_tax or 0.0) > v.budget * (1 + 1e-9):
            failures.append(f"{v.name}: capex with contingency and tax {v.total_with_tax:,.0f} exceeds the budget")
    if wall > TARGET_S:
        failures.append(f"wall time {wall:.2f} s exceeds {TARGET_S:g} s")
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("PASS: served demand never falls, capex within every budget, time within target")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
