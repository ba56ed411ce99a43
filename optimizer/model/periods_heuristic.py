"""An incumbent for the multi-period MIP: relax-and-fix over the years.

Stage k = 1..Y solves the model with the integer variables of years after k made continuous and
the purchases (buy, ret, rent) of years before k fixed at the values stage k−1 chose; stage k then
fixes year k's. Stage Y has every variable integer again, so its answer is a plan of the full
model (Dillenberger et al. 1994, "On practical resource allocation for production planning and
scheduling with period overlapping setups", EJOR 75; Pochet & Wolsey, *Production Planning by
Mixed Integer Programming*, Springer 2006). Each stage is a fraction of the full search: one year's
integer decisions against an LP view of the years to come (the exact spread blocks' own
variables, where a re-solve added them, stay integer in every stage: slower, still exact).

On the generated 3-year, 20-workload benchmark (``python benchmarks/periods.py``, idle 2-core
machine) the 60-s solve ended 8.3 % above its bound (NPV 1,394,451) with HiGHS's own heuristics and
ends 3.1 % above it (1,324,897) with this incumbent; the bound, not the plan, is what lags now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ortools.math_opt.python import mathopt

from optimizer.model.periods import PeriodModel
from optimizer.model.solve import SolveSettings, run_solver, stop_of

#: Branch-and-bound nodes per stage (deterministic work: the same incumbent on any machine).
STAGE_NODES = 200
#: Wall-clock guard on all stages together, as a share of the time limit (no stage starts past it).
TIME_SHARE = 0.5


def _purchases(pm: PeriodModel) -> dict[int, list[mathopt.Variable]]:
    """What stage y decides for good, by year: that year's buy, retire and rent starts."""
    out: dict[int, list[mathopt.Variable]] = {y: [] for y in range(1, pm.years + 1)}
    for (_, y), var in [*pm.buy.items(), *pm.ret.items()]:
        out[y].append(var)
    for (_, _, y), var in pm.rent.items():
        out[y].append(var)
    return out


def _by_year(pm: PeriodModel) -> dict[int, list[mathopt.Variable]]:
    """The integer decisions of each year: replicas, fine-tuning groups, spread flags, purchases."""
    out = _purchases(pm)
    for (y, _), var in [*pm.r.items(), *pm.x.items()]:
        out[y].append(var)
    for (_, _, y), var in pm.v.items():
        out[y].append(var)
    return out


@dataclass
class Incumbent:
    """The relax-and-fix plan: every variable's value, its objective, and whether a stage's wall
    clock (not its node limit) ended it, so the plan may differ on a busier machine."""

    values: dict[mathopt.Variable, float]
    objective: float
    clock_decided: bool


def relax_and_fix(pm: PeriodModel, settings: SolveSettings) -> Incumbent | None:
    """A full integer plan of ``pm``, or None with one period (stage 1 would be the full search) or
    when a stage finds no plan within its limits. The model is left as it was (integrality and
    bounds restored, also after an error)."""
    if pm.years < 2:
        return None
    start = time.perf_counter()
    years, purchases = _by_year(pm), _purchases(pm)
    integer = {var for vs in years.values() for var in vs if var.integer}
    bounds = {var: (var.lower_bound, var.upper_bound) for vs in purchases.values() for var in vs}
    res = None
    clock = False
    try:
        for k in range(1, pm.years + 1):
            left = settings.time_limit_s * TIME_SHARE - (time.perf_counter() - start)
            if left <= 0:
                return None
            for y, vs in years.items():
                for var in vs:
                    if var in integer:
                        var.integer = y <= k
            res, _ = run_solver(pm.model, settings, left / (pm.years - k + 1),
                                node_limit=min(STAGE_NODES, settings.node_limit), restarts=True)
            clock = clock or stop_of(res) == "time_limit"
            if not res.has_primal_feasible_solution():
                return None
            if k < pm.years:
                values = res.variable_values()
                for var in purchases[k]:
                    var.lower_bound = var.upper_bound = round(values[var])
    finally:
        for var in integer:
            var.integer = True
        for var, (lo, hi) in bounds.items():
            var.lower_bound, var.upper_bound = lo, hi
    assert res is not None
    values = {v: (round(x) if v.integer else x) for v, x in res.variable_values().items()}
    return Incumbent(values, res.objective_value(), clock)
