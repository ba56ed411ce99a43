"""Objectives: capex, Y-year TCO, or served demand (coverage)."""

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


def coverage_expression(mm: MipModel) -> mathopt.LinearExpression:
    """Σ_w priority_w·y[w] over all workloads (fine-tuning jobs served fully or not at all)."""
    sc = mm.rs.scenario
    return mathopt.fast_sum(getattr(w, "priority", 1.0) * mm.y[w.name] for w in sc.workloads)


def set_objective(mm: MipModel, objective: str) -> None:
    mm.tco = tco_expression(mm)
    if objective == "capex":
        assert mm.capex is not None
        mm.model.minimize(mm.capex)
    elif objective == "tco":
        mm.model.minimize(mm.tco)
    elif objective == "coverage":
        mm.model.maximize(coverage_expression(mm))
    else:
        raise ValueError(f"unknown objective {objective!r}")
