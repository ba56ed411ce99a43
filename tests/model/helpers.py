"""Hand-made candidate tables for MIP tests: real catalog SKUs, stated per-replica capacities.

The MIP only reads capacity, GPUs per replica and prices from candidates, so tests fix those to
round numbers and work the optimum out by hand.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from optimizer.loaders import ResolvedScenario, load_catalog, resolve_scenario
from optimizer.model.build import build_model
from optimizer.model.solve import SolveOutcome, SolveSettings, solve_model
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate, server_skus

SETTINGS = SolveSettings(time_limit_s=20, gap=1e-6, threads=1, seed=0)


def scenario(workloads: list[dict[str, Any]], **top: Any) -> ResolvedScenario:
    data: dict[str, Any] = {
        "name": "hand",
        "site": {"power_kw": 1000, "pue": 1.0, "racks": 10, "rack_power_kw": 100, "rack_units": 42},
        "headroom": 1.0,
        "workloads": workloads,
    }
    # the hand-solved tables price servers only: quote lines (support, storage, network) are switched off
    # unless a test asks for them (tests/model/test_quote.py)
    data["quote"] = {"network": False, "storage": False, "support": False, "shipping_installation": False}
    for key, value in top.items():
        data[key] = value
    return resolve_scenario(Scenario.model_validate(data), Path("hand.yaml"), load_catalog())


def workload(name: str, rps: float, min_replicas: int = 1, priority: float = 1.0) -> dict[str, Any]:
    return {"name": name, "model": "Qwen2-7B", "precisions": ["bf16"], "requests_per_s": rps,
            "input_tokens": 100, "output_tokens": 100, "max_context": 4096,
            "slo": {"ttft_ms": 1000, "tpot_ms": 50}, "min_replicas": min_replicas, "priority": priority}


def candidate(workload: str, sku: str, capacity_rps: float, tp: int = 1) -> InferenceCandidate:
    perf = SimpleNamespace(requests_per_s=capacity_rps, ttft_ms=100.0, tpot_ms=20.0, slo_batch=8,
                           limited_by="tpot", source="model")
    memory = SimpleNamespace(weight_bytes=0, kv_cache_tokens=100_000)
    return InferenceCandidate(workload=workload, sku=sku, tp=tp, pp=1, precision="bf16", kv_dtype="auto",
                              servers_per_replica=1, memory=memory, perf=perf)  # type: ignore[arg-type]


def solve(rs: ResolvedScenario, cands: list[InferenceCandidate], objective: str | None = None
          ) -> tuple[SolveOutcome, Any]:
    cs = CandidateSet(skus=server_skus(rs), inference=cands)
    objective = objective or rs.scenario.objective
    mm = build_model(rs, cs, objective=objective)
    return solve_model(mm, SETTINGS, objective), mm


def counts(out: SolveOutcome, mm: Any) -> dict[str, int]:
    return {k: round(out.values[v]) for k, v in mm.n.items() if round(out.values[v]) > 0}
