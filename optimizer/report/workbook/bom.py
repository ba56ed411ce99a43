"""Bill of Materials: the quote-grade list of what is ordered.

One orderable line per integrated system (HGX/DGX boards, OAM platforms, Atlas 800: sold as one
unit at a system price, the GPU count in the description); PCIe servers as a chassis line per SKU
plus one card line per GPU type (card quantities are formulas over the chassis quantities); then the
quote lines (network, storage, racks/PDUs, shipping and installation, support). Columns: vendor,
description, part number where public, quantity, unit price (a link to the Assumptions price table),
extended price ``=qty*unit``, price date, source, confidence. Price dates more than 12 months before
the quote date are shaded. Subtotal, contingency, tax and grand total below.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Border, Font, PatternFill, Side
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.workbook.common import (
    BOM,
    CATEGORY_CHASSIS,
    CATEGORY_GPU,
    CATEGORY_SYSTEM,
    QUOTE_CATEGORIES,
    Refs,
    is_integrated,
    override,
    price_key,
    quote_lines,
    today,
)
from optimizer.report.xlsx import (
    BOLD,
    FMT_2,
    FMT_DATE,
    FMT_INT,
    FMT_PCT2,
    INPUT_FILL,
    INPUT_FONT,
    NOTE,
    THIN,
    TOTAL_BORDER,
    Sheet,
    abs_ref,
    define_name,
    money_format,
    range_ref,
)
from optimizer.schema.catalog import STALE_AFTER_DAYS
from optimizer.schema.plan import Plan

BOM_HEADERS = ("Line", "Category", "Description", "Vendor", "Part number", "Qty", "Unit price", "Extended price",
               "Price date", "Source", "Confidence")
BOM_HEADER_ROW = 4
N_COLS = len(BOM_HEADERS)
STALE_FILL = PatternFill("solid", fgColor="F8CBAD")
STALE_FONT = Font(color="9C0006")


def _qty_fmt(value: float) -> str:
    return FMT_INT if float(value).is_integer() else FMT_2


def write_bom_header(sh: Sheet, currency: str) -> None:
    """The Bill of Materials' column header row, prices in ``currency`` (both BOM writers)."""
    headers = list(BOM_HEADERS)
    headers[6] = f"Unit price ({currency})"
    headers[7] = f"Extended price ({currency})"
    sh.header(BOM_HEADER_ROW, headers)


def write_bom(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: Refs, *,
              sheet: str = BOM, prefix: str = "", title: str | None = None, note: str | None = None,
              local_inputs: bool = False) -> None:
    """The Bill of Materials on ``ws`` (titled ``sheet``); its defined names start with ``prefix``.

    With ``local_inputs`` (the comparison workbook, which has no Assumptions sheet) contingency and
    tax are input cells on this sheet and unit prices are the plan's values; otherwise unit prices
    link to ``refs.price`` and contingency/tax to the named inputs on the Assumptions sheet.
    """
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    p = prefix
    sh.title(1, title or f"Bill of Materials — {plan.scenario}")
    sh.title(2, note or f"Currency {cur}. Unit prices link to the Assumptions sheet's price table (dated estimates, "
                "not quotes); extended prices and totals are formulas. Blue quantities are inputs. Price dates "
                "more than 12 months before the quote date are shaded red.", NOTE)
    write_bom_header(sh, cur)
    row = BOM_HEADER_ROW
    line_no = 0
    first = row + 1

    def line(category: str, description: str, vendor: str, part: str | None, qty: Any, qty_shown: float,
             unit: Any, unit_shown: float, price_date: date | None, source: str, confidence: str,
             *, qty_input: bool = False) -> int:
        nonlocal row, line_no
        row += 1
        line_no += 1
        sh.put(row, 1, line_no, FMT_INT)
        sh.put(row, 2, category, wrap=True, cap=11)
        sh.put(row, 3, description, wrap=True, cap=26)
        sh.put(row, 4, vendor, wrap=True, cap=12)
        sh.put(row, 5, part or "", wrap=True, cap=12)
        sh.put(row, 6, qty, _qty_fmt(qty_shown), shown=qty_shown,
               font=INPUT_FONT if qty_input else None, fill=INPUT_FILL if qty_input else None)
        sh.put(row, 7, unit, money, shown=unit_shown)
        sh.put(row, 8, f"=F{row}*G{row}", money, shown=qty_shown * unit_shown)
        if price_date is not None:
            sh.put(row, 9, price_date, FMT_DATE)
        sh.put(row, 10, source, wrap=True, cap=18)
        sh.put(row, 11, confidence)
        return row

    def price(key: str, value: float) -> Any:
        return f"={refs.price[key]}" if key in refs.price else value

    cards: dict[str, list[tuple[int, int]]] = defaultdict(list)   # gpu -> [(chassis qty row, k)]
    server_rows: list[int] = []
    for s in plan.servers:
        srv = rs.catalog.servers.get(s.chassis)
        gpu = rs.catalog.gpus.get(s.gpu)
        vendor = srv.vendor if srv else ""
        mem = f" ({gpu.memory_marketed})" if gpu else ""
        if is_integrated(s, rs):
            over = override(rs, s.chassis) or override(rs, s.gpu)
            desc = f"{s.chassis} system with {s.gpus_per_server} x {s.gpu}{mem} GPUs"
            if srv is not None:
                desc += f": {srv.description}"
            r = line(CATEGORY_SYSTEM, desc, vendor, None, s.count, s.count,
                     price(price_key("system", s.sku), s.unit_price), s.unit_price,
                     srv.price_as_of if srv else None,
                     "scenario prices" if over and srv is None else srv.price_source if srv else "",
                     "scenario value" if over else (gpu.confidence if gpu else ""), qty_input=True)
        else:
            over = override(rs, s.chassis)
            desc = f"{s.chassis} server chassis for {s.gpus_per_server} x {s.gpu} cards (cards on their own line)"
            r = line(CATEGORY_CHASSIS, desc, vendor, None, s.count, s.count,
                     price(price_key("chassis", s.chassis), s.chassis_price), s.chassis_price,
                     None if over or srv is None else srv.price_as_of,
                     f"scenario {rs.path.name}: prices.{s.chassis}" if over else srv.price_source if srv else "",
                     "scenario value" if over else "medium", qty_input=True)
            cards[s.gpu].append((r, s.gpus_per_server))
        refs.server_qty[s.sku] = abs_ref(sheet, 6, r)
        refs.server_unit[s.sku] = abs_ref(sheet, 7, r)
        server_rows.append(r)
    for gname, parts in cards.items():
        gpu = rs.catalog.gpus.get(gname)
        line0 = next(s for s in plan.servers if s.gpu == gname and not is_integrated(s, rs))
        qty_formula = "=" + "+".join(f"F{r}*{k}" if k != 1 else f"F{r}" for r, k in parts)
        qty_value = sum(s.count * s.gpus_per_server for s in plan.servers if s.gpu == gname
                        and not is_integrated(s, rs))
        over = override(rs, gname)
        desc = f"{gname} GPU card" + (f", {gpu.memory_marketed} {gpu.memory_type}" if gpu else "")
        r = line(CATEGORY_GPU, desc, gpu.vendor if gpu else "", None, qty_formula, qty_value,
                 price(price_key("gpu", gname), line0.gpu_unit_price), line0.gpu_unit_price,
                 None if over or gpu is None else gpu.price.as_of,
                 f"scenario {rs.path.name}: prices.{gname}" if over else gpu.price.source if gpu else "",
                 "scenario value" if over else (gpu.confidence if gpu else ""))
        refs.gpu_qty[gname] = abs_ref(sheet, 6, r)
        refs.gpu_unit[gname] = abs_ref(sheet, 7, r)
        server_rows.append(r)
    last_server = row
    hardware = sum(s.unit_price * s.count for s in plan.servers)
    servers_now = "+".join(f"F{r}" for r in server_rows[:len(plan.servers)]) or "0"
    n_servers = sum(s.count for s in plan.servers)
    hw_name = f"{p}BOM_Hardware"
    for i, q in enumerate(quote_lines(plan)):
        entry = rs.catalog.quote_items.get(q.item)
        rule = entry.rule if entry is not None else ""
        per = entry.per if entry is not None else 1.0
        qty: Any = q.quantity
        if rule == "per_server" and abs(per * n_servers - q.quantity) < 1e-9:
            qty = f"={per:g}*({servers_now})" if per != 1 else f"={servers_now}"
        elif rule == "per_rack" and not local_inputs and abs(per * plan.racks_used - q.quantity) < 1e-9:
            qty = f"={per:g}*Racks_Needed" if per != 1 else "=Racks_Needed"
        elif rule == "fraction_of_hardware_per_year" and not local_inputs \
                and _support_years_follow(rs, plan, q.quantity):
            qty = "=ROUNDUP(Horizon_Years,0)"
        unit: Any = price(price_key("quote", str(i)), q.unit_price)
        if rule.startswith("fraction_") and q.item in refs.fraction:
            unit = f"={refs.fraction[q.item]}*{hw_name}"
        desc = q.description + (f" — {q.basis}" if q.basis else "")
        line(QUOTE_CATEGORIES.get(q.category, q.category), desc, q.vendor, q.part_number, qty, q.quantity, unit,
             q.unit_price, q.price_date, q.source, q.confidence, qty_input=not str(qty).startswith("="))
    last = row
    refs.bom_first, refs.bom_last = first, max(last, first)
    lo, hi = first, max(last, first)

    sub = plan.capex
    row += 1
    sh.put(row, 3, "Servers (systems, chassis and GPU cards)", width=False)
    sh.put(row, 8, f"=SUM(H{lo}:H{max(last_server, lo)})", money, shown=hardware)
    define_name(wb, hw_name, sheet, 8, row)
    row += 1
    sh.put(row, 3, "Subtotal (all lines)", font=BOLD, border=TOTAL_BORDER, width=False)
    for c in range(1, N_COLS + 1):
        ws.cell(row=row, column=c).border = TOTAL_BORDER
    sh.put(row, 8, f"=SUM(H{lo}:H{hi})", money, shown=sub, border=TOTAL_BORDER)
    define_name(wb, f"{p}BOM_Subtotal", sheet, 8, row)
    row += 1
    fin = rs.scenario.finance
    for label, rate, rate_name, base, total_name in (
            ("Contingency (% of subtotal)", fin.contingency_pct, "Contingency_Pct", f"{p}BOM_Subtotal",
             "BOM_Contingency"),
            ("Tax (% of subtotal + contingency)", fin.tax_pct, "Tax_Pct",
             f"({p}BOM_Subtotal+{p}BOM_Contingency)", "BOM_Tax")):
        sh.put(row, 3, label, width=False)
        if local_inputs:
            sh.put(row, 7, rate, FMT_PCT2, font=INPUT_FONT, fill=INPUT_FILL)
            define_name(wb, f"{p}{rate_name}", sheet, 7, row)
        else:
            sh.put(row, 7, f"={rate_name}", FMT_PCT2, shown=0.1)
        sh.put(row, 8, f"={base}*{p}{rate_name}", money, shown=sub)
        define_name(wb, f"{p}{total_name}", sheet, 8, row)
        row += 1
    sh.put(row, 3, "Grand total", font=BOLD, width=False)
    sh.put(row, 8, f"={p}BOM_Subtotal+{p}BOM_Contingency+{p}BOM_Tax", money, shown=sub * 1.2,
           border=Border(top=THIN, bottom=Side(style="double")))
    define_name(wb, f"{p}BOM_Grand_Total", sheet, 8, row)
    cats = range_ref(sheet, 2, lo, hi)
    ext = range_ref(sheet, 8, lo, hi)
    for cat in (CATEGORY_SYSTEM, CATEGORY_CHASSIS, CATEGORY_GPU, *QUOTE_CATEGORIES.values()):
        refs.category_sum[cat] = f'SUMIF({cats},"{cat}",{ext})'
    # Stale prices: a price date more than 12 months before the quote date.
    d = today()
    quote_date = "Quote_Date" if not local_inputs else f"DATE({d.year},{d.month},{d.day})"
    ws.conditional_formatting.add(
        f"I{lo}:I{hi}",
        FormulaRule(formula=[f"AND(ISNUMBER($I{lo}),$I{lo}<{quote_date}-{STALE_AFTER_DAYS})"], fill=STALE_FILL,
                    font=STALE_FONT))
    sh.finish(header_row=BOM_HEADER_ROW, footer=f"procure — {plan.scenario}", title_cols="A:C")


def _support_years_follow(rs: ResolvedScenario, plan: Plan, quantity: float) -> bool:
    """Support years are the horizon rounded up (no quote.support_years): the quantity follows it."""
    return rs.scenario.quote.support_years is None and quantity == math.ceil(plan.horizon_years - 1e-9)


def add_bom_sheet(wb: Workbook, title: str, plan: Plan, rs: ResolvedScenario, *, prefix: str,
                  heading: str | None = None, note: str | None = None) -> str:
    """Append a Bill of Materials sheet named ``title`` in the single-plan format (``=qty*unit``,
    subtotal, contingency, tax, grand total) whose defined names start with ``prefix``.

    Unit prices are the plan's own values and contingency and tax are inputs on the sheet (the
    comparison workbook has no Assumptions sheet to link to). Returns the defined name of the grand
    total (``<prefix>BOM_Grand_Total``).
    """
    ws = wb.create_sheet(title)
    write_bom(wb, ws, plan, rs, Refs(), sheet=title, prefix=prefix, title=heading, note=note, local_inputs=True)
    return f"{prefix}BOM_Grand_Total"
