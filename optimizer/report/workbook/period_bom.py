"""Bill of Materials of a plan over periods: what is bought, year by year, at that year's prices.

One section per year of ``periods:``: the servers bought at the start of the year (quantity x that
year's unit price, ``periods[].unit_prices``), the inventory kept (owned, price 0, not bought) and
the cloud instances rented that year on their own lines (instance-hours x hourly price: count x
8760 h). Each year's purchase subtotal is ``periods[].capex``; the purchases over all years are the
plan's nominal capex (``BOM_Subtotal``), then contingency, tax and the grand total as in the
single-period sheet. Rent is opex (the Schedule's), so it is totalled apart from the purchases.
"""

from __future__ import annotations

from collections import defaultdict

from openpyxl import Workbook
from openpyxl.styles import Border, Side
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario, inventory_key
from optimizer.report.workbook.bom import BOM_HEADER_ROW, N_COLS, write_bom_header
from optimizer.report.workbook.common import BOM, CATEGORY_SYSTEM, Refs
from optimizer.report.xlsx import (
    BOLD,
    FMT_INT,
    FMT_PCT2,
    NOTE,
    SECTION,
    THIN,
    TOTAL_BORDER,
    Sheet,
    abs_ref,
    define_name,
    money_format,
    range_ref,
)
from optimizer.schema.plan import Plan
from optimizer.units import HOURS_PER_YEAR

CATEGORY_OWNED = "Owned (inventory)"
CATEGORY_RENT = "Cloud rent"


def write_period_bom(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: Refs) -> None:
    assert plan.periods is not None
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    sh.title(1, f"Bill of Materials per year — {plan.scenario}")
    sh.title(2, f"Currency {cur}. One section per year of the plan: the servers bought at the start of that year "
                "at that year's price, the inventory kept (owned: price 0, not bought) and the cloud instances "
                "rented that year (instance-hours x hourly price; opex, not in the purchase total). Extended "
                "prices and totals are formulas.", NOTE)
    write_bom_header(sh, cur)
    row = BOM_HEADER_ROW
    line_no = 0
    inventory: dict[str, int] = defaultdict(int)
    for item in rs.scenario.inventory:
        inventory[inventory_key(item, rs.catalog)] += item.count
    retired: dict[str, int] = defaultdict(int)
    year_capex: list[int] = []
    year_rent: list[int] = []

    def line(category: str, sku: str, description: str, qty: float, unit: float, source: str) -> int:
        nonlocal row, line_no
        row += 1
        line_no += 1
        srv = rs.catalog.servers.get(sku.split("/")[0])
        sh.put(row, 1, line_no, FMT_INT)
        sh.put(row, 2, category, wrap=True, cap=11)
        sh.put(row, 3, description, wrap=True, cap=30)
        sh.put(row, 4, srv.vendor if srv else "", wrap=True, cap=12)
        sh.put(row, 6, qty, FMT_INT)
        sh.put(row, 7, unit, money)
        sh.put(row, 8, f"=F{row}*G{row}", money, shown=qty * unit)
        sh.put(row, 10, source, wrap=True, cap=18)
        return row

    for p in plan.periods:
        row += 1
        sh.put(row, 1, f"Year {p.year}", font=SECTION, width=False)
        first = row + 1
        for b in p.buy:
            r = line(CATEGORY_SYSTEM, b.sku, f"{b.sku} server, bought at the start of year {p.year}", b.count,
                     p.unit_prices[b.sku], f"year {p.year} price (catalog price x price decline)")
            refs.period_buys.append((f"Year {p.year}: {b.sku} server", abs_ref(BOM, 6, r), abs_ref(BOM, 7, r),
                                     b.count, p.unit_prices[b.sku]))
        for ret in p.retire:
            retired[ret.sku] += ret.count
        for sku, n in sorted(inventory.items()):
            if n - retired[sku] > 0:
                line(CATEGORY_OWNED, sku, f"{sku} server, owned (inventory), not bought", n - retired[sku], 0.0,
                     "scenario inventory")
        buy_last = row
        for rent in p.rent:
            r = line(CATEGORY_RENT, rent.instance, f"{rent.instance} instance, rented {rent.option} (from year "
                     f"{rent.start_year}): {rent.count} x {HOURS_PER_YEAR:g} h", rent.count * HOURS_PER_YEAR,
                     rent.hourly_price, "cloud catalog hourly price")
            refs.period_rent.append((f"Year {p.year}: {rent.count} x {rent.instance} rented ({rent.option})",
                                     abs_ref(BOM, 8, r), rent.cost))
        last = row
        row += 1
        sh.put(row, 3, f"Year {p.year} purchases", font=BOLD, width=False)
        purchases = f"SUMIF(B{first}:B{max(buy_last, first)},\"{CATEGORY_SYSTEM}\",H{first}:H{max(buy_last, first)})"
        sh.put(row, 8, f"={purchases}" if buy_last >= first else 0, money, shown=p.capex, font=BOLD,
               border=TOTAL_BORDER)
        define_name(wb, f"BOM_Year_{p.year}_Capex", BOM, 8, row)
        year_capex.append(row)
        row += 1
        sh.put(row, 3, f"Year {p.year} rent (opex)", width=False)
        sh.put(row, 8, f"=SUM(H{buy_last + 1}:H{last})" if last > buy_last else 0, money, shown=p.rent_cost)
        define_name(wb, f"BOM_Year_{p.year}_Rent", BOM, 8, row)
        year_rent.append(row)
        row += 1
    lo, hi = BOM_HEADER_ROW + 1, row
    refs.bom_first, refs.bom_last = lo, hi
    row += 1
    sh.put(row, 3, "Rent over all years (opex, in the Schedule)", width=False)
    sh.put(row, 8, "=" + "+".join(f"H{r}" for r in year_rent), money, shown=sum(p.rent_cost for p in plan.periods))
    define_name(wb, "BOM_Rent", BOM, 8, row)
    row += 1
    sh.put(row, 3, "Servers bought over all years", width=False)
    sh.put(row, 8, "=" + "+".join(f"H{r}" for r in year_capex), money, shown=plan.capex)
    define_name(wb, "BOM_Hardware", BOM, 8, row)
    row += 1
    sh.put(row, 3, "Subtotal (purchases, nominal)", font=BOLD, border=TOTAL_BORDER, width=False)
    for c in range(1, N_COLS + 1):
        ws.cell(row=row, column=c).border = TOTAL_BORDER
    sh.put(row, 8, "=BOM_Hardware", money, shown=plan.capex, border=TOTAL_BORDER)
    define_name(wb, "BOM_Subtotal", BOM, 8, row)
    row += 1
    for label, rate_name, base, total_name in (
            ("Contingency (% of subtotal)", "Contingency_Pct", "BOM_Subtotal", "BOM_Contingency"),
            ("Tax (% of subtotal + contingency)", "Tax_Pct", "(BOM_Subtotal+BOM_Contingency)", "BOM_Tax")):
        sh.put(row, 3, label, width=False)
        sh.put(row, 7, f"={rate_name}", FMT_PCT2, shown=0.1)
        sh.put(row, 8, f"={base}*{rate_name}", money, shown=plan.capex)
        define_name(wb, total_name, BOM, 8, row)
        row += 1
    sh.put(row, 3, "Grand total", font=BOLD, width=False)
    sh.put(row, 8, "=BOM_Subtotal+BOM_Contingency+BOM_Tax", money, shown=plan.total_with_tax,
           border=Border(top=THIN, bottom=Side(style="double")))
    define_name(wb, "BOM_Grand_Total", BOM, 8, row)
    cats = range_ref(BOM, 2, lo, hi)
    ext = range_ref(BOM, 8, lo, hi)
    for cat in (CATEGORY_SYSTEM, CATEGORY_RENT):
        refs.category_sum[cat] = f'SUMIF({cats},"{cat}",{ext})'
    sh.finish(header_row=BOM_HEADER_ROW, footer=f"procure — {plan.scenario}", title_cols="A:C")
