"""The what-if comparison workbook: variants side by side, a chart, one shared price table, and each
variant's bill of materials.

Sheets:

* **Comparison** – one column per variant (sorted by budget, as the comparison is), one row per
  metric: budget and who set it, status, objective used; cost (servers, capex = servers + quote
  lines, the total with contingency and tax that the budget bounds, budget left where the variant
  sets its own budget, energy, opex, TCO – all formulas over the BOM sheets and the Prices sheet);
  served demand; the recommendation (the knee: the cheapest variant within 1 point of full coverage
  among the variants that differ only in budget – formulas over the rows above); the marginal value
  measured on capex actually spent (points per extra million, and currency per point; formulas);
  hardware, power and solver figures. Below the table, the chart's data (linked to the table) and a
  native scatter chart of served demand on a true budget axis: the budget sweep as a line, what-ifs
  as separate markers, the full-coverage point and the recommendation marked.
* **Prices** – the one unit price table every BOM sheet links to: server chassis and system base
  prices, GPU prices, system prices (formulas: base + GPUs x GPU price), quote items and the
  fractions priced on hardware (support), then the shared inputs (contingency, tax, horizon, PUE,
  electricity price, yearly opex fraction). A price a what-if overrides is its own row, used only
  by that what-if's variants; editing a price moves every variant that uses it.
* **one BOM sheet per variant with a plan** – :func:`optimizer.report.workbook.bom.write_bom`, the
  layout and formulas of the single-plan workbook (``=qty*unit``, subtotal, contingency, tax, grand
  total) with unit prices linking to the Prices sheet; defined names carry the variant number
  (``Variant3_BOM_Grand_Total``).

Nothing is recomputed here: every typed number is the :class:`optimizer.compare.Comparison`'s or its
plans'; formulas re-add them so that an edit flows through. Where a plan's figure does not follow
from the shared inputs (e.g. a price the catalog rounds differently), the figure is written as a
value rather than a formula that would disagree with the plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import Reference, ScatterChart, Series
from openpyxl.chart.marker import Marker
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from optimizer import __version__
from optimizer.compare import COVERAGE_TOLERANCE, Comparison, VariantResult, recommendation_rule, variant_scenario
from optimizer.loaders import ResolvedScenario
from optimizer.quote import support_in_capex
from optimizer.quote import unit_price as quote_unit_price
from optimizer.report.workbook import default_workbook_path
from optimizer.report.workbook.bom import write_bom
from optimizer.report.workbook.common import Refs, is_integrated, price_key
from optimizer.report.xlsx import (
    BOLD,
    FMT_1,
    FMT_2,
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
    chart_fonts,
    money_format,
    save_workbook,
)
from optimizer.schema.plan import Plan
from optimizer.units import HOURS_PER_YEAR, currency_symbol

COMPARISON = "Comparison"
PRICES = "Prices"
HEADER_ROW = 4
FIRST_COL = 3  # columns A, B: metric and unit
MAX_SHEET_TITLE = 31
PRICES_HEADER_ROW = 4
PRICE_COL = 4  # the Prices sheet's value column (D)
ORIGINS = {"base": "scenario as written", "cli": "command line", "whatif": "scenario what-if"}
RECOMMENDED_MARK = "◀ recommended"


def bom_sheet_titles(variants: list[VariantResult]) -> dict[int, str]:
    """Distinct, valid sheet titles ``"3 budget $1.50M"`` for variants with a plan (by index)."""
    out: dict[int, str] = {}
    used = {COMPARISON.lower(), PRICES.lower()}
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


def own_budget(v: VariantResult) -> bool:
    """The variant sets its budget (a sweep point, a what-if budget); else the scenario's cap applies
    and "budget left" means nothing for the comparison."""
    return v.budget is not None and v.budget_from != "scenario"


# ------------------------------------------------------------------------------------------------
# The shared price table
# ------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    label: str
    unit: str
    value: Any                  # a number, or a formula over other entries (system prices)
    shown: float
    fmt: str
    basis: str = ""
    as_of: date | None = None
    source: str = ""
    users: list[int] = field(default_factory=list)
    row: int = 0
    is_input: bool = True


@dataclass
class _Prices:
    """Entries by (kind, name, value): one row per distinct price, shared by every variant using it."""

    money: str
    entries: dict[tuple[Any, ...], _Entry] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...], user: int, entry: _Entry) -> tuple[Any, ...]:
        if key not in self.entries:
            self.entries[key] = entry
        if user not in self.entries[key].users:
            self.entries[key].users.append(user)
        return key

    def ref(self, key: tuple[Any, ...]) -> str:
        return abs_ref(PRICES, PRICE_COL, self.entries[key].row)


def _cents(x: float) -> float:
    return round(x, 6)


@dataclass
class _VariantPrices:
    """One variant's links into the price table (keys of :class:`_Prices`)."""

    servers: dict[str, tuple[Any, ...]] = field(default_factory=dict)   # write_bom price key -> entry
    quote: dict[int, tuple[tuple[Any, ...], bool]] = field(default_factory=dict)  # line -> (entry, fraction)
    inputs: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def _collect(prices: _Prices, i: int, plan: Plan, rs: ResolvedScenario) -> _VariantPrices:
    out = _VariantPrices()
    cat = rs.catalog
    rate = rs.scenario.usd_rate
    for s in plan.servers:
        srv = cat.servers.get(s.chassis)
        gpu = cat.gpus.get(s.gpu)
        over_c = any(k.lower() == s.chassis.lower() for k in rs.scenario.prices)
        over_g = any(k.lower() == s.gpu.lower() for k in rs.scenario.prices)
        gkey = ("gpu", s.gpu, _cents(s.gpu_unit_price))
        prices.add(gkey, i, _Entry(
            f"{s.gpu} GPU" + (f", {gpu.memory_marketed}" if gpu else ""), "per GPU", s.gpu_unit_price,
            s.gpu_unit_price, prices.money,
            "scenario or what-if value" if over_g else f"estimate: catalog {gpu.price.usd:,.0f} USD x {rate:g}"
            if gpu else "plan value", None if over_g or gpu is None else gpu.price.as_of,
            "" if over_g or gpu is None else gpu.price.source))
        if is_integrated(s, rs):
            bkey = ("system-base", s.chassis, _cents(s.chassis_price))
            prices.add(bkey, i, _Entry(
                f"{s.chassis} system base price (the system less its GPUs)", "per system", s.chassis_price,
                s.chassis_price, prices.money,
                "scenario or what-if value" if over_c else "estimate: catalog system base"
                if srv else "plan value", None if over_c or srv is None else srv.price_as_of,
                "" if over_c or srv is None else srv.price_source))
            skey = ("system", s.sku, bkey, gkey, s.gpus_per_server)
            prices.add(skey, i, _Entry(
                f"{s.chassis} system with {s.gpus_per_server} x {s.gpu}", "per system", None, s.unit_price,
                prices.money, f"formula: system base + {s.gpus_per_server} x GPU price", is_input=False))
            out.servers[price_key("system", s.sku)] = skey
        else:
            ckey = ("chassis", s.chassis, _cents(s.chassis_price))
            prices.add(ckey, i, _Entry(
                f"{s.chassis} server chassis (without GPU cards)", "per chassis", s.chassis_price,
                s.chassis_price, prices.money,
                "scenario or what-if value" if over_c else "estimate: catalog chassis" if srv else "plan value",
                None if over_c or srv is None else srv.price_as_of,
                "" if over_c or srv is None else srv.price_source))
            out.servers[price_key("chassis", s.chassis)] = ckey
            out.servers[price_key("gpu", s.gpu)] = gkey
    hardware = sum(s.unit_price * s.count for s in plan.servers)
    for n, q in enumerate(plan.quote_lines):
        item = cat.quote_items.get(q.item)
        if item is None:
            continue  # not a catalog item: the plan's value stays on the BOM
        value = quote_unit_price(rs, item)
        if item.fraction is not None:
            if abs(value * hardware - q.unit_price) > 0.005:
                continue
            key = ("fraction", q.item, value)
            prices.add(key, i, _Entry(
                f"{q.description} ({q.item})",
                "of the servers' price" + (" per year" if item.rule.endswith("per_year") else ""), value, value,
                FMT_PCT2, f"{q.confidence} confidence; the BOM line is this x the variant's servers",
                q.price_date, q.source))
            out.quote[n] = (key, True)
        elif abs(value - q.unit_price) <= 0.005:
            key = ("quote", q.item, _cents(value))
            prices.add(key, i, _Entry(
                f"{q.description} ({q.item})", f"per {q.unit}", value, value, prices.money,
                f"estimate, {q.confidence} confidence", q.price_date, q.source))
            out.quote[n] = (key, False)
    sc = rs.scenario
    fin = sc.finance
    opex_fraction = 0.0 if support_in_capex(rs) else sc.opex_per_year_fraction
    for name, label, unit, value, fmt in (
            ("contingency", "Contingency", "of capex", fin.contingency_pct, FMT_PCT2),
            ("tax", "Tax", "of capex + contingency", fin.tax_pct, FMT_PCT2),
            ("horizon", "Planning horizon", "years", sc.horizon_years, "0.##"),
            ("pue", "Site PUE (facility power / IT power)", "", sc.site.pue, FMT_2),
            ("electricity", "Electricity price", f"{sc.currency} / kWh", sc.site.electricity_per_kwh, "#,##0.0000"),
            ("opex", "Support as yearly opex (0 when support is quoted as BOM lines)", "of servers' price per year",
             opex_fraction, FMT_PCT2)):
        key = ("input", name, value)
        prices.add(key, i, _Entry(
            label, unit, value, value, fmt, "scenario"))
        out.inputs[name] = key
    return out


def _write_prices(wb: Workbook, prices: _Prices, result: Comparison, n_plans: int) -> None:
    ws = wb.create_sheet(PRICES)
    sh = Sheet(ws)
    sh.title(1, f"Prices and shared inputs — {result.scenario}")
    sh.title(2, f"Currency {result.currency}. The one unit price table: every variant's Bill of Materials links "
                "here, so editing a price (blue) moves every variant that uses it. A price a what-if overrides is "
                "its own row. System prices are formulas. Prices are dated estimates, not quotes.", NOTE)
    sh.header(PRICES_HEADER_ROW, ["Item", "Kind", "Unit", "Value", "Used by variants", "Basis", "Price date",
                                  "Source"])
    kinds = {"chassis": "Server chassis", "system-base": "System base", "gpu": "GPU", "system": "Server system",
             "quote": "Quote item", "fraction": "Quote item", "input": "Input"}
    order = ["chassis", "system-base", "gpu", "system", "quote", "fraction", "input"]
    # by kind and name; the inputs in the order they are listed (sorted() is stable)
    keys = sorted(prices.entries, key=lambda k: (order.index(k[0]), str(k[1]) if k[0] != "input" else ""))
    row = PRICES_HEADER_ROW
    inputs_heading = 0
    for key in keys:  # rows first: system formulas refer to rows of their own table
        if key[0] == "input" and not inputs_heading:
            row += 2
            inputs_heading = row
        row += 1
        prices.entries[key].row = row
    if inputs_heading:
        sh.put(inputs_heading, 1, "Shared inputs (the Comparison's formulas and every BOM link here)", font=BOLD,
               width=False)
    for key in keys:
        e = prices.entries[key]
        r = e.row
        sh.put(r, 1, e.label, wrap=True, cap=44)
        sh.put(r, 2, kinds[key[0]])
        sh.put(r, 3, e.unit, wrap=True, cap=22)
        if e.value is None:  # a system: base + n x GPU
            _, _, bkey, gkey, n = key
            value: Any = f"={prices.ref(bkey)}+{n}*{prices.ref(gkey)}"
        else:
            value = e.value
        sh.put(r, PRICE_COL, value, e.fmt, shown=e.shown,
               font=INPUT_FONT if e.is_input else None, fill=INPUT_FILL if e.is_input else None)
        sh.put(r, 5, ", ".join(str(u + 1) for u in sorted(e.users))
               if len(e.users) < n_plans else "all", wrap=True, cap=16)
        sh.put(r, 6, e.basis, wrap=True, cap=30)
        if e.as_of is not None:
            sh.put(r, 7, e.as_of, FMT_DATE)
        sh.put(r, 8, e.source, wrap=True, cap=30)
    sh.finish(header_row=PRICES_HEADER_ROW, footer=f"procure — {result.scenario} — prices")


# ------------------------------------------------------------------------------------------------
# The workbook
# ------------------------------------------------------------------------------------------------


def _redirect(wb: Workbook, name: str, target: str) -> None:
    """Turn the input cell behind defined name ``name`` into a link to ``target`` (a shared input)."""
    dn = wb.defined_names.get(name)
    if dn is None:
        return
    for title, coord in dn.destinations:
        cell = wb[title][coord.replace("$", "")]
        cell.value = f"={target}"
        cell.font = Font()
        cell.fill = PatternFill()


@dataclass
class _Metric:
    key: str
    label: str
    unit: str
    values: Callable[[dict[str, int]], list[Any]] | list[Any]
    fmt: str | None = None
    bold: bool = False
    wrap: bool = False
    shown: list[Any] | None = None
    fmts: list[str | None] | None = None


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
    sym = currency_symbol(cur).strip()
    variants = result.variants
    titles = bom_sheet_titles(variants)
    scen = {i: scenarios[i] if scenarios is not None else variant_scenario(rs, variants[i]) for i in titles}
    prices = _Prices(money)
    links = {i: _collect(prices, i, variants[i].plan, scen[i]) for i in titles}  # type: ignore[arg-type]
    _write_prices(wb, prices, result, len(titles))
    prefix = {i: f"Variant{i + 1}_" for i in titles}
    for i, title in titles.items():
        v = variants[i]
        assert v.plan is not None
        refs = Refs()
        p = prefix[i]
        for key, entry in links[i].servers.items():
            refs.price[key] = prices.ref(entry)
        for n, (entry, is_fraction) in links[i].quote.items():
            refs.price[price_key("quote", str(n))] = (f"{prices.ref(entry)}*{p}BOM_Hardware" if is_fraction
                                                      else prices.ref(entry))
        bom = wb.create_sheet(title)
        write_bom(wb, bom, v.plan, scen[i], refs, sheet=title, prefix=p,
                  title=f"Bill of Materials — {result.scenario} — variant {i + 1}: {v.name}",
                  note=f"Currency {cur}. Unit prices link to the Prices sheet (one table shared by every variant; "
                       "dated estimates, not quotes, unless a scenario or what-if value); extended prices and "
                       "totals are formulas. Contingency and tax link to the Prices sheet's shared inputs; the "
                       "Comparison sheet's capex follows this sheet's subtotal.",
                  local_inputs=True)
        _redirect(wb, f"{p}Contingency_Pct", prices.ref(links[i].inputs["contingency"]))
        _redirect(wb, f"{p}Tax_Pct", prices.ref(links[i].inputs["tax"]))

    sh = Sheet(ws)
    sweep = result.sweep_group
    members = [i for i, v in enumerate(variants) if v.plan is not None and v.group == sweep]
    rule = recommendation_rule(len(members), COVERAGE_TOLERANCE)
    picked = result.recommended or "none qualifies"
    sh.title(1, f"What-if comparison — {result.scenario}")
    sh.title(2, f"Recommended: {picked} — {rule}. One column per variant, by budget. Capex is servers plus "
                "quote lines (support, storage, network), linked to each variant's Bill of Materials, whose unit "
                "prices link to the one Prices sheet; the budget bounds capex with contingency and tax. Served "
                "demand is the priority-weighted share the plan serves. Prices are dated estimates, not quotes.",
             NOTE)
    sh.header(HEADER_ROW, ["Metric", "Unit", *(v.name for v in variants)])
    n_var = len(variants)
    last_letter = get_column_letter(FIRST_COL + n_var - 1)

    def L(i: int) -> str:
        return get_column_letter(FIRST_COL + i)

    def per(fn: Callable[[int, VariantResult], Any]) -> list[Any]:
        return [fn(i, v) for i, v in enumerate(variants)]

    def inp(i: int, name: str) -> str:
        return prices.ref(links[i].inputs[name])

    specs: list[_Metric | str] = []

    def metric(*args: Any, **kw: Any) -> None:
        specs.append(_Metric(*args, **kw))

    metric("origin", "Variant from", "", per(lambda i, v: ORIGINS[v.origin]), wrap=True)
    metric("overrides", "Overrides", "", per(lambda i, v: _overrides(v)), wrap=True)
    metric("budget", "Budget (cap on capex with contingency and tax)", cur, per(lambda i, v: v.budget), money)
    metric("budget_from", "Budget set by", "", per(lambda i, v: None if v.budget is None else
                                                   "this variant" if own_budget(v) else "the scenario (constraints)"),
           wrap=True)
    metric("status", "Plan status", "", per(lambda i, v: v.status))
    metric("objective", "Objective used", "", per(lambda i, v: None if v.objective is None else
                                                  f"{v.objective}: budget binds, most demand it buys"
                                                  if v.budget_binds else f"{v.objective}: all demand served"),
           wrap=True)
    metric("full", "Cheapest plan serving all demand (capex, no cap)", cur,
           per(lambda i, v: v.full_demand_capex), money)

    specs.append("Cost")
    metric("hardware", "Servers (systems, chassis, GPU cards)", cur,
           per(lambda i, v: f"={prefix[i]}BOM_Hardware" if i in titles else None), money,
           shown=per(lambda i, v: v.hardware_capex))
    metric("capex", "Capex: servers + quote lines (BOM subtotal)", cur,
           per(lambda i, v: f"={prefix[i]}BOM_Subtotal" if i in titles else None), money, bold=True,
           shown=per(lambda i, v: v.capex))
    metric("total", "Capex with contingency and tax (what the budget bounds)", cur,
           per(lambda i, v: f"={prefix[i]}BOM_Grand_Total" if i in titles else None), money,
           shown=per(lambda i, v: v.total_with_tax))
    metric("left", "Budget left (budget less capex with contingency and tax)", cur,
           lambda rows: per(lambda i, v: f"={L(i)}{rows['budget']}-{L(i)}{rows['total']}"
                            if own_budget(v) and i in titles else None), money, shown=per(lambda i, v: v.budget))

    def formula_or_figure(cell: Callable[[int, Plan, dict[str, int]], tuple[str, float, float]]
                          ) -> Callable[[dict[str, int]], list[Any]]:
        """Per planned variant: the live formula when it reproduces the plan's figure (model ≈ figure),
        else the figure itself; ``cell`` gives (formula, model value, the plan's figure)."""
        def make(rows: dict[str, int]) -> list[Any]:
            out: list[Any] = []
            for i, v in enumerate(variants):
                if i not in titles or v.plan is None:
                    out.append(None)
                    continue
                formula, model, figure = cell(i, v.plan, rows)
                out.append(formula if math.isclose(model, figure, rel_tol=1e-9, abs_tol=0.005) else figure)
            return out
        return make

    def energy(i: int, plan: Plan, rows: dict[str, int]) -> tuple[str, float, float]:
        sc = scen[i].scenario
        model = plan.power_kw * sc.site.pue * HOURS_PER_YEAR * sc.horizon_years * sc.site.electricity_per_kwh
        return (f"={L(i)}{rows['power']}*{inp(i, 'pue')}*{HOURS_PER_YEAR:g}*{inp(i, 'horizon')}"
                f"*{inp(i, 'electricity')}", model, plan.energy_cost)

    def opex(i: int, plan: Plan, rows: dict[str, int]) -> tuple[str, float, float]:
        frac = prices.entries[links[i].inputs["opex"]].shown
        model = frac * plan.hardware_capex * scen[i].scenario.horizon_years
        return f"={inp(i, 'opex')}*{prefix[i]}BOM_Hardware*{inp(i, 'horizon')}", model, plan.opex_cost

    metric("energy", f"Energy over {result.horizon_years:g} years (IT kW x PUE x 8,760 h x years x price)", cur,
           formula_or_figure(energy), money, shown=per(lambda i, v: v.plan.energy_cost if v.plan else None))
    metric("opex", f"Yearly opex over {result.horizon_years:g} years (support not quoted as BOM lines)", cur,
           formula_or_figure(opex), money, shown=per(lambda i, v: v.plan.opex_cost if v.plan else None))
    metric("tco", f"TCO over {result.horizon_years:g} years (capex + energy + opex)", cur,
           lambda rows: per(lambda i, v: f"={L(i)}{rows['capex']}+{L(i)}{rows['energy']}+{L(i)}{rows['opex']}"
                            if i in titles else None), money, bold=True, shown=per(lambda i, v: v.tco))

    specs.append("Demand served")
    metric("served", "Served demand, priority-weighted", "%", per(lambda i, v: v.served_fraction), FMT_PCT,
           bold=True)
    metric("requests", "Requests served (share of req/s)", "%", per(lambda i, v: v.served_requests_fraction),
           FMT_PCT)
    for w in result.workloads:
        metric(f"w:{w}", f"{w} (priority {result.priorities.get(w, 1.0):g})", "%",
               [v.served_by_workload.get(w) if v.plan is not None else None for v in variants], FMT_PCT)

    specs.append("Recommendation (the knee)")
    metric("tolerance", "Tolerance below full coverage (input)", "points", [COVERAGE_TOLERANCE] + [None] * (n_var - 1),
           FMT_PCT)
    metric("qualifies", "Capex, where a variant of the sweep serves within the tolerance of full coverage", cur,
           lambda rows: per(lambda i, v: f'=IF({L(i)}{rows["served"]}>=1-$C${rows["tolerance"]}-0.000000001,'
                                         f'{L(i)}{rows["capex"]},"")' if i in members and i in titles else None),
           money, shown=per(lambda i, v: v.capex))
    metric("recommended", "Recommended variant (the knee: the cheapest capex in the row above; ties: lower budget)",
           "", lambda rows: [f'=IFERROR(INDEX($C${HEADER_ROW}:${last_letter}${HEADER_ROW},MATCH(MIN('
                             f'$C${rows["qualifies"]}:${last_letter}${rows["qualifies"]}),$C${rows["qualifies"]}:'
                             f'${last_letter}${rows["qualifies"]},0)),"none qualifies")'] + [None] * (n_var - 1),
           bold=True, wrap=True, shown=[picked] + [None] * (n_var - 1))
    metric("marker", "Recommended", "", lambda rows: per(
        lambda i, v: f'=IF({L(i)}${HEADER_ROW}=$C${rows["recommended"]},"{RECOMMENDED_MARK}","")'
        if i in titles else None), shown=per(lambda i, v: RECOMMENDED_MARK))

    specs.append("Marginal value, on capex actually spent")
    names = [v.name for v in variants]

    def marginal_rows(kind: str) -> Callable[[dict[str, int]], list[Any]]:
        def make(rows: dict[str, int]) -> list[Any]:
            out: list[Any] = []
            s, c = rows["served"], rows["capex"]
            for i, v in enumerate(variants):
                value = v.marginal_points_per_million if kind == "points" else v.marginal_cost_per_point
                if v.marginal_next is None or value is None or v.marginal_next not in names:
                    out.append(None)
                    continue
                a, b = L(i), L(names.index(v.marginal_next))
                spent, gained = f"({b}{c}-{a}{c})", f"({b}{s}-{a}{s})"
                out.append(f'=IF({spent}>0,{gained}*100/({spent}/1000000),"")' if kind == "points" else
                           f'=IF(AND({spent}>0,{gained}>0),{spent}/({gained}*100),"")')
            return out
        return make

    metric("marginal", "Served-demand points per extra million of capex spent, to the next budget point",
           f"points per {sym}1M", marginal_rows("points"), FMT_2,
           shown=per(lambda i, v: v.marginal_points_per_million))
    metric("cost_per_point", "Extra capex per served-demand point, to the next budget point", f"{cur} per point",
           marginal_rows("cost"), money, shown=per(lambda i, v: v.marginal_cost_per_point))
    metric("next", "Next budget point", "", per(lambda i, v: v.marginal_next), wrap=True)

    specs.append("Hardware and power")
    gpu_types = sorted({g for v in variants for g in v.gpus_by_type})
    for g in gpu_types:
        metric(f"g:{g}", f"GPUs: {g}", "GPUs",
               [v.gpus_by_type.get(g, 0) if v.plan is not None else None for v in variants], FMT_INT)
    metric("servers", "Servers", "servers", per(lambda i, v: v.servers), FMT_INT)
    metric("power", "IT power at full load", "kW", per(lambda i, v: v.power_kw), FMT_1)
    metric("facility", "Facility power (IT x PUE)", "kW",
           lambda rows: per(lambda i, v: f"={L(i)}{rows['power']}*{inp(i, 'pue')}" if i in titles else None), FMT_1,
           shown=per(lambda i, v: v.facility_power_kw))

    specs.append("Solver")
    metric("gap", "Relative gap", "%", per(lambda i, v: v.gap), "0.00%")
    metric("time", "Solve time", "s", per(lambda i, v: v.solve_time_s), FMT_2)
    metric("bom", "Bill of Materials sheet", "", [titles.get(i) for i in range(n_var)], wrap=True)
    metric("reason", "Reason (no plan) and notes", "",
           per(lambda i, v: "\n".join(x for x in [v.reason, *v.notes] if x) or None), wrap=True)

    # lay the rows out first (formulas refer to rows further down), then write them
    rows: dict[str, int] = {}
    row = HEADER_ROW
    for spec in specs:
        row += 2 if isinstance(spec, str) else 1
        if isinstance(spec, _Metric):
            rows[spec.key] = row
    row = HEADER_ROW
    for spec in specs:
        if isinstance(spec, str):
            row += 2
            sh.put(row, 1, spec, font=SECTION, width=False)
            continue
        row += 1
        m = spec
        sh.put(row, 1, m.label, font=BOLD if m.bold else None, wrap=True, cap=44)
        sh.put(row, 2, m.unit, wrap=True, cap=20)
        if m.key == "tolerance":
            sh.put(row, FIRST_COL, COVERAGE_TOLERANCE, FMT_PCT, font=INPUT_FONT, fill=INPUT_FILL, align="right")
            continue
        values = m.values(rows) if callable(m.values) else m.values
        for i, value in enumerate(values):
            if value is None:
                continue
            sh.put(row, FIRST_COL + i, value, m.fmt, font=BOLD if m.bold else None, wrap=m.wrap, cap=30,
                   shown=m.shown[i] if m.shown else None, align="right" if not m.wrap else None)
    row = _chart_data(sh, ws, result, rows, row, titles, members, money, L)
    sh.finish(header_row=HEADER_ROW, footer=f"procure — {result.scenario} — what-if comparison")
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=FIRST_COL)
    wb.active = 0
    wb.calculation.fullCalcOnLoad = True
    wb.properties.title = f"What-if comparison — {result.scenario}"
    wb.properties.creator = f"procure {__version__}"
    return wb


CHART_SERIES = ("Budget sweep", "What-ifs", "Full coverage (first sweep point serving all demand)",
                "Recommended (the knee)")


def _chart_data(sh: Sheet, ws: Any, result: Comparison, rows: dict[str, int], row: int, titles: dict[int, str],
                members: list[int], money: str, L: Callable[[int], str]) -> int:
    """The chart's data below the table (blocks per series, linked to the table) and the chart."""
    variants = result.variants
    cur = result.currency
    with_budget = [i for i in titles if variants[i].budget is not None]
    sweep = sorted((i for i in with_budget if i in members and own_budget(variants[i])),
                   key=lambda i: (variants[i].budget or 0.0, i))
    others = sorted((i for i in with_budget if i not in sweep), key=lambda i: (variants[i].budget or 0.0, i))
    full = next((i for i in sweep if (variants[i].served_fraction or 0.0) >= 1 - 1e-9), None)
    rec = next((i for i in sweep if variants[i].recommended), None)
    blocks = [(CHART_SERIES[0], sweep), (CHART_SERIES[1], others),
              (CHART_SERIES[2], [full] if full is not None else []),
              (CHART_SERIES[3], [rec] if rec is not None else [])]
    row += 2
    sh.put(row, 1, "Chart data: served demand and capex by budget (links to the table above; the budget is the "
                   "one in force, the scenario's for a what-if that sets none)", font=SECTION, width=False)
    row += 1
    sh.header(row, ["Variant", "Series", f"Budget ({cur})", "Served demand, priority-weighted", f"Capex ({cur})"])
    ranges: list[tuple[str, int, int]] = []
    for name, idx in blocks:
        if not idx:
            continue
        first = row + 1
        for i in idx:
            v = variants[i]
            row += 1
            letter = L(i)
            sh.put(row, 1, f"={letter}{HEADER_ROW}", shown=v.name)
            sh.put(row, 2, name, wrap=True, cap=24)
            sh.put(row, 3, f"={letter}{rows['budget']}", money, shown=v.budget or 0.0)
            sh.put(row, 4, f"={letter}{rows['served']}", FMT_PCT, shown=v.served_fraction)
            sh.put(row, 5, f"={letter}{rows['capex']}", money, shown=v.capex)
        ranges.append((name, first, row))
    no_cap = [variants[i].name for i in titles if variants[i].budget is None]
    row += 2
    sh.title(row, f"procure {__version__}. Served demand never falls as the budget rises within a group of "
                  "variants with the same prices, GPUs and demand (docs/compare.md)."
             + (f" Not charted (no budget cap): {', '.join(no_cap)}." if no_cap else ""), NOTE)
    if ranges:
        _chart(ws, ranges, cur, row + 2)
    return row


def _chart(ws: Any, ranges: list[tuple[str, int, int]], currency: str, anchor_row: int) -> None:
    """Served demand against the budget: a native scatter chart on a numeric budget axis."""
    chart = ScatterChart()
    chart.title = "Served demand by budget"
    chart.style = 13
    chart.scatterStyle = "lineMarker"
    chart.x_axis.title = f"Budget ({currency})"
    chart.x_axis.number_format = "#,##0"
    chart.x_axis.majorGridlines = None
    chart.y_axis.title = "Served demand (priority-weighted)"
    chart.y_axis.number_format = "0%"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 1
    looks = {CHART_SERIES[0]: ("circle", 7, True), CHART_SERIES[1]: ("square", 8, False),
             CHART_SERIES[2]: ("diamond", 13, False), CHART_SERIES[3]: ("triangle", 13, False)}
    for name, first, last in ranges:
        xs = Reference(ws, min_col=3, min_row=first, max_row=last)
        ys = Reference(ws, min_col=4, min_row=first, max_row=last)
        series = Series(ys, xs, title=name)
        symbol, size, line = looks[name]
        series.marker = Marker(symbol=symbol, size=size)
        series.smooth = False
        if not line:
            series.graphicalProperties.line.noFill = True
        chart.series.append(series)
    for ax in (chart.x_axis, chart.y_axis):
        ax.delete = False
    chart_fonts(chart)
    chart.legend.position = "b"
    chart.height = 10.0
    chart.width = 22.0
    ws.add_chart(chart, f"A{anchor_row}")


def write_compare_workbook(result: Comparison, rs: ResolvedScenario, path: Path, *, force: bool = False,
                           scenarios: Sequence[ResolvedScenario] | None = None) -> Path:
    """Write the comparison workbook safely (temporary file + rename); UsageError when it cannot."""
    return save_workbook(build_compare_workbook(result, rs, scenarios), path, force=force)


