"""Solver-free verifier: re-checks a Plan against the scenario and catalog alone.

It re-sizes every deployment (memory fit, SLO capacity) with the sizing functions, recomputes
capacity vs demand, GPU packing from the placement, budget, site power, racks, availability,
GPU-type count, minimum replicas and their spread, the cost (the hourly cost of cloud instances
too, and that the plan rents exactly when the objective is hourly), the quote lines (optimizer.quote) and the
budget with contingency and tax. A violation is a bug: it raises
``SolverError`` listing every failed check.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial

from optimizer import quote
from optimizer.errors import SolverError
from optimizer.loaders import ResolvedScenario, resolve_gpu
from optimizer.schema.plan import Deployment, Plan
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.architecture import parse_config
from optimizer.sizing.candidates import (
    FINETUNE_MEMORY_FRACTION,
    apply_mix,
    finetune_fit,
    hourly_price_of,
    mix_eval,
    perf_query,
    plan_efficiency,
    price_of,
    servable_mix,
    server_power_w,
    slo_tails,
)
from optimizer.sizing.layout import moe_layout_problems
from optimizer.sizing.measured import LATENCY_KEYS, measured_match, slo_targets, with_measured
from optimizer.sizing.memory import serving_memory
from optimizer.sizing.perf import ReplicaPerf, replica_perf
from optimizer.sizing.uncertainty import planning_time_scale
from optimizer.units import HOURS_PER_YEAR

#: SLO targets the checker compares with the recomputed replica (ReplicaPerf has the same names).
_SLO_KEYS = LATENCY_KEYS

REL = 1e-6


def _close(a: float, b: float, tol: float = REL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _over_slo(perf: ReplicaPerf, w: InferenceWorkload) -> list[str]:
    """Each latency target of ``w`` that ``perf`` misses, as "key value > target"."""
    return [f"{k} {getattr(perf, k):.1f} > {target:g}" for k in _SLO_KEYS
            if (target := getattr(w.slo, k)) is not None and getattr(perf, k) > target * (1 + REL)]


def _resized(rs: ResolvedScenario, w: InferenceWorkload, d: Deployment, gpu: str,
             sized: Callable[..., ReplicaPerf], input_tokens: int,
             output_tokens: int) -> tuple[ReplicaPerf, ReplicaPerf, bool]:
    """A deployment re-sized at these lengths (``sized``: replica_perf with its layout bound): the
    model's estimate, the same with the scenario's own benchmark laid over it as the candidate
    table did (``optimizer.sizing.measured``), and whether one was."""
    perf = sized(input_tokens=input_tokens, output_tokens=output_tokens)
    hit = None if d.ep > 1 or d.dp > 1 else measured_match(
        rs.measured, model=rs.models[w.name].name, gpu=gpu, tp=d.tp, pp=d.pp, precision=d.precision,
        input_tokens=input_tokens, output_tokens=output_tokens, slo=slo_targets(w.slo))
    if hit is None:
        return perf, perf, False
    return perf, with_measured(perf, rs.measured[hit], slo_targets(w.slo)), True


Require = Callable[[bool, str, str], None]


def check_deployments(rs: ResolvedScenario, deployments: list[Deployment], require: Require,
                      ) -> tuple[dict[str, float], dict[tuple[str, int, int], float], dict[str, int]]:
    """Re-size every deployment from the scenario and catalog alone (MoE layout, memory fit,
    precision, SLO capacity, per length bucket, measured entries laid over as the candidate table
    did), calling ``require`` per check. Returns the capacity x headroom per single-length workload,
    the req/s routed per (workload, input, output) bucket and the replicas per workload; the caller
    checks them against its demand. Shared by check_plan and the periods checker (one year each)."""
    sc, cat = rs.scenario, rs.catalog
    capacity: dict[str, float] = defaultdict(float)
    routed: dict[tuple[str, int, int], float] = defaultdict(float)  # (workload, input, output) -> req/s
    count: dict[str, int] = defaultdict(int)
    workloads = sc.inference_workloads()
    for d in deployments:
        w = workloads[d.workload]
        gpu = resolve_gpu(d.gpu, cat)
        arch = parse_config(rs.models[w.name].config, rs.models[w.name].name)
        settings = sc.serving.model_copy(update={"kv_dtype": d.kv_dtype})
        # the MoE layout is re-checked from the rules, not trusted: MoE only, ep 1 or tp x dp and
        # dividing the experts, the tp x dp group in one domain, tp x pp x dp GPUs per replica
        layout = moe_layout_problems(arch, gpu, tp=d.tp, ep=d.ep, dp=d.dp)
        require(not layout, f"{d.workload} EP{d.ep} DP{d.dp} layout", "; ".join(p.message for p in layout))
        require(d.gpus_per_replica == d.tp * d.pp * d.dp, f"{d.workload} GPUs per replica",
                f"{d.gpus_per_replica} != TP {d.tp} x PP {d.pp} x DP {d.dp}")
        if layout:
            continue
        mem = serving_memory(arch, d.precision, gpu_memory_gib=gpu.memory_gib, tp=d.tp, pp=d.pp,
                             settings=settings, max_model_len=w.max_context, ep=d.ep, dp=d.dp)
        require(mem.fits and mem.kv_cache_tokens >= w.max_context, f"{d.workload} on {d.gpu} TP{d.tp} fits",
                f"KV cache {mem.kv_cache_tokens} tokens < max_context {w.max_context}")
        require(d.precision in w.precisions and gpu.runs(d.precision), f"{d.workload} precision {d.precision}",
                "not allowed or not supported")
        require(arch.num_attention_heads % d.tp == 0, f"{d.workload} TP divides heads",
                f"{arch.num_attention_heads} heads, TP {d.tp}")
        calib = rs.calibration_path
        eff = plan_efficiency(gpu, sc.serving, calib)
        scale = planning_time_scale(eff.band_log_sd, sc.confidence)

        sized = partial(replica_perf, arch, gpu, tp=d.tp, pp=d.pp, precision=d.precision, kv_dtype=d.kv_dtype,
                        kv_cache_tokens=mem.kv_cache_tokens, ttft_ms=w.slo.ttft_ms, tpot_ms=w.slo.tpot_ms,
                        max_num_seqs=sc.serving.max_num_seqs, utilization=sc.headroom,
                        efficiency=eff, time_scale=scale, ep=d.ep, dp=d.dp, tails=slo_tails(w.slo),
                        prefix_tokens=w.prefix.tokens if w.prefix else 0,
                        prefix_hit_rate=w.prefix.hit_rate if w.prefix else 0.0)
        if len(w.buckets()) > 1:
            # a length mix: every bucket re-sized alone, scaled by the mix factor as the candidate
            # table did (candidates.apply_mix on the mix-aware evaluation); the replicas' time
            # carries the routed buckets
            mix = w.buckets()
            alone = [_resized(rs, w, d, gpu.name, sized, i_tok, o_tok) for i_tok, o_tok, _ in mix]
            model = [a[0] for a in alone]
            sub = servable_mix(model, mix)
            mixed = mix_eval(arch, w, d.kv_dtype, rs, [perf_query(gpu, mem, (gpu.name, d.tp, d.pp, d.precision,
                                                                           d.ep, d.dp), eff, sc.confidence)],
                             sub)[0] if sub else None
            scaled, _ = apply_mix(model, [a[1] for a in alone], [a[2] for a in alone], mix, mixed)
            if mixed is not None and mixed.requests_per_s > 0:  # the kappa capacity meets the SLO on the mix
                over = _over_slo(mixed, w)
                require(not over, f"{d.workload} on {d.gpu} TP{d.tp} SLO on the length mix", "; ".join(over) + " ms")
            per_bucket = {(i_tok, o_tok): p for (i_tok, o_tok, _), p in zip(mix, scaled, strict=True)}
            busy = 0.0
            for b in d.buckets:
                require((b.input_tokens, b.output_tokens) in per_bucket, f"{d.workload} bucket {b.input_tokens}/"
                        f"{b.output_tokens}", "not a bucket of the workload's lengths")
                perf = per_bucket.get((b.input_tokens, b.output_tokens))
                if perf is None:
                    continue
                require(_close(perf.requests_per_s, b.capacity_rps, 1e-6) and perf.requests_per_s > 0,
                        f"{d.workload} bucket {b.input_tokens}/{b.output_tokens} capacity recomputed",
                        f"{b.capacity_rps} != {perf.requests_per_s}")
                over = _over_slo(perf, w)
                require(not over, f"{d.workload} bucket {b.input_tokens}/{b.output_tokens} SLO",
                        "; ".join(over) + " ms")
                if perf.requests_per_s > 0:
                    busy += b.planned_rps / (sc.headroom * perf.requests_per_s)
                    routed[(w.name, b.input_tokens, b.output_tokens)] += b.planned_rps
            require(busy <= d.replicas * (1 + REL), f"{d.workload} on {d.gpu} TP{d.tp} routed load",
                    f"needs {busy:.4f} replicas at headroom {sc.headroom:g}, has {d.replicas}")
            require(_close(sum(b.planned_rps for b in d.buckets), d.planned_rps, 1e-6),
                    f"{d.workload} planned load", "bucket loads do not add up to planned_rps")
            count[d.workload] += d.replicas
            continue
        _, perf, _ = _resized(rs, w, d, gpu.name, sized, w.input_tokens, w.output_tokens)
        require(_close(perf.requests_per_s, d.capacity_rps, 1e-6), f"{d.workload} capacity recomputed",
                f"{d.capacity_rps} != {perf.requests_per_s}")
        over = _over_slo(perf, w)
        require(not over, f"{d.workload} SLO", "; ".join(over) + " ms")
        capacity[d.workload] += d.replicas * perf.requests_per_s * sc.headroom
        count[d.workload] += d.replicas
    return capacity, routed, count


def check_plan(plan: Plan, rs: ResolvedScenario, *, coverage_mode: bool = False) -> list[str]:
    """Every violated constraint as a sentence; raises SolverError if any. Returns the checks passed."""
    sc, cat = rs.scenario, rs.catalog
    errors: list[str] = []
    passed: list[str] = []

    def require(ok: bool, what: str, detail: str) -> None:
        (passed if ok else errors).append(what if ok else f"{what}: {detail}")

    # --- servers, prices, cost --------------------------------------------------------------
    capex = 0.0
    hourly_cost = 0.0
    power_w = 0.0
    gpus_of: dict[str, int] = defaultdict(int)
    slots_by_sku: dict[str, int] = {}
    for line in plan.servers:
        chassis = cat.servers[line.chassis]
        gpu = resolve_gpu(line.gpu, cat)
        require(gpu.name in rs.gpus, f"GPU {gpu.name} allowed", "not in constraints.gpus")
        require(chassis.name in rs.servers, f"chassis {chassis.name} allowed", "not allowed")
        require(gpu.name in chassis.compatible_gpus, f"{chassis.name} takes {gpu.name}", "incompatible")
        require(line.gpus_per_server in chassis.allowed_populations, f"{line.sku} population",
                f"{line.gpus_per_server} not in {chassis.allowed_populations}")
        c_price, _ = price_of(rs, chassis.name, chassis.base_usd)
        g_price, _ = price_of(rs, gpu.name, gpu.price.usd)
        hourly, _ = hourly_price_of(rs, chassis)
        unit = 0.0 if chassis.cloud else c_price + line.gpus_per_server * g_price  # rented: nothing bought
        require(_close(unit, line.unit_price), f"{line.sku} unit price", f"{line.unit_price} != {unit}")
        require(hourly == line.hourly_price or (hourly is not None and line.hourly_price is not None
                                                 and _close(hourly, line.hourly_price)),
                f"{line.sku} hourly price", f"{line.hourly_price} != {hourly}")
        require(chassis.cloud == (sc.objective == "hourly"), f"{line.sku} bought or rented as the objective says",
                f"{'cloud instance' if chassis.cloud else 'purchased server'} under objective {sc.objective}")
        capex += unit * line.count
        hourly_cost += (hourly or 0.0) * line.count
        power_w += server_power_w(chassis, gpu, line.gpus_per_server) * line.count
        gpus_of[gpu.name] += line.gpus_per_server * line.count
        slots_by_sku[line.sku] = line.gpus_per_server
    require(_close(hourly_cost, plan.hourly_cost or 0.0), "hourly cost recomputed",
            f"plan says {plan.hourly_cost}, catalog gives {hourly_cost:,.4f} per hour")
    if sc.objective == "hourly":
        require(_close(hourly_cost, plan.objective, 1e-9), "objective is the hourly cost",
                f"objective {plan.objective} != {hourly_cost:,.4f} per hour")
    require(_close(capex, plan.hardware_capex), "hardware capex recomputed",
            f"plan says {plan.hardware_capex:,.2f}, catalog gives {capex:,.2f}")
    hardware = capex
    lines = quote.quote_lines(rs, plan.servers, plan.deployments, plan.finetunes, len({p.rack for p in plan.placement}))
    want = {(q.item, round(q.quantity, 9)): q.extended_price for q in lines}
    have = {(q.item, round(q.quantity, 9)): q.extended_price for q in plan.quote_lines}
    require(want.keys() == have.keys() and all(_close(want[k], have[k]) for k in want), "quote lines recomputed",
            f"plan has {sorted(have)}, recomputed {sorted(want)}")
    require(all(_close(q.quantity * q.unit_price, q.extended_price) for q in plan.quote_lines),
            "quote line extended prices", "quantity x unit price differs")
    capex = hardware + sum(q.extended_price for q in lines)
    require(_close(capex, plan.capex), "capex recomputed", f"plan says {plan.capex:,.2f}, recomputed {capex:,.2f}")
    taxed = capex * sc.finance.budget_factor
    require(_close(taxed, plan.total_with_tax), "total with contingency and tax",
            f"plan says {plan.total_with_tax:,.2f}, recomputed {taxed:,.2f}")
    energy = power_w / 1000 * sc.site.pue * HOURS_PER_YEAR * sc.horizon_years * sc.site.electricity_per_kwh
    tco = capex + quote.opex_per_year(rs, hardware) * sc.horizon_years + energy
    require(_close(tco, plan.tco), "TCO recomputed", f"plan says {plan.tco:,.2f}, recomputed {tco:,.2f}")
    require(_close(power_w / 1000, plan.power_kw), "IT power recomputed", f"{plan.power_kw} != {power_w / 1000}")

    # --- facility limits --------------------------------------------------------------------
    c = sc.constraints
    if c.budget is not None:
        require(taxed <= c.budget * (1 + REL), "budget",
                f"capex with contingency and tax {taxed:,.0f} > budget {c.budget:,.0f}")
    require(power_w / 1000 * sc.site.pue <= sc.site.power_kw * (1 + REL), "site power",
            f"{power_w / 1000 * sc.site.pue:.1f} kW > {sc.site.power_kw:g} kW")
    for name, cap in c.availability.items():
        g = resolve_gpu(name, cat).name
        require(gpus_of.get(g, 0) <= cap, f"availability {g}", f"{gpus_of.get(g, 0)} > {cap}")
    if c.max_gpu_types is not None:
        require(len(gpus_of) <= c.max_gpu_types, "max GPU types", f"{len(gpus_of)} > {c.max_gpu_types}")

    # --- placement: packing and racks -------------------------------------------------------
    per_sku = Counter(p.sku for p in plan.placement)
    for line in plan.servers:
        require(per_sku[line.sku] == line.count, f"{line.sku} placed", f"{per_sku[line.sku]} of {line.count}")
    rack_w: dict[int, float] = defaultdict(float)
    rack_u: dict[int, int] = defaultdict(int)
    line_of = {line.sku: line for line in plan.servers}
    hosts: dict[str, set[int]] = defaultdict(set)
    # (workload, SKU, TP, PP, EP, DP) -> server appearances: a replica spanning k servers appears on k
    replicas_placed: Counter[tuple[str, str, int, int, int, int]] = Counter()
    finetune_gpus = {f.workload: f.gpus for f in plan.finetunes}
    for srv in plan.placement:
        line = line_of[srv.sku]
        rack_w[srv.rack] += line.power_w
        rack_u[srv.rack] += line.rack_units
        used = [g for r in srv.replicas for g in r.gpus]
        require(len(used) == len(set(used)) and all(0 <= g < line.gpus_per_server for g in used),
                f"server {srv.index} GPU slots", f"overlapping or out-of-range slots {sorted(used)}")
        # fine-tuning jobs hold min(their GPUs, the server's) slots on each server they occupy
        held = len(used) + sum(min(finetune_gpus.get(j, 0), line.gpus_per_server) for j in srv.finetune)
        require(held <= line.gpus_per_server and srv.free_gpus == line.gpus_per_server - held,
                f"server {srv.index} GPUs in use", f"{held} used of {line.gpus_per_server}, {srv.free_gpus} free")
        for r in srv.replicas:
            hosts[r.workload].add(srv.index)
            replicas_placed[(r.workload, srv.sku, r.tp, r.pp, r.ep, r.dp)] += 1
            n_layout = r.tp * r.pp * r.dp
            require(len(r.gpus) == min(n_layout, line.gpus_per_server),
                    f"server {srv.index} {r.workload} TP{r.tp} PP{r.pp} DP{r.dp} slots",
                    f"{len(r.gpus)} GPUs for a {n_layout}-GPU replica")
    expected: Counter[tuple[str, str, int, int, int, int]] = Counter()
    for d in plan.deployments:
        spans = max(1, d.gpus_per_replica // line_of[d.sku].gpus_per_server)
        expected[(d.workload, d.sku, d.tp, d.pp, d.ep, d.dp)] += d.replicas * spans
    for key in sorted(set(expected) | set(replicas_placed)):
        require(replicas_placed[key] == expected[key],
                f"{key[0]} TP{key[2]} PP{key[3]} EP{key[4]} DP{key[5]} on {key[1]} placed",
                f"{replicas_placed[key]} server slots, {expected[key]} planned")
    require(all(1 <= k <= sc.site.racks for k in rack_w), "rack count", f"uses racks {sorted(rack_w)}")
    for k in rack_w:
        require(rack_w[k] <= sc.site.rack_power_kw * 1000 * (1 + REL), f"rack {k} power",
                f"{rack_w[k] / 1000:.1f} kW > {sc.site.rack_power_kw:g} kW")
        require(rack_u[k] <= sc.site.rack_units, f"rack {k} units", f"{rack_u[k]} U > {sc.site.rack_units} U")

    # --- deployments: memory fit, SLO capacity, demand, replicas ------------------------------
    capacity, routed, count = check_deployments(rs, plan.deployments, require)
    workloads = sc.inference_workloads()
    for w in workloads.values():
        if len(w.buckets()) > 1:
            short = [f"{i_tok}/{o_tok}: {routed[(w.name, i_tok, o_tok)]:.3f} < {w.requests_per_s * share:.3f}"
                     for i_tok, o_tok, share in w.buckets()
                     if routed[(w.name, i_tok, o_tok)] < w.requests_per_s * share * (1 - REL)]
            if not (coverage_mode and short):
                require(not short, f"{w.name} demand per length bucket", "; ".join(short) + " req/s")
        else:
            served = capacity[w.name] / w.requests_per_s
            if coverage_mode and served < 1 - REL:
                continue
            require(served >= 1 - REL, f"{w.name} demand",
                    f"capacity {capacity[w.name]:.2f} < {w.requests_per_s:g} req/s")
        require(count[w.name] >= w.min_replicas, f"{w.name} min replicas", f"{count[w.name]} < {w.min_replicas}")
        if w.min_replicas >= 2:
            require(len(hosts[w.name]) >= 2, f"{w.name} spread", f"all replicas on server {hosts[w.name]}")
    jobs = sc.finetune_workloads()
    for f in plan.finetunes:
        # re-sized, not read from the plan: hours and peak memory on the plan's GPUs
        job = jobs[f.workload]
        gpu = resolve_gpu(f.gpu, cat)
        arch = parse_config(rs.models[job.name].config, rs.models[job.name].name)
        hours, peak_gib = finetune_fit(arch, job, gpu, f.gpus)
        require(_close(hours, f.hours, 1e-9) and _close(peak_gib, f.peak_gib_per_gpu, 1e-9),
                f"{f.workload} re-sized", f"{hours:.2f} h / {peak_gib:.2f} GiB vs the plan's "
                f"{f.hours:.2f} h / {f.peak_gib_per_gpu:.2f} GiB")
        require(hours <= job.deadline_hours * (1 + REL), f"{f.workload} deadline",
                f"{hours:.1f} h > {job.deadline_hours:g} h")
        require(peak_gib <= gpu.memory_gib * FINETUNE_MEMORY_FRACTION, f"{f.workload} memory",
                f"{peak_gib:.1f} GiB > {FINETUNE_MEMORY_FRACTION:.0%} of {gpu.memory_gib:g} GiB")
    if not coverage_mode:
        missing = [w.name for w in sc.workloads if w.kind == "finetune"
                   and w.name not in {f.workload for f in plan.finetunes}]
        require(not missing, "fine-tuning jobs assigned", f"missing {missing}")
    if errors:
        raise SolverError("plan check failed (a bug in procure, please report it):\n  " + "\n  ".join(errors))
    if math.isnan(plan.capex):
        raise SolverError("plan has no cost")
    return passed
