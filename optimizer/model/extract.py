"""Read solver values back into a typed Plan (counts, deployments, coverage, placement, costs)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from optimizer import __version__, quote
from optimizer.errors import RackingError
from optimizer.loaders import ResolvedScenario
from optimizer.model.build import MipModel
from optimizer.model.placement import Item, place
from optimizer.model.populations import split_replicas
from optimizer.model.racks import first_fit_racks, rack_plan
from optimizer.model.solve import SolveOutcome, SolveSettings
from optimizer.schema.plan import (
    BucketLoad,
    Deployment,
    FinetuneAssignment,
    MemoryAccount,
    Plan,
    QuoteLine,
    ServerLine,
    SolverReport,
    WorkloadCoverage,
)
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate
from optimizer.sizing.memory import ServingMemory
from optimizer.units import GIB, HOURS_PER_YEAR


def _int(v: float) -> int:
    return round(v)


def memory_account(mem: ServingMemory) -> MemoryAccount:
    """The sizing result a deployment was chosen with, in GiB for the plan and its reports."""
    return MemoryAccount(
        gpu_memory_gib=mem.gpu_memory_bytes / GIB, budget_gib=mem.budget_bytes / GIB,
        activation_peak_gib=mem.activation_peak_bytes / GIB, non_torch_gib=mem.non_torch_bytes / GIB,
        kv_cache_gib=mem.kv_cache_bytes / GIB, cuda_graph_gib=mem.cuda_graph_bytes / GIB,
        max_model_len=mem.max_model_len, max_concurrency=mem.max_concurrency)


def _capacity_provenance(cands: CandidateSet, gpu: str, c: InferenceCandidate,
                         confidence: float) -> dict[str, Any]:
    """Where a deployment's capacity comes from and which quantile of its band it is planned at
    (a measured point is taken as exact: the median, no band)."""
    if c.perf.source == "measured":
        return {"efficiency_source": "measured", "capacity_quantile": 0.5, "capacity_band_log_sd": 0.0}
    eff = cands.efficiency.get(gpu)
    if eff is None:  # a candidate table made without the throughput model (tests' hand tables)
        return {}
    return {"efficiency_source": eff.provenance, "capacity_quantile": round(1.0 - confidence, 6),
            "capacity_band_log_sd": eff.band_log_sd}


def routed_capacity(bucket_rps: tuple[float, ...], loads: list[float]) -> float:
    """One replica's SLO capacity on the mix of buckets routed to it (time-sharing:
    Σ loads / Σ_b load_b / μ_b); on the best bucket it serves when nothing is routed."""
    total = sum(loads)
    if total <= 0:
        return max(bucket_rps)
    return total / sum(load / mu for load, mu in zip(loads, bucket_rps, strict=True) if load > 0)


def routed_loads(mm: MipModel, val: dict[Any, float], chosen: list[tuple[int, InferenceCandidate, int]]
                 ) -> dict[int, list[float]]:
    """Requests/s of each length bucket routed to each chosen candidate of a workload with a mix.

    The MIP's q[c,b] replicas carry up to ρ·μ_c,b·q[c,b] of bucket b (:func:`split_bucket_loads`)."""
    rho = mm.rs.scenario.headroom
    carry = {i: [rho * mu * max(val[mm.q[(i, b)]], 0.0) if (i, b) in mm.q else 0.0
                 for b, mu in enumerate(c.bucket_rps)]
             for i, c, _ in chosen if c.bucket_perf}
    return split_bucket_loads(carry, {i: mm.cands.inference[i].workload for i in carry},
                              mm.rs.scenario.inference_workloads())


def split_bucket_loads(carry: dict[int, list[float]], workload_of: dict[int, str],
                       workloads: dict[str, InferenceWorkload]) -> dict[int, list[float]]:
    """Each bucket's served rate (its demand, or less under coverage) split over the candidates of
    its workload in proportion to what they can carry of it (``carry``: req/s per bucket)."""
    out: dict[int, list[float]] = {i: [0.0] * len(loads) for i, loads in carry.items()}
    for name, w in workloads.items():
        mine = [i for i in carry if workload_of[i] == name]
        for b, (_, _, share) in enumerate(w.buckets() if mine else []):
            total = sum(carry[i][b] for i in mine)
            served = min(w.requests_per_s * share, total)
            for i in mine:
                out[i][b] = served * carry[i][b] / total if total > 0 else 0.0
    return out


def bucket_loads(w: InferenceWorkload, c: InferenceCandidate, loads: list[float]) -> list[BucketLoad]:
    """The plan's record of the buckets routed to candidate c (those with load), as each is sized alone."""
    return [BucketLoad(input_tokens=i_tok, output_tokens=o_tok, capacity_rps=p.requests_per_s,
                       planned_rps=load, ttft_ms=p.ttft_ms, tpot_ms=p.tpot_ms)
            for (i_tok, o_tok, _), p, load in zip(w.buckets(), c.bucket_perf, loads, strict=True) if load > 0]


def served_rps_of(w: InferenceWorkload, cap_by_w: dict[str, float], routes: dict[int, list[float]],
                  mm: MipModel) -> float:
    """Requests/s of ``w`` the plan serves: its capacity after headroom, or with a length mix the
    rates routed bucket by bucket (spare capacity on one bucket does not serve another)."""
    if len(w.buckets()) == 1:
        return cap_by_w.get(w.name, 0.0)
    return sum(sum(loads) for i, loads in routes.items() if mm.cands.inference[i].workload == w.name)


def cost_figures(mm: MipModel, counts: dict[str, int]) -> dict[str, float]:
    """capex, energy, opex, TCO and power from server counts (the same sums the MIP uses)."""
    sc = mm.rs.scenario
    capex = sum(mm.cands.skus[k].unit_price * n for k, n in counts.items())
    power_w = sum(mm.cands.skus[k].power_w * n for k, n in counts.items())
    energy = power_w / 1000.0 * sc.site.pue * HOURS_PER_YEAR * sc.horizon_years * sc.site.electricity_per_kwh
    opex = quote.opex_per_year(mm.rs, capex) * sc.horizon_years
    return {"capex": capex, "power_w": power_w, "energy": energy, "opex": opex, "tco": capex + energy + opex}


def finance_figures(rs: ResolvedScenario, hardware: float, lines: list[QuoteLine]) -> dict[str, float]:
    """capex (servers + quote lines), contingency, tax and their total (what the budget row bounds)."""
    fin = rs.scenario.finance
    capex = hardware + sum(q.extended_price for q in lines)
    contingency = capex * fin.contingency_pct
    tax = (capex + contingency) * fin.tax_pct
    return {"capex": capex, "contingency": contingency, "tax": tax, "total_with_tax": capex + contingency + tax}


def rack_layout(mm: MipModel, counts: dict[str, int], val: dict[Any, float]) -> dict[str, list[int]]:
    """The rack of each server when the MIP had no per-rack variables (add_racks): first-fit, else
    the exact packing, into the site's racks, or the K the MIP priced when racks are bought.
    RackingError when none exists: the aggregate rows admitted the plan, the per-rack rows decide."""
    site = mm.rs.scenario.site
    if mm.rack_count is not None:
        limit: int | None = _int(val[mm.rack_count])
    else:
        limit = mm.limits.racks
    if limit is None:  # racks lifted (the diagnosis's relaxations) and not bought
        return first_fit_racks(counts, mm.cands.skus, site.rack_power_kw, site.rack_units)
    layout = rack_plan(counts, mm.cands.skus, site.rack_power_kw, site.rack_units, limit)
    if layout is None:
        servers = ", ".join(f"{n} x {k}" for k, n in sorted(counts.items()))
        raise RackingError(f"no layout of {servers} in {limit} racks of {site.rack_power_kw:g} kW / "
                           f"{site.rack_units} U was found, though the MIP's aggregate rack rows admit it")
    return layout


def extract_plan(mm: MipModel, out: SolveOutcome, settings: SolveSettings, objective: str) -> Plan:
    rs, cands, val = mm.rs, mm.cands, out.values
    sc = rs.scenario
    counts = {k: _int(val[v]) for k, v in mm.n.items() if _int(val[v]) > 0}
    figures = cost_figures(mm, counts)
    servers = [
        ServerLine(sku=k, chassis=cands.skus[k].chassis.name, gpu=cands.skus[k].gpu.name,
                   gpus_per_server=cands.skus[k].gpus, count=n, chassis_price=cands.skus[k].chassis_price,
                   gpu_unit_price=cands.skus[k].gpu_price, unit_price=cands.skus[k].unit_price,
                   power_w=cands.skus[k].power_w, rack_units=cands.skus[k].rack_units,
                   price_source=cands.skus[k].price_source, integrated=cands.skus[k].chassis.integrated,
                   hourly_price=cands.skus[k].hourly_price)
        for k, n in sorted(counts.items())
    ]
    rented = [(s.hourly_price, s.count) for s in servers if s.hourly_price is not None]
    hourly_cost = sum(h * n for h, n in rented) if rented else None
    gpus_by_type: dict[str, int] = defaultdict(int)
    for line in servers:
        gpus_by_type[line.gpu] += line.count * line.gpus_per_server

    inference = sc.inference_workloads()
    demand = {name: w.requests_per_s for name, w in inference.items()}
    chosen = [(i, c, _int(val[mm.r[i]])) for i, c in enumerate(cands.inference) if _int(val[mm.r[i]]) > 0]
    routes = routed_loads(mm, val, chosen)
    column_replicas = {i: r for i, _, r in chosen}
    if mm.groups:  # a population group's column: its replicas onto the SKUs bought
        chosen = split_replicas(mm.merge, chosen, counts, {n for n, w in inference.items() if w.min_replicas >= 2})
    cap_by_w: dict[str, float] = defaultdict(float)
    for i, c, r in chosen:
        cap = routed_capacity(c.bucket_rps, routes[i]) if i in routes else c.capacity_rps
        cap_by_w[c.workload] += r * cap * sc.headroom
    deployments = []
    items: list[Item] = []
    for i, c, r in chosen:
        # what these replicas serve: their share of the served demand (all of it unless coverage
        # leaves part unserved, when capacity after headroom is what is served); with a length
        # mix, what the routing gives them of each bucket
        buckets: list[BucketLoad] = []
        if i in routes:
            loads = [load * r / column_replicas[i] for load in routes[i]]  # this SKU's part of the column
            capacity = routed_capacity(c.bucket_rps, loads)
            share = sum(loads)
            buckets = bucket_loads(inference[c.workload], c, loads)
        else:
            capacity = c.capacity_rps
            served_rps = min(demand[c.workload], cap_by_w[c.workload])
            share = served_rps * (r * c.capacity_rps * sc.headroom) / cap_by_w[c.workload]
        sku = cands.skus[c.sku]
        deployments.append(Deployment(
            workload=c.workload, model=cands.archs[c.workload].name, sku=c.sku, gpu=sku.gpu.name, tp=c.tp,
            pp=c.pp, ep=c.ep, dp=c.dp, precision=c.precision, kv_dtype=c.kv_dtype, replicas=r,
            gpus_per_replica=c.gpus_per_replica,
            capacity_rps=capacity, planned_rps=share,
            ttft_ms=max((b.ttft_ms for b in buckets), default=c.perf.ttft_ms),
            tpot_ms=max((b.tpot_ms for b in buckets), default=c.perf.tpot_ms), buckets=buckets,
            batch=c.perf.slo_batch, limited_by=c.perf.limited_by,
            weights_gib_per_gpu=c.memory.weight_bytes / GIB, kv_cache_tokens=c.memory.replica_kv_tokens,
            memory=memory_account(c.memory),
            perf_source=c.perf.source, **_capacity_provenance(cands, sku.gpu.name, c, sc.confidence)))
        spread = inference[c.workload].min_replicas >= 2
        items += [Item(c.workload, c.sku, c.tp, c.pp, c.gpus_per_replica, c.servers_per_replica,
                       spread=spread, ep=c.ep, dp=c.dp)] * r
    finetunes = []
    for i, f in enumerate(cands.finetune):
        if _int(val[mm.x[i]]) == 1:
            job = sc.finetune_workloads()[f.workload]
            sku = cands.skus[f.sku]
            finetunes.append(FinetuneAssignment(
                workload=f.workload, model=cands.archs[f.workload].name, sku=f.sku, gpu=sku.gpu.name, gpus=f.gpus,
                method=job.method, hours=f.hours, deadline_hours=job.deadline_hours,
                peak_gib_per_gpu=f.peak_gib_per_gpu))
            whole = max(1, f.gpus // sku.gpus) if f.gpus > sku.gpus else 1
            items.append(Item(f.workload, f.sku, 0, 0, min(f.gpus, sku.gpus), whole, finetune=True))

    coverage = []
    for w in sc.workloads:
        y = mm.y[w.name]
        served = float(val[y]) if not isinstance(y, float) else y
        if isinstance(w, InferenceWorkload):
            coverage.append(WorkloadCoverage(workload=w.name, kind="inference", demand_rps=w.requests_per_s,
                                             capacity_rps=cap_by_w.get(w.name, 0.0),
                                             served_fraction=min(1.0, served_rps_of(w, cap_by_w, routes, mm)
                                                                 / w.requests_per_s),
                                             slo_ttft_ms=w.slo.ttft_ms, slo_tpot_ms=w.slo.tpot_ms))
        else:
            coverage.append(WorkloadCoverage(workload=w.name, kind="finetune", demand_rps=None, capacity_rps=None,
                                             served_fraction=round(served)))

    racks_by_sku: dict[str, list[int]] = defaultdict(list)
    if mm.a:
        for (k, rack), var in mm.a.items():
            racks_by_sku[k] += [rack + 1] * _int(val[var])
    else:
        racks_by_sku.update(rack_layout(mm, counts, val))
    placement = place(dict(racks_by_sku), {k: cands.skus[k].gpus for k in counts}, items)
    used_racks = {p.rack for p in placement}
    solver = SolverReport(
        solver=out.solver, status=out.status, objective_name=objective, objective=out.objective, bound=out.bound,
        gap=out.gap, solve_time_s=out.solve_time_s,
        objective_time_s=out.stage1_time_s,
        candidates=mm.merge.sized,
        variables=out.variables, constraints=out.constraints,
        time_limit_s=settings.time_limit_s, node_limit=settings.node_limit, seed=settings.seed,
        stopped_by=out.stage1_stop, tiebreak_stopped_by=out.tiebreak_stop, tiebreak_gap=out.tiebreak_gap,
        nodes=out.nodes)
    lines = quote.quote_lines(rs, servers, deployments, finetunes, len(used_racks))
    money = finance_figures(rs, figures["capex"], lines)
    return Plan(
        scenario=sc.name, currency=sc.currency, status=out.status, objective=out.objective, gap=out.gap,
        hourly_cost=hourly_cost, capex=money["capex"], hardware_capex=figures["capex"], quote_lines=lines,
        contingency=money["contingency"],
        tax=money["tax"], total_with_tax=money["total_with_tax"],
        tco=figures["tco"] + money["capex"] - figures["capex"],
        energy_cost=figures["energy"], opex_cost=figures["opex"],
        power_kw=figures["power_w"] / 1000.0, facility_power_kw=figures["power_w"] / 1000.0 * sc.site.pue,
        racks_used=len(used_racks), rack_units_used=sum(s.rack_units * s.count for s in servers),
        gpus_by_type=dict(gpus_by_type), servers=servers, deployments=deployments, finetunes=finetunes,
        coverage=coverage, placement=placement, solver=solver, headroom=sc.headroom, confidence=sc.confidence,
        horizon_years=sc.horizon_years, notes=[f"procure {__version__}; prices are dated estimates"])
