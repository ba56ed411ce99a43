"""Build the purchase MIP from the candidate table.

Formulation (names as in the code)::

    sets    w ∈ workloads (inference), j ∈ finetune jobs, c ∈ inference candidates (w_c, s_c, t_c, p_c),
            f ∈ finetune candidates (j_f, s_f, gpus_f), s ∈ server SKUs (G_s GPUs of type g_s),
            k ∈ racks, g ∈ GPU types
    vars    r[c] ∈ Z+      replicas of candidate c
            x[f] ∈ {0,1}   finetune job j_f runs on candidate f
            n[s] ∈ Z+      servers of SKU s bought, ≤ ⌈GPUs of its candidates at their bounds / G_s⌉
                           + spread workloads with candidates on s (add_variables)
            a[s,k] ∈ Z+    servers of SKU s in rack k (only with exact_racks, see add_racks)
            z[g] ∈ {0,1}   GPU type g is bought
            v[w,s] ∈ {0,1} workload w has replicas on SKU s (only for min_replicas ≥ 2)
            y[w] ∈ [0,1]   served fraction (coverage objective; else fixed 1), u[w] ∈ {0,1} served at all
            q[c,b] ≥ 0     replicas of c given to length bucket b (workloads with a length mix only)
    add_demand          Σ_{c of w} ρ·μ_c·r[c] ≥ λ_w·y[w]                         (headroom ρ)
                        with a length mix (buckets b, shares φ_b; add_routing):
                        Σ_{c of w} ρ·μ_c,b·q[c,b] ≥ λ_w·φ_b·y[w];  Σ_b q[c,b] ≤ r[c]
                        (μ_c,b: c's SLO capacity on bucket b alone; replicas time-share buckets)
    add_demand_bounds   Σ_{c of w} r[c] ≥ ⌈λ_w/(ρ·max μ_c)⌉;  Σ_{c of w} g_c·r[c] ≥ ⌈λ_w/(ρ·max μ_c/g_c)⌉
                        (valid inequalities, all demand served; not under coverage; with a mix
                        ⌈Σ_b λ_w·φ_b/(ρ·max_c μ_c,b)⌉ and the same per GPU)
    add_min_replicas    Σ_{c of w} r[c] ≥ m_w·u[w]
    add_spread          r[c] ≤ R_c·v[w,s_c];  v[w,s] ≤ Σ_{c of w on s} r[c];      (≥ 2 servers)
                        need[w,s] = v[w,s] − Σ_{s'≠s} v[w,s'] − Σ_{c of w on s spanning servers} r[c]
                                    − wide[w,s]   (wide: w has more GPUs on s than one server holds)
                        n[s] ≥ 2·need[w,s]                                        (necessary)
                        SKUs in exact_spread: named servers j hold q_j[c], N_j[g] within G_s·σ_j,
                        Σ_j b[w,j] ≥ 2·need[w,s], rest ≤ G_s·(n[s] − Σ_j σ_j)     (exact)
    add_finetune        Σ_{f of j} x[f] = u[j];  y[j] ≤ u[j]
    add_gpu_packing     Σ_{c on s} g_c·r[c] + Σ_{f on s} gpus_f·x[f] ≤ G_s·n[s]
                        population group P (one GPU type's SKUs of power-of-two sizes; c then is
                        one column for the layout's twins on every s ∈ P, model/populations.py),
                        per size t of P's servers and items (exact for divisible sizes):
                        Σ_{c in P, one server, g_c ≥ t} g_c·r[c]
                            ≤ Σ_{s ∈ P, G_s ≥ t} G_s·(n[s] − Σ_{c on s spanning servers} servers_c·r[c]);
                        add_spread treats P as one s with Σ_{s ∈ P} n[s] servers
    add_budget          capex = Σ_s price_s·n[s] + Q;  (1 + contingency)·(1 + tax)·capex ≤ budget
                        Q = quote lines (optimizer/quote.py, add_quote_costs): Σ_s q_s·n[s] (support,
                        fractions of hardware, per server) + Σ_{c multi-server} l_s·servers_c·r[c]
                        + Σ_{f > one server} l_s·(gpus_f/G_s)·x[f] (links, PCIe NICs) + P_sw·w with
                        integer w ≥ ports/32 (switches) + P_rk·K (racks when bought: add_racks' K,
                        met by the exact racking, or Σ_k rack_used[k]) + storage (a constant)
    add_site_power      PUE·Σ_s W_s·n[s] ≤ site_power
    add_racks           n[s] = 0 if W_s > rack_power or U_s > rack_units         (fits no rack)
                        nothing more if N_ub ≤ racks and racks are not bought, where N_ub =
                        server_bound ≥ Σ_s n[s] in every plan: one server per rack always fits
                        (the plan is racked first-fit, model/racks.py). Otherwise, by default,
                        aggregate rows for K racks (K = racks, or an integer K ≤ racks priced per
                        rack when racks are bought):
                        Σ_s W_s·n[s] ≤ K·rack_power;  Σ_s U_s·n[s] ≤ K·rack_units;
                        n[s] ≤ K·⌊min(rack_power/W_s, rack_units/U_s)⌋;
                        Σ_{s: W_s > rack_power/2} n[s] ≤ K;  Σ_{s: U_s > rack_units/2} n[s] ≤ K
                        (necessary, not sufficient: extraction racks the plan exactly, first-fit
                        then CP-SAT, and a plan no K racks hold is re-solved with exact_racks)
                        exact_racks, for k < K (K = racks; min(racks, N_ub) when bought):
                        Σ_k a[s,k] = n[s];  Σ_s W_s·a[s,k] ≤ rack_power;  Σ_s U_s·a[s,k] ≤ rack_units;
                        Σ_s W_s·a[s,k] ≥ Σ_s W_s·a[s,k+1]                       (symmetry)
                        racks are identical and each used one holds ≥ 1 server, so at most N_ub
                        racks are ever used
    add_availability    Σ_{s of g} G_s·n[s] ≤ avail_g
    add_gpu_types       n[s] ≤ N_s·z[g_s];  Σ_g z[g] ≤ max_gpu_types
    objective           capex    = Σ_s price_s·n[s]
                        tco      = capex + opex·Y·Σ_s price_s·n[s] + Σ_s n[s]·W_s·PUE·8760·Y·e
                                   (opex 0 when support is bought as quote lines)
                        coverage = max Σ_w priority_w·y[w] (then the cheapest such plan)
                        hourly   = Σ_s hourly_s·n[s]   (cloud instance types only: servers with
                                   hourly_usd, rented whole; price_s = 0 and W_s = U_s = 0, so budget,
                                   site power and racks do not bind them)

All sizes, capacities μ_c and prices come from ``optimizer.sizing.candidates``; nothing is sized here
(μ_c is the replica's SLO capacity at the scenario's ``confidence``: the ``1 − confidence`` quantile of
its GPU family's error band, ``optimizer.sizing.uncertainty``).
Replica footprints g_c = t·p·d (TP x PP x attention-DP ranks; see sizing.layout) are powers of two
dividing G_s (or whole servers for cross-server PP), so the aggregate packing row is exact.
Spread (min_replicas ≥ 2) is first modelled by a necessary row;
``optimizer.model.placement`` then places exactly (greedy, else CP-SAT), and on a SKU where no
placement exists the pipeline re-solves with that SKU's exact named-server block, so a plan is
never lost between the MIP and placement.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from ortools.math_opt.python import mathopt

from optimizer.loaders import ResolvedScenario
from optimizer.model import constraints as cons
from optimizer.model.objective import set_objective
from optimizer.model.populations import Merge, merge_populations
from optimizer.schema.scenario import InferenceWorkload
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate


@dataclass
class Limits:
    """Which limits to impose; the diagnosis relaxes some of them."""

    budget: float | None
    site_power_kw: float | None
    racks: int | None
    availability: dict[str, int]
    max_gpu_types: int | None
    coverage: bool = False  # served fraction is a variable


@dataclass
class MipModel:
    model: mathopt.Model
    rs: ResolvedScenario
    cands: CandidateSet
    limits: Limits
    #: how ``cands`` (the MIP's columns) maps back to the sized table: twins across a GPU type's
    #: populations are one column (optimizer.model.populations); Merge.none when none are
    merge: Merge
    r: dict[int, mathopt.Variable] = field(default_factory=dict)
    x: dict[int, mathopt.Variable] = field(default_factory=dict)
    n: dict[str, mathopt.Variable] = field(default_factory=dict)
    a: dict[tuple[str, int], mathopt.Variable] = field(default_factory=dict)
    z: dict[str, mathopt.Variable] = field(default_factory=dict)
    v: dict[tuple[str, str], mathopt.Variable] = field(default_factory=dict)
    #: routing q[c, b] ≥ 0: replicas of candidate c given to length bucket b (workloads with a mix)
    q: dict[tuple[int, int], mathopt.Variable] = field(default_factory=dict)
    exact_spread: frozenset[str] = frozenset()  # SKUs given the exact spread block (add_spread)
    named_items: dict[tuple[str, int], dict[int, mathopt.Variable]] = field(default_factory=dict)
    named_hosts: dict[tuple[str, str, int], mathopt.Variable] = field(default_factory=dict)
    y: dict[str, mathopt.Variable | float] = field(default_factory=dict)
    u: dict[str, mathopt.Variable | float] = field(default_factory=dict)
    capex: mathopt.LinearExpression | None = None
    tco: mathopt.LinearExpression | None = None
    power_w: mathopt.LinearExpression | None = None

    exact_racks: bool = False  # per-rack variables a[s,k] where racks can bind (else aggregate rows)
    racks_modelled: int = 0  # racks with per-rack variables a[s,k]; 0 without them
    rack_used: list[mathopt.Variable] = field(default_factory=list)  # exact rows and racks bought
    rack_count: mathopt.Variable | None = None  # racks bought, aggregate rows (the K they bound)

    def bin_of(self, sku: str) -> str:
        """The packing unit of a SKU: its population group's key (add_gpu_packing), else itself."""
        return self.merge.bin_of(sku)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Population groups by key: the SKUs whose servers one set of packing rows covers."""
        return self.merge.groups

    @property
    def num_racks(self) -> int:
        return self.limits.racks or 0

    @cached_property
    def index(self) -> CandidateIndex:
        """Candidates by workload and by SKU, built once so every row family is linear."""
        return CandidateIndex.of(self.cands)


@dataclass(frozen=True)
class CandidateIndex:
    """Positions of inference (``r``) and fine-tuning (``x``) candidates by workload and by SKU."""

    inference_of: dict[str, list[int]]
    inference_on: dict[str, list[int]]
    finetune_of: dict[str, list[int]]
    finetune_on: dict[str, list[int]]

    @classmethod
    def of(cls, cands: CandidateSet) -> CandidateIndex:
        inf_of: dict[str, list[int]] = defaultdict(list)
        inf_on: dict[str, list[int]] = defaultdict(list)
        ft_of: dict[str, list[int]] = defaultdict(list)
        ft_on: dict[str, list[int]] = defaultdict(list)
        for i, c in enumerate(cands.inference):
            inf_of[c.workload].append(i)
            inf_on[c.sku].append(i)
        for j, f in enumerate(cands.finetune):
            ft_of[f.workload].append(j)
            ft_on[f.sku].append(j)
        return cls(dict(inf_of), dict(inf_on), dict(ft_of), dict(ft_on))


def server_bound(mm: MipModel) -> int:
    """An upper bound on Σ_s n[s] in any plan the model admits (after the n[s] bounds are set).

    The least of: the sum of the n[s] upper bounds; the budget over the cheapest server; the site
    power over PUE times the least server power. Only SKUs with n[s] allowed above 0 count.
    """
    live = [(key, sku) for key, sku in mm.cands.skus.items() if mm.n[key].upper_bound > 0]
    if not live:
        return 0
    bound = sum(math.floor(mm.n[key].upper_bound + 1e-9) for key, _ in live)
    cheapest = min(sku.unit_price for _, sku in live)
    if mm.limits.budget is not None and cheapest > 0:
        bound = min(bound, math.floor(mm.limits.budget / cheapest + 1e-9))
    least_w = min(sku.power_w for _, sku in live)
    if mm.limits.site_power_kw is not None and least_w > 0:
        pue = mm.rs.scenario.site.pue
        bound = min(bound, math.floor(mm.limits.site_power_kw * 1000.0 / (pue * least_w) + 1e-9))
    return max(bound, 0)


def limits_of(rs: ResolvedScenario, *, coverage: bool | None = None) -> Limits:
    sc = rs.scenario
    avail = {rs.catalog.gpus[g].name if g in rs.catalog.gpus else g: n
             for g, n in sc.constraints.availability.items()}
    return Limits(budget=sc.constraints.budget, site_power_kw=sc.site.power_kw, racks=sc.site.racks,
                  availability=avail, max_gpu_types=sc.constraints.max_gpu_types,
                  coverage=(sc.objective == "coverage") if coverage is None else coverage)


def replica_upper_bound(w: InferenceWorkload, c: InferenceCandidate, headroom: float) -> int:
    """Replicas of candidate c never needed beyond demand / (ρ·μ) rounded up, or min_replicas; with a
    length mix, beyond what carries every bucket c can serve: Σ_{b: μ_c,b > 0} λ_w·φ_b / (ρ·μ_c,b)."""
    load = sum(w.requests_per_s * share / (headroom * mu)
               for (_, _, share), mu in zip(w.buckets(), c.bucket_rps, strict=True) if mu > 0)
    return max(math.ceil(load - 1e-9), w.min_replicas)


def build_model(rs: ResolvedScenario, cands: CandidateSet, limits: Limits | None = None,
                objective: str | None = None, exact_spread: frozenset[str] = frozenset(),
                exact_racks: bool = False, merge: bool = True) -> MipModel:
    """The whole MIP, constraint families added in the order of the module docstring.

    With ``merge`` (the default) a layout's twins across one GPU type's populations are one column
    (optimizer.model.populations; fewer columns, the same optimum up to the spread rows' checks);
    ``mm.cands`` is then the merged table and extraction splits the replicas back onto the SKUs
    bought."""
    limits = limits or limits_of(rs)
    merged = merge_populations(cands, exact_spread) if merge else Merge.none(cands)
    mm = MipModel(model=mathopt.Model(name="procure"), rs=rs, cands=merged.cands, limits=limits, merge=merged,
                  exact_spread=exact_spread, exact_racks=exact_racks)
    cons.add_variables(mm)
    cons.add_demand(mm)
    cons.add_demand_bounds(mm)
    cons.add_min_replicas(mm)
    cons.add_spread(mm)
    cons.add_finetune(mm)
    cons.add_gpu_packing(mm)
    cons.add_racks(mm)  # before the budget: bought racks are priced from its rack count
    cons.add_budget(mm)
    cons.add_site_power(mm)
    cons.add_availability(mm)
    cons.add_gpu_types(mm)
    set_objective(mm, objective or rs.scenario.objective)
    return mm
