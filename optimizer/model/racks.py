"""Racks for a plan whose MIP had no per-rack variables (``add_racks`` left them out).

That happens only when every bought SKU fits an empty rack on its own and the plan cannot hold more
servers than the site has racks, so any layout that opens a rack only for a server no open rack
can take stays within the site. First-fit decreasing (by power, then rack units, then SKU name, so
the layout is deterministic) does that and packs racks densely: each server goes to the first rack
with room for both its power and its units, else opens the next rack. It never opens more racks
than there are servers, and the solver-free checker re-verifies every rack's power and units.
"""

from __future__ import annotations

from optimizer.sizing.candidates import ServerSku


def first_fit_racks(counts: dict[str, int], skus: dict[str, ServerSku], rack_power_kw: float,
                    rack_units: int) -> dict[str, list[int]]:
    """The rack (1-based) of each server of each SKU, first-fit decreasing."""
    order = sorted((k for k, n in counts.items() if n > 0),
                   key=lambda k: (-skus[k].power_w, -skus[k].rack_units, k))
    cap_w = rack_power_kw * 1000.0 * (1 + 1e-9)
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
