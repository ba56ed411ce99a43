"""Objectives: capex, Y-year TCO, served demand (coverage), or the hourly price of rented instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ortools.math_opt.python import mathopt

from optimizer.units import HOURS_PER_YEAR

if TYPE_CHECKING:
    from optimizer.model.build import MipModel



def tco_expression(mm: MipModel) -> mathopt.LinearExpression:
    """capex + opex·Y·hardware + Σ_s n[s]·W_s/1000·PUE·8760·Y·price_per_kWh (full-load power: an upper
    bound). capex includes the quote lines (add_quote_costs); opex is the support fraction of the
    servers' price unless support is bought as quote lines (then it is in capex already)."""
    from optimizer import quote

    sc = mm.rs.scenario
    years = sc.horizon_years
    kwh_per_w = sc.site.pue * HOURS_PER_YEAR * years / 1000.0
    assert mm.capex is not None and mm.power_w is not None
    hardware = mathopt.fast_sum(sku.unit_price * mm.n[k] for k, sku in mm.cands.skus.items())
    return (mm.capex + quote.opex_per_year(mm.rs, 1.0) * years * hardware
            + sc.site.electricity_per_kwh * kwh_per_w * mm.power_w)


def hourly_expression(mm: MipModel) -> mathopt.LinearExpression:
    """Σ_s hourly_s·n[s]: what the plan's cloud instances cost per hour, in currency (the loader
    allows only instance types with an hourly price under this objective)."""
    terms = []
    for k, sku in mm.cands.skus.items():
        if sku.hourly_price is None:
            raise ValueError(f"objective hourly: {k} has no hourly price")  # the loader refuses this first
        terms.append(sku.hourly_price * mm.n[k])
    return mathopt.fast_sum(terms)


def coverage_expression(mm: MipModel) -> mathopt.LinearExpression:
    """Σ_w priority_w·y[w] over all workloads (fine-tuning jobs served fully or not at all)."""
    sc = mm.rs.scenario
    return mathopt.fast_sum(getattr(w, "priority", 1.0) * mm.y[w.name] for w in sc.workloads)


#: Most primary cost (currency units) the folded tie-breaks may ever stand for: below any price.
TIE_BREAK_BUDGET = 0.5
#: The same for the hourly objective (currency per hour): hourly prices differ by cents, so the
#: tie-breaks may stand for at most a tenth of a cent per hour.
HOURLY_TIE_BREAK_BUDGET = 1e-3


def tie_break_budget(objective: str) -> float:
    """Most primary cost the folded tie-breaks may stand for under ``objective``."""
    return HOURLY_TIE_BREAK_BUDGET if objective == "hourly" else TIE_BREAK_BUDGET

# Order of the tie-breaks inside their budget: a GPU type weighs as much as 1,000 servers, a server
# as 10,000 kW of power difference, and a GPU in use like 1 W. So the order is fewer types, then
# servers, then less power, then fewer GPUs while a plan's counts stay below those ratios (fewer than
# 1,000 servers; power differences below 10 MW), which covers every catalog-scale plan. The terms
# are worth at most half a currency unit in all, far inside the default relative gap (1e-4), so
# they decide among equally cheap plans the search reaches, not by a search of their own; the
# layouts are then polished on the chosen servers (layout_expression).
TIE_WEIGHTS = {"types": 1e7, "servers": 1e4, "power_kw": 1.0, "gpus_in_use": 1e-3}


def tie_break_expression(mm: MipModel, budget: float = TIE_BREAK_BUDGET) -> mathopt.LinearExpression:
    """The tie-break terms scaled so that their largest possible value is ``budget``
    (:func:`tie_break_budget`).

    Folded into a capex or TCO objective, they can never buy a cheaper tie-break with more than half
    a currency unit of primary cost (if plan A wins with the terms and B is cheaper, then
    cost_A − cost_B ≤ terms_B − terms_A ≤ TIE_BREAK_BUDGET); among plans of equal cost that the
    search reaches they decide in TIE_WEIGHTS' order, with no second solve."""
    assert mm.power_w is not None
    cands = mm.cands
    servers = mathopt.fast_sum(mm.n.values())
    gpus = mathopt.fast_sum(c.gpus_per_replica * mm.r[i] for i, c in enumerate(cands.inference))
    most = (TIE_WEIGHTS["types"] * len(mm.z)
            + TIE_WEIGHTS["servers"] * sum(v.upper_bound for v in mm.n.values())
            + TIE_WEIGHTS["power_kw"] / 1000.0 * sum(s.power_w * mm.n[k].upper_bound for k, s in cands.skus.items())
            + TIE_WEIGHTS["gpus_in_use"] * sum(c.gpus_per_replica * mm.r[i].upper_bound
                                                for i, c in enumerate(cands.inference)))
    scale = budget / max(most, 1.0)
    return scale * (TIE_WEIGHTS["types"] * mathopt.fast_sum(mm.z.values()) + TIE_WEIGHTS["servers"] * servers
                    + TIE_WEIGHTS["power_kw"] / 1000.0 * mm.power_w + TIE_WEIGHTS["gpus_in_use"] * gpus)


def layout_expression(mm: MipModel) -> mathopt.LinearExpression:
    """Lexicographically: GPUs in use, then pipeline stages beyond the first, then servers in later
    racks (each term weighted below one unit of the one before): among layouts on the same servers,
    fewer GPUs (spare slots for growth), fewer PP hops (latency), and servers packed into the
    first racks (Σ_k k·Σ_s a[s,k]; racks are identical, so this only compacts them)."""
    cands = mm.cands
    stages = [(c.pp - 1, i) for i, c in enumerate(cands.inference) if c.pp > 1]
    most_stages = sum(k * mm.r[i].upper_bound for k, i in stages)
    racked = [(k, var) for (_, k), var in sorted(mm.a.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    most_racked = sum(k * var.upper_bound for k, var in racked)
    later = mathopt.fast_sum(k * var for k, var in racked) / (most_racked + 1.0)
    return (mathopt.fast_sum(c.gpus_per_replica * mm.r[i] for i, c in enumerate(cands.inference))
            + (mathopt.fast_sum(k * mm.r[i] for k, i in stages) + later) / (most_stages + 1.0))


def primary_expression(mm: MipModel, objective: str) -> mathopt.LinearExpression:
    """The objective's own cost (capex, TCO or hourly) without the folded tie-breaks."""
    if objective == "hourly":
        return hourly_expression(mm)
    expr = mm.capex if objective == "capex" else mm.tco
    assert expr is not None
    return expr


def set_objective(mm: MipModel, objective: str) -> None:
    mm.tco = tco_expression(mm)
    if objective in ("capex", "tco", "hourly"):
        mm.model.minimize(primary_expression(mm, objective) + tie_break_expression(mm, tie_break_budget(objective)))
    elif objective == "coverage":
        mm.model.maximize(coverage_expression(mm))
    else:
        raise ValueError(f"unknown objective {objective!r}")
