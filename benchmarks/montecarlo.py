"""Monte-Carlo benchmark for `procure compare --monte-carlo`: 200 samples of bank-rollout.

Prints the wall time on local processes, the samples per second, and the summary (cost and served
demand p10/p50/p90 of the recommended plan, the probability it serves all demand, each sample's
optimal cost, the plan that holds in 90 % of samples). With ``--ray`` it runs the same seed again
on a Ray cluster started on this machine (``ray.init(num_cpus=--workers)``) and checks that the
results are the same (exit 1 when they differ).

    python benchmarks/montecarlo.py                  # 200 samples, seed 0, 2 processes
    python benchmarks/montecarlo.py --ray            # and on local Ray (pip install 'procure[ray]')
    python benchmarks/montecarlo.py --samples 50 --workers 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.loaders import load_scenario  # noqa: E402
from optimizer.montecarlo import MonteCarloResult, run_monte_carlo, same_results  # noqa: E402


def _summary(r: MonteCarloResult) -> str:
    def q(x: object) -> str:
        return " / ".join(f"{getattr(x, k):,.4g}" for k in ("p10", "p50", "p90"))

    robust = r.robust_plan
    lines = [f"recommended plan: capex {r.recommended.capex:,.0f}; cost p10/p50/p90 {q(r.cost)}; "
             f"served {q(r.served)}; P(all served) {r.p_all_served:.1%}",
             f"each sample's optimum: cost {q(r.optimal_cost) if r.optimal_cost else '-'}; "
             f"{r.unsolved_samples} of {r.samples} samples have no feasible plan",
             (f"holds in 90%: {robust.source}, capex {robust.capex:,.0f}, P(all served) {robust.p_all_served:.1%}"
              if robust else f"no plan holds in 90%; the most: {r.most_robust_plan.source} at "
              f"{r.most_robust_plan.p_all_served:.1%}, capex {r.most_robust_plan.capex:,.0f}")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "bank-rollout.yaml")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (and Ray CPUs)")
    ap.add_argument("--ray", action="store_true", help="also run on a local Ray cluster and compare")
    args = ap.parse_args(argv)
    rs = load_scenario(args.scenario)

    t = time.perf_counter()
    local = run_monte_carlo(rs, args.samples, seed=args.seed, workers=args.workers)
    wall = time.perf_counter() - t
    print(f"{args.samples} samples of {args.scenario.name}, seed {args.seed}, local on {args.workers} "
          f"processes: {wall:.1f} s ({args.samples / wall:.1f} samples/s)")
    print(_summary(local))
    if not args.ray:
        return 0
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=args.workers, log_to_driver=False, include_dashboard=False)
    started = time.perf_counter() - t
    try:
        t = time.perf_counter()
        on_ray = run_monte_carlo(rs, args.samples, seed=args.seed, executor="ray", workers=args.workers)
        wall = time.perf_counter() - t
    finally:
        ray.shutdown()
    same = same_results(local, on_ray)
    print(f"Ray (local cluster, {args.workers} CPUs; start {started:.1f} s): {wall:.1f} s; "
          f"same results as local: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
