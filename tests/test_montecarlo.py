"""Monte-Carlo risk (optimizer/montecarlo.py): sampling, evaluation, robust plan, executors.

Hand-worked figures use the small scenario of tests/conftest.py (Qwen2-7B chat at 1.5 req/s): its
plan is one PCIe-8GPU-4U chassis (26,000 USD) with one L20-48GB (5,000 USD), one replica of
2.0215 req/s (Ada/vLLM factors; band_log_sd 0.3159 for Ada Lovelace), headroom 0.8, capex 42,720
(servers 31,000 + storage 95 + support 12.5 % x 31,000 x 3 years = 11,625; tests/test_compare.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from optimizer.errors import ScenarioError
from optimizer.loaders import load_scenario, resolve_scenario
from optimizer.montecarlo import (
    PlanShape,
    Sample,
    ShapeDeployment,
    _sample_prices,
    cost_at,
    draw_sample,
    evaluate,
    percentile,
    period_shape_of,
    prepare,
    requests_served,
    robust_plan,
    run_monte_carlo,
    same_results,
    served_by_year,
    served_fractions,
    shape_of,
    solve_sample,
    year_factor,
)
from optimizer.schema.scenario import Risk

ADA, L20 = "Ada Lovelace", "L20-48GB"
L20_POINT = 2.0215  # req/s of one Qwen2-7B replica on one L20 (plan figure, 4 digits)
ADA_SD = 0.3159
SMALL_CAPEX = 31_000 + 95 + 3 * 0.125 * 31_000  # 42,720


def _shape(capacity: float, capex: float = 100.0, headroom: float = 1.0, sd: float = 1.0,
           spend: float = 0.0) -> PlanShape:
    return PlanShape(source=f"cap {capacity:g}", capex=capex, gpu_spend={L20: spend} if spend else {},
                     gpus_by_type={L20: 1}, servers={f"S{capacity:g}": 1}, headroom=headroom,
                     deployments=[ShapeDeployment(workload="chat", gpu=L20, replicas=1, point_capacity_rps=capacity,
                                                  band_log_sd=sd)])


def _sample(i: int = 0, scale: float = 1.0, z: float = 0.0, m: float = 1.0) -> Sample:
    return Sample(index=i, demand_scale=scale, price_factor={L20: m}, capacity_z={ADA: z})


FAMILY = {L20: ADA}


# ------------------------------------------------------------------------------------------------
# Pure pieces, by hand
# ------------------------------------------------------------------------------------------------


def test_served_fraction_is_capacity_over_sampled_demand() -> None:
    shape = _shape(2.0, headroom=0.8, sd=0.3)
    # demand 1.5 x 1.2 = 1.8 req/s; capacity 0.8 x 2.0 x exp(-1 x 0.3) = 1.6 x 0.740818 = 1.185309
    got = served_fractions(shape, _sample(scale=1.2, z=-1.0), {"chat": 1.5}, FAMILY)
    assert got["chat"] == pytest.approx(1.185309 / 1.8, rel=1e-6)  # 0.658505
    # z = +1: 1.6 x 1.349859 = 2.159774 >= 1.5: all served, capped at 1
    assert served_fractions(shape, _sample(z=1.0), {"chat": 1.5}, FAMILY)["chat"] == 1.0
    # requests served over two workloads: (1.0 x 3 + 0.5 x 1) / 4 = 0.875
    assert requests_served({"a": 1.0, "b": 0.5}, {"a": 3.0, "b": 1.0}) == pytest.approx(0.875)


def test_cost_reprices_gpu_spend_only() -> None:
    # 42,720 capex of which 5,000 is the L20; at x1.2: 42,720 + 5,000 x 0.2 = 43,720
    assert cost_at(_shape(2.0, capex=42_720, spend=5_000), _sample(m=1.2)) == pytest.approx(43_720)
    assert cost_at(_shape(2.0, capex=42_720, spend=5_000), _sample(m=0.9)) == pytest.approx(42_220)


def test_percentile_interpolates_between_order_statistics() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0]
    # sorted 1..5, position p x 4: p10 at 0.4 -> 1.4; p50 at 2 -> 3; p90 at 3.6 -> 4.6
    assert [percentile(xs, p) for p in (0.1, 0.5, 0.9)] == pytest.approx([1.4, 3.0, 4.6])


def test_robust_plan_is_the_cheapest_holding_in_90_percent() -> None:
    zs = [-1.0, -0.8, -0.5, -0.2, 0.0, 0.1, 0.3, 0.5, 0.9, 1.2]
    samples = [_sample(i, z=z) for i, z in enumerate(zs)]
    # demand 1, headroom 1, sd 1: capacity c serves all when c x exp(z) >= 1, z >= -ln c
    # c=1: z >= 0, 6 of 10; c=2: z >= -0.693, 8 of 10; c=4: z >= -1.386, 10 of 10
    shapes = [_shape(1.0, 100), _shape(2.0, 200), _shape(4.0, 400)]
    held, most = robust_plan(shapes, samples, {"chat": [1.0]}, FAMILY)
    assert held is not None and held.source == "cap 4" and held.p_all_served == 1.0
    assert most.source == "cap 4"
    at_80, _ = robust_plan(shapes, samples, {"chat": [1.0]}, FAMILY, hold=0.8)
    assert at_80 is not None and at_80.source == "cap 2" and at_80.p_all_served == pytest.approx(0.8)
    none, most2 = robust_plan(shapes[:2], samples, {"chat": [1.0]}, FAMILY)
    assert none is None and most2.source == "cap 2"  # 8 of 10 is the most


# ------------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------------


def test_samples_depend_on_seed_and_index_only() -> None:
    risk = Risk()
    a = draw_sample(7, 3, risk, ["H20-96GB", L20], ["Hopper", ADA])
    assert a == draw_sample(7, 3, risk, [L20, "H20-96GB"], [ADA, "Hopper"])  # order of names: no effect
    assert draw_sample(7, 3, risk, [L20], [ADA]).price_factor[L20] == a.price_factor[L20]  # other GPUs: none
    assert draw_sample(7, 4, risk, [L20], [ADA]) != draw_sample(7, 3, risk, [L20], [ADA])
    assert draw_sample(8, 3, risk, [L20], [ADA]) != draw_sample(7, 3, risk, [L20], [ADA])


def test_sample_distributions_have_the_stated_parameters() -> None:
    risk = Risk(demand_median=2.0, demand_log_sd=0.25, price_log_sd=0.15)
    draws = [draw_sample(1, i, risk, [L20], [ADA]) for i in range(2000)]
    logs = [math.log(d.demand_scale / 2.0) for d in draws]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    # standard error of the mean 0.25 / sqrt(2000) = 0.0056; of the sd about 0.25 / sqrt(4000) = 0.004
    assert abs(mean) < 0.02 and sd == pytest.approx(0.25, abs=0.015)
    price_sd = math.sqrt(sum(math.log(d.price_factor[L20]) ** 2 for d in draws) / len(draws))
    assert price_sd == pytest.approx(0.15, abs=0.01)
    fixed = draw_sample(1, 0, Risk(demand_log_sd=0, price_log_sd=0, capacity_error=False), [L20], [ADA])
    assert fixed.demand_scale == 1.0 and fixed.price_factor == {L20: 1.0} and fixed.capacity_z == {ADA: 0.0}


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), index=st.integers(0, 10**6),
       median=st.floats(0.01, 100), dsd=st.floats(0, 2), psd=st.floats(0, 2))
def test_samples_are_finite_and_positive(seed: int, index: int, median: float, dsd: float, psd: float) -> None:
    s = draw_sample(seed, index, Risk(demand_median=median, demand_log_sd=dsd, price_log_sd=psd), [L20], [ADA])
    assert math.isfinite(s.demand_scale) and s.demand_scale > 0
    assert all(math.isfinite(v) and v > 0 for v in s.price_factor.values())


def test_risk_block_is_strict_and_range_checked(base_scenario: dict[str, Any],
                                                write_scenario: Callable[[Any], Path]) -> None:
    with pytest.raises(ValidationError):
        Risk(demand_log_sd=-0.1)
    with pytest.raises(ValidationError):
        Risk(demand_median=math.nan)
    base_scenario["risk"] = {"demand_sd": 0.3}
    with pytest.raises(ScenarioError, match="demand_sd"):
        load_scenario(write_scenario(base_scenario))
    base_scenario["risk"] = {"demand_log_sd": 0.4, "capacity_error": False}
    assert load_scenario(write_scenario(base_scenario)).scenario.risk.demand_log_sd == 0.4


# ------------------------------------------------------------------------------------------------
# With the real solver, on the small scenario
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def small(base_scenario: dict[str, Any], write_scenario: Callable[[Any], Path]) -> Any:
    return load_scenario(write_scenario(base_scenario))


def test_recommended_plan_evaluated_by_hand(small: Any) -> None:
    setup, plan = prepare(small, seed=0)
    rec = shape_of(plan, "recommended", setup.base_gpu_price, setup.family, setup.markup)
    # support 12.5 % a year x 3 years = 0.375 of the hardware price rides on the GPU's 5,000
    assert setup.markup == pytest.approx(0.375)
    assert rec.capex == pytest.approx(SMALL_CAPEX) and rec.gpu_spend == {L20: pytest.approx(5_000 * 1.375)}
    (d,) = rec.deployments
    assert d.point_capacity_rps == pytest.approx(L20_POINT, abs=1e-4) and d.band_log_sd == pytest.approx(ADA_SD)
    demand = {"chat": 1.5}
    # the neutral sample reproduces the plan's coverage: 0.8 x 2.0215 = 1.617 >= 1.5
    assert served_fractions(rec, _sample(), demand, setup.family) == {"chat": 1.0}
    # z = -1 on Ada: 0.8 x 2.0215 x exp(-0.3159) = 1.6172 x 0.729175 = 1.17922; / 1.5 = 0.78615
    assert served_fractions(rec, _sample(z=-1.0), demand, setup.family)["chat"] == pytest.approx(0.78615, abs=1e-4)


def test_each_sample_optimum_is_the_hand_count_of_l20s(small: Any) -> None:
    setup, _ = prepare(small, seed=5)
    for i in range(4):
        r = solve_sample(setup, i)
        s = r.sample
        assert r.optimum is not None and r.optimal_cost is not None
        # replicas needed: ceil(1.5 x scale / (0.8 x 2.0215 x exp(z_Ada x 0.3159))), one L20 each, on one
        # chassis; capex at catalog prices 26,000 + 5,000 n + 95 + 0.375 x (26,000 + 5,000 n); the
        # sampled price adds 5,000 n x (m - 1) x 1.375 (support rides on it)
        per = 0.8 * L20_POINT * math.exp(s.capacity_z[ADA] * ADA_SD)
        n = math.ceil(1.5 * s.demand_scale / per - 1e-6)
        servers = 26_000 + 5_000 * n
        assert r.optimum.gpus_by_type == {L20: n}
        assert r.optimum.capex == pytest.approx(servers + 95 + 0.375 * servers, rel=1e-6)
        assert r.optimal_cost == pytest.approx(r.optimum.capex + 5_000 * n * (s.price_factor[L20] - 1) * 1.375,
                                               rel=1e-6)
        # the optimum serves all of its own sample's demand
        assert served_fractions(r.optimum, s, {"chat": 1.5}, setup.family) == {"chat": 1.0}


def test_same_seed_same_results_whatever_the_worker_count(small: Any) -> None:
    one = run_monte_carlo(small, 6, seed=11, workers=1)
    two = run_monte_carlo(small, 6, seed=11, workers=2)
    assert same_results(one, two)
    assert not same_results(one, run_monte_carlo(small, 6, seed=12, workers=1))
    # the summary is the rows': p_all_served counts the rows that serve all
    assert one.p_all_served == pytest.approx(sum(r.all_served for r in one.rows) / 6)
    assert one.cost.p50 == pytest.approx(percentile([r.cost for r in one.rows], 0.5))


def test_ray_gives_the_local_results(small: Any) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'procure[ray]')")
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    try:
        on_ray = run_monte_carlo(small, 4, seed=3, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert on_ray.executor == "ray"
    assert same_results(on_ray, run_monte_carlo(small, 4, seed=3, workers=1))


# ------------------------------------------------------------------------------------------------
# Plans over periods: a 2-year, one-workload scenario (chat at 1.5 then 3.0 req/s, objective npv)
# ------------------------------------------------------------------------------------------------
# Its plan (electricity and support 0 by default): one PCIe-4GPU-4U with two L20 bought in year 1,
# 26,000 + 2 x 5,000 = 36,000 (NPV = capex: nothing else is paid); one replica in year 1, two in
# year 2 (0.8 x 2.0215 = 1.617 >= 1.5; 2 x 1.617 = 3.234 >= 3.0).


@pytest.fixture
def two_years(base_scenario: dict[str, Any], write_scenario: Callable[[Any], Path]) -> Any:
    base_scenario["objective"] = "npv"
    base_scenario["periods"] = {"years": 2, "discount_rate": 0.1, "price_decline_per_year": 0.2}
    base_scenario["workloads"][0]["requests_per_s"] = [1.5, 3.0]
    return load_scenario(write_scenario(base_scenario, "two-years.yaml"))


def _grown(i: int = 0, scale: float = 1.0, growth: float = 1.0, z: float = 0.0, m: float = 1.0) -> Sample:
    return Sample(index=i, demand_scale=scale, growth=growth, price_factor={L20: m}, capacity_z={ADA: z})


def test_growth_is_drawn_per_sample_and_compounds_by_year() -> None:
    risk = Risk(growth_log_sd=0.1)
    s = draw_sample(7, 2, risk, [L20], [ADA])
    z = random.Random("procure-mc/7/2/growth").gauss(0.0, 1.0)
    assert s.growth == pytest.approx(math.exp(0.1 * z))
    assert year_factor(s, 1) == pytest.approx(s.demand_scale)
    assert year_factor(s, 3) == pytest.approx(s.demand_scale * s.growth ** 2)
    # no growth spread: m = 1 every sample
    assert draw_sample(7, 2, Risk(growth_log_sd=0.0), [L20], [ADA]).growth == 1.0


def test_served_in_year_two_by_hand(two_years: Any) -> None:
    setup, plan = prepare(two_years, seed=0)
    rec = period_shape_of(plan, "recommended", setup.rs, setup.base_gpu_price, setup.family)
    assert setup.demand == {"chat": [1.5, 3.0]}
    assert sorted((d.year, d.replicas) for d in rec.deployments) == [(1, 1), (2, 2)]
    assert rec.buys == [(1, "PCIe-4GPU-4U/L20-48GB/2", 1)]
    # sample: scale 1.1, growth 1.2, z_Ada = -0.5. Demand: year 1 1.5 x 1.1 = 1.65; year 2
    # 3.0 x 1.1 x 1.2 = 3.96. One replica: 0.8 x 2.021495 x exp(-0.5 x 0.3159) = 1.617196 x 0.853892
    # = 1.380911; year 1 1.380911 / 1.65 = 0.836916; year 2 2 x 1.380911 / 3.96 = 0.697430
    s = _grown(scale=1.1, growth=1.2, z=-0.5)
    y1, y2 = served_by_year(rec, s, setup.demand, setup.family)
    assert y1["chat"] == pytest.approx(0.836916, abs=1e-5)
    assert y2["chat"] == pytest.approx(0.697430, abs=1e-5)
    # no growth: year 2 is 2 x 1.380911 / 3.3 = 0.836916 as year 1
    assert served_fractions(rec, _grown(scale=1.1, z=-0.5), {"chat": 3.0}, setup.family, year=2)["chat"] == \
        pytest.approx(0.836916, abs=1e-5)
    risk, _ = evaluate(rec, [s, _grown(i=1)], setup.demand, setup.family)
    # worst year of sample 0 is year 2 (0.697430); sample 1 is all served: p10 at 0.1 of the way
    assert risk.served.p10 == pytest.approx(0.697430 + 0.1 * (1 - 0.697430), abs=1e-5)
    assert risk.served_by_year[0].p50 == pytest.approx((0.836916 + 1) / 2, abs=1e-5)
    assert risk.p_all_served == 0.5


def test_period_cost_is_the_npv_at_sampled_prices(two_years: Any) -> None:
    setup, plan = prepare(two_years, seed=0)
    rec = period_shape_of(plan, "recommended", setup.rs, setup.base_gpu_price, setup.family)
    # NPV 36,000, of which the two L20 bought in year 1 (discount factor 1): 10,000
    assert rec.cost == pytest.approx(36_000) and rec.capex == pytest.approx(36_000)
    assert rec.gpu_spend == {L20: pytest.approx(10_000)}
    # L20 at x0.9: 36,000 - 10,000 x 0.1 = 35,000
    assert cost_at(rec, _grown(m=0.9)) == pytest.approx(35_000)


def test_period_sample_optimum_by_hand(two_years: Any) -> None:
    setup, _ = prepare(two_years, seed=0)
    checked = 0
    for i in range(4):
        r = solve_sample(setup, i)
        s = r.sample
        assert r.optimum is not None and r.optimal_cost is not None
        # replicas needed in year y: ceil(λ_y x scale x growth^(y-1) / (0.8 x 2.0215 x exp(z x 0.3159)))
        one = 0.8 * L20_POINT * math.exp(s.capacity_z[ADA] * ADA_SD)
        need = [math.ceil(lam * year_factor(s, y) / one - 1e-6) for y, lam in ((1, 1.5), (2, 3.0))]
        by_year = {y: sum(d.replicas for d in r.optimum.deployments if d.year == y) for y in (1, 2)}
        assert by_year == {1: need[0], 2: need[1]}
        assert all(v == 1.0 for f in served_by_year(r.optimum, s, setup.demand, setup.family) for v in f.values())
        if max(need) <= 2:
            # two L20 on one PCIe-4GPU-4U in year 1 is cheapest: NPV 26,000 + 2 x 5,000 x m_L20
            assert r.optimum.buys == [(1, "PCIe-4GPU-4U/L20-48GB/2", 1)]
            assert r.optimal_cost == pytest.approx(26_000 + 10_000 * s.price_factor[L20], rel=1e-9)
            assert r.optimum.cost == pytest.approx(36_000) and r.optimum.capex == pytest.approx(36_000)
            checked += 1
    assert checked >= 1


def test_period_gpu_price_overrides_move_with_the_sample(two_years: Any) -> None:
    sc = two_years.scenario
    assert sc.periods is not None
    rs = resolve_scenario(sc.model_copy(update={"periods": sc.periods.model_copy(
        update={"prices": {L20: [5_000.0, 4_500.0]}})}), two_years.path, two_years.catalog)
    setup, _ = prepare(rs, seed=0)
    scaled = _sample_prices(setup, _grown(m=1.2))
    assert scaled.scenario.periods is not None
    assert scaled.scenario.periods.prices[L20] == pytest.approx([6_000.0, 5_400.0])
    assert _sample_prices(setup, _grown(m=1.0)) is setup.rs


def test_periods_ray_gives_the_local_results(two_years: Any) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'procure[ray]')")
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    try:
        on_ray = run_monte_carlo(two_years, 4, seed=3, executor="ray", workers=2)
    finally:
        ray.shutdown()
    local = run_monte_carlo(two_years, 4, seed=3, workers=1)
    assert same_results(on_ray, local)
    assert local.years == 2 and local.cost_name == "npv" and len(local.served_by_year) == 2
    assert all(len(row.served_by_year) == 2 and row.served == min(row.served_by_year) for row in local.rows)
    assert same_results(local, run_monte_carlo(two_years, 4, seed=3, workers=2))
