"""Solve the purchase MIP with MathOpt (HiGHS; SCIP as fallback) and read back a Plan.

Two stages make ties lexicographic: stage 1 optimises the scenario's objective; stage 2 keeps it
within the stage-1 result and minimises fewer GPU types, then fewer servers, then less power
(for ``coverage``, stage 2 finds the cheapest plan with the best served demand).

Same input, same plan: every stage is bounded by a branch-and-bound node count (deterministic
work on one thread) and only then by wall time, a safety net. ``SolveOutcome`` records which limit
ended each stage, and ``status`` is ``optimal`` only when no clock decided anything: stage 1 proved
its objective within the gap, and stage 2 either proved its own or (for capex/TCO, where it only
breaks ties) stopped at its node limit, which is the same on any machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from ortools.math_opt.python import mathopt

from optimizer.errors import SolverError, SolverLimitError
from optimizer.model.build import MipModel
from optimizer.schema.scenario import DEFAULT_NODE_LIMIT

# Stage-2 weights: one GPU type outweighs any server count, one server any power difference (kW),
# and a GPU left idle counts like 1 W, so among equal plans the one using fewer GPUs wins (simpler
# layouts, spare slots for growth).
TIE_WEIGHTS = {"types": 1e7, "servers": 1e4, "power_kw": 1.0, "gpus_in_use": 1e-3}

TIE_BREAK_NODES = 1000

SOLVERS = (mathopt.SolverType.HIGHS, mathopt.SolverType.GSCIP)


@dataclass
class SolveSettings:
    time_limit_s: float = 60.0
    gap: float = 1e-4
    threads: int = 1
    seed: int = 0
    node_limit: int = DEFAULT_NODE_LIMIT


@dataclass
class SolveOutcome:
    status: str  # optimal | feasible | infeasible
    values: dict[mathopt.Variable, float]
    objective: float
    bound: float
    gap: float
    solve_time_s: float
    solver: str
    stage1_time_s: float = 0.0
    stage1_stop: str = "optimal"    # optimal (within the gap) | node_limit | time_limit | ...
    tiebreak_stop: str = "optimal"  # the same for stage 2; "none" when it found nothing better
    tiebreak_gap: float = 0.0


def _params(settings: SolveSettings, time_left: float, solver: mathopt.SolverType,
            node_limit: int | None = None) -> mathopt.SolveParameters:
    # HiGHS through MathOpt rejects an explicit `threads` (its MIP search is serial), so the
    # parameter is only passed where it means something.
    threads = settings.threads if solver != mathopt.SolverType.HIGHS else None
    params = mathopt.SolveParameters(
        time_limit=timedelta(seconds=max(time_left, 0.1)), relative_gap_tolerance=settings.gap,
        absolute_gap_tolerance=1e-6, threads=threads, random_seed=settings.seed, node_limit=node_limit)
    if solver == mathopt.SolverType.HIGHS:
        # HiGHS's own option: a fixed thread count, not one picked from the machine, so a plan does
        # not depend on where it is solved.
        params.highs.int_options["threads"] = settings.threads
    return params


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null while the solver runs: HiGHS prints from C (e.g. when
    given a solution hint), which would corrupt `--format json` on stdout."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (e.g. under a test runner): nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def run_solver(model: mathopt.Model, settings: SolveSettings, time_left: float,
         hint: dict[mathopt.Variable, float] | None = None,
         node_limit: int | None = None) -> tuple[mathopt.SolveResult, str]:
    last: Exception | None = None
    for solver in SOLVERS:
        try:
            mp = None
            if hint:
                mp = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(variable_values=hint)])
            with stdout_silenced():
                res = mathopt.solve(model, solver, params=_params(settings, time_left, solver, node_limit),
                                    model_params=mp)
            return res, solver.name.lower()
        except Exception as exc:  # the solver library itself failed: try the fallback
            last = exc
    raise SolverError(f"no MIP solver could run: {last}")


def stop_of(res: mathopt.SolveResult) -> str:
    """What ended a solve: ``optimal`` (proven within the gap), ``infeasible``, or the limit hit
    (``node_limit``, ``time_limit``, ...)."""
    reason = res.termination.reason
    if reason == mathopt.TerminationReason.OPTIMAL:
        return "optimal"
    if reason in (mathopt.TerminationReason.INFEASIBLE, mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED):
        return "infeasible"
    limit = res.termination.limit
    if limit == mathopt.Limit.NODE:
        return "node_limit"
    if limit == mathopt.Limit.TIME:
        return "time_limit"
    return (limit.name.lower() + "_limit") if limit is not None else reason.name.lower()


def status_of(res: mathopt.SolveResult, settings: SolveSettings | None = None) -> str:
    """optimal | feasible | infeasible; SolverLimitError when a limit ended the search before any
    plan was found, SolverError when the solver itself failed."""
    reason = res.termination.reason
    stop = stop_of(res)
    if stop in ("optimal", "infeasible"):
        return stop
    if res.has_primal_feasible_solution():
        return "feasible"
    if reason == mathopt.TerminationReason.NO_SOLUTION_FOUND:
        limits = (f"{settings.time_limit_s:g} s, {settings.node_limit:,} nodes" if settings else stop)
        raise SolverLimitError(f"the solver found no plan before its limit ({stop.replace('_', ' ')}; "
                               f"limits {limits})", hint="raise --time-limit or --node-limit, or a larger --gap")
    raise SolverError(f"solver stopped: {reason.name} {res.termination.detail}")


def rel_gap(obj: float, bound: float) -> float:
    """|objective − bound| / |objective|; 1.0 (no guarantee) when the bound is not finite."""
    if not (math.isfinite(bound) and math.isfinite(obj)):
        return 1.0
    return min(abs(obj - bound) / max(abs(obj), 1e-9), 1.0)


def solve_model(mm: MipModel, settings: SolveSettings, objective: str) -> SolveOutcome:
    """Stage 1 on the objective, stage 2 on the tie-breaks; returns stage-2 values, stage-1 figures."""
    start = time.perf_counter()
    res, solver = run_solver(mm.model, settings, settings.time_limit_s, node_limit=settings.node_limit)
    status = status_of(res, settings)
    stage1 = time.perf_counter() - start
    if status == "infeasible":
        return SolveOutcome("infeasible", {}, math.nan, math.nan, math.nan, stage1, solver, stage1, "infeasible")
    stage1_stop = stop_of(res)
    obj = res.objective_value()
    bound = res.best_objective_bound()
    values = dict(res.variable_values())
    if objective == "coverage":
        # stage 2 is a real objective (the cheapest plan serving that much): full gap and node limit
        from optimizer.model.objective import coverage_expression
        mm.model.add_linear_constraint(coverage_expression(mm) >= obj - 1e-6, name="stage2_coverage")
        assert mm.capex is not None
        mm.model.minimize(mm.capex)
        stage2 = settings
    else:
        expr = mm.capex if objective == "capex" else mm.tco
        assert expr is not None and mm.power_w is not None
        mm.model.add_linear_constraint(expr <= obj * (1 + 1e-9) + 1e-6, name="stage2_primary")
        gpus_in_use = mathopt.fast_sum(c.gpus_per_replica * mm.r[i] for i, c in enumerate(mm.cands.inference))
        mm.model.minimize(TIE_WEIGHTS["types"] * mathopt.fast_sum(mm.z.values())
                          + TIE_WEIGHTS["servers"] * mathopt.fast_sum(mm.n.values())
                          + TIE_WEIGHTS["power_kw"] / 1000.0 * mm.power_w
                          + TIE_WEIGHTS["gpus_in_use"] * gpus_in_use)
        # relative gap 0: the tie-break terms are tiny next to the GPU-type term; a node count, not
        # a clock, ends it, so the same input gives the same plan on a busy or an idle machine
        stage2 = SolveSettings(settings.time_limit_s, 0.0, settings.threads, settings.seed, TIE_BREAK_NODES)
    res2, _ = run_solver(mm.model, stage2, stage2.time_limit_s, hint=values, node_limit=stage2.node_limit)
    tiebreak_stop = stop_of(res2)
    tiebreak_gap = 0.0
    if res2.has_primal_feasible_solution():
        values = dict(res2.variable_values())
        tiebreak_gap = rel_gap(res2.objective_value(), res2.best_objective_bound())
    elif tiebreak_stop != "optimal":
        tiebreak_stop, tiebreak_gap = "none", 1.0  # kept stage 1's plan
    decided_by_clock = "time_limit" in (stage1_stop, tiebreak_stop)
    stage2_proven = tiebreak_stop == "optimal" or (objective != "coverage" and tiebreak_stop == "node_limit")
    if status == "optimal" and (decided_by_clock or not stage2_proven):
        status = "feasible"
    elapsed = time.perf_counter() - start
    return SolveOutcome(status, values, obj, bound, rel_gap(obj, bound), elapsed, solver, stage1,
                        stage1_stop, tiebreak_stop, tiebreak_gap)
