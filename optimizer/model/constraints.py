"""One function per constraint family of the purchase MIP (see ``build.py`` for the formulation)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ortools.math_opt.python import mathopt

from optimizer.schema.scenario import InferenceWorkload

if TYPE_CHECKING:
    from optimizer.model.build import MipModel
    from optimizer.sizing.candidates import CandidateSet, ServerSku


def _inference(mm: MipModel) -> list[InferenceWorkload]:
    return list(mm.rs.scenario.inference_workloads().values())


def add_variables(mm: MipModel) -> None:
    """r, x, n, z, y, u with tight upper bounds derived from demand.

    n[s] ≤ ⌈Σ_{items on s} GPUs at their bounds / G_s⌉ + (spread workloads with candidates on s):
    footprints are powers of two dividing G_s, so first-fit decreasing packs any plan's items on s
    into ⌈GPUs / G_s⌉ servers, and one more server per spread workload moves one of its replicas
    off a server holding them all; no plan needs more. For a SKU of a population group the items
    are the group's (any of them may land on s)."""
    from optimizer.model.build import replica_upper_bound

    m, cands = mm.model, mm.cands
    gpus_on: dict[str, int] = defaultdict(int)
    spread_on: dict[str, set[str]] = defaultdict(set)
    workloads = mm.rs.scenario.inference_workloads()
    for i, c in enumerate(cands.inference):
        wl = workloads[c.workload]
        ub = replica_upper_bound(wl, c, mm.rs.scenario.headroom)
        mm.r[i] = m.add_integer_variable(lb=0, ub=ub, name=f"r[{i}]")
        gpus_on[mm.bin_of(c.sku)] += ub * c.gpus_per_replica
        if wl.min_replicas >= 2:
            spread_on[mm.bin_of(c.sku)].add(wl.name)
    for i, f in enumerate(cands.finetune):
        mm.x[i] = m.add_binary_variable(name=f"x[{i}]")
        gpus_on[f.sku] += f.gpus
    for key, sku in cands.skus.items():
        gpus = gpus_on[mm.bin_of(key)]
        ub = math.ceil(gpus / sku.gpus) + len(spread_on[mm.bin_of(key)]) if gpus else 0
        if mm.limits.budget and sku.unit_price > 0:  # a rented cloud instance costs no capex
            ub = min(ub, math.floor(mm.limits.budget / sku.unit_price))
        mm.n[key] = m.add_integer_variable(lb=0, ub=max(ub, 0), name=f"n[{key}]")
    for g in sorted({sku.gpu.name for sku in cands.skus.values()}):  # sorted: hash order would vary the model
        mm.z[g] = m.add_binary_variable(name=f"z[{g}]")
    for w in mm.rs.scenario.workloads:
        if mm.limits.coverage:
            mm.y[w.name] = m.add_variable(lb=0, ub=1, name=f"y[{w.name}]")
            mm.u[w.name] = m.add_binary_variable(name=f"u[{w.name}]")
        else:
            mm.y[w.name] = 1.0
            mm.u[w.name] = 1.0
    for i, c in enumerate(cands.inference):
        if c.bucket_perf:  # a length mix: the replicas' time is routed between its buckets
            for b, mu in enumerate(c.bucket_rps):
                if mu > 0:
                    mm.q[(i, b)] = m.add_variable(lb=0, ub=mm.r[i].upper_bound, name=f"q[{i},{b}]")
    mm.capex = mathopt.fast_sum(sku.unit_price * mm.n[k] for k, sku in cands.skus.items())
    mm.power_w = mathopt.fast_sum(sku.power_w * mm.n[k] for k, sku in cands.skus.items())


def add_demand(mm: MipModel) -> None:
    """Σ_{c of w} ρ·μ_c·r[c] ≥ λ_w·y[w]; with a length mix (buckets b, shares φ_b), per bucket
    Σ_{c of w} ρ·μ_c,b·q[c,b] ≥ λ_w·φ_b·y[w] and per candidate Σ_b q[c,b] ≤ r[c] (routing)."""
    rho = mm.rs.scenario.headroom
    for w in _inference(mm):
        idx = mm.index.inference_of.get(w.name, [])
        buckets = w.buckets()
        if len(buckets) == 1:
            terms = [rho * mm.cands.inference[i].capacity_rps * mm.r[i] for i in idx]
            mm.model.add_linear_constraint(mathopt.fast_sum(terms) >= w.requests_per_s * mm.y[w.name],
                                           name=f"demand[{w.name}]")
        else:
            add_routing(mm, w, idx, buckets)
        if mm.limits.coverage:
            mm.model.add_linear_constraint(mm.y[w.name] <= mm.u[w.name], name=f"served[{w.name}]")


def add_routing(mm: MipModel, w: InferenceWorkload, idx: list[int], buckets: list[tuple[int, int, float]]) -> None:
    """A length mix's demand, bucket by bucket, routed over the workload's candidates.

    q[c,b] is the share of c's replicas (in replica units) serving bucket b, at c's SLO capacity
    on that bucket alone: Mélange's time-sharing of a GPU between request sizes (Griggs et al.
    2024, Sec. 4.3), with continuous routing fractions instead of its integral slices, so one
    deployment's replicas may carry several buckets and a bucket may be split between deployments."""
    rho = mm.rs.scenario.headroom
    for b, (i_tok, o_tok, share) in enumerate(buckets):
        terms = [rho * mm.cands.inference[i].bucket_rps[b] * mm.q[(i, b)] for i in idx if (i, b) in mm.q]
        mm.model.add_linear_constraint(mathopt.fast_sum(terms) >= w.requests_per_s * share * mm.y[w.name],
                                       name=f"demand[{w.name},{i_tok}/{o_tok}]")
    for i in idx:
        routed = [mm.q[(i, b)] for b in range(len(buckets)) if (i, b) in mm.q]
        mm.model.add_linear_constraint(mathopt.fast_sum(routed) <= mm.r[i], name=f"routed[{i}]")


def add_demand_bounds(mm: MipModel) -> None:
    """Valid inequalities that tighten the LP bound: with all demand served (y[w] = 1),
    Σ_{c of w} r[c] ≥ ⌈λ_w / (ρ·max_c μ_c)⌉ and Σ_{c of w} t_c·p_c·r[c] ≥ ⌈λ_w / (ρ·max_c μ_c/(t_c·p_c))⌉
    (with a length mix: ⌈Σ_b λ_w·φ_b / (ρ·max_c μ_c,b)⌉ and the same per GPU, since Σ_b q[c,b] ≤ r[c]).

    Both follow from the demand row (no replica serves more than the best, no GPU more than the
    best per GPU) and the integrality of the left-hand sides, so no integer plan is cut off; the
    LP relaxation, which would otherwise buy fractions of the best replica, gets a rounded-up count.
    Under coverage the served fraction is a variable and the rows are left out."""
    if mm.limits.coverage:
        return
    rho = mm.rs.scenario.headroom
    for w in _inference(mm):
        idx = mm.index.inference_of.get(w.name, [])
        if not idx:
            continue
        cs = [mm.cands.inference[i] for i in idx]
        # per bucket, no replica serves more than the best one on it, no GPU more than the best
        # per GPU; a bucket no candidate serves leaves the demand row infeasible (no bound needed)
        replica_load = gpu_load = 0.0
        for b, (_, _, share) in enumerate(w.buckets()):
            best = max(c.bucket_rps[b] for c in cs)
            best_per_gpu = max(c.bucket_rps[b] / c.gpus_per_replica for c in cs)
            if best <= 0:
                replica_load = gpu_load = math.nan
                break
            replica_load += w.requests_per_s * share / (rho * best)
            gpu_load += w.requests_per_s * share / (rho * best_per_gpu)
        if math.isnan(replica_load):
            continue
        replicas = math.ceil(replica_load - 1e-9)
        gpus = math.ceil(gpu_load - 1e-9)
        mm.model.add_linear_constraint(mathopt.fast_sum(mm.r[i] for i in idx) >= replicas,
                                       name=f"replicas_needed[{w.name}]")
        mm.model.add_linear_constraint(
            mathopt.fast_sum(c.gpus_per_replica * mm.r[i] for i, c in zip(idx, cs, strict=True)) >= gpus,
            name=f"gpus_needed[{w.name}]")


def add_min_replicas(mm: MipModel) -> None:
    """Σ_{c of w} r[c] ≥ m_w·u[w]."""
    for w in _inference(mm):
        terms = [mm.r[i] for i in mm.index.inference_of.get(w.name, [])]
        mm.model.add_linear_constraint(mathopt.fast_sum(terms) >= w.min_replicas * mm.u[w.name],
                                       name=f"min_replicas[{w.name}]")


def add_spread(mm: MipModel) -> None:
    """Replicas of a workload with min_replicas ≥ 2 sit on at least two servers.

    v[w,s] = 1 exactly when w has replicas on SKU s. w is on two servers already when it uses two
    SKUs, has a replica spanning whole servers (cross-server PP), or has more GPUs on s than one
    server holds (wide[w,s] = 1 only if Σ_{c of w on s} t_c·p_c·r[c] ≥ G_s + 1). Otherwise

        need[w,s] = v[w,s] − Σ_{s'≠s} v[w,s'] − Σ_{c of w on s, multi-server} r[c] − wide[w,s]

    must be met on s's own servers. Every SKU gets the necessary row n[s] ≥ 2·need[w,s] (with
    wide left out: a wide w needs two servers by packing anyway). A population group
    (optimizer.model.populations) is one s here, its servers Σ_{s in group} n[s]: its columns'
    replicas may land on any of them. Servers of different sizes make that row weaker than per SKU
    (a 4-GPU and a 1-GPU server pass it for two spread workloads of 1-GPU replicas, but only one
    can have a replica off the 4-GPU server): placement then fails on a SKU of the group, and the
    re-solve that gives the SKU the exact rows also keeps its group apart. Measured: rows that
    cut this case (one binary per grouped SKU) made the 20-workload benchmark's stage 1 4.9 -> 7.2 s,
    and no generated plan needed the re-solve. SKUs in
    ``mm.exact_spread`` (those where placement found the aggregate rows admitted an unplaceable
    plan; see ``optimizer.model.pipeline``) get the exact block of :func:`_named_servers`.
    """
    spread = [w for w in _inference(mm) if w.min_replicas >= 2]
    if not spread:
        return
    m, cands = mm.model, mm.cands
    names = {w.name for w in spread}
    by_ws: dict[tuple[str, str], list[int]] = defaultdict(list)
    for w in sorted(names):
        for i in mm.index.inference_of.get(w, []):
            by_ws[(w, mm.bin_of(cands.inference[i].sku))].append(i)
    skus_of: dict[str, list[str]] = defaultdict(list)
    for (w, s), idx in by_ws.items():
        skus_of[w].append(s)
        mm.v[(w, s)] = m.add_binary_variable(name=f"v[{w},{s}]")
        for i in idx:
            m.add_linear_constraint(mm.r[i] <= mm.r[i].upper_bound * mm.v[(w, s)], name=f"uses[{w},{i}]")
        # v may only be 1 where replicas really are, or it would excuse the spread rows
        m.add_linear_constraint(mm.v[(w, s)] <= mathopt.fast_sum(mm.r[i] for i in idx), name=f"used_only[{w},{s}]")
    need: dict[tuple[str, str], mathopt.LinearExpression] = {}
    for (w, s), idx in by_ws.items():
        multi = [mm.r[i] for i in idx if cands.inference[i].servers_per_replica > 1]
        need[(w, s)] = (mm.v[(w, s)] - mathopt.fast_sum(mm.v[(w, o)] for o in skus_of[w] if o != s)
                        - mathopt.fast_sum(multi))
        # necessary whether or not w is wide (a wide w needs two servers by packing anyway); wide[w,s]
        # enters only the exact rows, where it excuses a w that cannot fit one server
        servers = mathopt.fast_sum(mm.n[k] for k in mm.groups.get(s, (s,)))
        m.add_linear_constraint(servers >= 2 * need[(w, s)], name=f"two_servers[{w},{s}]")
    for s in sorted(mm.exact_spread):
        spread_here = sorted(w for w, s2 in by_ws if s2 == s)
        if not spread_here:
            continue
        g_s = cands.skus[s].gpus
        exact_need = {}
        for w in spread_here:
            gpus = mathopt.fast_sum(cands.inference[i].gpus_per_replica * mm.r[i] for i in by_ws[(w, s)])
            wide = m.add_binary_variable(name=f"wide[{w},{s}]")
            m.add_linear_constraint((g_s + 1) * wide <= gpus, name=f"wide_only[{w},{s}]")
            exact_need[w] = need[(w, s)] - wide
        _named_servers(mm, s, {w: by_ws[(w, s)] for w in spread_here}, exact_need)


def _named_servers(mm: MipModel, s: str, idx_of: dict[str, list[int]],
                   need: dict[str, mathopt.LinearExpression]) -> None:
    """The exact spread block of SKU s: M = min(N_s, 2·|W_s|) named servers j (σ_j: server j
    exists; σ_j ≥ σ_{j+1}) hold q_j[c] replicas of spread candidates and N_j[g] other items of g
    GPUs, each within G_s; every workload w that needs it has replicas on two named servers
    (b[w,j] ≤ Σ_{c of w} q_j[c], Σ_j b[w,j] ≥ 2·need[w,s]); the rest of s's load fits the other
    n[s] − Σ_j σ_j servers::

        load_j = Σ_c t_c·p_c·q_j[c] + Σ_g g·N_j[g] ≤ G_s·σ_j;  Σ_j q_j[c] ≤ r[c];  Σ_j N_j[g] ≤ T[s,g]
        Σ_{items on s} GPUs − Σ_j load_j ≤ G_s·(n[s] − Σ_j σ_j)

    Exact: any placement names, for each such w, two servers holding its replicas (at most 2·|W_s|
    servers), whose other contents are N and q; conversely footprints are powers of two dividing
    G_s, so a named server's sum ≤ G_s packs into aligned blocks and the rest packs first-fit
    decreasing onto the remaining servers (divisible sizes)."""
    m, cands = mm.model, mm.cands
    g_s = cands.skus[s].gpus
    on_s = mm.index.inference_on.get(s, [])
    spread_idx = {i for idx in idx_of.values() for i in idx
                  if cands.inference[i].servers_per_replica == 1 and cands.inference[i].gpus_per_replica <= g_s}
    other = [i for i in on_s if i not in spread_idx and cands.inference[i].servers_per_replica == 1]
    ft = [j for j in mm.index.finetune_on.get(s, []) if cands.finetune[j].gpus <= g_s]
    sizes = sorted({cands.inference[i].gpus_per_replica for i in other} | {cands.finetune[j].gpus for j in ft})
    total = mathopt.fast_sum([cands.inference[i].gpus_per_replica * mm.r[i] for i in on_s]
                             + [cands.finetune[j].gpus * mm.x[j] for j in mm.index.finetune_on.get(s, [])])
    count = min(int(mm.n[s].upper_bound), 2 * len(idx_of))
    sigma = [m.add_binary_variable(name=f"named[{s},{j}]") for j in range(count)]
    q: list[dict[int, mathopt.Variable]] = []
    loads = []
    for j in range(count):
        q.append({i: m.add_integer_variable(
            lb=0, ub=min(mm.r[i].upper_bound, g_s // cands.inference[i].gpus_per_replica), name=f"q[{s},{j},{i}]")
            for i in sorted(spread_idx)})
        items = {g: m.add_integer_variable(lb=0, ub=g_s // g, name=f"N[{s},{j},{g}]") for g in sizes}
        load = mathopt.fast_sum([cands.inference[i].gpus_per_replica * v for i, v in q[j].items()]
                                + [g * n_g for g, n_g in items.items()])
        m.add_linear_constraint(load <= g_s * sigma[j], name=f"named_load[{s},{j}]")
        loads.append(load)
        mm.named_items[(s, j)] = items
        if j:
            m.add_linear_constraint(sigma[j - 1] >= sigma[j], name=f"named_order[{s},{j}]")
        for w, idx in idx_of.items():
            b = m.add_binary_variable(name=f"b[{w},{s},{j}]")
            mm.named_hosts[(w, s, j)] = b
            m.add_linear_constraint(b <= mathopt.fast_sum(q[j][i] for i in idx if i in q[j]),
                                    name=f"hosts[{w},{s},{j}]")
    for i in sorted(spread_idx):
        m.add_linear_constraint(mathopt.fast_sum(q[j][i] for j in range(count)) <= mm.r[i], name=f"named_of[{s},{i}]")
    for g in sizes:
        avail = mathopt.fast_sum([mm.r[i] for i in other if cands.inference[i].gpus_per_replica == g]
                                 + [mm.x[j] for j in ft if cands.finetune[j].gpus == g])
        m.add_linear_constraint(mathopt.fast_sum(mm.named_items[(s, j)][g] for j in range(count)) <= avail,
                                name=f"named_items[{s},{g}]")
    m.add_linear_constraint(mathopt.fast_sum(sigma) <= mm.n[s], name=f"named_exist[{s}]")
    m.add_linear_constraint(total - mathopt.fast_sum(loads) <= g_s * (mm.n[s] - mathopt.fast_sum(sigma)),
                            name=f"beyond_named[{s}]")
    for w in idx_of:
        m.add_linear_constraint(mathopt.fast_sum(mm.named_hosts[(w, s, j)] for j in range(count)) >= 2 * need[w],
                                name=f"spread[{w},{s}]")


def add_finetune(mm: MipModel) -> None:
    """Σ_{f of j} x[f] = u[j]: each fine-tuning job runs on exactly one candidate GPU group; under
    coverage it counts as served only when scheduled, y[j] ≤ u[j]."""
    for w in mm.rs.scenario.workloads:
        if w.kind != "finetune":
            continue
        terms = [mm.x[i] for i in mm.index.finetune_of.get(w.name, [])]
        mm.model.add_linear_constraint(mathopt.fast_sum(terms) == mm.u[w.name], name=f"finetune[{w.name}]")
        if mm.limits.coverage:
            mm.model.add_linear_constraint(mm.y[w.name] <= mm.u[w.name], name=f"served[{w.name}]")


def add_gpu_packing(mm: MipModel) -> None:
    """Σ_{c on s} t_c·p_c·r[c] + Σ_{f on s} gpus_f·x[f] ≤ G_s·n[s]; for a population group
    (optimizer.model.populations, exact for power-of-two sizes), per threshold t of its server
    and item sizes

        Σ_{c in group, one server, g_c ≥ t} g_c·r[c] ≤ Σ_{s in group, G_s ≥ t} G_s·(n[s] − m[s])

    with m[s] = Σ_{c on s spanning servers} servers_c·r[c] ≤ n[s] the servers taken whole."""
    grouped = {s for skus in mm.groups.values() for s in skus}
    used: dict[str, list[mathopt.LinearExpression]] = defaultdict(list)
    for i, c in enumerate(mm.cands.inference):
        if c.sku not in grouped:  # a group's rows are add_group_packing's
            used[c.sku].append(c.gpus_per_replica * mm.r[i])
    for i, f in enumerate(mm.cands.finetune):
        used[f.sku].append(f.gpus * mm.x[i])
    for key, sku in mm.cands.skus.items():
        if key not in grouped:
            mm.model.add_linear_constraint(mathopt.fast_sum(used[key]) <= sku.gpus * mm.n[key], name=f"packing[{key}]")
    for key, skus in mm.groups.items():
        add_group_packing(mm, key, skus)


def add_group_packing(mm: MipModel, key: str, skus: tuple[str, ...]) -> None:
    """The threshold rows of one population group (add_gpu_packing)."""
    columns = [i for s in skus for i in mm.index.inference_on.get(s, [])]
    group_packing_rows(mm.model, mm.cands, key, skus, columns, mm.r.__getitem__, mm.n.__getitem__)


def group_packing_rows(model: mathopt.Model, cands: CandidateSet, key: str, skus: tuple[str, ...],
                       columns: list[int], r: Callable[[int], mathopt.Variable],
                       n: Callable[[str], mathopt.LinearExpression | mathopt.Variable], suffix: str = "") -> None:
    """A population group's threshold rows over its candidates ``columns`` (replicas r(i)) and its
    SKUs' server counts n(s): whole_servers[s] for replicas spanning servers, packing[key,t+] per
    threshold t (add_gpu_packing's formula); ``suffix`` ends each row's name (a period's year)."""
    singles: list[tuple[int, int]] = []  # (footprint, column)
    whole: dict[str, list[mathopt.LinearExpression]] = defaultdict(list)
    for i in columns:
        c = cands.inference[i]
        if c.servers_per_replica > 1:
            whole[c.sku].append(c.servers_per_replica * r(i))
        else:
            singles.append((c.gpus_per_replica, i))
    for s, taken in sorted(whole.items()):
        model.add_linear_constraint(mathopt.fast_sum(taken) <= n(s), name=f"whole_servers[{s}{suffix}]")
    # every size that starts a class of items or of servers (an item of size g fits only servers of
    # size ≥ g, so a threshold between two server sizes still binds the items above it)
    for t in sorted({cands.skus[s].gpus for s in skus} | {g for g, _ in singles}):
        items = mathopt.fast_sum(g * r(i) for g, i in singles if g >= t)
        room = mathopt.fast_sum(
            [cands.skus[s].gpus * n(s) for s in skus if cands.skus[s].gpus >= t]
            + [-cands.skus[s].gpus * e for s in skus if cands.skus[s].gpus >= t for e in whole.get(s, [])])
        model.add_linear_constraint(items <= room, name=f"packing[{key},{t}+{suffix}]")


def add_budget(mm: MipModel) -> None:
    """capex = hardware + quote lines (add_quote_costs); (1 + contingency)·(1 + tax)·capex ≤ budget."""
    add_quote_costs(mm)
    if mm.limits.budget is not None and mm.capex is not None:
        factor = mm.rs.scenario.finance.budget_factor
        mm.model.add_linear_constraint(factor * mm.capex <= mm.limits.budget, name="budget")


def add_quote_costs(mm: MipModel) -> None:
    """Add the quote lines (optimizer.quote) to mm.capex, with the coefficients the extraction uses.

    Per server of s: support, fractions of hardware, per-server items. Per server in a multi-server
    group (c spanning servers: servers_per_replica·r[c]; a fine-tuning job f larger than one server:
    gpus_f/G_s·x[f]): PCIe NICs and one link per port. Switches: integer w ≥ ports/per. Racks (when
    bought, add_racks): the integer K of the aggregate rack rows, which extraction's exact racking
    must meet (else the pipeline re-solves with the per-rack rows), or those rows' rack-used
    binaries; so the plan's priced racks are the racks it fills. Storage: a constant.
    """
    from optimizer import quote

    if mm.capex is None:
        return
    m, cands = mm.model, mm.cands
    t = quote.terms(mm.rs, [(k, s.unit_price, s.chassis.integrated, s.gpus) for k, s in cands.skus.items()])
    extra: list[mathopt.LinearExpression | mathopt.Variable] = [
        t.per_server[k] * mm.n[k] for k in cands.skus if t.per_server[k]]
    groups: dict[str, list[mathopt.LinearExpression]] = defaultdict(list)
    for i, c in enumerate(cands.inference):
        if c.servers_per_replica > 1:
            groups[c.sku].append(c.servers_per_replica * mm.r[i])
    for j, f in enumerate(cands.finetune):
        if f.gpus > cands.skus[f.sku].gpus:
            groups[f.sku].append((f.gpus // cands.skus[f.sku].gpus) * mm.x[j])
    ports = []
    for k, exprs in groups.items():
        servers = mathopt.fast_sum(exprs)
        if t.per_scaleout_server[k]:
            extra.append(t.per_scaleout_server[k] * servers)
        ports.append(t.ports_per_scaleout_server[k] * servers)
    if ports and t.switch_price and t.ports_per_switch:
        w = m.add_integer_variable(lb=0, name="quote_switches")
        m.add_linear_constraint(t.ports_per_switch * w >= mathopt.fast_sum(ports), name="quote_switch_ports")
        extra.append(t.switch_price * w)
    if t.per_rack and mm.rack_used:  # the racks the plan fills (add_racks' exact rows): exact
        extra.append(t.per_rack * mathopt.fast_sum(mm.rack_used))
    elif t.per_rack and mm.rack_count is not None:  # K of the aggregate rows: met by the exact racking
        extra.append(t.per_rack * mm.rack_count)
    if t.constant:  # storage: bought with the first server (a plan that buys nothing costs nothing)
        bound = sum(mm.n[k].upper_bound for k in cands.skus)
        if bound > 0:
            any_server = m.add_binary_variable(name="quote_any_server")
            m.add_linear_constraint(mathopt.fast_sum(mm.n.values()) <= bound * any_server, name="quote_any_server")
            extra.append(t.constant * any_server)
    mm.capex = mm.capex + mathopt.fast_sum(extra)


def add_site_power(mm: MipModel) -> None:
    """PUE·Σ_s W_s·n[s] ≤ site power (W)."""
    if mm.limits.site_power_kw is not None and mm.power_w is not None:
        pue = mm.rs.scenario.site.pue
        mm.model.add_linear_constraint(pue * mm.power_w <= mm.limits.site_power_kw * 1000.0, name="site_power")


def add_racks(mm: MipModel) -> None:
    """Servers go into racks, each within its power (kW) and rack units.

    A SKU of which one server draws more than a rack's power or is taller than its units fits no
    rack, whatever their number: n[s] = 0 (``build_candidates`` already drops such SKUs with a
    rejection; this keeps hand-made tables honest and lets the diagnosis lift the rack count alone).

    When N_ub = ``server_bound(mm)`` ≤ racks and racks are not bought, every remaining SKU fits a
    rack alone and one server per rack is a valid layout of any plan: the rack rows cannot bind and
    none are made. Otherwise, by default, the aggregate rows of :func:`_aggregate_racks` (necessary
    for K racks; no per-rack variables) stand in, and extraction racks the plan exactly
    (``optimizer.model.racks.rack_plan``); a plan they admit that no K racks hold raises
    ``RackingError`` and the pipeline re-solves with ``mm.exact_racks``, the per-rack block of
    :func:`_exact_racks`. Racks that are bought are priced per rack: by an integer K ≥ the
    aggregate rows, which the exact racking then meets or the re-solve prices rack by rack.
    """
    from optimizer import quote
    from optimizer.model.build import server_bound
    from optimizer.sizing.candidates import fits_rack

    site = mm.rs.scenario.site
    for key, sku in mm.cands.skus.items():
        if not fits_rack(sku, site.rack_power_kw, site.rack_units):
            mm.n[key].upper_bound = 0
    bought = any(item.category == "rack" for item in quote.items(mm.rs))
    racks = mm.limits.racks
    mm.racks_modelled = 0
    if not bought and (not racks or server_bound(mm) <= racks):
        return
    if mm.exact_racks and racks:
        # bought racks are priced per rack used, so the MIP counts exactly the racks the plan fills:
        # then at most min(racks, N_ub) racks are ever used (the ordering rows keep empty ones last)
        _exact_racks(mm, min(racks, max(server_bound(mm), 1)) if bought else racks, bought)
        return
    count: mathopt.Variable | int = racks or 0
    if bought:
        count = mm.rack_count = mm.model.add_integer_variable(lb=0, ub=racks or math.inf, name="rack_count")
    _aggregate_racks(mm, count)


def _aggregate_racks(mm: MipModel, count: mathopt.Variable | int) -> None:
    """The rows of ``racks.aggregate_rows`` for K = ``count`` racks: necessary for a layout in K
    racks, not sufficient (extraction racks the plan exactly). With a fixed K a one-SKU row is the
    bound of n[s]; a row no plan can reach is left out."""
    from optimizer.model.racks import aggregate_rows

    site = mm.rs.scenario.site
    live = {k: s for k, s in mm.cands.skus.items() if mm.n[k].upper_bound > 0}
    for row in aggregate_rows(live, site.rack_power_kw, site.rack_units):
        if not math.isfinite(row.per_rack):  # a SKU of no power and no height: nothing to bound
            continue
        most = sum(c * mm.n[k].upper_bound for k, c in row.coef.items())
        if isinstance(count, int) and most <= row.per_rack * count:
            continue
        if isinstance(count, int) and len(row.coef) == 1:
            (key,) = row.coef
            mm.n[key].upper_bound = math.floor(row.per_rack * count + 1e-9)
            continue
        lhs = mathopt.fast_sum(c * mm.n[k] for k, c in row.coef.items())
        mm.model.add_linear_constraint(lhs <= row.per_rack * count, name=f"racks_{row.name}")


def _exact_racks(mm: MipModel, racks: int, bought: bool) -> None:
    """Per-rack rows for K = ``racks`` identical racks, filled in order (:func:`per_rack_rows`).

    Every used rack holds at least one server, so a plan of N ≤ N_ub servers uses at most racks
    1..N: K = min(racks, N_ub) loses no plan. Bought racks get a rack-used binary per rack."""
    skus = mm.cands.skus
    site = mm.rs.scenario.site
    mm.racks_modelled = racks
    mm.a.update(per_rack_rows(mm.model, skus, {k: mm.n[k] for k in skus}, {k: mm.n[k].upper_bound for k in skus},
                              racks, site.rack_power_kw, site.rack_units))
    if bought:
        for k in range(racks):
            used = mm.model.add_binary_variable(name=f"rack_used[{k}]")
            for key in skus:
                mm.model.add_linear_constraint(mm.a[(key, k)] <= mm.n[key].upper_bound * used,
                                               name=f"rack_holds[{key},{k}]")
            mm.rack_used.append(used)


def per_rack_rows(model: mathopt.Model, skus: dict[str, ServerSku],
                  n: Mapping[str, mathopt.LinearExpression | mathopt.Variable], most: Mapping[str, float], racks: int,
                  rack_power_kw: float, rack_units: int, suffix: str = "") -> dict[tuple[str, int], mathopt.Variable]:
    """a[s,k] ∈ [0, most_s] servers of SKU s in rack k < ``racks``, and the rows::

        Σ_k a[s,k] = n[s];  Σ_s W_s·a[s,k] ≤ rack_power;  Σ_s U_s·a[s,k] ≤ rack_units;
        Σ_s W_s·a[s,k] ≥ Σ_s W_s·a[s,k+1]                       (symmetry)

    (any packing satisfies the last after renumbering its racks); ``suffix`` ends each name (a
    period's year). Returns a by (SKU, rack)."""
    a: dict[tuple[str, int], mathopt.Variable] = {}
    for key in skus:
        for k in range(racks):
            a[(key, k)] = model.add_integer_variable(lb=0, ub=most[key], name=f"a[{key},{k}{suffix}]")
        model.add_linear_constraint(mathopt.fast_sum(a[(key, k)] for k in range(racks)) == n[key],
                                    name=f"racked[{key}{suffix}]")
    load = []
    for k in range(racks):
        watts = mathopt.fast_sum(sku.power_w * a[(key, k)] for key, sku in skus.items())
        units = mathopt.fast_sum(sku.rack_units * a[(key, k)] for key, sku in skus.items())
        model.add_linear_constraint(watts <= rack_power_kw * 1000.0, name=f"rack_power[{k}{suffix}]")
        model.add_linear_constraint(units <= rack_units, name=f"rack_units[{k}{suffix}]")
        load.append(watts)
    for k in range(racks - 1):
        model.add_linear_constraint(load[k] >= load[k + 1], name=f"rack_order[{k}{suffix}]")
    return a


def add_availability(mm: MipModel) -> None:
    """Σ_{s of g} G_s·n[s] ≤ avail_g."""
    for g, cap in mm.limits.availability.items():
        terms = [sku.gpus * mm.n[key] for key, sku in mm.cands.skus.items() if sku.gpu.name == g]
        mm.model.add_linear_constraint(mathopt.fast_sum(terms) <= cap, name=f"availability[{g}]")


def add_gpu_types(mm: MipModel) -> None:
    """n[s] ≤ N_s·z[g_s]; Σ_g z[g] ≤ max_gpu_types."""
    for key, sku in mm.cands.skus.items():
        mm.model.add_linear_constraint(mm.n[key] <= mm.n[key].upper_bound * mm.z[sku.gpu.name],
                                       name=f"type_used[{key}]")
    if mm.limits.max_gpu_types is not None:
        mm.model.add_linear_constraint(mathopt.fast_sum(mm.z.values()) <= mm.limits.max_gpu_types,
                                       name="max_gpu_types")
