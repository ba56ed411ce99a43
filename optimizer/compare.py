"""What-if comparisons: one scenario, many variants, solved side by side.

A *variant* is the scenario with overrides: a capex budget, unit prices, the GPUs that may be bought,
and a demand multiplier. Variants come from the command line (``--budget``, ``--budget-range``,
``--price``, ``--allow-gpus``, ``--demand-scale``) and from the scenario's ``whatif:`` section.

How a comparison is solved (:func:`run_comparison`):

1. Variants that differ only in budget share a *group*: the same prices, GPUs and demand, hence the
   same candidate table (:func:`optimizer.sizing.candidates.build_candidates`, the expensive part of
   a solve). The table is built once per group and reused by every variant in it.
2. Each group is first solved for the cheapest plan that serves all demand with no budget cap. That
   fixes the group's *full-demand capex* C*; if even that is infeasible, a limit other than the
   budget binds (site power, racks, supply, SLOs...) and every variant of the group is reported as
   infeasible with the diagnosis, while the other groups go on.
3. A variant whose budget is at least C* is solved with the scenario's objective (capex or TCO)
   under its budget: all demand is served. A variant whose budget is below C* cannot serve all
   demand, so it is solved with the coverage objective: the most priority-weighted served demand
   the budget buys, then the cheapest plan that serves it (DESIGN.md, "With a budget too small").
4. Variants run in parallel over worker processes (``concurrent.futures.ProcessPoolExecutor``),
   cheapest budget first. A variant starts from the best plan already found at a lower budget in
   its group: that plan stays feasible when the budget rises, so its served demand is a valid lower
   bound on the variant's objective and is added as a constraint (it prunes the search: about 8%
   less solver time over the benchmark sweep). Passing that plan as a MathOpt solution hint as well
   was measured and gave no gain with HiGHS (benchmarks/budget_sweep.py; docs/compare.md), so the
   solve itself is :func:`optimizer.model.solve.solve_model` unchanged.
5. Served demand cannot fall when the budget rises; should a time-limited solve return a plan
   serving less than a cheaper variant's plan, the cheaper plan (feasible here too) is kept, with a
   note. Every plan is re-verified by :func:`optimizer.model.check.check_plan`.

The *marginal value* of a variant is measured on the capex actually spent, not on the budget: from
this variant to the next budget point of its group, served-demand percentage points per extra million
of capex, ``(served_next - served) x 100 / ((capex_next - capex) / 1e6)``, and its inverse, currency
per served-demand point, ``(capex_next - capex) / ((served_next - served) x 100)``. Where the next
budget point spends no more, neither is defined (blank); where it spends more and serves no more, the
points per million are 0 and the cost per point is blank.

The *recommendation* is the knee of the sweep (:func:`recommend`): among the variants of the sweep
group (the group with the most variants: they differ only in budget), the cheapest plan that serves
within 1 percentage point of full coverage (priority-weighted served demand >= 99%); ties go to the
lower budget.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from optimizer.errors import CatalogError, InfeasibleError, ProcureError, ScenarioError, UsageError
from optimizer.loaders import ResolvedScenario, closest, resolve_gpu, resolve_scenario
from optimizer.model.check import check_plan
from optimizer.model.pipeline import settings_of, solve_scenario, with_overrides
from optimizer.model.solve import SolveSettings
from optimizer.report.inputs import unused_measured_warnings
from optimizer.schema.base import Record
from optimizer.schema.catalog import GPU, Server
from optimizer.schema.plan import Plan
from optimizer.schema.scenario import MAX_MONEY, MAX_UNIT_PRICE, InferenceWorkload
from optimizer.sizing.candidates import CandidateSet, build_candidates
from optimizer.units import CURRENCY_SYMBOLS

Origin = Literal["base", "cli", "whatif"]
BudgetFrom = Literal["variant", "scenario"]
Status = Literal["optimal", "feasible", "infeasible", "error"]
MILLION = 1e6
COVERAGE_TOLERANCE = 0.01  # the knee: within 1 percentage point of full coverage


class VariantSpec(Record):
    """One what-if: overrides applied to the base scenario (``None``/empty keeps the scenario's)."""

    name: str = Field(min_length=1)
    origin: Origin = Field(description="base: the scenario as written; cli: command line; whatif: scenario file")
    budget: float | None = Field(default=None, gt=0, description="Capex cap, currency; None keeps the scenario's")
    prices: dict[str, float] = Field(default_factory=dict, description="Unit price overrides, currency")
    gpus: list[str] | None = Field(default=None, description="GPUs that may be bought; None keeps the scenario's")
    demand_scale: float = Field(default=1.0, gt=0, description="Multiplier on every inference request rate")
    confidence: float | None = Field(default=None, ge=0.5, le=0.99,
                                     description="Planning confidence; None keeps the scenario's")


class VariantResult(Record):
    """What one variant buys and serves; money in the scenario currency."""

    name: str
    origin: Origin
    group: int = Field(description="Variants with the same prices, GPUs, demand and confidence share a group")
    budget: float | None = Field(description="Capex cap in force (the variant's or the scenario's); None: no cap")
    budget_from: BudgetFrom | None = Field(default=None,
        description="variant: the variant sets this budget; scenario: the scenario's constraints.budget")
    prices: dict[str, float]
    gpus: list[str] | None
    demand_scale: float
    confidence: float | None = None
    status: Status
    objective: str | None = Field(description="capex or tco: all demand served; coverage: the budget binds")
    budget_binds: bool | None = Field(description="True when the budget is below the full-demand capex")
    full_demand_capex: float | None = Field(description="Cheapest plan serving all demand in this group, no cap")
    reason: str | None = Field(default=None, description="Why there is no plan (infeasible or error)")
    capex: float | None = Field(default=None, description="Servers + quote lines, before contingency and tax")
    hardware_capex: float | None = Field(default=None, description="Servers only (systems, chassis, GPUs)")
    total_with_tax: float | None = Field(default=None,
        description="capex x (1 + contingency) x (1 + tax): what the budget bounds")
    tco: float | None = None
    power_kw: float | None = None
    facility_power_kw: float | None = None
    servers: int | None = None
    gpus_by_type: dict[str, int] = Field(default_factory=dict)
    served_fraction: float | None = Field(default=None,
        description="Priority-weighted served demand: sum(priority x served) / sum(priority)")
    served_requests_fraction: float | None = Field(default=None,
        description="Inference requests/s served over requests/s demanded")
    served_by_workload: dict[str, float] = Field(default_factory=dict, description="Served fraction per workload")
    marginal_points_per_million: float | None = Field(default=None,
        description="Served-demand percentage points per extra million of capex spent, to the next budget point")
    marginal_cost_per_point: float | None = Field(default=None,
        description="Extra capex spent per served-demand percentage point gained, to the next budget point")
    marginal_next: str | None = Field(default=None, description="The next budget point of the marginal value")
    bounded_by: str | None = Field(default=None,
        description="The cheaper variant of the group whose served demand bounded this solve from below")
    solve_time_s: float | None = Field(default=None, description="Solver wall time of this variant")
    wall_time_s: float = Field(default=0.0, description="Model build + solve + extraction + check, seconds")
    gap: float | None = None
    recommended: bool = Field(default=False, description="The knee of the sweep (see Comparison.recommendation)")
    notes: list[str] = Field(default_factory=list)
    plan: Plan | None = None


class Comparison(Record):
    scenario: str
    scenario_file: str
    currency: str
    horizon_years: float
    objective: str = Field(description="The scenario's objective (used wherever all demand can be served)")
    workloads: list[str]
    priorities: dict[str, float]
    variants: list[VariantResult]
    sweep_group: int | None = Field(default=None,
        description="The group the recommendation is chosen in (the most variants; they differ only in budget)")
    recommended: str | None = Field(default=None, description="Name of the recommended variant (the knee)")
    recommendation: str = Field(default="", description="The rule, and what it picked")
    jobs: int
    wall_time_s: float
    warnings: list[str] = Field(default_factory=list,
        description="measured: entries that match no candidate deployment in any variant (not used)")


# ------------------------------------------------------------------------------------------------
# Variants from options and the scenario
# ------------------------------------------------------------------------------------------------


def parse_amount(text: str, option: str, maximum: float = MAX_MONEY) -> float:
    """A positive amount at most ``maximum``: ``2e6``, ``2000000``, ``2,000,000``, ``2.5M`` or ``800k``."""
    raw = text.strip().replace(",", "").replace("_", "")
    scale = 1.0
    if raw[-1:].lower() in ("k", "m", "g"):
        scale = {"k": 1e3, "m": 1e6, "g": 1e9}[raw[-1].lower()]
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise UsageError(f"{text!r} is not a number", field=option,
                         hint="write amounts like 2e6, 2000000, 2.5M or 800k") from None
    if not math.isfinite(value) or value <= 0 or value > maximum:
        raise UsageError(f"{text[:80]!r} must be a positive amount of at most {maximum:g}", field=option)
    return value


def parse_budget_range(text: str) -> list[float]:
    """``start:stop:count`` -> ``count`` budgets evenly spaced from start to stop inclusive."""
    parts = text.split(":")
    hint = "write START:STOP:COUNT, e.g. 1e6:8e6:8 for 1M, 2M, ..., 8M"
    if len(parts) != 3:
        raise UsageError(f"{text!r} is not START:STOP:COUNT", field="--budget-range", hint=hint)
    start = parse_amount(parts[0], "--budget-range")
    stop = parse_amount(parts[1], "--budget-range")
    try:
        count = int(parts[2])
    except ValueError:
        raise UsageError(f"count {parts[2]!r} is not a whole number", field="--budget-range", hint=hint) from None
    if count < 2:
        raise UsageError(f"count must be at least 2, not {count}", field="--budget-range",
                         hint="for one budget use --budget")
    if count > 200:
        raise UsageError(f"count {count} is more than 200 variants", field="--budget-range",
                         hint="sweep coarsely first, then zoom in on the interesting range")
    if stop <= start:
        raise UsageError(f"stop {parts[1]} must be greater than start {parts[0]}", field="--budget-range", hint=hint)
    step = (stop - start) / (count - 1)
    return [start + i * step for i in range(count - 1)] + [stop]


def canonical_item(name: str, rs: ResolvedScenario, field: str, error: type[ProcureError] = UsageError) -> str:
    """The catalog name of a GPU or server chassis (aliases, any case); the closest name when unknown."""
    cat = rs.catalog
    key = name.strip().lower()
    entries: list[GPU | Server] = [*cat.gpus.values(), *cat.servers.values()]
    for entry in entries:
        if key == entry.name.lower() or key in (a.lower() for a in entry.aliases):
            return entry.name
    near = closest(name, [*cat.gpus, *cat.servers])
    raise error(f"unknown GPU or server {name!r}", field=field, file=str(rs.path) if error is ScenarioError else None,
                hint=f"did you mean {near!r}?" if near else "run `procure catalog gpus` to list them")


def parse_price(text: str, rs: ResolvedScenario) -> tuple[str, float]:
    """``NAME=PRICE`` (a GPU or chassis unit price in the scenario currency)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise UsageError(f"{text!r} is not NAME=PRICE", field="--price",
                         hint="e.g. --price H20-96GB=12000 (unit price in the scenario currency)")
    return canonical_item(name, rs, "--price"), parse_amount(value, f"--price {name.strip()}", MAX_UNIT_PRICE)


def parse_gpu_list(text: str, rs: ResolvedScenario, field: str = "--allow-gpus",
                   error: type[ProcureError] = UsageError) -> list[str]:
    """Comma-separated GPU names -> catalog names (closest-name hint for unknown ones)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise error("no GPU named", field=field, hint="e.g. --allow-gpus H20-96GB,L20-48GB")
    out: list[str] = []
    for n in names:
        try:
            g = resolve_gpu(n, rs.catalog).name
        except CatalogError as exc:
            raise error(exc.message, field=field, file=str(rs.path) if error is ScenarioError else None,
                        hint=exc.hint) from None
        if g not in out:
            out.append(g)
    return out


def _number(x: float) -> str:
    return f"{x:,.0f}" if x == round(x) else f"{x:,.6g}"


def _overrides_label(prices: dict[str, float], gpus: list[str] | None, demand_scale: float) -> str:
    parts = [f"{k}={_number(v)}" for k, v in prices.items()]
    if gpus is not None:
        parts.append("GPUs " + ",".join(gpus))
    if demand_scale != 1.0:
        parts.append(f"demand x{demand_scale:g}")
    return ", ".join(parts)


def _budget_labels(budgets: Sequence[float], currency: str) -> list[str]:
    """Short, distinct labels in one unit chosen by the largest budget: ``$0.30M``, ``$1.50M``...
    or ``$10k``, ``$40k``..., with more decimals where two would collide."""
    sym = CURRENCY_SYMBOLS.get(currency.upper())
    top = max(budgets, default=0.0)
    scale, suffix, decimals = (1e6, "M", 2) if top >= 1e6 else (1e3, "k", 0) if top >= 1e3 else (1.0, "", 0)
    for d in range(decimals, 7):
        texts = [f"{b / scale:,.{d}f}{suffix}" for b in budgets]
        if len(set(texts)) == len(texts):
            return [f"{sym}{t}" if sym else f"{t} {currency}" for t in texts]
    return [_number(b) + f" {currency}" for b in budgets]


def build_variants(rs: ResolvedScenario, *, budgets: Sequence[float] = (), prices: dict[str, float] | None = None,
                   gpus: list[str] | None = None, demand_scale: float = 1.0,
                   use_whatif: bool = True) -> list[VariantSpec]:
    """The variants to compare, in column order.

    * With budgets: one variant per budget (ascending, duplicates dropped), each with the
      command-line price/GPU/demand overrides.
    * Without budgets: the scenario as written (``base``), then one variant with the command-line
      overrides if any were given.
    * Then the scenario's ``whatif:`` variants, unless ``use_whatif`` is false.

    The list is then sorted by the budget in force (a variant without its own budget has the
    scenario's), stable, so equal budgets keep that order.
    """
    sc = rs.scenario
    prices = dict(prices or {})
    overrides = _overrides_label(prices, gpus, demand_scale)
    out: list[VariantSpec] = []
    uniq = sorted(set(budgets))
    if uniq:
        for b, label in zip(uniq, _budget_labels(uniq, sc.currency), strict=True):
            out.append(VariantSpec(name=f"budget {label}" + (f" ({overrides})" if overrides else ""), origin="cli",
                                   budget=b, prices=prices, gpus=gpus, demand_scale=demand_scale))
    else:
        whatifs = use_whatif and bool(sc.whatif)
        if overrides or whatifs:
            out.append(VariantSpec(name="base", origin="base"))
        if overrides:
            out.append(VariantSpec(name=overrides, origin="cli", prices=prices, gpus=gpus,
                                   demand_scale=demand_scale))
    if use_whatif:
        for i, wv in enumerate(sc.whatif):
            vp = {canonical_item(k, rs, f"whatif[{i}].prices.{k}", ScenarioError): p for k, p in wv.prices.items()}
            for k, p in vp.items():
                if p <= 0:
                    raise ScenarioError(f"price {p} must be positive", file=str(rs.path),
                                        field=f"whatif[{i}].prices.{k}")
            vg = parse_gpu_list(",".join(wv.gpus), rs, f"whatif[{i}].gpus", ScenarioError) if wv.gpus else None
            out.append(VariantSpec(name=wv.name, origin="whatif", budget=wv.budget, prices=vp, gpus=vg,
                                   demand_scale=wv.demand_scale, confidence=wv.confidence))
    if not out:
        raise UsageError("nothing to compare", hint="give --budget, --budget-range, --price, --allow-gpus or "
                         "--demand-scale, or add a whatif: section to the scenario (docs/compare.md)")
    seen: set[str] = set()
    for v in out:
        if v.name in seen:
            raise ScenarioError(f"two variants are named {v.name!r}", file=str(rs.path), field="whatif",
                                hint="give every what-if a distinct name")
        seen.add(v.name)
    # one order everywhere (table, JSON, workbook): by the budget in force, the scenario's where a
    # variant sets none; no cap last; ties keep the order above (base first, what-ifs as written)
    cap = sc.constraints.budget

    def in_force(v: VariantSpec) -> float:
        b = v.budget if v.budget is not None else cap
        return math.inf if b is None else b

    out.sort(key=in_force)
    return out


def variant_scenario(rs: ResolvedScenario, v: VariantSpec | VariantResult) -> ResolvedScenario:
    """The base scenario with the variant's overrides applied (re-validated)."""
    return with_overrides(rs, budget=v.budget, prices=v.prices or None, gpus=v.gpus, demand_scale=v.demand_scale,
                          confidence=v.confidence)


def _without_budget(rs: ResolvedScenario, objective: str | None = None) -> ResolvedScenario:
    sc = rs.scenario
    update: dict[str, Any] = {"constraints": sc.constraints.model_copy(update={"budget": None})}
    if objective is not None:
        update["objective"] = objective
    return resolve_scenario(sc.model_copy(update=update), rs.path, rs.catalog)


def _group_key(v: VariantSpec) -> tuple[Any, ...]:
    return (tuple(sorted(v.prices.items())), tuple(v.gpus) if v.gpus is not None else None, v.demand_scale,
            v.confidence)


# ------------------------------------------------------------------------------------------------
# Solving one variant (runs in a worker process)
# ------------------------------------------------------------------------------------------------


@dataclass
class _Group:
    rs: ResolvedScenario          # overrides applied, the scenario's own budget kept
    cands: CandidateSet


@dataclass
class _Task:
    kind: Literal["base", "variant"]
    group: int
    index: int                     # variant index (-1 for a group's base solve)
    budget: float | None
    coverage: bool
    settings: SolveSettings
    floor: float | None = None     # served demand (coverage objective) a cheaper plan already reaches
    floor_from: int | None = None  # the variant whose plan reaches it


@dataclass
class _Done:
    task: _Task
    status: Status
    plan: Plan | None = None
    coverage_value: float | None = None
    reason: str | None = None
    wall_s: float = 0.0


_GROUPS: dict[int, _Group] = {}


def _init_worker(groups: dict[int, _Group], quiet: bool) -> None:
    """Worker start: the groups' scenarios and candidate tables; HiGHS's C-level chatter off stdout."""
    global _GROUPS
    _GROUPS = groups
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def _run_task(task: _Task) -> _Done:
    start = time.perf_counter()
    g = _GROUPS[task.group]
    try:
        done = _solve_task(task, g)
    except InfeasibleError as exc:
        done = _Done(task, "infeasible", reason=exc.message)
    except ProcureError as exc:
        done = _Done(task, "error", reason=exc.render())
    done.wall_s = time.perf_counter() - start
    return done


def _solve_task(task: _Task, g: _Group) -> _Done:
    if task.kind == "base":
        # the cheapest plan without the budget: its objective, or capex (coverage asks for a cost)
        rs = _without_budget(g.rs, "hourly" if g.rs.scenario.objective == "hourly" else "capex")
    else:
        rs = g.rs if task.budget is None else with_overrides(g.rs, budget=task.budget)
        if task.coverage:
            rs = with_overrides(rs, objective="coverage")
    plan = solve_scenario(rs, task.settings, cands=g.cands, coverage_floor=task.floor).plan
    cov = plan.solver.objective if task.coverage else None
    return _Done(task, plan.status, plan=plan, coverage_value=cov)


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------


@dataclass
class ProgressEvent:
    done: int
    total: int
    message: str


Progress = Callable[[ProgressEvent], None]


class _InlineExecutor(Executor):
    """Runs each task at once in this process (``jobs=1``); the solver keeps stdout clean itself."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future, as a pool would
            fut.set_exception(exc)
        return fut


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _effective_budget(rs: ResolvedScenario, v: VariantSpec) -> float | None:
    return v.budget if v.budget is not None else rs.scenario.constraints.budget


def weighted_served(plan: Plan, rs: ResolvedScenario) -> tuple[float, float, dict[str, float]]:
    """(priority-weighted served fraction, requests served fraction, served fraction by workload).

    A fine-tuning job is served when it is scheduled on the plan's GPUs.
    """
    scheduled = {f.workload for f in plan.finetunes}
    by_w: dict[str, float] = {}
    for c in plan.coverage:
        by_w[c.workload] = (1.0 if c.workload in scheduled else 0.0) if c.kind == "finetune" else c.served_fraction
    prio = {w.name: getattr(w, "priority", 1.0) for w in rs.scenario.workloads}
    total = sum(prio.values())
    weighted = sum(prio[w] * by_w.get(w, 0.0) for w in prio) / total if total else 0.0
    demand = sum(w.requests_per_s for w in rs.scenario.workloads if isinstance(w, InferenceWorkload))
    served = sum(min(c.capacity_rps or 0.0, c.demand_rps or 0.0) for c in plan.coverage if c.kind == "inference")
    return weighted, (served / demand if demand else 1.0), by_w


def run_comparison(rs: ResolvedScenario, variants: Sequence[VariantSpec], *, time_limit_s: float | None = None,
                   jobs: int | None = None, progress: Progress | None = None) -> Comparison:
    """Solve every variant (see the module docstring) and compare them."""
    t0 = time.perf_counter()
    say = progress or (lambda _e: None)
    settings = settings_of(rs, time_limit_s=time_limit_s)
    if rs.scenario.objective == "hourly" and any(v.budget is not None for v in variants):
        raise UsageError("a budget bounds capex, and an hourly plan rents cloud instances and buys nothing",
                         field="budget", hint="compare hourly plans with --price, --allow-gpus or "
                                              "--demand-scale, or remove the budget")
    # groups: one candidate table per distinct (prices, GPUs, demand)
    keys: dict[tuple[Any, ...], int] = {}
    group_of: list[int] = []
    group_spec: dict[int, VariantSpec] = {}
    for v in variants:
        k = _group_key(v)
        if k not in keys:
            keys[k] = len(keys)
            group_spec[keys[k]] = v
        group_of.append(keys[k])
    total = len(keys) + len(variants)
    groups: dict[int, _Group] = {}
    for gi, v in group_spec.items():
        say(ProgressEvent(0, total, f"sizing candidates ({gi + 1}/{len(keys)})"))
        grs = with_overrides(rs, prices=v.prices or None, gpus=v.gpus, demand_scale=v.demand_scale,
                             confidence=v.confidence)
        groups[gi] = _Group(rs=grs, cands=build_candidates(grs))
    budgets = [_effective_budget(rs, v) for v in variants]
    n_jobs = max(1, min(jobs or default_jobs(), len(variants)))

    done_count = 0
    base: dict[int, _Done] = {}
    results: dict[int, _Done] = {}
    solved: dict[int, list[tuple[float, _Done]]] = {gi: [] for gi in groups}  # coverage plans by budget
    order = sorted(range(len(variants)), key=lambda i: (group_of[i], math.inf if budgets[i] is None else budgets[i]))
    ready: list[int] = []

    def next_task(i: int) -> _Task:
        gi, b = group_of[i], budgets[i]
        b_done = base[gi]
        assert b_done.plan is not None
        # the budget bounds capex x (1 + contingency) x (1 + tax) (Scenario.finance.budget_factor)
        full = b is None or b >= _total(b_done.plan) * (1 - 1e-9)
        if full:
            return _Task("variant", gi, i, b, False, settings)
        lower = [d for bb, d in solved[gi] if bb <= b]  # type: ignore[operator]
        best = max(lower, key=lambda d: d.coverage_value or 0.0) if lower else None
        return _Task("variant", gi, i, b, True, settings, floor=best.coverage_value if best else None,
                     floor_from=best.task.index if best else None)

    ctx = _mp_context()
    executor: Executor
    if n_jobs == 1:
        _init_worker(dict(groups), quiet=False)
        executor = _InlineExecutor()
    else:
        executor = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker,
                                       initargs=(groups, True))
    inflight: dict[Future[_Done], _Task] = {}
    try:
        for gi in groups:
            t = _Task("base", gi, -1, None, False, settings)
            inflight[executor.submit(_run_task, t)] = t
        while inflight or ready:
            while ready and len(inflight) < n_jobs:
                t = next_task(ready.pop(0))
                inflight[executor.submit(_run_task, t)] = t
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: inflight[f].index):
                t = inflight.pop(fut)
                d = fut.result()
                done_count += 1
                if t.kind == "base":
                    base[t.group] = d
                    members = [i for i in order if group_of[i] == t.group]
                    if d.plan is None:  # not the budget: a site/supply/SLO limit binds, or an error
                        for i in members:
                            results[i] = _Done(_Task("variant", t.group, i, budgets[i], False, settings),
                                               d.status, reason=d.reason)
                            done_count += 1
                    else:
                        ready.extend(members)
                        ready.sort(key=order.index)
                    say(ProgressEvent(done_count, total, f"full-demand plan of group {t.group + 1} "
                                      + ("found" if d.plan else "not found")))
                else:
                    results[t.index] = d
                    if d.plan is not None and t.coverage and t.budget is not None:
                        solved[t.group].append((t.budget, d))
                    say(ProgressEvent(done_count, total, f"solved {variants[t.index].name}"))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if n_jobs == 1:
            _GROUPS.clear()  # a copy of ``groups``

    out = []
    for i, v in enumerate(variants):
        d = results[i]
        bound = variants[d.task.floor_from].name if d.task.floor_from is not None else None
        out.append(_result(v, group_of[i], budgets[i], d, base[group_of[i]], groups[group_of[i]], bound))
    _keep_monotone(out, rs, variants)
    _marginals(out)
    sc = rs.scenario
    result = Comparison(scenario=sc.name, scenario_file=str(rs.path), currency=sc.currency,
                        horizon_years=sc.horizon_years, objective=sc.objective,
                        workloads=[w.name for w in sc.workloads],
                        priorities={w.name: getattr(w, "priority", 1.0) for w in sc.workloads},
                        variants=out, jobs=n_jobs, wall_time_s=time.perf_counter() - t0,
                        warnings=unused_measured_warnings(rs, set().union(*(g.cands.measured_used
                                                                             for g in groups.values()))))
    recommend(result)
    return result


def _total(plan: Plan) -> float:
    """What the budget bounds: capex with contingency and tax (capex where the plan predates them)."""
    return plan.total_with_tax if plan.total_with_tax > 0 else plan.capex


def _mp_context() -> Any:
    """fork where the platform has it: workers inherit the loaded catalog and candidate tables."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _result(v: VariantSpec, gi: int, budget: float | None, d: _Done, base: _Done, group: _Group,
            bound_name: str | None) -> VariantResult:
    full_capex = base.plan.capex if base.plan is not None else None
    budget_from = "variant" if v.budget is not None else "scenario" if budget is not None else None
    common: dict[str, Any] = dict(name=v.name, origin=v.origin, group=gi, budget=budget, budget_from=budget_from,
                                  prices=v.prices,
                                  gpus=v.gpus, demand_scale=v.demand_scale, confidence=v.confidence,
                                  full_demand_capex=full_capex,
                                  wall_time_s=d.wall_s)
    if d.plan is None:
        return VariantResult(**common, status=d.status, objective=None, budget_binds=None, reason=d.reason)
    plan = d.plan
    weighted, requests, by_w = weighted_served(plan, group.rs)
    return VariantResult(
        **common, status=d.status, objective=plan.solver.objective_name, budget_binds=d.task.coverage,
        capex=plan.capex, hardware_capex=plan.hardware_capex, total_with_tax=_total(plan), tco=plan.tco,
        power_kw=plan.power_kw, facility_power_kw=plan.facility_power_kw,
        servers=sum(s.count for s in plan.servers), gpus_by_type=dict(sorted(plan.gpus_by_type.items())),
        served_fraction=weighted, served_requests_fraction=requests, served_by_workload=by_w,
        bounded_by=bound_name, solve_time_s=plan.solver.solve_time_s, gap=plan.gap, plan=plan)


def _by_budget(out: list[VariantResult]) -> dict[int, list[VariantResult]]:
    groups: dict[int, list[VariantResult]] = {}
    for r in out:
        if r.plan is not None:
            groups.setdefault(r.group, []).append(r)
    for members in groups.values():
        members.sort(key=lambda r: math.inf if r.budget is None else r.budget)
    return groups


def _keep_monotone(out: list[VariantResult], rs: ResolvedScenario, variants: Sequence[VariantSpec]) -> None:
    """Where a plan serves less than a cheaper-budget plan of its group, keep the cheaper plan."""
    for members in _by_budget(out).values():
        best: VariantResult | None = None
        for r in members:
            assert r.served_fraction is not None
            if best is not None and r.served_fraction < (best.served_fraction or 0.0) - 1e-9:
                spec = next(v for v in variants if v.name == r.name)
                check_plan(best.plan, variant_scenario(rs, spec), coverage_mode=True)  # type: ignore[arg-type]
                note = (f"the solver's plan for this budget served {r.served_fraction:.2%} (time limit?); "
                        f"the plan of {best.name} serves {best.served_fraction:.2%} within this budget and is kept")
                for key in ("capex", "hardware_capex", "total_with_tax", "tco", "power_kw", "facility_power_kw",
                            "servers", "gpus_by_type",
                            "served_fraction", "served_requests_fraction", "served_by_workload", "plan", "status",
                            "objective", "gap"):
                    setattr(r, key, getattr(best, key))
                r.notes.append(note)
            if best is None or (r.served_fraction or 0.0) > (best.served_fraction or 0.0) + 1e-12:
                best = r


def marginal(served: float, capex: float, served_next: float, capex_next: float) -> tuple[float | None, float | None]:
    """(points per extra million of capex, capex per point) from one plan to the next; see the module
    docstring for the blanks."""
    spent = capex_next - capex
    points = (served_next - served) * 100.0
    if spent <= 0:
        return None, None
    return points / (spent / MILLION), (spent / points if points > 0 else None)


def _marginals(out: list[VariantResult]) -> None:
    """Served-demand points per extra million of capex spent, and capex per point, to the next budget
    point of the same group."""
    for members in _by_budget(out).values():
        with_budget = [r for r in members if r.budget is not None]
        for a, b in itertools.pairwise(with_budget):
            assert a.budget is not None and b.budget is not None
            if b.budget > a.budget and a.served_fraction is not None and b.served_fraction is not None:
                a.marginal_next = b.name
                a.marginal_points_per_million, a.marginal_cost_per_point = marginal(
                    a.served_fraction, a.capex or 0.0, b.served_fraction, b.capex or 0.0)


def sweep_group(variants: Sequence[VariantResult]) -> int | None:
    """The group with the most variants with a plan (ties: the first such variant's group)."""
    counts: dict[int, int] = {}
    for v in variants:
        if v.plan is not None:
            counts[v.group] = counts.get(v.group, 0) + 1
    if not counts:
        return None
    most = max(counts.values())
    return next(v.group for v in variants if v.plan is not None and counts[v.group] == most)


def recommendation_rule(n: int, tolerance: float = COVERAGE_TOLERANCE) -> str:
    return (f"the knee: the cheapest variant (capex) serving within {tolerance * 100:g} point of full coverage "
            f"(priority-weighted served demand at least {1 - tolerance:.0%}), among the {n} variant"
            f"{'s' if n != 1 else ''} that differ only in budget (same prices, GPUs and demand); ties go to "
            "the lower budget")


def recommend(result: Comparison, tolerance: float = COVERAGE_TOLERANCE) -> VariantResult | None:
    """Mark the knee (module docstring) on ``result``: ``recommended``, ``sweep_group``,
    ``recommendation`` and the variant's ``recommended`` flag. Returns the variant or None."""
    group = sweep_group(result.variants)
    members = [v for v in result.variants if v.plan is not None and v.group == group]
    ok = [v for v in members if (v.served_fraction or 0.0) >= 1.0 - tolerance - 1e-9]
    best = min(ok, key=lambda v: (v.capex or 0.0, math.inf if v.budget is None else v.budget), default=None)
    for v in result.variants:
        v.recommended = v is best
    result.sweep_group = group
    result.recommended = best.name if best is not None else None
    rule = recommendation_rule(len(members), tolerance)
    if best is None:
        top = max((v.served_fraction or 0.0 for v in members), default=0.0)
        result.recommendation = f"none: no variant qualifies (the most served is {top:.1%}); rule: {rule}"
    else:
        result.recommendation = f"{best.name}; rule: {rule}"
    return best
