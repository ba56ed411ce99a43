"""Every user-supplied number is finite, typed as written and in range, checked once at the
boundary (the scenario schema, the CLI options): exit 2 with the field or option named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from optimizer.schema.scenario import Scenario
from tests.conftest import REPO, assert_user_error, run_cli

Writer = Callable[[Any], Path]


@pytest.mark.parametrize(("path", "value", "needle"), [
    (("constraints", "budget"), float("inf"), "finite"),
    (("constraints", "budget"), float("nan"), "finite"),
    (("constraints", "budget"), 1e308, "less than or equal"),
    (("constraints", "budget"), True, "valid number"),
    (("workloads", 0, "requests_per_s"), float("inf"), "finite"),
    (("workloads", 0, "requests_per_s"), 0, "greater than 0"),
    (("workloads", 0, "input_tokens"), 2**70, "less than or equal"),
    (("workloads", 0, "input_tokens"), True, "valid integer"),
    (("workloads", 0, "input_tokens"), 1000.5, "valid integer"),
    (("workloads", 0, "priority"), float("nan"), "finite"),
    (("site", "electricity_per_kwh"), float("inf"), "finite"),
    (("site", "racks"), 10**9, "less than or equal"),
    (("horizon_years",), float("inf"), "finite"),
    (("horizon_years",), 1e308, "less than or equal"),
    (("opex_per_year_fraction",), float("nan"), "finite"),
    (("usd_to_currency",), float("inf"), "finite"),
    (("solver", "seed"), 2**70, "less than or equal"),
    (("solver", "time_limit_s"), float("inf"), "finite"),
    (("serving", "max_num_seqs"), False, "valid integer"),
])
def test_scenario_number_out_of_range(write_scenario: Writer, base_scenario: dict[str, Any],
                                      path: tuple[Any, ...], value: Any, needle: str) -> None:
    node = base_scenario
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    field = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
    assert_user_error(["validate", str(write_scenario(base_scenario))], field, needle)


@pytest.mark.parametrize("price", [-88_000, 0, float("inf"), float("nan"), 1e308])
def test_top_level_price_must_be_positive_and_finite(write_scenario: Writer, base_scenario: dict[str, Any],
                                                      price: float) -> None:
    # issue #10: a negative top-level price gave capex -$88,000 and 24 GPUs for 2 req/s
    base_scenario["prices"] = {"H20-96GB": price}
    assert_user_error(["solve", str(write_scenario(base_scenario)), "--no-workbook"], "prices.H20-96GB")


def test_negative_availability_is_bad_input_not_infeasible(write_scenario: Writer,
                                                             base_scenario: dict[str, Any]) -> None:
    base_scenario["constraints"]["availability"] = {"H20-96GB": -8}
    assert_user_error(["solve", str(write_scenario(base_scenario)), "--no-workbook"],
                      "constraints.availability.H20-96GB", "greater than or equal to 0")


def test_usd_needs_no_rate_and_other_currencies_need_one(write_scenario: Writer,
                                                          base_scenario: dict[str, Any]) -> None:
    base_scenario["usd_to_currency"] = 7.2
    assert_user_error(["validate", str(write_scenario(base_scenario))], "usd_to_currency must be 1")
    base_scenario["currency"] = "eur"
    assert_user_error(["validate", str(write_scenario(base_scenario, "lower.yaml"))], "currency")


def test_workload_names_are_short_text(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["workloads"][0]["name"] = "a" * 20_000
    text = assert_user_error(["validate", str(write_scenario(base_scenario))], "workloads[0].name", "at most 80")
    assert len(text) < 1000


def test_names_refuse_control_characters_in_the_schema_too(base_scenario: dict[str, Any]) -> None:
    # the YAML reader refuses them with a line number; input that arrives as data (the web API,
    # what-if overrides) meets the same rule in the schema
    base_scenario["workloads"][0]["name"] = "chat\x07bell"
    with pytest.raises(ValidationError) as info:
        Scenario.model_validate(base_scenario)
    err = info.value.errors()[0]
    assert err["loc"][:3] == ("workloads", 0, "inference") and err["loc"][-1] == "name"
    assert "control character" in err["msg"]


@pytest.mark.parametrize(("option", "value"), [
    ("--time-limit", "inf"), ("--time-limit", "nan"), ("--time-limit", "0"), ("--gap", "nan"), ("--gap", "2"),
    ("--budget", "1e308"), ("--budget", "inf"), ("--budget", "-5"), ("--seed", str(2**70)), ("--seed", "-1"),
    ("--threads", "0"), ("--node-limit", "0"),
])
def test_solve_options_are_finite_and_in_range(option: str, value: str) -> None:
    assert_user_error(["solve", str(REPO / "scenarios" / "startup-api.yaml"), "--no-workbook", option, value],
                      option)


@pytest.mark.parametrize(("option", "value"), [
    ("--demand-scale", "inf"), ("--demand-scale", "nan"), ("--demand-scale", "1e308"),
    ("--budget", "1e308"), ("--budget", "nan"), ("--time-limit", "inf"), ("--price", "H20-96GB=1e308"),
])
def test_compare_options_are_finite_and_in_range(option: str, value: str) -> None:
    assert_user_error(["compare", str(REPO / "scenarios" / "bank-rollout.yaml"), "--no-workbook", option, value],
                      option)


def test_demand_scale_that_pushes_a_rate_past_its_range_names_the_field(write_scenario: Writer,
                                                                          base_scenario: dict[str, Any]) -> None:
    base_scenario["workloads"][0]["requests_per_s"] = 5000  # x 9999 is past the 1e7 req/s ceiling
    text = assert_user_error(["compare", str(write_scenario(base_scenario)), "--no-workbook",
                              "--no-whatif", "--demand-scale", "9999"], "workloads[0].requests_per_s")
    assert "with the overrides" in text


def test_infeasible_json_is_strict_json(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    base_scenario["constraints"]["budget"] = 1000
    res = run_cli("solve", str(write_scenario(base_scenario)), "--format", "json", "--no-workbook")
    assert res.exit_code == 1

    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite JSON token {token}")

    data = json.loads(res.stdout, parse_constant=refuse)
    assert data["status"] == "infeasible" and data["objective"] is None


def test_coverage_planned_rps_is_what_is_served(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    # issue #10 item 6: under coverage a budget too small for all demand serves part of it; the
    # deployments' planned_rps add up to the served rate, not the full demand
    base_scenario["objective"] = "coverage"
    base_scenario["workloads"][0]["requests_per_s"] = 400
    base_scenario["constraints"]["budget"] = 400_000
    res = run_cli("solve", str(write_scenario(base_scenario)), "--format", "json", "--no-workbook")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    cov = plan["coverage"][0]
    assert cov["served_fraction"] < 1
    planned = sum(d["planned_rps"] for d in plan["deployments"])
    assert planned == pytest.approx(cov["capacity_rps"], rel=1e-9)
    assert planned == pytest.approx(cov["served_fraction"] * cov["demand_rps"], rel=1e-6)
    assert planned < 400


def test_whatif_price_for_an_unknown_item_is_named(write_scenario: Writer, base_scenario: dict[str, Any]) -> None:
    # found by the malformed-scenario property test: validate accepted it, only compare refused
    base_scenario["whatif"] = [{"name": "cheap", "prices": {"H2O-96GB": 9000}}]
    assert_user_error(["validate", str(write_scenario(base_scenario))], "whatif[0].prices.H2O-96GB",
                      "unknown item", "H20-96GB")
