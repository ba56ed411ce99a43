"""`procure solve`: the JSON contract of DESIGN.md, the table, and the workbook path rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

BANK = REPO / "scenarios" / "bank-rollout.yaml"


def test_json_contract() -> None:
    res = run_cli("solve", str(BANK), "--format", "json", "--no-workbook", "--time-limit", "30")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    for key in ("status", "objective", "capex", "power_kw", "gap", "servers", "deployments"):
        assert key in plan
    assert plan["status"] == "optimal"
    for key in ("sku", "gpu", "gpus_per_server", "count", "unit_price"):
        assert key in plan["servers"][0]
    for key in ("workload", "model", "gpu", "tp", "pp", "precision", "replicas", "capacity_rps"):
        assert key in plan["deployments"][0]
    # capex is the server lines plus the quote lines: the JSON is internally consistent
    assert plan["hardware_capex"] == sum(s["unit_price"] * s["count"] for s in plan["servers"])
    quoted = sum(q["extended_price"] for q in plan["quote_lines"])
    assert plan["capex"] == pytest.approx(plan["hardware_capex"] + quoted)


def test_table_and_workbook(tmp_path: Path) -> None:
    out = tmp_path / "bank.xlsx"
    res = run_cli("solve", str(BANK), "-o", str(out), "--time-limit", "30")
    assert res.exit_code == 0, res.output
    assert "Servers to buy" in res.output and "checked:" in res.output and out.exists()
    again = run_cli("solve", str(BANK), "-o", str(out), "--time-limit", "30")
    assert again.exit_code == 2 and "--force" in again.output
    forced = run_cli("solve", str(BANK), "-o", str(out), "--force", "--time-limit", "30")
    assert forced.exit_code == 0


def test_objective_and_budget_overrides() -> None:
    res = run_cli("solve", str(BANK), "--format", "json", "--no-workbook", "--objective", "tco")
    plan = json.loads(res.output)
    assert plan["solver"]["objective_name"] == "tco"
    assert abs(plan["objective"] - plan["tco"]) <= 1e-6 * plan["tco"]
