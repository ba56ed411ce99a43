"""What-if comparisons (optimizer/compare.py) with the real solver.

Hand-checked figures (catalog estimates: catalogs/servers.yaml, catalogs/gpus.yaml,
catalogs/quote_items.yaml). Capex is the servers plus the quote lines (optimizer/quote.py); the
budget bounds capex x (1 + contingency) x (1 + tax), a factor of 1 where finance: sets neither.

* The small scenario (tests/conftest.py BASE_SCENARIO: Qwen2-7B chat at 1.5 req/s, H20 or L20) is
  served by one PCIe chassis holding one L20-48GB: 26,000 + 1 x 5,000 = 31,000 USD of servers (one
  replica sustains 2.02 req/s under the Ada/vLLM factors, x 0.8 headroom = 1.62 >= 1.5). Quote lines
  (defaults on): storage, 1 TB (Qwen2-7B's 7.6e9 parameters x 2 B = 0.02 TB, rounded up) x 95 = 95;
  support, 12.5% (the catalog's fraction; the scenario sets no opex_per_year_fraction) x 31,000 a
  year x 3 years (horizon 3) = 11,625; no network (one server), no racks (provided). Capex 31,000 +
  95 + 11,625 = 42,720 USD. A budget under 42,720 buys nothing that serves it (served 0%, capex 0: a
  plan buying no server has no storage and no support); a budget of 42,720 or more serves all of it
  for 42,720.
* bank-rollout's cheapest plan serving all demand (vLLM 0.6.3 factors: Ada fitted, Hopper transferred
  from TensorRT-LLM; the Ascend 910B under vLLM-Ascend is fitted slower than before) is 11
  HGX-H20-8GPU with 8 H20-96GB (72,400 + 8 x 12,000 = 168,400 each) and 6 PCIe-8GPU-4U with 8
  L20-48GB (26,000 + 8 x 5,000 = 66,000 each): servers 11 x 168,400 + 6 x 66,000 = 2,248,400 USD.
  Quote lines: the fine-tuning job spans 3 L20 chassis (24 GPUs, one scale-out port each): 24 links
  x 1,320 = 31,680 and ceil(24 / 32) = 1 leaf switch x 43,000; storage 1 TB x 95; support at the
  scenario's opex_per_year_fraction 8% x 2,248,400 x 3 years = 539,616. Capex 2,248,400 + 31,680 +
  43,000 + 95 + 539,616 = 2,862,791 USD (`procure solve scenarios/bank-rollout.yaml`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from optimizer.compare import (
    Comparison,
    VariantResult,
    VariantSpec,
    _budget_labels,
    build_variants,
    marginal,
    parse_amount,
    parse_budget_range,
    parse_gpu_list,
    parse_price,
    recommend,
    run_comparison,
    weighted_served,
)
from optimizer.errors import ScenarioError, UsageError
from optimizer.loaders import load_scenario
from optimizer.model.pipeline import with_overrides
from optimizer.schema.scenario import InferenceWorkload
from tests.conftest import REPO

BANK = REPO / "scenarios" / "bank-rollout.yaml"
BANK_SERVERS = 11 * (72_400 + 8 * 12_000) + 6 * (26_000 + 8 * 5_000)  # 2,248,400 USD
BANK_FULL_CAPEX = BANK_SERVERS + 24 * 1_320 + 43_000 + 95 + 3 * 0.08 * BANK_SERVERS  # 2,862,791 USD
SMALL_CAPEX = 31_000 + 95 + 3 * 0.125 * 31_000  # one PCIe chassis with one L20-48GB + quote lines: 42,720


# ------------------------------------------------------------------------------------------------
# Parsing options
# ------------------------------------------------------------------------------------------------


def test_budget_range_is_inclusive_and_even() -> None:
    assert parse_budget_range("1e6:8e6:8") == [1e6, 2e6, 3e6, 4e6, 5e6, 6e6, 7e6, 8e6]
    assert parse_budget_range("500k:1.5M:3") == [5e5, 1e6, 1.5e6]


@pytest.mark.parametrize("text, words", [
    ("5:1:3", "greater than start"),
    ("1e6:2e6", "START:STOP:COUNT"),
    ("1e6:2e6:x", "whole number"),
    ("1e6:2e6:1", "at least 2"),
    ("abc:2e6:3", "not a number"),
    ("-1:2e6:3", "positive"),
])
def test_bad_budget_range(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_budget_range(text)


def test_amounts() -> None:
    assert parse_amount("2e6", "--budget") == 2e6
    assert parse_amount("2,000,000", "--budget") == 2e6
    assert parse_amount("2.5M", "--budget") == 2.5e6
    assert parse_amount("800k", "--budget") == 8e5
    for bad in ("abc", "0", "-5", "nan", "inf"):
        with pytest.raises(UsageError):
            parse_amount(bad, "--budget")


def test_price_and_gpu_names() -> None:
    rs = load_scenario(BANK)
    assert parse_price("H20-96GB=12000", rs) == ("H20-96GB", 12000.0)
    assert parse_price("h20-96gb=9.6k", rs) == ("H20-96GB", 9600.0)
    assert parse_price("PCIe-8GPU-4U=30000", rs) == ("PCIe-8GPU-4U", 30000.0)  # a chassis price
    with pytest.raises(UsageError, match="not a number"):
        parse_price("H20-96GB=abc", rs)
    with pytest.raises(UsageError, match="NAME=PRICE"):
        parse_price("H20-96GB", rs)
    with pytest.raises(UsageError) as exc:
        parse_price("H2O-96GB=12000", rs)
    assert "did you mean 'H20-96GB'" in exc.value.render()
    assert parse_gpu_list("H20-96GB, l20-48gb", rs) == ["H20-96GB", "L20-48GB"]
    with pytest.raises(UsageError) as exc:
        parse_gpu_list("H20-96GB,L2O-48GB", rs)
    assert "L20-48GB" in exc.value.render()


# ------------------------------------------------------------------------------------------------
# Variants
# ------------------------------------------------------------------------------------------------


def test_variants_from_budgets_and_overrides() -> None:
    rs = load_scenario(BANK)
    vs = build_variants(rs, budgets=[2e6, 1e6, 2e6], prices={"H20-96GB": 9600.0}, demand_scale=1.5,
                        use_whatif=False)
    assert [v.budget for v in vs] == [1e6, 2e6]  # ascending, duplicates dropped
    assert [v.name for v in vs] == ["budget $1.00M (H20-96GB=9,600, demand x1.5)",
                                    "budget $2.00M (H20-96GB=9,600, demand x1.5)"]
    assert all(v.origin == "cli" and v.prices == {"H20-96GB": 9600.0} and v.demand_scale == 1.5 for v in vs)


def test_variants_without_budgets_compare_against_the_scenario_as_written() -> None:
    rs = load_scenario(BANK)
    vs = build_variants(rs, gpus=["H20-96GB", "L20-48GB"])
    # sorted by the budget in force: the what-if "budget 1.2M" (1.2M) before everything at the
    # scenario's 6M cap, which keeps its order: base, the command-line variant, the other what-ifs
    assert [(v.name, v.origin) for v in vs] == [
        ("budget 1.2M", "whatif"), ("base", "base"), ("GPUs H20-96GB,L20-48GB", "cli"),
        ("Ascend 910B price +20%", "whatif"), ("no Ascend (NVIDIA only)", "whatif"), ("demand +50%", "whatif")]
    whatif = [v for v in vs if v.origin == "whatif"]
    assert [v.name for v in whatif] == [w.name for w in rs.scenario.whatif]
    assert whatif[1].prices == {"Ascend-910B-64GB": 20040.0}
    assert [v.name for v in build_variants(rs, use_whatif=True)][:2] == ["budget 1.2M", "base"]


def test_sweep_and_whatifs_share_one_budget_order() -> None:
    rs = load_scenario(BANK)
    vs = build_variants(rs, budgets=[2e6, 8e5])
    assert [(v.name, v.budget) for v in vs][:3] == [("budget $0.80M", 8e5), ("budget 1.2M", 1.2e6),
                                                     ("budget $2.00M", 2e6)]
    assert all(v.budget is None for v in vs[3:])  # the scenario's 6M cap, after every sweep point


def test_budget_labels_share_one_unit() -> None:
    assert _budget_labels([3e5, 1.5e6, 2.4e6], "USD") == ["$0.30M", "$1.50M", "$2.40M"]
    assert _budget_labels([1e4, 4e4, 1.25e5], "USD") == ["$10k", "$40k", "$125k"]
    assert _budget_labels([1.001e6, 1.002e6], "USD") == ["$1.001M", "$1.002M"]  # more decimals, not a collision
    assert _budget_labels([5e5, 2e6], "CHF") == ["0.50M CHF", "2.00M CHF"]


def test_nothing_to_compare(write_scenario: Callable[[Any], Path], base_scenario: dict[str, Any]) -> None:
    rs = load_scenario(write_scenario(base_scenario))
    with pytest.raises(UsageError, match="nothing to compare"):
        build_variants(rs)


def test_whatif_names_and_items_are_checked(write_scenario: Callable[[Any], Path],
                                            base_scenario: dict[str, Any]) -> None:
    base_scenario["whatif"] = [{"name": "a", "budget": 1e5}, {"name": "a", "demand_scale": 2}]
    with pytest.raises(ScenarioError, match="two variants are named 'a'"):
        build_variants(load_scenario(write_scenario(base_scenario)))
    base_scenario["whatif"] = [{"name": "cheap", "prices": {"H2O-96GB": 9000}}]
    with pytest.raises(ScenarioError) as exc:
        build_variants(load_scenario(write_scenario(base_scenario, "b.yaml")))
    assert "whatif[0].prices.H2O-96GB" in exc.value.render() and "H20-96GB" in exc.value.render()


def test_models_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        VariantSpec(name="x", origin="cli", budjet=1e6)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------------------
# Solving (real solver)
# ------------------------------------------------------------------------------------------------


def test_small_scenario_budgets_by_hand(write_scenario: Callable[[Any], Path], base_scenario: dict[str, Any]) -> None:
    rs = load_scenario(write_scenario(base_scenario))
    vs = build_variants(rs, budgets=[10_000, SMALL_CAPEX - 1, SMALL_CAPEX, 100_000])
    result = run_comparison(rs, vs, jobs=1)
    by = {v.budget: v for v in result.variants}
    for b in (10_000, SMALL_CAPEX - 1):  # too little for the one server that serves the chat
        v = by[b]
        assert (v.objective, v.budget_binds, v.capex, v.served_fraction) == ("coverage", True, 0.0, 0.0)
    for b in (SMALL_CAPEX, 100_000):
        v = by[b]
        assert (v.objective, v.budget_binds, v.capex, v.served_fraction) == ("capex", False, SMALL_CAPEX, 1.0)
        assert v.gpus_by_type == {"L20-48GB": 1}
    assert {v.full_demand_capex for v in result.variants} == {SMALL_CAPEX}
    # marginal value on capex spent: 10,000 -> 42,719 spends nothing more (0 -> 0) and gains nothing:
    # undefined; 42,719 -> 42,720 spends 42,720 more for 100 points: 100 / 0.04272 = 2,340.82 points
    # per million, 42,720 / 100 = 427.20 USD per point; 42,720 -> 100,000 spends nothing more
    assert (by[10_000].marginal_points_per_million, by[10_000].marginal_cost_per_point) == (None, None)
    assert by[10_000].marginal_next == by[SMALL_CAPEX - 1].name
    assert by[SMALL_CAPEX - 1].marginal_points_per_million == pytest.approx(100 / 0.04272)
    assert by[SMALL_CAPEX - 1].marginal_cost_per_point == pytest.approx(427.20)
    assert by[SMALL_CAPEX].marginal_points_per_million is None
    assert by[100_000].marginal_points_per_million is None and by[100_000].marginal_next is None
    # the knee: 42,720 and 100,000 both serve 100% for 42,720; the tie goes to the lower budget
    assert result.recommended == by[SMALL_CAPEX].name and by[SMALL_CAPEX].recommended
    assert [v.budget_from for v in result.variants] == ["variant"] * 4


def test_the_budget_bounds_capex_with_contingency_and_tax(write_scenario: Callable[[Any], Path],
                                                          base_scenario: dict[str, Any]) -> None:
    """10% contingency, then 5% tax: the one-server plan needs 42,720 x 1.1 x 1.05 = 49,341.60."""
    base_scenario["finance"] = {"contingency_pct": 0.1, "tax_pct": 0.05}
    rs = load_scenario(write_scenario(base_scenario))
    result = run_comparison(rs, build_variants(rs, budgets=[49_341.59, 49_341.60]), jobs=1)
    short, enough = result.variants
    assert (short.objective, short.capex, short.served_fraction) == ("coverage", 0.0, 0.0)
    assert (enough.objective, enough.capex, enough.served_fraction) == ("capex", SMALL_CAPEX, 1.0)
    assert enough.total_with_tax == pytest.approx(49_341.60)
    assert enough.hardware_capex == 31_000


def test_non_budget_infeasibility_is_reported_per_variant(write_scenario: Callable[[Any], Path],
                                                          base_scenario: dict[str, Any]) -> None:
    base_scenario["whatif"] = [{"name": "demand x1000", "demand_scale": 1000},
                               {"name": "L20 at 6000", "prices": {"L20-48GB": 6000}}]
    rs = load_scenario(write_scenario(base_scenario))
    result = run_comparison(rs, build_variants(rs), jobs=2)
    by = {v.name: v for v in result.variants}
    assert by["base"].capex == SMALL_CAPEX
    bad = by["demand x1000"]
    assert bad.status == "infeasible" and bad.plan is None and bad.capex is None
    assert bad.reason is not None and "site power short" in bad.reason
    # the other variants go on: servers 26,000 + 6,000; storage 95; support 3 x 12.5% x 32,000 = 12,000
    assert by["L20 at 6000"].capex == 26_000 + 6_000 + 95 + 12_000
    assert len({v.group for v in result.variants}) == 3


@pytest.fixture(scope="module")
def bank_sweep() -> Comparison:
    """A coarse sweep across the range where the budget binds, with a per-solve time limit."""
    rs = load_scenario(BANK)
    vs = build_variants(rs, budgets=parse_budget_range("5e5:2.9e6:7"), use_whatif=False)
    return run_comparison(rs, vs, time_limit_s=20, jobs=2)


def test_sweep_served_never_falls_and_capex_within_budget(bank_sweep: Comparison) -> None:
    vs = sorted(bank_sweep.variants, key=lambda v: v.budget or 0.0)
    assert all(v.plan is not None and v.status in ("optimal", "feasible") for v in vs)
    for a, b in itertools.pairwise(vs):
        assert b.served_fraction is not None and a.served_fraction is not None
        assert b.served_fraction >= a.served_fraction - 1e-9, (a.name, b.name)
    for v in vs:
        assert v.budget is not None and v.capex is not None and v.total_with_tax is not None
        assert v.total_with_tax == v.capex <= v.budget * (1 + 1e-9)  # no contingency or tax in bank-rollout
        assert v.plan is not None and v.plan.capex == v.capex and v.hardware_capex == v.plan.hardware_capex


def test_sweep_switches_objective_at_the_full_demand_capex(bank_sweep: Comparison) -> None:
    """Budgets 0.5M, 0.9M, ..., 2.9M: only 2.9M reaches the full-demand capex 2,862,791."""
    for v in bank_sweep.variants:
        assert v.full_demand_capex == BANK_FULL_CAPEX
        assert v.budget is not None
        if v.budget < BANK_FULL_CAPEX:
            assert v.objective == "coverage" and v.budget_binds
            assert v.served_fraction is not None and v.served_fraction < 1.0
        else:
            assert v.objective == "capex" and not v.budget_binds
            assert v.capex == pytest.approx(BANK_FULL_CAPEX, abs=0.005) and v.served_fraction == 1.0
            assert v.hardware_capex == BANK_SERVERS
            assert v.gpus_by_type == {"H20-96GB": 88, "L20-48GB": 48}
    assert [v.budget for v in bank_sweep.variants if not v.budget_binds] == [2.9e6]
    # the knee: the only variant within 1 point of full coverage is the full-coverage one
    assert bank_sweep.recommended == "budget $2.90M"
    cheapest = min(bank_sweep.variants, key=lambda v: v.budget or 0.0)
    assert cheapest.served_fraction is not None and 0.0 < cheapest.served_fraction < 0.5


def test_sweep_metrics_are_consistent(bank_sweep: Comparison) -> None:
    rs = load_scenario(BANK)
    vs = sorted(bank_sweep.variants, key=lambda v: v.budget or 0.0)
    for a, b in itertools.pairwise(vs):
        assert a.marginal_next == b.name
        assert a.capex is not None and b.capex is not None
        assert a.served_fraction is not None and b.served_fraction is not None
        assert b.capex > a.capex  # every point of this sweep spends more than the one before
        points = (b.served_fraction - a.served_fraction) * 100
        assert a.marginal_points_per_million == pytest.approx(points / ((b.capex - a.capex) / 1e6))  # on capex
        assert a.marginal_cost_per_point == (pytest.approx((b.capex - a.capex) / points) if points > 0 else None)
    for v in vs:
        assert v.plan is not None
        weighted, requests, by_w = weighted_served(v.plan, rs)
        prio = {"customer-service-assistant": 3, "policy-rag": 2, "credit-memo-drafting": 1,
                "dev-code-assistant": 0.5, "credit-memo-finetune": 1}
        assert weighted == pytest.approx(sum(prio[w] * by_w[w] for w in prio) / 7.5)
        assert v.served_fraction == weighted and v.served_requests_fraction == requests
        # a fine-tuning job counts as served only when it is scheduled
        assert by_w["credit-memo-finetune"] == (1.0 if v.plan.finetunes else 0.0)
        assert sum(v.gpus_by_type.values()) == sum(s.count * s.gpus_per_server for s in v.plan.servers)
    assert Comparison.model_validate_json(bank_sweep.model_dump_json()) == bank_sweep


def test_a_plan_serving_less_than_a_cheaper_one_is_replaced(write_scenario: Callable[[Any], Path],
                                                            base_scenario: dict[str, Any]) -> None:
    """As if a time-limited solve at the higher budget had returned a worse plan."""
    from optimizer.compare import _keep_monotone

    rs = load_scenario(write_scenario(base_scenario))
    specs = build_variants(rs, budgets=[SMALL_CAPEX, 100_000])
    result = run_comparison(rs, specs, jobs=1)
    cheap, rich = result.variants
    rich.served_fraction = 0.5
    _keep_monotone(result.variants, rs, specs)
    assert rich.served_fraction == 1.0 and rich.capex == SMALL_CAPEX and rich.plan == cheap.plan
    assert "budget $43k" in rich.notes[0] and "is kept" in rich.notes[0]  # 42,720 and 100,000 in k


def test_marginal_on_capex_spent() -> None:
    # 10 points for 0.5M more spent: 20 points per million, 50,000 per point
    assert marginal(0.5, 1.0e6, 0.6, 1.5e6) == pytest.approx((20.0, 50_000.0))
    assert marginal(0.5, 1.0e6, 0.5, 1.5e6) == (0.0, None)   # spends more, serves no more
    assert marginal(0.5, 1.0e6, 0.6, 1.0e6) == (None, None)  # spends no more: undefined


def _variant(name: str, group: int, budget: float | None, capex: float | None, served: float | None) -> VariantResult:
    from optimizer.schema.plan import Plan

    plan = Plan.model_construct() if capex is not None else None  # only "has a plan" matters to recommend()
    return VariantResult(name=name, origin="cli", group=group, budget=budget, prices={}, gpus=None,
                         demand_scale=1.0, status="optimal" if plan else "infeasible", objective=None,
                         budget_binds=None, full_demand_capex=None, capex=capex, served_fraction=served, plan=plan)


def test_recommendation_is_the_knee() -> None:
    """By hand: group 0 has five variants (the sweep), group 1 one what-if.

    98.9% is more than 1 point short; 99.0% and 99.5% are within 1 point; the cheapest of those is
    "c" (1.20M) — cheaper than the full-coverage "d" (1.40M); "x" is cheaper still but not in the
    sweep group; "e" ties "d" on capex at a higher budget."""
    vs = [_variant("a", 0, 1.0e6, 0.95e6, 0.989), _variant("b", 0, 1.1e6, 1.25e6, 0.995),
          _variant("c", 0, 1.2e6, 1.20e6, 0.990), _variant("d", 0, 1.5e6, 1.40e6, 1.0),
          _variant("e", 0, 2.0e6, 1.40e6, 1.0), _variant("x", 1, 6e6, 0.5e6, 1.0), _variant("none", 2, 1e6, None, None)]
    cmp = Comparison(scenario="s", scenario_file="s.yaml", currency="USD", horizon_years=3, objective="capex",
                     workloads=[], priorities={}, variants=vs, jobs=1, wall_time_s=0.0)
    assert recommend(cmp) is vs[2]
    assert (cmp.recommended, cmp.sweep_group) == ("c", 0) and [v.recommended for v in vs] == [
        False, False, True, False, False, False, False]
    assert "within 1 point of full coverage" in cmp.recommendation and "5 variants" in cmp.recommendation
    vs[2].served_fraction = 0.98  # c drops out: b (1.25M at 99.5%) is the cheapest left
    assert recommend(cmp) is vs[1]
    vs[1].served_fraction = 0.98  # now only d and e qualify: equal capex, the lower budget wins
    assert recommend(cmp) is vs[3]
    for v in vs[:5]:
        v.served_fraction = 0.5
    assert recommend(cmp) is None and cmp.recommended is None
    assert cmp.recommendation.startswith("none: no variant qualifies (the most served is 50.0%)")


def test_demand_scale_scales_a_length_mix_and_keeps_its_shares(write_scenario: Callable[[Any], Path],
                                                               base_scenario: dict[str, Any]) -> None:
    # The chat's 1.5 req/s as a mix: 0.75 at 500/100 tokens and 0.25 at 2,500/500 (means 0.75 x 500 +
    # 0.25 x 2,500 = 1,000 and 0.75 x 100 + 0.25 x 500 = 200, the base scenario's lengths). A what-if
    # demand_scale 2 (and --demand-scale 2, the same group) plans 3.0 req/s: 2.25 and 0.75 per bucket,
    # shares still 0.75 / 0.25; the scenario as written routes 1.125 and 0.375.
    w = base_scenario["workloads"][0]
    del w["input_tokens"], w["output_tokens"]
    w["lengths"] = [{"input_tokens": 500, "output_tokens": 100, "share": 0.75},
                    {"input_tokens": 2500, "output_tokens": 500, "share": 0.25}]
    base_scenario["whatif"] = [{"name": "double", "demand_scale": 2}]
    rs = load_scenario(write_scenario(base_scenario))
    variants = build_variants(rs, demand_scale=2.0)
    assert [(v.name, v.demand_scale) for v in variants] == [("base", 1.0), ("demand x2", 2.0),
                                                            ("double", 2.0)]
    result = run_comparison(rs, variants, jobs=1)
    assert [v.group for v in result.variants] == [0, 1, 1]
    for v, rate in zip(result.variants, (1.5, 3.0, 3.0), strict=True):
        assert v.plan is not None and v.served_fraction == pytest.approx(1.0)
        (cov,) = v.plan.coverage
        assert cov.demand_rps == pytest.approx(rate, rel=1e-12)
        routed: dict[tuple[int, int], float] = {}
        for d in v.plan.deployments:
            for b in d.buckets:
                routed[(b.input_tokens, b.output_tokens)] = routed.get((b.input_tokens, b.output_tokens), 0.0) \
                    + b.planned_rps
        assert routed == pytest.approx({(500, 100): 0.75 * rate, (2500, 500): 0.25 * rate}, rel=1e-6)
    scaled = with_overrides(rs, demand_scale=2.0).scenario.workloads[0]
    assert isinstance(scaled, InferenceWorkload)
    assert scaled.buckets() == [(500, 100, 0.75), (2500, 500, 0.25)]
    assert (scaled.input_tokens, scaled.output_tokens, scaled.requests_per_s) == (1000, 200, 3.0)
