"""Issue #14, rent versus buy: the shipped cloud instance catalog (catalogs/cloud.yaml).

Figures are pinned to the sources cited in each entry's ``source`` (see catalogs/cloud.yaml).
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from rich.console import Console

from optimizer.cli.catalog import _cloud_table
from optimizer.errors import CatalogError
from optimizer.loaders import load_catalog
from optimizer.model.pipeline import solve_scenario
from optimizer.schema.catalog import Server
from tests.conftest import REPO, assert_user_error, run_cli
from tests.model.helpers import SETTINGS, scenario, workload

TODAY = date(2026, 12, 2)


def cloud() -> dict[str, Server]:
    return load_catalog().cloud


def test_every_instance_is_sourced_dated_and_names_catalog_gpus() -> None:
    cat = load_catalog()
    assert len(cat.cloud) >= 12
    for s in cat.cloud.values():
        assert len(s.source) > 20 and date(2025, 1, 1) <= s.as_of <= TODAY, s.name
        assert s.provider and s.region and s.hourly_usd, s.name
        assert s.allowed_populations == [s.gpu_slots], s.name  # an instance comes with all its GPUs
        for g in s.compatible_gpus:
            assert g in cat.gpus, (s.name, g)
            assert cat.gpus[g].form_factor == s.gpu_form_factor, (s.name, g)


def test_committed_prices_never_exceed_on_demand() -> None:
    for s in cloud().values():
        assert s.hourly_usd is not None
        for committed in (s.hourly_1y_usd, s.hourly_3y_usd):
            assert committed is None or committed < s.hourly_usd, s.name
        if s.hourly_1y_usd is not None and s.hourly_3y_usd is not None:
            assert s.hourly_3y_usd < s.hourly_1y_usd, s.name  # a longer commitment is cheaper


def test_providers_and_the_figures_read() -> None:
    c = cloud()
    assert {s.provider for s in c.values()} >= {"AWS", "Google Cloud", "Microsoft Azure", "Lambda"}
    # Google Cloud a3-highgpu-8g, us-central1 (Cyclenerd pricing.yml, 2026-02-12): month = 730 h
    # 1-year CUD 44,810.08066464 / 730 = 61.3837 per hour; 3-year 28,370.99821392 / 730 = 38.8644
    a3 = c["a3-highgpu-8g"]
    assert (a3.hourly_usd, a3.hourly_for("1y"), a3.hourly_for("3y")) == (88.49, 61.3837, 38.8644)
    assert a3.hourly_1y_usd == pytest.approx(44810.08066464 / 730, abs=5e-5)
    # Azure ND96isr H100 v5, eastus: 12.29 per GPU-hour x 8 GPUs = 98.32 per hour, no committed price read
    nd = c["Standard_ND96isr_H100_v5"]
    assert nd.hourly_usd == pytest.approx(8 * 12.29) and nd.hourly_for("1y") is None
    # AWS p4d.24xlarge, us-east-1: 1-year standard RI no upfront 13.921094 against 21.957642 on demand,
    # 1 - 13.921094 / 21.957642 = 36.6 % off
    p4d = c["p4d.24xlarge"]
    assert 1 - p4d.hourly_1y_usd / p4d.hourly_usd == pytest.approx(0.366, abs=5e-4)  # type: ignore[operator]
    assert p4d.hourly_3y_usd is None and "3-year" in (p4d.notes or "")
    # aliases resolve like any server's
    assert load_catalog().servers["Standard_NC40ads_H100_v5"].aliases == ["NC40ads H100 v5"]


def test_catalog_cloud_json_and_servers_json_split_rent_from_buy() -> None:
    res = run_cli("catalog", "cloud", "--format", "json")
    assert res.exit_code == 0, res.output
    entries = json.loads(res.output)["cloud"]
    assert [e["name"] for e in entries] == list(cloud())
    for e in entries:
        assert e["hourly_usd"] > 0 and e["provider"] and e["region"] and e["as_of"]
        assert e["price_stale"] in (True, False) and "hourly_1y_usd" in e and "hourly_3y_usd" in e
    servers = json.loads(run_cli("catalog", "servers", "--format", "json").output)["servers"]
    assert servers and not [s["name"] for s in servers if s["hourly_usd"] is not None]


def test_catalog_cloud_table() -> None:
    res = run_cli("catalog", "cloud")
    assert res.exit_code == 0 and "as of" in res.output, res.output
    console = Console(width=220, record=True)
    console.print(_cloud_table(load_catalog(), TODAY))
    text = console.export_text()
    # a3-highgpu-8g: 88.49 on demand, 61.38 / 38.86 committed, 88.49 / 8 = 11.061 per GPU-hour
    row = next(line for line in text.splitlines() if "a3-highgpu-8g" in line)
    for cell in ("Google Cloud", "us-central1", "8 x H100-SXM-80GB", "88.49", "61.38", "38.86", "11.061",
                 "2026-02-12"):
        assert cell in row, (cell, row)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == len(cloud()) and not [r for r in rows if "STALE" in r]  # all read within 12 months


def test_purchase_plans_never_list_cloud_instances_but_see_them_as_rentable() -> None:
    rs = scenario([workload("chat", 1.0)], constraints={"gpus": ["H100-SXM-80GB"]})
    assert rs.servers and not [s for s in rs.servers.values() if s.cloud]
    # rentable: every shipped instance type with an H100 SXM, for a plan over periods to rent
    assert set(rs.rentable) == {"p5.48xlarge", "p5.4xlarge", "a3-highgpu-8g", "Standard_ND96isr_H100_v5",
                                "lambda-gpu_1x_h100_sxm5"}


def test_objective_hourly_plans_on_the_shipped_instances() -> None:
    """1 req/s of Qwen2-7B on L40S: g6e.xlarge (1 GPU, 1.861/h) is the least per GPU of the g6e sizes
    (12xlarge 10.49264 / 4 = 2.623, 48xlarge 30.13118 / 8 = 3.766), so TP1 replicas rent it alone."""
    rs = scenario([workload("chat", 1.0)], objective="hourly", constraints={"gpus": ["L40S-48GB"]})
    assert set(rs.servers) == {"g6e.xlarge", "g6e.12xlarge", "g6e.48xlarge"}
    plan = solve_scenario(rs, SETTINGS).plan
    assert {s.chassis for s in plan.servers} == {"g6e.xlarge"}
    count = sum(s.count for s in plan.servers)
    assert plan.hourly_cost == pytest.approx(1.861 * count) and plan.capex == 0.0


def test_rent_flag_needs_periods_or_objective_hourly(write_scenario: Any, base_scenario: dict[str, Any]) -> None:
    base_scenario["constraints"]["rent"] = True
    assert_user_error(["validate", str(write_scenario(base_scenario))], "constraints.rent",
                      "priced per period", "objective: hourly")
    rs = scenario([workload("chat", 1.0)], objective="hourly", constraints={"gpus": ["L40S-48GB"], "rent": True})
    assert rs.scenario.constraints.rent and set(rs.servers) <= set(rs.rentable)


def instance(**extra: Any) -> dict[str, Any]:
    return {"name": "x.1", "vendor": "test", "description": "1 x L4", "gpu_form_factor": "pcie",
            "compatible_gpus": ["L4-24GB"], "gpu_slots": 1, "allowed_populations": [1], "hourly_usd": 1.0,
            "provider": "test cloud", "region": "r1", "source": "test price list", "as_of": "2026-01-01", **extra}


#: what a purchased server gives instead of an hourly price
PURCHASED: dict[str, Any] = {"base_price": {"usd": 1000, "source": "quote", "as_of": "2026-01-01"},
                             "base_power_w": 300, "rack_units": 2, "integrated": False,
                             "integrated_reason": "PCIe chassis plus cards"}


@given(od=st.floats(0.01, 1000), frac=st.floats(0.01, 2.0))
def test_committed_price_at_most_on_demand(od: float, frac: float) -> None:
    data = instance(hourly_usd=od, hourly_1y_usd=od * frac, hourly_3y_usd=None)
    if od * frac <= od:
        assert Server.model_validate(data).hourly_for("1y") == od * frac
    else:
        with pytest.raises(ValidationError, match="exceeds the on-demand"):
            Server.model_validate(data)


def test_cloud_fields_need_an_hourly_price() -> None:
    bought = {k: v for k, v in instance().items() if k != "hourly_usd"}
    bought.update(PURCHASED)
    with pytest.raises(ValidationError, match="provider, region describe a cloud instance type"):
        Server.model_validate(bought)
    ok = {k: v for k, v in bought.items() if k not in ("provider", "region")}
    assert Server.model_validate(ok).hourly_for("on_demand") is None  # a purchased server has no hourly price


def catalog_copy(tmp_path: Path, instances: list[dict[str, Any]]) -> Path:
    root = tmp_path / "catalogs"
    shutil.copytree(REPO / "catalogs", root)
    (root / "cloud.yaml").write_text(yaml.safe_dump({"instances": instances}))
    return root


@pytest.mark.parametrize("bad,needle,field", [
    ({"region": None}, "lacks region", "instances[0]"),
    ({"compatible_gpus": ["L4-42GB"]}, "unknown GPU 'L4-42GB'", "instances[0].compatible_gpus"),
    ({"aliases": ["HGX H100"]}, "already the server 'HGX-H100-8GPU'", "instances[0]"),
    ({"hourly_usd": None, "provider": None, "region": None, **PURCHASED},
     "lacks hourly_usd, provider, region", "instances[0]"),
])
def test_cloud_yaml_errors_name_file_and_entry(tmp_path: Path, bad: dict[str, Any], needle: str,
                                               field: str) -> None:
    root = catalog_copy(tmp_path, [{**instance(), **bad}])
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    assert needle in err.value.message and err.value.field == field
    assert err.value.file == str(root.resolve() / "cloud.yaml")
