"""Plans over periods (issue #14): hand-solved multi-period MIPs, the schema's refusals, and a
real-sizing plan through the pipeline and its checker.

Hand tables: real catalog SKUs at overridden round prices, stated per-replica capacities (one
1-GPU replica per 1-GPU server, so servers = replicas), headroom 1, PUE 1, no quote lines.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.math_opt.python import mathopt

from optimizer import periods as per
from optimizer.errors import ProcureError, ScenarioError, SolverError
from optimizer.loaders import load_catalog, resolve_scenario, scenario_from_data
from optimizer.model.check_periods import check_periods
from optimizer.model.periods import YearTable, build_period_model, year_scenario, year_tables
from optimizer.model.periods_plan import (
    YearPlacementError,
    YearRackingError,
    extract_period_plan,
    solve_period_model,
    solve_period_tables,
)
from optimizer.model.pipeline import solve_scenario
from optimizer.schema.scenario import InferenceWorkload, Scenario
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate, server_skus
from tests.model.helpers import SETTINGS, candidate, workload

L20_1 = "PCIe-8GPU-4U/L20-48GB/1"
L20_4 = "PCIe-8GPU-4U/L20-48GB/4"
L20_8 = "PCIe-8GPU-4U/L20-48GB/8"
H20 = "HGX-H20-8GPU/H20-96GB/8"
CLOUD = "peak.l20/L20-48GB/1"
#: chassis 90,000 + GPU 10,000: a 1-GPU L20 server at 100,000; 8 GPUs 170,000
PRICES = {"PCIe-8GPU-4U": 90000, "L20-48GB": 10000, "HGX-H20-8GPU": 20000, "H20-96GB": 10000}


def cloud_instance(usd_per_h: float) -> dict[str, Any]:
    return {"name": "peak.l20", "vendor": "test cloud", "description": "1 x L20", "gpu_form_factor": "pcie",
            "compatible_gpus": ["L20-48GB"], "gpu_slots": 1, "allowed_populations": [1], "hourly_usd": usd_per_h,
            "source": "test price list", "as_of": "2026-01-01"}


def data(rates: list[float], periods: dict[str, Any], **top: Any) -> dict[str, Any]:
    w = workload("a", 1.0)
    w["requests_per_s"] = rates
    out: dict[str, Any] = {
        "name": "periods", "objective": "npv", "periods": periods, "headroom": 1.0, "prices": PRICES,
        "site": {"power_kw": 1000, "pue": 1.0, "racks": 10, "rack_power_kw": 100, "rack_units": 42},
        "quote": {"network": False, "storage": False, "support": False, "shipping_installation": False},
        "constraints": {"gpus": ["L20-48GB"]}, "workloads": [w]}
    out.update(top)
    return out


def resolved(d: dict[str, Any]):  # type: ignore[no-untyped-def]
    return resolve_scenario(Scenario.model_validate(d), Path("periods.yaml"), load_catalog())


def solve(rs: Any, cands: list[InferenceCandidate]) -> tuple[Any, dict[str, float], float]:
    """Solve with the same hand table every year; (model, {variable name: value}, objective)."""
    assert rs.scenario.periods is not None
    tables = []
    for y in range(1, rs.scenario.periods.years + 1):
        ry = year_scenario(rs, y)
        tables.append(YearTable(y, ry, CandidateSet(skus=server_skus(ry), inference=list(cands))))
    pm = build_period_model(rs, tables)
    values, report = solve_period_model(pm, SETTINGS)
    assert report.status == "optimal"
    named = {v.name: round(x) for v, x in values.items() if round(x) > 0 and v.name.startswith(("buy", "ret", "rent"))}
    return pm, named, report.objective


def test_growth_bought_in_two_phases_when_prices_fall_fast() -> None:
    # demand 2, 2, 4 req/s on 1-req/s servers at 100,000; support 1 % of year-1 price = 1,000 a year
    # per server owned; prices fall 30 % a year (year 3: 100,000 x 0.7^2 = 49,000); discount 10 %.
    # all in year 1: 400,000 + 4,000 + 4,000/1.1 + 4,000/1.21 = 410,942.15
    # 2 + 2 in year 2: 202,000 + (2 x 70,000 + 4,000)/1.1 + 4,000/1.21 = 336,214.88
    # 2 + 2 in year 3: 202,000 + 2,000/1.1 + (2 x 49,000 + 4,000)/1.21 = 202,000 + 1,818.18 + 84,297.52
    #                  = 288,115.70  <- least
    rs = resolved(data([2, 2, 4], {"years": 3, "price_decline_per_year": 0.3, "discount_rate": 0.1},
                       opex_per_year_fraction=0.01))
    _, named, obj = solve(rs, [candidate("a", L20_1, 1.0)])
    assert named == {f"buy[{L20_1},1]": 2, f"buy[{L20_1},3]": 2}
    assert obj == pytest.approx(288115.70, abs=0.6)  # the tie-breaks are worth at most 0.5


def test_growth_bought_at_once_when_prices_do_not_fall() -> None:
    # the same demand, prices rising 5 % a year (periods.prices: 100,000, 105,000, 110,000), no discount:
    # all in year 1: 400,000 + 3 x 4,000 = 412,000  <- least
    # 2 + 2 in year 2: 200,000 + 210,000 + 2,000 + 4,000 + 4,000 = 420,000
    # 2 + 2 in year 3: 200,000 + 220,000 + 2,000 + 2,000 + 4,000 = 428,000
    rs = resolved(data([2, 2, 4], {"years": 3, "discount_rate": 0.0,
                                   "prices": {"PCIe-8GPU-4U": [90000, 95000, 100000]}},
                       opex_per_year_fraction=0.01))
    _, named, obj = solve(rs, [candidate("a", L20_1, 1.0)])
    assert named == {f"buy[{L20_1},1]": 4}
    assert obj == pytest.approx(412000.0, abs=0.6)


def inventory_case(rate: float) -> tuple[dict[str, float], float]:
    # inventory: one 8 x L20 server (year-1 price 170,000: support 20 % = 34,000 a year), old and
    # slow here: 0.5 req/s per 1-GPU replica, 4 req/s in all. New: an H20 server at 20,000 + 8 x 10,000
    # = 100,000 (support 20,000 a year) serving 8 req/s (one TP8 replica). Three years, no discount.
    d = data([rate] * 3, {"years": 3, "discount_rate": 0.0}, opex_per_year_fraction=0.2,
             inventory=[{"server": "PCIe-8GPU-4U", "gpu": "L20-48GB", "gpus_per_server": 8, "count": 1,
                         "age_years": 3}])
    d["constraints"] = {"gpus": ["L20-48GB", "H20-96GB"], "servers": ["HGX-H20-8GPU"]}
    rs = resolved(d)
    _, named, obj = solve(rs, [candidate("a", L20_8, 0.5), candidate("a", H20, 8.0, tp=8)])
    return named, obj


def test_inventory_kept_when_cheaper() -> None:
    # 4 req/s: keep the inventory: 3 x 34,000 = 102,000; an H20 instead: 100,000 + 3 x 20,000 = 160,000
    named, obj = inventory_case(4.0)
    assert named == {}
    assert obj == pytest.approx(102000.0, abs=0.6)


def test_inventory_retired_when_not() -> None:
    # 8 req/s: an H20 is needed anyway (the inventory serves 4); keeping the inventory beside it
    # costs 102,000 more: retire it in year 1 -> 100,000 + 60,000 = 160,000
    named, obj = inventory_case(8.0)
    assert named == {f"buy[{H20},1]": 1, f"ret[{L20_8},1]": 1, f"ret[{L20_8},2]": 1, f"ret[{L20_8},3]": 1}
    assert obj == pytest.approx(160000.0, abs=0.6)


def test_short_peak_rented() -> None:
    # demand 2, 6, 2 req/s; owning a 1-GPU server: 100,000, nothing to run; renting one for a year:
    # 5.00/h x 8,760 h = 43,800. Base load: buy 2 (200,000; renting them 3 years is 131,400 each);
    # the year-2 peak of 4 more: rent (4 x 43,800 = 175,200) rather than buy (400,000).
    # NPV at 0 %: 200,000 + 175,200 = 375,200
    rs = resolved(data([2, 6, 2], {"years": 3, "discount_rate": 0.0}, catalog={"servers": [cloud_instance(5.0)]}))
    assert server_skus(rs)[CLOUD].hourly_price == 5.0
    _, named, obj = solve(rs, [candidate("a", L20_1, 1.0), candidate("a", CLOUD, 1.0)])
    assert named == {f"buy[{L20_1},1]": 2, f"rent[{CLOUD},on-demand,2]": 4}
    assert obj == pytest.approx(375200.0, abs=0.6)


def test_demand_by_year_and_prices() -> None:
    # growth 50 %: 12, 18, 27; a list is kept as given
    w = InferenceWorkload.model_validate({**workload("a", 12.0), "growth_per_year": 0.5})
    assert per.demand_by_year(w, 3) == pytest.approx([12.0, 18.0, 27.0])
    w2 = InferenceWorkload.model_validate({**workload("a", 1.0), "requests_per_s": [12, 20, 36]})
    assert w2.requests_per_s == 12 and per.demand_by_year(w2, 3) == [12, 20, 36]
    p = Scenario.model_validate(data([1, 1, 1], {"years": 3, "price_decline_per_year": 0.2})).periods
    assert p is not None
    # 10,000 x 0.8^2 = 6,400; a server of chassis 90,000 and one GPU: (90,000 + 10,000) x 0.8 = 80,000
    assert per.item_price(p, "L20-48GB", 10000, 3) == pytest.approx(6400.0)
    assert per.server_price(p, "PCIe-8GPU-4U", 90000, "L20-48GB", 10000, 1, 2) == pytest.approx(80000.0)
    assert per.discount_factor(0.1, 3) == pytest.approx(1 / 1.21)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["workloads"][0].update(requests_per_s=[1, 2]), "has 2 values; periods.years is 3"),
    (lambda d: d.pop("periods"), "objective npv needs a periods: block"),
    (lambda d: d.update(objective="capex"), "objective capex is for one period"),
    (lambda d: d["periods"].update(prices={"L20-48GB": [1, 2]}), "periods.prices.L20-48GB has 2 values"),
    (lambda d: d["workloads"][0].update(growth_per_year=0.5), "growth_per_year: give one of them"),
    (lambda d: (d.pop("periods"), d.update(objective="capex", inventory=[{"sku": L20_8, "count": 1}]),
                d["workloads"][0].update(requests_per_s=1.0)), "inventory: needs a periods: block"),
    (lambda d: d.update(inventory=[{"sku": "NoSuch/L20-48GB/8", "count": 1}]), "unknown server"),
    (lambda d: d.update(inventory=[{"sku": "PCIe-8GPU-4U/L20-48GB/3", "count": 1}]), "not 3"),
])
def test_inconsistent_periods_are_refused(change: Any, message: str) -> None:
    d = data([1, 2, 3], {"years": 3})
    change(d)
    with pytest.raises(ProcureError) as err:
        scenario_from_data(d, Path("bad.yaml"))
    assert isinstance(err.value, ScenarioError)
    assert message in str(err.value)


def test_real_plan_over_periods_is_checked() -> None:
    """Real sizing (Qwen2-7B on L20 and an owned A100 server) through the pipeline: the plan has a
    period per year, the checker recomputes own = inventory + bought − retired and the NPV."""
    d = data([2, 8, 30], {"years": 3, "price_decline_per_year": 0.2, "discount_rate": 0.08},
             inventory=[{"sku": "HGX-A100-8GPU/A100-SXM-80GB/8", "count": 1, "age_years": 2}])
    d["prices"] = {}
    d["site"]["electricity_per_kwh"] = 0.1
    d["workloads"][0].update(input_tokens=1000, output_tokens=200)
    rs = scenario_from_data(d, Path("periods.yaml"))
    result = solve_scenario(rs)
    plan = result.plan
    assert plan.periods is not None and [p.year for p in plan.periods] == [1, 2, 3]
    assert plan.npv is not None and result.checks
    # NPV = Σ cash out x 1/1.08^(y-1) (no rent here, or a one-year rent in its own year)
    assert plan.npv == pytest.approx(sum(p.cash_out / 1.08 ** (p.year - 1) for p in plan.periods), rel=1e-9)
    assert all(sum(d.planned_rps for d in p.deployments) >= p.demand_rps["a"] * (1 - 1e-9) for p in plan.periods)


@given(rates=st.lists(st.floats(min_value=0.01, max_value=1e4), min_size=1, max_size=6),
       growth=st.floats(min_value=-0.5, max_value=2.0))
@settings(max_examples=40, deadline=None)
def test_rates_round_trip_and_growth_compounds(rates: list[float], growth: float) -> None:
    """A per-year list survives model_dump → validate (a written-out scenario reloads) and is what
    demand_by_year returns; a growth rate compounds: λ_y+1 = λ_y·(1 + g)."""
    years = len(rates)
    w = InferenceWorkload.model_validate({**workload("a", 1.0), "requests_per_s": rates})
    again = InferenceWorkload.model_validate(w.model_dump())
    assert per.demand_by_year(again, years) == rates and again.requests_per_s == rates[0]
    g = InferenceWorkload.model_validate({**workload("a", rates[0]), "growth_per_year": growth})
    by_year = per.demand_by_year(g, years)
    for a, b in pairwise(by_year):
        assert b == pytest.approx(a * (1 + growth), rel=1e-12)


def test_committed_term_is_an_option_covering_its_term() -> None:
    # 4 req/s for 3 years on 1-req/s instances, no discount. Per instance: buy 100,000; on demand
    # 5.00/h = 43,800 a year (131,400 over 3); committed 3 years at 3.00/h = 26,280 a year, 78,840 in
    # all, paid in each year of the term -> 4 committed instances: 315,360 (buying: 400,000)
    committed = {**cloud_instance(5.0), "hourly_3y_usd": 3.0}  # as the cloud catalog gives it
    rs = resolved(data([4, 4, 4], {"years": 3, "discount_rate": 0.0}, catalog={"servers": [committed]}))
    tables = []
    for y in (1, 2, 3):
        ry = year_scenario(rs, y)
        skus = server_skus(ry)
        tables.append(YearTable(y, ry, CandidateSet(skus=skus, inference=[candidate("a", L20_1, 1.0),
                                                                          candidate("a", CLOUD, 1.0)])))
    pm = build_period_model(rs, tables)
    values, report = solve_period_model(pm, SETTINGS)
    named = {v.name: round(x) for v, x in values.items() if round(x) > 0 and v.name.startswith(("buy", "rent"))}
    assert named == {f"rent[{CLOUD},3y,1]": 4}
    assert report.objective == pytest.approx(315360.0, abs=0.6)
    # the term runs on: year 3's packing row holds with no rent started after year 1
    assert all(k[2] == 1 for k, v in pm.rent.items() if round(values[v]) > 0)


def test_newer_model_replaces_older_one_in_its_year() -> None:
    """model_by_year: year 2 is sized on its own model (its own candidate table), the plan names
    each year's model, and the checker passes every year."""
    d = data([2, 4], {"years": 2, "discount_rate": 0.08})
    d["prices"] = {}
    d["workloads"][0]["model_by_year"] = ["Qwen2-7B", "Qwen/Qwen2.5-7B-Instruct"]
    rs = scenario_from_data(d, Path("periods.yaml"))
    result = solve_scenario(rs)
    assert result.plan.periods is not None
    assert [p.models["a"] for p in result.plan.periods] == ["Qwen2-7B", "Qwen2.5-7B"]
    assert {dep.model for dep in result.plan.periods[1].deployments} == {"Qwen2.5-7B"}
    bad = data([2, 4], {"years": 2})
    bad["workloads"][0]["model_by_year"] = ["Qwen2-7B", "NoSuchModel-7B"]
    with pytest.raises(ScenarioError, match=r"model_by_year\[1\]"):
        scenario_from_data(bad, Path("bad.yaml"))


def test_tampered_capacity_in_a_periods_plan_is_rejected() -> None:
    """The periods checker re-sizes each year's deployments from that year's scenario: the real
    plan passes, and the same plan with year 2's capacity_rps raised by 10 % (or year 1's model
    swapped) fails its checks, naming the year and the deployment."""
    d = data([2, 4], {"years": 2, "discount_rate": 0.08})
    d["prices"] = {}
    d["workloads"][0]["model_by_year"] = ["Qwen2-7B", "Qwen/Qwen2.5-7B-Instruct"]
    rs = scenario_from_data(d, Path("periods.yaml"))
    plan = solve_scenario(rs).plan
    assert plan.periods is not None
    assert any("re-sized" in line for line in check_periods(plan, rs))
    periods = [p.model_copy(deep=True) for p in plan.periods]
    dep = periods[1].deployments[0]
    periods[1].deployments[0] = dep.model_copy(update={"capacity_rps": dep.capacity_rps * 1.1})
    tampered = plan.model_copy(update={"periods": periods})
    with pytest.raises(SolverError, match=r"year 2: a capacity recomputed"):
        check_periods(tampered, rs)
    periods = [p.model_copy(deep=True) for p in plan.periods]
    periods[0].deployments[0] = periods[0].deployments[0].model_copy(update={"model": "Qwen2.5-7B"})
    with pytest.raises(SolverError, match=r"year 1: a serves Qwen2.5-7B, the year's model is Qwen2-7B"):
        check_periods(plan.model_copy(update={"periods": periods}), rs)


def test_unplaceable_spread_year_is_re_solved_with_exact_rows() -> None:
    # 8-GPU L20 servers at 90,000 + 8 x 10,000 = 170,000; no support; discount 10 %. Workload a
    # (min_replicas 2) runs 4-GPU replicas of 1 req/s: 2 then 4 req/s; b one 8-GPU replica (1 req/s).
    # Year 1: 2 x 4 + 8 = 16 GPUs = 2 servers, and the necessary row n >= 2 is met; year 2: 4 x 4 + 8
    # = 24 GPUs = 3 servers. The necessary model buys 2 + 1: 340,000 + 170,000/1.1 = 494,545.45.
    # But in year 1 b fills one server, so both replicas of a share the other: placement proves it.
    # The exact block on (L20_8, year 1) needs a third server then (two named hosts for a, an empty
    # one for b): buy 3 in year 1, 510,000; year 2 places a 2 + 2 on two servers, b on the third.
    d = data([2, 4], {"years": 2, "discount_rate": 0.1}, opex_per_year_fraction=0.0)
    a, b = workload("a", 1.0, min_replicas=2), workload("b", 1.0)
    a["requests_per_s"], b["requests_per_s"] = [2, 4], [1, 1]
    d["workloads"] = [a, b]
    rs = resolved(d)
    # the real sized Qwen2-7B rows on L20_8 (extraction reads their memory and provenance), re-laid
    # as TP4 / TP8 replicas of 1 req/s
    tables = []
    for t in year_tables(rs):
        real = {c.workload: c for c in t.cands.inference if c.sku == L20_8 and c.tp == 1}
        cands = [replace(real[w], tp=tp, perf=replace(real[w].perf, requests_per_s=1.0))
                 for w, tp in (("a", 4), ("b", 8))]
        tables.append(YearTable(t.year, t.rs, replace(t.cands, inference=cands)))
    pm = build_period_model(rs, tables)
    values, report = solve_period_model(pm, SETTINGS)
    assert {k: round(values[v]) for k, v in pm.buy.items() if round(values[v])} == {(L20_8, 1): 2, (L20_8, 2): 1}
    assert report.objective == pytest.approx(494545.45, abs=0.6)
    with pytest.raises(YearPlacementError) as err:
        extract_period_plan(pm, values, report)
    assert (err.value.sku, err.value.year) == (L20_8, 1)
    plan = solve_period_tables(rs, tables, SETTINGS)
    assert plan.periods is not None
    assert [[(c.sku, c.count) for c in p.buy] for p in plan.periods] == [[(L20_8, 3)], []]
    assert plan.objective == pytest.approx(510000.0, abs=0.6)
    assert [[(c.sku, c.count) for c in p.own] for p in plan.periods] == [[(L20_8, 3)], [(L20_8, 3)]]
    hosts = {s.index for s in plan.placement for r in s.replicas if r.workload == "a"}
    assert len(hosts) == 2  # year 2 (the plan's placement): a's four replicas on two servers


def test_spread_not_excused_by_an_unused_sku() -> None:
    # a (min_replicas 2) needs two TP4 replicas of 1 req/s, on an 8-GPU L20 server (90,000 + 8 x
    # 10,000 = 170,000) or 4-GPU ones (90,000 + 4 x 10,000 = 130,000); no support, no discount.
    # One 8-GPU server (170,000) holds both but on one server; v[a, 4-GPU SKU] = 1 with no replica
    # there must not excuse that. Least: two 4-GPU servers, 260,000 (8 + 4: 300,000; 2 x 8: 340,000).
    d = data([2], {"years": 1, "discount_rate": 0.0}, opex_per_year_fraction=0.0)
    d["workloads"][0]["min_replicas"] = 2
    rs = resolved(d)
    tables = []
    for t in year_tables(rs):
        real = next(c for c in t.cands.inference if c.sku == L20_8 and c.tp == 1)
        cands = [replace(real, sku=s, tp=4, perf=replace(real.perf, requests_per_s=1.0)) for s in (L20_8, L20_4)]
        tables.append(YearTable(t.year, t.rs, replace(t.cands, inference=cands)))
    plan = solve_period_tables(rs, tables, SETTINGS)
    assert plan.periods is not None
    assert [(c.sku, c.count) for c in plan.periods[0].buy] == [(L20_4, 2)]
    assert plan.objective == pytest.approx(260000.0, abs=0.6)


L20_2 = "PCIe-8GPU-4U/L20-48GB/2"


def population_tables(rs: Any) -> list[YearTable]:
    """The real sized Qwen2-7B TP1 row of the 8-GPU L20 server on every L20 population (the
    checker re-sizes each: a TP1 replica is the same on any of them): one population group a year."""
    tables = []
    for t in year_tables(rs):
        real = next(c for c in t.cands.inference if c.sku == L20_8 and c.tp == 1)
        cands = [replace(real, sku=s) for s in (L20_1, L20_2, L20_4, L20_8)]
        tables.append(YearTable(t.year, t.rs, replace(t.cands, inference=cands)))
    return tables


def test_population_group_bought_in_phases_and_split_onto_its_skus() -> None:
    # one 8-slot L20 chassis with 1, 2, 4 or 8 GPUs: 100,000 / 110,000 / 130,000 / 170,000 in year 1,
    # half that in year 2 (prices fall 50 %); no support, no energy, no discount. 12 then 60 req/s on
    # TP1 replicas of the real row's capacity (12.48 req/s): 1 then 5 GPUs (60 / 12.48 = 4.8).
    # Year 1 buys A (>= 1 GPU), year 2 adds B (>= 5 in all):
    #   A = 1-GPU (100,000) + B = 4-GPU (65,000)     = 165,000  <- least
    #   A = 1 + B = 8 (85,000) 185,000; A = 2 (110,000) + B = 4 175,000; A = 4 (130,000) + B = 1
    #   (50,000) 180,000; A = 8 170,000; A = 4 + 1 230,000
    d = data([12, 60], {"years": 2, "discount_rate": 0.0, "price_decline_per_year": 0.5}, opex_per_year_fraction=0.0)
    d["constraints"] = {"gpus": ["L20-48GB"], "servers": ["PCIe-8GPU-4U"]}
    rs = resolved(d)
    tables = population_tables(rs)
    assert tables[0].cands.inference[0].capacity_rps == pytest.approx(12.48, abs=0.01)
    merged, per_sku = build_period_model(rs, tables), build_period_model(rs, tables, merge=False)
    assert [list(pm.merges[y].groups) for pm in (merged, per_sku) for y in (1, 2)] == [[L20_8], [L20_8], [], []]
    assert [len(t.cands.inference) for t in merged.tables] == [1, 1]  # one column a year, not four
    objectives = [solve_period_model(pm, SETTINGS)[1].objective for pm in (merged, per_sku)]
    assert objectives == [pytest.approx(165000.0, abs=0.6)] * 2
    plan = solve_period_tables(rs, tables, SETTINGS)
    assert plan.periods is not None
    assert [[(c.sku, c.count) for c in p.buy] for p in plan.periods] == [[(L20_1, 1)], [(L20_4, 1)]]
    # year 2's five replicas split onto the servers owned: four on the 4-GPU box, one on the 1-GPU one
    assert sorted((dep.sku, dep.replicas) for dep in plan.periods[1].deployments) == [(L20_1, 1), (L20_4, 4)]
    assert sum(dep.planned_rps for dep in plan.periods[1].deployments) == pytest.approx(60.0)
    assert plan.solver.candidates == 8  # as sized: four SKUs a year
    check_periods(plan, rs)


@settings(max_examples=15, deadline=None)
@given(rates=st.lists(st.floats(min_value=0.5, max_value=14.0), min_size=2, max_size=3),
       spread=st.booleans(), decline=st.sampled_from([0.0, 0.2, 0.5]))
def test_merged_period_optimum_equals_per_sku(rates: list[float], spread: bool, decline: float) -> None:
    """Random growth on the L20 populations: merging never changes the optimal NPV without spread,
    and with spread never raises it (the group's spread row is necessary only; placement checks it)."""
    d = data(rates, {"years": len(rates), "discount_rate": 0.08, "price_decline_per_year": decline},
             opex_per_year_fraction=0.05)
    d["constraints"] = {"gpus": ["L20-48GB"], "servers": ["PCIe-8GPU-4U"]}
    d["workloads"][0]["min_replicas"] = 2 if spread else 1
    rs = resolved(d)
    tables = []
    for y in range(1, len(rates) + 1):
        ry = year_scenario(rs, y)
        skus = server_skus(ry)
        tables.append(YearTable(y, ry, CandidateSet(skus=skus, inference=[
            candidate("a", k, cap, tp=tp) for k, sku in skus.items()
            for tp, cap in ((1, 1.0), (2, 1.7), (4, 3.1)) if tp <= sku.gpus])))
    models = [build_period_model(rs, tables, merge=m) for m in (True, False)]
    assert all(models[0].merges[y].groups for y in range(1, len(rates) + 1))
    merged, per_sku = (solve_period_model(pm, SETTINGS)[1] for pm in models)
    assert merged.status == per_sku.status == "optimal"
    if spread:
        assert merged.objective <= per_sku.objective + 1e-6
    else:
        assert merged.objective == pytest.approx(per_sku.objective, rel=1e-6)


def test_unrackable_year_is_re_solved_with_per_rack_rows() -> None:
    # two racks of 14 U (100 kW each); 1-GPU L20 servers (4 U) at 90,000 + 10,000 = 100,000 serving
    # 1 req/s, H20 servers (8 U) at 270,000 + 8 x 10,000 = 350,000 serving 3 req/s (TP8); prices halve
    # in year 2; no support, energy or discount. Demand 2 then 8 req/s. A rack holds an H20 and one
    # L20 (12 U) or three L20. Year 1: 2 L20 (200,000; an H20 350,000). The aggregate rows (28 U in
    # all, at most 6 L20 and 2 H20) admit adding 1 H20 + 3 L20 in year 2 (175,000 + 150,000: 525,000
    # in all), a fleet of 1 H20 + 5 L20 that no two racks hold: extraction finds no layout of year 2,
    # and year 2's per-rack rows give the least rackable plan, 2 L20 then 2 H20 = 200,000 + 350,000
    # = 550,000 (1 H20 then 1 H20 + 2 L20: 625,000; 1 H20 + 4 L20 serves only 7 req/s).
    d = data([2, 8], {"years": 2, "discount_rate": 0.0, "price_decline_per_year": 0.5}, opex_per_year_fraction=0.0)
    d["site"] = {"power_kw": 1000, "pue": 1.0, "racks": 2, "rack_power_kw": 100, "rack_units": 14}
    d["prices"] = {**PRICES, "HGX-H20-8GPU": 270000}
    d["constraints"] = {"gpus": ["L20-48GB", "H20-96GB"], "servers": ["PCIe-8GPU-4U", "HGX-H20-8GPU"]}
    rs = resolved(d)
    tables = []
    for t in year_tables(rs):
        real = next(c for c in t.cands.inference if c.sku == L20_8 and c.tp == 1)
        cands = [replace(real, sku=L20_1, perf=replace(real.perf, requests_per_s=1.0)),
                 replace(real, sku=H20, tp=8, perf=replace(real.perf, requests_per_s=3.0))]
        tables.append(YearTable(t.year, t.rs, replace(t.cands, inference=cands)))
    pm = build_period_model(rs, tables)
    values, report = solve_period_model(pm, SETTINGS)
    assert report.objective == pytest.approx(525000.0, abs=0.6)
    assert {k: round(mathopt.evaluate_expression(pm.own[(k, 2)], values)) for k in (L20_1, H20)} == {L20_1: 5, H20: 1}
    with pytest.raises(YearRackingError) as err:
        extract_period_plan(pm, values, report)
    assert err.value.year == 2
    plan = solve_period_tables(rs, tables, SETTINGS)
    assert plan.periods is not None
    assert plan.objective == pytest.approx(550000.0, abs=0.6)
    assert [[(c.sku, c.count) for c in p.buy] for p in plan.periods] == [[(L20_1, 2)], [(H20, 2)]]
    # the plan's (year 2) layout: each rack one H20 and one L20
    by_rack: dict[int, list[str]] = {}
    for server in plan.placement:
        by_rack.setdefault(server.rack, []).append(server.sku)
    assert sorted(sorted(v) for v in by_rack.values()) == [[H20, L20_1], [H20, L20_1]]
