"""Every kind of "why not": exit 1 with the binding limit and the amount, never a traceback."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ortools.math_opt.python import mathopt

from optimizer.errors import InfeasibleError
from optimizer.loaders import ResolvedScenario, load_scenario
from optimizer.model import diagnose
from optimizer.model.diagnose import binding_limits
from optimizer.model.pipeline import settings_of, solve_scenario
from optimizer.model.solve import SolveSettings
from optimizer.sizing.candidates import CandidateSet, InferenceCandidate, server_skus
from tests.conftest import REPO, run_cli
from tests.model.helpers import SETTINGS, candidate, scenario, solve, workload

BANK = REPO / "scenarios" / "bank-rollout.yaml"
Writer = Callable[[Any], Path]


def why(path: Path) -> str:
    rs = load_scenario(path)
    with pytest.raises(InfeasibleError) as exc:
        solve_scenario(rs, settings_of(rs, time_limit_s=20))
    return exc.value.message


def test_model_too_large_for_any_allowed_server(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    # Qwen3-235B-A22B in bf16 is 470 GB of weights (235.09e9 x 2 B = 437.9 GiB); the largest allowed
    # server holds 8 x L20 = 8 x 44.99 GiB x 0.9 = 324 GiB.
    base_scenario["constraints"]["gpus"] = ["L20-48GB"]
    base_scenario["workloads"][0].update(model="Qwen/Qwen3-235B-A22B", precisions=["bf16"])
    msg = why(write_scenario(base_scenario))
    assert "Qwen3-235B-A22B at bf16 needs about" in msg
    assert "no allowed server holds it (largest usable: 324 GiB)" in msg
    assert "allow fp8/int4" in msg and "PP across servers" in msg
    need = float(msg.split("needs about ")[1].split(" GiB")[0].replace(",", ""))
    assert need > 437.9  # weights alone, before KV cache and activations


def test_slo_no_gpu_fast_enough(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["workloads"][0]["slo"] = {"ttft_ms": 2000, "tpot_ms": 1}
    msg = why(write_scenario(base_scenario))
    assert "chat: no allowed configuration meets the SLO (TTFT 2000 ms, TPOT 1 ms)" in msg
    assert "best predicted TPOT is" in msg


def test_budget_short_cli_exit_1() -> None:
    res = run_cli("solve", str(BANK), "--budget", "1000000", "--no-workbook")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    # bank-rollout's cheapest full plan is the golden capex, $1,566,000
    assert "budget short by $1.86M: the cheapest plan meeting all demand costs $2.86M against a budget of $1.00M" \
        in res.output


def test_budget_short_json_status() -> None:
    res = run_cli("solve", str(BANK), "--budget", "1000000", "--no-workbook", "--format", "json")
    assert res.exit_code == 1
    first = res.output[: res.output.index("\n}") + 2]
    out = json.loads(first)
    assert out["status"] == "infeasible" and "budget short by" in out["reason"]


def test_availability_and_gpu_types(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    # "a" runs only in fp8, which of the allowed GPUs only L20 has (Ascend 910B has no fp8); "b" is
    # large enough to need more than the 8 available L20. One GPU type is allowed: both limits bind.
    base_scenario["constraints"] = {"gpus": ["L20-48GB", "Ascend-910B-64GB"], "max_gpu_types": 1,
                                    "availability": {"L20-48GB": 8}}
    base_scenario["workloads"] = [
        {**base_scenario["workloads"][0], "name": "a", "precisions": ["fp8"], "requests_per_s": 1},
        {**base_scenario["workloads"][0], "name": "b", "requests_per_s": 60},
    ]
    msg = why(write_scenario(base_scenario))
    # both minima are proven (optimal sub-solves), so they are quoted as figures, not "at least"
    need = re.search(r"availability: L20-48GB: needs (\d+), only 8 available", msg)
    assert need is not None and int(need.group(1)) > 8, msg
    assert "max GPU types: the demand needs 2 GPU types, the limit is 1" in msg


def test_site_power_short(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["site"]["power_kw"] = 0.5
    msg = why(write_scenario(base_scenario))
    assert msg.count("site power short by") == 1 and "the lowest-power plan needs" in msg


# --- issue #10: every figure in a diagnosis is one a sub-solve proved -------------------------------
# Hand-made candidate tables (tests/model/helpers.py) with the prices of test_hand_solved: an HGX H20
# server is 100k + 8 x 10k = 180k, 4.6 + 8 x 0.4 = 7.8 kW, 8 U; an 8-GPU L20 box 20k + 8 x 5k = 60k,
# 0.36 + 8 x 0.275 = 2.56 kW, 4 U; an HGX B200 server 6.3 + 8 x 1.0 = 14.3 kW, 10 U.

H20 = "HGX-H20-8GPU/H20-96GB/8"
L20_8 = "PCIe-8GPU-4U/L20-48GB/8"
B200 = "HGX-B200-8GPU/B200-SXM-180GB/8"
PRICES = {"HGX-H20-8GPU": 100_000, "H20-96GB": 10_000, "PCIe-8GPU-4U": 20_000, "PCIe-4GPU-4U": 15_000,
          "L20-48GB": 5_000}


def hand_reasons(rs: ResolvedScenario, cands: list[InferenceCandidate]) -> list[str]:
    out, _ = solve(rs, cands)
    assert out.status == "infeasible"
    return binding_limits(rs, CandidateSet(skus=server_skus(rs), inference=cands), SETTINGS)


def test_budget_within_its_limit_is_never_short_by_a_negative_amount() -> None:
    # 8 req/s: one H20 server (8 x 1 req/s, 180k, 7.8 kW) or two L20 boxes (16 x 0.5 req/s, 120k,
    # 5.12 kW); one L20 box + one H20 is 240k and 10.36 kW. Limits: budget 150k, site 5 kW (PUE 1),
    # at most 8 L20. Lifting any one alone leaves no plan (budget: H20 needs 7.8 kW, two L20 break
    # availability; power: only H20 or L20 + H20 remain, over budget; availability: two L20 need
    # 5.12 kW). With all lifted the cheapest plan is two L20 at 120k, within the 150k budget: the
    # budget binds only together with the others (this once read "budget short by $-30k"). Power is
    # short by 5.12 - 5 = 0.12 kW; availability's least L20 count is 0 (the H20 plan).
    rs = scenario([workload("a", 8)], prices=PRICES,
                  constraints={"gpus": ["H20-96GB", "L20-48GB"], "budget": 150_000, "availability": {"L20-48GB": 8}},
                  site={"power_kw": 5, "pue": 1.0, "racks": 10, "rack_power_kw": 100, "rack_units": 42})
    reasons = hand_reasons(rs, [candidate("a", H20, 1.0), candidate("a", L20_8, 0.5)])
    assert reasons == [
        "no single limit explains it; with all of them lifted the plan needs:",
        "budget: the cheapest plan meeting all demand costs $120k with the other limits lifted, within a budget "
        "of $150k, so it binds only together with the other limits",
        "site power short by 0.1 kW: the lowest-power plan needs 5.1 kW with the other limits lifted against the "
        "site's 5 kW (facility power, PUE 1)",
        "racks: with the other limits lifted the plan fits the site's 10 racks, so they bind only together with "
        "the other limits",
        "availability: binds only together with the other limits",
    ]
    assert not any("short by $-" in r or "short by -" in r for r in reasons)


class _Stopped:
    """A sub-solve the time limit cut short: an incumbent and a lower bound, no proof."""

    def __init__(self, best: float, bound: float) -> None:
        self.termination = SimpleNamespace(reason=mathopt.TerminationReason.FEASIBLE)
        self.best, self.bound = best, bound

    def has_primal_feasible_solution(self) -> bool:
        return True

    def objective_value(self) -> float:
        return self.best

    def best_objective_bound(self) -> float:
        return self.bound


@pytest.mark.parametrize(("bound", "expected"), [
    # bound 244k below the 300k budget, incumbent 634k above it: the amount is not proven; that the
    # budget binds is (lifting it alone gives a plan), so "more than" the budget, and no 634k minimum
    (244_000, "budget short by an amount not proven within the solver's limits: the cheapest plan meeting all "
              "demand costs more than a budget of $300k (no plan fits it; the solver's bound: at least $244k; "
              "best plan found: $634k)"),
    # bound 320.5k: at least 320k (rounded down, so "at least" stays true), short by at least 20k
    (320_500, "budget short by at least $20k: the cheapest plan meeting all demand costs at least $320k "
              "against a budget of $300k (the minimum was not proven within the solver's limits; best plan "
              "found: $634k)"),
])
def test_unproven_minimum_is_reported_as_its_bound(monkeypatch: pytest.MonkeyPatch, bound: float,
                                                   expected: str) -> None:
    # 10 req/s on H20 at headroom 0.8 needs 13 GPUs = 2 servers = 360k against a 300k budget
    # (test_hand_solved). Here the capex sub-solve is made to stop at its limit with an incumbent of
    # 634k: the message must quote the bound, never the incumbent as "the cheapest plan".
    rs = scenario([workload("chat", 10)], headroom=0.8, prices=PRICES,
                  constraints={"gpus": ["H20-96GB"], "budget": 300_000})
    real = diagnose._run

    def stopped(model: mathopt.Model, settings: SolveSettings) -> Any:
        res = real(model, settings)
        return _Stopped(634_000, bound) if settings.gap == diagnose.PROVEN_GAP else res

    monkeypatch.setattr(diagnose, "_run", stopped)
    assert hand_reasons(rs, [candidate("chat", H20, 1.0)]) == [expected]


def test_proven_minimum_is_quoted_exactly() -> None:
    # the same scenario solved for real: 360k proven, short by 60k
    rs = scenario([workload("chat", 10)], headroom=0.8, prices=PRICES,
                  constraints={"gpus": ["H20-96GB"], "budget": 300_000})
    assert hand_reasons(rs, [candidate("chat", H20, 1.0)]) == [
        "budget short by $60k: the cheapest plan meeting all demand costs $360k against a budget of $300k"]


def test_racks_short_by_the_fewest_that_admit_a_plan() -> None:
    # 40 req/s on H20 at 1 req/s per GPU: 40 GPUs = 5 servers of 7.8 kW; a 10 kW rack takes one, so
    # 5 racks are needed and the site has 2: short by exactly 3 (bisection on the rack count).
    site = {"power_kw": 1000, "pue": 1.0, "racks": 2, "rack_power_kw": 10, "rack_units": 42}
    rs = scenario([workload("chat", 40)], prices=PRICES, constraints={"gpus": ["H20-96GB"]}, site=site)
    assert hand_reasons(rs, [candidate("chat", H20, 1.0)]) == [
        "racks short by 3: the plan needs 5 racks of 10 kW / 42 U, the site has 2"]


def test_racks_short_names_the_server_that_fits_no_rack() -> None:
    # As above with 16 req/s: two H20 servers, one per 10 kW rack, and the site has 1: short by 1.
    # One B200 server (8 x 2 req/s) would serve it alone but draws 14.3 kW, more than any rack: it is
    # never bought and named, both numbers given.
    site = {"power_kw": 1000, "pue": 1.0, "racks": 1, "rack_power_kw": 10, "rack_units": 42}
    rs = scenario([workload("chat", 16)], prices=PRICES, constraints={"gpus": ["H20-96GB", "B200-SXM-180GB"]},
                  site=site)
    assert hand_reasons(rs, [candidate("chat", H20, 1.0), candidate("chat", B200, 2.0)]) == [
        "racks short by 1: the plan needs 2 racks of 10 kW / 42 U, the site has 1; servers that fit no rack are "
        f"never bought: {B200} draws 14.3 kW, more than a rack's 10 kW"]


def test_more_racks_are_never_asked_for_a_server_that_fits_no_rack() -> None:
    # Only the B200 (14.3 kW, 10 U) can serve it and racks are 10 kW / 8 U: no number of racks helps.
    # This once read "racks: more than 64 extra racks would be needed".
    site = {"power_kw": 1000, "pue": 1.0, "racks": 1, "rack_power_kw": 10, "rack_units": 8}
    rs = scenario([workload("chat", 16)], prices=PRICES, constraints={"gpus": ["B200-SXM-180GB"]}, site=site)
    reasons = hand_reasons(rs, [candidate("chat", B200, 2.0)])
    assert reasons == [
        "no plan meets all demand even with the budget, site power, rack count, availability and GPU-type "
        "limits all lifted",
        f"servers that fit no rack are never bought: {B200} draws 14.3 kW, more than a rack's 10 kW and is "
        "10 U tall, more than a rack's 8 U"]


def test_server_too_big_for_any_rack_is_dropped_and_named(write_scenario: Writer,
                                                          base_scenario: dict[str, Any]) -> None:
    # The real pipeline: only H20 allowed (HGX, 7.8 kW) and racks of 5 kW. The SKU is dropped at
    # candidate time, so the workload has no candidate and the message names the server, its 7.8 kW
    # and the rack's 5 kW — not "more racks".
    base_scenario["constraints"]["gpus"] = ["H20-96GB"]
    base_scenario["site"]["rack_power_kw"] = 5
    msg = why(write_scenario(base_scenario))
    assert ("chat: the only servers that run it fit no rack of 5 kW / 42 U: HGX-H20-8GPU/H20-96GB/8 draws "
            "7.8 kW, more than a rack's 5 kW — more racks cannot help") in msg
    assert "racks short" not in msg


def test_missing_fp8_kv_cache_is_not_reported_as_a_weight_precision(write_scenario: Writer,
                                                                    base_scenario: dict[str, Any]) -> None:
    # Ascend 910B runs int8 weights (catalog: int8 640 TFLOPS) but has no fp8, so no fp8 KV cache.
    # This once read "Ascend-910B-64GB cannot run int8".
    base_scenario["constraints"]["gpus"] = ["Ascend-910B-64GB"]
    base_scenario["workloads"][0].update(precisions=["int8"], kv_dtype="fp8")
    msg = why(write_scenario(base_scenario))
    assert ("chat: no allowed GPU runs it as asked: Ascend-910B-64GB runs int8 weights but has no fp8 KV "
            "cache (kv_dtype fp8) — set kv_dtype auto (or bf16)") in msg
    assert "cannot run int8" not in msg


def test_same_input_same_message() -> None:
    rs = scenario([workload("a", 8)], prices=PRICES,
                  constraints={"gpus": ["H20-96GB", "L20-48GB"], "budget": 150_000, "availability": {"L20-48GB": 8}},
                  site={"power_kw": 5, "pue": 1.0, "racks": 10, "rack_power_kw": 100, "rack_units": 42})
    cands = [candidate("a", H20, 1.0), candidate("a", L20_8, 0.5)]
    assert hand_reasons(rs, cands) == hand_reasons(rs, cands)
