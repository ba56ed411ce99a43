"""Summary: page 1 is the purchase request.

What is bought (each server type x count x cost, the other quote lines by category), subtotal,
contingency, tax and the grand total, checked against the budget (red when over: conditional
formatting over ``BOM_Grand_Total`` and ``Budget``); TCO over the horizon and its NPV (the Schedule
sheet's totals); power, racks, servers and GPUs; the approval block. Page 2: cost by category and its
chart. Every figure is a formula over the other sheets and the named inputs, labels included.
"""

from __future__ import annotations

from typing import Any

from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.workbook.common import (
    CATEGORY_GPU,
    QUOTE_CATEGORIES,
    Refs,
    finance,
    is_integrated,
    quote_lines,
    today,
)
from optimizer.report.xlsx import (
    BOLD,
    FMT_1,
    FMT_DATE,
    FMT_INT,
    FMT_PCT,
    INPUT_FILL,
    INPUT_FONT,
    NOTE,
    SECTION,
    THIN,
    TOTAL_BORDER,
    Sheet,
    chart_fonts,
    money_format,
)
from optimizer.schema.plan import Plan

OVER_FILL = PatternFill("solid", fgColor="C00000")
OVER_FONT = Font(color="FFFFFF", bold=True)
OVER_BUDGET = "AND(ISNUMBER(Budget),BOM_Grand_Total>Budget)"
LABEL = Alignment(wrap_text=True, vertical="top", horizontal="left", indent=1)
STATUS_WORDS = {"optimal": "the cheapest plan that meets every limit (proven by the solver)",
                "feasible": "a plan that meets every limit; a cheaper one may exist (see the Solver sheet)",
                "infeasible": "no plan meets every limit"}


def write_summary(ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: Refs) -> None:
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    sc = rs.scenario
    fin = finance(rs)
    sh.title(1, f"GPU purchase request — {plan.scenario}")
    desc = (sc.description or "").strip()
    sh.title(2, (desc + " " if desc else "") + f"Prepared {today().isoformat()} by procure from {rs.path.name}. "
             f"Plan: {STATUS_WORDS.get(plan.status, plan.status)}. Money in {cur}; prices are dated estimates, "
             "not quotes (Assumptions); blue cells are inputs and every total follows them.", NOTE)
    row = 2

    def section(text: str) -> None:
        nonlocal row
        row += 2
        sh.put(row, 1, text, font=SECTION, width=False)

    def fig(label: Any, value: Any, fmt: str | None, *, unit: str = "", shown_label: str | None = None,
            shown: Any = None, bold: bool = False, col: int = 4) -> int:
        nonlocal row
        row += 1
        sh.put(row, 1, label, shown=shown_label, font=BOLD if bold else None, wrap=True, cap=46)
        ws.cell(row=row, column=1).alignment = LABEL
        if unit:
            sh.put(row, 3, unit, align="right")
        sh.put(row, col, value, fmt, shown=shown, font=BOLD if bold else None, align="right")
        return row

    section("What is bought")
    row += 1
    sh.header(row, ["Item", "Qty", f"Unit price ({cur})", f"Amount ({cur})"])
    first_item = row + 1
    for item, q_cell, u_cell, count, unit_price in refs.period_buys:  # plans over periods: each year's buys
        row += 1
        sh.put(row, 1, item, wrap=True, cap=46)
        sh.put(row, 2, f"={q_cell}", FMT_INT, shown=count)
        sh.put(row, 3, f"={u_cell}", money, shown=unit_price)
        sh.put(row, 4, f"=B{row}*C{row}", money, shown=unit_price * count)
    for s in [] if plan.periods else plan.servers:
        qty = refs.server_qty.get(s.sku)
        unit_ref = refs.server_unit.get(s.sku)
        row += 1
        if is_integrated(s, rs):
            label = f"{s.chassis} system with {s.gpus_per_server} x {s.gpu}"
            unit = f"={unit_ref}" if unit_ref else s.unit_price
        else:
            label = f"{s.chassis} server with {s.gpus_per_server} x {s.gpu} cards"
            gpu_unit = refs.gpu_unit.get(s.gpu)
            unit = f"={unit_ref}+{s.gpus_per_server}*{gpu_unit}" if unit_ref and gpu_unit else s.unit_price
        sh.put(row, 1, label, wrap=True, cap=46)
        sh.put(row, 2, f"={qty}" if qty else s.count, FMT_INT, shown=s.count)
        sh.put(row, 3, unit, money, shown=s.unit_price)
        sh.put(row, 4, f"=B{row}*C{row}", money, shown=s.unit_price * s.count)
    present = {q.category for q in quote_lines(plan)}
    for key, cat in QUOTE_CATEGORIES.items():
        if key not in present:
            continue
        row += 1
        sh.put(row, 1, f"{cat} (Bill of Materials)", wrap=True, cap=46)
        sh.put(row, 4, f"={refs.category_sum[cat]}" if cat in refs.category_sum else 0.0, money,
               shown=sum(q.extended_price for q in quote_lines(plan) if q.category == key))
    last_item = row
    row += 1
    sh.put(row, 1, "Subtotal", font=BOLD, border=TOTAL_BORDER)
    for c in (2, 3):
        ws.cell(row=row, column=c).border = TOTAL_BORDER
    sh.put(row, 4, "=BOM_Subtotal", money, shown=plan.capex, font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 5, f"=IF(ABS(SUM(D{first_item}:D{last_item})-D{row})>0.005,\"does not add up\",\"\")",
           shown="", width=False)
    fig('="Contingency ("&TEXT(Contingency_Pct,"0.0%")&" of the subtotal)"', "=BOM_Contingency", money,
        shown_label="Contingency (10.0% of the subtotal)", shown=plan.capex)
    fig('="Tax ("&TEXT(Tax_Pct,"0.0%")&" of subtotal + contingency)"', "=BOM_Tax", money,
        shown_label="Tax (10.0% of subtotal + contingency)", shown=plan.capex)
    grand_row = fig("Grand total (with contingency and tax)", "=BOM_Grand_Total", money, shown=plan.capex * 1.2,
                    bold=True)
    for c in range(1, 5):
        ws.cell(row=grand_row, column=c).border = Border(top=THIN, bottom=Side(style="double"))
    budget_row = fig("Budget", '=IF(ISNUMBER(Budget),Budget,"none set")', money,
                     shown=sc.constraints.budget or 0.0)
    fig("Budget left (negative: over budget)", '=IF(ISNUMBER(Budget),Budget-BOM_Grand_Total,"")', money,
        shown=sc.constraints.budget or 0.0)
    check_row = fig("Budget check", '=IF(ISNUMBER(Budget),IF(BOM_Grand_Total>Budget,"OVER BUDGET","within budget"),'
                    '"no budget set")', None, shown="OVER BUDGET", bold=True)
    ws.conditional_formatting.add(f"A{grand_row}:D{grand_row} A{check_row}:D{check_row} D{budget_row + 1}",
                                  FormulaRule(formula=[OVER_BUDGET], fill=OVER_FILL, font=OVER_FONT,
                                              stopIfTrue=False))

    if refs.period_rent:
        section("Cloud instances rented (opex per year, not in the purchase total)")
        for label, ref, cost in refs.period_rent:
            fig(label, f"={ref}", money, shown=cost)
        fig("Rent over all years", "=BOM_Rent", money, shown=sum(c for _, _, c in refs.period_rent), bold=True)
    elif plan.hourly_cost is not None:
        section("Cloud instances (rented by the hour, objective hourly)")
        for s in plan.servers:
            if s.hourly_price is not None:
                fig(f"{s.count} x {s.sku} at {s.hourly_price:,.4g} per hour ({s.price_source})",
                    s.hourly_price * s.count, money, unit="per hour", shown=s.hourly_price * s.count)
        fig("Price per hour of the instances", plan.hourly_cost, money, unit="per hour", shown=plan.hourly_cost,
            bold=True)

    section("Cost of ownership")
    fig('="TCO over "&Horizon_Years&" years (total cash out)"', "=Schedule_Cash_Out", money,
        shown_label=f"TCO over {plan.horizon_years:g} years (total cash out)", shown=plan.tco * 1.2, bold=True)
    fig('="NPV of the cash out at "&TEXT(Discount_Rate,"0.0%")&" a year"', "=Schedule_NPV", money,
        shown_label=f"NPV of the cash out at {fin.discount_rate:.1%} a year", shown=plan.tco * 1.2, bold=True)
    fig('="  of which energy over "&Horizon_Years&" years"', "=Schedule_Energy", money,
        shown_label=f"  of which energy over {plan.horizon_years:g} years", shown=plan.energy_cost)
    fig('="  of which support and other opex over "&Horizon_Years&" years"',
        "=Schedule_Support+Schedule_Other_Opex", money,
        shown_label=f"  of which support and other opex over {plan.horizon_years:g} years", shown=plan.opex_cost)

    section("Power and space")
    power_row = fig("IT power at full load", "=BOM_Power_W/1000", FMT_1, unit="kW", shown=plan.power_kw)
    fig('="Facility power (IT x PUE "&TEXT(Site_PUE,"0.00")&")"', f"=D{power_row}*Site_PUE", FMT_1, unit="kW",
        shown_label=f"Facility power (IT x PUE {sc.site.pue:.2f})", shown=plan.facility_power_kw)
    fig('="Racks (of "&Racks_Available&" available)"', "=Racks_Needed", FMT_INT, unit="racks",
        shown_label=f"Racks (of {sc.site.racks} available)", shown=plan.racks_used)
    fig("Rack units", "=BOM_Rack_Units", FMT_INT, unit="U", shown=plan.rack_units_used)
    fig("Servers", "=Servers_Total", FMT_INT, unit="servers", shown=sum(s.count for s in plan.servers))
    gpu_terms: dict[str, list[str]] = {}
    for s in plan.servers:
        qty = refs.server_qty.get(s.sku)
        if is_integrated(s, rs) or s.gpu not in refs.gpu_qty:
            gpu_terms.setdefault(s.gpu, []).append(f"{qty}*{s.gpus_per_server}" if qty else
                                                   str(s.count * s.gpus_per_server))
        elif refs.gpu_qty[s.gpu] not in gpu_terms.get(s.gpu, []):
            gpu_terms.setdefault(s.gpu, []).append(refs.gpu_qty[s.gpu])
    gpu_rows = []
    for gname in sorted(gpu_terms):
        gpu_rows.append(fig(f"GPUs: {gname}", "=" + "+".join(gpu_terms[gname]), FMT_INT, unit="GPUs",
                            shown=plan.gpus_by_type.get(gname, 0)))
    if len(gpu_rows) > 1:
        fig("GPUs in all", "=" + "+".join(f"D{r}" for r in gpu_rows), FMT_INT, unit="GPUs",
            shown=sum(plan.gpus_by_type.values()))

    section("Approval")
    approval = fin.approval
    for label, attr in (("Requester", "requester"), ("Cost centre", "cost_centre"), ("Approver", "approver"),
                        ("Date", "date"), ("Signature", None)):
        row += 1
        sh.put(row, 1, label, font=BOLD)
        value = getattr(approval, attr, None) if approval is not None and attr else None
        cell = sh.put(row, 2, value, font=INPUT_FONT, fill=INPUT_FILL if attr else None, width=False,
                      align="left")
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=4)
        cell.border = Border(bottom=THIN)
        for c in (3, 4):
            ws.cell(row=row, column=c).border = Border(bottom=THIN)
        if attr is None:
            ws.row_dimensions[row].height = 30
    row += 1
    ws.row_breaks.append(Break(id=row))

    # Page 2: cost by category (the chart's data).
    row += 1
    sh.put(row, 1, "Cost by category", font=SECTION, width=False)
    row += 1
    cat_header = row
    sh.header(row, ["Category", "", "Share of TCO", f"Amount ({cur})"])
    cats: list[tuple[str, str]] = [("Servers (systems, chassis, GPU cards)", "=BOM_Hardware")]
    for key, cat in QUOTE_CATEGORIES.items():
        if key in present and cat in refs.category_sum:
            cats.append((cat, f"={refs.category_sum[cat]}"))
    cats += [("Contingency", "=BOM_Contingency"), ("Tax", "=BOM_Tax"),
             (f"Energy ({plan.horizon_years:g} years)", "=Schedule_Energy"),
             (f"Support and other opex ({plan.horizon_years:g} years)", "=Schedule_Support+Schedule_Other_Opex")]
    tco_ref = f"SUM($D${cat_header + 1}:$D${cat_header + len(cats)})"
    for label, formula in cats:
        row += 1
        sh.put(row, 1, label, wrap=True, cap=46)
        sh.put(row, 4, formula, money, shown=plan.tco * 1.3)
        sh.put(row, 3, f"=IF({tco_ref}>0,D{row}/{tco_ref},0)", FMT_PCT, shown=1.0)
    cat_first, cat_last = cat_header + 1, row
    row += 2
    sh.title(row, f"Details: Bill of Materials (every line), Schedule (cash out by year, depreciation, NPV), Racks "
                  f"(kW and U per rack), Capacity, Assumptions (every input), Solver. Written {today():%Y-%m-%d}.",
             NOTE)
    _ = FMT_DATE, CATEGORY_GPU
    sh.finish(header_row=None, landscape=False, footer=f"procure — {plan.scenario}")
    ws.freeze_panes = None
    ws.print_title_rows = "1:1"
    chart = BarChart()
    chart.type = "bar"
    chart.title = f"Cost by category over {plan.horizon_years:g} years ({cur})"
    chart.legend = None
    chart.x_axis.scaling.orientation = "maxMin"  # first category on top, as in the table
    chart.x_axis.title = None
    chart.y_axis.numFmt = FMT_INT
    chart.add_data(Reference(ws, min_col=4, min_row=cat_header, max_row=cat_last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=cat_first, max_row=cat_last))
    chart.height = 8.0
    chart.width = 16.0
    chart_fonts(chart)
    ws.add_chart(chart, f"A{row + 2}")
