"""The workbook of a plan over periods: the schedule is one row per year, the NPV formulas over it,
recalculated by LibreOffice to the plan's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from optimizer.loaders import scenario_from_data
from optimizer.model.pipeline import solve_scenario
from optimizer.report.workbook import SCHEDULE, write_workbook
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
