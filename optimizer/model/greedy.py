"""A greedy plan that respects every constraint: the answer when the MIP's limits end its search
before it finds any plan (a short --time-limit on a large platform exited 3 before).

It is not given to the MIP as a hint: on the 20-workload benchmark a hint doubled HiGHS's time to
the optimum. Its GPU types (step 1, :func:`greedy_types`) are also what the solver's warm start
restricts the MIP to (``solve.warm_start``). How it is built:

1. GPU types: with ``max_gpu_types = k``, types are added one at a time, each the one that lowers
   Σ_w (cheapest cost of serving w on the chosen types) the most; otherwise every type is open.
2. Replicas: each workload takes its cheapest candidate on those types, costed as
   ``r_c · t_c·p_c · price_s / G_s`` with ``r_c = max(m_w, ⌈λ_w / (ρ·μ_c)⌉)`` (GPU share of the
   server price), and runs ``r_c`` replicas of it; each fine-tuning job its cheapest GPU group.
3. Repair: with those replica counts fixed, the MIP itself chooses servers, racks, GPU-type and
   spread indicators and quote lines (a small problem: the hard choices are made), under the same
   node limit. If that is infeasible (budget, power, availability), there is no greedy plan.

Everything is deterministic: sorted keys, node-limited solves.
"""

from __future__ import annotations

from ortools.math_opt.python import mathopt

from optimizer.model.build import MipModel, replica_upper_bound
from optimizer.sizing.candidates import ServerSku


def _price(sku: ServerSku) -> float:
    """What one server of the SKU costs under the objective: its hourly price for a rented
    instance (objective hourly), else its purchase price."""
    return sku.unit_price if sku.hourly_price is None else sku.hourly_price


def greedy_counts(mm: MipModel) -> tuple[dict[int, int], dict[int, int]] | None:
    """Replica count per inference candidate and 0/1 per fine-tuning candidate, or None when some
    workload has no candidate on the chosen GPU types. Under coverage there is no greedy plan."""
    picked = _greedy_choice(mm)
    if picked is None:
        return None
    best, chosen = picked
    inference = mm.rs.scenario.inference_workloads()
    cands, rho = mm.cands, mm.rs.scenario.headroom
    r: dict[int, int] = {}
    x: dict[int, int] = {}
    for key, per in best.items():
        options = [per[g] for g in chosen if g in per]
        if not options:
            return None
        _, i = min(options)
        if key.startswith("finetune:"):
            x[i] = 1
        else:
            c = cands.inference[i]
            r[i] = replica_upper_bound(inference[c.workload], c, rho)
    return r, x


def greedy_types(mm: MipModel) -> list[str] | None:
    """The GPU types step 1 opens (sorted), or None under coverage."""
    picked = _greedy_choice(mm)
    return None if picked is None else sorted(picked[1])


def _greedy_choice(mm: MipModel) -> tuple[dict[str, dict[str, tuple[float, int]]], list[str]] | None:
    """Steps 1-2's data: each workload's cheapest (cost, candidate) per GPU type, and the GPU types
    opened. None under coverage."""
    if mm.limits.coverage:
        return None
    cands, sc = mm.cands, mm.rs.scenario
    rho = sc.headroom
    inference = sc.inference_workloads()
    # cheapest (cost, candidate) of each workload per GPU type
    best: dict[str, dict[str, tuple[float, int]]] = {}
    for w_name, idx in sorted(mm.index.inference_of.items()):
        w = inference[w_name]
        per_type: dict[str, tuple[float, int]] = {}
        for i in idx:
            c = cands.inference[i]
            if c.capacity_rps <= 0:  # serves only some buckets of a length mix: not alone
                continue
            sku = cands.skus[c.sku]
            cost = replica_upper_bound(w, c, rho) * c.gpus_per_replica * _price(sku) / sku.gpus
            g = sku.gpu.name
            if g not in per_type or (cost, i) < per_type[g]:
                per_type[g] = (cost, i)
        best[w_name] = per_type
    for j_name, idx in sorted(mm.index.finetune_of.items()):
        per_type = {}
        for j in idx:
            f = cands.finetune[j]
            sku = cands.skus[f.sku]
            cost = f.gpus * _price(sku) / sku.gpus
            g = sku.gpu.name
            if g not in per_type or (cost, j) < per_type[g]:
                per_type[g] = (cost, j)
        best["finetune:" + j_name] = per_type
    chosen = _choose_types(best, sorted({g for per in best.values() for g in per}), mm.limits.max_gpu_types)
    return best, chosen


def _choose_types(best: dict[str, dict[str, tuple[float, int]]], types: list[str], k: int | None) -> list[str]:
    if k is None or k >= len(types):
        return types
    penalty = 1e18  # a workload with no candidate on the chosen types

    def total(open_types: list[str]) -> float:
        return sum(min((per[g][0] for g in open_types if g in per), default=penalty) for per in best.values())

    chosen: list[str] = []
    for _ in range(k):
        pick = min((g for g in types if g not in chosen), key=lambda g: (total([*chosen, g]), g))
        chosen.append(pick)
    return chosen


def fix_counts(mm: MipModel, r: dict[int, int], x: dict[int, int]) -> list[tuple[mathopt.Variable, float, float]]:
    """Fix r and x to the greedy counts (0 elsewhere); returns the old bounds for :func:`restore`."""
    saved = []
    for i, var in mm.r.items():
        saved.append((var, var.lower_bound, var.upper_bound))
        value = float(r.get(i, 0))
        var.lower_bound = var.upper_bound = min(value, var.upper_bound)
    for j, var in mm.x.items():
        saved.append((var, var.lower_bound, var.upper_bound))
        var.lower_bound = var.upper_bound = float(x.get(j, 0))
    return saved


def fix_types(mm: MipModel, types: list[str]) -> list[tuple[mathopt.Variable, float, float]]:
    """Close every GPU type not in ``types`` (z[g] = 0, so none of its servers can be bought);
    returns the old bounds for :func:`restore`."""
    saved = []
    for g, var in mm.z.items():
        if g not in types:
            saved.append((var, var.lower_bound, var.upper_bound))
            var.lower_bound = var.upper_bound = 0.0
    return saved


def restore(saved: list[tuple[mathopt.Variable, float, float]]) -> None:
    for var, lo, hi in saved:
        var.lower_bound, var.upper_bound = lo, hi
