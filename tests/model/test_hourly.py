"""Objective ``hourly``: the least Σ hourly price x instances of rented cloud instance types."""

from __future__ import annotations

import math
from typing import Any

import pytest

from optimizer.errors import SolverError
from optimizer.model.check import check_plan
from optimizer.model.pipeline import solve_scenario
from optimizer.sizing.candidates import server_skus
from tests.model.helpers import SETTINGS, candidate, counts, scenario, solve, workload


def instance(name: str, gpu: str, usd_per_h: float) -> dict[str, Any]:
    return {"name": name, "vendor": "test cloud", "description": f"1 x {gpu}", "gpu_form_factor": "pcie",
            "compatible_gpus": [gpu], "gpu_slots": 1, "allowed_populations": [1], "hourly_usd": usd_per_h,
            "source": "test price list", "as_of": "2026-01-01"}


CLOUD = {"servers": [instance("small.l4", "L4-24GB", 0.80), instance("big.h100", "H100-SXM-80GB", 3.00)]}
SMALL, BIG = "small.l4/L4-24GB/1", "big.h100/H100-SXM-80GB/1"


def test_hourly_one_bucket_by_hand() -> None:
    # 5 req/s, headroom 1. small: 1.0 req/s at 0.80/h; big: 4.0 req/s at 3.00/h.
    # 5 small = 4.00/h; 2 big = 6.00/h; 1 big + 1 small = 3.80/h (5.0 req/s) is the least.
    rs = scenario([workload("chat", 5.0)], objective="hourly", catalog=CLOUD)
    cands = [candidate("chat", SMALL, 1.0), candidate("chat", BIG, 4.0)]
    out, mm = solve(rs, cands)
    assert out.status == "optimal"
    assert counts(out, mm) == {SMALL: 1, BIG: 1}
    assert out.objective == pytest.approx(3.80, abs=1e-6)
    assert out.bound == pytest.approx(3.80, abs=2e-3)  # the folded tie-breaks are worth at most 0.001/h


def test_hourly_price_override_changes_the_choice() -> None:
    # prices: big.h100 at 2.50/h: 2 big = 5.00/h, 1 big + 1 small = 3.30/h, 5 small = 4.00/h -> 3.30
    # with big at 3.50/h: 1 big + 1 small = 4.30/h > 5 small = 4.00/h -> five small
    for price, want, cost in ((2.50, {SMALL: 1, BIG: 1}, 3.30), (3.50, {SMALL: 5}, 4.00)):
        rs = scenario([workload("chat", 5.0)], objective="hourly", catalog=CLOUD, prices={"big.h100": price})
        out, mm = solve(rs, [candidate("chat", SMALL, 1.0), candidate("chat", BIG, 4.0)])
        assert counts(out, mm) == want
        assert out.objective == pytest.approx(cost, abs=1e-6)


def test_capex_objective_ignores_hourly_prices() -> None:
    # the same demand under capex buys servers (the shipped PCIe chassis), never the instances
    rs = scenario([workload("chat", 5.0)], catalog=CLOUD, constraints={"gpus": ["L4-24GB"]})
    skus = server_skus(rs)
    assert skus and all(s.hourly_price is None for s in skus.values())


def test_hourly_plan_end_to_end() -> None:
    """Real sizing: the plan rents the instance type with the least price per req/s of capacity,
    ceil(λ / capacity) of them (one workload, one candidate per instance type: both GPUs run
    Qwen2-7B at TP1), and the objective, hourly_cost and the checker agree."""
    # the two declared types only (the shipped cloud.yaml instance types would join otherwise)
    rs = scenario([workload("chat", 6.0)], objective="hourly", catalog=CLOUD,
                  constraints={"servers": ["small.l4", "big.h100"]})
    res = solve_scenario(rs, SETTINGS)
    plan = res.plan
    caps = {c.sku: c.capacity_rps for c in res.candidates.inference if c.tp == 1}
    price = {SMALL: 0.80, BIG: 3.00}
    # cost of serving 6 req/s on one type alone: ceil(6 / cap) x price; the mix can only be cheaper
    alone = min(math.ceil(6.0 / caps[k] - 1e-9) * price[k] for k in caps)
    assert plan.objective == pytest.approx(plan.hourly_cost, abs=1e-9)
    assert plan.hourly_cost == pytest.approx(sum(price[s.sku] * s.count for s in plan.servers))
    assert plan.hourly_cost <= alone + 1e-9
    assert plan.capex == 0.0 and plan.power_kw == 0.0  # rented: nothing bought, no site power
    assert "hourly cost recomputed" in res.checks
    wrong = plan.model_copy(update={"hourly_cost": plan.hourly_cost + 1.0})
    with pytest.raises(SolverError, match="hourly cost recomputed"):
        check_plan(wrong, rs)


def test_hourly_with_a_budget_and_no_quote_lines() -> None:
    # a budget bounds capex, which renting leaves at 0: the same 3.80/h plan as without it (this
    # divided the budget by a zero capex before); and an hourly plan buys no quote lines (racks,
    # support, network: the provider's hourly price covers them)
    from optimizer import quote

    rs = scenario([workload("chat", 5.0)], objective="hourly", catalog=CLOUD, constraints={"budget": 1000},
                  quote={"network": True, "storage": True, "support": True, "shipping_installation": True})
    out, mm = solve(rs, [candidate("chat", SMALL, 1.0), candidate("chat", BIG, 4.0)])
    assert counts(out, mm) == {SMALL: 1, BIG: 1}
    assert out.objective == pytest.approx(3.80, abs=1e-6)
    assert quote.items(rs) == []


def test_compare_keeps_the_hourly_objective(tmp_path: Any) -> None:
    # compare's base plan is solved under the scenario's own objective (it was re-solved under
    # capex, and every variant then failed the checker); budget variants are refused, exit 2
    import yaml

    from tests.conftest import assert_user_error, run_cli

    data = {"name": "rent", "site": {"power_kw": 100, "racks": 2, "rack_power_kw": 20}, "objective": "hourly",
            "catalog": {"servers": [instance("small.l4", "L4-24GB", 0.80)]},
            "constraints": {"gpus": ["L4-24GB"], "servers": ["small.l4"]},
            "workloads": [{"name": "chat", "model": "Qwen2-7B", "requests_per_s": 0.5, "input_tokens": 500,
                           "output_tokens": 100, "max_context": 4096, "slo": {"ttft_ms": 3000, "tpot_ms": 100}}]}
    path = tmp_path / "rent.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run_cli("compare", str(path), "--demand-scale", "2", "--no-workbook", "--format", "json", "--jobs", "1")
    assert res.exit_code == 0, res.output
    import json
    rows = json.loads(res.output[res.output.index("{"):])["variants"]
    assert [(r["name"], r["status"]) for r in rows] == [("base", "optimal"), ("demand x2", "optimal")]
    assert_user_error(["compare", str(path), "--budget", "1000", "--no-workbook"], "budget",
                      "an hourly plan rents cloud instances")
