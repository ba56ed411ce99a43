"""The comparison workbook, recalculated in a real spreadsheet application (LibreOffice, headless).

The comparison is solved for real: bank-rollout at four budgets plus the scenario's what-ifs and a
what-if no plan meets (demand x 40 exceeds the site's power and racks), so the workbook has coverage
plans, capex plans, price/GPU/demand overrides and an empty column side by side.

Hand figures (tests/test_compare.py): bank-rollout's cheapest plan serving all demand costs
2,248,400 USD of servers plus 614,391 of quote lines (24 scale-out links x 1,320, one 43,000 switch,
1 TB of storage x 95, support 8% x 2,248,400 x 3 years) = 2,862,791. So $0.80M, the what-if
"budget 1.2M" and $1.60M bind; $2.90M and $3.30M buy that plan; "demand +50%" and "demand x40"
have no plan (the site's power and racks run out).

One workbook is recalculated per module, together with a copy whose L20-48GB price was raised by
1,000 in the shared Prices sheet (one LibreOffice run for both).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from optimizer.compare import Comparison, build_variants, run_comparison
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.report.compare_excel import (
    CHART_SERIES,
    COMPARISON,
    PRICES,
    RECOMMENDED_MARK,
    bom_sheet_titles,
    build_compare_workbook,
    write_compare_workbook,
)
from optimizer.report.workbook import BOM_HEADER_ROW
from optimizer.report.xlsx import save_workbook
from tests.conftest import REPO
from tests.report.libreoffice import needs_libreoffice, recalculate

ERRORS = ("#REF!", "#VALUE!", "#NAME?", "#DIV/0!", "#N/A", "#NUM!", "#NULL!", "Err:", "#ERR")
FULL_CAPEX = 2_248_400 + 24 * 1_320 + 43_000 + 95 + 3 * 0.08 * 2_248_400  # 2,862,791 USD
L20_RAISE = 1_000.0
SUPPORT = 3 * 0.08  # support lines: 8% of the servers' price a year, 3 years


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Comparison, ResolvedScenario]:
    data = yaml.safe_load((REPO / "scenarios" / "bank-rollout.yaml").read_text(encoding="utf-8"))
    data["whatif"].append({"name": "demand x40", "demand_scale": 40})
    path = tmp_path_factory.mktemp("compare") / "bank-rollout.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    rs = load_scenario(path)
    variants = build_variants(rs, budgets=[8e5, 1.6e6, 2.9e6, 3.3e6])
    return run_comparison(rs, variants, time_limit_s=30, jobs=2), rs


def _rows(ws: Any) -> dict[str, int]:
    return {str(ws.cell(row=r, column=1).value): r for r in range(1, ws.max_row + 1)
            if ws.cell(row=r, column=1).value is not None}


def _row(rows: dict[str, int], start: str) -> int:
    return rows[next(k for k in rows if k.startswith(start))]


def _price_row(ws: Any, label: str, kind: str) -> int:
    return next(r for r in range(1, ws.max_row + 1)
                if str(ws.cell(row=r, column=1).value).startswith(label) and ws.cell(row=r, column=2).value == kind)


def _bom_lines(ws: Any) -> dict[str, tuple[Any, Any, Any]]:
    """Description (column C) -> (qty, unit price, extended price) of every line and total."""
    return {str(ws.cell(row=r, column=3).value): tuple(ws.cell(row=r, column=c).value for c in (6, 7, 8))
            for r in range(BOM_HEADER_ROW + 1, ws.max_row + 1) if ws.cell(row=r, column=3).value is not None}


@pytest.fixture(scope="module")
def recalculated(case: tuple[Comparison, ResolvedScenario], tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, Any, Any]:
    """(the written workbook, its values after recalculation, the values of the L20-edited copy)."""
    result, rs = case
    tmp = tmp_path_factory.mktemp("compare-lo")
    path = write_compare_workbook(result, rs, tmp / "bank-rollout-compare.xlsx")
    edited = build_compare_workbook(result, rs)
    prices = edited[PRICES]
    cell = prices.cell(row=_price_row(prices, "L20-48GB GPU", "GPU"), column=4)
    assert cell.value == 5_000
    cell.value = 5_000 + L20_RAISE
    edited_path = save_workbook(edited, tmp / "edited.xlsx")
    out, out_edited = recalculate([path, edited_path], tmp / "lo")
    return path, openpyxl.load_workbook(out, data_only=True), openpyxl.load_workbook(out_edited, data_only=True)


def test_sheet_titles_are_valid_and_distinct(case: tuple[Comparison, ResolvedScenario]) -> None:
    result, _ = case
    titles = bom_sheet_titles(result.variants)
    # no plan for demand x40 and demand +50% (site power and racks run out)
    assert len(titles) == sum(v.plan is not None for v in result.variants) == len(result.variants) - 2
    assert len(set(titles.values())) == len(titles)
    for t in titles.values():
        assert len(t) <= 31 and not set(t) & set("[]:*?/\\")
    long = result.variants[0].model_copy(update={"name": "x" * 40 + "/[a]"})
    t2 = bom_sheet_titles([long, long])
    assert t2 == {0: "1 " + "x" * 29, 1: "2 " + "x" * 29}


def test_variants_are_sorted_by_budget(case: tuple[Comparison, ResolvedScenario]) -> None:
    result, _ = case
    assert [v.name for v in result.variants] == [
        "budget $0.80M", "budget 1.2M", "budget $1.60M", "budget $2.90M", "budget $3.30M",
        "Ascend 910B price +20%", "no Ascend (NVIDIA only)", "demand +50%", "demand x40"]
    assert [v.budget_from for v in result.variants] == ["variant"] * 5 + ["scenario"] * 4


def test_workbook_layout(case: tuple[Comparison, ResolvedScenario]) -> None:
    result, rs = case
    wb = build_compare_workbook(result, rs)
    ws = wb[COMPARISON]
    assert wb.sheetnames[:2] == [COMPARISON, PRICES]
    assert [ws.cell(row=4, column=3 + i).value for i in range(len(result.variants))] == \
        [v.name for v in result.variants]
    rows = _rows(ws)
    budget_row = _row(rows, "Budget (cap")
    for i, v in enumerate(result.variants):
        cell = ws.cell(row=budget_row, column=3 + i)
        assert cell.value == v.budget and "#,##0.00" in cell.number_format
        served = ws.cell(row=rows["Served demand, priority-weighted"], column=3 + i)
        assert served.value == v.served_fraction
        if v.plan is not None:
            assert served.number_format == "0.0%"
            for label in ("Capex: servers", "TCO over", "Energy over"):
                assert str(ws.cell(row=_row(rows, label), column=3 + i).value).startswith("=")
    # every BOM unit price links to the shared Prices sheet: none is typed in a variant sheet
    for title in bom_sheet_titles(result.variants).values():
        bom = wb[title]
        r = BOM_HEADER_ROW + 1
        assert bom.cell(row=r, column=8).value == f"=F{r}*G{r}"
        units = [bom.cell(row=r, column=7).value for r in range(BOM_HEADER_ROW + 1, bom.max_row + 1)
                 if isinstance(bom.cell(row=r, column=1).value, int)]
        assert units and all(str(u).startswith("='Prices'!") for u in units), (title, units)
    assert len(ws._charts) == 1  # openpyxl keeps a sheet's charts here


@needs_libreoffice
def test_recalculates_cleanly_in_libreoffice(case: tuple[Comparison, ResolvedScenario],
                                             recalculated: tuple[Path, Any, Any]) -> None:
    result, _ = case
    _, wb, edited = recalculated
    titles = bom_sheet_titles(result.variants)
    assert wb.sheetnames == [COMPARISON, PRICES, *titles.values()]
    for book in (wb, edited):
        for ws in book.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert not (isinstance(cell.value, str) and cell.value.startswith(ERRORS)), \
                        f"{ws.title}!{cell.coordinate} = {cell.value}"
    ws = wb[COMPARISON]
    rows = _rows(ws)
    for i, v in enumerate(result.variants):
        col = 3 + i

        def value(label: str, col: int = col) -> Any:
            return ws.cell(row=_row(rows, label), column=col).value

        capex, left = value("Capex: servers"), value("Budget left")
        if v.plan is None:
            assert capex is None and left is None and v.reason
            continue
        assert capex == pytest.approx(v.plan.capex, abs=0.005)  # to the cent
        assert value("Servers (systems") == pytest.approx(v.plan.hardware_capex, abs=0.005)
        assert value("Capex with contingency") == pytest.approx(v.plan.total_with_tax, abs=0.005)
        assert value("TCO over") == pytest.approx(v.plan.tco, abs=0.005)
        assert value("Energy over") == pytest.approx(v.plan.energy_cost, abs=0.005)
        if v.origin == "whatif" and v.budget_from == "scenario":
            assert left is None  # the scenario's 6M cap: nothing to say about what is left of it
        else:
            assert v.budget is not None and left == pytest.approx(v.budget - v.plan.total_with_tax, abs=0.005)
        for label, expected in (("Served-demand points per extra million", v.marginal_points_per_million),
                                ("Extra capex per served-demand point", v.marginal_cost_per_point)):
            got = value(label)
            if expected is None:
                assert got in (None, "")
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        bom = _bom_lines(wb[titles[i]])
        assert bom["Grand total"][2] == pytest.approx(v.plan.total_with_tax, abs=0.005)
    first = result.variants[0].capex or 0.0  # $0.80M: no contingency or tax, what is left is 800,000 - capex
    assert ws.cell(row=_row(rows, "Budget left"), column=3).value == pytest.approx(8e5 - first, abs=0.005)


@needs_libreoffice
def test_recommendation_row_names_the_knee(case: tuple[Comparison, ResolvedScenario],
                                           recalculated: tuple[Path, Any, Any]) -> None:
    """By hand: the sweep group is the five variants that differ only in budget. $2.90M and $3.30M
    buy the full-demand plan for 2,862,791 (100%); the three cheaper ones bind and serve less than
    99% (asserted below from the solves), so they are more than 1 point short. The cheapest within
    1 point is 2,862,791, a tie between $2.90M and $3.30M that goes to the lower budget: $2.90M.
    The what-ifs are other groups (other prices, GPUs or demand) and are not candidates."""
    result, _ = case
    by = {v.name: v for v in result.variants}
    for name in ("budget $0.80M", "budget 1.2M", "budget $1.60M"):
        assert by[name].budget_binds and (by[name].served_fraction or 1.0) < 0.99
    for name in ("budget $2.90M", "budget $3.30M"):
        assert by[name].served_fraction == 1.0 and by[name].capex == pytest.approx(FULL_CAPEX, abs=0.005)
    assert result.recommended == "budget $2.90M"
    ws = recalculated[1][COMPARISON]
    rows = _rows(ws)
    assert ws.cell(row=_row(rows, "Recommended variant"), column=3).value == "budget $2.90M"
    marks = [ws.cell(row=rows["Recommended"], column=3 + i).value for i in range(len(result.variants))]
    assert [m for m in marks if m] == [RECOMMENDED_MARK] and marks[3] == RECOMMENDED_MARK
    assert "within 1 point of full coverage" in str(ws.cell(row=2, column=1).value)


@needs_libreoffice
def test_chart_is_a_scatter_on_a_budget_axis(case: tuple[Comparison, ResolvedScenario],
                                             recalculated: tuple[Path, Any, Any]) -> None:
    result, _ = case
    path, wb, _ = recalculated
    with zipfile.ZipFile(path) as z:
        (name,) = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        xml = z.read(name).decode()
    assert "<scatterChart>" in xml and "<lineChart>" not in xml and "<catAx>" not in xml
    assert xml.count("<valAx>") == 2  # budget (x) and served demand (y), both numeric
    assert xml.count("<ser>") == 4 and all(s in xml for s in CHART_SERIES)
    # the what-ifs are markers only (no line), the sweep a line
    sers = re.findall(r"<ser>.*?</ser>", xml, re.S)
    assert "<a:noFill" not in sers[0] and all("noFill" in s for s in sers[1:])
    # the chart's data: the sweep by budget, then the what-ifs, the full-coverage and the knee points
    ws = wb[COMPARISON]
    start = _rows(ws)["Variant"] + 1
    data = [(ws.cell(row=r, column=1).value, ws.cell(row=r, column=2).value, ws.cell(row=r, column=3).value,
             ws.cell(row=r, column=4).value) for r in range(start, start + 10)]
    sweep = [v for v in result.variants if v.group == result.sweep_group and v.plan is not None]
    assert [d[0] for d in data if d[1] == CHART_SERIES[0]] == [v.name for v in sweep]
    assert [d[2] for d in data if d[1] == CHART_SERIES[0]] == [8e5, 1.2e6, 1.6e6, 2.9e6, 3.3e6]
    # "demand +50%" has no plan (the site's power and racks run out), so no point
    assert [d[0] for d in data if d[1] == CHART_SERIES[1]] == ["Ascend 910B price +20%", "no Ascend (NVIDIA only)"]
    assert [(d[0], d[3]) for d in data if d[1] == CHART_SERIES[2]] == [("budget $2.90M", 1.0)]
    assert [d[0] for d in data if d[1] == CHART_SERIES[3]] == ["budget $2.90M"]
    # LibreOffice read it back as a scatter chart too
    lo = Path(path).parent / "lo" / Path(path).name
    with zipfile.ZipFile(lo) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/charts/chart"))
    assert re.search(r"<(c:)?scatterChart>", xml) and not re.search(r"<(c:)?lineChart>", xml)


@needs_libreoffice
def test_a_price_edit_moves_every_variant(case: tuple[Comparison, ResolvedScenario],
                                          recalculated: tuple[Path, Any, Any]) -> None:
    """L20-48GB 5,000 -> 6,000 in the Prices sheet: each variant with n L20 cards gains 1,000 n on
    its card line and in servers, and 8% x 3 years of that in support: capex + 1,240 n."""
    result, _ = case
    _, wb, edited = recalculated
    titles = bom_sheet_titles(result.variants)
    moved = 0
    for i, title in titles.items():
        v = result.variants[i]
        n = v.gpus_by_type.get("L20-48GB", 0)
        before, after = _bom_lines(wb[title]), _bom_lines(edited[title])
        card = next((k for k in before if k.startswith("L20-48GB GPU card")), None)
        if n == 0:
            assert card is None
            continue
        assert card is not None
        qty, unit, ext = after[card]
        assert (qty, unit) == (n, 6_000) and ext == pytest.approx(before[card][2] + L20_RAISE * n, abs=0.005)
        assert after["Subtotal (all lines)"][2] == pytest.approx(
            before["Subtotal (all lines)"][2] + L20_RAISE * n * (1 + SUPPORT), abs=0.005)
        col = 3 + i
        capex = _row(_rows(wb[COMPARISON]), "Capex: servers")
        assert edited[COMPARISON].cell(row=capex, column=col).value == pytest.approx(
            v.plan.capex + L20_RAISE * n * (1 + SUPPORT), abs=0.005)  # type: ignore[union-attr]
        moved += 1
    assert moved == len(titles) == 7  # every variant with a plan buys L20 cards


def test_a_budget_that_binds_is_labelled(case: tuple[Comparison, ResolvedScenario]) -> None:
    result, rs = case
    bound = next(v for v in result.variants if v.budget == 8e5)
    assert bound.objective == "coverage" and bound.budget_binds and bound.capex is not None
    assert bound.capex <= 8e5
    ws = build_compare_workbook(result, rs)[COMPARISON]
    rows = _rows(ws)
    col = 3 + result.variants.index(bound)
    assert ws.cell(row=rows["Objective used"], column=col).value == "coverage: budget binds, most demand it buys"
