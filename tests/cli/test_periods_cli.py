"""`procure solve` on a plan over periods: the JSON contract (periods, npv) of DESIGN.md on
scenarios/bank-rollout-phased.yaml, and exit 2 with the field named for inconsistent periods."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

PHASED = REPO / "scenarios" / "bank-rollout-phased.yaml"


def test_phased_bank_json_contract() -> None:
    res = run_cli("solve", str(PHASED), "--format", "json", "--no-workbook")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["status"] == "optimal"
    assert [p["year"] for p in plan["periods"]] == [1, 2, 3]
    for p in plan["periods"]:
        for key in ("buy", "rent", "capex", "opex", "retire", "own"):
            assert key in p
        assert all({"sku", "count"} <= set(b) for b in p["buy"])
        assert all({"instance", "count", "gpu_hours"} <= set(r) for r in p["rent"])
    # the customer-service assistant grows 12 -> 20 -> 36 req/s; the others 20 % a year (4 -> 4.8 -> 5.76)
    assert [p["demand_rps"]["customer-service-assistant"] for p in plan["periods"]] == [12, 20, 36]
    assert [p["demand_rps"]["policy-rag"] for p in plan["periods"]] == pytest.approx([4, 4.8, 5.76])
    # npv = Σ cash out / 1.08^(y-1) (on-demand rent only: each year's rent in its year)
    assert plan["npv"] == pytest.approx(sum(p["cash_out"] / 1.08 ** (p["year"] - 1) for p in plan["periods"]))
    assert plan["capex"] == pytest.approx(sum(p["capex"] for p in plan["periods"]))


def test_inconsistent_periods_exit_2(tmp_path: Path) -> None:
    text = PHASED.read_text().replace("requests_per_s: [12, 20, 36]", "requests_per_s: [12, 20]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    res = run_cli("solve", str(bad), "--no-workbook")
    assert res.exit_code == 2
    assert "workloads[0].requests_per_s has 2 values; periods.years is 3" in res.output
    assert "Traceback" not in res.output
