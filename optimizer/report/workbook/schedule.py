"""Schedule: the financial schedule, one row per year.

Capex with payment phasing (``Payment_On_Order_Pct`` of the grand total in year 1, the rest in the
delivery year ``1 + Delivery_Lag_Years``), straight-line depreciation of the grand total over
``Useful_Life_Years`` (full-year convention: a full year's charge from the delivery year), energy,
support and other opex for each year of the horizon (a part year pro rata), total cash out, and the
NPV of cash out at ``Discount_Rate`` with end-of-year discounting (year y's cash out / (1 + r)^y).
Every cell is a formula over the named inputs; the Summary's TCO is this sheet's total cash out.
"""

from __future__ import annotations

import math

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.workbook.common import SCHEDULE, finance
from optimizer.report.xlsx import (
    BOLD,
    FMT_INT,
    NOTE,
    TOTAL_BORDER,
    Sheet,
    define_name,
    money_format,
)
from optimizer.schema.plan import Plan

HEADER_ROW = 4
HEADERS = ["Year", "Share of the year in the horizon", "Capex paid on order", "Capex paid on delivery",
           "Depreciation (not cash)", "Energy", "Support", "Other opex", "Total cash out", "Discount factor",
           "Discounted cash out"]
DISCOUNT_COL = 10


def schedule_years(plan: Plan, rs: ResolvedScenario) -> int:
    """Rows: the horizon, the delivery year and the whole depreciation life."""
    fin = finance(rs)
    return max(math.ceil(plan.horizon_years - 1e-9), 1 + fin.delivery_lag_years,
               fin.delivery_lag_years + fin.useful_life_years)


def write_schedule(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario) -> None:
    """Support opex is a fraction of the servers' price (``BOM_Hardware``), as the plan prices it."""
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur, cents=False)
    n = schedule_years(plan, rs)
    sh.title(1, f"Financial schedule — {plan.scenario}")
    sh.title(2, f"Currency {cur}; one row per year. Capex is the Bill of Materials grand total (with contingency "
                "and tax), paid Payment_On_Order_Pct in year 1 and the rest in year 1 + Delivery_Lag_Years. "
                "Depreciation: straight line over Useful_Life_Years, a full year's charge from the delivery "
                "year (not cash, not in the total). Energy and opex run over Horizon_Years (a part year pro "
                "rata). NPV: each year's cash out discounted at Discount_Rate at the end of that year, "
                "1/(1+rate)^year.", NOTE)
    headers = list(HEADERS)
    for i in range(2, len(headers)):
        if i != DISCOUNT_COL - 1:
            headers[i] = f"{headers[i]} ({cur})"
    sh.header(HEADER_ROW, headers)
    first = HEADER_ROW + 1
    fin = finance(rs)
    lag = fin.delivery_lag_years
    life = fin.useful_life_years
    grand = plan.capex + plan.contingency + plan.tax
    energy_y = plan.energy_cost / plan.horizon_years if plan.horizon_years else 0.0
    opex_y = plan.opex_cost / plan.horizon_years if plan.horizon_years else 0.0
    row = HEADER_ROW
    for y in range(1, n + 1):
        row += 1
        share = max(0.0, min(1.0, plan.horizon_years - (y - 1)))
        on_order = grand * fin.payment_on_order_pct if y == 1 else 0.0
        on_delivery = grand * (1 - fin.payment_on_order_pct) if y == 1 + lag else 0.0
        cash = on_order + on_delivery + (energy_y + opex_y) * share
        sh.put(row, 1, y, FMT_INT)
        sh.put(row, 2, f"=MAX(0,MIN(1,Horizon_Years-(A{row}-1)))", "0.00", shown=share)
        sh.put(row, 3, f"=IF(A{row}=1,BOM_Grand_Total*Payment_On_Order_Pct,0)", money, shown=on_order)
        sh.put(row, 4, f"=IF(A{row}=1+Delivery_Lag_Years,BOM_Grand_Total*(1-Payment_On_Order_Pct),0)", money,
               shown=on_delivery)
        sh.put(row, 5, f"=IF(AND(A{row}>=1+Delivery_Lag_Years,A{row}<1+Delivery_Lag_Years+Useful_Life_Years),"
                       "BOM_Grand_Total/Useful_Life_Years,0)", money,
               shown=grand / life if lag < y <= lag + life else 0)
        sh.put(row, 6, f"=BOM_Power_W/1000*Site_PUE*Hours_Per_Year*Electricity_Price_kWh*B{row}", money,
               shown=energy_y * share)
        sh.put(row, 7, f"=BOM_Hardware*Opex_Fraction_Per_Year*B{row}", money, shown=opex_y * share)
        sh.put(row, 8, f"=Other_Opex_Per_Year*B{row}", money, shown=0.0)
        sh.put(row, 9, f"=C{row}+D{row}+F{row}+G{row}+H{row}", money, shown=cash, font=BOLD)
        sh.put(row, 10, f"=1/(1+Discount_Rate)^A{row}", "0.0000", shown=1 / (1 + fin.discount_rate) ** y)
        sh.put(row, 11, f"=I{row}*J{row}", money, shown=cash / (1 + fin.discount_rate) ** y)
    last = row
    row += 1
    sh.put(row, 1, "Total", font=BOLD, border=TOTAL_BORDER)
    for col, letter in ((3, "C"), (4, "D"), (5, "E"), (6, "F"), (7, "G"), (8, "H"), (9, "I"), (11, "K")):
        sh.put(row, col, f"=SUM({letter}{first}:{letter}{last})", money, shown=plan.tco * 1.2, font=BOLD,
               border=TOTAL_BORDER)
    ws.cell(row=row, column=2).border = TOTAL_BORDER
    ws.cell(row=row, column=10).border = TOTAL_BORDER
    for name, col in (("Schedule_Depreciation", 5), ("Schedule_Energy", 6), ("Schedule_Support", 7),
                      ("Schedule_Other_Opex", 8), ("Schedule_Cash_Out", 9), ("Schedule_NPV", 11)):
        define_name(wb, name, SCHEDULE, col, row)
    row += 2
    sh.put(row, 1, f'=IF(MAX(Horizon_Years,Delivery_Lag_Years+Useful_Life_Years)>{n},"The inputs now reach '
                   f'beyond year {n}: add rows (copy the last one) for the later years.","")', shown="", width=False)
    row += 1
    sh.title(row, "TCO on the Summary = total cash out; NPV on the Summary = total discounted cash out. With "
                  "contingency and tax at 0 the total equals the plan's TCO (capex + energy + support).", NOTE)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {plan.scenario}")
