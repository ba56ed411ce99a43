"""Why no plan over periods exists: the year or the limit over all years, and by how much.

First each year alone, as one period (``diagnose``'s two layers on that year's scenario and
table): its workloads without any candidate, then the site limits its demand breaks — site power,
racks, availability and max GPU types, each dropped in turn and its resource minimised. The
budget is left out there, since it caps the capex of all years together, and servers already
owned count as bought, so their GPUs are added to that year's availability. A year that has no
plan on its own is named with those sentences.

When every year has a plan on its own, the limits over the years bind: the budget (nominal capex
of every year's purchases, with contingency and tax), availability (GPUs bought over the plan)
and max GPU types (types used in any year). Each is dropped from the multi-period MIP in turn and
its resource minimised; if none explains it alone, all three are dropped together. What is left
is the coupling itself: servers bought stay, so a fleet that serves one year and fits the site may
not grow into one that serves the next. As in ``diagnose``, a figure is quoted only when proven
(or as a proven bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ortools.math_opt.python import mathopt

from optimizer.loaders import ResolvedScenario, inventory_key, resolve_scenario
from optimizer.model.build import limits_of
from optimizer.model.diagnose import (
    PROVEN_GAP,
    Minimum,
    binding_limits,
    feasible,
    minimum_of,
    missing_candidates,
    money_floor,
    money_gap,
    requirement,
)
from optimizer.model.periods import PeriodModel, YearTable, build_period_model, capex_expression
from optimizer.model.solve import SolveSettings, run_solver
from optimizer.schema.scenario import Scenario
from optimizer.units import money_short as money

#: rows of the multi-period MIP that each cumulative limit adds (by name prefix)
_ROWS = {"budget": ("budget",), "availability": ("availability[",), "max GPU types": ("max_gpu_types",)}


def one_period(rs: ResolvedScenario, table: YearTable) -> ResolvedScenario:
    """Year ``table.year`` as a scenario of one period: no budget (it caps all years together), the
    owned servers' GPUs added to availability (the periods MIP caps GPUs bought), objective capex."""
    data = table.rs.scenario.model_dump()
    data.update(periods=None, objective="capex")
    cons = data["constraints"]
    cons["budget"] = None
    names = {g: rs.catalog.gpus[g].name if g in rs.catalog.gpus else g for g in cons["availability"]}
    for item in rs.scenario.inventory:
        sku = table.cands.skus.get(inventory_key(item, rs.catalog))
        for g, name in names.items():
            if sku is not None and name == sku.gpu.name:
                cons["availability"][g] += sku.gpus * item.count
    return resolve_scenario(Scenario.model_validate(data), table.rs.path, rs.catalog)


def period_binding_limits(rs: ResolvedScenario, tables: list[YearTable], settings: SolveSettings) -> list[str]:
    """Sentences naming the year (or the limit over all years) that leaves no plan, and by how much."""
    quick = replace(settings, time_limit_s=max(5.0, settings.time_limit_s / 4), gap=1e-3)
    out: list[str] = []
    for t in tables:
        year = one_period(rs, t)
        missing = missing_candidates(year, t.cands)
        if missing:
            out += [f"year {t.year}: {line}" for line in missing]
            continue
        alone = feasible(year, t.cands, limits_of(year), quick)
        if alone is False:
            out += [f"year {t.year}: {line}" for line in binding_limits(year, t.cands, settings)]
        elif alone is None:
            out.append(f"year {t.year}: whether it has a plan on its own was not decided within the solver's "
                       "limits (raise --time-limit or --node-limit)")
    return out or _over_the_years(rs, tables, settings, quick)


def _over_the_years(rs: ResolvedScenario, tables: list[YearTable], settings: SolveSettings,
                    quick: SolveSettings) -> list[str]:
    """Every year has a plan alone: which limit over all years binds (module docstring)."""
    sc = rs.scenario
    names = [n for n, on in (("budget", sc.constraints.budget is not None),
                             ("availability", bool(sc.constraints.availability)),
                             ("max GPU types", sc.constraints.max_gpu_types is not None)) if on]
    alone = [n for n in names if _period_feasible(rs, tables, {n}, quick)]
    if not alone and (not names or not _period_feasible(rs, tables, set(names), quick)):
        return ["every year has a plan on its own, but no fleet serves every year in turn within the site's "
                "power and racks: servers bought stay (inventory may only be retired), so what serves one "
                "year must grow into what serves the next — raise site.power_kw or site.racks, or allow "
                "cloud instances to carry a year"]
    if alone:
        return [_explain(name, rs, tables, settings, {name}, together=False) for name in alone]
    return ["no single limit explains it; with all of them lifted the plan needs:"] + [
        _explain(name, rs, tables, settings, set(names), together=True) for name in names]


def _period_model(rs: ResolvedScenario, tables: list[YearTable], lifted: set[str]) -> PeriodModel:
    pm = build_period_model(rs, tables)
    prefixes = tuple(p for n in lifted for p in _ROWS[n])
    for row in list(pm.model.linear_constraints()):
        if row.name.startswith(prefixes):
            pm.model.delete_linear_constraint(row)
    return pm


def _period_feasible(rs: ResolvedScenario, tables: list[YearTable], lifted: set[str],
                     settings: SolveSettings) -> bool:
    """Whether a plan over all years was found with the limits ``lifted`` dropped."""
    res, _ = run_solver(_period_model(rs, tables, lifted).model, settings, settings.time_limit_s,
                        node_limit=settings.node_limit)
    return bool(res.has_primal_feasible_solution())


def _minimum(rs: ResolvedScenario, tables: list[YearTable], lifted: set[str], settings: SolveSettings,
             expr: Callable[[PeriodModel], mathopt.LinearExpression], integral: bool = False) -> Minimum | None:
    pm = _period_model(rs, tables, lifted)
    pm.model.minimize(expr(pm))
    res, _ = run_solver(pm.model, replace(settings, gap=PROVEN_GAP), settings.time_limit_s,
                        node_limit=settings.node_limit)
    return minimum_of(res, integral=integral)


def _explain(name: str, rs: ResolvedScenario, tables: list[YearTable], settings: SolveSettings,
             lifted: set[str], *, together: bool) -> str:
    sc = rs.scenario
    cur = sc.currency
    years = len(tables)
    if name == "budget":
        assert sc.constraints.budget is not None
        factor = sc.finance.budget_factor

        def capex(pm: PeriodModel) -> mathopt.LinearExpression:
            return factor * mathopt.fast_sum(capex_expression(pm, y) for y in range(1, pm.years + 1))

        m = _minimum(rs, tables, lifted, settings, capex)
        return requirement("budget", m, sc.constraints.budget, fmt=lambda x: money(x, cur),
                           fmt_floor=lambda x: money_floor(x, cur), fmt_gap=lambda x: money_gap(x, cur),
                           need=f"the least capex over the {years} years (nominal, with contingency and tax) is",
                           against=f"a budget of {money(sc.constraints.budget, cur)}", together=together)
    if name == "availability":
        parts = []
        for gpu, cap in sorted(limits_of(rs).availability.items()):
            def bought(pm: PeriodModel, gpu: str = gpu) -> mathopt.LinearExpression:
                return mathopt.fast_sum(pm.skus[k].gpus * v for (k, _), v in pm.buy.items()
                                        if pm.skus[k].gpu.name == gpu)

            m = _minimum(rs, tables, lifted, settings, bought, integral=True)
            if m is not None and m.value is not None and m.value > cap + 1e-6:
                parts.append(f"{gpu}: {m.value:.0f} bought over the {years} years, only {cap} available")
            elif m is not None and m.value is None and m.bound > cap + 1e-6:
                parts.append(f"{gpu}: at least {m.bound:.0f} bought over the {years} years (minimum not proven "
                             f"within the solver's limits), only {cap} available")
        return "availability: " + ("; ".join(parts) or "binds only together with the other limits")
    assert sc.constraints.max_gpu_types is not None
    m = _minimum(rs, tables, lifted, settings, lambda pm: mathopt.fast_sum(pm.z.values()), integral=True)
    limit = sc.constraints.max_gpu_types
    if m is not None and m.value is not None and m.value > limit + 1e-6:
        return f"max GPU types: the {years} years need {m.value:.0f} GPU types in all, the limit is {limit}"
    if m is not None and m.value is None and m.bound > limit + 1e-6:
        return (f"max GPU types: the {years} years need at least {m.bound:.0f} GPU types (minimum not proven "
                f"within the solver's limits), the limit is {limit}")
    return "max GPU types: binds only together with the other limits"
