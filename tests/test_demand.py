"""Business volumes (workload ``demand:``) become the peak request rate the plan is sized on (issue 17, item 2)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from optimizer import demand
from optimizer.loaders import load_scenario
from optimizer.model.pipeline import with_overrides
from optimizer.schema.scenario import MAX_RPS, InferenceWorkload
from tests.conftest import assert_user_error, run_cli

USERS = {"users": 40_000, "requests_per_user_per_day": 12, "peak_hour_share": 0.11}
WORKLOAD = {"name": "chat", "model": "Qwen2-7B", "input_tokens": 1000, "output_tokens": 200,
            "max_context": 4096, "slo": {"ttft_ms": 2000, "tpot_ms": 60}}


def _workload(**kw: Any) -> InferenceWorkload:
    return InferenceWorkload.model_validate({**WORKLOAD, **kw})


def test_users_form_by_hand() -> None:
    # 40,000 users x 12 requests a day = 480,000 requests; 11 % of them in the busiest hour = 52,800
    # requests in 3,600 s = 14.666... req/s.
    w = _workload(demand=USERS)
    assert w.requests_per_s == pytest.approx(52_800 / 3600, rel=1e-12)
    assert w.demand is not None
    assert w.demand.explain() == "40,000 users × 12 req/day × 11 % in the peak hour = 14.67 req/s"


def test_daily_form_by_hand() -> None:
    # 864,000 requests a day = 10 req/s on average; a peak 2.5 times the mean = 25 req/s.
    w = _workload(demand={"requests_per_day": 864_000, "peak_factor": 2.5})
    assert w.requests_per_s == pytest.approx(25.0, rel=1e-12)


def test_hourly_form_by_hand() -> None:
    # the busiest hour (14:00) holds 90,000 requests: 90,000 / 3,600 = 25 req/s; the rest do not matter.
    hours = [1000.0] * 24
    hours[14] = 90_000.0
    w = _workload(demand={"hourly_requests": hours})
    assert w.requests_per_s == pytest.approx(25.0, rel=1e-12)
    assert w.demand is not None and w.demand.explain().startswith("busiest hour 14:00 with 90,000 requests")


def test_dump_and_reload_validates() -> None:
    # a dumped workload carries both the rate and the demand: they agree, so it loads again
    w = _workload(demand=USERS)
    again = InferenceWorkload.model_validate(w.model_dump())
    assert again.requests_per_s == w.requests_per_s and again.demand == w.demand


@pytest.mark.parametrize(("bad", "needle"), [
    ({}, "exactly one of"),
    ({"users": 10, "requests_per_day": 100, "peak_factor": 2}, "exactly one of"),
    ({"requests_per_hour": 5}, "exactly one of"),
    ({"users": 10, "requests_per_user_per_day": 3, "peak_hour_share": 0.02}, "below 1/24"),
    ({"users": 10, "requests_per_user_per_day": 3, "peak_hour_share": 11}, "less than or equal to 1"),
    ({"requests_per_day": 1000, "peak_factor": 0.5}, "greater than or equal to 1"),
    ({"hourly_requests": [5.0] * 23}, "at least 24"),
    ({"hourly_requests": [0.0] * 24}, "all 0"),
    ({"users": 10, "requests_per_user_per_day": 3, "peak_hour_share": 0.5, "extra": 1}, "Extra inputs"),
])
def test_bad_demand_is_refused(bad: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(")):
        _workload(demand=bad)


def test_rate_and_demand_must_agree() -> None:
    with pytest.raises(ValidationError, match="disagrees with demand"):
        _workload(demand=USERS, requests_per_s=14.0)
    with pytest.raises(ValidationError, match="requests_per_s, or business volumes as demand"):
        _workload()
    assert _workload(demand=USERS, requests_per_s=52_800 / 3600).requests_per_s == pytest.approx(14.6667, rel=1e-4)


def test_cli_names_file_field_and_alternatives(base_scenario: dict[str, Any],
                                               write_scenario: Callable[[Any], Path]) -> None:
    w = base_scenario["workloads"][0]
    del w["requests_per_s"]
    w["demand"] = {"users": 100, "requests_per_day": 5}
    text = assert_user_error(["validate", str(write_scenario(base_scenario))], "workloads[0].demand",
                             "requests_per_day, peak_factor", "hourly_requests")
    assert "scenario.yaml" in text
    w["demand"] = {"requests_per_day": 1000, "peak_factor": 0.5}
    assert_user_error(["validate", str(write_scenario(base_scenario))], "workloads[0].demand.peak_factor")
    w["demand"] = USERS
    w["requests_per_s"] = 3.0
    assert_user_error(["validate", str(write_scenario(base_scenario))], "requests_per_s 3 disagrees with demand",
                      "14.67 req/s")


_share = st.floats(min_value=1 / 24, max_value=1.0)
_valid = st.one_of(
    st.fixed_dictionaries({"users": st.integers(1, 10**8), "requests_per_user_per_day": st.floats(1e-3, 1e3),
                           "peak_hour_share": _share}),
    st.fixed_dictionaries({"requests_per_day": st.floats(1.0, 1e11), "peak_factor": st.floats(1.0, 1000.0)}),
    st.fixed_dictionaries({"hourly_requests": st.lists(st.floats(0.0, 1e9), min_size=24, max_size=24)
                           .filter(lambda h: max(h) > 0)}),
)


@settings(max_examples=200, deadline=None)
@given(d=_valid)
def test_every_valid_demand_gives_a_finite_rate_in_range(d: dict[str, Any]) -> None:
    if "users" in d:
        rate = demand.users_peak_rps(d["users"], d["requests_per_user_per_day"], d["peak_hour_share"])
    elif "requests_per_day" in d:
        rate = demand.daily_peak_rps(d["requests_per_day"], d["peak_factor"])
    else:
        rate = demand.hourly_peak_rps(d["hourly_requests"])
    if not 0 < rate <= MAX_RPS:  # a real but oversized load: refused with the derivation, never planned
        with pytest.raises(ValidationError, match="outside"):
            _workload(demand=d)
        return
    w = _workload(demand=d)
    assert math.isfinite(w.requests_per_s) and 0 < w.requests_per_s <= MAX_RPS
    assert w.requests_per_s == rate


_bad = st.one_of(
    st.fixed_dictionaries({"users": st.integers(max_value=0), "requests_per_user_per_day": st.just(1.0),
                           "peak_hour_share": st.just(0.1)}),
    st.fixed_dictionaries({"users": st.just(10), "requests_per_user_per_day": st.just(1.0),
                           "peak_hour_share": st.floats(max_value=0.04) | st.floats(min_value=1.01)}),
    st.fixed_dictionaries({"requests_per_day": st.floats(max_value=0.0) | st.just(math.inf),
                           "peak_factor": st.just(2.0)}),
    st.fixed_dictionaries({"requests_per_day": st.just(1e4), "peak_factor": st.floats(max_value=0.99)}),
    st.fixed_dictionaries({"hourly_requests": st.lists(st.floats(0, 10), min_size=0, max_size=23)}),
    st.fixed_dictionaries({"hourly_requests": st.lists(st.floats(max_value=-0.01), min_size=24, max_size=24)}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=_bad)
def test_every_bad_demand_exits_2(d: dict[str, Any], tmp_path: Path) -> None:
    # YAML cannot write NaN/inf portably: JSON is YAML, and ".inf" is what YAML writes
    w = {**WORKLOAD, "demand": d}
    text = json.dumps({"name": "t", "site": {"power_kw": 100, "racks": 2, "rack_power_kw": 20},
                       "workloads": [w]}).replace("Infinity", ".inf").replace("NaN", ".nan")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_user_error(["validate", str(path)], "workloads[0].demand")


def test_validate_and_solve_print_the_derived_rate(base_scenario: dict[str, Any],
                                                    write_scenario: Callable[[Any], Path]) -> None:
    # 2,000 users x 20 req/day x 13.5 % = 5,400 requests in the peak hour / 3,600 s = 1.5 req/s,
    # the base scenario's own rate: the plan must be sized on it and report it as coverage demand_rps.
    w = base_scenario["workloads"][0]
    del w["requests_per_s"]
    w["demand"] = {"users": 2000, "requests_per_user_per_day": 20, "peak_hour_share": 0.135}
    path = write_scenario(base_scenario)
    line = "chat: 2,000 users × 20 req/day × 13.5 % in the peak hour = 1.50 req/s"
    v = run_cli("validate", str(path))
    assert v.exit_code == 0, v.output
    assert line in v.output
    vj = json.loads(run_cli("validate", str(path), "--format", "json").output)
    assert vj["workloads"][0]["requests_per_s"] == pytest.approx(1.5)
    s = run_cli("solve", str(path), "--no-workbook", "--format", "json")
    assert s.exit_code == 0, s.output
    plan = json.loads(s.stdout)
    assert line in s.stderr
    (cov,) = [c for c in plan["coverage"] if c["workload"] == "chat"]
    assert cov["demand_rps"] == pytest.approx(1.5, rel=1e-12)
    assert cov["capacity_rps"] >= 1.5


def test_demand_scale_keeps_working_on_demand_workloads(base_scenario: dict[str, Any],
                                                        write_scenario: Callable[[Any], Path]) -> None:
    # x1.5 on 2,000 users x 20 x 13.5 % = 1.5 req/s gives 2.25 req/s, and the scaled demand agrees with it
    w = base_scenario["workloads"][0]
    del w["requests_per_s"]
    w["demand"] = {"users": 2000, "requests_per_user_per_day": 20, "peak_hour_share": 0.135}
    rs = with_overrides(load_scenario(write_scenario(base_scenario)), demand_scale=1.5)
    (scaled,) = rs.scenario.inference_workloads().values()
    assert scaled.requests_per_s == pytest.approx(2.25, rel=1e-12)
    assert scaled.demand is not None and scaled.demand.peak_rps() == pytest.approx(2.25, rel=1e-12)
    res = run_cli("compare", str(write_scenario(base_scenario)), "--demand-scale", "1.5", "--format", "json",
                  "--no-workbook")
    assert res.exit_code == 0, res.output
