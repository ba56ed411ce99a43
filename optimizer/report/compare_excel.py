"""The what-if comparison workbook: variants side by side, a chart, and each variant's bill of materials.

Sheets:

* **Comparison** – one column per variant, one row per metric: budget, status, objective used,
  capex (a formula linking the variant's BOM grand total), budget left, TCO, served demand (overall,
  priority-weighted; requests; per workload), GPUs by type, servers, power, and the marginal value
  of budget (served-demand points per extra million, to the next budget point; a formula over the
  cells above it). Below the table, the chart's data (one row per variant with a plan, by budget,
  linked to the table) and a native line chart of served demand and capex against the budget.
* **one BOM sheet per variant with a plan** – written by
  :func:`optimizer.report.excel.add_bom_sheet`, the same layout and formulas as the single-plan
  workbook (``=qty*unit``, subtotal, contingency and tax inputs, grand total); its defined names
  carry a per-variant prefix (``Variant3_BOM_Grand_Total``).

Numbers are numbers with number formats; nothing is recomputed here: every figure comes from the
:class:`optimizer.compare.Comparison`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.utils import get_column_letter

from optimizer import __version__
from optimizer.compare import Comparison, VariantResult, variant_scenario
from optimizer.loaders import ResolvedScenario
from optimizer.report.excel import add_bom_sheet, default_workbook_path
from optimizer.report.xlsx import (
    BOLD,
    FMT_1,
    FMT_2,
    FMT_INT,
    FMT_PCT,
    NOTE,
    SECTION,
    Sheet,
    money_format,
    save_workbook,
)
from optimizer.units import currency_symbol

COMPARISON = "Comparison"
HEADER_ROW = 4
FIRST_COL = 3  # columns A, B: metric and unit
MAX_SHEET_TITLE = 31
ORIGINS = {"base": "scenario as written", "cli": "command line", "whatif": "scenario what-if"}


def bom_sheet_titles(variants: list[VariantResult]) -> dict[int, str]:
    """Distinct, valid sheet titles ``"3 budget $1.50M"`` for variants with a plan (by index)."""
    out: dict[int, str] = {}
    used = {COMPARISON.lower()}
    for i, v in enumerate(variants):
        if v.plan is None:
            continue
        base = re.sub(r"[\[\]:*?/\\]", "-", f"{i + 1} {v.name}").strip("'")
        title = base[:MAX_SHEET_TITLE].rstrip()
        n = 2
        while title.lower() in used:
            suffix = f" ({n})"
            title = base[:MAX_SHEET_TITLE - len(suffix)].rstrip() + suffix
            n += 1
        used.add(title.lower())
        out[i] = title
    return out


def default_compare_path(scenario_file: Path) -> Path:
    """``reports/<scenario stem>-compare.xlsx`` (the folder is created)."""
    path = default_workbook_path(scenario_file)
    return path.with_name(f"{Path(scenario_file).stem}-compare.xlsx")


def _overrides(v: VariantResult) -> str:
    parts = [f"price {k} = {p:,.2f}" for k, p in v.prices.items()]
    if v.gpus is not None:
        parts.append("GPUs: " + ", ".join(v.gpus))
    if v.demand_scale != 1.0:
        parts.append(f"demand x {v.demand_scale:g}")
    return "; ".join(parts) or "none"


def build_compare_workbook(result: Comparison, rs: ResolvedScenario,
                           scenarios: Sequence[ResolvedScenario] | None = None) -> Workbook:
    """The comparison workbook in memory; ``rs`` is the base scenario the variants override.
    ``scenarios`` (one per variant) gives each variant's own scenario instead, for variants that are
    whole edited scenarios (the web page's) rather than overrides of ``rs``."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = COMPARISON
    cur = result.currency
    money = money_format(cur)
    sym = currency_symbol(cur)
    variants = result.variants
    titles = bom_sheet_titles(variants)
    totals: dict[int, str] = {}
    for i, title in titles.items():
        v = variants[i]
        assert v.plan is not None
        totals[i] = add_bom_sheet(
            wb, title, v.plan, scenarios[i] if scenarios is not None else variant_scenario(rs, v),
            prefix=f"Variant{i + 1}_",
            heading=f"Bill of Materials — {result.scenario} — variant {i + 1}: {v.name}",
            note=f"Currency {cur}. Unit prices are the plan's (dated estimates, not quotes, unless a scenario or "
                 "what-if value); extended prices and totals are formulas. Contingency and tax are inputs "
                 "(blue); the Comparison sheet's capex follows the grand total.")

    sh = Sheet(ws)
    sh.title(1, f"What-if comparison — {result.scenario}")
    sh.title(2, "One column per variant. Capex links to each variant's Bill of Materials sheet; served demand is "
                "the priority-weighted share the plan serves (the coverage objective). Where a budget cannot "
                "buy all demand, the plan serves the most it can, then costs the least. Prices are dated "
                "estimates, not quotes.", NOTE)
    sh.header(HEADER_ROW, ["Metric", "Unit", *(v.name for v in variants)])
    row = HEADER_ROW
    rows: dict[str, int] = {}

    def col(i: int) -> int:
        return FIRST_COL + i

    def metric(key: str, label: str, unit: str, values: list[Any], fmt: str | None = None, *,
               bold: bool = False, wrap: bool = False, shown: list[Any] | None = None) -> int:
        nonlocal row
        row += 1
        rows[key] = row
        sh.put(row, 1, label, font=BOLD if bold else None, wrap=True, cap=44)
        sh.put(row, 2, unit, wrap=True, cap=20)
        for i, value in enumerate(values):
            if value is None:
                continue
            sh.put(row, col(i), value, fmt, font=BOLD if bold else None, wrap=wrap, cap=30,
                   shown=shown[i] if shown else None, align="right" if not wrap else None)
        return row

    def section(label: str) -> None:
        nonlocal row
        row += 2
        sh.put(row, 1, label, font=SECTION, width=False)

    metric("origin", "Variant from", "", [ORIGINS[v.origin] for v in variants], wrap=True)
    metric("overrides", "Overrides", "", [_overrides(v) for v in variants], wrap=True)
    metric("budget", "Budget (capex cap)", cur, [v.budget for v in variants], money)
    metric("status", "Plan status", "", [v.status for v in variants])
    metric("objective", "Objective used", "", [
        None if v.objective is None else
        f"{v.objective}: budget binds, most demand it buys" if v.budget_binds else
        f"{v.objective}: all demand served" for v in variants], wrap=True)
    metric("full", "Cheapest plan serving all demand (no cap)", cur, [v.full_demand_capex for v in variants], money)

    section("Cost")
    capex = [f"={totals[i]}" if i in totals else None for i in range(len(variants))]
    metric("capex", "Capex (BOM grand total)", cur, capex, money, bold=True,
           shown=[(v.capex or 0) * 1.2 for v in variants])
    left = []
    for i, v in enumerate(variants):
        letter = get_column_letter(col(i))
        ok = v.budget is not None and i in totals
        left.append(f"={letter}{rows['budget']}-{letter}{rows['capex']}" if ok else None)
    metric("left", "Budget left", cur, left, money, shown=[v.budget or 0 for v in variants])
    metric("tco", f"TCO over {result.horizon_years:g} years (capex + energy + support)", cur,
           [v.tco for v in variants], money)

    section("Demand served")
    metric("served", "Served demand, priority-weighted", "%", [v.served_fraction for v in variants], FMT_PCT,
           bold=True)
    metric("requests", "Requests served (share of req/s)", "%",
           [v.served_requests_fraction for v in variants], FMT_PCT)
    for w in result.workloads:
        metric(f"w:{w}", f"{w} (priority {result.priorities.get(w, 1.0):g})", "%",
               [v.served_by_workload.get(w) if v.plan is not None else None for v in variants], FMT_PCT)
    marg: list[Any] = []
    marg_shown: list[Any] = []
    names = [v.name for v in variants]
    for i, v in enumerate(variants):
        if v.marginal_next is None or v.marginal_points_per_million is None:
            marg.append(None)
            marg_shown.append(None)
            continue
        j = names.index(v.marginal_next)
        a, b = get_column_letter(col(i)), get_column_letter(col(j))
        s, bud = rows["served"], rows["budget"]
        marg.append(f"=({b}{s}-{a}{s})*100/(({b}{bud}-{a}{bud})/1000000)")
        marg_shown.append(v.marginal_points_per_million)
    metric("marginal", "Marginal value of budget: served-demand points per extra million, to the next budget point",
           f"points per {sym.strip()}1M", marg, FMT_2, shown=marg_shown)
    metric("next", "Next budget point", "", [v.marginal_next for v in variants], wrap=True)

    section("Hardware and power")
    gpu_types = sorted({g for v in variants for g in v.gpus_by_type})
    for g in gpu_types:
        metric(f"g:{g}", f"GPUs: {g}", "GPUs",
               [v.gpus_by_type.get(g, 0) if v.plan is not None else None for v in variants], FMT_INT)
    metric("servers", "Servers", "servers", [v.servers for v in variants], FMT_INT)
    metric("power", "IT power at full load", "kW", [v.power_kw for v in variants], FMT_1)
    metric("facility", "Facility power (IT x PUE)", "kW", [v.facility_power_kw for v in variants], FMT_1)

    section("Solver")
    metric("gap", "Relative gap", "%", [v.gap for v in variants], "0.00%")
    metric("time", "Solve time", "s", [v.solve_time_s for v in variants], FMT_2)
    metric("bom", "Bill of Materials sheet", "", [titles.get(i) for i in range(len(variants))], wrap=True)
    metric("reason", "Reason (no plan) and notes", "",
           ["\n".join(x for x in [v.reason, *v.notes] if x) or None for v in variants], wrap=True)

    # Chart data: variants with a plan, by budget, linked to the table above.
    charted = sorted((i for i, v in enumerate(variants) if v.plan is not None),
                     key=lambda i: (variants[i].budget is None, variants[i].budget or 0.0, i))
    row += 2
    sh.put(row, 1, "Chart data: served demand and capex by budget (links to the table above)", font=SECTION,
           width=False)
    row += 1
    data_header = row
    sh.header(row, ["Variant", f"Budget ({cur})", "Served demand, priority-weighted", f"Capex ({cur})"])
    for i in charted:
        v = variants[i]
        row += 1
        letter = get_column_letter(col(i))
        sh.put(row, 1, f"={letter}{HEADER_ROW}", shown=v.name)
        budget_label = (f"={letter}{rows['budget']}" if v.budget is not None else "no cap")
        sh.put(row, 2, budget_label, money, shown=v.budget or 0.0)
        sh.put(row, 3, f"={letter}{rows['served']}", FMT_PCT, shown=v.served_fraction)
        sh.put(row, 4, f"={letter}{rows['capex']}", money, shown=(v.capex or 0.0) * 1.2)
    data_first, data_last = data_header + 1, row
    row += 2
    sh.title(row, f"procure {__version__}. Served demand never falls as the budget rises within a group of "
                  "variants with the same prices, GPUs and demand (docs/compare.md).", NOTE)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {result.scenario} — what-if comparison")
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=FIRST_COL)
    if charted:
        _chart(ws, data_header, data_first, data_last, cur, row + 2)
    wb.active = 0
    wb.calculation.fullCalcOnLoad = True
    wb.properties.title = f"What-if comparison — {result.scenario}"
    wb.properties.creator = f"procure {__version__}"
    return wb


def _chart(ws: Any, header: int, first: int, last: int, currency: str, anchor_row: int) -> None:
    """Served demand (left axis) and capex (right axis) against the budget: a native line chart."""
    served = LineChart()
    served.title = f"Served demand and capex by budget ({currency})"
    served.y_axis.title = "Served demand (priority-weighted)"
    served.y_axis.numFmt = "0%"
    served.y_axis.scaling.min = 0
    served.y_axis.majorGridlines = None
    served.x_axis.number_format = "#,##0"
    served.add_data(Reference(ws, min_col=3, min_row=header, max_row=last), titles_from_data=True)
    served.set_categories(Reference(ws, min_col=2, min_row=first, max_row=last))
    cost = LineChart()
    cost.add_data(Reference(ws, min_col=4, min_row=header, max_row=last), titles_from_data=True)
    cost.y_axis.axId = 200
    cost.y_axis.title = f"Capex ({currency})"
    cost.y_axis.numFmt = "#,##0"
    cost.y_axis.crosses = "max"
    for ax in (served.x_axis, served.y_axis, cost.y_axis):
        ax.delete = False
    for series in (*served.series, *cost.series):
        series.smooth = False
    served += cost
    served.legend.position = "b"
    served.height = 9.0
    served.width = 20.0
    ws.add_chart(served, f"A{anchor_row}")


def write_compare_workbook(result: Comparison, rs: ResolvedScenario, path: Path, *, force: bool = False,
                           scenarios: Sequence[ResolvedScenario] | None = None) -> Path:
    """Write the comparison workbook safely (temporary file + rename); UsageError when it cannot."""
    return save_workbook(build_compare_workbook(result, rs, scenarios), path, force=force)

