"""The Excel bill of materials: a workbook finance can open, audit, change and forward.

Sheets (docs/workbook.md describes each cell a reader may change):

* **Summary** – headline capex and TCO as formulas over the Bill of Materials and the Assumptions,
  power, racks, GPUs by type, solver status, and a native bar chart of cost by category.
* **Bill of Materials** – one line per purchasable item (a chassis line per server SKU, a line per
  GPU type); extended price ``=qty*unit``; subtotal, contingency %, tax % and grand total refer to
  named input cells (``Contingency_Pct``, ``Tax_Pct``) that default to 0, so the grand total equals
  the plan's capex.
* **Deployment** – every numbered server with its GPU slots and the replicas placed on them.
* **Capacity** – demand vs planned capacity per workload (formulas over the deployment table and
  the named ``Planning_Headroom``), TTFT/TPOT predicted vs target, and a native chart.
* **Sizing** – the vLLM memory account of every chosen deployment, as the plan records it from
  :func:`optimizer.sizing.memory.serving_memory`.
* **Assumptions** – unit prices with date and source (the cells the BOM links to), site and energy
  inputs, hardware power figures, serving-engine settings, efficiency factors, memory constants;
  every estimate labelled as one.
* **Solver** – status, objective, bound, gap, time, candidate count, procure version.

The report never recomputes costs: prices, counts and power come from the :class:`Plan`; the
workbook only re-adds them with formulas so that an edit flows through.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Border, Side
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet
from pydantic import BaseModel

from optimizer import __version__
from optimizer.errors import ProcureError, UsageError
from optimizer.loaders import REPO_ROOT, ResolvedScenario
from optimizer.report.xlsx import (
    BOLD,
    FMT_1,
    FMT_2,
    FMT_3,
    FMT_DATE,
    FMT_INT,
    FMT_PCT,
    FMT_PCT2,
    INPUT_FILL,
    INPUT_FONT,
    NOTE,
    SECTION,
    THIN,
    TOTAL_BORDER,
    Sheet,
    abs_ref,
    define_name,
    money_format,
    range_ref,
    save_workbook,
)
from optimizer.schema.plan import Deployment, Plan, ServerLine
from optimizer.units import GIB, HOURS_PER_YEAR

SUMMARY = "Summary"
BOM = "Bill of Materials"
DEPLOYMENT = "Deployment"
CAPACITY = "Capacity"
SIZING = "Sizing"
ASSUMPTIONS = "Assumptions"
SOLVER = "Solver"
SHEETS = (SUMMARY, BOM, DEPLOYMENT, CAPACITY, SIZING, ASSUMPTIONS, SOLVER)


CATEGORY_CHASSIS = "Server chassis"
CATEGORY_GPU = "GPU"

def _estimate_label(is_override: bool) -> str:
    return "scenario value" if is_override else "estimate"


# ------------------------------------------------------------------------------------------------
# Assumptions
# ------------------------------------------------------------------------------------------------


@dataclass
class _Refs:
    """Cell addresses other sheets link to."""

    price: dict[str, str] = field(default_factory=dict)      # item name -> Assumptions cell
    gpu_qty: dict[str, str] = field(default_factory=dict)    # GPU type -> BOM qty cell
    chassis_ext: str = ""
    gpu_ext: str = ""
    bom_first: int = 0
    bom_last: int = 0


def _override(rs: ResolvedScenario, name: str) -> bool:
    return any(k.lower() == name.lower() for k in rs.scenario.prices)


def _write_assumptions(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: _Refs) -> None:
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    sc = rs.scenario
    sh.title(1, f"Assumptions — {plan.scenario}")
    sh.title(2, "Blue cells on a yellow ground are inputs: the Bill of Materials, Summary and Capacity "
                "sheets use them through formulas, so a change here flows through. Prices are dated "
                "estimates, not quotes, unless marked as scenario values.", NOTE)
    row = 4
    sh.put(row, 1, "Site, energy and finance inputs", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Input", "Value", "Unit", "Source / note", "Defined name"])
    inputs: list[tuple[str, float, str, str, str, str]] = [
        ("Power usage effectiveness (PUE)", sc.site.pue, "facility kW / IT kW", "Site_PUE", FMT_2,
         f"scenario {rs.path.name}: site.pue"),
        ("Electricity price", sc.site.electricity_per_kwh, f"{cur} / kWh", "Electricity_Price_kWh", "#,##0.0000",
         f"scenario {rs.path.name}: site.electricity_per_kwh"),
        ("TCO horizon", plan.horizon_years, "years", "Horizon_Years", "0.##",
         f"scenario {rs.path.name}: horizon_years"),
        ("Hours per year", HOURS_PER_YEAR, "h", "Hours_Per_Year", FMT_INT,
         "365 x 24; servers assumed at full load all year (an upper bound on energy)"),
        ("Support / opex per year", sc.opex_per_year_fraction, "fraction of equipment subtotal",
         "Opex_Fraction_Per_Year", FMT_PCT2, f"scenario {rs.path.name}: opex_per_year_fraction"),
        ("Planning headroom", plan.headroom, "fraction of SLO capacity used", "Planning_Headroom", FMT_PCT,
         f"scenario {rs.path.name}: headroom; replicas are planned at most at this load"),
        ("Currency units per US dollar", sc.usd_rate, f"{cur} / USD", "USD_To_Currency", "0.0000",
         f"scenario {rs.path.name}: usd_to_currency; catalog prices are in USD"),
    ]
    for label, value, unit, name, fmt, note in inputs:
        row += 1
        sh.put(row, 1, label)
        sh.put(row, 2, value, fmt, font=INPUT_FONT, fill=INPUT_FILL)
        sh.put(row, 3, unit, wrap=True)
        sh.put(row, 4, note, wrap=True, cap=40)
        sh.put(row, 5, name)
        define_name(wb, name, ASSUMPTIONS, 2, row)

    # Prices: the cells the Bill of Materials links to.
    row += 2
    sh.put(row, 1, "Unit prices", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Item", f"Unit price ({cur})", "Catalog price (USD)", "Basis", "As of", "Source"])
    seen: set[str] = set()
    price_rows: list[tuple[str, float, str]] = []
    for line in plan.servers:
        if line.chassis not in seen:
            seen.add(line.chassis)
            price_rows.append((line.chassis, line.chassis_price, "chassis"))
    for line in plan.servers:
        if line.gpu not in seen:
            seen.add(line.gpu)
            price_rows.append((line.gpu, line.gpu_unit_price, "gpu"))
    for name, value, kind in price_rows:
        row += 1
        over = _override(rs, name)
        entry = rs.catalog.servers.get(name) if kind == "chassis" else rs.catalog.gpus.get(name)
        est = None
        if entry is not None:
            est = entry.base_price if kind == "chassis" else entry.price  # type: ignore[union-attr]
        label = f"{name} ({'server chassis, no GPUs' if kind == 'chassis' else 'GPU'})"
        sh.put(row, 1, label, wrap=True)
        sh.put(row, 2, value, money, font=INPUT_FONT, fill=INPUT_FILL)
        if est is not None:
            sh.put(row, 3, est.usd, "#,##0.00")
            basis = (f"scenario value ({rs.path.name} prices.{name})" if over
                     else f"estimate: catalog USD x {sc.usd_rate:g}" if sc.usd_rate != 1
                     else "estimate: catalog price")
            sh.put(row, 4, basis, wrap=True)
            sh.put(row, 5, est.as_of, FMT_DATE)
            src = est.source + (f" Note: {est.note}" if est.note else "")
            sh.put(row, 6, src, wrap=True)
        else:
            sh.put(row, 4, "scenario value" if over else "estimate (not in catalog)", wrap=True)
        refs.price[name] = abs_ref(ASSUMPTIONS, 2, row)

    # Hardware figures behind the power column.
    row += 2
    sh.put(row, 1, "Hardware power and space", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Item", "Power at full load (W)", "Rack units (U)", "Figure", "As of", "Source"])
    done: set[str] = set()
    for line in plan.servers:
        if line.chassis in done:
            continue
        done.add(line.chassis)
        row += 1
        srv = rs.catalog.servers.get(line.chassis)
        sh.put(row, 1, f"{line.chassis} (chassis without GPUs)", wrap=True)
        sh.put(row, 2, _chassis_power_w(line, rs), FMT_INT)
        sh.put(row, 3, line.rack_units, FMT_INT)
        sh.put(row, 4, "base system power (CPUs, memory, NICs, fans), estimate", wrap=True)
        if srv is not None:
            sh.put(row, 5, srv.as_of, FMT_DATE)
            sh.put(row, 6, srv.source, wrap=True)
    for line in plan.servers:
        if line.gpu in done:
            continue
        done.add(line.gpu)
        row += 1
        gpu = rs.catalog.gpus.get(line.gpu)
        sh.put(row, 1, f"{line.gpu} (GPU)", wrap=True)
        sh.put(row, 2, _gpu_power_w(line, rs), FMT_INT)
        sh.put(row, 3, 0, FMT_INT)
        sh.put(row, 4, "board power (TDP) from the datasheet" + (f"; confidence {gpu.confidence}" if gpu else ""),
               wrap=True)
        if gpu is not None:
            sh.put(row, 5, gpu.as_of, FMT_DATE)
            sh.put(row, 6, gpu.source, wrap=True)

    # Serving engine.
    row += 2
    sh.put(row, 1, "Serving engine settings", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Setting", "Value", "Set by", "Meaning"])
    serving = sc.serving
    for fname, finfo in type(serving).model_fields.items():
        row += 1
        sh.put(row, 1, fname)
        value = getattr(serving, fname)
        sh.put(row, 2, value if isinstance(value, int | float) and not isinstance(value, bool) else str(value))
        # "scenario" when the value differs from the default: writing a default changes nothing
        sh.put(row, 3, "scenario" if value != finfo.get_default(call_default_factory=True)
               else f"default ({serving.engine} {serving.engine_version})", wrap=True)
        sh.put(row, 4, finfo.description or "", wrap=True)

    # Efficiency factors and model constants (estimates).
    row += 2
    sh.put(row, 1, "Efficiency factors and model constants (estimates)", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Factor", "Value", "Applies to", "Source / note"])
    previous = ""
    for label, value, scope, note in _efficiency_rows(plan, rs):
        row += 1
        note, previous = ("as above" if note == previous else note), note
        sh.put(row, 1, label, wrap=True)
        sh.put(row, 2, value, FMT_3 if isinstance(value, float) else None)
        sh.put(row, 3, scope, wrap=True)
        sh.put(row, 4, note, wrap=True)
    sh.finish(header_row=None, footer=f"procure — {plan.scenario}")
    ws.freeze_panes = "A4"
    ws.print_title_rows = "1:1"


def _gpu_power_w(line: ServerLine, rs: ResolvedScenario) -> float:
    gpu = rs.catalog.gpus.get(line.gpu)
    if gpu is not None:
        return gpu.tdp_w
    chassis = rs.catalog.servers.get(line.chassis)
    return (line.power_w - chassis.base_power_w) / line.gpus_per_server if chassis else 0.0


def _chassis_power_w(line: ServerLine, rs: ResolvedScenario) -> float:
    """Base power of one chassis: the plan's server power less its GPUs (the plan's own figure)."""
    return line.power_w - line.gpus_per_server * _gpu_power_w(line, rs)


def _efficiency_rows(plan: Plan, rs: ResolvedScenario) -> list[tuple[str, Any, str, str]]:
    """Efficiency factors of the throughput model and the memory model's constants."""
    rows: list[tuple[str, Any, str, str]] = []
    try:
        perf = importlib.import_module("optimizer.sizing.perf")  # the throughput model

        calibration = (rs.path.parent / rs.scenario.calibration) if rs.scenario.calibration else None
        for gname in sorted({line.gpu for line in plan.servers}):
            gpu = rs.catalog.gpus.get(gname)
            if gpu is None:
                continue
            eff = perf.load_efficiency(gpu, calibration_path=calibration)
            data = (asdict(eff) if is_dataclass(eff) and not isinstance(eff, type)
                    else eff.model_dump() if isinstance(eff, BaseModel) else {})
            source = str(data.pop("source", "estimate (docs/perf.md)"))
            for key, value in data.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    rows.append((key, float(value), gname, f"estimate; {source}"))
    except (ImportError, AttributeError, TypeError, ProcureError):
        rows.append(("throughput efficiency factors", "n/a", "all GPUs",
                     "the throughput model's factors were not available to this report"))
    for d in plan.deployments:
        rows.append((f"performance source: {d.workload}", d.perf_source, f"{d.gpu} TP{d.tp} PP{d.pp}",
                     "model = estimated from datasheet figures and efficiency factors; "
                     "measured = calibration file"))
    from optimizer.sizing import memory

    consts = [
        ("NON_TORCH_BYTES_TP1", "non-torch memory per GPU (CUDA context, cuBLAS), GiB",
         "0.35 GiB in the vLLM v0.6.4 profiling log of vllm-project/vllm#10517 (estimate: one log)"),
        ("NCCL_BYTES_TP", "extra non-torch memory per GPU when TP > 1 (NCCL), GiB",
         "0.20 GiB per TP worker in the V0 log quoted in vllm-project/vllm#14447 (estimate: one log)"),
        ("CUDA_GRAPH_BYTES_PER_LAYER", "CUDA-graph memory per layer, GiB",
         "0.21 GiB for 16 layers in vllm-project/vllm#11349, scaled by layers (estimate)"),
    ]
    for name, label, note in consts:
        value = getattr(memory, name, None)
        if isinstance(value, int | float):
            rows.append((label, value / GIB, "all deployments", note))
    return rows


# ------------------------------------------------------------------------------------------------
# Bill of Materials
# ------------------------------------------------------------------------------------------------

BOM_HEADERS = ("Line", "Category", "Item", "Vendor", "Part", "Qty", "Unit price", "Extended price",
               "Power per unit (W)", "Power, line (W)", "Rack units per unit", "Rack units, line", "Price basis")
BOM_HEADER_ROW = 4


def _write_bom(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: _Refs, *,
               sheet: str = BOM, prefix: str = "", title: str | None = None, note: str | None = None) -> None:
    """The Bill of Materials on ``ws`` (titled ``sheet``); its defined names start with ``prefix``.

    The plan workbook writes one BOM with the plain names (``BOM_Grand_Total``, ``Tax_Pct``, ...);
    the comparison workbook writes one per variant with a prefix per sheet. Unit prices link to the
    Assumptions cells in ``refs.price`` where there are any, else they are the plan's values.
    """
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    p = prefix
    sh.title(1, title or f"Bill of Materials — {plan.scenario}")
    sh.title(2, note or f"Currency {cur}. Unit prices link to the Assumptions sheet (dated estimates, not quotes); "
                "extended prices and totals are formulas. Contingency and tax are inputs (blue).",
             NOTE)
    headers = list(BOM_HEADERS)
    headers[6] = f"Unit price ({cur})"
    headers[7] = f"Extended price ({cur})"
    sh.header(BOM_HEADER_ROW, headers)
    row = BOM_HEADER_ROW
    qty_cells: dict[str, list[tuple[int, int]]] = defaultdict(list)  # gpu -> [(chassis qty row, k)]
    line_no = 0
    first = row + 1

    def line(category: str, item: str, vendor: str, part: str, qty: Any, qty_shown: float, unit: Any,
             unit_shown: float, power_w: float, ru: int, basis: str) -> int:
        nonlocal row, line_no
        row += 1
        line_no += 1
        sh.put(row, 1, line_no, FMT_INT)
        sh.put(row, 2, category)
        sh.put(row, 3, item, wrap=True, cap=30)
        sh.put(row, 4, vendor, wrap=True, cap=24)
        sh.put(row, 5, part)
        sh.put(row, 6, qty, FMT_INT, shown=qty_shown)
        sh.put(row, 7, unit, money, shown=unit_shown)
        sh.put(row, 8, f"=F{row}*G{row}", money, shown=qty_shown * unit_shown)
        sh.put(row, 9, power_w, FMT_INT)
        sh.put(row, 10, f"=F{row}*I{row}", FMT_INT, shown=qty_shown * power_w)
        sh.put(row, 11, ru, FMT_INT)
        sh.put(row, 12, f"=F{row}*K{row}", FMT_INT, shown=qty_shown * ru)
        sh.put(row, 13, basis, wrap=True, cap=26)
        return row

    for s in plan.servers:
        srv = rs.catalog.servers.get(s.chassis)
        vendor = srv.vendor if srv else ""
        over = _override(rs, s.chassis)
        basis = ("scenario value" if over else
                 f"estimate as of {srv.base_price.as_of.isoformat()}" if srv else "estimate")
        r = line(CATEGORY_CHASSIS, f"Server chassis for {s.gpus_per_server} x {s.gpu} (GPUs on their own line)",
                 vendor, s.chassis, s.count, s.count,
                 f"={refs.price[s.chassis]}" if s.chassis in refs.price else s.chassis_price, s.chassis_price,
                 _chassis_power_w(s, rs), s.rack_units, basis)
        qty_cells[s.gpu].append((r, s.gpus_per_server))
    gpu_unit = {s.gpu: s.gpu_unit_price for s in plan.servers}
    gpu_line = {s.gpu: s for s in plan.servers}
    for gname, parts in qty_cells.items():
        gpu = rs.catalog.gpus.get(gname)
        qty_formula = "=" + "+".join(f"F{r}*{k}" if k != 1 else f"F{r}" for r, k in parts)
        qty_value = sum(s.count * s.gpus_per_server for s in plan.servers if s.gpu == gname)
        over = _override(rs, gname)
        basis = ("scenario value" if over else
                 f"estimate as of {gpu.price.as_of.isoformat()}" if gpu else "estimate")
        r = line(CATEGORY_GPU, f"GPU {gname}" + (f", {gpu.memory_marketed}" if gpu else ""),
                 gpu.vendor if gpu else "", gname, qty_formula, qty_value,
                 f"={refs.price[gname]}" if gname in refs.price else gpu_unit[gname], gpu_unit[gname],
                 _gpu_power_w(gpu_line[gname], rs), 0, basis)
        refs.gpu_qty[gname] = abs_ref(sheet, 6, r)
    last = row
    refs.bom_first, refs.bom_last = first, max(last, first)
    lo, hi = first, max(last, first)

    sub = plan.capex
    row += 1
    sh.put(row, 3, "Subtotal (equipment)", font=BOLD, border=TOTAL_BORDER)
    for c in range(1, 14):
        ws.cell(row=row, column=c).border = TOTAL_BORDER
    sh.put(row, 8, f"=SUM(H{lo}:H{hi})", money, shown=sub, font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 10, f"=SUM(J{lo}:J{hi})", FMT_INT, shown=plan.power_kw * 1000, font=BOLD, border=TOTAL_BORDER)
    sh.put(row, 12, f"=SUM(L{lo}:L{hi})", FMT_INT, shown=plan.rack_units_used, font=BOLD, border=TOTAL_BORDER)
    define_name(wb, f"{p}BOM_Subtotal", sheet, 8, row)
    define_name(wb, f"{p}BOM_Power_W", sheet, 10, row)
    define_name(wb, f"{p}BOM_Rack_Units", sheet, 12, row)
    row += 1
    sh.put(row, 3, "Contingency (% of subtotal)")
    sh.put(row, 7, 0.0, FMT_PCT2, font=INPUT_FONT, fill=INPUT_FILL)
    define_name(wb, f"{p}Contingency_Pct", sheet, 7, row)
    sh.put(row, 8, f"={p}BOM_Subtotal*{p}Contingency_Pct", money, shown=sub)
    define_name(wb, f"{p}BOM_Contingency", sheet, 8, row)
    row += 1
    sh.put(row, 3, "Tax (% of subtotal + contingency)")
    sh.put(row, 7, 0.0, FMT_PCT2, font=INPUT_FONT, fill=INPUT_FILL)
    define_name(wb, f"{p}Tax_Pct", sheet, 7, row)
    sh.put(row, 8, f"=({p}BOM_Subtotal+{p}BOM_Contingency)*{p}Tax_Pct", money, shown=sub)
    define_name(wb, f"{p}BOM_Tax", sheet, 8, row)
    row += 1
    sh.put(row, 3, "Grand total", font=BOLD)
    sh.put(row, 8, f"={p}BOM_Subtotal+{p}BOM_Contingency+{p}BOM_Tax", money, shown=sub * 1.2, font=BOLD,
           border=Border(top=THIN, bottom=Side(style="double")))
    define_name(wb, f"{p}BOM_Grand_Total", sheet, 8, row)
    refs.chassis_ext = f'SUMIF({range_ref(sheet, 2, lo, hi)},"{CATEGORY_CHASSIS}",{range_ref(sheet, 8, lo, hi)})'
    refs.gpu_ext = f'SUMIF({range_ref(sheet, 2, lo, hi)},"{CATEGORY_GPU}",{range_ref(sheet, 8, lo, hi)})'
    sh.finish(header_row=BOM_HEADER_ROW, footer=f"procure — {plan.scenario}")


def add_bom_sheet(wb: Workbook, title: str, plan: Plan, rs: ResolvedScenario, *, prefix: str,
                  heading: str | None = None, note: str | None = None) -> str:
    """Append a Bill of Materials sheet named ``title`` in the single-plan format (``=qty*unit``,
    subtotal, contingency, tax, grand total) whose defined names start with ``prefix``.

    Unit prices are the plan's own values (the workbook has no Assumptions sheet to link to).
    Returns the defined name of the grand total (``<prefix>BOM_Grand_Total``).
    """
    ws = wb.create_sheet(title)
    _write_bom(wb, ws, plan, rs, _Refs(), sheet=title, prefix=prefix, title=heading, note=note)
    return f"{prefix}BOM_Grand_Total"


# ------------------------------------------------------------------------------------------------
# Deployment
# ------------------------------------------------------------------------------------------------


def _slots(gpus: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 6]`` -> ``"0-3, 6"``."""
    out: list[str] = []
    ids = sorted(set(gpus))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(f"{ids[i]}-{ids[j]}" if j > i else str(ids[i]))
        i = j + 1
    return ", ".join(out)


def _write_deployment(ws: Worksheet, plan: Plan) -> None:
    sh = Sheet(ws)
    sh.title(1, f"Deployment — every server and what runs on it — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Server", "Rack", "SKU", "GPU", "GPUs in server", "Runs", "Kind", "TP", "PP", "GPU slots",
                   "GPUs used"])
    lines = {s.sku: s for s in plan.servers}
    row = hr
    for p in plan.placement:
        line = lines.get(p.sku)
        k = line.gpus_per_server if line else 0
        gpu = line.gpu if line else ""
        used: set[int] = set()
        entries: list[tuple[str, str, Any, Any, str, int]] = []
        for r in p.replicas:
            used.update(r.gpus)
            entries.append((r.workload, "inference replica", r.tp, r.pp, _slots(r.gpus), len(r.gpus)))
        ft_gpus = max(0, k - len(used) - p.free_gpus)
        for job in p.finetune:
            n = ft_gpus // max(1, len(p.finetune))
            entries.append((job, "fine-tuning job", "", "", f"{n} GPUs", n))
        if p.free_gpus:
            free = sorted(set(range(k)) - used)[-p.free_gpus:] if k else []
            entries.append(("(free)", "spare GPU slots", "", "", _slots(free) if free else "", p.free_gpus))
        if not entries:
            entries.append(("(idle)", "", "", "", "", 0))
        for name, kind, tp, pp, slots, n in entries:
            row += 1
            sh.put(row, 1, p.index, FMT_INT)
            sh.put(row, 2, p.rack, FMT_INT)
            sh.put(row, 3, p.sku)
            sh.put(row, 4, gpu)
            sh.put(row, 5, k, FMT_INT)
            sh.put(row, 6, name)
            sh.put(row, 7, kind)
            sh.put(row, 8, tp, FMT_INT if tp != "" else None)
            sh.put(row, 9, pp, FMT_INT if pp != "" else None)
            sh.put(row, 10, slots, align="center")
            sh.put(row, 11, n, FMT_INT)
    row += 2
    sh.title(row, f"{len(plan.placement)} servers in {plan.racks_used} racks; "
                   f"{plan.rack_units_used} U; GPU slot numbers are per server, from 0.", NOTE)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")


# ------------------------------------------------------------------------------------------------
# Capacity
# ------------------------------------------------------------------------------------------------

CAP_HEADER_ROW = 3


def _write_capacity(ws: Worksheet, plan: Plan) -> tuple[int, int] | None:
    """Returns the (first, last) rows of the workload table (the chart's ranges), or None."""
    sh = Sheet(ws)
    sh.title(1, f"Capacity — demand vs planned capacity — {plan.scenario}")
    inference = [c for c in plan.coverage if c.kind == "inference"]
    hr = CAP_HEADER_ROW
    sh.header(hr, ["Workload", "Demand (req/s)", "Planned capacity after headroom (req/s)", "Spare (req/s)",
                   "Capacity over demand", "Served", "TTFT predicted, worst (ms)", "TTFT target (ms)",
                   "TPOT predicted, worst (ms)", "TPOT target (ms)", "Within SLO"])
    wl_first = hr + 1
    wl_last = hr + len(inference)
    dep_header = wl_last + 3
    dep_first = dep_header + 1
    dep_last = dep_header + max(1, len(plan.deployments))
    dep_w = range_ref(CAPACITY, 1, dep_first, dep_last)
    dep_cap = range_ref(CAPACITY, 13, dep_first, dep_last)
    by_w: dict[str, list[Deployment]] = defaultdict(list)
    for d in plan.deployments:
        by_w[d.workload].append(d)
    row = hr
    for c in inference:
        row += 1
        deps = by_w.get(c.workload, [])
        ttft = max((d.ttft_ms for d in deps), default=None)
        tpot = max((d.tpot_ms for d in deps), default=None)
        sh.put(row, 1, c.workload)
        sh.put(row, 2, c.demand_rps, FMT_2)
        sh.put(row, 3, f"=SUMIF({dep_w},A{row},{dep_cap})", FMT_2, shown=c.capacity_rps or 0.0)
        sh.put(row, 4, f"=C{row}-B{row}", FMT_2, shown=(c.capacity_rps or 0) - (c.demand_rps or 0))
        sh.put(row, 5, f'=IF(B{row}>0,C{row}/B{row}-1,"")', FMT_PCT, shown=-9.999)
        sh.put(row, 6, f'=IF(B{row}>0,MIN(1,C{row}/B{row}),"")', FMT_PCT, shown=1.0)
        sh.put(row, 7, ttft, FMT_INT)
        sh.put(row, 8, c.slo_ttft_ms, FMT_INT)
        sh.put(row, 9, tpot, FMT_1)
        sh.put(row, 10, c.slo_tpot_ms, FMT_1)
        if ttft is not None and c.slo_ttft_ms is not None and c.slo_tpot_ms is not None:
            sh.put(row, 11, f'=IF(AND(G{row}<=H{row},I{row}<=J{row}),"yes","NO")', shown="yes")
    row = dep_header - 1
    sh.put(row, 1, "Deployments (replicas of one configuration)", font=SECTION, width=False)
    sh.header(dep_header, ["Workload", "Model", "GPU", "SKU", "TP", "PP", "Precision", "KV dtype", "Replicas",
                           "GPUs per replica", "Capacity per replica at SLO (req/s)", "Capacity at SLO (req/s)",
                           "Capacity after headroom (req/s)", "Planned load (req/s)", "TTFT (ms)", "TPOT (ms)",
                           "Batch at SLO", "Limited by", "Perf source"])
    row = dep_header
    for d in plan.deployments:
        row += 1
        sh.put(row, 1, d.workload)
        sh.put(row, 2, d.model)
        sh.put(row, 3, d.gpu)
        sh.put(row, 4, d.sku)
        sh.put(row, 5, d.tp, FMT_INT)
        sh.put(row, 6, d.pp, FMT_INT)
        sh.put(row, 7, d.precision)
        sh.put(row, 8, d.kv_dtype)
        sh.put(row, 9, d.replicas, FMT_INT)
        sh.put(row, 10, d.gpus_per_replica, FMT_INT)
        sh.put(row, 11, d.capacity_rps, FMT_3)
        sh.put(row, 12, f"=I{row}*K{row}", FMT_3, shown=d.replicas * d.capacity_rps)
        sh.put(row, 13, f"=L{row}*Planning_Headroom", FMT_3, shown=d.replicas * d.capacity_rps)
        sh.put(row, 14, d.planned_rps, FMT_3)
        sh.put(row, 15, d.ttft_ms, FMT_INT)
        sh.put(row, 16, d.tpot_ms, FMT_1)
        sh.put(row, 17, d.batch, FMT_INT)
        sh.put(row, 18, d.limited_by)
        sh.put(row, 19, d.perf_source)
    row = max(row, dep_last) + 2
    if plan.finetunes:
        sh.put(row, 1, "Fine-tuning jobs", font=SECTION, width=False)
        row += 1
        sh.header(row, ["Job", "Model", "GPU", "SKU", "GPUs", "Method", "Hours predicted", "Deadline (h)",
                        "Spare (h)", "Peak memory per GPU (GiB)"])
        for f in plan.finetunes:
            row += 1
            sh.put(row, 1, f.workload)
            sh.put(row, 2, f.model)
            sh.put(row, 3, f.gpu)
            sh.put(row, 4, f.sku)
            sh.put(row, 5, f.gpus, FMT_INT)
            sh.put(row, 6, f.method)
            sh.put(row, 7, f.hours, FMT_1)
            sh.put(row, 8, f.deadline_hours, FMT_1)
            sh.put(row, 9, f"=H{row}-G{row}", FMT_1, shown=f.deadline_hours - f.hours)
            sh.put(row, 10, f.peak_gib_per_gpu, FMT_2)
        row += 2
    chart_row = row
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")
    if not inference:
        return None
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "clustered"
    chart.title = "Demand vs planned capacity (req/s)"
    chart.y_axis.title = "requests/s"
    chart.y_axis.numFmt = FMT_1
    data = Reference(ws, min_col=2, max_col=3, min_row=hr, max_row=wl_last)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=wl_first, max_row=wl_last))
    chart.height = 7.5
    chart.width = 16.0
    ws.add_chart(chart, f"A{chart_row}")
    return wl_first, wl_last


# ------------------------------------------------------------------------------------------------
# Sizing
# ------------------------------------------------------------------------------------------------


def _write_sizing(ws: Worksheet, plan: Plan, rs: ResolvedScenario) -> None:
    """The memory account each deployment was chosen with (recorded in the plan, not re-sized here)."""
    sh = Sheet(ws)
    sh.title(1, f"Sizing — GPU memory per replica rank (vLLM rules) — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Workload", "Model", "GPU", "TP", "PP", "Precision", "KV dtype", "GPU memory (GiB)",
                   "Engine budget (GiB)", "Weights (GiB)", "Activations peak (GiB)", "Overhead, non-torch (GiB)",
                   "KV cache (GiB)", "Unallocated (GiB)", "CUDA graphs, outside budget (GiB)",
                   "KV cache (tokens per replica)", "Max context (tokens)", "Concurrent full-length sequences",
                   "Fits"])
    row = hr
    for d in plan.deployments:
        mem = d.memory
        row += 1
        for col, value in enumerate((d.workload, d.model, d.gpu), start=1):
            sh.put(row, col, value)
        sh.put(row, 4, d.tp, FMT_INT)
        sh.put(row, 5, d.pp, FMT_INT)
        sh.put(row, 6, d.precision)
        sh.put(row, 7, d.kv_dtype)
        sh.put(row, 8, mem.gpu_memory_gib, FMT_2)
        sh.put(row, 9, mem.budget_gib, FMT_2)
        sh.put(row, 10, d.weights_gib_per_gpu, FMT_2)
        sh.put(row, 11, mem.activation_peak_gib, FMT_2)
        sh.put(row, 12, mem.non_torch_gib, FMT_2)
        sh.put(row, 13, mem.kv_cache_gib, FMT_2)
        sh.put(row, 14, f"=I{row}-J{row}-K{row}-L{row}-M{row}", FMT_2,
               shown=mem.budget_gib - d.weights_gib_per_gpu - mem.activation_peak_gib - mem.non_torch_gib
               - mem.kv_cache_gib)
        sh.put(row, 15, mem.cuda_graph_gib, FMT_2)
        sh.put(row, 16, d.kv_cache_tokens, FMT_INT)
        sh.put(row, 17, mem.max_model_len, FMT_INT)
        sh.put(row, 18, mem.max_concurrency, FMT_1)
        sh.put(row, 19, "yes")  # the checker re-sized every deployment of the plan
    if plan.finetunes:
        row += 2
        sh.put(row, 1, "Fine-tuning jobs", font=SECTION, width=False)
        row += 1
        sh.header(row, ["Job", "Model", "GPU", "GPUs", "Method", "Peak memory per GPU (GiB)",
                        "GPU memory (GiB)"])
        for f in plan.finetunes:
            row += 1
            gpu = rs.catalog.gpus.get(f.gpu)
            sh.put(row, 1, f.workload)
            sh.put(row, 2, f.model)
            sh.put(row, 3, f.gpu)
            sh.put(row, 4, f.gpus, FMT_INT)
            sh.put(row, 5, f.method)
            sh.put(row, 6, f.peak_gib_per_gpu, FMT_2)
            sh.put(row, 7, gpu.memory_gib if gpu else None, FMT_2)
    row += 2
    sh.title(row, "Per GPU of the most loaded rank. Budget = GPU memory x gpu_memory_utilization; the engine "
                   "gives what is left after weights, activations and overhead to the KV cache "
                   "(vLLM v0.6 rules, docs/sizing.md).", NOTE)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")


# ------------------------------------------------------------------------------------------------
# Solver
# ------------------------------------------------------------------------------------------------


def _write_solver(ws: Worksheet, plan: Plan, rs: ResolvedScenario) -> None:
    sh = Sheet(ws)
    s = plan.solver
    sh.title(1, f"Solver — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Field", "Value", "Meaning"])
    rows: list[tuple[str, Any, str | None, str]] = [
        ("Status", s.status, None, "optimal: proven best within the gap; feasible: a valid plan, not proven best"),
        ("Solver", s.solver, None, "MIP solver used (OR-Tools MathOpt)"),
        ("Objective", s.objective_name, None, "what was optimised: capex, tco or coverage"),
        ("Objective value", s.objective, FMT_2, "value of the objective in the plan"),
        ("Best bound", s.bound, FMT_2, "no plan can do better than this"),
        ("Relative gap", s.gap, "0.0000%", "|objective - bound| / |objective|"),
        ("Solve time (s)", s.solve_time_s, FMT_2, "wall-clock seconds in the solver"),
        ("Time limit (s)", s.time_limit_s, FMT_1, "wall-clock cap per stage: a safety net (machine-dependent)"),
        ("Node limit", s.node_limit, FMT_INT, "branch-and-bound nodes per stage: the deterministic work limit"),
        ("Stage 1 stopped by", s.stopped_by, None, "optimal (within the gap), node_limit or time_limit"),
        ("Stage 2 stopped by", s.tiebreak_stopped_by, None,
         "tie-breaks (coverage: the cheapest plan serving that much): optimal, node_limit, time_limit, none"),
        ("Candidates", s.candidates, FMT_INT, "feasible (workload, server, TP, PP, precision) configurations"),
        ("Variables", s.variables, FMT_INT, "MIP variables"),
        ("Constraints", s.constraints, FMT_INT, "MIP linear constraints"),
        ("Random seed", s.seed, FMT_INT, "solver seed (runs are deterministic with 1 thread)"),
        ("procure version", __version__, None, "the program that wrote this workbook"),
        ("Scenario file", str(rs.path), None, "input of this plan"),
        ("Generated", date.today(), FMT_DATE, "date this workbook was written"),
    ]
    row = hr
    for label, value, fmt, meaning in rows:
        row += 1
        sh.put(row, 1, label, font=BOLD)
        sh.put(row, 2, value, fmt, wrap=isinstance(value, str) and len(value) > 40, align="left")
        sh.put(row, 3, meaning, wrap=True)
    for note in plan.notes:
        row += 1
        sh.put(row, 1, "Note", font=BOLD)
        sh.put(row, 2, note, wrap=True)
    sh.finish(header_row=hr, footer=f"procure — {plan.scenario}")


# ------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------


def _write_summary(ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: _Refs) -> None:
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    sc = rs.scenario
    sh.title(1, f"GPU purchase plan — {plan.scenario}")
    hr = 3
    sh.header(hr, ["Item", "Value", "Unit", "How it is computed"])
    row = hr

    def kv(label: str, value: Any, fmt: str | None = None, unit: str = "", how: str = "", *,
           shown: Any = None, bold: bool = False) -> int:
        nonlocal row
        row += 1
        sh.put(row, 1, label, font=BOLD if bold else None)
        sh.put(row, 2, value, fmt, shown=shown, font=BOLD if bold else None, align="right",
               wrap=isinstance(value, str) and not value.startswith("=") and len(value) > 40)
        sh.put(row, 3, unit)
        sh.put(row, 4, how, wrap=True)
        return row

    kv("Scenario", plan.scenario)
    if sc.description:
        kv("Description", sc.description.strip())
    kv("Scenario file", rs.path.name)
    kv("Date", date.today(), FMT_DATE, "", "date this workbook was written")
    kv("Currency", cur, None, "", "all money in this workbook")
    kv("Plan status", plan.status, None, "", f"{plan.solver.solver}, objective {plan.solver.objective_name}")
    kv("Solver gap", plan.gap, "0.00%", "", "distance to the best bound (0 = proven optimal)")
    capex_row = kv("Capex (grand total)", "=BOM_Grand_Total", money, "",
                   "Bill of Materials grand total: equipment + contingency + tax", shown=plan.capex * 1.3,
                   bold=True)
    power_row = kv("IT power at full load", "=BOM_Power_W/1000", FMT_1, "kW", "sum of the BOM power column",
                   shown=plan.power_kw)
    kv("Facility power", f"=B{power_row}*Site_PUE", FMT_1, "kW", "IT power x PUE (Assumptions)",
       shown=plan.facility_power_kw)
    energy_row = kv(f"Energy over {plan.horizon_years:g} years", f"=B{power_row}*Site_PUE*Hours_Per_Year*"
                    "Horizon_Years*Electricity_Price_kWh", money, "",
                    "facility kW x hours per year x years x price per kWh (full load: an upper bound)",
                    shown=plan.energy_cost * 1.3)
    opex_row = kv(f"Support / opex over {plan.horizon_years:g} years",
                  "=BOM_Subtotal*Opex_Fraction_Per_Year*Horizon_Years", money, "",
                  "equipment subtotal x yearly fraction x years (Assumptions)", shown=plan.opex_cost * 1.3)
    kv(f"TCO over {plan.horizon_years:g} years", f"=B{capex_row}+B{energy_row}+B{opex_row}", money, "",
       "capex + energy + support", shown=plan.tco * 1.3, bold=True)
    kv("Racks used", plan.racks_used, FMT_INT, "racks", f"of {sc.site.racks} available")
    kv("Rack units", "=BOM_Rack_Units", FMT_INT, "U", "sum of the BOM rack-unit column",
       shown=plan.rack_units_used)
    kv("Servers", sum(s.count for s in plan.servers), FMT_INT, "servers", "see the Deployment sheet")
    for gname, n in sorted(plan.gpus_by_type.items()):
        ref = refs.gpu_qty.get(gname)
        kv(f"GPUs: {gname}", f"={ref}" if ref else n, FMT_INT, "GPUs", "quantity on the Bill of Materials",
           shown=n)
    if sc.constraints.budget is not None:
        kv("Budget (capex cap)", sc.constraints.budget, money, "", "scenario constraint")

    # Cost by category: the chart's data, printed with the chart on a page of its own.
    row += 1
    ws.row_breaks.append(Break(id=row))
    row += 1
    sh.put(row, 1, "Cost by category", font=SECTION, width=False)
    row += 1
    cat_header = row
    sh.header(row, ["Category", f"Amount ({cur})", "Share of TCO"])
    tco_ref = f"SUM($B${cat_header + 1}:$B${cat_header + 6})"
    cats = [
        ("Server chassis", f"={refs.chassis_ext}"),
        ("GPUs", f"={refs.gpu_ext}"),
        ("Contingency", "=BOM_Contingency"),
        ("Tax", "=BOM_Tax"),
        (f"Energy ({plan.horizon_years:g} years)", f"=B{energy_row}"),
        (f"Support / opex ({plan.horizon_years:g} years)", f"=B{opex_row}"),
    ]
    for label, formula in cats:
        row += 1
        sh.put(row, 1, label)
        sh.put(row, 2, formula, money, shown=plan.tco * 1.3)
        sh.put(row, 3, f"=IF({tco_ref}>0,B{row}/{tco_ref},0)", FMT_PCT, shown=1.0)
    cat_first, cat_last = cat_header + 1, row
    row += 2
    sh.title(row, "Prices are dated estimates, not quotes (see Assumptions). Blue cells in the workbook "
                   "are inputs; totals are formulas and follow any change.", NOTE)
    sh.finish(header_row=None, landscape=True, footer=f"procure — {plan.scenario}")
    ws.freeze_panes = "A4"
    ws.print_title_rows = "1:1"
    chart = BarChart()
    chart.type = "bar"
    chart.title = f"Cost by category over {plan.horizon_years:g} years ({cur})"
    chart.legend = None
    chart.x_axis.scaling.orientation = "maxMin"  # first category on top, as in the table
    chart.x_axis.title = None
    chart.y_axis.numFmt = FMT_INT
    chart.add_data(Reference(ws, min_col=2, min_row=cat_header, max_row=cat_last), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=cat_first, max_row=cat_last))
    chart.height = 7.5
    chart.width = 16.0
    ws.add_chart(chart, f"A{row + 2}")


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------


def build_workbook(plan: Plan, rs: ResolvedScenario) -> Workbook:
    """The workbook in memory (tests and other writers use this)."""
    wb = Workbook()
    default = wb.active
    sheets = {name: wb.create_sheet(name) for name in SHEETS}
    if default is not None:
        wb.remove(default)
    refs = _Refs()
    _write_assumptions(wb, sheets[ASSUMPTIONS], plan, rs, refs)
    _write_bom(wb, sheets[BOM], plan, rs, refs)
    _write_deployment(sheets[DEPLOYMENT], plan)
    _write_capacity(sheets[CAPACITY], plan)
    _write_sizing(sheets[SIZING], plan, rs)
    _write_solver(sheets[SOLVER], plan, rs)
    _write_summary(sheets[SUMMARY], plan, rs, refs)
    wb.active = 0
    wb.calculation.fullCalcOnLoad = True
    wb.properties.title = f"GPU purchase plan — {plan.scenario}"
    wb.properties.creator = f"procure {__version__}"
    return wb


def default_workbook_path(scenario_file: Path) -> Path:
    """``reports/<scenario stem>.xlsx``: the repository's reports/ folder in a source checkout,
    else reports/ under the working directory. The folder is created."""
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    folder = base / "reports"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the reports folder {folder}: {exc.strerror or exc}",
                         hint="give the workbook path with -o/--output") from exc
    return folder / f"{Path(scenario_file).stem}.xlsx"


def write_workbook(plan: Plan, rs: ResolvedScenario, path: Path, *, force: bool = False) -> Path:
    """Write the workbook to ``path`` safely (temporary file + rename); UsageError when it cannot."""
    return save_workbook(build_workbook(plan, rs), path, force=force)
