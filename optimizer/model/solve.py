"""Solve the purchase MIP with MathOpt (HiGHS; SCIP as fallback) and read back a Plan.

Ties are lexicographic at little cost: for capex, TCO and hourly, the tie-breaks (fewer GPU types, then
fewer servers, then less power, then fewer GPUs in use) are folded into the objective with weights
that together never stand for more than half a currency unit (a tenth of a cent per hour under
hourly; ``objective.tie_break_budget``),
so one solve does both. For ``coverage`` a second stage finds the cheapest plan with the best
served demand (a real objective, with the full gap and node limit).

Same input, same plan: every stage is bounded by a branch-and-bound node count (deterministic
work on one thread) and only then by wall time, a safety net. With ``max_gpu_types`` binding, a
warm start (:func:`warm_start`: the MIP with only the greedy plan's GPU types open) runs when a
limit ends stage 1 short of its gap, and is the answer when that search ended on a worse plan or
none; the greedy plan (``model/greedy.py``) is the answer when there is neither.
``SolveOutcome`` records which limit ended each stage, and ``status`` is ``optimal`` only when no
clock decided anything and every stage proved its objective within the gap.
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
from optimizer.model.greedy import fix_counts, fix_types, greedy_counts, greedy_types, restore
from optimizer.model.objective import layout_expression, primary_expression, tie_break_budget
from optimizer.schema.scenario import DEFAULT_NODE_LIMIT

#: Work for the greedy plan's completion (its replica counts fixed: a small problem).
REPAIR_NODES = 1000
#: Work for the warm start: the MIP with only the greedy plan's GPU types open (a smaller problem).
WARM_START_NODES = 200
#: Time kept back for the warm start, as a share of the stage-1 time limit (its node limit decides
#: on an idle machine; the search gets the rest, and the warm start whatever the search leaves).
WARM_START_TIME_SHARE = 0.25
#: Work for stage 2's layout polish (servers fixed: a small problem).
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
    nodes: int = 0  # branch-and-bound nodes of stage 1: the work a --node-limit counts
    variables: int = 0  # size of the purchase MIP as built (stage 2's own rows not counted)
    constraints: int = 0


def _params(settings: SolveSettings, time_left: float, solver: mathopt.SolverType,
            node_limit: int | None = None, restarts: bool = False) -> mathopt.SolveParameters:
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
        # No root restarts (HiGHS restarts when presolve could fix >10 % of the integer columns,
        # then redoes the root's cuts). Generated benchmark, stage 1, back to back (load ~2):
        # 5 workloads 1.49 -> 0.31 s, 20: 20.4 -> 14.6 s, 60: 22.7 -> 12.8 s, same optima. At 200
        # (60 s clock, 2 nodes either way, load 1.3) it ends worse: 3.51 % gap (9.79M) against
        # 2.17 % (9.73M) with restarts, whose extra root heuristics find the better plan.
        # Plans over periods (restarts=True) gain from them: generated 20 workloads x 3 years, 60 s:
        # 1.47 % gap at the limit without, 0.497 % at 49.5 s with (benchmarks/periods.py).
        params.highs.bool_options["mip_allow_restart"] = restarts
        # Pseudocost branching without strong-branching warm-up (HiGHS's default trusts a
        # pseudocost only after 8 strong-branching LPs; here those were 84 % of the LP iterations).
        # HiGHS alone on the generated benchmark's stage-1 model, idle (three runs at 20): 20
        # workloads 13.2 -> 6.1-7.9 s to the same optimum;
        # 60 the same 14.7 s; 200 at the 60 s clock 2.78 % -> 1.84 % gap; 5 workloads 0.57 -> 0.71 s.
        params.highs.int_options["mip_pscost_minreliable"] = 0
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
         node_limit: int | None = None, restarts: bool = False) -> tuple[mathopt.SolveResult, str]:
    last: Exception | None = None
    for solver in SOLVERS:
        try:
            mp = None
            if hint:
                mp = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(variable_values=hint)])
            with stdout_silenced():
                res = mathopt.solve(model, solver, params=_params(settings, time_left, solver, node_limit, restarts),
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


def combined_status(stage1_status: str, stage1_stop: str, tiebreak_stop: str, objective: str) -> str:
    """``optimal`` only when stage 1 proved its objective and no clock decided anything: stage 2
    proved its own, or (capex/TCO, where it only polishes layouts on fixed servers) stopped at its
    node limit, which is the same on any machine."""
    if stage1_status != "optimal":
        return stage1_status
    decided_by_clock = "time_limit" in (stage1_stop, tiebreak_stop)
    stage2_proven = tiebreak_stop == "optimal" or (objective != "coverage" and tiebreak_stop == "node_limit")
    return "feasible" if decided_by_clock or not stage2_proven else "optimal"


def greedy_incumbent(mm: MipModel, settings: SolveSettings) -> tuple[dict[mathopt.Variable, float], float] | None:
    """The greedy plan (optimizer.model.greedy) completed by the MIP with its replica counts fixed,
    as a full solution and its objective; None when there is none (coverage, or it breaks a limit)."""
    counts = greedy_counts(mm)
    if counts is None:
        return None
    saved = fix_counts(mm, *counts)
    try:
        repair = SolveSettings(settings.time_limit_s, settings.gap, settings.threads, settings.seed, REPAIR_NODES)
        res, _ = run_solver(mm.model, repair, repair.time_limit_s, node_limit=repair.node_limit)
    finally:
        restore(saved)
    if not res.has_primal_feasible_solution():
        return None
    return dict(res.variable_values()), res.objective_value()


def warm_start_types(mm: MipModel) -> list[str] | None:
    """The GPU types :func:`warm_start` opens (the greedy plan's), or None when it has nothing to
    offer: that choice opens every type (no ``max_gpu_types`` below the type count), or coverage."""
    types = greedy_types(mm)
    return None if types is None or set(types) >= set(mm.z) else types


def warm_start(mm: MipModel, settings: SolveSettings, time_left: float,
               types: list[str] | None = None) -> tuple[dict[mathopt.Variable, float], float, str] | None:
    """A fallback plan for stage 1 (values, objective, what ended its search): the MIP solved
    with only ``types`` (default :func:`warm_start_types`) open, under WARM_START_NODES; None
    without such types or when the restricted problem has no plan within its limits.

    With ``max_gpu_types`` binding, HiGHS's own heuristics must also guess which types to buy;
    on the 200-workload benchmark they found a plan 35 % above the bound after 40 s, while the
    restricted problem (a sixth of the candidates) reaches 1 % of it in about 10 s."""
    types = types if types is not None else warm_start_types(mm)
    if types is None:
        return None
    saved = fix_types(mm, types)
    try:
        res, _ = run_solver(mm.model, settings, time_left, node_limit=min(WARM_START_NODES, settings.node_limit))
    finally:
        restore(saved)
    if not res.has_primal_feasible_solution():
        return None
    return dict(res.variable_values()), res.objective_value(), stop_of(res)


def _polish_layouts(mm: MipModel, settings: SolveSettings, objective: str, values: dict[mathopt.Variable, float],
                    cost: float) -> tuple[dict[mathopt.Variable, float], str, float]:
    """Stage 2 for capex/TCO: with stage 1's servers fixed (n, z) and its cost kept, choose the
    layouts using the fewest GPUs, then the fewest pipeline stages (``objective.layout_expression``).
    A small problem (the servers are bought), bounded by TIE_BREAK_NODES: the same on any machine."""
    fixed = [(v, v.lower_bound, v.upper_bound) for v in [*mm.n.values(), *mm.z.values()]]
    for var, _, _ in fixed:
        var.lower_bound = var.upper_bound = round(values[var])
    mm.model.add_linear_constraint(primary_expression(mm, objective) <= cost + 1e-6 + 1e-9 * abs(cost),
                                   name="stage2_primary")
    mm.model.minimize(layout_expression(mm))
    polish = SolveSettings(settings.time_limit_s, 0.0, settings.threads, settings.seed, TIE_BREAK_NODES)
    try:
        res, _ = run_solver(mm.model, polish, polish.time_limit_s, hint=values, node_limit=polish.node_limit)
    finally:
        restore(fixed)
    stop = stop_of(res)
    if not res.has_primal_feasible_solution():
        return values, "none", 1.0
    return dict(res.variable_values()), stop, rel_gap(res.objective_value(), res.best_objective_bound())


def solve_model(mm: MipModel, settings: SolveSettings, objective: str) -> SolveOutcome:
    """Stage 1 on the objective, stage 2 on the tie-breaks; returns stage-2 values, stage-1 figures."""
    start = time.perf_counter()
    size = (mm.model.get_num_variables(), mm.model.get_num_linear_constraints())
    # The search runs unhinted first; only when a limit ends it short of the gap does the warm start
    # (the best plan on the greedy plan's GPU types) run, and the better of the two is the answer.
    # Generated benchmark, stage 1, idle, after mip_pscost_minreliable=0 (one run each): 20
    # workloads prove optimality in 9.0 s unhinted against 1.4 s of warm start + 13.6 s hinted;
    # 200 workloads end at 1.84 % gap unhinted (9.66M; the warm plan is 9.84M) against 2.56 %
    # hinted (9.80M). The warm start still guards a busy machine, where HiGHS's first plan was 4.7x
    # the naive one.
    types = warm_start_types(mm)
    reserve = WARM_START_TIME_SHARE * settings.time_limit_s if types is not None else 0.0
    res, solver = run_solver(mm.model, settings, settings.time_limit_s - reserve, node_limit=settings.node_limit)
    stage1_stop = stop_of(res)
    warm = None
    if types is not None and stage1_stop not in ("optimal", "infeasible"):
        warm = warm_start(mm, settings, settings.time_limit_s - (time.perf_counter() - start), types)
    greedy = None
    if not res.has_primal_feasible_solution() and stage1_stop != "infeasible":
        greedy = warm[:2] if warm else greedy_incumbent(mm, settings)
    elif warm is not None and res.objective_value() > warm[1] + 1e-6:
        greedy = warm[:2]  # a limit ended the search on a worse plan than the warm start's
    if warm is not None and greedy is not None and warm[2] == "time_limit":
        stage1_stop = "time_limit"  # the warm start's clock chose the plan
    if greedy is not None:
        # the limit ended the search before it found a plan (or a worse one than the warm start's):
        # the warm start's or the greedy plan is the answer
        values, obj = greedy
        bound = res.best_objective_bound()
        status = "feasible"
    else:
        status = status_of(res, settings)
        if status == "infeasible":
            stage1 = time.perf_counter() - start
            return SolveOutcome("infeasible", {}, math.nan, math.nan, math.nan, stage1, solver, stage1, "infeasible")
        obj = res.objective_value()
        bound = res.best_objective_bound()
        values = dict(res.variable_values())
    stage1 = time.perf_counter() - start
    if objective == "coverage":
        # stage 2 is a real objective (the cheapest plan serving that much): full gap and node limit
        from optimizer.model.objective import coverage_expression
        mm.model.add_linear_constraint(coverage_expression(mm) >= obj - 1e-6, name="stage2_coverage")
        assert mm.capex is not None
        mm.model.minimize(mm.capex)
        res2, _ = run_solver(mm.model, settings, settings.time_limit_s, hint=values, node_limit=settings.node_limit)
        tiebreak_stop = stop_of(res2)
        tiebreak_gap = 0.0
        if res2.has_primal_feasible_solution():
            values = dict(res2.variable_values())
            tiebreak_gap = rel_gap(res2.objective_value(), res2.best_objective_bound())
        elif tiebreak_stop != "optimal":
            tiebreak_stop, tiebreak_gap = "none", 1.0  # kept stage 1's plan
    else:
        # server-level tie-breaks were folded into stage 1; report the primary cost itself
        obj = mathopt.evaluate_expression(primary_expression(mm, objective), values)
        bound -= tie_break_budget(objective)  # the primary's own bound: the folded terms are worth at most this
        values, tiebreak_stop, tiebreak_gap = _polish_layouts(mm, settings, objective, values, obj)
    status = combined_status(status, stage1_stop, tiebreak_stop, objective)
    elapsed = time.perf_counter() - start
    return SolveOutcome(status, values, obj, bound, rel_gap(obj, bound), elapsed, solver, stage1,
                        stage1_stop, tiebreak_stop, tiebreak_gap, int(res.solve_stats.node_count), *size)
