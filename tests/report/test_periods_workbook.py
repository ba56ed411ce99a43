"""The workbook of a plan over periods: the schedule is one row per year, the NPV formulas over it,
recalculated by LibreOffice to the plan's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from optimizer.loaders import REPO_ROOT as REPO
from optimizer.loaders import load_scenario, scenario_from_data
from optimizer.model.pipeline import solve_scenario
from optimizer.report.workbook import BOM, BOM_HEADER_ROW, SCHEDULE, SUMMARY, write_workbook
from tests.model.test_periods import data
from tests.report.libreoffice import needs_libreoffice, recalculate


@pytest.fixture(scope="module")
def periods_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    # real sizing, one workload growing 2 -> 8 -> 30 req/s, an owned A100 server, prices -20 %/year
    d = data([2, 8, 30], {"years": 3, "price_decline_per_year": 0.2, "discount_rate": 0.08},
             inventory=[{"sku": "HGX-A100-8GPU/A100-SXM-80GB/8", "count": 1, "age_years": 2}])
    d["prices"] = {}
    d["site"]["electricity_per_kwh"] = 0.1
    d["workloads"][0].update(input_tokens=1000, output_tokens=200)
    rs = scenario_from_data(d, Path("periods.yaml"))
    plan = solve_scenario(rs).plan
    path = write_workbook(plan, rs, tmp_path_factory.mktemp("wb") / "periods.xlsx")
    return plan, path


def _named(wb: openpyxl.Workbook, name: str) -> Any:
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    return wb[sheet][ref.replace("$", "")].value


def test_schedule_rows_are_years_and_npv_is_a_formula(periods_plan: tuple[Any, Path]) -> None:
    plan, path = periods_plan
    wb = openpyxl.load_workbook(path)
    ws = wb[SCHEDULE]
    years = [ws.cell(r, 1).value for r in range(6, 9)]
    assert years == [1, 2, 3]
    assert ws.cell(7, 10).value == "=1/(1+Periods_Discount_Rate)^(A7-1)"
    assert ws.cell(6, 9).value == "=E6+F6+G6+H6"
    assert _named(wb, "Schedule_NPV") == "=SUM(K6:K8)"
    assert _named(wb, "Periods_Discount_Rate") == 0.08
    assert ws.cell(6, 5).value == pytest.approx(plan.periods[0].capex)


@needs_libreoffice
def test_schedule_recalculates_to_the_plans_npv(periods_plan: tuple[Any, Path], tmp_path: Path) -> None:
    plan, path = periods_plan
    (out,) = recalculate([path], tmp_path)
    wb = openpyxl.load_workbook(out, data_only=True)
    # NPV = Σ_y cash out_y / 1.08^(y-1), recomputed by the spreadsheet from the per-year figures
    assert _named(wb, "Schedule_NPV") == pytest.approx(plan.npv, abs=0.005)
    assert _named(wb, "Schedule_Cash_Out") == pytest.approx(plan.tco, abs=0.005)


@pytest.fixture(scope="module")
def phased(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The shipped phased scenario: inventory A100 servers kept, L20 servers bought, p4d rented."""
    rs = load_scenario(REPO / "scenarios" / "bank-rollout-phased.yaml")
    plan = solve_scenario(rs).plan
    return plan, write_workbook(plan, rs, tmp_path_factory.mktemp("wb") / "phased.xlsx")


def test_bom_lists_each_years_purchases(phased: tuple[Any, Path]) -> None:
    plan, path = phased
    ws = openpyxl.load_workbook(path)[BOM]
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=BOM_HEADER_ROW + 1)]
    buys = [(r[2], r[5], r[6]) for r in rows if r[1] == "Server system"]
    # every period's buy lines, at that year's unit price, and nothing else bought
    assert buys == [(f"{b.sku} server, bought at the start of year {p.year}", b.count, p.unit_prices[b.sku])
                    for p in plan.periods for b in p.buy]
    owned = [(r[5], r[6]) for r in rows if r[1] == "Owned (inventory)"]
    assert owned and all(price == 0.0 for _, price in owned)
    rent = [(r[5], r[6]) for r in rows if r[1] == "Cloud rent"]
    # instance-hours = count x 8760 at the hourly price
    assert rent == [(line.count * 8760, pytest.approx(line.hourly_price, rel=1e-12))
                    for p in plan.periods for line in p.rent]


@needs_libreoffice
def test_bom_recalculates_to_the_plans_capex_per_year(phased: tuple[Any, Path], tmp_path: Path) -> None:
    plan, path = phased
    assert any(p.rent for p in plan.periods) and sum(bool(p.buy) for p in plan.periods) >= 1
    (out,) = recalculate([path], tmp_path)
    wb = openpyxl.load_workbook(out, data_only=True)
    for p in plan.periods:  # each year's section: Σ qty x that year's price = periods[].capex
        assert _named(wb, f"BOM_Year_{p.year}_Capex") == pytest.approx(p.capex, abs=0.005)
        assert _named(wb, f"BOM_Year_{p.year}_Rent") == pytest.approx(p.rent_cost, abs=0.005)
    assert _named(wb, "BOM_Subtotal") == pytest.approx(plan.capex, abs=0.005)
    assert _named(wb, "BOM_Rent") == pytest.approx(sum(p.rent_cost for p in plan.periods), abs=0.005)
    assert _named(wb, "BOM_Grand_Total") == pytest.approx(plan.total_with_tax, abs=0.005)
    ws = wb[SUMMARY]
    values = {ws.cell(r, 1).value: ws.cell(r, 4).value for r in range(1, ws.max_row + 1)}
    assert values["Subtotal"] == pytest.approx(plan.capex, abs=0.005)
    assert values["Grand total (with contingency and tax)"] == pytest.approx(plan.total_with_tax, abs=0.005)
    assert values["Rent over all years"] == pytest.approx(sum(p.rent_cost for p in plan.periods), abs=0.005)
    # the Summary's "what is bought" rows add up to the subtotal (its check cell stays empty)
    assert all(ws.cell(r, 5).value in (None, "") for r in range(1, ws.max_row + 1))
