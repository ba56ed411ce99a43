"""Solve the multi-period MIP (``optimizer.model.periods``) and read back a Plan with ``periods``.

The plan's top-level servers, deployments, coverage and placement are the last year's fleet;
``capex`` is nominal capex over all years, ``tco`` nominal cash out, ``objective`` the NPV (or the
nominal cash out under ``tco``), ``npv`` the discounted cash out; ``periods`` has one entry per year.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from optimizer import __version__
from optimizer import periods as per
from optimizer.errors import InfeasibleError, PlacementError, RackingError
from optimizer.loaders import ResolvedScenario
from optimizer.model.diagnose_periods import period_binding_limits
from optimizer.model.extract import (
    _capacity_provenance,
    bucket_loads,
    finance_figures,
    memory_account,
    routed_capacity,
    split_bucket_loads,
)
from optimizer.model.periods import (
    TIE_BREAK_BUDGET,
    PeriodModel,
    YearTable,
    build_period_model,
    energy_per_year,
    price_in_year,
    support_per_year,
    year_tables,
)
from optimizer.model.periods_heuristic import relax_and_fix
from optimizer.model.placement import Item, place
from optimizer.model.populations import split_replicas
from optimizer.model.racks import rack_plan
from optimizer.model.solve import SolveSettings, rel_gap, run_solver, status_of, stop_of
from optimizer.schema.plan import (
    BucketLoad,
    Deployment,
    PeriodPlan,
    PlacedServer,
    Plan,
    RentLine,
    ServerLine,
    SkuCount,
    SolverReport,
    WorkloadCoverage,
)
from optimizer.units import GIB, HOURS_PER_YEAR


def _int(v: float) -> int:
    return round(v)


class YearPlacementError(PlacementError):
    """Placement of ``year``'s replicas on ``sku``'s numbered servers failed (a PlacementError)."""

    def __init__(self, message: str, *, sku: str, year: int) -> None:
        self.year = year
        super().__init__(message, sku=sku)


class YearRackingError(RackingError):
    """No layout of ``year``'s fleet in the site's racks was found (a RackingError)."""

    def __init__(self, message: str, *, year: int) -> None:
        self.year = year
        super().__init__(message)


def solve_periods(rs: ResolvedScenario, settings: SolveSettings) -> Plan:
    """Build, solve and extract; InfeasibleError when no plan serves every year within the limits."""
    return solve_period_tables(rs, year_tables(rs), settings)


def solve_period_tables(rs: ResolvedScenario, tables: list[YearTable], settings: SolveSettings) -> Plan:
    """Solve and extract on the given year tables; InfeasibleError names the year or the limit over
    all years that leaves no plan, and by how much (``diagnose_periods``). The spread and rack rows
    are only necessary: where a year's placement proves SKU s's counts unplaceable, solve again with
    the exact spread block for (s, y); where no layout of a year's fleet in the site's racks is
    found, with that year's per-rack rows; as the single-period pipeline does (each at most once, in
    the order extraction finds them)."""
    exact: frozenset[tuple[str, int]] = frozenset()
    racked: frozenset[int] = frozenset()
    while True:
        pm = build_period_model(rs, tables, exact_spread=exact, exact_racks=racked)
        try:
            values, report = solve_period_model(pm, settings)
        except InfeasibleError:
            reasons = period_binding_limits(rs, tables, settings)
            raise InfeasibleError("no feasible plan serves every year's demand within the limits:\n  "
                                  + "\n  ".join(reasons)) from None
        try:
            return extract_period_plan(pm, values, report)
        except YearPlacementError as exc:
            if (exc.sku, exc.year) in exact:
                raise
            exact = exact | {(exc.sku, exc.year)}
        except YearRackingError as exc:
            if exc.year in racked:
                raise
            racked = racked | {exc.year}


def solve_period_model(pm: PeriodModel, settings: SolveSettings) -> tuple[dict[Any, float], SolverReport]:
    """The relax-and-fix incumbent (``periods_heuristic``), then the full search hinted with it,
    each bounded by a node limit first and wall time as a safety net. The incumbent is the answer
    when the search ends with no plan or a worse one (a limit ended it before it took the hint's
    plan). ``stopped_by`` is ``time_limit`` and the status at best ``feasible`` when any clock
    decided something, the incumbent's stages included."""
    start = time.perf_counter()
    size = (pm.model.get_num_variables(), pm.model.get_num_linear_constraints())
    incumbent = relax_and_fix(pm, settings)
    left = settings.time_limit_s - (time.perf_counter() - start)
    res, solver = run_solver(pm.model, settings, left, hint=incumbent.values if incumbent else None,
                             node_limit=settings.node_limit, restarts=True)  # HiGHS root restarts: see solve._params
    stop = stop_of(res)
    if not res.has_primal_feasible_solution() and incumbent is not None:
        # no plan from the search (or, numerically, "infeasible" beside a plan of this very model)
        values, objective, status = incumbent.values, incumbent.objective, "feasible"
    else:
        status = status_of(res, settings)
        if status == "infeasible":
            raise InfeasibleError("no feasible plan serves every year's demand within the limits (site power, "
                                  "racks, budget, availability, GPU types): raise a limit, or allow more GPUs or "
                                  "cloud instances")
        values, objective = dict(res.variable_values()), res.objective_value()
        if incumbent is not None and incumbent.objective < objective - 1e-6:
            values, objective = incumbent.values, incumbent.objective
    if incumbent is not None and incumbent.clock_decided and stop in ("optimal", "node_limit"):
        stop, status = "time_limit", "feasible"
    bound = res.best_objective_bound()
    elapsed = time.perf_counter() - start
    report = SolverReport(
        solver=solver, status=status, objective_name=pm.objective, objective=objective, bound=bound,
        gap=rel_gap(objective, bound), solve_time_s=elapsed, objective_time_s=elapsed,
        candidates=sum(pm.merges[t.year].sized for t in pm.tables), variables=size[0], constraints=size[1],
        time_limit_s=settings.time_limit_s, node_limit=settings.node_limit, seed=settings.seed,
        stopped_by=stop, tiebreak_stopped_by="none", tiebreak_gap=0.0,
        nodes=int(res.solve_stats.node_count))
    return values, report


def _deployments(pm: PeriodModel, year: int, val: dict[Any, float],
                 servers: dict[str, int]) -> tuple[list[Deployment], list[Item], list[WorkloadCoverage]]:
    """That year's deployments (each candidate with replicas; a population group's column split
    onto the year's ``servers`` per SKU), placement items and coverage."""
    t = pm.tables[year - 1]
    sc = t.rs.scenario
    rho = sc.headroom
    workloads = sc.inference_workloads()
    chosen = [(i, c, _int(val[pm.r[(year, i)]])) for i, c in enumerate(t.cands.inference)
              if _int(val[pm.r[(year, i)]]) > 0]
    deployments, items = [], []
    cap_by_w: dict[str, float] = defaultdict(float)
    for _, c, r in chosen:
        cap_by_w[c.workload] += r * c.capacity_rps * rho
    # with a mix, each bucket's demand is split over the candidates in proportion to what they carry
    carry = {i: [rho * mu * max(val[pm.q[(year, i, b)]], 0.0) if (year, i, b) in pm.q else 0.0
                 for b, mu in enumerate(c.bucket_rps)]
             for i, c, _ in chosen if c.bucket_perf}
    loads = split_bucket_loads(carry, {i: t.cands.inference[i].workload for i in carry}, workloads)
    column_replicas = {i: r for i, _, r in chosen}
    merge = pm.merges[year]
    if merge.groups:
        chosen = split_replicas(merge, chosen, servers, {n for n, w in workloads.items() if w.min_replicas >= 2})
    for i, c, r in chosen:
        w = workloads[c.workload]
        sku = pm.skus[c.sku]
        buckets: list[BucketLoad] = []
        if i in loads:
            part = [load * r / column_replicas[i] for load in loads[i]]  # this SKU's part of the column
            capacity = routed_capacity(c.bucket_rps, part)
            planned = sum(part)
            buckets = bucket_loads(w, c, part)
        else:
            capacity = c.capacity_rps
            planned = w.requests_per_s * (r * c.capacity_rps * rho) / cap_by_w[c.workload]
        deployments.append(Deployment(
            workload=c.workload, model=t.cands.archs[c.workload].name, sku=c.sku, gpu=sku.gpu.name, tp=c.tp,
            pp=c.pp, ep=c.ep, dp=c.dp, precision=c.precision, kv_dtype=c.kv_dtype, replicas=r,
            gpus_per_replica=c.gpus_per_replica, capacity_rps=capacity, planned_rps=planned,
            ttft_ms=max((b.ttft_ms for b in buckets), default=c.perf.ttft_ms),
            tpot_ms=max((b.tpot_ms for b in buckets), default=c.perf.tpot_ms), buckets=buckets,
            batch=c.perf.slo_batch, limited_by=c.perf.limited_by,
            weights_gib_per_gpu=c.memory.weight_bytes / GIB, kv_cache_tokens=c.memory.replica_kv_tokens,
            memory=memory_account(c.memory), perf_source=c.perf.source,
            **_capacity_provenance(t.cands, sku.gpu.name, c, sc.confidence)))
        items += [Item(c.workload, c.sku, c.tp, c.pp, c.gpus_per_replica, c.servers_per_replica,
                       spread=w.min_replicas >= 2, ep=c.ep, dp=c.dp)] * r
    for j, f in enumerate(t.cands.finetune):
        if _int(val[pm.x[(year, j)]]) == 1:
            g = pm.skus[f.sku].gpus
            items.append(Item(f.workload, f.sku, 0, 0, min(f.gpus, g), max(1, f.gpus // g) if f.gpus > g else 1,
                              finetune=True))
    coverage = [WorkloadCoverage(workload=w.name, kind="inference", demand_rps=w.requests_per_s,
                                 capacity_rps=cap_by_w.get(w.name, 0.0),
                                 served_fraction=min(1.0, cap_by_w.get(w.name, 0.0) / w.requests_per_s),
                                 slo_ttft_ms=w.slo.ttft_ms, slo_tpot_ms=w.slo.tpot_ms)
                for w in workloads.values()]
    coverage += [WorkloadCoverage(workload=w.name, kind="finetune", demand_rps=None, capacity_rps=None,
                                  served_fraction=1.0) for w in sc.finetune_workloads().values()]
    return deployments, items, coverage


def _layout(pm: PeriodModel, year: int, own: dict[str, int], rented: dict[str, int],
            items: list[Item], val: dict[Any, float]) -> tuple[list[PlacedServer], int]:
    """Rack what is owned in the site's racks (rented instances sit in rack 0: the provider's) and
    place the year's replicas. A year with per-rack rows takes the MIP's layout; for the others,
    YearRackingError when the aggregate rows admitted what no layout holds."""
    site = pm.rs.scenario.site
    racks: dict[str, list[int]] | None
    if year in pm.exact_racks:
        racks = defaultdict(list)
        for (k, rack, y), var in sorted(pm.a.items()):
            if y == year and _int(val[var]):
                racks[k] += [rack + 1] * _int(val[var])
    else:
        racks = rack_plan(own, pm.skus, site.rack_power_kw, site.rack_units, site.racks) if own else {}
    if racks is None:
        servers = ", ".join(f"{n} x {k}" for k, n in sorted(own.items()))
        raise YearRackingError(f"year {year}: no layout of {servers} in {site.racks} racks was found, though the "
                               "aggregate rack rows admit it", year=year)
    by_sku = dict(racks)
    for k, n in rented.items():
        by_sku[k] = [0] * n
    slots = {k: pm.skus[k].gpus for k in by_sku}
    try:
        placed = place(by_sku, slots, items)
    except PlacementError as exc:
        raise YearPlacementError(f"year {year}: {exc}", sku=exc.sku, year=year) from exc
    return placed, len({r for rs in racks.values() for r in rs})


def extract_period_plan(pm: PeriodModel, val: dict[Any, float], report: SolverReport) -> Plan:
    rs = pm.rs
    sc = rs.scenario
    npv_rate = per.discount_rate(sc)
    periods: list[PeriodPlan] = []
    committed: dict[tuple[str, str, int], int] = {}
    cum_ret: dict[str, int] = defaultdict(int)
    last: dict[str, Any] = {}
    peak_kw, peak_racks = 0.0, 0
    for t in pm.tables:
        y = t.year
        buy = {k: _int(val[v]) for (k, yy), v in sorted(pm.buy.items()) if yy == y and _int(val[v]) > 0}
        retire = {}
        for (k, yy), v in sorted(pm.ret.items()):
            if yy == y and _int(val[v]) > cum_ret[k]:
                retire[k] = _int(val[v]) - cum_ret[k]
                cum_ret[k] = _int(val[v])
        own = {k: _own_value(pm, k, y, val) for k in pm.skus if pm.skus[k].hourly_price is None}
        own = {k: n for k, n in own.items() if n > 0}
        for key, v in sorted(pm.rent.items()):
            if key[2] == y and _int(val[v]) > 0:
                committed[key] = _int(val[v])
        rent_lines: list[RentLine] = []
        rented: dict[str, int] = defaultdict(int)
        for (k, name, start), n in sorted(committed.items()):
            o = pm.options[(k, name, start)]
            if start <= y < start + o.term_years:
                sku = pm.skus[k]
                rented[k] += n
                rent_lines.append(RentLine(instance=k, option=o.name, term_years=o.term_years, start_year=start,
                                           count=n,
                                           gpu_hours=n * sku.gpus * HOURS_PER_YEAR, hourly_price=o.hourly,
                                           cost=o.year_cost(n)))
        prices = {k: price_in_year(rs, pm.skus[k], y) for k in buy}
        capex = sum(prices[k] * n for k, n in buy.items())
        energy = sum(energy_per_year(rs, pm.skus[k]) * n for k, n in own.items())
        support = sum(support_per_year(rs, pm.skus[k]) * n for k, n in own.items())
        rent_cost = sum(line.cost for line in rent_lines)
        deployments, items, coverage = _deployments(pm, y, val, own)
        placed, racks_used = _layout(pm, y, own, dict(rented), items, val)
        power_w = sum(pm.skus[k].power_w * n for k, n in own.items())
        peak_kw, peak_racks = max(peak_kw, power_w / 1000.0), max(peak_racks, racks_used)
        df = per.discount_factor(npv_rate, y)
        opex = energy + support + rent_cost
        notes = _notes(pm, y, buy, retire, rent_lines)
        periods.append(PeriodPlan(
            year=y, demand_rps={w.name: w.requests_per_s for w in t.rs.scenario.inference_workloads().values()},
            models={w.name: t.cands.archs[w.name].name for w in t.rs.scenario.workloads},
            buy=[SkuCount(sku=k, count=n) for k, n in buy.items()],
            retire=[SkuCount(sku=k, count=n) for k, n in retire.items()],
            own=[SkuCount(sku=k, count=n) for k, n in own.items()], rent=rent_lines, unit_prices=prices,
            capex=capex, energy=energy, support=support, rent_cost=rent_cost, opex=opex, cash_out=capex + opex,
            discount_factor=df, discounted=(capex + opex) * df, power_kw=power_w / 1000.0, racks_used=racks_used,
            deployments=deployments, coverage=coverage, notes=notes))
        last = {"own": own, "rented": dict(rented), "deployments": deployments, "coverage": coverage,
                "placed": placed}
    npv = _npv(pm, periods, committed, npv_rate)
    nominal = _npv(pm, periods, committed, 0.0)
    servers = [_server_line(pm, k, n) for k, n in sorted({**last["own"], **last["rented"]}.items())]
    gpus_by_type: dict[str, int] = defaultdict(int)
    for line in servers:
        gpus_by_type[line.gpu] += line.count * line.gpus_per_server
    capex = sum(p.capex for p in periods)
    money = finance_figures(rs, capex, [])
    hourly = [(s.hourly_price or 0.0) * s.count for s in servers if s.hourly_price is not None]
    return Plan(
        scenario=sc.name, currency=sc.currency, status=report.status, objective=report.objective, gap=report.gap,
        hourly_cost=sum(hourly) if hourly else None, capex=capex, hardware_capex=capex, quote_lines=[],
        contingency=money["contingency"], tax=money["tax"], total_with_tax=money["total_with_tax"],
        tco=nominal, energy_cost=sum(p.energy for p in periods),
        opex_cost=sum(p.support + p.rent_cost for p in periods), power_kw=peak_kw,
        facility_power_kw=peak_kw * sc.site.pue, racks_used=peak_racks,
        rack_units_used=sum(s.rack_units * s.count for s in servers if s.hourly_price is None),
        gpus_by_type=dict(gpus_by_type), servers=servers, deployments=last["deployments"], finetunes=[],
        coverage=last["coverage"], placement=last["placed"], solver=report, headroom=sc.headroom,
        confidence=sc.confidence, horizon_years=float(len(periods)),
        notes=[f"procure {__version__}; prices are dated estimates; plan over {len(periods)} periods: "
               "top-level servers and deployments are the last year's; capex is nominal over all years; "
               f"tie-breaks worth at most {TIE_BREAK_BUDGET:g}"],
        periods=periods, npv=npv, discount_rate=npv_rate)


def _own_value(pm: PeriodModel, key: str, year: int, val: dict[Any, float]) -> int:
    """n[s,y] from the solution: inventory − retired + bought so far."""
    bought = sum(_int(val[pm.buy[(key, t)]]) for t in range(1, year + 1))
    inv = pm.inventory.get(key, 0)
    retired = _int(val[pm.ret[(key, year)]]) if (key, year) in pm.ret else 0
    return inv - retired + bought


def _npv(pm: PeriodModel, periods: list[PeriodPlan], committed: dict[tuple[str, str, int], int],
         rate: float) -> float:
    """Σ_y δ_y·(capex_y + energy_y + support_y) + each rent option's term at its years' δ."""
    total = sum(per.discount_factor(rate, p.year) * (p.capex + p.energy + p.support) for p in periods)
    for key, n in committed.items():
        o = pm.options[key]
        total += sum(per.discount_factor(rate, key[2] + k) for k in range(o.term_years)) * o.year_cost(n)
    return total


def _server_line(pm: PeriodModel, key: str, n: int) -> ServerLine:
    s = pm.skus[key]
    return ServerLine(sku=key, chassis=s.chassis.name, gpu=s.gpu.name, gpus_per_server=s.gpus, count=n,
                      chassis_price=s.chassis_price, gpu_unit_price=s.gpu_price, unit_price=s.unit_price,
                      power_w=s.power_w, rack_units=s.rack_units, price_source=s.price_source,
                      integrated=s.chassis.integrated, hourly_price=s.hourly_price)


def _notes(pm: PeriodModel, year: int, buy: dict[str, int], retire: dict[str, int],
           rent: list[RentLine]) -> list[str]:
    """Why, in figures: a rented instance's year against buying its GPUs; a retired server's
    yearly energy and support saved; a purchase at this year's price."""
    rs = pm.rs
    out = []
    for k, n in buy.items():
        out.append(f"buy {n} x {k} at {price_in_year(rs, pm.skus[k], year):,.0f} each (year {year} price)")
    for k, n in retire.items():
        saved = energy_per_year(rs, pm.skus[k]) + support_per_year(rs, pm.skus[k])
        out.append(f"retire {n} x {k}: saves {saved:,.0f} a year each in energy and support")
    for line in rent:
        out.append(f"rent {line.count} x {line.instance} ({line.option}): {line.cost:,.0f} this year, "
                   f"{line.gpu_hours:,.0f} GPU-hours")
    return out
