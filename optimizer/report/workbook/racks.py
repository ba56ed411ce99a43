"""Racks: IT kW and rack units used in every rack of the plan's placement against the rack limits,
and the power and space of each server type (the figures Summary, energy and the schedule use).

Per-rack figures are formulas: the plan's server counts in the rack times the watts and units per
server, which are formulas over the Assumptions power table; limits are the named site inputs. The
racks the Summary reports (``Racks_Needed``) are the placed racks, or more where the Bill of
Materials quantities need more by power or by space (an edit adds servers no rack holds yet).
"""

from __future__ import annotations

from collections import Counter

from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.workbook.bom import STALE_FILL, STALE_FONT
from optimizer.report.workbook.common import RACKS, Refs, chassis_power_w, gpu_power_w, price_key
from optimizer.report.xlsx import (
    BOLD,
    FMT_2,
    FMT_INT,
    FMT_PCT,
    NOTE,
    SECTION,
    TOTAL_BORDER,
    Sheet,
    abs_ref,
    define_name,
)
from optimizer.schema.plan import Plan

HEADER_ROW = 3


def write_racks(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: Refs) -> None:
    sh = Sheet(ws)
    sh.title(1, f"Racks — power and space used against the rack limits — {plan.scenario}")
    racks = sorted({p.rack for p in plan.placement})
    lines = {s.sku: s for s in plan.servers}
    # Server types first (their cells are what the rack rows multiply); laid out below the racks.
    rack_first = HEADER_ROW + 1
    rack_last = HEADER_ROW + max(1, len(racks))
    sku_section = rack_last + 8
    sku_header = sku_section + 1
    sku_rows = {s.sku: sku_header + 1 + i for i, s in enumerate(plan.servers)}

    sh.header(HEADER_ROW, ["Rack", "Servers", "What is in it", "IT kW used", "kW limit", "kW used (%)",
                           "U used", "U limit", "U used (%)"])
    row = HEADER_ROW
    for k in racks:
        row += 1
        counts = Counter(p.sku for p in plan.placement if p.rack == k)
        w = "+".join(f"{n}*C{sku_rows[sku]}" for sku, n in sorted(counts.items()) if sku in sku_rows) or "0"
        u = "+".join(f"{n}*E{sku_rows[sku]}" for sku, n in sorted(counts.items()) if sku in sku_rows) or "0"
        kw = sum(n * lines[s].power_w for s, n in counts.items() if s in lines) / 1000
        units = sum(n * lines[s].rack_units for s, n in counts.items() if s in lines)
        sh.put(row, 1, k, FMT_INT)
        sh.put(row, 2, sum(counts.values()), FMT_INT)
        sh.put(row, 3, ", ".join(f"{n} x {sku}" for sku, n in sorted(counts.items())), wrap=True, cap=34)
        sh.put(row, 4, f"=({w})/1000", FMT_2, shown=kw)
        sh.put(row, 5, "=Rack_Power_kW", FMT_2, shown=rs.scenario.site.rack_power_kw)
        sh.put(row, 6, f"=IF(E{row}>0,D{row}/E{row},0)", FMT_PCT, shown=1.0)
        sh.put(row, 7, f"={u}", FMT_INT, shown=units)
        sh.put(row, 8, "=Rack_Units_Per_Rack", FMT_INT, shown=rs.scenario.site.rack_units)
        sh.put(row, 9, f"=IF(H{row}>0,G{row}/H{row},0)", FMT_PCT, shown=1.0)
    over = f"F{rack_first}>1.0000001"
    ws.conditional_formatting.add(f"F{rack_first}:F{rack_last}",
                                  FormulaRule(formula=[over], fill=STALE_FILL, font=STALE_FONT))
    ws.conditional_formatting.add(f"I{rack_first}:I{rack_last}",
                                  FormulaRule(formula=[f"I{rack_first}>1.0000001"], fill=STALE_FILL,
                                              font=STALE_FONT))
    row = rack_last + 1
    sh.put(row, 1, "Placed", font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 2, f"=SUM(B{rack_first}:B{rack_last})", FMT_INT, shown=len(plan.placement), font=BOLD,
           border=TOTAL_BORDER)
    sh.put(row, 3, f'=COUNTIF(B{rack_first}:B{rack_last},">0")&" racks"', shown=f"{len(racks)} racks",
           font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 4, f"=SUM(D{rack_first}:D{rack_last})", FMT_2, shown=plan.power_kw, font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 7, f"=SUM(G{rack_first}:G{rack_last})", FMT_INT, shown=plan.rack_units_used, font=BOLD,
           border=TOTAL_BORDER)
    placed_row = row

    def fact(label: str, formula: str, shown: int, name: str | None = None, *, bold: bool = False) -> None:
        nonlocal row
        row += 1
        sh.put(row, 3, label, wrap=True, cap=34, font=BOLD if bold else None)
        sh.put(row, 4, formula, FMT_INT, shown=shown, font=BOLD if bold else None)
        if name:
            define_name(wb, name, RACKS, 4, row)

    fact("Racks placed (the plan's placement)", f'=COUNTIF(B{rack_first}:B{rack_last},">0")', len(racks),
         "Racks_Placed")
    fact("Servers on the Bill of Materials no rack above holds (after an edit)",
         f"=Servers_Total-B{placed_row}", 0)
    fact("Racks by power: IT kW / kW limit, rounded up", "=ROUNDUP(BOM_Power_W/1000/Rack_Power_kW,0)",
         plan.racks_used)
    fact("Racks by space: U / U per rack, rounded up", "=ROUNDUP(BOM_Rack_Units/Rack_Units_Per_Rack,0)",
         plan.racks_used)
    fact("Racks needed: placed, or more where power or space needs more", f"=MAX(D{row - 3},D{row - 1},D{row})",
         plan.racks_used, "Racks_Needed", bold=True)
    assert row < sku_section

    row = sku_section
    sh.put(row, 1, "Power and space per server type", font=SECTION, width=False)
    sh.header(sku_header, ["Server type", "Servers", "W per server", "IT kW", "U per server", "U"])
    row = sku_header
    for s in plan.servers:
        row += 1
        chassis = refs.power.get(price_key("chassis", s.chassis))
        gpu = refs.power.get(price_key("gpu", s.gpu))
        qty = refs.server_qty.get(s.sku)
        u_ref = refs.units.get(s.chassis)
        sh.put(row, 1, s.sku, wrap=True, cap=24)
        sh.put(row, 2, f"={qty}" if qty else s.count, FMT_INT, shown=s.count)
        w_formula = (f"={chassis}+{s.gpus_per_server}*{gpu}" if chassis and gpu else
                     chassis_power_w(s, rs) + s.gpus_per_server * gpu_power_w(s, rs))
        sh.put(row, 3, w_formula, FMT_INT, shown=s.power_w)
        sh.put(row, 4, f"=B{row}*C{row}/1000", FMT_2, shown=s.count * s.power_w / 1000)
        sh.put(row, 5, f"={u_ref}" if u_ref else s.rack_units, FMT_INT, shown=s.rack_units)
        sh.put(row, 6, f"=B{row}*E{row}", FMT_INT, shown=s.count * s.rack_units)
        refs.sku_power_w[s.sku] = abs_ref(RACKS, 3, row)
    first, last = sku_header + 1, max(row, sku_header + 1)
    row += 1
    sh.put(row, 1, "Total", font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 2, f"=SUM(B{first}:B{last})", FMT_INT, shown=sum(s.count for s in plan.servers), font=BOLD,
           border=TOTAL_BORDER)
    define_name(wb, "Servers_Total", RACKS, 2, row)
    sh.put(row, 4, f"=SUM(D{first}:D{last})", FMT_2, shown=plan.power_kw, font=BOLD, border=TOTAL_BORDER)
    define_name(wb, "BOM_Power_kW", RACKS, 4, row)
    sh.put(row, 6, f"=SUM(F{first}:F{last})", FMT_INT, shown=plan.rack_units_used, font=BOLD, border=TOTAL_BORDER)
    define_name(wb, "BOM_Rack_Units", RACKS, 6, row)
    row += 1
    sh.put(row, 1, "IT power, W")
    sh.put(row, 4, f"=D{row - 1}*1000", FMT_INT, shown=plan.power_kw * 1000)
    define_name(wb, "BOM_Power_W", RACKS, 4, row)
    row += 2
    sh.title(row, "Server counts per rack are the plan's placement (Deployment sheet); watts and units per server "
                  "are formulas over the Assumptions power table (base power + GPUs x board power, at full "
                  "load). Over 100% of a limit is shaded red.", NOTE)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {plan.scenario}")
