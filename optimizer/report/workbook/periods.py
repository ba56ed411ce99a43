"""Schedule of a plan over periods: one row per year of ``periods:``, the NPV as formulas over it.

Capex (servers bought at the start of the year, at that year's prices), energy, support and rent
are the plan's figures per year (inputs, editable); cash out, the discount factor (every year's
cash counted at its start: 1/(1+Periods_Discount_Rate)^(year−1), as ``optimizer.periods``), the
discounted cash out, the totals and the NPV are formulas. It defines the Schedule_* names the
Summary reads, so the Summary's TCO is the nominal cash out and its NPV this sheet's.
"""

from __future__ import annotations

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.report.workbook.common import SCHEDULE
from optimizer.report.xlsx import BOLD, FMT_INT, NOTE, TOTAL_BORDER, Sheet, define_name, money_format
from optimizer.schema.plan import Plan

HEADER_ROW = 5
HEADERS = ["Year", "Bought at the start of the year", "Retired", "Rented during the year", "Capex", "Energy",
           "Support", "Rent", "Total cash out", "Discount factor", "Discounted cash out"]


def write_period_schedule(wb: Workbook, ws: Worksheet, plan: Plan) -> None:
    assert plan.periods is not None and plan.discount_rate is not None
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur, cents=False)
    sh.title(1, f"Plan per year — {plan.scenario}")
    sh.title(2, f"Currency {cur}; one row per year of the plan. Capex: servers bought at the start of the year at "
                "that year's prices (nominal; quote lines are not priced per period). Energy and support: the "
                "servers owned that year (inventory kept and bought so far); rent: cloud instances for the whole "
                "year. NPV: each year's cash out counted at its start, 1/(1+Periods_Discount_Rate)^(year-1). "
                "Edit a figure or the rate and the totals follow.", NOTE)
    sh.put(3, 1, "Discount rate", font=BOLD)
    sh.put(3, 2, plan.discount_rate, "0.0%")
    define_name(wb, "Periods_Discount_Rate", SCHEDULE, 2, 3)
    headers = [h if i < 4 or h == "Discount factor" else f"{h} ({cur})" for i, h in enumerate(HEADERS)]
    sh.header(HEADER_ROW, headers)
    first = HEADER_ROW + 1
    row = HEADER_ROW
    for p in plan.periods:
        row += 1
        sh.put(row, 1, p.year, FMT_INT)
        sh.put(row, 2, "; ".join(f"{b.count} x {b.sku}" for b in p.buy) or "-", wrap=True)
        sh.put(row, 3, "; ".join(f"{b.count} x {b.sku}" for b in p.retire) or "-", wrap=True)
        sh.put(row, 4, "; ".join(f"{r.count} x {r.instance} ({r.option}, {r.gpu_hours:,.0f} GPU-hours)"
                                 for r in p.rent) or "-", wrap=True)
        for col, value in ((5, p.capex), (6, p.energy), (7, p.support), (8, p.rent_cost)):
            sh.put(row, col, value, money)
        sh.put(row, 9, f"=E{row}+F{row}+G{row}+H{row}", money, shown=p.cash_out, font=BOLD)
        sh.put(row, 10, f"=1/(1+Periods_Discount_Rate)^(A{row}-1)", "0.0000", shown=p.discount_factor)
        sh.put(row, 11, f"=I{row}*J{row}", money, shown=p.discounted)
    last = row
    row += 1
    sh.put(row, 1, "Total", font=BOLD, border=TOTAL_BORDER)
    totals = {"E": sum(p.capex for p in plan.periods), "F": plan.energy_cost,
              "G": sum(p.support for p in plan.periods), "H": sum(p.rent_cost for p in plan.periods),
              "I": sum(p.cash_out for p in plan.periods), "K": plan.npv}
    for col, letter in ((5, "E"), (6, "F"), (7, "G"), (8, "H"), (9, "I"), (11, "K")):
        sh.put(row, col, f"=SUM({letter}{first}:{letter}{last})", money, shown=totals[letter], font=BOLD,
               border=TOTAL_BORDER)
    for name, col in (("Schedule_Capex", 5), ("Schedule_Energy", 6), ("Schedule_Support", 7),
                      ("Schedule_Other_Opex", 8), ("Schedule_Cash_Out", 9), ("Schedule_NPV", 11)):
        define_name(wb, name, SCHEDULE, col, row)
    row += 1
    sh.put(row, 1, "Depreciation (not cash)", font=BOLD)
    sh.put(row, 5, 0, money)
    define_name(wb, "Schedule_Depreciation", SCHEDULE, 5, row)
    row += 2
    sh.title(row, "The Summary's TCO is the total cash out (rent shown as other opex); its NPV is the total "
                  "discounted cash out. The Bill of Materials lists each year's purchases at that year's prices.", NOTE)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {plan.scenario}")
