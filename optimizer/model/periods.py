"""The purchase MIP over periods: one model with a period index y = 1..Y (``periods.years``).

Formulation (names as in the code; per-year figures from ``optimizer.periods``)::

    sets    y ∈ 1..Y; c ∈ candidates of year y (its models: a workload's model may change by year);
            s ∈ server SKUs to own (bought or inventory), o ∈ rent options of cloud instance SKUs
            (on-demand for one year; committed terms T_o > 1 slot in as further options)
    vars    r[y,c] ∈ Z+, q[y,c,b] ≥ 0 (routing), x[y,f] ∈ {0,1} (a fine-tuning job runs every year)
            buy[s,y] ∈ Z+        servers bought at the start of year y (only SKUs the scenario allows)
            ret[s,y] ∈ Z+        inventory of s retired by year y (cumulative; ret[s,y−1] ≤ ret[s,y] ≤ I_s)
            rent[o,y] ∈ Z+       instances of option o started in year y
            z[g] ∈ {0,1}         GPU type g is used in some year; v[w,s,y] ∈ {0,1} (spread workloads)
    own     n[s,y] = I_s − ret[s,y] + Σ_{t≤y} buy[s,t];   cloud: n[s,y] = Σ_{o of s, y−T_o < t ≤ y} rent[o,t]
    add_period_demand     per year as add_demand: Σ_c ρ·μ_c·r[y,c] ≥ λ_w,y  (with a mix per bucket,
                          Σ_c ρ·μ_c,b·q[y,c,b] ≥ λ_w,y·φ_b, Σ_b q[y,c,b] ≤ r[y,c])
    add_period_demand_bounds  add_demand_bounds' valid inequalities, each year
    add_period_replicas   Σ_c r[y,c] ≥ m_w;  spread (m_w ≥ 2): r[y,c] ≤ R·v[w,s_c,y], v[w,s,y] ≤ Σ_{c on s} r[y,c],
                          n[s,y] ≥ 2·(v[w,s,y] − Σ_{s'≠s} v[w,s',y])   (necessary; placement checks)
                          (s,y) in exact_spread: constraints._named_servers' exact block on year y's
                          candidates of s, need = v − Σ_{s'≠s} v − cross-server r − wide
    add_period_finetune   Σ_f x[y,f] = 1 per job and year
    add_period_packing    Σ_{c on s} g_c·r[y,c] + Σ_{f on s} gpus_f·x[y,f] ≤ G_s·n[s,y]; a population group
                          (``populations``: year y's table merged, one column per layout) has the
                          threshold rows of ``constraints.add_gpu_packing`` on its SKUs' n[s,y], and its
                          spread row above counts Σ_{s in group} n[s,y]
    add_period_power      PUE·Σ_s W_s·n[s,y] ≤ site power   (cloud instances draw 0 on site)
    add_period_racks      aggregate rack rows (racks.aggregate_rows) on n[s,y], each year; for a year in
                          exact_racks (its extraction found no layout) the per-rack block of
                          constraints.per_rack_rows: a[s,k,y] ∈ Z+, Σ_k a[s,k,y] = n[s,y], each rack k < K
                          within its power and units, racks ordered by power, K = min(racks, Σ_s N_s + I_s)
    add_period_budget     (1 + contingency)·(1 + tax)·Σ_y Σ_s price_s,y·buy[s,y] ≤ budget (nominal capex)
    add_period_availability  Σ_{s of g} G_s·Σ_y buy[s,y] ≤ avail_g   (GPUs bought; inventory is had)
    add_period_gpu_types  n[s,y] ≤ N_s·z[g_s];  Σ_g z[g] ≤ max_gpu_types
    objective (npv)  Σ_y δ_y·[Σ_s price_s,y·buy[s,y] + Σ_s (E_s + S_s)·n[s,y]] + Σ_{o,t} C_o,t·rent[o,t]
                     δ_y = 1/(1+d)^(y−1) (everything of year y at its start), E_s = W_s/1000·PUE·8760·e,
                     S_s = opex_per_year_fraction·price_s,1 (support, inventory included),
                     C_o,t = Σ_{k<T_o} δ_{t+k}·hourly_o,t·8760 (a term is paid in full, past Y too)
    objective (tco)  the same with d = 0 (nominal cash out)

Buying beyond N_s = max_y ⌈GPUs at their bounds on s / G_s⌉ (+1 per spread workload) servers of s in
total never pays: cutting the latest purchases keeps every year served and costs no more. Quote
lines (network, storage, shipping, bought racks) are not modelled per period: capex is servers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ortools.math_opt.python import mathopt
from pydantic import ValidationError

from optimizer import periods as per
from optimizer.loaders import ResolvedScenario, inventory_key, resolve_scenario, validation_error
from optimizer.model.build import replica_upper_bound
from optimizer.model.constraints import group_packing_rows, per_rack_rows
from optimizer.model.populations import Merge, merge_populations
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import CandidateSet, ServerSku, build_candidates, fits_rack, server_skus
from optimizer.units import HOURS_PER_YEAR

#: Most primary cost (currency) the folded tie-breaks (fewer servers bought, fewer GPUs in use) stand for.
TIE_BREAK_BUDGET = 0.5


@dataclass
class YearTable:
    """One period's scenario (that year's rates and models) and its candidate table."""

    year: int
    rs: ResolvedScenario
    cands: CandidateSet


def year_scenario(rs: ResolvedScenario, year: int) -> ResolvedScenario:
    """The scenario of one year: each workload at that year's rate and model, inventory GPUs and
    servers allowed (so they are sized), a one-year periods block (cloud instances stay allowed)."""
    sc = rs.scenario
    assert sc.periods is not None
    data = sc.model_dump()
    years = sc.periods.years
    for w_data, w in zip(data["workloads"], sc.workloads, strict=True):
        if w.kind != "inference":
            continue
        w_data["requests_per_s"] = per.demand_by_year(w, years)[year - 1]
        w_data["model"] = per.model_by_year(w, years)[year - 1]
        for key in ("requests_per_s_by_year", "growth_per_year", "model_by_year", "demand"):
            w_data[key] = None
    keys = [inventory_key(item, rs.catalog) for item in sc.inventory]
    cons = data["constraints"]
    if cons["gpus"] is not None:
        cons["gpus"] = sorted(set(cons["gpus"]) | {k.split("/")[1] for k in keys})
    if cons["servers"] is not None:
        cons["servers"] = sorted(set(cons["servers"]) | {k.split("/")[0] for k in keys})
    data["periods"] = {"years": 1}
    data["inventory"] = []
    data["whatif"] = []
    data["catalog"] = None  # rs.catalog already holds the scenario's declared entries
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:  # e.g. a grown rate past a range the scenario itself did not reach
        raise validation_error(exc, f"{rs.path} (year {year})") from exc
    return resolve_scenario(scenario, rs.path, rs.catalog)


def year_tables(rs: ResolvedScenario) -> list[YearTable]:
    """Candidates per year; years serving the same models share one table (sizing ignores rates)."""
    sc = rs.scenario
    assert sc.periods is not None
    memo: dict[tuple[str, ...], CandidateSet] = {}
    out = []
    for y in range(1, sc.periods.years + 1):
        ry = year_scenario(rs, y)
        key = tuple(w.model for w in ry.scenario.workloads)
        if key not in memo:
            memo[key] = build_candidates(ry)
        out.append(YearTable(y, ry, memo[key]))
    return out


@dataclass
class PeriodModel:
    model: mathopt.Model
    rs: ResolvedScenario
    tables: list[YearTable]
    skus: dict[str, ServerSku]
    buyable: frozenset[str]
    inventory: dict[str, int]
    objective: str
    rate: float
    r: dict[tuple[int, int], mathopt.Variable] = field(default_factory=dict)
    q: dict[tuple[int, int, int], mathopt.Variable] = field(default_factory=dict)
    x: dict[tuple[int, int], mathopt.Variable] = field(default_factory=dict)
    buy: dict[tuple[str, int], mathopt.Variable] = field(default_factory=dict)
    ret: dict[tuple[str, int], mathopt.Variable] = field(default_factory=dict)
    rent: dict[tuple[str, str, int], mathopt.Variable] = field(default_factory=dict)
    options: dict[tuple[str, str, int], per.RentOption] = field(default_factory=dict)
    z: dict[str, mathopt.Variable] = field(default_factory=dict)
    v: dict[tuple[str, str, int], mathopt.Variable] = field(default_factory=dict)
    own: dict[tuple[str, int], mathopt.LinearExpression] = field(default_factory=dict)
    bound: dict[str, int] = field(default_factory=dict)  # N_s
    #: each year's population groups (``optimizer.model.populations``): its table above is the merged one
    merges: dict[int, Merge] = field(default_factory=dict)
    #: (SKU, year) given the exact named-server spread block (placement proved the necessary row short)
    exact_spread: frozenset[tuple[str, int]] = frozenset()
    #: years given the per-rack rows (racking proved the aggregate rows short); a[s,k,y] their variables
    exact_racks: frozenset[int] = frozenset()
    a: dict[tuple[str, int, int], mathopt.Variable] = field(default_factory=dict)

    @property
    def years(self) -> int:
        return len(self.tables)

    def bin_of(self, sku: str, year: int) -> str:
        """The packing unit of a SKU in year y: its population group's key, else the SKU itself."""
        return self.merges[year].bin_of(sku)

    def servers_of(self, key: str, year: int) -> tuple[str, ...]:
        """The SKUs of packing unit ``key`` in year y (a group's, or the SKU alone)."""
        return self.merges[year].groups.get(key, (key,))


def inventory_counts(rs: ResolvedScenario) -> dict[str, int]:
    """Servers owned per canonical SKU key (items of the same SKU add up)."""
    out: dict[str, int] = defaultdict(int)
    for item in rs.scenario.inventory:
        out[inventory_key(item, rs.catalog)] += item.count
    return dict(out)


def price_in_year(rs: ResolvedScenario, sku: ServerSku, year: int) -> float:
    """A SKU's server price (or a cloud instance's hourly price) in year y (``optimizer.periods``)."""
    p = rs.scenario.periods
    assert p is not None
    if sku.hourly_price is not None:
        return per.item_price(p, sku.chassis.name, sku.hourly_price, year)
    return per.server_price(p, sku.chassis.name, sku.chassis_price, sku.gpu.name, sku.gpu_price, sku.gpus, year)


def energy_per_year(rs: ResolvedScenario, sku: ServerSku) -> float:
    """E_s: one server's energy for a year at full load, W/1000 x PUE x 8760 h x price per kWh."""
    site = rs.scenario.site
    return sku.power_w / 1000.0 * site.pue * HOURS_PER_YEAR * site.electricity_per_kwh


def support_per_year(rs: ResolvedScenario, sku: ServerSku) -> float:
    """S_s: opex_per_year_fraction x the server's year-1 price (0 for a cloud instance)."""
    if sku.hourly_price is not None:
        return 0.0
    return rs.scenario.opex_per_year_fraction * sku.unit_price


def options_of(rs: ResolvedScenario, sku: ServerSku, year: int) -> list[per.RentOption]:
    """Rent options of a cloud instance SKU starting in year y: on demand, and each committed term
    the catalog prices (``hourly_1y_usd`` / ``hourly_3y_usd``, converted to the scenario currency;
    a ``prices:`` override of the instance sets its on-demand price only)."""
    assert rs.scenario.periods is not None and sku.hourly_price is not None
    rate = rs.scenario.usd_rate
    committed = {t: h * rate for t, h in ((1, sku.chassis.hourly_1y_usd), (3, sku.chassis.hourly_3y_usd))
                 if h is not None}
    return per.rent_options(rs.scenario.periods, sku.chassis.name, sku.hourly_price, year, committed)


def _skus(tables: list[YearTable]) -> dict[str, ServerSku]:
    """Every SKU some year's table holds, by key (an inventory SKU that ``candidates._distinct``
    replaced by a twin is not among them: build_period_model names the twin)."""
    skus: dict[str, ServerSku] = {}
    for t in tables:
        skus.update(t.cands.skus)
    return dict(sorted(skus.items()))


def _merges(tables: list[YearTable], exact_spread: frozenset[tuple[str, int]], merge: bool) -> dict[int, Merge]:
    """Each year's population groups; years that share a table and keep the same SKUs apart share one."""
    memo: dict[tuple[int, frozenset[str]], Merge] = {}
    out = {}
    for t in tables:
        apart = frozenset(s for s, y in exact_spread if y == t.year)
        key = (id(t.cands), apart)
        if key not in memo:
            memo[key] = merge_populations(t.cands, apart) if merge else Merge.none(t.cands)
        out[t.year] = memo[key]
    return out


def add_period_variables(pm: PeriodModel) -> None:
    """r, q, x per year; buy, ret, rent, z; own[s,y] as expressions; N_s bounds (module docstring)."""
    m, sc = pm.model, pm.rs.scenario
    gpus_on: dict[tuple[str, int], int] = defaultdict(int)  # by (packing unit, year)
    spread_on: dict[str, set[str]] = defaultdict(set)  # by packing unit
    for t in pm.tables:
        y = t.year
        workloads = t.rs.scenario.inference_workloads()
        for i, c in enumerate(t.cands.inference):
            w = workloads[c.workload]
            ub = replica_upper_bound(w, c, sc.headroom)
            pm.r[(y, i)] = m.add_integer_variable(lb=0, ub=ub, name=f"r[{y},{i}]")
            gpus_on[(pm.bin_of(c.sku, y), y)] += ub * c.gpus_per_replica
            if w.min_replicas >= 2:
                spread_on[pm.bin_of(c.sku, y)].add(w.name)
            if c.bucket_perf:
                for b, mu in enumerate(c.bucket_rps):
                    if mu > 0:
                        pm.q[(y, i, b)] = m.add_variable(lb=0, ub=ub, name=f"q[{y},{i},{b}]")
        for j, f in enumerate(t.cands.finetune):
            pm.x[(y, j)] = m.add_binary_variable(name=f"x[{y},{j}]")
            gpus_on[(f.sku, y)] += f.gpus
    site = sc.site
    for key, sku in pm.skus.items():
        bins = {pm.bin_of(key, y) for y in range(1, pm.years + 1)}
        need = max((gpus_on[(pm.bin_of(key, y), y)] for y in range(1, pm.years + 1)), default=0)
        bound = math.ceil(need / sku.gpus) + len(set().union(*(spread_on[b] for b in bins))) if need else 0
        if not fits_rack(sku, site.rack_power_kw, site.rack_units):
            bound = 0
        pm.bound[key] = bound
        inv = pm.inventory.get(key, 0)
        for y in range(1, pm.years + 1):
            if sku.hourly_price is not None:
                terms = []
                for o in options_of(pm.rs, sku, y):
                    var = m.add_integer_variable(lb=0, ub=bound, name=f"rent[{key},{o.name},{y}]")
                    pm.rent[(key, o.name, y)] = var
                    pm.options[(key, o.name, y)] = o
                for (k2, name, start), var in pm.rent.items():
                    if k2 == key and start <= y < start + pm.options[(k2, name, start)].term_years:
                        terms.append(var)
                pm.own[(key, y)] = mathopt.fast_sum(terms)
                continue
            ub = bound if key in pm.buyable else 0
            pm.buy[(key, y)] = m.add_integer_variable(lb=0, ub=ub, name=f"buy[{key},{y}]")
            if inv:
                pm.ret[(key, y)] = m.add_integer_variable(lb=0, ub=inv, name=f"ret[{key},{y}]")
                if y > 1:
                    m.add_linear_constraint(pm.ret[(key, y)] >= pm.ret[(key, y - 1)], name=f"retired[{key},{y}]")
            bought = mathopt.fast_sum(pm.buy[(key, t)] for t in range(1, y + 1))
            pm.own[(key, y)] = (inv - pm.ret[(key, y)] + bought) if inv else bought
        if sku.hourly_price is None and bound:
            m.add_linear_constraint(mathopt.fast_sum(pm.buy[(key, y)] for y in range(1, pm.years + 1)) <= bound,
                                    name=f"bought_bound[{key}]")
    for g in sorted({sku.gpu.name for sku in pm.skus.values()}):
        pm.z[g] = m.add_binary_variable(name=f"z[{g}]")


def add_period_demand(pm: PeriodModel) -> None:
    """Demand of each workload in each year on that year's candidates (with routing for a mix)."""
    rho = pm.rs.scenario.headroom
    for t in pm.tables:
        y = t.year
        for w in t.rs.scenario.inference_workloads().values():
            idx = [i for i, c in enumerate(t.cands.inference) if c.workload == w.name]
            buckets = w.buckets()
            if len(buckets) == 1:
                terms = [rho * t.cands.inference[i].capacity_rps * pm.r[(y, i)] for i in idx]
                pm.model.add_linear_constraint(mathopt.fast_sum(terms) >= w.requests_per_s,
                                               name=f"demand[{w.name},{y}]")
                continue
            for b, (_, _, share) in enumerate(buckets):
                terms = [rho * t.cands.inference[i].bucket_rps[b] * pm.q[(y, i, b)] for i in idx if (y, i, b) in pm.q]
                pm.model.add_linear_constraint(mathopt.fast_sum(terms) >= w.requests_per_s * share,
                                               name=f"demand[{w.name},{y},{b}]")
            for i in idx:
                routed = [pm.q[(y, i, b)] for b in range(len(buckets)) if (y, i, b) in pm.q]
                pm.model.add_linear_constraint(mathopt.fast_sum(routed) <= pm.r[(y, i)], name=f"routing[{y},{i}]")


def add_period_demand_bounds(pm: PeriodModel) -> None:
    """Per year, add_demand_bounds' valid inequalities: Σ_c r[y,c] ≥ ⌈λ_w,y / (ρ·max μ_c)⌉ and
    Σ_c g_c·r[y,c] ≥ ⌈λ_w,y / (ρ·max μ_c/g_c)⌉ (per bucket with a mix); no integer plan is cut off."""
    rho = pm.rs.scenario.headroom
    for t in pm.tables:
        for w in t.rs.scenario.inference_workloads().values():
            idx = [i for i, c in enumerate(t.cands.inference) if c.workload == w.name]
            cs = [t.cands.inference[i] for i in idx]
            if not cs:
                continue
            replica_load = gpu_load = 0.0
            for b, (_, _, share) in enumerate(w.buckets()):
                best = max(c.bucket_rps[b] for c in cs)
                if best <= 0:  # no candidate serves the bucket: the demand row is infeasible anyway
                    break
                replica_load += w.requests_per_s * share / (rho * best)
                gpu_load += w.requests_per_s * share / (rho * max(c.bucket_rps[b] / c.gpus_per_replica for c in cs))
            else:
                y = t.year
                pm.model.add_linear_constraint(mathopt.fast_sum(pm.r[(y, i)] for i in idx)
                                               >= math.ceil(replica_load - 1e-9), name=f"replicas_needed[{w.name},{y}]")
                pm.model.add_linear_constraint(
                    mathopt.fast_sum(c.gpus_per_replica * pm.r[(y, i)] for i, c in zip(idx, cs, strict=True))
                    >= math.ceil(gpu_load - 1e-9), name=f"gpus_needed[{w.name},{y}]")


def add_period_replicas(pm: PeriodModel) -> None:
    """Minimum replicas each year; spread workloads on two servers (necessary row, as add_spread's
    without its wide and cross-server terms: stricter, so a plan it admits is checked by placement)."""
    m = pm.model
    for t in pm.tables:
        y = t.year
        for w in t.rs.scenario.inference_workloads().values():
            idx = [i for i, c in enumerate(t.cands.inference) if c.workload == w.name]
            m.add_linear_constraint(mathopt.fast_sum(pm.r[(y, i)] for i in idx) >= w.min_replicas,
                                    name=f"min_replicas[{w.name},{y}]")
            if w.min_replicas < 2:
                continue
            on: dict[str, list[int]] = defaultdict(list)  # by packing unit
            for i in idx:
                on[pm.bin_of(t.cands.inference[i].sku, y)].append(i)
            for s in sorted(on):
                pm.v[(w.name, s, y)] = m.add_binary_variable(name=f"v[{w.name},{s},{y}]")
                for i in on[s]:
                    m.add_linear_constraint(pm.r[(y, i)] <= pm.r[(y, i)].upper_bound * pm.v[(w.name, s, y)],
                                            name=f"uses[{y},{i}]")
                # v only where replicas really are, or a v of an unused SKU would excuse the spread rows
                m.add_linear_constraint(pm.v[(w.name, s, y)] <= mathopt.fast_sum(pm.r[(y, i)] for i in on[s]),
                                        name=f"used_only[{w.name},{s},{y}]")
            for s in sorted(on):
                others = mathopt.fast_sum(pm.v[(w.name, s2, y)] for s2 in sorted(on) if s2 != s)
                servers = mathopt.fast_sum(pm.own[(k, y)] for k in pm.servers_of(s, y))
                m.add_linear_constraint(servers >= 2 * (pm.v[(w.name, s, y)] - others),
                                        name=f"spread[{w.name},{s},{y}]")
    for s, y in sorted(pm.exact_spread):
        add_period_named_servers(pm, s, y)


def add_period_named_servers(pm: PeriodModel, s: str, y: int) -> None:
    """The exact spread block of SKU s in year y (``constraints._named_servers``, whose docstring
    proves it exact): M = 2·|W_s| named servers j (σ_j: server j exists, σ_j ≥ σ_{j+1}) hold q_j[c]
    spread replicas and N_j[g] other items of g GPUs within G_s; each spread workload w with
    need = v[w,s,y] − Σ_{s'≠s} v[w,s',y] − Σ_{c of w on s spanning servers} r[y,c] − wide[w,s,y]
    > 0 has replicas on two named servers; the rest of s's load fits the n[s,y] − Σ_j σ_j others."""
    m, t = pm.model, pm.tables[y - 1]
    cands, g_s = t.cands, pm.skus[s].gpus
    workloads = t.rs.scenario.inference_workloads()
    on_s = [i for i, c in enumerate(cands.inference) if c.sku == s]
    idx_of: dict[str, list[int]] = defaultdict(list)
    for i in on_s:
        if workloads[cands.inference[i].workload].min_replicas >= 2:
            idx_of[cands.inference[i].workload].append(i)
    if not idx_of:
        return
    need: dict[str, mathopt.LinearExpression] = {}
    for w, idx in sorted(idx_of.items()):
        others = [pm.v[(w, s2, y)] for (w2, s2, y2) in sorted(pm.v) if w2 == w and y2 == y and s2 != s]
        multi = [pm.r[(y, i)] for i in idx if cands.inference[i].servers_per_replica > 1]
        wide = m.add_binary_variable(name=f"wide[{w},{s},{y}]")  # more GPUs of w on s than one server holds
        m.add_linear_constraint((g_s + 1) * wide <= mathopt.fast_sum(cands.inference[i].gpus_per_replica
                                                                     * pm.r[(y, i)] for i in idx),
                                name=f"wide_only[{w},{s},{y}]")
        need[w] = pm.v[(w, s, y)] - mathopt.fast_sum(others) - mathopt.fast_sum(multi) - wide
    spread_idx = sorted(i for idx in idx_of.values() for i in idx
                        if cands.inference[i].servers_per_replica == 1 and cands.inference[i].gpus_per_replica <= g_s)
    other = [i for i in on_s if i not in spread_idx and cands.inference[i].servers_per_replica == 1]
    ft_on = [j for j, f in enumerate(cands.finetune) if f.sku == s]
    ft = [j for j in ft_on if cands.finetune[j].gpus <= g_s]
    sizes = sorted({cands.inference[i].gpus_per_replica for i in other} | {cands.finetune[j].gpus for j in ft})
    total = mathopt.fast_sum([cands.inference[i].gpus_per_replica * pm.r[(y, i)] for i in on_s]
                             + [cands.finetune[j].gpus * pm.x[(y, j)] for j in ft_on])
    sigma, loads = [], []
    q: list[dict[int, mathopt.Variable]] = []
    items: list[dict[int, mathopt.Variable]] = []
    for j in range(2 * len(idx_of)):
        sigma.append(m.add_binary_variable(name=f"named[{s},{y},{j}]"))
        q.append({i: m.add_integer_variable(lb=0, ub=min(pm.r[(y, i)].upper_bound,
                                                         g_s // cands.inference[i].gpus_per_replica),
                                            name=f"q[{s},{y},{j},{i}]") for i in spread_idx})
        items.append({g: m.add_integer_variable(lb=0, ub=g_s // g, name=f"N[{s},{y},{j},{g}]") for g in sizes})
        load = mathopt.fast_sum([cands.inference[i].gpus_per_replica * v for i, v in q[j].items()]
                                + [g * n_g for g, n_g in items[j].items()])
        m.add_linear_constraint(load <= g_s * sigma[j], name=f"named_load[{s},{y},{j}]")
        loads.append(load)
        if j:
            m.add_linear_constraint(sigma[j - 1] >= sigma[j], name=f"named_order[{s},{y},{j}]")
    for w, idx in sorted(idx_of.items()):
        hosts = []
        for j in range(len(sigma)):
            b = m.add_binary_variable(name=f"b[{w},{s},{y},{j}]")
            m.add_linear_constraint(b <= mathopt.fast_sum(q[j][i] for i in idx if i in q[j]),
                                    name=f"hosts[{w},{s},{y},{j}]")
            hosts.append(b)
        m.add_linear_constraint(mathopt.fast_sum(hosts) >= 2 * need[w], name=f"spread_exact[{w},{s},{y}]")
    for i in spread_idx:
        m.add_linear_constraint(mathopt.fast_sum(qj[i] for qj in q) <= pm.r[(y, i)], name=f"named_of[{s},{y},{i}]")
    for g in sizes:
        avail = mathopt.fast_sum([pm.r[(y, i)] for i in other if cands.inference[i].gpus_per_replica == g]
                                 + [pm.x[(y, j)] for j in ft if cands.finetune[j].gpus == g])
        m.add_linear_constraint(mathopt.fast_sum(it[g] for it in items) <= avail, name=f"named_items[{s},{y},{g}]")
    own = pm.own[(s, y)]
    m.add_linear_constraint(mathopt.fast_sum(sigma) <= own, name=f"named_exist[{s},{y}]")
    m.add_linear_constraint(total - mathopt.fast_sum(loads) <= g_s * (own - mathopt.fast_sum(sigma)),
                            name=f"beyond_named[{s},{y}]")


def add_period_finetune(pm: PeriodModel) -> None:
    """Every fine-tuning job runs on one candidate GPU group each year."""
    for t in pm.tables:
        for w in t.rs.scenario.finetune_workloads().values():
            terms = [pm.x[(t.year, j)] for j, f in enumerate(t.cands.finetune) if f.workload == w.name]
            pm.model.add_linear_constraint(mathopt.fast_sum(terms) == 1, name=f"finetune[{w.name},{t.year}]")


def add_period_packing(pm: PeriodModel) -> None:
    """GPUs in use on SKU s in year y fit the GPUs of the servers owned or rented that year; a
    population group's threshold rows on its SKUs' n[s,y] (``constraints.add_gpu_packing``)."""
    for t in pm.tables:
        y, merge = t.year, pm.merges[t.year]
        used: dict[str, list[mathopt.LinearExpression]] = defaultdict(list)
        columns: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(t.cands.inference):
            if c.sku in merge.group_of:
                columns[merge.group_of[c.sku]].append(i)
            else:
                used[c.sku].append(c.gpus_per_replica * pm.r[(y, i)])
        for j, f in enumerate(t.cands.finetune):
            used[f.sku].append(f.gpus * pm.x[(y, j)])
        for key in sorted(used):
            pm.model.add_linear_constraint(mathopt.fast_sum(used[key]) <= pm.skus[key].gpus * pm.own[(key, y)],
                                           name=f"packing[{key},{y}]")
        for key, skus in merge.groups.items():
            replicas = {i: pm.r[(y, i)] for i in columns[key]}
            servers = {s: pm.own[(s, y)] for s in skus}
            group_packing_rows(pm.model, t.cands, key, skus, columns[key], replicas.__getitem__,
                               servers.__getitem__, suffix=f",{y}")


def add_period_power(pm: PeriodModel) -> None:
    """PUE·Σ_s W_s·n[s,y] ≤ site power, each year."""
    site = pm.rs.scenario.site
    for y in range(1, pm.years + 1):
        watts = mathopt.fast_sum(sku.power_w * pm.own[(k, y)] for k, sku in pm.skus.items() if sku.power_w)
        pm.model.add_linear_constraint(site.pue * watts <= site.power_kw * 1000.0, name=f"site_power[{y}]")


def add_period_racks(pm: PeriodModel) -> None:
    """The aggregate rack rows for the site's racks on what is owned each year (necessary; the
    extraction racks each year exactly and says so if no layout is found)."""
    from optimizer.model.racks import aggregate_rows

    site = pm.rs.scenario.site
    live = {k: s for k, s in pm.skus.items() if s.hourly_price is None and (pm.bound[k] or pm.inventory.get(k))}
    for row in aggregate_rows(live, site.rack_power_kw, site.rack_units):
        if not math.isfinite(row.per_rack):
            continue
        for y in range(1, pm.years + 1):
            lhs = mathopt.fast_sum(c * pm.own[(k, y)] for k, c in row.coef.items())
            pm.model.add_linear_constraint(lhs <= row.per_rack * site.racks, name=f"racks_{row.name}[{y}]")
    for y in sorted(pm.exact_racks):
        add_period_exact_racks(pm, live, y)


def add_period_exact_racks(pm: PeriodModel, live: dict[str, ServerSku], y: int) -> None:
    """The per-rack block of year y (``constraints.per_rack_rows`` on what is owned that year):
    every used rack holds a server, so K = min(racks, most servers ownable) racks lose no plan."""
    site = pm.rs.scenario.site
    most = {k: pm.bound[k] + pm.inventory.get(k, 0) for k in live}
    racks = min(site.racks, max(sum(most.values()), 1))
    a = per_rack_rows(pm.model, live, {k: pm.own[(k, y)] for k in live}, most, racks, site.rack_power_kw,
                      site.rack_units, suffix=f",{y}")
    pm.a.update({(key, k, y): var for (key, k), var in a.items()})


def capex_expression(pm: PeriodModel, year: int) -> mathopt.LinearExpression:
    """Σ_s price_s,y·buy[s,y]: servers bought at the start of year y at that year's prices."""
    return mathopt.fast_sum(price_in_year(pm.rs, pm.skus[k], y) * var
                            for (k, y), var in sorted(pm.buy.items()) if y == year)


def add_period_budget(pm: PeriodModel) -> None:
    """(1 + contingency)·(1 + tax)·nominal capex over all years ≤ budget."""
    sc = pm.rs.scenario
    if sc.constraints.budget is None:
        return
    total = mathopt.fast_sum(capex_expression(pm, y) for y in range(1, pm.years + 1))
    pm.model.add_linear_constraint(sc.finance.budget_factor * total <= sc.constraints.budget, name="budget")


def add_period_availability(pm: PeriodModel) -> None:
    """GPUs of a type bought over the plan ≤ what can be obtained (inventory is already had)."""
    avail = {pm.rs.catalog.gpus[g].name if g in pm.rs.catalog.gpus else g: n
             for g, n in pm.rs.scenario.constraints.availability.items()}
    for g, cap in sorted(avail.items()):
        terms = [pm.skus[k].gpus * var for (k, _), var in sorted(pm.buy.items()) if pm.skus[k].gpu.name == g]
        pm.model.add_linear_constraint(mathopt.fast_sum(terms) <= cap, name=f"availability[{g}]")


def add_period_gpu_types(pm: PeriodModel) -> None:
    """n[s,y] ≤ N_s·z[g_s] (N_s here: the bound plus inventory); Σ_g z[g] ≤ max_gpu_types."""
    for (k, y), own in sorted(pm.own.items(), key=lambda kv: kv[0]):
        most = pm.bound[k] + pm.inventory.get(k, 0)
        pm.model.add_linear_constraint(own <= most * pm.z[pm.skus[k].gpu.name], name=f"type_used[{k},{y}]")
    limit = pm.rs.scenario.constraints.max_gpu_types
    if limit is not None:
        pm.model.add_linear_constraint(mathopt.fast_sum(pm.z.values()) <= limit, name="max_gpu_types")


def cash_expression(pm: PeriodModel, rate: float) -> mathopt.LinearExpression:
    """Σ_y δ_y·(capex_y + Σ_s (E_s + S_s)·n[s,y]) + Σ_{o,t} C_o,t·rent[o,t] at discount rate ``rate``."""
    terms: list[mathopt.LinearExpression] = []
    for y in range(1, pm.years + 1):
        df = per.discount_factor(rate, y)
        terms.append(df * capex_expression(pm, y))
        for k, sku in pm.skus.items():
            running = energy_per_year(pm.rs, sku) + support_per_year(pm.rs, sku)
            if running and sku.hourly_price is None:
                terms.append(df * running * pm.own[(k, y)])
    for key, var in sorted(pm.rent.items()):
        o = pm.options[key]
        start = key[2]
        terms.append(sum(per.discount_factor(rate, start + k) for k in range(o.term_years)) * o.year_cost() * var)
    return mathopt.fast_sum(terms)


def tie_break_expression(pm: PeriodModel) -> mathopt.LinearExpression:
    """Fewer GPU types, then fewer servers bought or rented, then fewer GPUs in use, worth at most
    TIE_BREAK_BUDGET in all (so never a reason to pay more)."""
    servers = list(pm.buy.values()) + list(pm.rent.values())
    gpus = [(c.gpus_per_replica, pm.r[(t.year, i)]) for t in pm.tables for i, c in enumerate(t.cands.inference)]
    most = (1e7 * len(pm.z) + 1e4 * sum(v.upper_bound for v in servers)
            + 1.0 * sum(g * v.upper_bound for g, v in gpus))
    scale = TIE_BREAK_BUDGET / max(most, 1.0)
    return scale * (1e7 * mathopt.fast_sum(pm.z.values()) + 1e4 * mathopt.fast_sum(servers)
                    + mathopt.fast_sum(g * v for g, v in gpus))


def build_period_model(rs: ResolvedScenario, tables: list[YearTable] | None = None,
                       exact_spread: frozenset[tuple[str, int]] = frozenset(), merge: bool = True,
                       exact_racks: frozenset[int] = frozenset()) -> PeriodModel:
    """The whole multi-period MIP, families in the order of the module docstring; ``exact_spread``
    names the (SKU, year) pairs given the exact spread block and ``exact_racks`` the years given
    the per-rack rows (``periods_plan.solve_period_tables``).
    With ``merge`` (the default) each year's table is merged across population groups
    (``populations.merge_populations``, the SKUs of that year's exact spread blocks kept apart):
    ``pm.tables`` then holds the merged tables and ``pm.merges`` how to split them back."""
    sc = rs.scenario
    assert sc.periods is not None
    tables = tables if tables is not None else year_tables(rs)
    merges = _merges(tables, exact_spread, merge)
    tables = [YearTable(t.year, t.rs, merges[t.year].cands) for t in tables]
    inventory = inventory_counts(rs)
    skus = _skus(tables)
    missing = sorted(k for k in inventory if k not in skus)
    if missing:
        from optimizer.errors import ScenarioError

        _, gpu, count = missing[0].split("/")
        twins = sorted(k for k, s in skus.items() if s.gpu.name == gpu and s.gpus == int(count))
        raise ScenarioError(f"inventory SKU {missing[0]} is not planned: a twin SKU of the same GPU, GPU count and "
                            "price stands for it, or it fits no rack", file=str(rs.path), field="inventory",
                            hint=f"name it as {' or '.join(twins)}" if twins else "check its rack power and units")
    objective = sc.objective
    rate = per.discount_rate(sc) if objective == "npv" else 0.0
    pm = PeriodModel(model=mathopt.Model(name="procure-periods"), rs=rs, tables=tables, skus=skus,
                     buyable=frozenset(server_skus(rs)), inventory=inventory, objective=objective, rate=rate,
                     exact_spread=exact_spread, merges=merges, exact_racks=exact_racks)
    add_period_variables(pm)
    add_period_demand(pm)
    add_period_demand_bounds(pm)
    add_period_replicas(pm)
    add_period_finetune(pm)
    add_period_packing(pm)
    add_period_power(pm)
    add_period_racks(pm)
    add_period_budget(pm)
    add_period_availability(pm)
    add_period_gpu_types(pm)
    pm.model.minimize(cash_expression(pm, rate) + tie_break_expression(pm))
    return pm
