"""Racks for a plan whose MIP had no per-rack variables (``add_racks`` left them out).

``add_racks`` models racks by aggregate rows that every rackable plan satisfies (total power and
units within K racks, each SKU within K times what one rack holds of it, at most K servers larger
than half a rack); they are necessary, not sufficient, for K racks to hold the plan. So the plan's
servers are racked here, exactly:

1. First-fit decreasing (by power, then rack units, then SKU name, so the layout is deterministic):
   each server goes to the first rack with room for both its power and its units, else opens the
   next rack. It never opens more racks than there are servers, so when the plan cannot hold more
   servers than the site has racks it always succeeds (then ``add_racks`` makes no rack rows at all).
2. When first-fit opens more than K racks, an exact CP-SAT model over counts (y[s,k] servers of
   SKU s in rack k, Σ_k y[s,k] = n_s, each rack within its power and units, racks ordered by
   non-increasing power, which every packing satisfies after renumbering), solved as
   ``placement.py`` solves GPU slots: one worker, fixed seed, a deterministic-time limit. A
   packing is the layout; a proof that none exists (or an undecided search) is ``None``, and the
   pipeline re-solves with the exact per-rack rows (``exact_racks``).

Power is compared in integer milliwatts inside CP-SAT (catalog powers are whole watts), with the
same relative tolerance as first-fit and the checker. The solver-free checker re-verifies every
rack's power and units from the placement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ortools.sat.python import cp_model

from optimizer.sizing.candidates import ServerSku, fits_rack

#: CP-SAT work limit in deterministic seconds (reproducible on every machine, unlike wall time);
#: plans hold a few SKUs in tens of racks, orders of magnitude below it.
DETERMINISTIC_LIMIT = 20.0
_TOL = 1e-9


@dataclass(frozen=True)
class RackRow:
    """Σ_s coef[s]·n[s] ≤ per_rack·K: a bound that holds rack by rack, summed over K racks."""

    name: str
    coef: dict[str, float]
    per_rack: float


def aggregate_rows(skus: dict[str, ServerSku], rack_power_kw: float, rack_units: int) -> list[RackRow]:
    """The rows of ``add_racks`` for servers of ``skus`` in K racks of P kW and U units::

        Σ_s W_s·n[s] ≤ P·K;   Σ_s U_s·n[s] ≤ U·K;   n[s] ≤ ⌊min(P/W_s, U/U_s)⌋·K
        Σ_{s: W_s > P/2} n[s] ≤ K;   Σ_{s: U_s > U/2} n[s] ≤ K      (two such servers share no rack)

    Each bounds one rack's contents, so every layout in K racks meets their sum: no rackable plan
    is cut off. They are not sufficient: in 2 racks of 14 U, one 8 U and five 4 U servers meet
    them all (28 U of 28; at most 2 and 6 by SKU), but the rack with the 8 U server has room for
    one 4 U server beside it, the other for three (tests/model/test_racks.py)."""
    watts = rack_power_kw * 1000.0 * (1 + _TOL)
    keys = sorted(skus)
    rows = [RackRow("power", {k: skus[k].power_w for k in keys}, rack_power_kw * 1000.0),
            RackRow("units", {k: float(skus[k].rack_units) for k in keys}, float(rack_units))]
    for k in keys:
        by_power = math.floor(watts / skus[k].power_w) if skus[k].power_w > 0 else math.inf
        by_units = rack_units // skus[k].rack_units if skus[k].rack_units > 0 else math.inf
        rows.append(RackRow(f"of[{k}]", {k: 1.0}, float(min(by_power, by_units))))
    for name, big in (("big_power", [k for k in keys if 2 * skus[k].power_w > watts]),
                      ("big_units", [k for k in keys if 2 * skus[k].rack_units > rack_units])):
        if big:
            rows.append(RackRow(name, dict.fromkeys(big, 1.0), 1.0))
    return rows


def first_fit_racks(counts: dict[str, int], skus: dict[str, ServerSku], rack_power_kw: float,
                    rack_units: int) -> dict[str, list[int]]:
    """The rack (1-based) of each server of each SKU, first-fit decreasing."""
    order = sorted((k for k, n in counts.items() if n > 0),
                   key=lambda k: (-skus[k].power_w, -skus[k].rack_units, k))
    cap_w = rack_power_kw * 1000.0 * (1 + _TOL)
    load_w: list[float] = []
    load_u: list[int] = []
    out: dict[str, list[int]] = {}
    for key in order:
        sku = skus[key]
        for _ in range(counts[key]):
            rack = next((r for r in range(len(load_w))
                         if load_w[r] + sku.power_w <= cap_w and load_u[r] + sku.rack_units <= rack_units), None)
            if rack is None:
                load_w.append(0.0)
                load_u.append(0)
                rack = len(load_w) - 1
            load_w[rack] += sku.power_w
            load_u[rack] += sku.rack_units
            out.setdefault(key, []).append(rack + 1)
    return out


def racks_used(layout: dict[str, list[int]]) -> int:
    return len({r for racks in layout.values() for r in racks})


def rack_plan(counts: dict[str, int], skus: dict[str, ServerSku], rack_power_kw: float, rack_units: int,
              max_racks: int) -> dict[str, list[int]] | None:
    """The rack (1-based, at most ``max_racks``) of each server, or None when no such layout was found:
    first-fit decreasing, then the exact CP-SAT packing (module docstring)."""
    if any(n > 0 and not fits_rack(skus[k], rack_power_kw, rack_units) for k, n in counts.items()):
        return None  # first-fit would open a rack for it all the same
    layout = first_fit_racks(counts, skus, rack_power_kw, rack_units)
    if racks_used(layout) <= max_racks:
        return layout
    return exact_racks(counts, skus, rack_power_kw, rack_units, max_racks)


def exact_racks(counts: dict[str, int], skus: dict[str, ServerSku], rack_power_kw: float, rack_units: int,
                max_racks: int) -> dict[str, list[int]] | None:
    """A packing of the servers into ``max_racks`` racks by CP-SAT, or None (none exists, or the search
    was not decided within DETERMINISTIC_LIMIT)."""
    keys = sorted(k for k, n in counts.items() if n > 0)
    if not keys:
        return {}
    if max_racks <= 0:
        return None
    cap_mw = math.floor(rack_power_kw * 1e6 * (1 + _TOL))
    mw = {k: round(skus[k].power_w * 1000.0) for k in keys}
    model = cp_model.CpModel()
    y = {(k, r): model.new_int_var(0, counts[k], f"y[{k},{r}]") for k in keys for r in range(max_racks)}
    for k in keys:
        model.add(sum(y[k, r] for r in range(max_racks)) == counts[k])
    load = [sum(mw[k] * y[k, r] for k in keys) for r in range(max_racks)]
    for r in range(max_racks):
        model.add(load[r] <= cap_mw)
        model.add(sum(skus[k].rack_units * y[k, r] for k in keys) <= rack_units)
    for r in range(max_racks - 1):  # racks are identical: number them by non-increasing power
        model.add(load[r] >= load[r + 1])
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = DETERMINISTIC_LIMIT
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return {k: [r + 1 for r in range(max_racks) for _ in range(solver.value(y[k, r]))] for k in keys}
