"""Racks are modelled only as far as a plan can use them (issue #10: `site.racks: 100000`).

add_racks makes per-rack variables only when the plan could hold more servers than the site has
racks; otherwise the rack rows cannot bind and the plan's servers are racked first-fit. Prices as in
test_hand_solved: HGX H20 server 100k + 8 x 10k = 180k (7.8 kW, 8 U); a 1-GPU L20 box in the 4-slot
chassis 15k + 5k = 20k (0.635 kW, 4 U).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.errors import RackingError
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.model import pipeline
from optimizer.model.build import build_model
from optimizer.model.extract import extract_plan
from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.model.racks import aggregate_rows, first_fit_racks, rack_plan
from optimizer.model.solve import solve_model
from optimizer.sizing.candidates import CandidateSet, build_candidates, server_skus
from tests.conftest import BASE_SCENARIO
from tests.model.helpers import SETTINGS, candidate, counts, scenario, solve, workload

H20 = "HGX-H20-8GPU/H20-96GB/8"
L20_1 = "PCIe-4GPU-4U/L20-48GB/1"
PRICES = {"HGX-H20-8GPU": 100_000, "H20-96GB": 10_000, "PCIe-8GPU-4U": 20_000, "PCIe-4GPU-4U": 15_000,
          "L20-48GB": 5_000}
BOTH = {"gpus": ["H20-96GB", "L20-48GB"]}


def site(racks: int, rack_units: int = 42) -> dict[str, Any]:
    return {"power_kw": 1000, "pue": 1.0, "racks": racks, "rack_power_kw": 100, "rack_units": rack_units}


def test_racks_beyond_what_the_plan_can_fill_are_not_modelled() -> None:
    # 70 req/s on 1 req/s replicas: 70 L20 boxes (20k/req/s) beat H20 (180k for 8 = 22.5k/req/s), so
    # the plan is 70 x 20k = 1.40M. The plan can hold at most 70 L20 boxes + ceil(70/8) = 9 H20 = 79
    # servers: with 100000 racks the rack rows cannot bind and none are made; with 64 (79 > 64)
    # per-rack variables a[s,k] are made only with exact_racks, and the aggregate rows (79 servers
    # of 4-8 U and at most 7.8 kW: 352 U and 94 kW against 64 x 42 U and 6.4 MW) are all slack,
    # so they are left out too. The plan is the same.
    cands = [candidate("a", H20, 1.0), candidate("a", L20_1, 1.0)]
    plans = {}
    for racks in (64, 100_000):
        rs = scenario([workload("a", 70)], prices=PRICES, constraints=BOTH, site=site(racks))
        start = time.perf_counter()
        out, mm = solve(rs, cands)
        elapsed = time.perf_counter() - start
        replicas = {i: round(out.values[v]) for i, v in mm.r.items() if round(out.values[v]) > 0}
        plans[racks] = (out.status, out.objective, counts(out, mm), replicas)
        names = {c.name for c in mm.model.linear_constraints()}
        assert mm.racks_modelled == 0 and not mm.a
        assert not {n for n in names if n.startswith("rack")}
        if racks == 64:
            exact = build_model(rs, mm.cands, objective="capex", exact_racks=True)
            assert exact.racks_modelled == 64 and len(exact.a) == 64 * len(mm.cands.skus)
        else:
            assert elapsed < 5.0
        # racked first-fit at extraction: 42 U racks take 10 boxes of 4 U, so 70 boxes fill 7
        layout = rack_plan(counts(out, mm), mm.cands.skus, 100, 42, racks)
        assert layout is not None and sorted(set(layout[L20_1])) == list(range(1, 8))
    assert plans[64] == plans[100_000] == ("optimal", pytest.approx(1_400_000), {L20_1: 70}, {1: 70})


def test_scarce_racks_still_bind() -> None:
    # 20 req/s in one rack of 42 U: 20 L20 boxes need 80 U. With y H20 (8 req/s, 8 U) and x L20 boxes:
    # 4x + 8y <= 42 and x + 8y >= 20. y = 1 needs x >= 12, 56 U; y = 2, x = 4 takes 32 U for
    # 2 x 180k + 4 x 20k = 440k; y = 3 costs 540k. With two racks 20 boxes fit (10 per rack): 400k.
    # With one rack the aggregate rows are the rack's own; with two, the plan racks 10 + 10.
    cands = [candidate("a", H20, 1.0), candidate("a", L20_1, 1.0)]
    for racks, cost, plan in ((1, 440_000, {H20: 2, L20_1: 4}), (2, 400_000, {L20_1: 20})):
        rs = scenario([workload("a", 20)], prices=PRICES, constraints=BOTH, site=site(racks))
        out, mm = solve(rs, cands)
        assert out.status == "optimal" and out.objective == pytest.approx(cost) and counts(out, mm) == plan
        layout = rack_plan(plan, mm.cands.skus, 100, 42, racks)
        assert layout is not None and max(r for rs_ in layout.values() for r in rs_) == racks


def real_table(rs: ResolvedScenario, capacity: dict[str, float]) -> CandidateSet:
    """The scenario's real TP1 bf16 candidate on each SKU of ``capacity``, at that many req/s a replica
    (real memory accounts and architectures for extraction; hand-worked capacities for the MIP)."""
    full = build_candidates(rs)
    cands = [dataclasses.replace(c, perf=dataclasses.replace(c.perf, requests_per_s=capacity[c.sku]))
             for c in full.inference if c.sku in capacity and c.tp == 1 and c.pp == 1 and c.precision == "bf16"]
    assert sorted(c.sku for c in cands) == sorted(capacity)
    return CandidateSet(skus=full.skus, inference=cands, archs=full.archs, efficiency=full.efficiency)


def test_unrackable_aggregate_plan_is_re_solved_with_exact_rack_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two racks of 14 U (power ample). 17 req/s from H20 (12 req/s a server: 8 GPUs at 1.5, 180k, 8 U)
    # and 1-GPU L20 boxes (1 req/s, 20k, 4 U). The aggregate rows: 8y + 4x <= 28 U; y <= 2 x
    # floor(14/8) = 2 and x <= 2 x floor(14/4) = 6; y <= 2 (8 U > 7 U: one per rack). y = 1, x = 5
    # meets them (28 U, 17 req/s, 180k + 100k = 280k; y = 0 gives at most 6 req/s) and is the
    # cheapest. But the H20's rack has 6 U left, room for one box, and the other rack holds three:
    # four boxes, not five. With the per-rack rows: y = 1, x = 4 serves 16 < 17, so y = 2 (one per
    # rack, 24 req/s) at 360k is the cheapest plan.
    rs = scenario([workload("a", 17)], prices=PRICES, constraints=BOTH,
                  site={"power_kw": 1000, "pue": 1.0, "racks": 2, "rack_power_kw": 100, "rack_units": 14})
    table = real_table(rs, {H20: 1.5, L20_1: 1.0})
    mm = build_model(rs, table, objective="capex")
    out = solve_model(mm, SETTINGS, "capex")
    assert counts(out, mm) == {H20: 1, L20_1: 5} and out.objective == pytest.approx(280_000)
    assert rack_plan({H20: 1, L20_1: 5}, mm.cands.skus, 100, 14, 2) is None
    with pytest.raises(RackingError):
        extract_plan(mm, out, SETTINGS, "capex")
    # the pipeline's answer; its checker re-sizes capacities, which these hand-made ones are not
    # (the rack loads are checked here from the placement instead)
    monkeypatch.setattr(pipeline, "check_plan", lambda *args, **kwargs: [])
    events: list[str] = []
    plan = pipeline.solve_scenario(rs, SETTINGS, progress=events.append, cands=table).plan
    assert "re-solving with exact rack rows" in events
    assert plan.status == "optimal" and plan.capex == pytest.approx(360_000)
    assert {s.sku: s.count for s in plan.servers} == {H20: 2}
    assert sorted(p.rack for p in plan.placement) == [1, 2]  # one 8 U server in each 14 U rack


def test_server_that_fits_no_rack_is_never_bought() -> None:
    # An HGX H20 server draws 7.8 kW: in 5 kW racks it fits none, however many racks there are, so
    # even a hand-made table offering only H20 has no plan (and more racks are never asked for).
    rs = scenario([workload("a", 8)], prices=PRICES, constraints=BOTH,
                  site={"power_kw": 1000, "pue": 1.0, "racks": 100, "rack_power_kw": 5, "rack_units": 42})
    out, mm = solve(rs, [candidate("a", H20, 1.0)])
    assert mm.n[H20].upper_bound == 0 and out.status == "infeasible"


def test_first_fit_racks_by_power_then_units() -> None:
    # 10 kW racks of 42 U: H20 (7.8 kW) first, one per rack; the 0.635 kW L20 boxes fill the 2.2 kW
    # left in each H20 rack three at a time (1.905 kW, 12 U), then a fresh rack.
    rs = scenario([workload("a", 1)], prices=PRICES, constraints=BOTH,
                  site={"power_kw": 1000, "pue": 1.0, "racks": 10, "rack_power_kw": 10, "rack_units": 42})
    skus = server_skus(rs)
    racks = first_fit_racks({L20_1: 7, H20: 2}, skus, 10, 42)
    assert racks == {H20: [1, 2], L20_1: [1, 1, 1, 2, 2, 2, 3]}


@pytest.mark.parametrize("rps", [2, 200])
def test_hundred_thousand_racks_same_plan_as_64(tmp_path: Path, rps: float) -> None:
    # The case: the base test scenario (Qwen2-7B on H20 or L20, 20 kW racks) with site.racks
    # 100000 took 86 s and 1.5 GB; 64 racks are ample for it, so both give the same plan. At 200
    # req/s the plan could hold more than 64 servers, so 64 racks are modelled one by one while
    # 100000 are not modelled at all; the plan (10 servers in 2 racks) is the same, racked first-fit,
    # and solve_scenario's checker re-verifies every rack's power and units from the placement.
    results = {}
    cands: CandidateSet | None = None
    for racks in (64, 100_000):
        data = copy.deepcopy(BASE_SCENARIO)
        data["site"]["racks"] = racks
        data["workloads"][0]["requests_per_s"] = rps
        path = tmp_path / f"r{racks}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        rs = load_scenario(path)
        cands = cands or build_candidates(rs)  # same candidates: racks do not change sizing
        start = time.perf_counter()
        plan = solve_scenario(rs, settings_of(rs), cands=cands).plan
        elapsed = time.perf_counter() - start
        if racks == 100_000:
            assert elapsed < 5.0, elapsed
        assert plan.racks_used <= racks
        results[racks] = (plan.status, plan.capex, [(s.sku, s.count) for s in plan.servers],
                          sorted((d.workload, d.sku, d.tp, d.pp, d.precision, d.replicas) for d in plan.deployments))
    assert results[64] == results[100_000]
    assert results[64][0] == "optimal"


def _rackable(counts: list[int], skus: list[Any], watts: float, units: int, racks: int) -> bool:
    """Brute force: the contents one rack can take (every vector within the counts that fits), then
    every sum of ``racks`` of them; rackable when one covers the counts."""
    fits = [c for c in itertools.product(*(range(n + 1) for n in counts))
            if sum(k * s.power_w for k, s in zip(c, skus, strict=True)) <= watts
            and sum(k * s.rack_units for k, s in zip(c, skus, strict=True)) <= units]
    reach = {tuple(0 for _ in counts)}
    for _ in range(racks):
        reach = {tuple(min(a + b, n) for a, b, n in zip(r, c, counts, strict=True)) for r in reach for c in fits}
    return tuple(counts) in reach


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 8), st.integers(0, 4)), min_size=1, max_size=3),
       st.integers(2, 16), st.integers(2, 14), st.integers(1, 3))
def test_rack_plan_agrees_with_brute_force(spec: list[tuple[int, int, int]], rack_kw: int, rack_units: int,
                                           racks: int) -> None:
    # servers of 1-12 kW (in 100 W steps: whole watts, as in the catalog) and 1-8 U, up to 4 of each,
    # in 1-3 racks: rack_plan finds a layout exactly when one exists, the layout is valid, and every
    # rackable plan meets add_racks' aggregate rows (they are necessary)
    skus = {f"s{i}": SimpleNamespace(power_w=kw * 100.0, rack_units=u) for i, (kw, u, _) in enumerate(spec)}
    counts = {f"s{i}": n for i, (_, _, n) in enumerate(spec)}
    watts = rack_kw * 100.0
    keys = sorted(skus)
    exists = _rackable([counts[k] for k in keys], [skus[k] for k in keys], watts, rack_units, racks)
    layout = rack_plan(counts, skus, watts / 1000, rack_units, racks)  # type: ignore[arg-type]
    assert (layout is not None) == exists
    if layout is not None:
        assert {k: len(v) for k, v in layout.items()} == {k: n for k, n in counts.items() if n > 0}
        for rack in {r for v in layout.values() for r in v}:
            assert 1 <= rack <= racks
            assert sum(skus[k].power_w * v.count(rack) for k, v in layout.items()) <= watts
            assert sum(skus[k].rack_units * v.count(rack) for k, v in layout.items()) <= rack_units
        for row in aggregate_rows(skus, watts / 1000, rack_units):  # type: ignore[arg-type]
            assert sum(c * counts[k] for k, c in row.coef.items()) <= row.per_rack * racks + 1e-9, row.name
