"""Scenario in, checked plan out: candidates -> MIP -> solve -> extract -> check (or diagnose)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from optimizer.errors import InfeasibleError, PlacementError, RackingError
from optimizer.loaders import ResolvedScenario
from optimizer.model.build import build_model, limits_of
from optimizer.model.check import check_plan
from optimizer.model.diagnose import binding_limits, missing_candidates
from optimizer.model.extract import extract_plan
from optimizer.model.objective import coverage_expression
from optimizer.model.solve import SolveSettings, solve_model
from optimizer.schema.plan import Plan
from optimizer.sizing.candidates import CandidateSet, build_candidates

Progress = Callable[[str], None]


@dataclass
class PlanResult:
    plan: Plan
    candidates: CandidateSet
    checks: list[str]


def with_overrides(rs: ResolvedScenario, *, budget: float | None = None, objective: str | None = None,
                   prices: dict[str, float] | None = None, gpus: list[str] | None = None,
                   demand_scale: float = 1.0, engine: str | None = None,
                   engine_version: str | None = None, confidence: float | None = None) -> ResolvedScenario:
    """A copy of the scenario with command-line or what-if overrides applied (re-validated).

    ``engine`` / ``engine_version`` set ``serving.engine`` / ``serving.engine_version``: a new
    engine without a version takes that engine's default release (the scenario's own version when
    the engine is restated); an unknown pair is a UsageError naming the known combinations."""
    from pydantic import ValidationError

    from optimizer.loaders import resolve_scenario, validation_error
    from optimizer.schema.scenario import InferenceWorkload, Scenario

    data = rs.scenario.model_dump()
    if budget is not None:
        data["constraints"]["budget"] = budget
    if objective is not None:
        data["objective"] = objective
    if confidence is not None:
        data["confidence"] = confidence
    if prices:
        data["prices"] = {**data["prices"], **prices}
    if gpus is not None:
        data["constraints"]["gpus"] = gpus
    if engine is not None or engine_version is not None:
        from optimizer.engines import DEFAULT_VERSION, profile_for

        serving = data["serving"]
        if engine is not None and engine != serving["engine"] and engine_version is None:
            engine_version = DEFAULT_VERSION.get(engine)
        serving["engine"] = engine if engine is not None else serving["engine"]
        serving["engine_version"] = engine_version or serving["engine_version"]
        profile_for(serving["engine"], serving["engine_version"])
    if demand_scale != 1.0:
        for w, given in zip(data["workloads"], rs.scenario.workloads, strict=True):
            if w["kind"] == "inference":
                w["requests_per_s"] *= demand_scale
                if w.get("requests_per_s_by_year"):  # periods: every year's rate scales alike
                    w["requests_per_s_by_year"] = [r * demand_scale for r in w["requests_per_s_by_year"]]
                if isinstance(given, InferenceWorkload) and given.demand is not None:
                    # business volumes scale with the rate, so the two still agree on re-validation
                    w["demand"] = given.demand.scaled(demand_scale).model_dump()
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:  # e.g. a demand scale that takes a rate past its range
        raise validation_error(exc, f"{rs.path} (with the overrides)") from exc
    return resolve_scenario(scenario, rs.path, rs.catalog)


def settings_of(rs: ResolvedScenario, *, time_limit_s: float | None = None, gap: float | None = None,
                threads: int | None = None, seed: int | None = None, node_limit: int | None = None) -> SolveSettings:
    """Solver settings from the scenario, with command-line values taking precedence."""
    s = rs.scenario.solver
    return SolveSettings(time_limit_s=s.time_limit_s if time_limit_s is None else time_limit_s,
                         gap=s.gap if gap is None else gap, threads=s.threads if threads is None else threads,
                         seed=s.seed if seed is None else seed,
                         node_limit=s.node_limit if node_limit is None else node_limit)


def solve_scenario(rs: ResolvedScenario, settings: SolveSettings | None = None,
                   progress: Progress | None = None, cands: CandidateSet | None = None,
                   coverage_floor: float | None = None, verify: bool = True) -> PlanResult:
    """The cheapest (or best-covering) plan, verified by the checker; InfeasibleError says why not.

    ``coverage_floor`` (coverage objective only) is served demand a cheaper what-if already reached:
    a lower bound that never cuts off this variant's optimum and shortens its search.
    ``verify=False`` skips the checker, for candidate tables deliberately changed from what the
    scenario sizes (Monte-Carlo samples scale capacities and prices; optimizer/montecarlo.py).
    """
    say = progress or (lambda _msg: None)
    settings = settings or settings_of(rs)
    objective = rs.scenario.objective
    if rs.scenario.periods is not None:  # one MIP over the years (optimizer.model.periods)
        from optimizer.model.check_periods import check_periods
        from optimizer.model.periods_plan import solve_periods

        say(f"solving the plan over {rs.scenario.periods.years} periods")
        plan = solve_periods(rs, settings)
        say("checking every period")
        return PlanResult(plan=plan, candidates=cands or CandidateSet(skus={}), checks=check_periods(plan, rs))
    if cands is None:
        say("sizing candidates")
        cands = build_candidates(rs)
    coverage = objective == "coverage"
    missing = missing_candidates(rs, cands)
    if missing and not coverage:
        raise InfeasibleError("no feasible plan:\n  " + "\n  ".join(missing))
    say(f"solving MIP over {len(cands.inference) + len(cands.finetune)} candidates")
    exact: frozenset[str] = frozenset()
    exact_racks = False
    while True:
        mm = build_model(rs, cands, limits_of(rs), objective, exact_spread=exact, exact_racks=exact_racks)
        if coverage and coverage_floor is not None:
            mm.model.add_linear_constraint(coverage_expression(mm) >= coverage_floor - 2e-6, name="coverage_floor")
        out = solve_model(mm, settings, objective)
        if out.status == "infeasible":
            say("diagnosing infeasibility")
            reasons = binding_limits(rs, cands, settings)
            raise InfeasibleError("no feasible plan meets all demand within the limits:\n  " + "\n  ".join(reasons))
        try:
            plan = extract_plan(mm, out, settings, objective)
            break
        except RackingError:
            # the aggregate rack rows admitted servers no layout in the site's racks holds: solve
            # again with the per-rack rows (once)
            if exact_racks:
                raise
            say("re-solving with exact rack rows")
            exact_racks = True
        except PlacementError as exc:
            # the necessary spread row admitted counts no numbered servers can hold: give that SKU
            # the exact rows and solve again (at most once per SKU)
            if exc.sku in exact:
                raise
            say(f"re-solving with exact spread rows on {exc.sku}")
            exact = exact | {exc.sku}
    if not verify:
        return PlanResult(plan=plan, candidates=cands, checks=[])
    say("checking the plan")
    checks = check_plan(plan, rs, coverage_mode=coverage)
    return PlanResult(plan=plan, candidates=cands, checks=checks)
