"""`procure compare`: options, exit codes, JSON and the workbook file, through the real CLI and solver.

Figures for the small scenario (tests/conftest.py BASE_SCENARIO) are worked out in tests/test_compare.py:
one PCIe chassis with one L20-48GB, 26,000 + 5,000 = 31,000 USD of servers, serves all of its demand;
with the default quote lines (storage 95, support 3 years x 12.5% x 31,000 = 11,625) capex is 42,720 USD.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from optimizer.report.compare_excel import default_compare_path
from tests.conftest import REPO, assert_user_error, run_cli

Writer = Callable[[Any], Path]
SMALL_CAPEX = 31_000 + 95 + 3 * 0.125 * 31_000  # 42,720 USD




@pytest.fixture
def small(write_scenario: Writer, base_scenario: dict[str, Any]) -> Path:
    return write_scenario(base_scenario)


@pytest.mark.parametrize("args, needles", [
    (["--budget-range", "5:1:3"], ["--budget-range", "must be greater than start"]),
    (["--budget-range", "1e6:2e6"], ["START:STOP:COUNT"]),
    (["--budget", "lots"], ["--budget", "'lots' is not a number"]),
    (["--price", "H20-96GB=abc"], ["--price H20-96GB", "'abc' is not a number"]),
    (["--price", "X=abc"], ["--price", "unknown GPU or server 'X'"]),
    (["--price", "H2O-96GB=12000"], ["unknown GPU or server 'H2O-96GB'", "did you mean 'H20-96GB'"]),
    (["--price", "H20-96GB"], ["is not NAME=PRICE"]),
    (["--allow-gpus", "H20-96GB,L2O-48GB"], ["--allow-gpus", "unknown GPU 'L2O-48GB'", "L20-48GB"]),
    (["--demand-scale", "-1"], ["--demand-scale", "positive"]),
    ([], ["nothing to compare", "whatif"]),
])
def test_bad_options_exit_2(small: Path, args: list[str], needles: list[str]) -> None:
    assert_user_error(["compare", str(small), "--no-workbook", *args], *needles)


def test_bad_whatif_section_exit_2(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["whatif"] = [{"name": "x", "gpus": ["H2O-96GB"]}]
    path = write_scenario(base_scenario)
    assert_user_error(["compare", str(path), "--no-workbook"], "whatif[0].gpus", "H20-96GB")


def test_workbook_path_checked_before_solving(small: Path, tmp_path: Path) -> None:
    existing = tmp_path / "old.xlsx"
    existing.write_bytes(b"keep me")
    assert_user_error(["compare", str(small), "--budget", "1e5", "-o", str(existing)], "already exists", "--force")
    assert existing.read_bytes() == b"keep me"
    assert_user_error(["compare", str(small), "--budget", "1e5", "-o", str(tmp_path / "out.csv")], "must end in .xlsx")
    assert_user_error(["compare", str(small), "--budget", "1e5", "-o", str(tmp_path / "no" / "x.xlsx")],
                      "does not exist")


def test_default_workbook_path() -> None:
    assert default_compare_path(Path("scenarios/bank-rollout.yaml")).name == "bank-rollout-compare.xlsx"
    assert default_compare_path(Path("a.b.yaml")).name == "a.b-compare.xlsx"


def test_json_is_clean_stdout_from_a_real_process(small: Path) -> None:
    """HiGHS writes hint messages to file descriptor 1; none may reach the JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "optimizer", "compare", str(small), "--budget", "1e4", "--budget", "42720",
         "--budget", "2e5", "--price", "L20-48GB=5000", "--format", "json", "--no-workbook", "--jobs", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["currency"] == "USD" and data["jobs"] == 2
    rows = [(v["budget"], v["objective"], v["capex"], v["served_fraction"]) for v in data["variants"]]
    assert rows == [(1e4, "coverage", 0.0, 0.0), (42_720.0, "capex", SMALL_CAPEX, 1.0),
                    (2e5, "capex", SMALL_CAPEX, 1.0)]
    # on capex spent: 0 -> 42,720 for 100 points: 100 / 0.04272 points per million, 427.20 USD per point
    assert data["variants"][0]["marginal_points_per_million"] == pytest.approx(100 / 0.04272)
    assert data["variants"][0]["marginal_cost_per_point"] == pytest.approx(427.20)
    assert data["variants"][1]["marginal_points_per_million"] is None  # 42,720 -> 200,000 spends no more
    assert data["recommended"] == "budget $43k (L20-48GB=5,000)" and data["variants"][1]["recommended"]
    assert data["variants"][1]["hardware_capex"] == 31_000 and data["variants"][1]["budget_from"] == "variant"
    assert data["variants"][1]["served_by_workload"] == {"chat": 1.0}
    # one L20 in a PCIe chassis; the 4- and 8-slot chassis cost the same, so one twin SKU is kept
    assert data["variants"][1]["plan"]["servers"][0]["sku"] == "PCIe-4GPU-4U/L20-48GB/1"


def test_table_output_and_workbook(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.xlsx"
    res = run_cli("compare", str(small), "--budget-range", "2e4:5e4:4", "--demand-scale", "1", "-o", str(out),
                  "--jobs", "1", "--time-limit", "30")
    assert res.exit_code == 0, res.output
    assert "What-if comparison" in res.output and "budget $50k" in res.output and f"wrote {out}" in res.output
    # 20k, 30k, 40k are below the 42,720 the one server costs; 50k buys it: the knee, marked in the table
    assert "Recommended (▶): budget $50k" in res.output
    rows = [line for line in res.output.splitlines() if "budget $" in line and line.count("│") > 5]  # main table
    assert [r.split("│")[2].strip() for r in rows] == ["budget $20k", "budget $30k", "budget $40k", "budget $50k"]
    assert [r.split("│")[1].strip() for r in rows] == ["", "", "", "▶"]
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Comparison", "Prices", "1 budget $20k", "2 budget $30k", "3 budget $40k",
                             "4 budget $50k"]
    res = run_cli("compare", str(small), "--budget", "4e4", "-o", str(out), "--no-whatif")
    assert res.exit_code == 2 and "already exists" in res.output
    res = run_cli("compare", str(small), "--budget", "4e4", "-o", str(out), "--force")
    assert res.exit_code == 0, res.output


def test_every_variant_infeasible_exits_1(small: Path) -> None:
    res = run_cli("compare", str(small), "--budget", "1e6", "--demand-scale", "1000", "--no-workbook")
    assert res.exit_code == 1, res.output
    assert "no variant has a feasible plan" in res.output and "site power short" in res.output


def test_scenario_whatif_section() -> None:
    res = run_cli("compare", str(REPO / "scenarios" / "bank-rollout.yaml"), "--format", "json", "--no-workbook",
                  "--time-limit", "30")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    names = [v["name"] for v in data["variants"]]
    # by budget: the 1.2M what-if, then the scenario's 6M cap in the order written (base first)
    assert names == ["budget 1.2M", "base", "Ascend 910B price +20%", "no Ascend (NVIDIA only)", "demand +50%"]
    by = {v["name"]: v for v in data["variants"]}
    full = 2_862_791.0  # servers 2,248,400 + quote lines 614,391 (tests/test_compare.py)
    assert by["base"]["capex"] == pytest.approx(full, abs=0.005) and by["base"]["origin"] == "base"
    assert by["base"]["budget_from"] == "scenario" and by["budget 1.2M"]["budget_from"] == "variant"
    assert by["budget 1.2M"]["objective"] == "coverage" and by["budget 1.2M"]["capex"] <= 1.2e6
    assert "Ascend-910B-64GB" not in by["no Ascend (NVIDIA only)"]["gpus_by_type"]
    # the cheapest full plan buys no Ascend (88 H20 + 48 L20), so +20% on the Ascend GPU and leaving it
    # out both change nothing
    assert by["Ascend 910B price +20%"]["capex"] == pytest.approx(full, abs=0.005)
    assert by["no Ascend (NVIDIA only)"]["capex"] == pytest.approx(full, abs=0.005)
    # the sweep group is the base's (base and budget 1.2M); the knee is the base: 1.2M serves < 99%
    assert by["budget 1.2M"]["served_fraction"] < 0.99 and data["recommended"] == "base"


def test_peak_rate_and_unused_measured_lines_as_solve_prints_them(write_scenario: Writer,
                                                                   base_scenario: dict[str, Any]) -> None:
    # 2,000 users x 20 req/day x 13.5 % in the peak hour / 3,600 s = 1.5 req/s (the base rate); the
    # entry was measured at TTFT 3,000 ms, looser than the chat's 2,000 ms, so no variant uses it
    w = base_scenario["workloads"][0]
    del w["requests_per_s"]
    w["demand"] = {"users": 2000, "requests_per_user_per_day": 20, "peak_hour_share": 0.135}
    base_scenario["measured"] = [{"model": "Qwen/Qwen2-7B-Instruct", "gpu": "L20-48GB", "tp": 1, "precision": "bf16",
                                  "input_tokens": 1000, "output_tokens": 200, "requests_per_s": 6.0,
                                  "slo": {"ttft_ms": 3000, "tpot_ms": 60}, "source": "looser bench"}]
    path = write_scenario(base_scenario)
    rate = "peak rate chat: 2,000 users × 20 req/day × 13.5 % in the peak hour = 1.50 req/s"
    warn = "warning: measured entry 1 (looser bench) matches no candidate deployment, so it is not used"
    solved = run_cli("solve", str(path), "--format", "json", "--no-workbook")
    res = run_cli("compare", str(path), "--demand-scale", "2", "--format", "json", "--no-workbook", "--jobs", "1")
    assert solved.exit_code == 0 and res.exit_code == 0, res.output
    for out in (solved.stderr, res.stderr):
        assert rate in out and warn in out
    data = json.loads(res.stdout)  # the lines stay off the JSON
    assert data["warnings"] == [line.removeprefix("warning: ") for line in res.stderr.splitlines()
                                if line.startswith("warning: ")]
    assert [v["plan"]["coverage"][0]["demand_rps"] for v in data["variants"]] == pytest.approx([1.5, 3.0])
    table = run_cli("compare", str(path), "--demand-scale", "2", "--no-workbook", "--jobs", "1")
    assert table.exit_code == 0 and table.stdout.index(rate) < table.stdout.index("What-if comparison")
    assert warn in table.stdout
