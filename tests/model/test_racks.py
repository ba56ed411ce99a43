"""Racks are modelled only as far as a plan can use them (issue #10: `site.racks: 100000`).

add_racks makes per-rack variables only when the plan could hold more servers than the site has
racks; otherwise the rack rows cannot bind and the plan's servers are racked first-fit. Prices as in
test_hand_solved: HGX H20 server 100k + 8 x 10k = 180k (7.8 kW, 8 U); a 1-GPU L20 box in the 4-slot
chassis 15k + 5k = 20k (0.635 kW, 4 U).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from optimizer.loaders import load_scenario
from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.model.racks import first_fit_racks
from optimizer.sizing.candidates import CandidateSet, build_candidates, server_skus
from tests.conftest import BASE_SCENARIO
from tests.model.helpers import candidate, counts, scenario, solve, workload

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
    # servers: with 64 racks the rack rows are modelled (79 > 64), with 100000 they cannot bind and
    # none are made. The plan is the same; the 100000-rack model is no larger than the 64-rack one.
    cands = [candidate("a", H20, 1.0), candidate("a", L20_1, 1.0)]
    plans = {}
    for racks in (64, 100_000):
        rs = scenario([workload("a", 70)], prices=PRICES, constraints=BOTH, site=site(racks))
        start = time.perf_counter()
        out, mm = solve(rs, cands)
        elapsed = time.perf_counter() - start
        replicas = {i: round(out.values[v]) for i, v in mm.r.items() if round(out.values[v]) > 0}
        plans[racks] = (out.status, out.objective, counts(out, mm), replicas)
        if racks == 64:
            assert mm.racks_modelled == 64 and len(mm.a) == 64 * len(mm.cands.skus)
        else:
            assert mm.racks_modelled == 0 and not mm.a
            assert elapsed < 5.0
            # racked first-fit at extraction: 42 U racks take 10 boxes of 4 U, so 70 boxes fill 7
            layout = first_fit_racks(counts(out, mm), mm.cands.skus, 100, 42)
            assert sorted(set(layout[L20_1])) == list(range(1, 8))
    assert plans[64] == plans[100_000] == ("optimal", pytest.approx(1_400_000), {L20_1: 70}, {1: 70})


def test_scarce_racks_still_bind() -> None:
    # 20 req/s in one rack of 42 U: 20 L20 boxes need 80 U. With y H20 (8 req/s, 8 U) and x L20 boxes:
    # 4x + 8y <= 42 and x + 8y >= 20. y = 1 needs x >= 12, 56 U; y = 2, x = 4 takes 32 U for
    # 2 x 180k + 4 x 20k = 440k; y = 3 costs 540k. With two racks 20 boxes fit (10 per rack): 400k.
    cands = [candidate("a", H20, 1.0), candidate("a", L20_1, 1.0)]
    rs1 = scenario([workload("a", 20)], prices=PRICES, constraints=BOTH, site=site(1))
    out1, mm1 = solve(rs1, cands)
    assert mm1.racks_modelled == 1
    assert out1.objective == pytest.approx(440_000) and counts(out1, mm1) == {H20: 2, L20_1: 4}
    rs2 = scenario([workload("a", 20)], prices=PRICES, constraints=BOTH, site=site(2))
    out2, mm2 = solve(rs2, cands)
    assert mm2.racks_modelled == 2  # 20 + 3 = 23 servers possible > 2 racks
    assert out2.objective == pytest.approx(400_000) and counts(out2, mm2) == {L20_1: 20}


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
