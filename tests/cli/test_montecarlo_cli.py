"""`procure compare SCENARIO --monte-carlo N`: JSON shape, tables, usage errors, through the real CLI.

The small scenario (tests/conftest.py) buys one L20-48GB in one PCIe chassis, capex 42,720 USD
(tests/test_compare.py); its replica serves 0.8 x 2.0215 = 1.617 req/s against 1.5 demanded.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, assert_user_error, run_cli

Writer = Callable[[Any], Path]


@pytest.fixture
def small(write_scenario: Writer, base_scenario: dict[str, Any]) -> Path:
    return write_scenario(base_scenario)


def test_json_reports_the_distribution(small: Path) -> None:
    res = run_cli("compare", str(small), "--monte-carlo", "5", "--seed", "4", "--workers", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["samples"] == 5 and data["seed"] == 4 and len(data["rows"]) == 5
    for key in ("cost", "served", "optimal_cost"):
        assert set(data[key]) == {"p10", "p50", "p90"}
        assert data[key]["p10"] <= data[key]["p50"] <= data[key]["p90"]
    assert data["recommended"]["capex"] == pytest.approx(42_720)
    assert data["p_all_served"] == pytest.approx(sum(r["all_served"] for r in data["rows"]) / 5)
    assert "robust_plan" in data and data["most_robust_plan"]["p_all_served"] >= data["p_all_served"]
    # demand scale off and no capacity error: every sample is the plan's own case, all served, at
    # 42,720 x the L20's price multiplier on its 5,000 x 1.375 share
    quiet = small.parent / "quiet.yaml"
    quiet.write_text(small.read_text() + "risk: {demand_log_sd: 0, capacity_error: false}\n")
    res = run_cli("compare", str(quiet), "--monte-carlo", "3", "--workers", "1", "--format", "json")
    data = json.loads(res.stdout)
    assert data["p_all_served"] == 1.0 and data["served"]["p10"] == 1.0
    assert data["robust_plan"]["source"] == "recommended"
    for row in data["rows"]:
        assert row["cost"] == pytest.approx(42_720 + 5_000 * 1.375 * (row["price_factor"]["L20-48GB"] - 1))


def test_table_names_the_rows(small: Path) -> None:
    res = run_cli("compare", str(small), "--monte-carlo", "3", "--workers", "1")
    assert res.exit_code == 0, res.output
    for needle in ("Monte Carlo", "recommended plan: cost", "each sample's optimum", "Recommended plan", "chat"):
        assert needle in res.stdout


@pytest.mark.parametrize("args, needles", [
    (["--monte-carlo", "3", "--budget", "1e6"], ["--monte-carlo", "no --budget"]),
    (["--monte-carlo", "0"], ["--monte-carlo", "0"]),
    (["--executor", "ray"], ["--executor", "--monte-carlo N"]),
    (["--monte-carlo", "3", "--executor", "slurm"], ["--executor", "slurm"]),
])
def test_usage_errors(small: Path, args: list[str], needles: list[str]) -> None:
    assert_user_error(["compare", str(small), "--no-workbook", *args], *needles)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed here")
def test_ray_executor_without_ray_says_how_to_install(small: Path) -> None:
    assert_user_error(["compare", str(small), "--monte-carlo", "2", "--executor", "ray"],
                      "needs Ray", "procure[ray]")


def test_periods_scenario_runs_with_its_own_objective(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    # 2 years, chat 1.5 then 3.0 req/s, npv: the plan buys two L20 in one PCIe-4GPU-4U in year 1,
    # NPV 26,000 + 2 x 5,000 = 36,000 (tests/test_montecarlo.py); with no spread in demand or
    # capacity every sample is served, at 26,000 + 10,000 x the L20's price multiplier
    base_scenario.update(objective="npv", periods={"years": 2, "discount_rate": 0.1},
                         risk={"demand_log_sd": 0, "growth_log_sd": 0, "capacity_error": False})
    base_scenario["workloads"][0]["requests_per_s"] = [1.5, 3.0]
    path = write_scenario(base_scenario)
    res = run_cli("compare", str(path), "--monte-carlo", "3", "--workers", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["years"] == 2 and data["cost_name"] == "npv" and len(data["served_by_year"]) == 2
    assert data["p_all_served"] == 1.0 and data["robust_plan"]["source"] == "recommended"
    for row in data["rows"]:
        assert row["served_by_year"] == [1.0, 1.0] and row["growth"] == 1.0
        assert row["cost"] == pytest.approx(26_000 + 10_000 * row["price_factor"]["L20-48GB"])
    res = run_cli("compare", str(path), "--monte-carlo", "2", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "2 years (cost: NPV)" in res.output and "year 2" in res.output and "worst year" in res.output


def test_bank_rollout_phased_runs() -> None:
    # the case: it used to exit 2 with "objective capex is for one period"
    res = run_cli("compare", str(REPO / "scenarios" / "bank-rollout-phased.yaml"), "--monte-carlo", "2",
                  "--workers", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["years"] == 3 and data["cost_name"] == "npv"
    assert data["unsolved_samples"] == 0 and len(data["rows"][0]["served_by_year"]) == 3
