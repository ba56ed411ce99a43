"""Property: random small scenarios either solve, with the checker passing and the objective no
better than the solver's bound, or end in a clear InfeasibleError (exit 1) or, for input no GPU can
run, a ScenarioError naming the field (exit 2). Never anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.errors import InfeasibleError, ScenarioError
from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.model.check import check_plan
from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.schema.scenario import Scenario

MODELS = ["Qwen2-0.5B", "Qwen2-7B", "Llama-3.1-8B", "Mistral-7B", "Qwen2.5-14B", "Mixtral-8x7B"]
GPUS = ["H20-96GB", "L20-48GB", "L4-24GB", "H100-SXM-80GB", "A100-SXM-80GB", "Ascend-910B-64GB", "MI300X-192GB"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    workloads = []
    for i in range(n):
        inp = draw(st.sampled_from([128, 512, 2000]))
        out = draw(st.sampled_from([32, 256, 1000]))
        workloads.append({
            "name": f"w{i}", "model": draw(st.sampled_from(MODELS)),
            "precisions": draw(st.lists(st.sampled_from(["bf16", "fp8", "int8", "int4"]), min_size=1, max_size=3,
                                        unique=True)),
            "requests_per_s": draw(st.floats(0.1, 30)), "input_tokens": inp, "output_tokens": out,
            "max_context": draw(st.sampled_from([4096, 8192])),
            "slo": {"ttft_ms": draw(st.sampled_from([300, 1000, 4000])),
                    "tpot_ms": draw(st.sampled_from([15, 40, 100]))},
            "min_replicas": draw(st.integers(1, 3)),
        })
    constraints: dict[str, Any] = {"gpus": draw(st.lists(st.sampled_from(GPUS), min_size=1, max_size=3, unique=True))}
    if draw(st.booleans()):
        constraints["budget"] = draw(st.sampled_from([50_000, 300_000, 2_000_000]))
    if draw(st.booleans()):
        constraints["max_gpu_types"] = 1
    return {
        "name": "random", "workloads": workloads, "constraints": constraints,
        "objective": draw(st.sampled_from(["capex", "tco", "coverage"])),
        "site": {"power_kw": draw(st.sampled_from([5, 40, 400])), "pue": 1.3, "racks": draw(st.integers(1, 4)),
                 "rack_power_kw": draw(st.sampled_from([8, 20, 40])), "rack_units": 42, "electricity_per_kwh": 0.1},
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_solve_and_check_or_explain(data: dict[str, Any]) -> None:
    try:
        rs = resolve_scenario(Scenario.model_validate(data), Path("random.yaml"), load_catalog())
    except ScenarioError as exc:  # e.g. only fp8 allowed on GPUs without fp8: bad input, exit 2
        assert exc.exit_code == 2 and exc.field and exc.hint
        return
    try:
        result = solve_scenario(rs, settings_of(rs, time_limit_s=10))
    except InfeasibleError as exc:
        assert exc.exit_code == 1
        assert exc.message.startswith("no feasible plan")
        assert len(exc.message.splitlines()) >= 2  # at least one reason line
        return
    plan = result.plan
    check_plan(plan, rs, coverage_mode=rs.scenario.objective == "coverage")
    sense = -1 if rs.scenario.objective == "coverage" else 1
    assert sense * (plan.solver.objective - plan.solver.bound) >= -1e-6 * max(1.0, abs(plan.solver.bound))
    if rs.scenario.constraints.budget:
        assert plan.capex <= rs.scenario.constraints.budget + 1e-6


H20 = "HGX-H20-8GPU/H20-96GB/8"
L20_4 = "PCIe-4GPU-4U/L20-48GB/4"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.floats(1, 40), st.integers(1, 3)), min_size=1, max_size=2),
       st.lists(st.tuples(st.sampled_from([H20, L20_4]), st.sampled_from([1, 2, 4, 8, 16]), st.floats(0.5, 60)),
                min_size=1, max_size=8))
def test_dominance_pruning_keeps_the_optimal_cost(loads: list[tuple[float, int]],
                                                  table: list[tuple[str, int, float]]) -> None:
    # prune_dominated (across layouts too) never changes the cheapest plan: random tables of
    # replicas of 1-16 GPUs (16 on H20: two whole servers, PP across them) on two SKUs
    import dataclasses

    from optimizer.sizing.candidates import prune_dominated
    from tests.model.helpers import candidate, scenario, solve, workload

    prices = {"HGX-H20-8GPU": 100_000, "H20-96GB": 10_000, "PCIe-4GPU-4U": 15_000, "L20-48GB": 5_000}
    rs = scenario([workload(f"w{i}", rps, m) for i, (rps, m) in enumerate(loads)], prices=prices,
                  constraints={"gpus": ["H20-96GB", "L20-48GB"]})
    cands = []
    for i in range(len(loads)):
        for sku, gpus, rps in table:
            slots = 8 if sku == H20 else 4
            if gpus > slots and sku != H20:
                continue
            servers = max(1, gpus // slots)
            c = candidate(f"w{i}", sku, rps, tp=min(gpus, slots))
            cands.append(dataclasses.replace(c, pp=gpus // min(gpus, slots), servers_per_replica=servers))
    full, _ = solve(rs, cands)
    pruned, _ = solve(rs, prune_dominated(cands))
    assert full.status == pruned.status
    if full.status == "optimal":
        assert pruned.objective == pytest.approx(full.objective, rel=1e-6)
