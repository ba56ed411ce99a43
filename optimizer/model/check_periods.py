"""Solver-free verifier of a plan over periods: every year re-checked from the scenario alone.

Per year: own = inventory + bought so far − retired (and retired never more than the inventory,
nor un-retired); demand served by that year's deployments (capacity x headroom ≥ planned ≥ demand);
minimum replicas; GPUs in use within the servers owned or rented; site power; racks (a layout of
what is owned in the site's racks); the placement of the last year. Over the plan: prices from
``optimizer.periods``, capex, energy, support, rent, cash out, the NPV recomputed, the budget,
availability and GPU types. Every year's deployments are re-sized from that year's scenario (its
models and demand, ``year_scenario``) with the single-period checker's ``check_deployments``: memory
fit, SLO capacity, per length bucket, measured entries; nothing of the candidate table is trusted.
A violation is a bug: SolverError lists them.
"""

from __future__ import annotations

from collections import defaultdict

from optimizer import periods as per
from optimizer.errors import SolverError
from optimizer.loaders import ResolvedScenario
from optimizer.model.check import check_deployments
from optimizer.model.periods import (
    energy_per_year,
    inventory_counts,
    price_in_year,
    support_per_year,
    year_scenario,
)
from optimizer.model.racks import rack_plan
from optimizer.schema.plan import Plan
from optimizer.sizing.candidates import ServerSku, server_power_w, server_skus
from optimizer.units import HOURS_PER_YEAR

REL = 1e-6


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(1.0, abs(a), abs(b))


def _skus(rs: ResolvedScenario, plan: Plan) -> dict[str, ServerSku]:
    """Every SKU the plan names, priced from the catalog (inventory SKUs included)."""
    return dict(server_skus(year_scenario(rs, 1)))


def check_periods(plan: Plan, rs: ResolvedScenario) -> list[str]:
    """The checks that passed, one line each; SolverError listing every failure."""
    sc = rs.scenario
    assert sc.periods is not None and plan.periods is not None
    skus = _skus(rs, plan)
    inv = inventory_counts(rs)
    errors: list[str] = []
    passed: list[str] = []
    if len(plan.periods) != sc.periods.years:
        errors.append(f"{len(plan.periods)} periods for {sc.periods.years} years")
    bought: dict[str, int] = defaultdict(int)
    retired: dict[str, int] = defaultdict(int)
    types: set[str] = set()
    site = sc.site
    for p in plan.periods:
        y = p.year
        for line in p.buy:
            bought[line.sku] += line.count
            if not _close(p.unit_prices[line.sku], price_in_year(rs, skus[line.sku], y)):
                errors.append(f"year {y}: {line.sku} priced {p.unit_prices[line.sku]:g}, "
                              f"expected {price_in_year(rs, skus[line.sku], y):g}")
        for line in p.retire:
            retired[line.sku] += line.count
            if retired[line.sku] > inv.get(line.sku, 0):
                errors.append(f"year {y}: {retired[line.sku]} x {line.sku} retired of {inv.get(line.sku, 0)} owned")
        expect = {k: inv.get(k, 0) - retired[k] + bought[k] for k in set(inv) | set(bought)}
        own = {line.sku: line.count for line in p.own}
        if {k: n for k, n in expect.items() if n} != own:
            errors.append(f"year {y}: owned {own} is not inventory + bought − retired {expect}")
        rented: dict[str, int] = defaultdict(int)
        for r in p.rent:
            rented[r.instance] += r.count
            if not _close(r.gpu_hours, r.count * skus[r.instance].gpus * HOURS_PER_YEAR):
                errors.append(f"year {y}: {r.instance} GPU-hours {r.gpu_hours:g}")
            if r.option == "on-demand" and not _close(r.hourly_price, price_in_year(rs, skus[r.instance], y)):
                errors.append(f"year {y}: {r.instance} at {r.hourly_price:g}/h, expected "
                              f"{price_in_year(rs, skus[r.instance], y):g}")
        fleet = {**own, **rented}
        types |= {skus[k].gpu.name for k, n in fleet.items() if n}
        # demand, replicas, packing
        served: dict[str, float] = defaultdict(float)
        replicas: dict[str, int] = defaultdict(int)
        used: dict[str, int] = defaultdict(int)
        for d in p.deployments:
            if d.planned_rps > d.replicas * d.capacity_rps * sc.headroom * (1 + REL):
                errors.append(f"year {y}: {d.workload} on {d.sku} planned {d.planned_rps:g} req/s over its capacity")
            served[d.workload] += d.planned_rps
            replicas[d.workload] += d.replicas
            used[d.sku] += d.replicas * d.gpus_per_replica
        # re-size this year's deployments from this year's models and rates (nothing trusted)
        ry = year_scenario(rs, y)

        def require(ok: bool, what: str, detail: str, y: int = y) -> None:
            if not ok:
                errors.append(f"year {y}: {what}: {detail}")

        for d in p.deployments:
            if d.sku not in skus or skus[d.sku].gpu.name != d.gpu:
                errors.append(f"year {y}: {d.workload} on {d.sku} names GPU {d.gpu}")
            model = ry.models[d.workload].name if d.workload in ry.models else None
            if d.model != model:
                errors.append(f"year {y}: {d.workload} serves {d.model}, the year's model is {model}")
        _, routed, _ = check_deployments(ry, p.deployments, require)
        year_workloads = ry.scenario.inference_workloads()
        workloads = sc.inference_workloads()
        for name, w in workloads.items():
            want = per.demand_by_year(w, sc.periods.years)[y - 1]
            mix = year_workloads[name].buckets()
            if len(mix) > 1:
                short = [f"{i_tok}/{o_tok}" for i_tok, o_tok, share in mix
                         if routed.get((name, i_tok, o_tok), 0.0) < want * share * (1 - REL)]
                if short:
                    errors.append(f"year {y}: {name} length buckets {', '.join(short)} short of their share")
            if not _close(p.demand_rps[name], want):
                errors.append(f"year {y}: {name} demand {p.demand_rps[name]:g}, expected {want:g}")
            if served[name] < want * (1 - REL):
                errors.append(f"year {y}: {name} served {served[name]:.3f} < {want:g} req/s")
            if replicas[name] < w.min_replicas:
                errors.append(f"year {y}: {name} has {replicas[name]} replicas < min_replicas {w.min_replicas}")
        for k, in_use in used.items():
            if in_use > skus[k].gpus * fleet.get(k, 0):
                errors.append(f"year {y}: {in_use} GPUs in use on {k}, {fleet.get(k, 0)} servers")
        watts = sum(server_power_w(skus[k].chassis, skus[k].gpu, skus[k].gpus) * n for k, n in own.items())
        if watts * site.pue > site.power_kw * 1000.0 * (1 + REL):
            errors.append(f"year {y}: {watts * site.pue / 1000:.1f} kW > site power {site.power_kw:g} kW")
        if own and rack_plan(own, skus, site.rack_power_kw, site.rack_units, site.racks) is None:
            errors.append(f"year {y}: {own} fits no layout in {site.racks} racks")
        # money
        capex = sum(price_in_year(rs, skus[line.sku], y) * line.count for line in p.buy)
        energy = sum(energy_per_year(rs, skus[k]) * n for k, n in own.items())
        support = sum(support_per_year(rs, skus[k]) * n for k, n in own.items())
        rent = sum(r.hourly_price * HOURS_PER_YEAR * r.count for r in p.rent)
        for label, got, want in (("capex", p.capex, capex), ("energy", p.energy, energy),
                                 ("support", p.support, support), ("rent", p.rent_cost, rent),
                                 ("cash out", p.cash_out, capex + energy + support + rent)):
            if not _close(got, want):
                errors.append(f"year {y}: {label} {got:,.2f}, recomputed {want:,.2f}")
    rate = per.discount_rate(sc)
    # a committed term past the horizon is owed too: each rent line starting in year t covers its term
    npv = sum(per.discount_factor(rate, p.year) * (p.capex + p.energy + p.support) for p in plan.periods)
    terms = {(r.instance, r.option, r.start_year): r for p in plan.periods for r in p.rent}
    for (_, _, start), r in sorted(terms.items()):  # a term is owed in full, past the horizon too
        npv += sum(per.discount_factor(rate, start + k) for k in range(r.term_years)) * r.cost
    if plan.npv is None or not _close(plan.npv, npv):
        errors.append(f"npv {plan.npv}, recomputed {npv:,.2f}")
    capex_total = sum(p.capex for p in plan.periods)
    if not _close(plan.capex, capex_total):
        errors.append(f"capex {plan.capex:,.2f} is not the periods' sum {capex_total:,.2f}")
    budget = sc.constraints.budget
    if budget is not None and capex_total * sc.finance.budget_factor > budget * (1 + REL):
        errors.append(f"capex {capex_total:,.0f} (with contingency and tax) over budget {budget:,.0f}")
    for g, cap in sc.constraints.availability.items():
        name = rs.catalog.gpus[g].name if g in rs.catalog.gpus else g
        got = sum(skus[k].gpus * n for k, n in bought.items() if skus[k].gpu.name == name)
        if got > cap:
            errors.append(f"{got} {name} bought > availability {cap}")
    limit = sc.constraints.max_gpu_types
    if limit is not None and len(types) > limit:
        errors.append(f"{len(types)} GPU types used > max_gpu_types {limit}")
    if errors:
        raise SolverError("plan over periods failed its checks:\n  " + "\n  ".join(errors))
    passed.append(f"{len(plan.periods)} periods: deployments re-sized from each year's scenario (memory fit, "
                  "SLO capacity, length buckets); own = inventory + bought - retired, demand, replicas, "
                  "GPU packing, site power, racks, prices")
    passed.append(f"NPV {npv:,.2f} recomputed at {rate:.2%}; capex {capex_total:,.2f} within the budget")
    return passed
