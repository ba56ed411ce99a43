"""Assumptions: every input the workbook's formulas use, in one table with one header.

Finance inputs (contingency, tax, budget, payment phasing, depreciation life, discount rate,
horizon, support and other opex, quote date), site and energy inputs, the *unit price table* every
Bill of Materials line links to (systems, chassis, GPU cards, quote items), the power and rack-space
figures the Racks sheet multiplies, serving-engine settings and the throughput model's efficiency
factors. Blue figures on a yellow ground are inputs; each named one is listed in docs/workbook.md.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from optimizer.loaders import ResolvedScenario
from optimizer.report.workbook.common import (
    ASSUMPTIONS,
    Refs,
    chassis_power_w,
    finance,
    gpu_power_w,
    is_integrated,
    override,
    price_key,
    quote_lines,
    today,
)
from optimizer.report.xlsx import (
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
    Sheet,
    abs_ref,
    define_name,
    money_format,
)
from optimizer.schema.plan import Plan
from optimizer.sizing.candidates import plan_efficiency
from optimizer.units import GIB, HOURS_PER_YEAR

HEADER_ROW = 3
HEADERS = ["Item", "Value", "Unit", "Basis", "As of", "Source / note", "Defined name"]


def support_opex_fraction(plan: Plan, rs: ResolvedScenario) -> float:
    """The yearly support fraction the plan's TCO carries as opex (0 when support is quoted as
    capex lines, or none is set)."""
    return rs.scenario.opex_per_year_fraction if plan.opex_cost > 0 else 0.0


def write_assumptions(wb: Workbook, ws: Worksheet, plan: Plan, rs: ResolvedScenario, refs: Refs) -> None:
    sh = Sheet(ws)
    cur = plan.currency
    money = money_format(cur)
    sc = rs.scenario
    fin = finance(rs)
    src = f"scenario {rs.path.name}"
    sh.title(1, f"Assumptions — {plan.scenario}")
    sh.title(2, "Blue figures on a yellow ground are inputs: every other sheet uses them through formulas, so "
                "a change here flows through. Prices are dated estimates, not quotes, unless marked as "
                "scenario values.", NOTE)
    sh.header(HEADER_ROW, HEADERS)
    row = HEADER_ROW

    def section(text: str) -> None:
        nonlocal row
        row += 2 if row > HEADER_ROW else 1
        sh.put(row, 1, text, font=SECTION, width=False)

    def item(label: str, value: Any, fmt: str | None, unit: str = "", basis: str = "", as_of: Any = None,
             note: str = "", name: str | None = None, *, is_input: bool = True) -> str:
        nonlocal row
        row += 1
        sh.put(row, 1, label, wrap=True, cap=30)
        sh.put(row, 2, value, fmt, font=INPUT_FONT if is_input else None, fill=INPUT_FILL if is_input else None,
               align="right")
        sh.put(row, 3, unit, wrap=True, cap=14)
        sh.put(row, 4, basis, wrap=True, cap=22)
        if as_of is not None:
            sh.put(row, 5, as_of, FMT_DATE)
        sh.put(row, 6, note, wrap=True, cap=28)
        if name:
            sh.put(row, 7, name)
            define_name(wb, name, ASSUMPTIONS, 2, row)
        return abs_ref(ASSUMPTIONS, 2, row)

    section("Finance inputs")
    item("Contingency", fin.contingency_pct, FMT_PCT2, "of the subtotal", "scenario" if fin.contingency_pct
         else "default", None, f"{src}: finance.contingency_pct; a reserve inside the budget check",
         "Contingency_Pct")
    item("Tax (sales tax / VAT)", fin.tax_pct, FMT_PCT2, "of subtotal + contingency",
         "scenario" if fin.tax_pct else "default", None, f"{src}: finance.tax_pct", "Tax_Pct")
    item("Budget (capex cap)", sc.constraints.budget, money, cur, "scenario" if sc.constraints.budget else
         "none set", None, f"{src}: constraints.budget; compared with the grand total (with contingency and "
         "tax) on the Summary", "Budget")
    item("Paid on order", fin.payment_on_order_pct, FMT_PCT, "of the grand total, year 1", "scenario",
         None, f"{src}: finance.payment_on_order_pct; the rest is paid on delivery", "Payment_On_Order_Pct")
    item("Delivery lag", fin.delivery_lag_years, FMT_INT, "years after the order", "scenario", None,
         f"{src}: finance.delivery_lag_years; 0 = delivered and paid in year 1", "Delivery_Lag_Years")
    item("Useful life (depreciation)", fin.useful_life_years, FMT_INT, "years", "scenario", None,
         f"{src}: finance.useful_life_years; straight line, full year from the delivery year",
         "Useful_Life_Years")
    item("Discount rate", fin.discount_rate, FMT_PCT2, "per year", "scenario", None,
         f"{src}: finance.discount_rate; NPV discounts each year's cash out at its end", "Discount_Rate")
    item("TCO horizon", plan.horizon_years, "0.##", "years", "scenario", None, f"{src}: horizon_years",
         "Horizon_Years")
    quoted = support_opex_fraction(plan, rs) == 0 and sc.opex_per_year_fraction > 0
    item("Support as yearly opex", support_opex_fraction(plan, rs), FMT_PCT2, "of the servers' price per year",
         "scenario", None, "support is bought as quote lines on the Bill of Materials (capex), so no yearly "
         "support opex" if quoted else f"{src}: opex_per_year_fraction", "Opex_Fraction_Per_Year")
    item("Other opex per year", 0.0, money, f"{cur} per year", "your figure", None,
         "e.g. staff, colocation fees; not in the plan's TCO (default 0)", "Other_Opex_Per_Year")
    item("Quote date", today(), FMT_DATE, "date", "date written", None,
         "prices dated more than 12 months before it are flagged on the Bill of Materials", "Quote_Date")

    section("Site and energy inputs")
    item("Power usage effectiveness (PUE)", sc.site.pue, FMT_2, "facility kW / IT kW", "scenario", None,
         f"{src}: site.pue", "Site_PUE")
    item("Electricity price", sc.site.electricity_per_kwh, "#,##0.0000", f"{cur} / kWh", "scenario", None,
         f"{src}: site.electricity_per_kwh", "Electricity_Price_kWh")
    item("Hours per year", HOURS_PER_YEAR, FMT_INT, "h", "constant", None,
         "365 x 24; servers assumed at full load all year (an upper bound on energy)", "Hours_Per_Year")
    item("Rack power limit", sc.site.rack_power_kw, FMT_2, "IT kW per rack", "scenario", None,
         f"{src}: site.rack_power_kw", "Rack_Power_kW")
    item("Rack space", sc.site.rack_units, FMT_INT, "U per rack", "scenario", None, f"{src}: site.rack_units",
         "Rack_Units_Per_Rack")
    item("Racks available", sc.site.racks, FMT_INT, "racks", "scenario", None, f"{src}: site.racks",
         "Racks_Available")
    item("Planning headroom", plan.headroom, FMT_PCT, "of SLO capacity used", "scenario", None,
         f"{src}: headroom; replicas are planned at most at this load", "Planning_Headroom")
    item("Currency units per US dollar", sc.usd_rate, "0.0000", f"{cur} / USD", "scenario", None,
         f"{src}: usd_to_currency; catalog prices are in USD (shown for audit)", "USD_To_Currency")

    section(f"Unit prices ({cur}): the Bill of Materials links here")
    rate = sc.usd_rate
    conv = f" x {rate:g}" if rate != 1 else ""
    seen: set[str] = set()
    for line in plan.servers:
        srv = rs.catalog.servers.get(line.chassis)
        gpu = rs.catalog.gpus.get(line.gpu)
        if is_integrated(line, rs):
            key = price_key("system", line.sku)
            if key in seen:
                continue
            seen.add(key)
            over = override(rs, line.chassis) or override(rs, line.gpu)
            basis = ("estimate with scenario values" if over else "estimate") + \
                f": system {line.chassis_price:,.2f} + {line.gpus_per_server} x {line.gpu_unit_price:,.2f}"
            usd = (f"catalog {srv.base_usd:,.0f} + {line.gpus_per_server} x {gpu.price.usd:,.0f} USD{conv}"
                   if srv and gpu else "")
            refs.price[key] = item(f"{line.chassis} system with {line.gpus_per_server} x {line.gpu}", line.unit_price,
                                   money, "per system", basis, srv.price_as_of if srv else None,
                                   "; ".join(x for x in (usd, srv.price_source if srv else "") if x))
            continue
        key = price_key("chassis", line.chassis)
        if key not in seen:
            seen.add(key)
            refs.price[key] = item(
                f"{line.chassis} server chassis (no GPUs)", line.chassis_price, money, "per chassis",
                f"scenario value (prices.{line.chassis})" if override(rs, line.chassis) else f"estimate: catalog "
                f"{srv.base_usd:,.0f} USD{conv}" if srv else "estimate (not in catalog)",
                srv.price_as_of if srv else None, srv.price_source if srv else "")
    for line in plan.servers:
        key = price_key("gpu", line.gpu)
        if is_integrated(line, rs) or key in seen:
            continue
        seen.add(key)
        gpu = rs.catalog.gpus.get(line.gpu)
        refs.price[key] = item(
            f"{line.gpu} GPU card", line.gpu_unit_price, money, "per card",
            f"scenario value (prices.{line.gpu})" if override(rs, line.gpu) else
            f"estimate: catalog {gpu.price.usd:,.0f} USD{conv}, {gpu.confidence} confidence" if gpu
            else "estimate (not in catalog)", gpu.price.as_of if gpu else None, gpu.price.source if gpu else "")
    for i, q in enumerate(quote_lines(plan)):
        entry = rs.catalog.quote_items.get(q.item)
        fraction = entry.fraction if entry is not None else None
        over = q.item in sc.quote.prices or q.item in sc.quote.fractions
        hardware = sum(s.unit_price * s.count for s in plan.servers)
        if fraction is not None and hardware > 0:
            per_year = entry is not None and entry.rule.endswith("per_year")
            value = q.unit_price / hardware  # the fraction the plan priced the line with
            basis = ("scenario value (quote.fractions)" if over else
                     "scenario opex_per_year_fraction" if per_year and abs(value - sc.opex_per_year_fraction) < 1e-12
                     else f"estimate, {q.confidence} confidence")
            refs.fraction[q.item] = item(
                f"{q.description} ({q.item})", value, FMT_PCT2,
                "of the servers' price" + (" per year" if per_year else ""), basis, q.price_date, q.source)
            continue
        refs.price[price_key("quote", str(i))] = item(
            f"{q.description} ({q.item})", q.unit_price, money, f"per {q.unit}",
            "scenario value (quote.prices)" if over else f"estimate, {q.confidence} confidence",
            q.price_date, q.source)

    section("Power and space (the Racks sheet multiplies these)")
    done: set[str] = set()
    for line in plan.servers:
        if line.chassis in done:
            continue
        done.add(line.chassis)
        srv = rs.catalog.servers.get(line.chassis)
        refs.power[price_key("chassis", line.chassis)] = item(
            f"{line.chassis} base power (without GPUs)", chassis_power_w(line, rs), FMT_INT, "W at full load",
            "estimate: CPUs, memory, NICs, fans", srv.as_of if srv else None, srv.source if srv else "")
        refs.units[line.chassis] = item(f"{line.chassis} height", line.rack_units, FMT_INT, "U per server",
                                        "datasheet", srv.as_of if srv else None, srv.source if srv else "")
    for line in plan.servers:
        if line.gpu in done:
            continue
        done.add(line.gpu)
        gpu = rs.catalog.gpus.get(line.gpu)
        refs.power[price_key("gpu", line.gpu)] = item(
            f"{line.gpu} board power", gpu_power_w(line, rs), FMT_INT, "W per GPU (TDP)",
            "datasheet" + (f", {gpu.confidence} confidence" if gpu else ""), gpu.as_of if gpu else None,
            gpu.source if gpu else "")

    section("Serving engine settings")
    serving = sc.serving
    for fname, finfo in type(serving).model_fields.items():
        value = getattr(serving, fname)
        shown = value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        set_by = ("scenario" if value != finfo.get_default(call_default_factory=True)
                  else f"default ({serving.engine} {serving.engine_version})")
        item(fname, shown, None, "", set_by, None, finfo.description or "", is_input=False)

    section("Efficiency factors and model constants (estimates)")
    previous = ""
    for label, value, scope, note in efficiency_rows(plan, rs):
        note, previous = ("as above" if note == previous else note), note
        item(label, value, FMT_3 if isinstance(value, float) else None, scope, "estimate", None, note,
             is_input=False)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {plan.scenario}")


def efficiency_rows(plan: Plan, rs: ResolvedScenario) -> list[tuple[str, Any, str, str]]:
    """Efficiency factors of the throughput model and the memory model's constants."""
    rows: list[tuple[str, Any, str, str]] = []
    for gname in sorted({line.gpu for line in plan.servers}):
        gpu = rs.catalog.gpus.get(gname)
        if gpu is None:
            continue
        eff = plan_efficiency(gpu, rs.scenario.serving, rs.calibration_path)
        how = (f"fitted on {eff.family}/{eff.engine} rows" if eff.provenance == "fitted"
               else f"transferred from {eff.transferred_from} (no {eff.family}/{eff.engine} rows)")
        for key, value in asdict(eff).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                rows.append((key, float(value), gname, f"estimate, {how}; {eff.citation}"))
        rows.append(("planned capacity quantile", 1.0 - plan.confidence, gname,
                     f"confidence {plan.confidence:g}: capacity x exp(z x band_log_sd {eff.band_log_sd:.3f}) "
                     "(docs/perf.md, 'Error bands')"))
    for d in plan.deployments:
        rows.append((f"performance source: {d.workload}", d.perf_source, f"{d.gpu} TP{d.tp} PP{d.pp}",
                     "model = estimated from datasheet figures and efficiency factors; "
                     "measured = calibration file"))
    from optimizer.sizing import memory

    consts = [
        ("NON_TORCH_BYTES_TP1", "non-torch memory per GPU (CUDA context, cuBLAS), GiB",
         "0.35 GiB in the vLLM v0.6.4 profiling log of vllm-project/vllm#10517 (estimate: one log)"),
        ("NCCL_BYTES_TP", "NCCL buffers per GPU when TP > 1 on PCIe GPUs (vLLM, SGLang), GiB; NVLink GPUs "
         "and TensorRT-LLM take the communication reserve terms of docs/sizing.md",
         "0.20 GiB per TP worker in the V0 log quoted in vllm-project/vllm#14447 (estimate: one log)"),
        ("CUDA_GRAPH_BYTES_PER_LAYER", "CUDA-graph memory per layer, GiB",
         "0.21 GiB for 16 layers in vllm-project/vllm#11349, scaled by layers (estimate)"),
    ]
    for name, label, note in consts:
        value = getattr(memory, name, None)
        if isinstance(value, int | float):
            rows.append((label, value / GIB, "all deployments", note))
    return rows
