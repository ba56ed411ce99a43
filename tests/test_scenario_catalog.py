"""Scenario-declared catalog entries (``catalog:``): merge, clashes, ``replaces``, cloud instances."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from optimizer.errors import ScenarioError
from optimizer.loaders import load_catalog, resolve_scenario
from optimizer.model.pipeline import with_overrides
from optimizer.schema.catalog import Server
from optimizer.schema.scenario import Scenario
from optimizer.sizing.candidates import server_skus
from tests.conftest import BASE_SCENARIO, assert_user_error

#: g6.xlarge: 1 x L4, on-demand price as the user quotes it (any figure works for these tests)
CLOUD_L4: dict[str, Any] = {
    "name": "g6.xlarge", "vendor": "AWS", "description": "1 x NVIDIA L4 24 GB, 4 vCPU",
    "gpu_form_factor": "pcie", "compatible_gpus": ["L4"], "gpu_slots": 1, "allowed_populations": [1],
    "hourly_usd": 0.8048, "source": "AWS EC2 on-demand price list, us-east-1", "as_of": "2025-01-15"}


def quoted_a100(**extra: Any) -> dict[str, Any]:
    """An A100 80 GB as a vendor quoted it: the shipped entry's specs at a quoted price."""
    shipped = load_catalog().gpus["A100-SXM-80GB"].model_dump(mode="json")
    shipped.update({"name": "A100-80GB-quoted", "aliases": ["A100 quoted"], "source": "vendor quote Q-123",
                    "price": {"usd": 9000, "source": "vendor quote Q-123", "as_of": "2026-10-01"}, **extra})
    return shipped


def resolved(**top: Any) -> Any:
    data = copy.deepcopy(BASE_SCENARIO)
    data.update(top)
    return resolve_scenario(Scenario.model_validate(data), Path("s.yaml"), load_catalog())


def test_cloud_instance_merged_and_marked() -> None:
    rs = resolved(objective="hourly", constraints={"gpus": ["L4-24GB"]}, catalog={"servers": [CLOUD_L4]})
    srv = rs.catalog.servers["g6.xlarge"]
    assert srv.compatible_gpus == ["L4-24GB"]  # the alias "L4" resolved to the canonical name
    assert srv.source.startswith("scenario-declared (s.yaml catalog:)")
    assert rs.declared == frozenset({"g6.xlarge"})
    assert list(rs.servers) == ["g6.xlarge"]  # hourly: only cloud instance types are allowed
    sku = server_skus(rs)["g6.xlarge/L4-24GB/1"]
    # rented: nothing bought, no site power or rack space, 0.8048 USD/h x 1 (USD scenario)
    assert (sku.unit_price, sku.power_w, sku.rack_units, sku.hourly_price) == (0.0, 0.0, 0, 0.8048)
    assert "scenario-declared" in sku.price_source
    # the shipped catalog is untouched
    assert "g6.xlarge" not in load_catalog().servers


def test_capex_scenarios_do_not_pick_cloud_instances() -> None:
    rs = resolved(constraints={"gpus": ["L4-24GB"]}, catalog={"servers": [CLOUD_L4]})
    assert "g6.xlarge" not in rs.servers and rs.servers  # the shipped PCIe chassis remain


def test_prices_override_the_hourly_price() -> None:
    rs = resolved(objective="hourly", constraints={"gpus": ["L4-24GB"]}, catalog={"servers": [CLOUD_L4]},
                  prices={"g6.xlarge": 0.7})
    assert server_skus(rs)["g6.xlarge/L4-24GB/1"].hourly_price == 0.7


def test_re_resolving_with_overrides_is_idempotent() -> None:
    rs = resolved(constraints={"gpus": ["L4-24GB"]}, catalog={"servers": [CLOUD_L4]})
    again = with_overrides(rs, objective="hourly")  # resolves against the merged catalog again
    assert list(again.servers) == ["g6.xlarge"]


def test_replaces_stands_in_for_the_shipped_gpu() -> None:
    rs = resolved(constraints={"gpus": ["A100 quoted"]},
                  catalog={"gpus": [quoted_a100(aliases=["A100", "A100 quoted"], replaces="A100-SXM-80GB")]})
    assert "A100-SXM-80GB" not in rs.catalog.gpus
    # the shipped HGX A100 board now takes the quoted GPU, priced at the quote
    assert rs.catalog.servers["HGX-A100-8GPU"].compatible_gpus == ["A100-80GB-quoted", "A100-SXM-40GB"]
    sku = server_skus(rs)["HGX-A100-8GPU/A100-80GB-quoted/8"]
    chassis = load_catalog().servers["HGX-A100-8GPU"].base_usd
    assert sku.unit_price == pytest.approx(chassis + 8 * 9000)
    assert "scenario-declared estimate" in sku.price_source


def test_alias_clash_names_both() -> None:
    with pytest.raises(ScenarioError) as err:
        resolved(catalog={"gpus": [quoted_a100(aliases=["A100"])]})
    assert err.value.field == "catalog.gpus[0]"
    assert "'A100-80GB-quoted'" in err.value.message and "'A100-SXM-80GB'" in err.value.message
    assert "replaces: A100-SXM-80GB" in (err.value.hint or "")


def test_replaces_unknown_name() -> None:
    with pytest.raises(ScenarioError, match="replaces names unknown GPU 'A1OO'") as err:
        resolved(catalog={"gpus": [quoted_a100(replaces="A1OO")]})
    assert err.value.field == "catalog.gpus[0].replaces"


def test_declared_server_with_unknown_gpu() -> None:
    bad = {**CLOUD_L4, "compatible_gpus": ["L5"]}
    with pytest.raises(ScenarioError, match="lists unknown GPU 'L5'") as err:
        resolved(objective="hourly", catalog={"servers": [bad]})
    assert err.value.field == "catalog.servers[0].compatible_gpus[0]"


def test_purchased_server_needs_price_power_and_units() -> None:
    owned = {k: v for k, v in CLOUD_L4.items() if k != "hourly_usd"}
    with pytest.raises(ValidationError, match="needs base_price, base_power_w, rack_units"):
        Server.model_validate({**owned, "integrated": True, "integrated_reason": "one box"})


def test_cli_errors(write_scenario: Any, base_scenario: dict[str, Any]) -> None:
    base_scenario["catalog"] = {"servers": [CLOUD_L4]}
    base_scenario["constraints"] = {"gpus": ["L4-24GB"], "servers": ["PCIe-8GPU-4U"]}
    base_scenario["objective"] = "hourly"
    assert_user_error(["validate", str(write_scenario(base_scenario))], "constraints.servers[0]",
                      "objective hourly needs an hourly price", "PCIe-8GPU-4U has no hourly_usd")
    base_scenario["objective"] = "capex"
    base_scenario["constraints"]["servers"] = ["g6.xlarge"]
    assert_user_error(["validate", str(write_scenario(base_scenario))], "g6.xlarge is a cloud instance type",
                      "use objective: hourly")
    base_scenario["constraints"] = {"gpus": ["L4-24GB"]}
    base_scenario["catalog"] = {"gpus": [quoted_a100(aliases=["A100"])]}
    assert_user_error(["validate", str(write_scenario(base_scenario))], "catalog.gpus[0]",
                      "A100-80GB-quoted", "A100-SXM-80GB")
    base_scenario["catalog"] = {"servers": [{**CLOUD_L4, "hourly_usd": -1}]}
    assert_user_error(["validate", str(write_scenario(base_scenario))], "catalog.servers[0].hourly_usd",
                      "greater than 0")


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)))
def test_hourly_price_is_finite_and_positive(value: float) -> None:
    data = {**CLOUD_L4, "hourly_usd": value}
    ok = isinstance(value, (int, float)) and value == value and 0 < value <= 1e6
    try:
        srv = Server.model_validate(data)
    except ValidationError:
        assert not ok
    else:
        assert ok and srv.cloud and srv.integrated and srv.power_units == (0.0, 0)
