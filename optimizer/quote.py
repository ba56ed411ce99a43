"""Quote lines besides the servers: network, storage, racks, shipping, support (catalogs/quote_items.yaml).

Pure functions of the scenario, the catalog and a plan's servers, multi-server groups and racks. The
MIP (``optimizer.model.constraints.add_budget``) prices the same lines through ``QuoteTerms``, the
coefficients these functions use, so the plan the MIP accepts and the lines extracted from it agree:

- per server of SKU s (linear in n[s]): support years x fraction x price_s, fraction_of_hardware x
  price_s, per_server items;
- per server in a multi-server group (linear in r[c] / x[f]): PCIe NICs, one link per scale-out port;
- switches: ceil(scale-out ports / per) (an integer variable in the MIP);
- racks: racks used x per_rack items (a lower bound in the MIP, see add_budget);
- storage: a constant once any server is bought (weights and datasets do not depend on the purchase).

A scale-out group is a replica whose pipeline spans servers (cross-server PP) or a fine-tuning job
given more GPUs than one server holds. A plan without one carries no network lines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from optimizer.loaders import ResolvedScenario
from optimizer.schema.catalog import QuoteItem, price_stale
from optimizer.schema.plan import Deployment, FinetuneAssignment, QuoteLine, ServerLine
from optimizer.sizing.architecture import param_counts, parse_config

BYTES_PER_PARAM_STORED = 2      # checkpoints as published (bf16/fp16)
BYTES_PER_DATASET_TOKEN = 4     # tokenised as int32 (raw text is ~4 characters per token too)

_UNITS = {"per_scaleout_gpu": "NIC", "per_scaleout_port": "link", "per_switch_ports": "switch", "per_tb": "TB",
          "per_rack": "unit", "per_server": "server", "fraction_of_hardware": "lot",
          "fraction_of_hardware_per_year": "support year"}


def enabled(rs: ResolvedScenario, item: QuoteItem) -> bool:
    """Whether the quote buys ``item``: never under ``objective: hourly``, whose plan rents cloud
    instances (their hourly price covers the provider's network, storage, racks and support)."""
    if rs.scenario.objective == "hourly":
        return False
    q, site = rs.scenario.quote, rs.scenario.site
    return {"network": q.network, "storage": q.storage, "rack": q.racks_bought(site),
            "shipping": q.shipping_installation, "support": q.support}[item.category]


def items(rs: ResolvedScenario) -> list[QuoteItem]:
    """The catalog's quote items this scenario switches on, in catalog order."""
    return [i for i in rs.catalog.quote_items.values() if enabled(rs, i)]


def support_in_capex(rs: ResolvedScenario) -> bool:
    """Whether support is bought as quote lines (capex); else opex_per_year_fraction is yearly opex."""
    return any(i.category == "support" for i in items(rs))


def opex_per_year(rs: ResolvedScenario, hardware: float) -> float:
    """Yearly opex besides energy: the support fraction of the servers' price, unless bought as lines."""
    return 0.0 if support_in_capex(rs) else rs.scenario.opex_per_year_fraction * hardware


def unit_price(rs: ResolvedScenario, item: QuoteItem) -> float:
    """Scenario override (currency) or the catalog estimate converted; for fraction rules, the fraction."""
    sc = rs.scenario
    if item.fraction is not None:
        for key, value in sc.quote.fractions.items():
            if key.lower() == item.name.lower():
                return value
        if item.category == "support" and sc.opex_per_year_fraction > 0:
            return sc.opex_per_year_fraction
        return item.fraction.fraction
    assert item.price is not None
    for key, value in sc.quote.prices.items():
        if key.lower() == item.name.lower():
            return value
    return item.price.usd * sc.usd_rate


def support_years(rs: ResolvedScenario) -> int:
    sc = rs.scenario
    return sc.quote.support_years or max(1, math.ceil(sc.horizon_years - 1e-9))


def storage_tb(rs: ResolvedScenario) -> float:
    """TB of the distinct models' stored weights plus the fine-tuning datasets."""
    total = 0.0
    seen: set[str] = set()
    for w in rs.scenario.workloads:
        model = rs.models[w.name]
        if model.name not in seen:
            seen.add(model.name)
            total += param_counts(parse_config(model.config, model.name)).total * BYTES_PER_PARAM_STORED
    for job in rs.scenario.finetune_workloads().values():
        total += job.dataset_tokens * BYTES_PER_DATASET_TOKEN
    return total / 1e12


def nics_per_gpu(rs: ResolvedScenario) -> float:
    """Scale-out NICs per GPU on a PCIe server (the catalog's per_scaleout_gpu item; 1 without one)."""
    nic = next((i for i in items(rs) if i.rule == "per_scaleout_gpu"), None)
    return nic.per if nic is not None else 1.0


def ports_per_server(rs: ResolvedScenario, integrated: bool, gpus: int) -> int:
    """Scale-out ports of one server: one per GPU on an integrated system, one per NIC otherwise."""
    return gpus if integrated else math.ceil(nics_per_gpu(rs) * gpus - 1e-9)


@dataclass
class QuoteTerms:
    """The quote lines as coefficients of the MIP's variables (currency)."""

    per_server: dict[str, float] = field(default_factory=dict)          # sku -> per server bought
    per_scaleout_server: dict[str, float] = field(default_factory=dict)  # sku -> per server in a group
    ports_per_scaleout_server: dict[str, int] = field(default_factory=dict)
    switch_price: float = 0.0
    ports_per_switch: float = 0.0
    per_rack: float = 0.0
    constant: float = 0.0


def terms(rs: ResolvedScenario, skus: Iterable[tuple[str, float, bool, int]]) -> QuoteTerms:
    """Coefficients for SKUs given as (key, unit price, integrated, GPUs per server)."""
    out = QuoteTerms()
    live = items(rs)
    years = support_years(rs)
    for key, price, integrated, gpus in skus:
        per = 0.0
        per_so = 0.0
        ports = ports_per_server(rs, integrated, gpus)
        for it in live:
            p = unit_price(rs, it)
            if it.rule == "fraction_of_hardware_per_year":
                per += years * p * price
            elif it.rule == "fraction_of_hardware":
                per += p * price
            elif it.rule == "per_server":
                per += it.per * p
            elif it.rule == "per_scaleout_gpu" and not integrated:
                per_so += math.ceil(it.per * gpus - 1e-9) * p
            elif it.rule == "per_scaleout_port":
                per_so += it.per * ports * p
        out.per_server[key] = per
        out.per_scaleout_server[key] = per_so
        out.ports_per_scaleout_server[key] = ports
    for it in live:
        if it.rule == "per_switch_ports":
            out.switch_price += unit_price(rs, it)
            out.ports_per_switch = it.per  # one switch item is catalogued; the last wins
        elif it.rule == "per_rack":
            out.per_rack += it.per * unit_price(rs, it)
        elif it.rule == "per_tb":
            out.constant += math.ceil(it.per * storage_tb(rs) - 1e-9) * unit_price(rs, it)
    return out


def scaleout_servers(servers: list[ServerLine], deployments: list[Deployment],
                     finetunes: list[FinetuneAssignment]) -> dict[str, int]:
    """Servers of each SKU that belong to a multi-server group (cross-server PP, fine-tuning)."""
    per = {s.sku: s.gpus_per_server for s in servers}
    out: dict[str, int] = {}
    for d in deployments:
        if d.gpus_per_replica > per[d.sku]:
            out[d.sku] = out.get(d.sku, 0) + d.replicas * (d.gpus_per_replica // per[d.sku])
    for f in finetunes:
        if f.gpus > per[f.sku]:
            out[f.sku] = out.get(f.sku, 0) + f.gpus // per[f.sku]
    return out


def _line(rs: ResolvedScenario, it: QuoteItem, quantity: float, unit_cost: float, basis: str,
          today: date) -> QuoteLine:
    est = it.price or it.fraction
    assert est is not None
    return QuoteLine(item=it.name, category=it.category, vendor=it.vendor, description=it.description,
                     part_number=it.part_number, quantity=quantity, unit=_UNITS[it.rule], unit_price=unit_cost,
                     extended_price=quantity * unit_cost, price_date=est.as_of, source=est.source,
                     confidence=it.confidence, stale=price_stale(est.as_of, today), basis=basis)


def quote_lines(rs: ResolvedScenario, servers: list[ServerLine], deployments: list[Deployment],
                finetunes: list[FinetuneAssignment], racks_used: int,
                today: date | None = None) -> list[QuoteLine]:
    """The plan's quote lines (zero-quantity lines left out)."""
    today = today or date.today()
    hardware = sum(s.unit_price * s.count for s in servers)
    n_servers = sum(s.count for s in servers)
    so = scaleout_servers(servers, deployments, finetunes)
    by_sku = {s.sku: s for s in servers}
    ports = sum(n * ports_per_server(rs, by_sku[k].integrated, by_sku[k].gpus_per_server) for k, n in so.items())
    out: list[QuoteLine] = []
    for it in items(rs):
        p = unit_price(rs, it)
        if it.rule == "fraction_of_hardware_per_year":
            years = support_years(rs)
            out.append(_line(rs, it, years, p * hardware, f"{p:.1%} of servers' price a year x {years} years", today))
        elif it.rule == "fraction_of_hardware":
            out.append(_line(rs, it, 1, p * hardware, f"{p:.1%} of servers' price", today))
        elif it.rule == "per_server" and n_servers:
            out.append(_line(rs, it, it.per * n_servers, p, f"{n_servers} servers x {it.per:g}", today))
        elif it.rule == "per_scaleout_gpu":
            nics = sum(n * math.ceil(it.per * by_sku[k].gpus_per_server - 1e-9)
                       for k, n in so.items() if not by_sku[k].integrated)
            if nics:
                out.append(_line(rs, it, nics, p, "NICs of PCIe servers in multi-server groups", today))
        elif it.rule == "per_scaleout_port" and ports:
            out.append(_line(rs, it, it.per * ports, p,
                             f"{ports} scale-out ports on {sum(so.values())} servers in multi-server groups", today))
        elif it.rule == "per_switch_ports" and ports:
            out.append(_line(rs, it, math.ceil(ports / it.per - 1e-9), p,
                             f"ceil({ports} ports / {it.per:g} per switch)", today))
        elif it.rule == "per_rack" and racks_used:
            out.append(_line(rs, it, it.per * racks_used, p, f"{racks_used} racks x {it.per:g}", today))
        elif it.rule == "per_tb" and n_servers:
            tb = storage_tb(rs)
            q = math.ceil(it.per * tb - 1e-9)
            if q:
                out.append(_line(rs, it, q, p, f"{tb:.2f} TB of model weights and datasets", today))
    return out
