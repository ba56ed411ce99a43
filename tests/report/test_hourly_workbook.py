"""The workbook of an hourly plan: rented instances at their price per hour, declared sources shown."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from benchmarks.melange import EXAMPLE, MelangeInput, to_scenario
from optimizer.loaders import scenario_from_data
from optimizer.model.pipeline import solve_scenario
from optimizer.report.workbook import write_workbook


def test_hourly_plan_workbook(tmp_path: Path) -> None:
    rs = scenario_from_data(to_scenario(MelangeInput.model_validate(EXAMPLE), source="example.json"),
                            tmp_path / "melange.yaml")
    plan = solve_scenario(rs).plan
    book = openpyxl.load_workbook(write_workbook(plan, rs, tmp_path / "m.xlsx"))
    cells = {str(c.value): row for ws in book.worksheets for row in ws.iter_rows() for c in row
             if isinstance(c.value, str)}
    total = next(row for label, row in cells.items() if label.startswith("Price per hour of the instances"))
    # 1 x A100-80GB at 3.67 + 1 x A10G at 1.01 (tests/test_melange_benchmark.py works it by hand)
    assert [c.value for c in total if isinstance(c.value, float)] == [pytest.approx(4.68)]
    text = " ".join(cells)
    assert "scenario-declared" in text  # the declared instance types' sources are printed
    assert not any(isinstance(c.value, (int, float)) and c.value < 0 for ws in book.worksheets
                   for row in ws.iter_rows() for c in row)  # no negative power or price from 0-W instances
