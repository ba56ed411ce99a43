"""Scale benchmark for `procure solve`: a generated platform with >= 50 workloads.

Every catalog server is allowed, TP 1/2/4/8 and three precisions per workload. Prints candidate
count, solve time, status, gap and peak memory, and the cost of a naive plan (each workload alone
on its cheapest single-SKU deployment, no sharing of servers) beside the optimum.

    python benchmarks/large_instance.py [--workloads 60] [--time-limit 60] [--seed 0]
    python benchmarks/large_instance.py --scenario scenarios/bank-rollout.yaml   # end-to-end timing
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.loaders import (  # noqa: E402
    ResolvedScenario,
    load_catalog,
    load_scenario,
    resolve_model,
    resolve_scenario,
)
from optimizer.model.pipeline import settings_of, solve_scenario  # noqa: E402
from optimizer.schema.scenario import InferenceWorkload, Scenario  # noqa: E402
from optimizer.sizing.architecture import parse_config  # noqa: E402
from optimizer.sizing.candidates import CandidateSet, build_candidates  # noqa: E402

MODELS = ["Qwen2.5-7B", "Qwen2.5-14B", "Qwen2.5-32B", "Qwen2.5-72B", "Llama-3.1-8B", "Llama-3.3-70B",
          "Mistral-7B", "Mixtral-8x7B", "Qwen3-8B", "Qwen3-32B", "Gemma-2-27B", "GLM-4-9B", "Yi-34B",
          "Qwen2-57B-A14B", "DeepSeek-V2-Lite", "Llama-2-13B"]
PRECISIONS = [["bf16", "fp8", "int4"], ["bf16", "int8", "int4"], ["fp8", "int8", "int4"]]


def _positions(model: str) -> int:
    """Context the model's config supports (Yi-34B and Llama-2-13B stop at 4,096)."""
    catalog = load_catalog()
    return parse_config(resolve_model(model, catalog).config, model).max_context


def generate(n: int, seed: int) -> dict[str, Any]:
    """A reproducible large platform: n workloads with varied models, lengths, rates and SLOs.

    Contexts are 8,192 tokens, or the model's own limit where that is shorter (prompts shortened
    to fit), so every generated scenario is valid input."""
    rng = random.Random(seed)
    workloads = []
    for i in range(n):
        inp = rng.choice([256, 512, 1000, 2000, 4000])
        out = rng.choice([64, 128, 300, 500, 1000])
        model = MODELS[i % len(MODELS)]
        ctx = min(8192, _positions(model))
        inp = min(inp, ctx - out)
        workloads.append({
            "name": f"w{i:02d}-{model.lower()}", "model": model,
            "precisions": PRECISIONS[i % 3], "requests_per_s": round(rng.uniform(0.5, 12), 2),
            "input_tokens": inp, "output_tokens": out, "max_context": ctx,
            "slo": {"ttft_ms": rng.choice([1000, 2000, 4000]), "tpot_ms": rng.choice([40, 60, 80])},
            "min_replicas": rng.choice([1, 1, 2]),
        })
    return {"name": f"benchmark-{n}", "site": {"power_kw": 5000, "pue": 1.3, "racks": 60, "rack_power_kw": 40,
                                              "rack_units": 42, "electricity_per_kwh": 0.1},
            "constraints": {"max_gpu_types": 4}, "objective": "capex", "workloads": workloads}


def naive_cost(rs: ResolvedScenario, cands: CandidateSet) -> float:
    """Each workload alone on its cheapest single-SKU deployment: replicas rounded up, then servers."""
    total = 0.0
    for w in rs.scenario.workloads:
        if not isinstance(w, InferenceWorkload):
            continue
        best = math.inf
        for c in cands.for_workload(w.name):
            sku = cands.skus[c.sku]
            replicas = max(w.min_replicas, math.ceil(w.requests_per_s / (rs.scenario.headroom * c.capacity_rps)))
            servers = math.ceil(replicas * c.gpus_per_replica / sku.gpus)
            best = min(best, servers * sku.unit_price)
        total += best
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", type=int, default=60)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenario", type=Path, help="time a scenario file end to end instead")
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.scenario:
        rs = load_scenario(args.scenario)
    else:
        rs = resolve_scenario(Scenario.model_validate(generate(args.workloads, args.seed)),
                              ROOT / "benchmarks" / "generated.yaml", load_catalog())
    t_load = time.perf_counter() - t0
    cands = build_candidates(rs)
    t_cand = time.perf_counter() - t0 - t_load
    settings = settings_of(rs, time_limit_s=args.time_limit, gap=args.gap)
    result = solve_scenario(rs, settings, cands=cands)
    total = time.perf_counter() - t0
    plan = result.plan
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    naive = naive_cost(rs, cands)
    print(f"instance          {rs.scenario.name}: {len(rs.scenario.workloads)} workloads, "
          f"{len(cands.skus)} server SKUs")
    print(f"candidates        {len(cands.inference)} inference + {len(cands.finetune)} finetune")
    print(f"MIP               {plan.solver.variables} variables, {plan.solver.constraints} constraints")
    print(f"status            {plan.status} ({plan.solver.solver})")
    print(f"gap               {plan.gap:.4%}")
    print(f"time              load {t_load:.2f} s, candidates {t_cand:.2f} s, "
          f"solve {plan.solver.solve_time_s:.2f} s (objective {plan.solver.objective_time_s:.2f} s "
          f"+ tie-breaks), end to end {total:.2f} s")
    print(f"peak memory       {peak_mb:.0f} MB (max RSS)")
    print(f"optimal capex     {plan.capex:,.0f} {plan.currency}")
    print(f"naive capex       {naive:,.0f} {plan.currency} (each workload alone, cheapest single SKU)")
    print(f"saving vs naive   {1 - plan.capex / naive:.1%}")


if __name__ == "__main__":
    main()
